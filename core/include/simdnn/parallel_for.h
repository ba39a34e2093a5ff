// The one place where simdnn starts OpenMP threads: the kernels, the optimizers and the data
// paths of nn all run their threaded loops through parallel_for. Kept out of the per-target
// Highway code on purpose (clang 14 crashes on OpenMP pragmas inside it).
#pragma once

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "simdnn/threading.h"

namespace simdnn {

// Falls back to one thread for a while after a parallel call that stalled: the calling thread
// waited at the join much longer than it worked, or its own share took many times what the
// multiply-adds need (it was descheduled). On an oversubscribed machine a descheduled OpenMP
// worker stalls every fork/join by up to a scheduler time slice (ms), and libgomp's default
// spin-waiting worker steals the caller's CPU: a batch-32 training epoch went from 0.4 s
// to 10-30 s on 2 threads beside two busy compilers, against 0.5 s on 1 thread.
// Results do not depend on the thread count, so this only changes speed.
// Back-off: the first stall keeps calls serial for 4 ms; a stall soon after the window (within
// four windows' time) doubles it, up to ~1 s, so steady contention stays serial. An isolated
// stall long after the last one starts again at 4 ms: on a quiet VM a rare slow wake-up of the
// other vCPU used to ratchet the window up over an epoch, and 2-thread epochs ran 1.7-2.7x
// slower in some runs. 16 clean parallel calls in a row also halve the window.
// One per process, shared by every parallel region (contention is a property of the machine);
// relaxed atomics (a heuristic, races only blur the timing). Times are passed in (now_ns) so
// the policy can be tested without a clock.
class ContentionGuard {
 public:
  using Clock = std::chrono::steady_clock;

  // True while a recent stall says to stay on the calling thread.
  bool serial_now(int64_t now) const {
    const int64_t until = serial_until_ns_.load(std::memory_order_relaxed);
    return until != 0 && now < until;
  }

  // After a parallel call that ended at `now`: `work` is the calling thread's own share,
  // `wait` its time blocked at the join, `expected` a generous estimate of the share's time on
  // an idle core.
  void report(int64_t work_ns, int64_t wait_ns, int64_t expected_ns, int64_t now) {
    const bool stalled = wait_ns > work_ns + kSlackNs || work_ns > 8 * expected_ns + kSlackNs;
    int level = level_.load(std::memory_order_relaxed);
    if (stalled) {
      const int64_t last = last_stall_ns_.load(std::memory_order_relaxed);
      if (level > 0 && now - last > 4 * (kFirstWindowNs << level)) level = 0;
      level = std::min(level + 1, kMaxLevel);
      clean_.store(0, std::memory_order_relaxed);
      level_.store(level, std::memory_order_relaxed);
      last_stall_ns_.store(now, std::memory_order_relaxed);
      serial_until_ns_.store(now + (kFirstWindowNs << level), std::memory_order_relaxed);
    } else if (level > 0 && clean_.fetch_add(1, std::memory_order_relaxed) + 1 >= kCleanCalls) {
      clean_.store(0, std::memory_order_relaxed);
      level_.store(level - 1, std::memory_order_relaxed);
    }
  }

  // The current back-off level: 0 = none, the window is 2 ms << level.
  int level() const { return level_.load(std::memory_order_relaxed); }

  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               Clock::now().time_since_epoch())
        .count();
  }

  // A fork/join with a sleeping (not spinning) worker costs ~10-30 us; a stall is a time slice.
  static constexpr int64_t kSlackNs = 100'000;
  static constexpr int64_t kFirstWindowNs = 2'000'000;  // doubled before first use: 4 ms
  static constexpr int kMaxLevel = 9;                   // 2 ms << 9 = 1 s
  static constexpr int kCleanCalls = 16;

 private:
  std::atomic<int64_t> serial_until_ns_{0};
  std::atomic<int64_t> last_stall_ns_{0};
  std::atomic<int> level_{0};
  std::atomic<int> clean_{0};
};

ContentionGuard& contention_guard();

// Calls body(i) for i in [0, count) on `threads` OpenMP threads with a static schedule, so the
// same i always runs the same computation whatever the thread count (callers make each body(i)
// independent of which thread runs it, which keeps results bit-identical across thread counts).
// Each worker thread gets flush-to-zero before it runs any work. After a stalled region (see
// ContentionGuard) the calls run on the calling thread for a while. expected_ns: a generous
// estimate of one thread's share on an idle core, or 0 when unknown (then only the wait at
// the join is judged).
template <class Body>
void parallel_for(int64_t count, int threads, const Body& body, int64_t expected_ns = 0) {
  ContentionGuard& guard = contention_guard();
  if (threads <= 1 || count <= 1 || omp_in_parallel() ||
      guard.serial_now(ContentionGuard::now_ns())) {
    enable_flush_to_zero();
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
  const int t = static_cast<int>(std::min<int64_t>(count, threads));
  const int64_t start_ns = ContentionGuard::now_ns();
  int64_t caller_done_ns = start_ns;
#pragma omp parallel num_threads(t)
  {
    enable_flush_to_zero();
#pragma omp for schedule(static) nowait
    for (int64_t i = 0; i < count; ++i) body(i);
    if (omp_get_thread_num() == 0) caller_done_ns = ContentionGuard::now_ns();
  }
  const int64_t end_ns = ContentionGuard::now_ns();
  guard.report(caller_done_ns - start_ns, end_ns - caller_done_ns,
               expected_ns > 0 ? expected_ns : INT64_MAX / 16, end_ns);
}

}  // namespace simdnn
