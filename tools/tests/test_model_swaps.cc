// Issue 11's must-show test: the serve binary with a model repository, under continuous load
// from 8 keep-alive clients, goes through 20 version swaps (a new version directory moved in,
// then SIGHUP or POST /v2/repository/models/{name}/load, alternating). No request fails, none
// is mixed (the body's version, the X-Model-Version header and the probabilities all belong to
// one version), and each response's version was live at some moment while it was in flight.
// Then a version that fails validation never goes live and the last good one keeps answering.
// p99 latency during the swaps against steady state is reported (MESSAGE), not asserted.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "simdnn/model_file.h"
#include "simdnn/safetensors.h"
#include "tools/tests/http_client.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_model_swaps {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using simdnn::test::HttpClient;
using simdnn::test::TempDir;

constexpr int kSwaps = 20;
constexpr int kClients = 8;
constexpr int kPixel = 100;  // every input pixel

simdnn::Model version_model(int v) {
  return simdnn::test::make_test_model(static_cast<uint64_t>(1000 + v), "v" + std::to_string(v));
}

// Writes version v outside the repository, then renames it in: the poller or a reload never
// sees a half-written file.
void move_in(const fs::path& staging, const fs::path& repo, int v, bool broken = false) {
  const fs::path tmp = staging / std::to_string(v);
  fs::create_directories(tmp);
  simdnn::SafetensorsFile f = simdnn::model_to_safetensors(version_model(v));
  if (broken) f.tensors[0].second.data()[0] = std::numeric_limits<float>::quiet_NaN();
  simdnn::save_safetensors(tmp / "model.safetensors", f);
  fs::rename(tmp, repo / "m" / std::to_string(v));
}

struct Sample {
  Clock::time_point start, end;
  int status = 0;
  int version = 0;  // 0: unparseable
  bool consistent = false;
  std::string problem;
};

double p99_ms(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(0.99 * static_cast<double>(v.size())))];
}

}  // namespace

