// The prediction service: in-process PredictionServer on a free loopback port, called over
// HTTP; and the serve binary for start-up and SIGTERM draining.
#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "simdnn/image.h"
#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/serving/server.h"
#include "tools/tests/http_client.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_serve {

namespace {

using json = nlohmann::json;
using simdnn::serving::PredictionServer;
using simdnn::serving::ServeOptions;
using simdnn::test::contains;
using simdnn::test::HttpClient;
using simdnn::test::TempDir;

constexpr size_t kFeatures = 784;

ServeOptions test_options() {
  ServeOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.threads = 4;
  o.max_batch = 8;
  o.max_body_bytes = 64 * 1024;
  return o;
}

// An in-process server on a free port, and a reference copy of the same model.
struct TestServer {
  explicit TestServer(ServeOptions options = test_options())
      : server(simdnn::test::make_test_model(), options), reference(simdnn::test::make_test_model()) {
    port = server.start();
    REQUIRE(port > 0);
  }
  HttpClient client() const { return HttpClient("127.0.0.1", port, std::chrono::seconds(5)); }

  PredictionServer server;
  simdnn::Model reference;
  int port = 0;
};

std::vector<int> random_pixels(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<int> px(kFeatures);
  for (int& v : px) v = dist(rng);
  return px;
}

// The reference model's probabilities for rows of 0..255 pixel values.
std::vector<std::vector<float>> reference_probabilities(simdnn::Model& model,
                                                        const std::vector<std::vector<int>>& rows) {
  simdnn::Tensor x(simdnn::Shape{rows.size(), kFeatures});
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t i = 0; i < kFeatures; ++i) {
      x[r * kFeatures + i] = static_cast<float>(rows[r][i]) * model.info().pixel_scale;
    }
  }
  const simdnn::Tensor& p = model.predict(x, 1);
  std::vector<std::vector<float>> out;
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto row = p.row(r);
    out.emplace_back(row.begin(), row.end());
  }
  return out;
}

// Exact comparison: the server prints each float in its shortest round-trip form.
void check_prediction(const json& prediction, const std::vector<float>& expected) {
  const json& probs = prediction.at("probabilities");
  REQUIRE(probs.size() == expected.size());
  for (size_t c = 0; c < expected.size(); ++c) {
    CAPTURE(c);
    CHECK(probs[c].get<float>() == expected[c]);
  }
  const size_t best = std::max_element(expected.begin(), expected.end()) - expected.begin();
  CHECK(prediction.at("class") == best);
  CHECK(prediction.at("label") == std::to_string(best));
  const json& top = prediction.at("top_k");
  REQUIRE(top.size() == 3);
  CHECK(top[0].at("class") == best);
  CHECK(top[0].at("probability").get<float>() == expected[best]);
  CHECK(top[1].at("probability").get<float>() <= top[0].at("probability").get<float>());
}

// The value of the sample line that starts with `series` ("name{labels}"), or -1 if absent.
double metric_value(const std::string& text, const std::string& series) {
  for (const std::string& line : simdnn::test::split_lines(text)) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

json post_json(HttpClient& client, const json& body, int expected_status) {
  auto res = client.post("/predict", body.dump(), "application/json");
  REQUIRE(res);
  CAPTURE(res->body);
  CHECK(res->status == expected_status);
  CHECK(res->header("Content-Type") == "application/json");
  return json::parse(res->body);
}

}  // namespace

TEST_CASE("serve: single and batch JSON requests give model.predict's probabilities") {
  TestServer ts;
  auto client = ts.client();

  const std::vector<int> one = random_pixels(1);
  const json single = post_json(client, {{"pixels", one}}, 200);
  CHECK(single.at("model_version") == "test-v1");
  REQUIRE(single.at("predictions").size() == 1);
  check_prediction(single.at("predictions")[0], reference_probabilities(ts.reference, {one})[0]);

  std::vector<std::vector<int>> rows;
  for (uint64_t s = 10; s < 15; ++s) rows.push_back(random_pixels(s));
  const json batch = post_json(client, {{"instances", rows}}, 200);
  const auto expected = reference_probabilities(ts.reference, rows);
  REQUIRE(batch.at("predictions").size() == rows.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    CAPTURE(r);
    check_prediction(batch.at("predictions")[r], expected[r]);
  }

  // Fractional pixel values and whitespace are fine; ?top_k= changes the list length.
  std::string spaced = "{ \"pixels\" : [ 12.5";
  for (size_t i = 1; i < kFeatures; ++i) spaced += " , 0";
  spaced += " ] }";
  auto res = client.post("/predict?top_k=10", spaced, "application/json; charset=utf-8");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  CHECK(json::parse(res->body).at("predictions")[0].at("top_k").size() == 10);
}

