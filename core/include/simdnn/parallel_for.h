// The one place where simdnn starts threads: the kernels, the optimizers and the data paths of
// nn all run their threaded loops through parallel_for, on a small pool of its own (not
// OpenMP: see parallel_for). Kept out of the per-target Highway code on purpose.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>

#include "simdnn/threading.h"

namespace simdnn {

// Falls back to one thread for a while after a parallel call that stalled: the calling thread
// waited at the join much longer than it worked, or its own share took many times what the
// multiply-adds need (it was descheduled). On an oversubscribed machine a descheduled worker
// can still hold a call back by the tile it is running, up to a scheduler time slice (ms).
// (With OpenMP's static schedule and spin-waiting workers, before the pool, a batch-32
// training epoch went from 0.4 s to 10-30 s on 2 threads beside two busy compilers.)
// Results do not depend on the thread count, so this only changes speed.
// Back-off: the first stall keeps calls serial for 4 ms; a stall soon after the window (within
// four windows' time) doubles it, up to ~1 s, so steady contention stays serial. An isolated
// stall long after the last one starts again at 4 ms: on a quiet VM a rare slow wake-up of the
// other vCPU used to ratchet the window up over an epoch, and 2-thread epochs ran 1.7-2.7x
// slower in some runs. 16 clean parallel calls in a row also halve the window.
// A third sign of a busy machine: pool threads that do not show up. A woken pool thread that
// the OS leaves on a run queue behind another process takes no tile, the caller runs them all,
// and nothing waits at the join, so the two signs above see a clean call; but the woken thread
// still competes for the caller's CPU. Calls whose every tile the caller ran add their time up,
// and past kAbsentNs in a row (far beyond a quiet machine's wake-up latency) count as a stall.
// (With one `yes` competitor on 2 vCPUs the pool thread of a batch-32 training run sat 1.96 s
// on a run queue and ran 0.15 s; the 2-thread epoch took 1.3x the 1-thread one.)
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
  // an idle core; `helped` whether any pool thread ran a tile.
  void report(int64_t work_ns, int64_t wait_ns, int64_t expected_ns, int64_t now,
              bool helped = true) {
    bool absent_too_long = false;
    if (helped) {
      absent_ns_.store(0, std::memory_order_relaxed);
    } else {
      const int64_t absent = absent_ns_.fetch_add(work_ns, std::memory_order_relaxed) + work_ns;
      absent_too_long = absent > kAbsentNs;
      if (absent_too_long) absent_ns_.store(0, std::memory_order_relaxed);
    }
    const bool stalled = wait_ns > work_ns + kSlackNs || work_ns > 8 * expected_ns + kSlackNs ||
                         absent_too_long;
    int level = level_.load(std::memory_order_relaxed);
    if (stalled) {
      const int64_t last = last_stall_ns_.load(std::memory_order_relaxed);
      if (level > 0 && now - last > 4 * (kFirstWindowNs << level)) level = 0;
      level = std::min(level + 1, kMaxLevel);
      clean_.store(0, std::memory_order_relaxed);
      level_.store(level, std::memory_order_relaxed);
      last_stall_ns_.store(now, std::memory_order_relaxed);
      serial_until_ns_.store(now + (kFirstWindowNs << level), std::memory_order_relaxed);
    } else if (helped && level > 0 &&
               clean_.fetch_add(1, std::memory_order_relaxed) + 1 >= kCleanCalls) {
      clean_.store(0, std::memory_order_relaxed);
      level_.store(level - 1, std::memory_order_relaxed);
    }
  }

