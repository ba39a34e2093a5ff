// The protocol and application layer, in process: PredictionService::handle on constructed
// Requests (no sockets). Open Inference Protocol endpoints, multipart uploads, request ids,
// bearer tokens, the access log and the process metrics.
#include <chrono>
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "serving/access_log.h"
#include "serving/multipart.h"
#include "serving/oip.h"
#include "serving/prediction_service.h"
#include "serving/request_id.h"
#include "simdnn/serving/serve_config.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_serve_protocol {

namespace {

using json = nlohmann::json;
using simdnn::serving::PredictionService;
using simdnn::serving::Reply;
using simdnn::serving::Request;
using simdnn::serving::ServeOptions;

constexpr size_t kFeatures = 784;

std::vector<int> random_pixels(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<int> px(kFeatures);
  for (int& v : px) v = dist(rng);
  return px;
}

std::vector<float> reference(const simdnn::Model& model, const std::vector<std::vector<int>>& rows) {
  simdnn::Tensor x(simdnn::Shape{rows.size(), kFeatures});
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t i = 0; i < kFeatures; ++i) {
      x[r * kFeatures + i] = static_cast<float>(rows[r][i]) * model.info().pixel_scale;
    }
  }
  const simdnn::Tensor p = model.predict(x, 1);
  return std::vector<float>(p.data(), p.data() + p.rows() * p.cols());
}

struct Call {
  std::string method = "POST";
  std::string path;
  std::string body;
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
};

Reply call(PredictionService& service, const Call& c) {
  Request r;
  r.method = c.method;
  r.path = c.path;
  r.query = c.query;
  r.body = c.body;
  r.peer = "127.0.0.1:4242";
  for (const auto& [k, v] : c.headers) r.headers.emplace_back(k, v);
  return service.handle(r);
}

std::string header_of(const Reply& reply, const std::string& name) {
  for (const auto& [k, v] : reply.headers) {
    if (k == name) return v;
  }
  return {};
}

std::string infer_body(const std::vector<std::vector<int>>& rows, const char* datatype,
                       bool nested, const std::string& extra = "") {
  json data = json::array();
  for (const auto& row : rows) {
    json r = json::array();
    for (int v : row) {
      if (std::string(datatype) == "FP32") {
        r.push_back(static_cast<float>(v) * (1.0f / 255.0f));
      } else {
        r.push_back(v);
      }
    }
    if (nested) {
      data.push_back(r);
    } else {
      for (auto& e : r) data.push_back(e);
    }
  }
  json body = {{"inputs", json::array({{{"name", "input"},
                                        {"shape", {rows.size(), kFeatures}},
                                        {"datatype", datatype},
                                        {"data", data}}})}};
  std::string s = body.dump();
  if (!extra.empty()) s.insert(1, extra + ",");
  return s;
}

struct Fixture {
  ServeOptions options;
  simdnn::Model reference_model = simdnn::test::make_test_model();
  std::unique_ptr<PredictionService> service;
  explicit Fixture(ServeOptions o = {}) : options(std::move(o)) {
    options.threads = 2;
    if (options.model_name.empty()) options.model_name = "digits";
    service = std::make_unique<PredictionService>(simdnn::test::make_test_model(), options);
  }
};

}  // namespace

TEST_CASE("serve protocol: OIP health, server and model metadata") {
  Fixture f;
  CHECK(call(*f.service, {"GET", "/v2/health/live"}).status == 200);
  CHECK(call(*f.service, {"GET", "/v2/health/ready"}).status == 200);
  const json server = json::parse(call(*f.service, {"GET", "/v2"}).body);
  CHECK(server.at("name") == "simdnn");
  CHECK(server.contains("version"));
  CHECK(server.at("extensions").is_array());

  for (const std::string path : {"/v2/models/digits", "/v2/models/digits/versions/test-v1"}) {
    const Reply r = call(*f.service, {"GET", path});
    REQUIRE(r.status == 200);
    const json m = json::parse(r.body);
    CHECK(m.at("name") == "digits");
    CHECK(m.at("versions") == json::array({"test-v1"}));
    CHECK(m.at("platform") == "simdnn");
    CHECK(m.at("inputs")[0].at("shape") == json::array({-1, 784}));
    CHECK(m.at("outputs")[0].at("name") == "probabilities");
    CHECK(m.at("outputs")[0].at("shape") == json::array({-1, 10}));
    CHECK(call(*f.service, {"GET", path + "/ready"}).status == 200);
  }
  CHECK(call(*f.service, {"GET", "/v2/models/other"}).status == 404);
  CHECK(call(*f.service, {"GET", "/v2/models/digits/versions/v9"}).status == 404);
  CHECK(call(*f.service, {"GET", "/v2/models/digits/versions/v9/ready"}).status == 404);
  CHECK(call(*f.service, {"GET", "/v2/models/digits/bogus"}).status == 404);
  CHECK(call(*f.service, {"GET", "/v2/models/digits/infer"}).status == 405);
  f.service->stop_ready();
  CHECK(call(*f.service, {"GET", "/v2/health/ready"}).status == 503);
  CHECK(call(*f.service, {"GET", "/v2/health/live"}).status == 200);
}

