// Internal: per-request state, and the server's only use of the Model.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "simdnn/attribution.h"
#include "simdnn/model.h"
#include "simdnn/serving/predict_request.h"
#include "simdnn/tensor.h"

namespace simdnn::serving {

// What one request needs besides the request itself: the model's buffers (its Workspace) and
// buffers of our own, all keeping their capacity from request to request.
struct Worker {
  ParsedInstances parsed;
  Tensor x;                    // the model input, [rows, input_size]
  std::vector<size_t> order;   // class indices, ranked for top-k
  std::string response;
  Workspace workspace;         // the model's per-caller buffers (see WorkerPool::predict)
  std::optional<Explainer> explainer;  // made on the worker's first explain request
};

// Integrated-gradients steps of the explain endpoint: the sum of the attributions is within
// ~1% of f(x) - f(black) at 128 (docs/api.md); one image then costs about 1 ms of one core.
constexpr size_t kExplainSteps = 128;

// The model and one Worker per HTTP worker thread. Everything the server does with the Model
// is here: one immutable Model shared by all workers, each predicting into its own Workspace
// (Model::predict is const and thread-safe for distinct workspaces).
//
// At most `workers` requests run at once (one per HTTP worker thread), and there are as many
// Workers, so acquire() does not wait in practice; the lock is held for a few instructions.
class WorkerPool {
 public:
  WorkerPool(Model model, size_t workers);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  const ModelInfo& info() const { return model_.info(); }
  size_t num_classes() const { return model_.num_classes(); }

  // Class probabilities for w.x, valid until w's next predict. One thread: the HTTP workers
  // already run requests in parallel.
  const Tensor& predict(Worker& w) const;
  // Integrated gradients of class target_class's probability at x (one image), kExplainSteps
  // steps from a black image, with w's explainer.
  Attribution explain(Worker& w, std::span<const float> x, size_t target_class,
                      size_t steps) const;

  Worker* acquire();
  void release(Worker* w);

 private:
  const Model model_;
  std::vector<std::unique_ptr<Worker>> all_;
  std::vector<Worker*> free_;
  std::mutex mutex_;
  std::condition_variable cond_;
};

// A Worker for the duration of one request.
class WorkerLease {
 public:
  explicit WorkerLease(WorkerPool& pool) : pool_(pool), worker_(pool.acquire()) {}
  ~WorkerLease() { pool_.release(worker_); }
  WorkerLease(const WorkerLease&) = delete;
  WorkerLease& operator=(const WorkerLease&) = delete;
  Worker& operator*() const { return *worker_; }
  Worker* operator->() const { return worker_; }

 private:
  WorkerPool& pool_;
  Worker* worker_;
};

}  // namespace simdnn::serving
