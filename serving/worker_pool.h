// Internal: per-request buffers, reused from request to request.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

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
};

// One Worker per HTTP worker thread. The models are not here (see model_repository.h): any
// live version predicts into any Worker's Workspace (Model::predict is const and thread-safe for
// distinct workspaces; the Workspace resizes to each model's layers).
//
// At most `workers` requests run at once (one per HTTP worker thread), and there are as many
// Workers, so acquire() does not wait in practice; the lock is held for a few instructions.
class WorkerPool {
 public:
  explicit WorkerPool(size_t workers);
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Class probabilities of `model` for w.x, valid until w's next predict. One thread: the HTTP
  // workers already run requests in parallel.
  static const Tensor& predict(const Model& model, Worker& w);

  Worker* acquire();
  void release(Worker* w);

 private:
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