TEST_CASE("serve protocol: OIP infer matches the model for UINT8 and FP32, flat and nested") {
  Fixture f;
  const std::vector<std::vector<int>> rows = {random_pixels(1), random_pixels(2), random_pixels(3)};
  const std::vector<float> expected = reference(f.reference_model, rows);
  for (const bool nested : {false, true}) {
    CAPTURE(nested);
    const Reply r = call(*f.service, {"POST", "/v2/models/digits/infer",
                                      infer_body(rows, "UINT8", nested, R"("id":"abc")")});
    REQUIRE_MESSAGE(r.status == 200, r.body);
    const json j = json::parse(r.body);
    CHECK(j.at("model_name") == "digits");
    CHECK(j.at("model_version") == "test-v1");
    CHECK(j.at("id") == "abc");
    const json& probs = j.at("outputs")[0];
    CHECK(probs.at("name") == "probabilities");
    CHECK(probs.at("datatype") == "FP32");
    CHECK(probs.at("shape") == json::array({3, 10}));
    REQUIRE(probs.at("data").size() == expected.size());
    for (size_t i = 0; i < expected.size(); ++i) CHECK(probs.at("data")[i].get<float>() == expected[i]);
    const json& cls = j.at("outputs")[1];
    CHECK(cls.at("name") == "class");
    CHECK(cls.at("datatype") == "INT64");
    CHECK(cls.at("data").size() == 3);
  }
  // FP32: pixel * (1/255) is what the server computes from UINT8, so the answer is the same.
  const Reply fp = call(*f.service, {"POST", "/v2/models/digits/versions/test-v1/infer",
                                     infer_body(rows, "FP32", false)});
  REQUIRE_MESSAGE(fp.status == 200, fp.body);
  const json j = json::parse(fp.body);
  for (size_t i = 0; i < expected.size(); ++i) {
    CHECK(j.at("outputs")[0].at("data")[i].get<float>() == doctest::Approx(expected[i]).epsilon(1e-5));
  }
  // Without a body id, the request id stands in; X-Request-Id is honoured.
  const Reply with_header = call(*f.service, {"POST", "/v2/models/digits/infer",
                                              infer_body(rows, "UINT8", false), "",
                                              {{"X-Request-Id", "trace-42"}}});
  CHECK(json::parse(with_header.body).at("id") == "trace-42");
  CHECK(header_of(with_header, "X-Request-Id") == "trace-42");
  // [N,28,28] nested three deep, and output selection.
  json image = json::array();
  for (size_t y = 0; y < 28; ++y) {
    json line = json::array();
    for (size_t x = 0; x < 28; ++x) line.push_back(rows[0][y * 28 + x]);
    image.push_back(line);
  }
  const json body3 = {{"inputs", {{{"name", "input"}, {"shape", {1, 28, 28}}, {"datatype", "UINT8"},
                                   {"data", json::array({image})}, {"parameters", {{"x", {1, {2}}}}}}}},
                      {"outputs", {{{"name", "class"}}}},
                      {"parameters", {{"deep", {{"a", {{"b", nullptr}}}}}}}};
  const Reply r3 = call(*f.service, {"POST", "/v2/models/digits/infer", body3.dump()});
  REQUIRE_MESSAGE(r3.status == 200, r3.body);
  const json j3 = json::parse(r3.body);
  REQUIRE(j3.at("outputs").size() == 1);
  CHECK(j3.at("outputs")[0].at("name") == "class");
}

