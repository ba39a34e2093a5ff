#include "worker_pool.h"

#include <utility>

namespace simdnn::serving {

WorkerPool::WorkerPool(Model model, size_t workers) : model_(std::move(model)) {
  for (size_t i = 0; i < workers; ++i) {
    all_.push_back(std::make_unique<Worker>());
    free_.push_back(all_.back().get());
  }
}

const Tensor& WorkerPool::predict(Worker& w) const { return model_.predict(w.x, w.workspace, 1); }

Attribution WorkerPool::explain(Worker& w, std::span<const float> x, size_t target_class,
                                size_t steps) const {
  if (!w.explainer) w.explainer.emplace(model_, AttributionOptions{.threads = 1});
  return w.explainer->integrated_gradients(x, target_class, steps);
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
