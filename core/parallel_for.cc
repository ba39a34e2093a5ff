// The thread pool behind parallel_for: one job at a time, tiles handed out from a shared
// counter, idle threads sleeping on a futex (C++20 atomic wait) after a short spin.
//
// Why not OpenMP: libgomp's fork/join hands each thread a fixed share (or, with a dynamic
// schedule, still ends every region in a barrier that every team thread must reach) and its
// idle workers spin for a long time by default, so on a machine with another busy process a
// descheduled worker held every call back by a time slice and the spinning one took the
// caller's CPU. Here the caller never waits for a thread to start: it takes tiles itself from
// the first moment, and waits at the end only for tiles that a pool thread had already taken.
#include "simdnn/parallel_for.h"

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace simdnn {

ContentionGuard& contention_guard() {
  static ContentionGuard guard;
  return guard;
}

namespace {

thread_local bool t_in_parallel_for = false;

// How long an idle pool thread polls for the next job before it sleeps. Training calls
// parallel_for every few to few tens of microseconds (batch 32: ~15,000 calls per 0.3 s
// epoch), and a futex wake-up costs ~5-30 us on a VM, so a short poll keeps a quiet machine
// fast; past it the thread takes no CPU from a busy machine. While the stall guard reports
// contention (level > 0) pool threads do not poll at all. SIMDNN_POOL_SPIN_US overrides the
// poll (0: always sleep at once, like OMP_WAIT_POLICY=passive).
constexpr int64_t kPoolSpinNs = 50'000;

int64_t pool_spin_ns() {
  static const int64_t ns = [] {
    const char* env = std::getenv("SIMDNN_POOL_SPIN_US");
    if (env == nullptr || *env == '\0') return kPoolSpinNs;
    char* end = nullptr;
    const long long us = std::strtoll(env, &end, 10);
    return (*end == '\0' && us >= 0 && us <= 1'000'000) ? static_cast<int64_t>(us) * 1000
                                                         : kPoolSpinNs;
  }();
  return ns;
}
// How long the caller polls for tiles that pool threads are finishing before it sleeps.
constexpr int64_t kCallerSpinNs = 20'000;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// The state word: generation (high 32 bits), closed flag (bit 31), threads inside the job
// (low 31 bits). A pool thread joins the current job only while it is open, by incrementing
// the count; the caller closes it once every tile has been taken and the count is zero, so no
// thread can touch a job after its caller returned.
constexpr uint64_t kClosed = uint64_t{1} << 31;
constexpr uint64_t kRefMask = kClosed - 1;
inline uint32_t generation(uint64_t s) { return static_cast<uint32_t>(s >> 32); }

class Pool {
 public:
  Pool() = default;
  // A forked child's fresh pool keeps the parent's (whose threads do not exist in the child)
  // reachable, so leak checkers do not flag it.
  explicit Pool(Pool* retired) : retired_(retired) {}

  // Runs a job; false if another caller holds the pool.
  bool run(int64_t count, int threads, detail::TileFn fn, const void* ctx, int64_t* work_ns,
           int64_t* wait_ns, bool* helped) {
    bool expected = false;
    if (!busy_.compare_exchange_strong(expected, true, std::memory_order_acquire)) return false;
    grow(threads - 1);
    fn_ = fn;
    ctx_ = ctx;
    count_ = count;
    helpers_.store(threads - 1, std::memory_order_relaxed);
    next_.store(0, std::memory_order_relaxed);
    const uint32_t gen = generation(state_.load(std::memory_order_relaxed)) + 1;
    state_.store(static_cast<uint64_t>(gen) << 32, std::memory_order_release);  // open
    gen_.store(gen, std::memory_order_release);
    gen_.notify_all();  // a syscall only when a thread sleeps (libstdc++ counts waiters)

    const int64_t start = ContentionGuard::now_ns();
    t_in_parallel_for = true;
    int64_t own = 0;
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < count; ++own) {
      fn(ctx, i);
    }
    t_in_parallel_for = false;
    const int64_t done = ContentionGuard::now_ns();
    // Wait for the tiles pool threads are still running, then close the job.
    uint64_t s = state_.load(std::memory_order_acquire);
    int64_t spin_until = done + kCallerSpinNs;
    for (int n = 0;; ++n) {
      if ((s & kRefMask) == 0) {
        if (state_.compare_exchange_weak(s, s | kClosed, std::memory_order_acq_rel)) break;
        continue;
      }
      if ((n & 63) != 63 || ContentionGuard::now_ns() < spin_until) {
        cpu_relax();
        s = state_.load(std::memory_order_acquire);
        continue;
      }
      state_.wait(s, std::memory_order_acquire);
      s = state_.load(std::memory_order_acquire);
      spin_until = ContentionGuard::now_ns() + kCallerSpinNs;
    }
    *work_ns = done - start;
    *wait_ns = ContentionGuard::now_ns() - done;
    *helped = own < count;
    busy_.store(false, std::memory_order_release);
    return true;
  }

 private:
  void grow(int helpers) {
    if (helpers <= started_) return;
    std::lock_guard<std::mutex> lock(grow_mu_);
    for (; started_ < helpers; ++started_) {
      std::thread([this, index = started_] { worker(index); }).detach();
    }
  }

  void worker(int index) {
    enable_flush_to_zero();
    t_in_parallel_for = true;
    // Generations start at 1, so a thread that starts while a job is open joins it. (It read
    // the current generation here before, and counted that job as seen: a pool thread first
    // scheduled in the middle of a call sat it out, and a test that needs two threads waited
    // for it in vain under load.)
    uint32_t seen = 0;
    for (;;) {
      // Wait for a new job: poll briefly, then sleep.
      uint32_t g = gen_.load(std::memory_order_acquire);
      if (g == seen) {
        const int64_t spin = contention_guard().level() > 0 ? 0 : pool_spin_ns();
        const int64_t until = ContentionGuard::now_ns() + spin;
        for (int n = 1; (g = gen_.load(std::memory_order_acquire)) == seen; ++n) {
          if ((n & 63) == 0 && ContentionGuard::now_ns() >= until) {
            gen_.wait(seen, std::memory_order_acquire);
          } else {
            cpu_relax();
          }
        }
      }
      seen = g;
      if (index >= helpers_.load(std::memory_order_relaxed)) continue;
      // Join the job if it is still the open one of generation g.
      uint64_t s = state_.load(std::memory_order_acquire);
      bool joined = false;
      while (generation(s) == g && (s & kClosed) == 0) {
        if (state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) {
          joined = true;
          break;
        }
      }
      if (!joined) continue;
      const detail::TileFn fn = fn_;
      const void* ctx = ctx_;
      const int64_t count = count_;
      for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < count;) fn(ctx, i);
      if (((state_.fetch_sub(1, std::memory_order_acq_rel) - 1) & kRefMask) == 0) {
        state_.notify_all();
      }
    }
  }

  std::atomic<bool> busy_{false};
  std::atomic<uint64_t> state_{0};
  std::atomic<uint32_t> gen_{0};
  std::atomic<int> helpers_{0};
  std::atomic<int64_t> next_{0};
  // The job: written by the caller before it opens the job (release store of state_), read
  // by a pool thread after it joined (acquire).
  detail::TileFn fn_ = nullptr;
  const void* ctx_ = nullptr;
  int64_t count_ = 0;
  std::mutex grow_mu_;
  int started_ = 0;  // pool threads started; only grown under busy_
  Pool* retired_ = nullptr;
};

// Leaked on purpose: pool threads are detached and may still be asleep at exit.
std::atomic<Pool*> g_pool{nullptr};
std::once_flag g_pool_once;

Pool& pool() {
  std::call_once(g_pool_once, [] {
    g_pool.store(new Pool, std::memory_order_release);
    // A forked child has none of the parent's threads: it starts a fresh pool.
    pthread_atfork(nullptr, nullptr, [] {
      g_pool.store(new Pool(g_pool.load(std::memory_order_relaxed)), std::memory_order_release);
    });
  });
  return *g_pool.load(std::memory_order_acquire);
}

}  // namespace

bool in_parallel_for() { return t_in_parallel_for; }

namespace detail {

bool run_on_pool(int64_t count, int threads, TileFn fn, const void* ctx, int64_t* caller_work_ns,
                 int64_t* caller_wait_ns, bool* helped) {
  return pool().run(count, threads, fn, ctx, caller_work_ns, caller_wait_ns, helped);
}

}  // namespace detail
}  // namespace simdnn
