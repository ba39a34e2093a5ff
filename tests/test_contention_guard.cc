// The stall guard of parallel_for: its back-off policy, driven with explicit times.
#include <doctest/doctest.h>

#include <cstdint>

#include "simdnn/parallel_for.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_contention_guard {

namespace {
using simdnn::ContentionGuard;
constexpr int64_t kMs = 1'000'000;
constexpr int64_t kStart = 1'000 * kMs;

// A call whose caller worked 1 ms and then waited `wait` at the join.
void call(ContentionGuard& g, int64_t wait, int64_t now) { g.report(kMs, wait, 10 * kMs, now); }
}  // namespace

TEST_CASE("ContentionGuard: a stall makes calls serial for 4 ms, then parallel again") {
  ContentionGuard g;
  CHECK_FALSE(g.serial_now(kStart));
  call(g, 0, kStart);  // clean
  CHECK_FALSE(g.serial_now(kStart));
  call(g, 5 * kMs, kStart);  // waited 5 ms after 1 ms of work: a stall
  CHECK(g.level() == 1);
  CHECK(g.serial_now(kStart + 3 * kMs));
  CHECK_FALSE(g.serial_now(kStart + 5 * kMs));
  call(g, 5 * kMs, kStart + 6 * kMs);
  CHECK(g.level() == 2);
  g.reset();
  CHECK(g.level() == 0);
  CHECK_FALSE(g.serial_now(kStart + 7 * kMs));
}

TEST_CASE("ContentionGuard: a slow share on its own counts as a stall; a small wait does not") {
  ContentionGuard g;
  g.report(100 * kMs, 0, kMs, kStart);  // 100x the expected time for the caller's share
  CHECK(g.level() == 1);
  ContentionGuard quiet;
  call(quiet, kMs + ContentionGuard::kSlackNs / 2, kStart);  // within the slack
  CHECK(quiet.level() == 0);
}

TEST_CASE("ContentionGuard: stalls right after the window double it; an isolated one does not") {
  ContentionGuard g;
  int64_t now = kStart;
  for (int expected_level = 1; expected_level <= 5; ++expected_level) {
    call(g, 5 * kMs, now);
    CHECK(g.level() == expected_level);
    now += (ContentionGuard::kFirstWindowNs << expected_level) + kMs;  // just past the window
  }
  CHECK(g.serial_now(now - 2 * kMs));
  // Steady contention stays serial up to the cap.
  for (int i = 0; i < 10; ++i) {
    call(g, 5 * kMs, now);
    now += (ContentionGuard::kFirstWindowNs << g.level()) + kMs;
  }
  CHECK(g.level() == ContentionGuard::kMaxLevel);
  // A lone stall long after the last one starts over at the first window.
  now += 100 * (ContentionGuard::kFirstWindowNs << ContentionGuard::kMaxLevel);
  call(g, 5 * kMs, now);
  CHECK(g.level() == 1);
  CHECK_FALSE(g.serial_now(now + 5 * kMs));
}

TEST_CASE("ContentionGuard: 16 clean calls in a row halve the window") {
  ContentionGuard g;
  int64_t now = kStart;
  call(g, 5 * kMs, now);
  now += 5 * kMs;
  call(g, 5 * kMs, now);
  CHECK(g.level() == 2);
  for (int i = 0; i < ContentionGuard::kCleanCalls - 1; ++i) call(g, 0, now += kMs);
  CHECK(g.level() == 2);
  call(g, 0, now += kMs);
  CHECK(g.level() == 1);
}

TEST_CASE("ContentionGuard: calls no pool thread helped with add up to a stall") {
  ContentionGuard g;
  int64_t now = kStart;
  const int64_t step = ContentionGuard::kAbsentNs / 4;
  for (int i = 0; i < 4; ++i) g.report(step, 0, 10 * kMs, now += step, /*helped=*/false);
  CHECK(g.level() == 0);  // exactly kAbsentNs: not yet
  g.report(step, 0, 10 * kMs, now += step, /*helped=*/false);
  CHECK(g.level() == 1);
  CHECK(g.serial_now(now + kMs));
}

TEST_CASE("ContentionGuard: a call a pool thread helped with starts the absent count over") {
  ContentionGuard g;
  int64_t now = kStart;
  const int64_t step = ContentionGuard::kAbsentNs / 4;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 3; ++i) g.report(step, 0, 10 * kMs, now += step, /*helped=*/false);
    g.report(step, 0, 10 * kMs, now += step, /*helped=*/true);
  }
  CHECK(g.level() == 0);
}

TEST_CASE("ContentionGuard: calls nobody helped with do not count as clean ones") {
  ContentionGuard g;
  int64_t now = kStart;
  call(g, 5 * kMs, now);
  CHECK(g.level() == 1);
  // Many short unhelped calls, too short in total to be a stall, leave the level alone.
  for (int i = 0; i < 3 * ContentionGuard::kCleanCalls; ++i) {
    g.report(1000, 0, 10 * kMs, now += 1000, /*helped=*/false);
  }
  CHECK(g.level() == 1);
}

}  // namespace test_contention_guard
