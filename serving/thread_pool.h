// Internal: the threads that run the HTTP layer's connection jobs.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace simdnn::serving {

// A fixed pool of threads running queued jobs in order, each thread with flush-to-zero on
// (denormal activations would otherwise slow inference on inputs that drive them there).
// Independent of the HTTP library: http_server.cc adapts it to cpp-httplib's TaskQueue.
class FlushToZeroThreadPool {
 public:
  explicit FlushToZeroThreadPool(size_t threads);
  ~FlushToZeroThreadPool();  // shutdown() if not done yet
  FlushToZeroThreadPool(const FlushToZeroThreadPool&) = delete;
  FlushToZeroThreadPool& operator=(const FlushToZeroThreadPool&) = delete;

  void enqueue(std::function<void()> job);
  // Runs every queued job, then joins the threads. Idempotent.
  void shutdown();

 private:
  void work();

  std::vector<std::thread> threads_;
  std::deque<std::function<void()>> jobs_;
  std::mutex mutex_;
  std::condition_variable cond_;
  bool shutdown_ = false;
};

}  // namespace simdnn::serving
