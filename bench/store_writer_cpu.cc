// The prediction store's CPU per stored row (docs/serving.md, "With the prediction store"):
// records N rows shaped like serve's (request id, model, version, top-3) through
// PredictionStore::record() in bursts, flushes, and prints the CPU the process spent beyond the
// producing thread, which is the writer thread's (SQLite, top-k formatting, commits), per row.
// Thread CPU time, not wall time, so the figure holds on a loaded machine.
//   store_writer_cpu [ROWS=200000] [IDS=ordered|random] [DB=/tmp/store_writer_cpu.db]
// IDS=ordered: ids as serve generates them (Unix ms first, then random digits); random: 32
// random hex digits, as serve generated them before (and as clients may send).
#include <time.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "simdnn/prediction_store.h"

namespace {

double cpu_seconds(clockid_t clock) {
  timespec t{};
  clock_gettime(clock, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// 32 hex digits: random ones, or (ordered) the first 12 replaced by the time in ms.
std::string make_id(std::mt19937_64& rng, bool ordered, int64_t ms) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (int half = 0; half < 2; ++half) {
    uint64_t bits = rng();
    for (int i = 0; i < 16; ++i, bits >>= 4) id[half * 16 + i] = kHex[bits & 0xf];
  }
  if (ordered) {
    for (int i = 0; i < 12; ++i) id[i] = kHex[(static_cast<uint64_t>(ms) >> (44 - 4 * i)) & 0xf];
  }
  return id;
}

}  // namespace

int main(int argc, char** argv) {
  const long rows = argc > 1 ? std::atol(argv[1]) : 200000;
  const std::string ids = argc > 2 ? argv[2] : "ordered";
  const std::filesystem::path db = argc > 3 ? argv[3] : "/tmp/store_writer_cpu.db";
  if (rows <= 0 || (ids != "ordered" && ids != "random")) {
    std::fprintf(stderr, "usage: store_writer_cpu [ROWS] [ordered|random] [DB]\n");
    return 1;
  }
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::filesystem::remove(db.string() + suffix);
  }
  const double process0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
  const double main0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
  const auto wall0 = std::chrono::steady_clock::now();
  simdnn::PredictionStoreStats stats;
  {
    simdnn::PredictionStore store(db);  // serve's defaults: 1024-row batches, 200 ms
    const int64_t t0 = std::chrono::duration_cast<std::chrono::milliseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    std::mt19937_64 rng(42);
    for (long i = 0; i < rows; ++i) {
      simdnn::PredictionRecord r;
      r.time_ms = t0 + i / 20;  // about 20k rows per second, as serve at full rate
      r.request_id = make_id(rng, ids == "ordered", r.time_ms);
      r.model = "fashion";
      r.version = "3";
      r.predicted_class = static_cast<int32_t>(i % 10);
      r.confidence = 0.8123456f;
      r.top_k = {{static_cast<int32_t>(i % 10), 0.8123456f},
                 {static_cast<int32_t>((i + 3) % 10), 0.1234567f},
                 {static_cast<int32_t>((i + 7) % 10), 0.0345678f}};
      store.record(std::move(r));
      // Bursts of 512 every ~20 ms (25k rows/s), as requests arrive, so the queue never fills.
      if (i % 512 == 511) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    store.flush();
    stats = store.stats();
  }  // the destructor joins the writer and checkpoints
  const double main_cpu = cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - main0;
  const double writer_cpu = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - process0 - main_cpu;
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  std::printf("ids %s rows %ld written %llu dropped %llu batches %llu wall %.2f s\n", ids.c_str(), rows,
              static_cast<unsigned long long>(stats.written),
              static_cast<unsigned long long>(stats.dropped),
              static_cast<unsigned long long>(stats.batches), wall);
  std::printf("producer cpu %.3f s (%.2f us/row), writer cpu %.3f s (%.2f us/row)\n", main_cpu,
              main_cpu * 1e6 / static_cast<double>(rows), writer_cpu,
              writer_cpu * 1e6 / static_cast<double>(rows));
  std::printf("db %.1f MB\n", static_cast<double>(std::filesystem::file_size(db)) / 1e6);
  return stats.dropped == 0 && stats.written == static_cast<uint64_t>(rows) ? 0 : 2;
}
