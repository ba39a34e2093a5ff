// serve with --store: every prediction lands in the SQLite store with its model, version and
// request id (inputs only with --store-inputs), POST /v2/models/{name}/feedback answers
// 200/404/409/400/503 as documented, the live-quality metrics follow, and a kill -9 of the
// server leaves a database that opens cleanly with everything but the last batch.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "simdnn/model_file.h"
#include "tools/tests/http_client.h"
#include "tools/tests/tools_test_support.h"

namespace simdnn::test {
namespace test_serve_store {  // one per file: the test programs are unity builds

using json = nlohmann::json;
using namespace std::chrono_literals;

// Polls `done` every 20 ms for up to 15 s (45 s sanitized): a liveness bound.
template <class F>
bool eventually_true(F&& done) {
  const auto deadline = std::chrono::steady_clock::now() + (kSanitized ? 45s : 15s);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

long long count_rows(const std::filesystem::path& db_path, const std::string& where = "1") {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* s = nullptr;
  const std::string sql = "SELECT count(*) FROM predictions WHERE " + where;
  REQUIRE_MESSAGE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK,
                  sqlite3_errmsg(db));
  long long n = -1;
  if (sqlite3_step(s) == SQLITE_ROW) n = sqlite3_column_int64(s, 0);
  sqlite3_finalize(s);
  sqlite3_close(db);
  return n;
}

std::string text_of(const std::filesystem::path& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  sqlite3_stmt* s = nullptr;
  REQUIRE_MESSAGE(sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK,
                  sqlite3_errmsg(db));
  std::string out;
  if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL) {
    out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
  }
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

std::string pixels_body(int variant) {
  const GrayImage img = make_stroke_image(variant);
  std::string body = "{\"pixels\":[";
  for (size_t k = 0; k < img.pixels.size(); ++k) {
    body += (k ? "," : "") + std::to_string(img.pixels[k]);
  }
  return body + "]}";
}

double metric(const std::string& text, const std::string& series) {
  for (const std::string& line : split_lines(text)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

struct Served {
  TempDir dir{"serve-store"};
  ServeProcess proc;
  std::filesystem::path db = dir / "predictions.db";
  void start(std::vector<std::string> extra) {
    Model model = make_test_model(7, "v7");
    std::vector<uint8_t> pixels, labels;
    for (int i = 0; i < 30; ++i) {
      const GrayImage img = make_stroke_image(i);
      pixels.insert(pixels.end(), img.pixels.begin(), img.pixels.end());
      labels.push_back(static_cast<uint8_t>(i % 10));
    }
    model.info().reference_profile = reference_profile({pixels, labels, 784}, 10);
    save_model(dir / "digits.safetensors", model);
    std::vector<std::string> args = {"--model", (dir / "digits.safetensors").string(),
                                     "--port", "0", "--threads", "2"};
    args.insert(args.end(), extra.begin(), extra.end());
    proc.start(SIMDNN_SERVE_BIN, args, dir / "serve.err");
  }
};

TEST_CASE("serve --store: predictions are stored, feedback is 200/409/404/400, metrics follow") {
  Served s;
  s.start({"--store", s.db.string(), "--drift-window", "50"});
  HttpClient client("127.0.0.1", s.proc.port, 10s);
  std::vector<int> classes;
  for (int i = 0; i < 60; ++i) {
    auto r = client.post("/predict", pixels_body(i % 13), "application/json",
                         {{"X-Request-Id", "p-" + std::to_string(i)}});
    REQUIRE(r);
    REQUIRE(r->status == 200);
    classes.push_back(json::parse(r->body)["predictions"][0]["class"].get<int>());
  }
  // A batch of two over the Open Inference Protocol: rows stored as "id" and "id#1".
  {
    const GrayImage a = make_stroke_image(1), b = make_stroke_image(2);
    json body = {{"inputs", {{{"name", "input"}, {"shape", {2, 784}}, {"datatype", "UINT8"},
                               {"data", json::array()}}}}};
    for (uint8_t v : a.pixels) body["inputs"][0]["data"].push_back(v);
    for (uint8_t v : b.pixels) body["inputs"][0]["data"].push_back(v);
    auto r = client.post("/v2/models/digits/infer", body.dump(), "application/json",
                         {{"X-Request-Id", "batch-1"}});
    REQUIRE(r);
    REQUIRE_MESSAGE(r->status == 200, r->body);
  }

  // Feedback right after the prediction: found even if the row is still queued.
  auto fb = [&](const std::string& body) {
    auto r = client.post("/v2/models/digits/feedback", body, "application/json");
    REQUIRE(r);
    return *r;
  };
  auto ok = fb(R"({"request_id":"p-0","label":)" + std::to_string(classes[0]) + "}");
  CHECK_MESSAGE(ok.status == 200, ok.body);
  const json okj = json::parse(ok.body);
  CHECK(okj["correct"] == true);
  CHECK(okj["model_version"] == "v7");
  CHECK(okj["predicted_class"] == classes[0]);
  // A class name works as a label ("0".."9" for this model); this one is wrong.
  const std::string wrong = std::to_string((classes[1] + 1) % 10);
  auto by_name = fb(R"({"request_id":"p-1","label":")" + wrong + "\"}");
  CHECK_MESSAGE(by_name.status == 200, by_name.body);
  CHECK(json::parse(by_name.body)["correct"] == false);
  CHECK(fb(R"({"request_id":"p-0","label":3})").status == 409);
  CHECK(fb(R"({"request_id":"never-made","label":3})").status == 404);
  CHECK(fb(R"({"request_id":"batch-1#1","label":3})").status == 200);
  CHECK(fb(R"({"request_id":"p-2","label":10})").status == 400);
  CHECK(fb(R"({"request_id":"p-2","label":-1})").status == 400);
  CHECK(fb(R"({"request_id":"p-2","label":"Sneaker"})").status == 400);
  CHECK(fb(R"({"request_id":"p-2","label":2.5})").status == 400);
  CHECK(fb(R"({"request_id":"p-2"})").status == 400);
  CHECK(fb(R"({"label":2})").status == 400);
  CHECK(fb(R"({"request_id":"p-2","label":)").status == 400);
  CHECK(fb("[1,2]").status == 400);
  {
    auto r = client.post("/v2/models/other/feedback", R"({"request_id":"p-2","label":1})",
                         "application/json");
    REQUIRE(r);
    CHECK(r->status == 404);
    auto g = client.get("/v2/models/digits/feedback");
    REQUIRE(g);
    CHECK(g->status == 405);
  }

  auto m = client.get("/metrics");
  REQUIRE(m);
  const std::string& text = m->body;
  double total = 0;
  for (int c = 0; c < 10; ++c) {
    const double v = metric(text, "model_predictions_total{class=\"" + std::to_string(c) +
                                      "\",model=\"digits\",version=\"v7\"}");
    CHECK(v >= 0);
    total += v;
  }
  CHECK(total == 62);
  CHECK(metric(text, R"(model_prediction_confidence_count{model="digits",version="v7"})") == 62);
  CHECK(metric(text, R"(model_feedback_total{model="digits",outcome="correct",version="v7"})") +
            metric(text,
                   R"(model_feedback_total{model="digits",outcome="incorrect",version="v7"})") ==
        3);
  CHECK(metric(text, R"(model_live_accuracy{model="digits",version="v7"})") >= 1.0 / 3 - 1e-9);
  // The model has a reference profile and the window (50) is full: drift is reported.
  CHECK(metric(text, R"(model_prediction_drift_psi{model="digits",version="v7"})") >= 0);
  CHECK(metric(text, R"(model_input_drift_psi{model="digits",version="v7"})") >= 0);
  CHECK(metric(text, "prediction_store_dropped_total") == 0);

  // Every prediction is in the store with its model, version and id; no inputs by default.
  REQUIRE(eventually_true([&] { return count_rows(s.db) == 62; }));
  CHECK(count_rows(s.db, "model='digits' AND version='v7'") == 62);
  CHECK(count_rows(s.db, "request_id='batch-1#1' AND feedback_label=3") == 1);
  CHECK(count_rows(s.db, "input IS NOT NULL") == 0);
  CHECK(count_rows(s.db, "request_id='p-0' AND feedback_label=" + std::to_string(classes[0])) == 1);
  CHECK(text_of(s.db, "SELECT top_k FROM predictions WHERE request_id='p-5'").rfind(
            "[{\"class\":" + std::to_string(classes[5]) + ",", 0) == 0);
}

TEST_CASE("serve --store-inputs stores the pixels, without --store, feedback is 503") {
  {
    Served s;
    s.start({"--store", s.db.string(), "--store-inputs"});
    HttpClient client("127.0.0.1", s.proc.port, 10s);
    auto r = client.post("/predict", pixels_body(3), "application/json", {{"X-Request-Id", "in-1"}});
    REQUIRE(r);
    REQUIRE(r->status == 200);
    REQUIRE(eventually_true([&] { return count_rows(s.db) == 1; }));
    const GrayImage img = make_stroke_image(3);
    std::string hex;
    char buf[3];
    for (uint8_t v : img.pixels) {
      std::snprintf(buf, sizeof buf, "%02X", v);
      hex += buf;
    }
    CHECK(text_of(s.db, "SELECT hex(input) FROM predictions WHERE request_id='in-1'") == hex);
  }
  {
    Served s;
    s.start({});
    HttpClient client("127.0.0.1", s.proc.port, 10s);
    auto r = client.post("/v2/models/digits/feedback", R"({"request_id":"x","label":1})",
                         "application/json");
    REQUIRE(r);
    CHECK(r->status == 503);
    auto m = client.get("/metrics");
    REQUIRE(m);
    CHECK(m->body.find("prediction_store_") == std::string::npos);
  }
  // Bad flags exit 1 with a message; a store that cannot be opened exits 4 (I/O).
  TempDir dir("serve-store-flags");
  save_model(dir / "m.safetensors", make_test_model());
  const auto bad = run_tool(SIMDNN_SERVE_BIN, {"--model", (dir / "m.safetensors").string(),
                                               "--store-inputs"},
                            dir.path());
  CHECK(bad.exit_code != 0);
  CHECK(bad.err.find("--store") != std::string::npos);
  const auto unopenable = run_tool(
      SIMDNN_SERVE_BIN, {"--model", (dir / "m.safetensors").string(), "--port", "0", "--store",
                         (dir / "no-such-dir" / "p.db").string()},
      dir.path());
  CHECK(unopenable.exit_code == 4);  // I/O
  CHECK(unopenable.err.find("no-such-dir") != std::string::npos);
}

TEST_CASE("serve --store: kill -9 under load loses at most the last batch, the database opens "
          "cleanly") {
  Served s;
  s.start({"--store", s.db.string()});
  HttpClient client("127.0.0.1", s.proc.port, 10s);
  int answered = 0;
  for (int i = 0; i < 400; ++i) {
    auto r = client.post("/predict", pixels_body(i % 11), "application/json",
                         {{"X-Request-Id", "k-" + std::to_string(i)}});
    REQUIRE(r);
    answered += r->status == 200;
  }
  REQUIRE(answered == 400);
  // Wait for the writer to commit what it has (stored rows stop growing), then stream more and
  // kill the server while the newest requests are in its queue.
  REQUIRE(eventually_true([&] { return count_rows(s.db) == 400; }));
  for (int i = 400; i < 450; ++i) {
    auto r = client.post("/predict", pixels_body(i % 11), "application/json",
                         {{"X-Request-Id", "k-" + std::to_string(i)}});
    REQUIRE(r);
  }
  REQUIRE(::kill(s.proc.pid, SIGKILL) == 0);
  CHECK(s.proc.wait_exit(10) == 128 + SIGKILL);
  CHECK(text_of(s.db, "PRAGMA integrity_check") == "ok");
  const long long rows = count_rows(s.db);
  CHECK(rows >= 400);
  CHECK(rows <= 450);
  // serve opens it again and carries on.
  ServeProcess again;
  again.start(SIMDNN_SERVE_BIN, {"--model", (s.dir / "digits.safetensors").string(), "--port",
                                 "0", "--store", s.db.string()});
  HttpClient c2("127.0.0.1", again.port, 10s);
  auto r = c2.post("/predict", pixels_body(1), "application/json", {{"X-Request-Id", "after"}});
  REQUIRE(r);
  CHECK(r->status == 200);
  auto f = c2.post("/v2/models/digits/feedback", R"({"request_id":"k-10","label":1})",
                   "application/json");
  REQUIRE(f);
  CHECK(f->status == 200);  // a prediction made before the crash takes feedback
}

}  // namespace test_serve_store
}  // namespace simdnn::test