TEST_CASE("serve: PNG JPEG and BMP bodies are decoded and resized and auto-inverted") {
  TestServer ts;
  auto client = ts.client();
  const simdnn::GrayImage light_on_dark = simdnn::test::make_stroke_image(5, 56);
  const simdnn::GrayImage dark_on_light = simdnn::test::inverted(light_on_dark);
  // The library's pipeline on the same image (resize, then invert: a light border).
  const std::vector<uint8_t> expected_px = simdnn::prepare_for_model(dark_on_light, 28, 28, simdnn::Invert::kAuto);
  const auto expected =
      reference_probabilities(ts.reference, {std::vector<int>(expected_px.begin(), expected_px.end())})[0];
  const std::vector<uint8_t> twin_px = simdnn::prepare_for_model(light_on_dark, 28, 28, simdnn::Invert::kNo);
  const auto twin = reference_probabilities(ts.reference, {std::vector<int>(twin_px.begin(), twin_px.end())})[0];

  // Dark-on-light PNG: auto-inverted to (nearly) its light-on-dark twin.
  const auto png = simdnn::test::encode_gray(dark_on_light, simdnn::ImageFormat::kPng);
  auto res = ts.client().post("/predict", std::string(png.begin(), png.end()), "image/png");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  const json png_prediction = json::parse(res->body).at("predictions")[0];
  check_prediction(png_prediction, expected);
  for (size_t c = 0; c < twin.size(); ++c) {
    CHECK(png_prediction.at("probabilities")[c].get<float>() == doctest::Approx(twin[c]).epsilon(0.01));
  }

  for (const auto& entry : {std::pair{simdnn::ImageFormat::kJpeg, "image/jpeg"},
                            std::pair{simdnn::ImageFormat::kBmp, "image/bmp"}}) {
    // Plain locals, not structured bindings: clang 14 cannot capture those (CAPTURE does).
    const simdnn::ImageFormat format = entry.first;
    const char* type = entry.second;
    CAPTURE(type);
    const auto bytes = simdnn::test::encode_gray(light_on_dark, format);
    auto r = client.post("/predict", std::string(bytes.begin(), bytes.end()), type);
    REQUIRE(r);
    CHECK(r->status == 200);
    const json p = json::parse(r->body).at("predictions")[0];
    CHECK(p.at("probabilities").size() == 10);
  }
}