TEST_CASE("serve protocol: OIP infer refuses bad tensors with a message naming the field") {
  ServeOptions o;
  o.max_batch = 4;
  Fixture f(o);
  const auto row = random_pixels(5);
  const std::string ok = infer_body({row}, "UINT8", false);
  struct Case {
    std::string body;
    int status;
    std::string mentions;
  };
  std::string out_of_range = ok;
  out_of_range.replace(out_of_range.find("\"data\":[") + 8, 0, "256,");
  const std::vector<Case> cases = {
      {"{", 400, "malformed JSON"},
      {"[]", 400, "the body"},
      {R"({"inputs":[]})", 400, "\"inputs\" is empty"},
      {R"({"outputs":[]})", 400, "\"inputs\" is missing"},
      {R"({"inputs":[{"name":"input","shape":[1,784],"datatype":"FP64","data":[]}]})", 400, "datatype"},
      {R"({"inputs":[{"name":"x","shape":[1,784],"datatype":"FP32","data":[]}]})", 400, "inputs[0].name"},
      {R"({"inputs":[{"name":"input","shape":[1,783],"datatype":"FP32","data":[]}]})", 400, "inputs[0].shape"},
      {R"({"inputs":[{"name":"input","shape":[1,784],"datatype":"UINT8","data":[1,2]}]})", 400, "inputs[0].data has 2 values"},
      {R"({"inputs":[{"name":"input","shape":[5,784],"datatype":"UINT8","data":[]}]})", 413, "--max-batch"},
      {R"({"inputs":[{"name":"input","shape":[1,784],"datatype":"UINT8","data":[[[[1]]]]}]})", 400, "nested"},
      {R"({"inputs":[{"name":"input","shape":[1,784],"datatype":"UINT8","data":[1,[2]]}]})", 400, "nested"},
      {R"({"inputs":[{"name":"input","shape":[1,784],"datatype":"UINT8","data":["a"]}]})", 400, "inputs[0].data"},
      {R"({"inputs":[{"name":"input","shape":[1,784],"datatype":"UINT8","data":[1e999]}]})", 400, "1e999"},
      {R"({"bogus":1})", 400, "unknown field"},
      {R"({"outputs":[{"name":"logits"}]})", 400, "outputs[0].name"},
      {"{\"id\":\"\xff\xfe\",\"inputs\":[]}", 400, "malformed JSON"},
      {out_of_range, 400, "inputs[0].data"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.body.substr(0, 120));
    const Reply r = call(*f.service, {"POST", "/v2/models/digits/infer", c.body});
    CHECK(r.status == c.status);
    const json j = json::parse(r.body);  // never invalid UTF-8
    CHECK_MESSAGE(j.at("error").get<std::string>().find(c.mentions) != std::string::npos,
                  j.at("error").get<std::string>());
  }
  // FP32 above 255 * pixel_scale (1.0) and a UINT8 fraction.
  std::string fp = infer_body({row}, "FP32", false);
  fp.replace(fp.find("\"data\":[") + 8, fp.find(',', fp.find("\"data\":[")) - fp.find("\"data\":[") - 8, "1.5");
  CHECK(call(*f.service, {"POST", "/v2/models/digits/infer", fp}).status == 400);
  std::string frac = ok;
  frac.replace(frac.find("\"data\":[") + 8, frac.find(',', frac.find("\"data\":[")) - frac.find("\"data\":[") - 8, "2.5");
  CHECK(call(*f.service, {"POST", "/v2/models/digits/infer", frac}).status == 400);
  // Too many values overall: 413 while streaming.
  std::vector<std::vector<int>> many(5, row);
  CHECK(call(*f.service, {"POST", "/v2/models/digits/infer", infer_body(many, "UINT8", false)}).status == 413);
  CHECK(call(*f.service, {"POST", "/v2/models/nope/infer", ok}).status == 404);
  // After all that, a valid request is served.
  CHECK(call(*f.service, {"POST", "/v2/models/digits/infer", ok}).status == 200);
}