  // Forgets every stall: parallel at once, no back-off (tests that need the pool).
  void reset() {
    serial_until_ns_.store(0, std::memory_order_relaxed);
    last_stall_ns_.store(0, std::memory_order_relaxed);
    level_.store(0, std::memory_order_relaxed);
    clean_.store(0, std::memory_order_relaxed);
    absent_ns_.store(0, std::memory_order_relaxed);
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
  // Caller-only time in a row that counts as a stall. A sleeping pool thread wakes in tens of
  // microseconds on an idle VM (a halted vCPU can take longer); one left on a busy run queue
  // waits a time slice (ms). On the quiet Zen 3 VM 2 ms tripped 0-4 times per 2-epoch run, with
  // one `yes` competitor 8-9 times (the window then grows to its 1 s cap).
  static constexpr int64_t kAbsentNs = 2'000'000;

 private:
  std::atomic<int64_t> serial_until_ns_{0};
  std::atomic<int64_t> last_stall_ns_{0};
  std::atomic<int> level_{0};
  std::atomic<int> clean_{0};
  std::atomic<int64_t> absent_ns_{0};
};

ContentionGuard& contention_guard();

namespace detail {
// One tile of a parallel_for: fn(ctx, i).
using TileFn = void (*)(const void* ctx, int64_t i);

// Runs fn(ctx, i) for every i in [0, count) on the calling thread and up to threads - 1 pool
// threads, each taking the next undone i from a shared counter (see parallel_for). Returns
// when every tile is done. Returns false without running anything if the pool is in use by
// another calling thread; the caller then runs the tiles itself.
// caller_work_ns / caller_wait_ns: the calling thread's time running tiles, and its time
// waiting afterwards for tiles that pool threads had taken; helped: whether a pool thread ran
// any tile.
bool run_on_pool(int64_t count, int threads, TileFn fn, const void* ctx, int64_t* caller_work_ns,
                 int64_t* caller_wait_ns, bool* helped);
}  // namespace detail

// True on a thread that is running a tile of parallel_for (a pool thread, or the caller inside
// its own call): nested parallel_for calls then run serially.
bool in_parallel_for();

// Calls body(i) for i in [0, count) on up to `threads` threads: the calling thread and
// threads - 1 threads of a process-wide pool. Tiles are handed out one at a time from a shared
// counter (dynamic, in any order, to whichever thread is free), so a thread the OS deschedules
// holds back only the tile it is running: the others, the caller included, take the rest.
// Callers make each body(i) independent of which thread runs it and of the order, which keeps
// results bit-identical for every thread count. Pool threads sleep (futex) when they have had
// nothing to do for a short while (kPoolSpinNs), rather than spinning. Each pool thread has
// flush-to-zero set before it runs any work, as has the caller. After a stalled call (see
// ContentionGuard) calls run on the calling thread for a while; calls made from inside a tile,
// or while another thread's call holds the pool, also run on the calling thread.
// expected_ns: a generous estimate of one thread's share on an idle core, or 0 when unknown
// (then only the wait at the end is judged).
template <class Body>
void parallel_for(int64_t count, int threads, const Body& body, int64_t expected_ns = 0) {
  ContentionGuard& guard = contention_guard();
  const auto serial = [&] {
    enable_flush_to_zero();
    for (int64_t i = 0; i < count; ++i) body(i);
  };
  if (threads <= 1 || count <= 1 || in_parallel_for() ||
      guard.serial_now(ContentionGuard::now_ns())) {
    serial();
    return;
  }
  enable_flush_to_zero();  // as on the pool threads, so every count agrees on denormals
  const int t = static_cast<int>(std::min<int64_t>(count, threads));
  int64_t work_ns = 0, wait_ns = 0;
  bool helped = true;
  const detail::TileFn fn = [](const void* ctx, int64_t i) {
    (*static_cast<const Body*>(ctx))(i);
  };
  if (!detail::run_on_pool(count, t, fn, &body, &work_ns, &wait_ns, &helped)) {
    serial();
    return;
  }
  guard.report(work_ns, wait_ns, expected_ns > 0 ? expected_ns : INT64_MAX / 16,
               ContentionGuard::now_ns(), helped);
}

}  // namespace simdnn
