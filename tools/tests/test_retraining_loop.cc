// Issue 12's must-show tests: the whole retraining loop, end to end with the real binaries, and
// the gate refusing a deliberately worse candidate.
//
// The loop: train v1 on part of Fashion-MNIST into a model repository, serve it with a
// prediction store that keeps inputs, send held-out training images (never seen by v1) as
// requests with their true labels as feedback, export the feedback merged with v1's data,
// fine-tune v2 from v1 on it, pass the promotion gate, and watch the running service pick v2
// up by polling while a client keeps sending requests: none may fail. Then feedback on v2's
// predictions, and /metrics must report the live accuracy of both versions, equal to what the
// feedback responses said. The wall time of each step is reported (MESSAGE), not asserted.
//
// Training runs with --threads 1 and a fixed seed, and the requests are sent in a fixed order,
// so the models (and so the gate's decisions) are the same on every run.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "simdnn/idx.h"
#include "simdnn/model_file.h"
#include "simdnn/prediction_store.h"
#include "tools/tests/http_client.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_retraining_loop {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
using simdnn::test::HttpClient;
using simdnn::test::TempDir;

const fs::path kFashion = "/usr/share/datasets/fashion-mnist";
constexpr size_t kV1Train = 6000;      // v1's training images: the first of the train split
constexpr size_t kTrafficBefore = 1000;  // held-out images sent to v1, with feedback
constexpr size_t kTrafficAfter = 200;    // held-out images sent to v2, with feedback
constexpr size_t kPixels = 28 * 28;
// Liveness bounds for the polling loops (the store's writer, serve's repository poller):
// generous, since the machine may be loaded; they only bound a failure.
constexpr auto kDeadline = 40s;

// Images [begin, begin + count) of `d` with their labels.
simdnn::Dataset slice(const simdnn::Dataset& d, size_t begin, size_t count) {
  REQUIRE(begin + count <= d.images.count);
  simdnn::Dataset out;
  out.images = {count, d.images.rows, d.images.cols, {}};
  const auto* p = d.images.pixels.data() + begin * kPixels;
  out.images.pixels.assign(p, p + count * kPixels);
  out.labels.labels.assign(d.labels.labels.begin() + static_cast<std::ptrdiff_t>(begin),
                           d.labels.labels.begin() + static_cast<std::ptrdiff_t>(begin + count));
  return out;
}

// An MNIST-format directory: DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte.
void write_mnist_dir(const fs::path& dir, const simdnn::Dataset& train,
                     const simdnn::Dataset& test) {
  fs::create_directories(dir);
  simdnn::write_idx_images(dir / "train-images-idx3-ubyte", train.images);
  simdnn::write_idx_labels(dir / "train-labels-idx1-ubyte", train.labels);
  simdnn::write_idx_images(dir / "t10k-images-idx3-ubyte", test.images);
  simdnn::write_idx_labels(dir / "t10k-labels-idx1-ubyte", test.labels);
}

// One image as an Open Inference Protocol request: UINT8 pixels, the model's input as is
// (no preprocessing), which is also what the store keeps with --store-inputs.
std::string infer_body(const simdnn::Dataset& d, size_t index) {
  const auto* p = d.images.pixels.data() + index * kPixels;
  return json{{"inputs", {{{"name", "input"},
                           {"shape", {1, kPixels}},
                           {"datatype", "UINT8"},
                           {"data", std::vector<int>(p, p + kPixels)}}}}}
      .dump();
}

// `train` with the flags every run here shares: one thread (bit-for-bit reproducible), no
// progress bar, the checkpoint outside the model repository.
simdnn::test::CommandResult train(const fs::path& scratch, const std::string& name,
                                  std::vector<std::string> args) {
  args.insert(args.end(), {"--threads", "1", "--no-progress", "--class-names", "fashion",
                           "--checkpoint", (scratch / (name + ".ckpt")).string()});
  return simdnn::test::run_tool(SIMDNN_TRAIN_BIN, args, scratch);
}

// A Prometheus sample's value, or nullopt when the series is absent.
std::optional<double> metric(const std::string& text, const std::string& series) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