TEST_CASE("serve: bad requests get 4xx with a JSON error and the server keeps answering") {
  TestServer ts;  // max_batch 8, max_body_bytes 64 KiB
  auto client = ts.client();
  const std::vector<int> good = random_pixels(3);
  const auto expected = reference_probabilities(ts.reference, {good})[0];

  auto with_value = [&](const std::string& value) {  // good pixels with element 5 replaced
    std::string s = "{\"pixels\":[";
    for (size_t i = 0; i < kFeatures; ++i) {
      if (i) s += ',';
      s += i == 5 ? value : std::to_string(good[i]);
    }
    return s + "]}";
  };
  std::vector<int> short_row(good.begin(), good.end() - 1);
  std::vector<int> long_row = good;
  long_row.push_back(0);
  std::vector<std::vector<int>> nine(9, good);
  std::string deep(20000, '[');  // nesting is refused at the first extra level

  struct Case {
    std::string name, body, type;
    int status;
    std::string message_part;
  };
  const std::vector<Case> cases = {
      {"malformed", "{\"pixels\": [1, 2,", "application/json", 400, "malformed JSON"},
      {"empty body", "", "application/json", 400, "malformed JSON"},
      {"trailing garbage", json{{"pixels", good}}.dump() + "x", "application/json", 400, "malformed"},
      {"top-level array", json(good).dump(), "application/json", 400, "JSON object"},
      {"unknown field", R"({"pixel": [1]})", "application/json", 400, "unknown field"},
      {"no field", "{}", "application/json", 400, "\"pixels\" or \"instances\""},
      {"both fields", json{{"pixels", good}, {"instances", {good}}}.dump(), "application/json", 400, "either"},
      {"short row", json{{"pixels", short_row}}.dump(), "application/json", 400, "783 values"},
      {"long row", json{{"pixels", long_row}}.dump(), "application/json", 400, "more than 784"},
      {"string value", with_value("\"7\""), "application/json", 400, "pixels[5] is a string"},
      {"null value", with_value("null"), "application/json", 400, "pixels[5] is null"},
      {"bool value", with_value("true"), "application/json", 400, "pixels[5] is a boolean"},
      {"non-finite", with_value("1e999"), "application/json", 400, "1e999"},
      {"negative", with_value("-1"), "application/json", 400, "pixels[5] = -1"},
      {"above 255", with_value("256"), "application/json", 400, "0..255"},
      {"nested array", with_value("[1]"), "application/json", 400, "pixels[5] is an array"},
      {"nested object", with_value("{}"), "application/json", 400, "pixels[5] is an object"},
      {"deep nesting", "{\"instances\":" + deep, "application/json", 400, "instances[0][0] is an array"},
      {"pixels not array", R"({"pixels": 5})", "application/json", 400, "\"pixels\" is a number"},
      {"empty instances", R"({"instances": []})", "application/json", 400, "empty"},
      {"instance not array", R"({"instances": [1]})", "application/json", 400, "instances[0] is a number"},
      {"batch too large", json{{"instances", nine}}.dump(), "application/json", 413, "--max-batch"},
      {"body too large", std::string(70 * 1024, ' '), "application/json", 413, "--max-body-bytes"},
      {"unknown type", "hello", "text/plain", 415, "unsupported Content-Type \"text/plain\""},
      {"bad image", "GIF89a but not really", "image/gif", 400, "request body"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.name);
    auto res = client.post("/predict", c.body, c.type);
    REQUIRE(res);
    CAPTURE(res->body);
    CHECK(res->status == c.status);
    CHECK(res->header("Content-Type") == "application/json");
    const json err = json::parse(res->body);
    REQUIRE(err.contains("error"));
    CHECK(contains(err.at("error").get<std::string>(), c.message_part));
  }

  // No Content-Type at all: 415.
  auto untyped = client.post("/predict", "{}", "");
  REQUIRE(untyped);
  CHECK(untyped->status == 415);

  auto bad_top_k = client.post("/predict?top_k=zero", json{{"pixels", good}}.dump(), "application/json");
  REQUIRE(bad_top_k);
  CHECK(bad_top_k->status == 400);

  auto unknown = client.get("/nope");
  REQUIRE(unknown);
  CHECK(unknown->status == 404);
  CHECK(contains(json::parse(unknown->body).at("error").get<std::string>(), "/nope"));
  auto wrong_method = client.get("/predict");
  REQUIRE(wrong_method);
  CHECK(wrong_method->status == 405);

  // Still serving, with the right answer.
  const json after = post_json(client, {{"pixels", good}}, 200);
  check_prediction(after.at("predictions")[0], expected);
}

TEST_CASE("serve: 16 concurrent keep-alive clients x 25 requests all succeed") {
  ServeOptions options = test_options();
  options.threads = 16;
  TestServer ts(options);
  constexpr int kClients = 16, kRequests = 25;
  std::vector<std::vector<int>> inputs;
  for (int c = 0; c < kClients; ++c) inputs.push_back(random_pixels(100 + c));
  const auto expected = reference_probabilities(ts.reference, inputs);
  std::vector<std::string> bodies;
  for (const auto& px : inputs) bodies.push_back(json{{"pixels", px}}.dump());

  std::atomic<int> ok{0}, wrong{0}, failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      HttpClient client("127.0.0.1", ts.port, std::chrono::seconds(10));  // keep-alive, TCP_NODELAY
      for (int i = 0; i < kRequests; ++i) {
        auto res = client.post("/predict", bodies[c], "application/json");
        if (!res || res->status != 200) {
          ++failed;
          continue;
        }
        const json p = json::parse(res->body).at("predictions")[0];
        bool same = true;
        for (size_t k = 0; k < 10; ++k) same &= p.at("probabilities")[k].get<float>() == expected[c][k];
        ++(same ? ok : wrong);
      }
    });
  }
  for (auto& t : clients) t.join();
  CHECK(failed == 0);
  CHECK(wrong == 0);
  CHECK(ok == kClients * kRequests);
}

