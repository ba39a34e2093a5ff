// parallel_for's pool: every tile runs exactly once, on any number of threads, with tiles of
// uneven length (dynamic hand-out), nested and concurrent calls, and results that do not
// depend on the thread count. Speed under contention is measured in benchmarks, not here.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "simdnn/gemm.h"
#include "simdnn/parallel_for.h"
#include "test_util.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_parallel_for {

namespace {

// Clears the stall guard's back-off, so a slow test machine does not turn the calls serial.
void reset_guard() { simdnn::contention_guard().reset(); }

}  // namespace

TEST_CASE("parallel_for: every tile runs exactly once, for 1-4 threads and many counts") {
  for (int threads = 1; threads <= 4; ++threads) {
    for (int64_t count : {0, 1, 2, 3, 7, 64, 1000}) {
      CAPTURE(threads);
      CAPTURE(count);
      reset_guard();
      std::vector<std::atomic<int>> hits(static_cast<size_t>(count));
      for (auto& h : hits) h.store(0);
      simdnn::parallel_for(count, threads, [&](int64_t i) {
        hits[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
      });
      for (int64_t i = 0; i < count; ++i) CHECK(hits[static_cast<size_t>(i)].load() == 1);
    }
  }
}

TEST_CASE("parallel_for: uneven tiles are shared out, and a slow tile does not hold the rest") {
  reset_guard();
  // Tile 0 sleeps; with a dynamic hand-out the other tiles finish on the other thread(s)
  // meanwhile, and every one runs once.
  constexpr int64_t kCount = 200;
  std::vector<std::atomic<int>> hits(kCount);
  for (auto& h : hits) h.store(0);
  std::atomic<int> distinct_threads{0};
  thread_local int seen_call = -1;
  static std::atomic<int> call_id{0};
  const int id = call_id.fetch_add(1);
  simdnn::parallel_for(kCount, 2, [&](int64_t i) {
    if (i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (seen_call != id) {
      seen_call = id;
      distinct_threads.fetch_add(1);
    }
    hits[static_cast<size_t>(i)].fetch_add(1);
  });
  for (int64_t i = 0; i < kCount; ++i) CHECK(hits[static_cast<size_t>(i)].load() == 1);
  CHECK(distinct_threads.load() >= 1);
  CHECK(distinct_threads.load() <= 2);
}

TEST_CASE("run_on_pool: helped says whether a pool thread ran a tile") {
  struct Ctx {
    std::thread::id caller;
    std::atomic<int> others{0};
    std::atomic<int> started{0};
    bool rendezvous = false;
  };
  const simdnn::detail::TileFn fn = [](const void* p, int64_t /*i*/) {
    auto* ctx = static_cast<Ctx*>(const_cast<void*>(p));
    if (std::this_thread::get_id() != ctx->caller) ctx->others.fetch_add(1);
    if (!ctx->rendezvous) return;
    // The first tile waits (at most 10 s) for the second to start, which only another thread
    // can do: the caller runs one tile at a time.
    if (ctx->started.fetch_add(1) != 0) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (ctx->started.load() < 2 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
  };
  // Short calls: helped must agree with where the tiles ran, whichever way each call goes.
  for (int rep = 0; rep < 200; ++rep) {
    Ctx ctx;
    ctx.caller = std::this_thread::get_id();
    int64_t work = 0, wait = 0;
    bool helped = false;
    REQUIRE(simdnn::detail::run_on_pool(4, 2, fn, &ctx, &work, &wait, &helped));
    CHECK(helped == (ctx.others.load() > 0));
  }
  // A call that cannot finish without a second thread reports help.
  Ctx ctx;
  ctx.caller = std::this_thread::get_id();
  ctx.rendezvous = true;
  int64_t work = 0, wait = 0;
  bool helped = false;
  REQUIRE(simdnn::detail::run_on_pool(2, 2, fn, &ctx, &work, &wait, &helped));
  CHECK(ctx.others.load() > 0);
  CHECK(helped);
}

TEST_CASE("parallel_for: nested calls run serially and completely") {
  reset_guard();
  std::atomic<int64_t> sum{0};
  simdnn::parallel_for(8, 2, [&](int64_t i) {
    CHECK(simdnn::in_parallel_for());
    simdnn::parallel_for(10, 2, [&](int64_t j) { sum.fetch_add(i * 10 + j); });
  });
  CHECK_FALSE(simdnn::in_parallel_for());
  CHECK(sum.load() == 80 * 79 / 2);
}

TEST_CASE("parallel_for: concurrent callers each get every tile (one uses the pool, others run alone)") {
  reset_guard();
  constexpr int kCallers = 4;
  constexpr int64_t kCount = 500;
  std::vector<std::vector<int>> hits(kCallers, std::vector<int>(kCount, 0));
  std::vector<std::thread> callers;
  for (int c = 0; c < kCallers; ++c) {
    callers.emplace_back([&, c] {
      for (int rep = 0; rep < 50; ++rep) {
        simdnn::parallel_for(kCount, 2, [&](int64_t i) { ++hits[c][static_cast<size_t>(i)]; });
      }
    });
  }
  for (auto& t : callers) t.join();
  for (int c = 0; c < kCallers; ++c) {
    for (int64_t i = 0; i < kCount; ++i) CHECK(hits[c][static_cast<size_t>(i)] == 50);
  }
}

TEST_CASE("parallel_for: a forked child gets a working pool of its own") {
  reset_guard();
  std::atomic<int64_t> warm{0};
  simdnn::parallel_for(100, 2, [&](int64_t i) { warm.fetch_add(i); });  // parent's pool runs
  REQUIRE(warm.load() == 99 * 100 / 2);
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::vector<std::atomic<int>> hits(1000);
    for (auto& h : hits) h.store(0);
    for (int rep = 0; rep < 20; ++rep) {
      simdnn::parallel_for(1000, 2, [&](int64_t i) { hits[static_cast<size_t>(i)].fetch_add(1); });
    }
    bool ok = true;
    for (auto& h : hits) ok = ok && h.load() == 20;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("parallel_for: the GEMM gives the same bits on 1, 2 and 3 threads, call after call") {
  // Many back-to-back calls, so that pool threads join calls at random points (asleep, polling,
  // or late): the tile a thread takes must never change a bit.
  simdnn::test::for_each_simd_target([](const std::string&) {
    const int64_t m = 256, n = 128, k = 300;
    const auto a = simdnn::test::random_floats(static_cast<size_t>(m * k), 11);
    const auto b = simdnn::test::random_floats(static_cast<size_t>(k * n), 12);
    std::vector<float> ref(static_cast<size_t>(m * n)), out(ref.size());
    simdnn::gemm(simdnn::Transpose::kNo, simdnn::Transpose::kNo, m, n, k, 1.0f, a.data(), k,
                 b.data(), n, 0.0f, ref.data(), n, 1);
    for (int threads : {2, 3}) {
      for (int rep = 0; rep < 20; ++rep) {
        reset_guard();
        simdnn::gemm(simdnn::Transpose::kNo, simdnn::Transpose::kNo, m, n, k, 1.0f, a.data(), k,
                     b.data(), n, 0.0f, out.data(), n, threads);
        CAPTURE(threads);
        CAPTURE(rep);
        REQUIRE(out == ref);
      }
    }
  });
}

}  // namespace test_parallel_for