template <class F>
bool eventually(F&& done) {
  const auto deadline = Clock::now() + kDeadline;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(50ms);
  }
  return true;
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Sends traffic[begin, begin + count) to the service with request ids "<prefix><index>", each
// followed by feedback with its true label; REQUIREs 200 and `version` on every response.
// Returns whether each prediction was right, as the feedback responses said.
std::vector<bool> send_with_feedback(HttpClient& client, const simdnn::Dataset& traffic,
                                     size_t begin, size_t count, const std::string& prefix,
                                     const std::string& version) {
  std::vector<bool> correct;
  for (size_t i = begin; i < begin + count; ++i) {
    const std::string id = prefix + std::to_string(i);
    const auto r = client.post("/v2/models/fashion/infer", infer_body(traffic, i),
                               "application/json", {{"X-Request-Id", id}});
    REQUIRE_MESSAGE(r, client.last_error());
    REQUIRE_MESSAGE(r->status == 200, r->body);
    const json j = json::parse(r->body);
    REQUIRE(j.at("model_version") == version);
    const int label = traffic.labels.labels[i];
    const auto fb = client.post("/v2/models/fashion/feedback",
                                json{{"request_id", id}, {"label", label}}.dump(),
                                "application/json");
    REQUIRE_MESSAGE(fb, client.last_error());
    REQUIRE_MESSAGE(fb->status == 200, fb->body);
    const json f = json::parse(fb->body);
    REQUIRE(f.at("model_version") == version);
    correct.push_back(f.at("correct").get<bool>());
  }
  return correct;
}

// The fraction of true values among the last `window` (serve's --accuracy-window default).
double last_accuracy(const std::vector<bool>& correct, size_t window = 200) {
  const size_t n = std::min(window, correct.size());
  REQUIRE(n > 0);
  return static_cast<double>(std::count(correct.end() - static_cast<std::ptrdiff_t>(n),
                                        correct.end(), true)) /
         static_cast<double>(n);
}

}  // namespace