TEST_CASE("serve protocol: multipart uploads to /predict") {
  Fixture f;
  const simdnn::GrayImage img = simdnn::test::make_stroke_image(3);
  const std::vector<uint8_t> png = simdnn::test::encode_gray(img, simdnn::ImageFormat::kPng);
  const std::string file(png.begin(), png.end());
  const std::string boundary = "------------------------abc123";
  const std::string body = "--" + boundary + "\r\n" +
                           "Content-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n" +
                           "--" + boundary + "\r\n" +
                           "Content-Disposition: form-data; name=\"file\"; filename=\"shoe.png\"\r\n" +
                           "Content-Type: image/png\r\n\r\n" + file + "\r\n--" + boundary + "--\r\n";
  const std::string type = "multipart/form-data; boundary=" + boundary;
  const Reply r = call(*f.service, {"POST", "/predict", body, "", {{"Content-Type", type}}});
  REQUIRE_MESSAGE(r.status == 200, r.body);
  const Reply raw = call(*f.service, {"POST", "/predict", file, "", {{"Content-Type", "image/png"}}});
  REQUIRE(raw.status == 200);
  CHECK(json::parse(r.body).at("predictions") == json::parse(raw.body).at("predictions"));
  CHECK(json::parse(r.body).at("request_id") == header_of(r, "X-Request-Id"));

  // A quoted boundary, the file under another name with a filename.
  const std::string other = "--xyz\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"a.png\"\r\n\r\n" +
                            file + "\r\n--xyz--";
  CHECK(call(*f.service, {"POST", "/predict", other, "",
                          {{"Content-Type", "multipart/form-data; boundary=\"xyz\""}}}).status == 200);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"multipart/form-data", body},                           // no boundary
      {type, body.substr(0, body.size() / 2)},                 // truncated
      {type, "--" + boundary + "\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--" +
                 boundary + "--"},                             // no file part
      {type, "garbage"},
      {"multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nnot an image\r\n--xyz--"},
  };
  for (const auto& case_ : bad) {
    const auto& ct = case_.first;  // not a structured binding: clang 14 cannot CAPTURE one
    const auto& b = case_.second;
    CAPTURE(ct);
    const Reply e = call(*f.service, {"POST", "/predict", b, "", {{"Content-Type", ct}}});
    CHECK(e.status == 400);
    CHECK(json::parse(e.body).contains("error"));
  }
  simdnn::serving::FilePart part;
  CHECK(!simdnn::serving::parse_multipart_file(type, body, part));
  CHECK(part.filename == "shoe.png");
  CHECK(part.content_type == "image/png");
}

