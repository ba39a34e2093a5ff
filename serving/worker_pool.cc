#include "worker_pool.h"

#include <utility>

namespace simdnn::serving {

WorkerPool::WorkerPool(size_t workers) {
  for (size_t i = 0; i < workers; ++i) {
    all_.push_back(std::make_unique<Worker>());
    free_.push_back(all_.back().get());
  }
}

const Tensor& WorkerPool::predict(const Model& model, Worker& w) {
  return model.predict(w.x, w.workspace, 1);
}

Worker* WorkerPool::acquire() {
  std::unique_lock lock(mutex_);
  cond_.wait(lock, [&] { return !free_.empty(); });
  Worker* w = free_.back();
  free_.pop_back();
  return w;
}

void WorkerPool::release(Worker* w) {
  {
    std::lock_guard lock(mutex_);
    free_.push_back(w);
  }
  cond_.notify_one();
}

}  // namespace simdnn::serving
