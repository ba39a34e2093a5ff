#include "thread_pool.h"

#include <utility>

#include "simdnn/threading.h"

namespace simdnn::serving {

FlushToZeroThreadPool::FlushToZeroThreadPool(size_t threads) {
  threads_.reserve(threads);
  for (size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
}

FlushToZeroThreadPool::~FlushToZeroThreadPool() { shutdown(); }

void FlushToZeroThreadPool::enqueue(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  cond_.notify_one();
}

void FlushToZeroThreadPool::shutdown() {
  {
    std::lock_guard lock(mutex_);
    shutdown_ = true;
  }
  cond_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

void FlushToZeroThreadPool::work() {
  enable_flush_to_zero();
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      cond_.wait(lock, [&] { return !jobs_.empty() || shutdown_; });
      if (jobs_.empty()) return;  // shutdown_ and nothing left
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
}

}  // namespace simdnn::serving