TEST_CASE("serve protocol: request ids are honoured when sane, generated otherwise") {
  Fixture f;
  const Reply a = call(*f.service, {"GET", "/healthz"});
  const std::string id = header_of(a, "X-Request-Id");
  CHECK(id.size() == 32);
  CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(header_of(call(*f.service, {"GET", "/healthz"}), "X-Request-Id") != id);
  CHECK(header_of(call(*f.service, {"GET", "/healthz", "", "", {{"x-request-id", "my id-1"}}}),
                  "X-Request-Id") == "my id-1");
  CHECK(simdnn::serving::sanitize_request_id("a\r\nb").size() == 32);
  CHECK(simdnn::serving::sanitize_request_id(std::string(129, 'a')).size() == 32);
  CHECK(simdnn::serving::sanitize_request_id(std::string(128, 'a')) == std::string(128, 'a'));
  CHECK(simdnn::serving::sanitize_request_id("caf\xc3\xa9").size() == 32);
  {
    // Generated ids start with the time in ms (12 hex digits), so they sort by time (the store's
    // request_id index appends instead of inserting anywhere), and still differ within one ms.
    const auto ms_now = [] {
      return std::chrono::duration_cast<std::chrono::milliseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
          .count();
    };
    const long long before = ms_now();
    const std::string first = simdnn::serving::generate_request_id();
    const std::string second = simdnn::serving::generate_request_id();
    const long long after = ms_now();
    const long long stamp = std::stoll(first.substr(0, 12), nullptr, 16);
    CHECK(stamp >= before);
    CHECK(stamp <= after);
    CHECK(first != second);
    CHECK(first.substr(0, 12) <= second.substr(0, 12));
    CHECK(second.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  // /predict carries it in the body too, next to the unchanged fields.
  std::string pixels = "{\"pixels\":[";
  for (size_t i = 0; i < kFeatures; ++i) pixels += (i ? ",0" : "0");
  pixels += "]}";
  const Reply p = call(*f.service, {"POST", "/predict", pixels, "",
                                    {{"Content-Type", "application/json"}, {"X-Request-Id", "q\"\\"}}});
  REQUIRE(p.status == 200);
  const json j = json::parse(p.body);
  CHECK(j.at("request_id") == "q\"\\");
  CHECK(j.at("model_version") == "test-v1");
  CHECK(j.at("predictions").size() == 1);
}

TEST_CASE("serve protocol: bearer tokens guard inference when --auth-inference is set") {
  ServeOptions o;
  o.auth_token = "s3cret-token";
  o.auth_inference = true;
  Fixture f(o);
  const std::string body = infer_body({random_pixels(9)}, "UINT8", false);
  const Reply none = call(*f.service, {"POST", "/v2/models/digits/infer", body});
  CHECK(none.status == 401);
  CHECK(header_of(none, "WWW-Authenticate").starts_with("Bearer"));
  for (const std::string bad : {"Bearer s3cret-toke", "Bearer s3cret-token2", "Basic s3cret-token",
                                "Bearer ", "s3cret-token"}) {
    CAPTURE(bad);
    CHECK(call(*f.service, {"POST", "/v2/models/digits/infer", body, "", {{"Authorization", bad}}})
              .status == 401);
  }
  CHECK(call(*f.service, {"POST", "/v2/models/digits/infer", body, "",
                          {{"Authorization", "bearer s3cret-token"}}}).status == 200);
  CHECK(call(*f.service, {"POST", "/predict", "{}", "", {{"Content-Type", "application/json"}}})
            .status == 401);
  // Health, metadata and metrics stay open.
  CHECK(call(*f.service, {"GET", "/v2/health/ready"}).status == 200);
  CHECK(call(*f.service, {"GET", "/healthz"}).status == 200);
  CHECK(call(*f.service, {"GET", "/metrics"}).status == 200);

  ServeOptions no_token;
  no_token.auth_inference = true;
  CHECK_THROWS(Fixture{no_token});
}

TEST_CASE("serve protocol: access log lines and process metrics") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("simdnn_access_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  ServeOptions o;
  o.access_log = (dir / "access.log").string();
  {
    Fixture f(o);
    call(*f.service, {"POST", "/v2/models/digits/infer", infer_body({random_pixels(4)}, "UINT8", false),
                      "", {{"X-Request-Id", "log-1"}}});
    call(*f.service, {"GET", "/nope\xff"});
    const Reply m = call(*f.service, {"GET", "/metrics"});
    for (const char* name : {"process_resident_memory_bytes", "process_virtual_memory_bytes",
                             "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
                             "process_start_time_seconds", "model_inference_time_seconds_bucket{model=\"digits\",version=\"test-v1\",le=\"1e-06\"}",
                             "endpoint=\"/v2/infer\"", "endpoint=\"other\""}) {
      CHECK_MESSAGE(m.body.find(name) != std::string::npos, name);
    }
  }
  const auto lines = simdnn::test::split_lines(simdnn::test::read_text(dir / "access.log"));
  REQUIRE(lines.size() == 3);
  const json first = json::parse(lines[0]);
  CHECK(first.at("id") == "log-1");
  CHECK(first.at("method") == "POST");
  CHECK(first.at("path") == "/v2/models/digits/infer");
  CHECK(first.at("status") == 200);
  CHECK(first.at("model") == "digits");
  CHECK(first.at("version") == "test-v1");
  CHECK(first.at("class").is_number_integer());
  CHECK(first.at("confidence").is_number());
  CHECK(first.at("peer") == "127.0.0.1:4242");
  CHECK(first.at("time").get<std::string>().ends_with("Z"));
  CHECK(first.at("bytes").get<size_t>() > 0);
  CHECK(!first.contains("data"));
  CHECK(json::parse(lines[1]).at("status") == 404);  // invalid UTF-8 path, still valid JSON
  std::filesystem::remove_all(dir);

  CHECK(simdnn::serving::endpoint_of("/v2/models/x/versions/1/infer") == simdnn::serving::Endpoint::kV2Infer);
  CHECK(simdnn::serving::endpoint_of("/v2/health/live") == simdnn::serving::Endpoint::kV2Health);
  CHECK(simdnn::serving::endpoint_of("/v2") == simdnn::serving::Endpoint::kV2Models);
  CHECK(simdnn::serving::endpoint_of("/v2x") == simdnn::serving::Endpoint::kOther);
  CHECK(simdnn::serving::default_model_name("models/fashion.safetensors") == "fashion");
}

}  // namespace test_serve_protocol