TEST_CASE("retraining loop: train v1, serve, feedback, export, fine-tune v2, promote, hot swap "
          "with zero failed requests, live accuracy per version") {
  const auto start = Clock::now();
  std::vector<std::pair<std::string, double>> timings;
  auto step = [&, t = Clock::now()](const std::string& name) mutable {
    timings.emplace_back(name, seconds_since(t));
    t = Clock::now();
  };

  TempDir dir("retraining-loop");
  const fs::path v1data = dir / "v1-data", repo = dir / "repo", db = dir / "predictions.db";
  const fs::path exported = dir / "export", cand2 = dir / "candidate-2.safetensors";
  const fs::path v1_model = repo / "fashion" / "1" / "model.safetensors";

  // 1. Data: v1 trains on the first 6,000 training images (tested on the 10k test set); the
  // traffic is the next 1,200, which v1 never saw.
  const simdnn::Dataset all = simdnn::load_mnist_dir(kFashion, "train");
  const simdnn::Dataset test = simdnn::load_mnist_dir(kFashion, "t10k");
  write_mnist_dir(v1data, slice(all, 0, kV1Train), test);
  const simdnn::Dataset traffic = slice(all, kV1Train, kTrafficBefore + kTrafficAfter);
  step("data");

  // 2. v1, straight into the repository's layout.
  fs::create_directories(v1_model.parent_path());
  {
    const auto r = train(dir.path(), "v1", {"--data", v1data.string(), "--epochs", "2",
                                            "--seed", "1", "--out", v1_model.string()});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    REQUIRE(simdnn::load_model(v1_model).info().version == "1");
  }
  step("train v1");

  // 3. The service: the repository polled every second, every prediction stored with its input.
  simdnn::test::ServeProcess serve;
  serve.start(SIMDNN_SERVE_BIN,
              {"--model-repository", repo.string(), "--port", "0", "--threads", "2", "--store",
               db.string(), "--store-inputs", "--poll-seconds", "1"},
              dir / "serve.err");
  HttpClient client("127.0.0.1", serve.port, 10s);
  step("start serve");

  // 4. Held-out images as requests, each with its true label as feedback.
  const std::vector<bool> v1_correct =
      send_with_feedback(client, traffic, 0, kTrafficBefore, "t-", "1");
  step("1000 requests + feedback to v1");

  // 5. Once the store's writer has committed them (it batches), export them merged with v1's data.
  {
    size_t stored = 0;
    const bool committed = eventually([&] {
      size_t n = 0;
      try {
        simdnn::for_each_labelled_prediction(db, {.model = "fashion", .version = "1"},
                                             [&](const simdnn::LabelledPrediction& row) {
                                               if (!row.input.empty()) ++n;
                                             });
      } catch (const std::exception&) {
        return false;  // not created yet
      }
      stored = n;
      return n == kTrafficBefore;
    });
    CAPTURE(stored);
    REQUIRE(committed);
    // What the store kept is exactly what was sent, under the request's id, with its label.
    {
      std::vector<simdnn::LabelledPrediction> rows;
      simdnn::for_each_labelled_prediction(
          db, {.model = "fashion", .version = "1"},
          [&](const simdnn::LabelledPrediction& row) { rows.push_back(row); });
      REQUIRE(rows.size() == kTrafficBefore);
      for (const simdnn::LabelledPrediction& row : rows) {
        CAPTURE(row.request_id);
        const size_t i = std::stoul(row.request_id.substr(2));
        REQUIRE(i < kTrafficBefore);
        const auto* p = traffic.images.pixels.data() + i * kPixels;
        CHECK(row.input == std::vector<uint8_t>(p, p + kPixels));
        CHECK(row.label == traffic.labels.labels[i]);
      }
    }
    json exported_report;
    {
      const auto r = simdnn::test::run_tool(
          SIMDNN_EXPORT_DATA_BIN,
          {"--store", db.string(), "--out", exported.string(), "--model", "fashion", "--merge",
           v1data.string(), "--model-file", v1_model.string(), "--json"},
          dir.path());
      REQUIRE_MESSAGE(r.exit_code == 0, r.err);
      exported_report = json::parse(r.out);
    }
    CAPTURE(exported_report.dump());
    CHECK(exported_report.at("labelled_rows") == kTrafficBefore);
    CHECK(exported_report.at("skipped_without_input") == 0);
    CHECK(exported_report.at("skipped_size_mismatch") == 0);
    CHECK(exported_report.at("skipped_bad_label") == 0);
    CHECK(exported_report.at("merge_rows") == kV1Train);
    CHECK(exported_report.at("test_copied") == test.images.count);
    {
      // Every class got feedback (the traffic has all ten), and the table adds up.
      const json& classes = exported_report.at("classes");
      REQUIRE(classes.size() == 10);
      std::vector<size_t> sent_per_class(10, 0);
      for (size_t i = 0; i < kTrafficBefore; ++i) ++sent_per_class[traffic.labels.labels[i]];
      size_t feedback = 0, total = 0;
      for (const json& c : classes) {
        const size_t k = c.at("class").get<size_t>();
        REQUIRE(k < 10);
        CHECK(c.at("from_feedback").get<size_t>() == sent_per_class[k]);
        CHECK(c.at("from_feedback").get<size_t>() > 0);
        feedback += c.at("from_feedback").get<size_t>();
        total += c.at("total").get<size_t>();
      }
      CHECK(feedback == kTrafficBefore);
      CHECK(total == exported_report.at("written").get<size_t>());
      CHECK(simdnn::load_mnist_dir(exported, "train").images.count == total);
      CHECK(simdnn::load_mnist_dir(exported, "t10k").images.count == test.images.count);
    }
  }  // the report's CAPTURE ends here
  step("wait for the store + export-data");

  // 6-8 under load: one keep-alive client sends requests all along, and records every answer.
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0}, failed{0}, v2_answers{0}, went_back{0};
  std::string first_failure;  // written by the load thread only, read after join
  std::thread load([&] {
    HttpClient c("127.0.0.1", serve.port, 10s);
    bool saw_v2 = false;
    // Bounded: a stalled test stops sending after this many.
    for (size_t n = 0; !stop.load() && n < 20000; ++n) {
      const size_t i = kTrafficBefore + n % kTrafficAfter;
      const auto r = c.post("/v2/models/fashion/infer", infer_body(traffic, i), "application/json");
      ++answered;
      std::string version;
      if (r && r->status == 200) {
        try {
          version = json::parse(r->body).at("model_version").get<std::string>();
        } catch (const std::exception&) {
        }
      }
      if (version != "1" && version != "2") {
        if (failed++ == 0) {
          first_failure = r ? std::to_string(r->status) + " " + r->body.substr(0, 300)
                            : "no response: " + c.last_error();
        }
        continue;
      }
      if (version == "2") {
        saw_v2 = true;
        ++v2_answers;
      } else if (saw_v2) {
        ++went_back;  // v1 again after v2 answered: the swap must be one-way
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  struct JoinOnExit {
    std::atomic<bool>& stop;
    std::thread& t;
    ~JoinOnExit() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join_on_exit{stop, load};

  // 6. Fine-tune v2 from v1 on the exported data.
  {
    const auto r = train(dir.path(), "candidate-2",
                         {"--data", exported.string(), "--init-from", v1_model.string(),
                          "--epochs", "1", "--seed", "2", "--out", cand2.string()});
    REQUIRE_MESSAGE(r.exit_code == 0, r.err);
    const simdnn::ModelInfo info = simdnn::load_model(cand2).info();
    CHECK(info.version == "2");
    const json provenance = json::parse(info.provenance);
    CHECK(provenance.at("parent_version") == "1");
    CHECK(provenance.at("version") == "2");
  }
  step("train v2 --init-from v1");

  // 7. The gate, on v1's test split (not in the exported training data's train split).
  {
    const auto r = simdnn::test::run_tool(
        SIMDNN_PROMOTE_BIN,
        {"--candidate", cand2.string(), "--repository", repo.string(), "--name", "fashion",
         "--data", v1data.string(), "--json"},
        dir.path());
    CAPTURE(r.err);
    CAPTURE(r.out);
    REQUIRE(r.exit_code == 0);
    const json report = json::parse(r.out);
    CHECK(report.at("decision") == "promoted");
    CHECK(report.at("live_version") == 1);
    CHECK(report.at("version") == 2);
    CHECK(report.at("samples") == test.images.count);
    MESSAGE("gate: v1 accuracy " << report.at("live_metrics").at("accuracy").get<double>()
                                 << ", v2 accuracy "
                                 << report.at("candidate_metrics").at("accuracy").get<double>()
                                 << ", b=" << report.at("b") << " c=" << report.at("c")
                                 << " p=" << report.at("p_value"));
    REQUIRE(fs::exists(repo / "fashion" / "2" / "model.safetensors"));
    CHECK(simdnn::test::read_text(repo / "fashion" / "2" / "model.safetensors") ==
          simdnn::test::read_text(cand2));
  }
  step("promote");

  // 8. serve picks v2 up by polling; the load goes on a little after the first v2 answer.
  REQUIRE(eventually([&] { return v2_answers.load() >= 20 || !serve.running(); }));
  REQUIRE(serve.running());
  stop = true;
  load.join();
  step("v2 live (polling)");
  {
    CAPTURE(first_failure);
    CHECK(failed.load() == 0);
    CHECK(went_back.load() == 0);
    CHECK(answered.load() > v2_answers.load());  // v1 answered during 6-7, then v2
  }
  MESSAGE("requests during fine-tune, gate and swap: " << answered.load() << " ("
                                                      << v2_answers.load() << " by v2), failed "
                                                      << failed.load());

  // 9. Feedback on v2's predictions; /metrics has each version's live accuracy, and it is what
  // the feedback responses said (the last --accuracy-window = 200 feedbacks of each version).
  const std::vector<bool> v2_correct =
      send_with_feedback(client, traffic, kTrafficBefore, kTrafficAfter, "u-", "2");
  const auto m = client.get("/metrics");
  REQUIRE(m);
  REQUIRE(m->status == 200);
  const auto acc1 = metric(m->body, R"(model_live_accuracy{model="fashion",version="1"})");
  const auto acc2 = metric(m->body, R"(model_live_accuracy{model="fashion",version="2"})");
  REQUIRE(acc1);
  REQUIRE(acc2);
  CHECK(*acc1 == doctest::Approx(last_accuracy(v1_correct)));
  CHECK(*acc2 == doctest::Approx(last_accuracy(v2_correct)));
  CHECK(*acc1 > 0.5);
  CHECK(*acc2 > 0.5);
  const auto fb2_right =
      metric(m->body, R"(model_feedback_total{model="fashion",outcome="correct",version="2"})");
  const auto fb2_wrong =
      metric(m->body, R"(model_feedback_total{model="fashion",outcome="incorrect",version="2"})");
  CHECK(fb2_right.value_or(0) + fb2_wrong.value_or(0) == kTrafficAfter);
  step("200 requests + feedback to v2, /metrics");
  MESSAGE("live accuracy: v1 " << *acc1 << ", v2 " << *acc2);

  std::string report;
  for (const auto& [name, s] : timings) report += "\n  " + name + ": " + std::to_string(s) + " s";
  MESSAGE("retraining loop wall time " << seconds_since(start) << " s:" << report);
}

TEST_CASE("retraining loop: a candidate trained on shuffled labels is refused by the gate, "
          "the repository unchanged") {
  TempDir dir("retraining-refused");
  const fs::path v1data = dir / "v1-data", shuffled = dir / "shuffled-data", repo = dir / "repo";
  const fs::path v1_model = repo / "fashion" / "1" / "model.safetensors";
  const fs::path bad = dir / "shuffled.safetensors";

  const simdnn::Dataset test = simdnn::load_mnist_dir(kFashion, "t10k");
  const simdnn::Dataset train_set = slice(simdnn::load_mnist_dir(kFashion, "train"), 0, kV1Train);
  write_mnist_dir(v1data, train_set, test);
  // The same images with their labels permuted (Fisher-Yates with a fixed LCG: the same
  // permutation everywhere): the labels no longer say anything about the images.
  simdnn::Dataset permuted = train_set;
  uint64_t state = 12345;
  std::vector<uint8_t>& labels = permuted.labels.labels;
  REQUIRE(labels.size() == kV1Train);
  for (size_t n = kV1Train; n > 1; --n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    std::swap(labels[n - 1], labels[(state >> 33) % n]);
  }
  size_t unchanged = 0;
  for (size_t i = 0; i < kV1Train; ++i) {
    unchanged += permuted.labels.labels[i] == train_set.labels.labels[i];
  }
  CHECK(unchanged < kV1Train / 5);  // about a tenth keep their label by chance
  write_mnist_dir(shuffled, permuted, test);

  fs::create_directories(v1_model.parent_path());
  const auto v1 = train(dir.path(), "v1", {"--data", v1data.string(), "--epochs", "1", "--seed",
                                           "1", "--out", v1_model.string()});
  REQUIRE_MESSAGE(v1.exit_code == 0, v1.err);
  const auto worse = train(dir.path(), "shuffled", {"--data", shuffled.string(), "--epochs", "1",
                                                    "--seed", "1", "--out", bad.string()});
  REQUIRE_MESSAGE(worse.exit_code == 0, worse.err);

  const auto before = simdnn::test::directory_snapshot(repo);
  const auto r = simdnn::test::run_tool(
      SIMDNN_PROMOTE_BIN,
      {"--candidate", bad.string(), "--repository", repo.string(), "--name", "fashion", "--data",
       v1data.string(), "--json"},
      dir.path());
  CAPTURE(r.err);
  CAPTURE(r.out);
  CHECK(r.exit_code == 2);
  const json report = json::parse(r.out);
  CHECK(report.at("decision") == "refused");
  CHECK(report.at("reason").get<std::string>().find("significantly worse") != std::string::npos);
  CHECK(report.at("version").is_null());
  CHECK(report.at("live_version") == 1);
  CHECK(report.at("b").get<int>() > report.at("c").get<int>());
  CHECK(report.at("p_value").get<double>() < 0.05);
  CHECK(report.at("live_metrics").at("accuracy").get<double>() > 0.6);
  CHECK(report.at("candidate_metrics").at("accuracy").get<double>() < 0.3);
  MESSAGE("gate: live accuracy " << report.at("live_metrics").at("accuracy").get<double>()
                                 << ", shuffled-label candidate "
                                 << report.at("candidate_metrics").at("accuracy").get<double>());
  CHECK(simdnn::test::directory_snapshot(repo) == before);
  CHECK(simdnn::test::directory_snapshot(repo).size() == 3);  // fashion/, fashion/1/, fashion/1/model.safetensors
}

}  // namespace test_retraining_loop