TEST_CASE("model swaps: 20 swaps under 8 keep-alive clients, zero failed or mixed responses") {
  TempDir dir("model-swaps");
  const fs::path repo = dir / "repo", staging = dir / "staging";
  fs::create_directories(repo / "m");
  fs::create_directories(staging);
  move_in(staging, repo, 1);
  simdnn::test::write_raw(dir / "token", {'t', 'o', 'k', '\n'});

  // What each version answers for the fixed input.
  std::map<int, std::vector<float>> expected;
  for (int v = 1; v <= kSwaps + 1; ++v) {
    const simdnn::Model m = version_model(v);
    simdnn::Tensor x(simdnn::Shape{1, 784});
    for (size_t i = 0; i < 784; ++i) x[i] = kPixel * m.info().pixel_scale;
    const simdnn::Tensor p = m.predict(x, 1);
    expected[v] = std::vector<float>(p.data(), p.data() + p.size());
  }
  CHECK(expected[1] != expected[2]);

  simdnn::test::ServeProcess proc;
  proc.start(SIMDNN_SERVE_BIN,
             {"--model-repository", repo.string(), "--port", "0", "--threads", "2",
              "--poll-seconds", "0", "--auth-token-file", (dir / "token").string()},
             dir / "serve.err");

  const std::string body =
      json{{"inputs", {{{"name", "input"}, {"shape", {1, 784}}, {"datatype", "UINT8"},
                        {"data", std::vector<int>(784, kPixel)}}}}}
          .dump();
  std::atomic<bool> stop{false};
  std::mutex samples_mutex;
  std::vector<Sample> samples;
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&] {
      HttpClient client("127.0.0.1", proc.port, std::chrono::seconds(10));
      std::vector<Sample> mine;
      while (!stop.load()) {
        Sample s;
        s.start = Clock::now();
        const auto r = client.post("/v2/models/m/infer", body, "application/json");
        s.end = Clock::now();
        if (!r) {
          s.problem = "no response: " + client.last_error();
        } else {
          s.status = r->status;
          try {
            const json j = json::parse(r->body);
            const std::string version = j.at("model_version").get<std::string>();
            s.version = std::stoi(version);
            const std::vector<float> probs =
                j.at("outputs")[0].at("data").get<std::vector<float>>();
            const auto want = expected.find(s.version);
            bool same = want != expected.end() && want->second.size() == probs.size();
            for (size_t i = 0; same && i < probs.size(); ++i) {
              same = std::abs(probs[i] - want->second[i]) <= 1e-6f;
            }
            s.consistent = r->status == 200 && r->header("X-Model-Version") == version && same;
            if (!s.consistent) s.problem = "mixed: header " + r->header("X-Model-Version") + " body " + r->body.substr(0, 200);
          } catch (const std::exception& e) {
            s.problem = std::string("bad body: ") + e.what() + ": " + r->body.substr(0, 200);
          }
        }
        mine.push_back(std::move(s));
      }
      std::lock_guard lock(samples_mutex);
      samples.insert(samples.end(), mine.begin(), mine.end());
    });
  }

  // When version v was asked to go live, and when the server confirmed it (version v+1's
  // confirmation bounds the end of v's life).
  std::map<int, Clock::time_point> asked, confirmed;
  asked[1] = Clock::time_point::min();
  const double slack = simdnn::test::kSanitized ? 3.0 : 1.0;
  std::this_thread::sleep_for(std::chrono::duration<double>(0.6 * slack));
  const Clock::time_point swaps_start = Clock::now();
  HttpClient admin("127.0.0.1", proc.port, std::chrono::seconds(10));
  int swap_failures = 0;
  for (int k = 1; k <= kSwaps; ++k) {
    const int v = k + 1;
    move_in(staging, repo, v);
    asked[v] = Clock::now();
    if (k % 2 == 1) {
      ::kill(proc.pid, SIGHUP);
      const auto deadline = Clock::now() + std::chrono::seconds(10);
      bool live = false;
      while (!live && Clock::now() < deadline) {
        const auto r = admin.get("/v2/models/m");
        live = r && r->status == 200 && json::parse(r->body).at("versions")[0] == std::to_string(v);
        if (!live) std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      swap_failures += !live;
    } else {
      const auto r = admin.post("/v2/repository/models/m/load", "", "",
                                {{"Authorization", "Bearer tok"}});
      swap_failures += !(r && r->status == 200);
    }
    confirmed[v] = Clock::now();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const Clock::time_point swaps_end = Clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  stop = true;
  for (auto& t : clients) t.join();
  CHECK(swap_failures == 0);

  int failed = 0, mixed = 0, out_of_window = 0;
  std::map<int, int> per_version;
  std::vector<double> steady_ms, swapping_ms;
  std::string first_problem;
  for (const Sample& s : samples) {
    if (s.status != 200 || !s.consistent) {
      ++(s.status == 200 ? mixed : failed);
      if (first_problem.empty()) first_problem = s.problem;
      continue;
    }
    ++per_version[s.version];
    // Live from (asked[v]) until (confirmed[v+1]) at the widest: the version was picked at some
    // moment within [start, end], which must overlap that window.
    const auto next = confirmed.find(s.version + 1);
    const bool started_before_retired = next == confirmed.end() || s.start <= next->second;
    const bool ended_after_asked = s.end >= asked[s.version];
    if (!started_before_retired || !ended_after_asked) ++out_of_window;
    const double ms = std::chrono::duration<double, std::milli>(s.end - s.start).count();
    if (s.end < swaps_start) steady_ms.push_back(ms);
    if (s.start >= swaps_start && s.end <= swaps_end) swapping_ms.push_back(ms);
  }
  CAPTURE(first_problem);
  MESSAGE("requests: " << samples.size() << " (" << steady_ms.size() << " steady, "
                       << swapping_ms.size() << " during swaps), versions answered: "
                       << per_version.size() << "; p99 steady " << p99_ms(steady_ms)
                       << " ms, during swaps " << p99_ms(swapping_ms) << " ms");
  CHECK(failed == 0);
  CHECK(mixed == 0);
  CHECK(out_of_window == 0);
  CHECK(samples.size() >= 100);  // liveness: the load really ran
  CHECK(per_version.count(kSwaps + 1) == 1);  // the last version answered

  // A version that fails validation never goes live; the last good one keeps answering.
  move_in(staging, repo, kSwaps + 2, /*broken=*/true);
  ::kill(proc.pid, SIGHUP);
  HttpClient check("127.0.0.1", proc.port);
  double failures = -1;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (failures < 1 && Clock::now() < deadline) {
    const auto m = check.get("/metrics");
    if (m) {
      const std::string key = "\nmodel_load_failures_total{model=\"m\"} ";
      const size_t at = m->body.find(key);
      if (at != std::string::npos) failures = std::stod(m->body.substr(at + key.size()));
    }
    if (failures < 1) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(failures == 1);
  const auto after = check.post("/v2/models/m/infer", body, "application/json");
  REQUIRE(after);
  CHECK(after->status == 200);
  CHECK(after->header("X-Model-Version") == std::to_string(kSwaps + 1));
  const std::string err = simdnn::test::read_text(dir / "serve.err");
  CHECK(err.find(R"("event":"model_load_failed")") != std::string::npos);

  ::kill(proc.pid, SIGTERM);
  CHECK(proc.wait_exit(15.0) == 0);
}

}  // namespace test_model_swaps