TEST_CASE("serve: /metrics counts match the requests made and /healthz /readyz answer") {
  TestServer ts;
  auto client = ts.client();
  const json one = {{"pixels", random_pixels(4)}};
  for (int i = 0; i < 5; ++i) post_json(client, one, 200);
  post_json(client, {{"instances", {random_pixels(5), random_pixels(6), random_pixels(7)}}}, 200);
  for (int i = 0; i < 2; ++i) post_json(client, json{{"pixels", {1, 2}}}, 400);
  REQUIRE(client.post("/predict", "x", "text/plain")->status == 415);
  for (int i = 0; i < 3; ++i) {
    auto h = client.get("/healthz");
    REQUIRE(h);
    CHECK(h->status == 200);
    CHECK(json::parse(h->body).at("status") == "ok");
  }
  auto ready = client.get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  CHECK(json::parse(ready->body).at("model_version") == "test-v1");
  REQUIRE(client.get("/no/such/path")->status == 404);

  auto m = client.get("/metrics");
  REQUIRE(m);
  REQUIRE(m->status == 200);
  CHECK(contains(m->header("Content-Type"), "text/plain"));
  const std::string& text = m->body;
  CAPTURE(text);
  CHECK(metric_value(text, R"(http_requests_total{endpoint="/predict",status="200"})") == 6);
  CHECK(metric_value(text, R"(http_requests_total{endpoint="/predict",status="400"})") == 2);
  CHECK(metric_value(text, R"(http_requests_total{endpoint="/predict",status="415"})") == 1);
  CHECK(metric_value(text, R"(http_requests_total{endpoint="/healthz",status="200"})") == 3);
  CHECK(metric_value(text, R"(http_requests_total{endpoint="/readyz",status="200"})") == 1);
  CHECK(metric_value(text, R"(http_requests_total{endpoint="other",status="404"})") == 1);
  // The scrape itself is counted after it is rendered.
  CHECK(metric_value(text, R"(http_requests_total{endpoint="/metrics",status="200"})") == -1);
  CHECK(metric_value(text, R"(model_inference_time_seconds_count{model="model",version="test-v1"})") == 6);
  CHECK(metric_value(text, R"(model_inference_time_seconds_sum{model="model",version="test-v1"})") > 0);
  CHECK(metric_value(text, R"(model_batch_size_count{model="model",version="test-v1"})") == 6);
  CHECK(metric_value(text, R"(model_batch_size_sum{model="model",version="test-v1"})") == 8);
  CHECK(metric_value(text, R"(model_batch_size_bucket{model="model",version="test-v1",le="1"})") == 5);
  CHECK(metric_value(text, "http_requests_in_flight") == 1);  // this scrape
  CHECK(metric_value(text, R"(model_info{classes="10",input="28x28",model="model",version="test-v1"})") == 1);

  auto again = client.get("/metrics");
  REQUIRE(again);
  CHECK(metric_value(again->body, R"(http_requests_total{endpoint="/metrics",status="200"})") == 1);
}

TEST_CASE("serve binary: on SIGTERM it finishes the in-flight request and exits 0") {
  TempDir dir("serve-binary");
  simdnn::Model model = simdnn::test::make_test_model(7, "binary-v2");
  simdnn::save_model(dir / "model.safetensors", model);

  simdnn::test::ServeProcess proc;
  proc.start(SIMDNN_SERVE_BIN, {"--model", (dir / "model.safetensors").string(), "--port", "0", "--threads", "2"});
  HttpClient client("127.0.0.1", proc.port);
  auto ready = client.get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 200);
  CHECK(json::parse(ready->body).at("model_version") == "binary-v2");
  const std::vector<int> px = random_pixels(9);
  const std::string body = json{{"pixels", px}}.dump();
  auto first = client.post("/predict", body, "application/json");
  REQUIRE(first);
  CHECK(first->status == 200);

  // A request in flight: headers and half the body sent, the rest only after SIGTERM.
  using simdnn::test::connect_loopback;
  using simdnn::test::send_all;
  const int fd = connect_loopback(proc.port);
  REQUIRE(fd >= 0);
  const size_t half = body.size() / 2;
  send_all(fd, "POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body.substr(0, half));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  REQUIRE(::kill(proc.pid, SIGTERM) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Stopped accepting: a new connection is refused.
  const int late = connect_loopback(proc.port);
  CHECK(late < 0);
  if (late >= 0) ::close(late);
  send_all(fd, body.substr(half));
  const std::string response = simdnn::test::read_responses(fd, 1, std::chrono::seconds(5));
  ::close(fd);
  CAPTURE(response);
  CHECK(response.rfind("HTTP/1.1 200", 0) == 0);
  const size_t json_start = response.find("\r\n\r\n");
  REQUIRE(json_start != std::string::npos);
  const json answer = json::parse(response.substr(json_start + 4));
  CHECK(answer.at("predictions")[0].at("probabilities") ==
        json::parse(first->body).at("predictions")[0].at("probabilities"));

  CHECK(proc.wait_exit(5.0) == 0);
}

TEST_CASE("serve binary: a model that does not load exits 2 (bad data) naming the file") {
  TempDir dir("serve-bad-model");
  const auto bogus = dir / "bogus.safetensors";
  simdnn::test::write_raw(bogus, {'n', 'o', 'p', 'e'});
  const auto r = simdnn::test::run_tool(SIMDNN_SERVE_BIN, {"--model", bogus.string(), "--port", "0"}, dir.path());
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, bogus.string()));
}

}  // namespace test_serve
