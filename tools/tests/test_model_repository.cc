// The model repository (serving/include/simdnn/serving/model_repository.h), in process: layout
// and ignored entries, version policies, validation failures that never go live, unchanged
// files not reloaded, requests in flight keeping their version, the repository API (index,
// load, unload, tokens), the canary split, and the poller.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "serving/prediction_service.h"
#include "simdnn/model_file.h"
#include "simdnn/safetensors.h"
#include "simdnn/serving/model_repository.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_model_repository {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using simdnn::serving::Metrics;
using simdnn::serving::ModelRepository;
using simdnn::serving::PredictionService;
using simdnn::serving::Reply;
using simdnn::serving::RepositoryOptions;
using simdnn::serving::Request;
using simdnn::serving::ServeOptions;
using simdnn::test::TempDir;

// Version v of a model: its own weights (seed v), so each version answers differently.
void put_version(const fs::path& repo, const std::string& name, int v) {
  fs::create_directories(repo / name / std::to_string(v));
  simdnn::save_model(repo / name / std::to_string(v) / "model.safetensors",
                     simdnn::test::make_test_model(static_cast<uint64_t>(v), "label-" + std::to_string(v)));
}

void put_nan_version(const fs::path& repo, const std::string& name, int v) {
  fs::create_directories(repo / name / std::to_string(v));
  simdnn::SafetensorsFile f = simdnn::model_to_safetensors(simdnn::test::make_test_model(9));
  f.tensors[0].second.data()[0] = std::numeric_limits<float>::quiet_NaN();
  simdnn::save_safetensors(repo / name / std::to_string(v) / "model.safetensors", f);
}

std::string infer_body() {
  return json{{"inputs", {{{"name", "input"}, {"shape", {1, 784}}, {"datatype", "UINT8"},
                           {"data", std::vector<int>(784, 100)}}}}}
      .dump();
}

Reply call(PredictionService& s, const std::string& method, const std::string& path,
           const std::string& body = "", const std::string& token = "",
           const std::string& request_id = "") {
  Request r;
  r.method = method;
  r.path = path;
  r.body = body;
  r.peer = "127.0.0.1:1";
  const std::string authorization = "Bearer " + token;  // Request holds views
  if (!token.empty()) r.headers.emplace_back("Authorization", authorization);
  if (!request_id.empty()) r.headers.emplace_back("X-Request-Id", request_id);
  return s.handle(r);
}

std::string header_of(const Reply& reply, const std::string& name) {
  for (const auto& [k, v] : reply.headers) {
    if (k == name) return v;
  }
  return {};
}

double metric(const std::string& text, const std::string& series) {
  const size_t at = text.find("\n" + series + " ");
  return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
}

struct Service {
  ServeOptions options;
  std::unique_ptr<PredictionService> service;
  Service(RepositoryOptions repo, std::string token = "") {
    options.threads = 2;
    options.auth_token = std::move(token);
    service = std::make_unique<PredictionService>(std::move(repo), options);
  }
  ModelRepository& repo() { return service->repository(); }
  std::string primary(const std::string& name) {
    const auto live = repo().live();
    const auto* e = live->find(name);
    return e ? e->primary->version : "";
  }
};

RepositoryOptions options_for(const fs::path& dir) {
  RepositoryOptions o;
  o.repository = dir;
  o.poll_seconds = 0;
  return o;
}

}  // namespace

TEST_CASE("model repository: highest version live, junk ignored, several models by name") {
  TempDir dir("repo-layout");
  put_version(dir.path(), "digits", 1);
  put_version(dir.path(), "digits", 2);
  put_version(dir.path(), "other", 5);
  fs::create_directories(dir / "digits" / "abc");
  fs::create_directories(dir / "digits" / "0");
  fs::create_directories(dir / "digits" / "07");
  fs::create_directories(dir / "digits" / "9");  // no model file yet
  // A promotion in progress (tools/promote): a complete, valid model under a hidden name.
  fs::create_directories(dir / "digits" / ".tmp-promote-99");
  simdnn::save_model(dir / "digits" / ".tmp-promote-99" / "model.safetensors",
                     simdnn::test::make_test_model(99));
  simdnn::test::write_raw(dir / "README", {'x'});
  Service s(options_for(dir.path()));
  CHECK(s.primary("digits") == "2");
  CHECK(s.primary("other") == "5");
  REQUIRE(s.repo().live()->models().size() == 2);

  const Reply r = call(*s.service, "POST", "/v2/models/digits/infer", infer_body());
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(json::parse(r.body).at("model_version") == "2");
  CHECK(header_of(r, "X-Model-Version") == "2");
  CHECK(header_of(r, "X-Model-Name") == "digits");
  CHECK(call(*s.service, "POST", "/v2/models/other/infer", infer_body()).status == 200);
  CHECK(call(*s.service, "POST", "/v2/models/digits/versions/1/infer", infer_body()).status == 404);
  CHECK(call(*s.service, "POST", "/v2/models/nope/infer", infer_body()).status == 404);
  CHECK(call(*s.service, "GET", "/v2/models/digits/versions/2/ready").status == 200);
  // /predict uses the first model by name without --model-name.
  std::string pixels = "0";
  for (int i = 1; i < 784; ++i) pixels += ",0";
  Request predict;
  predict.method = "POST";
  predict.path = "/predict";
  const std::string predict_body = R"({"pixels":[)" + pixels + "]}";
  predict.body = predict_body;
  predict.headers.emplace_back("Content-Type", "application/json");
  const Reply p = s.service->handle(predict);
  REQUIRE_MESSAGE(p.status == 200, p.body);
  CHECK(json::parse(p.body).at("model_version") == "2");
  CHECK(json::parse(p.body).at("model_name") == "digits");
  CHECK(header_of(p, "X-Model-Version") == "2");
}

TEST_CASE("model repository: version policies latest:N and specific") {
  TempDir dir("repo-policy");
  for (int v : {1, 2, 3}) put_version(dir.path(), "digits", v);
  SUBCASE("latest:2") {
    RepositoryOptions o = options_for(dir.path());
    o.policies["digits"] = simdnn::serving::parse_version_policy("latest:2");
    Service s(std::move(o));
    CHECK(s.primary("digits") == "3");
    CHECK(call(*s.service, "POST", "/v2/models/digits/versions/2/infer", infer_body()).status == 200);
    CHECK(call(*s.service, "POST", "/v2/models/digits/versions/1/infer", infer_body()).status == 404);
    const json meta = json::parse(call(*s.service, "GET", "/v2/models/digits").body);
    CHECK(meta.at("versions") == json::array({"3", "2"}));
  }
  SUBCASE("specific:1,3") {
    RepositoryOptions o = options_for(dir.path());
    o.policies["digits"] = simdnn::serving::parse_version_policy("specific:1,3");
    Service s(std::move(o));
    CHECK(call(*s.service, "POST", "/v2/models/digits/versions/1/infer", infer_body()).status == 200);
    CHECK(call(*s.service, "POST", "/v2/models/digits/versions/2/infer", infer_body()).status == 404);
  }
  CHECK_THROWS_AS(simdnn::serving::parse_version_policy("latest:0"), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::serving::parse_version_policy("specific:1,x"), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::serving::parse_version_policy("newest"), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::serving::parse_canary("digits:3"), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::serving::parse_canary("digits:3:101"), std::invalid_argument);
}

TEST_CASE("model repository: a version that fails validation never goes live; the old serves") {
  TempDir dir("repo-invalid");
  put_version(dir.path(), "digits", 1);
  Service s(options_for(dir.path()));
  const auto before = s.repo().live()->find("digits")->primary;
  // A request in flight holds the version it started on.
  const std::shared_ptr<const simdnn::serving::ModelVersion> in_flight = before;

  put_nan_version(dir.path(), "digits", 2);
  s.repo().reload();
  CHECK(s.primary("digits") == "1");
  s.repo().reload();  // the same broken file: not retried, not counted again
  const std::string text = s.service->metrics().render();
  CHECK(metric(text, R"(model_load_failures_total{model="digits"})") == 1);
  CHECK(metric(text, R"(model_info{classes="10",input="28x28",model="digits",version="1"})") == 1);
  CHECK(call(*s.service, "POST", "/v2/models/digits/infer", infer_body()).status == 200);
  // Unchanged files are not reloaded: the very same object is live.
  CHECK(s.repo().live()->find("digits")->primary == before);

  put_version(dir.path(), "digits", 3);
  s.repo().reload();
  CHECK(s.primary("digits") == "3");
  CHECK(in_flight.use_count() >= 2);  // still alive for whoever holds it
  CHECK(in_flight->model.predict(simdnn::Tensor(simdnn::Shape{1, 784}), 1).cols() == 10);
  const std::string after = s.service->metrics().render();
  CHECK(metric(after, R"(model_info{classes="10",input="28x28",model="digits",version="3"})") == 1);
  CHECK(after.find(R"(model_info{classes="10",input="28x28",model="digits",version="1"})") ==
        std::string::npos);
}

TEST_CASE("model repository: --model FILE is a one-model repository reloaded when it changes") {
  TempDir dir("repo-file");
  simdnn::save_model(dir / "fashion.safetensors", simdnn::test::make_test_model(1, "seed1"));
  RepositoryOptions o;
  o.model_file = dir / "fashion.safetensors";
  o.poll_seconds = 0;
  Service s(std::move(o));
  CHECK(s.primary("fashion") == "seed1");
  // A broken replacement is refused; the old model keeps answering.
  simdnn::SafetensorsFile f = simdnn::model_to_safetensors(simdnn::test::make_test_model(2, "seed2"));
  f.metadata["pixel_scale"] = "1e-30";
  simdnn::save_safetensors(dir / "fashion.safetensors", f);
  s.repo().reload();
  CHECK(s.primary("fashion") == "seed1");
  simdnn::save_model(dir / "fashion.safetensors", simdnn::test::make_test_model(2, "seed2"));
  s.repo().reload();
  CHECK(s.primary("fashion") == "seed2");
}

TEST_CASE("model repository: index, load and unload need the token") {
  TempDir dir("repo-api");
  put_version(dir.path(), "digits", 1);
  put_nan_version(dir.path(), "digits", 2);
  {
    Service open(options_for(dir.path()));
    CHECK(call(*open.service, "POST", "/v2/repository/index").status == 403);
    CHECK(call(*open.service, "POST", "/v2/repository/models/digits/unload").status == 403);
  }
  Service s(options_for(dir.path()), "tok");
  CHECK(call(*s.service, "POST", "/v2/repository/models/digits/unload").status == 401);
  CHECK(call(*s.service, "POST", "/v2/repository/models/digits/unload", "", "bad").status == 401);
  CHECK(call(*s.service, "GET", "/v2/repository/index", "", "tok").status == 405);

  const json index = json::parse(call(*s.service, "POST", "/v2/repository/index", "", "tok").body);
  REQUIRE(index.size() == 2);
  CHECK(index[0].at("version") == "2");
  CHECK(index[0].at("state") == "UNAVAILABLE");
  CHECK(index[0].at("reason").get<std::string>().find("non-finite") != std::string::npos);
  CHECK(index[1].at("state") == "READY");

  CHECK(call(*s.service, "POST", "/v2/repository/models/digits/unload", "", "tok").status == 200);
  CHECK(call(*s.service, "POST", "/v2/models/digits/infer", infer_body()).status == 503);
  CHECK(call(*s.service, "GET", "/v2/models/digits/ready").status == 503);
  CHECK(call(*s.service, "GET", "/readyz").status == 503);
  s.repo().reload();  // a poll does not bring an unloaded model back
  CHECK(call(*s.service, "POST", "/v2/models/digits/infer", infer_body()).status == 503);

  // Loading reports the broken version 2, but version 1 goes live.
  const Reply load = call(*s.service, "POST", "/v2/repository/models/digits/load", "", "tok");
  CHECK(load.status == 400);
  CHECK(load.body.find("non-finite") != std::string::npos);
  CHECK(s.primary("digits") == "1");
  CHECK(call(*s.service, "POST", "/v2/models/digits/infer", infer_body()).status == 200);
  put_version(dir.path(), "digits", 3);
  CHECK(call(*s.service, "POST", "/v2/repository/models/digits/load", "", "tok").status == 200);
  CHECK(s.primary("digits") == "3");
  CHECK(call(*s.service, "POST", "/v2/repository/models/nope/load", "", "tok").status == 404);
}

TEST_CASE("model repository: canary split within 2 points over 10000 requests; pins hold") {
  TempDir dir("repo-canary");
  put_version(dir.path(), "digits", 2);
  put_version(dir.path(), "digits", 3);
  RepositoryOptions o = options_for(dir.path());
  o.canary = simdnn::serving::parse_canary("digits:3:10");
  Service s(std::move(o));
  CHECK(s.primary("digits") == "2");  // the canary is never the primary
  const std::string body = infer_body();
  std::map<std::string, int> by_version;
  constexpr int kRequests = 10000;
  for (int i = 0; i < kRequests; ++i) {
    const Reply r = call(*s.service, "POST", "/v2/models/digits/infer", body, "",
                         "req-" + std::to_string(i));
    REQUIRE(r.status == 200);
    ++by_version[header_of(r, "X-Model-Version")];
  }
  const double share = 100.0 * by_version["3"] / kRequests;
  MESSAGE("canary share: " << share << "% of " << kRequests << " (asked 10%)");
  CHECK(share >= 8.0);
  CHECK(share <= 12.0);
  CHECK(by_version["2"] + by_version["3"] == kRequests);
  // Deterministic by request id; pinned requests always reach their version.
  const std::string first = header_of(call(*s.service, "POST", "/v2/models/digits/infer", body, "", "req-7"), "X-Model-Version");
  for (int i = 0; i < 5; ++i) {
    CHECK(header_of(call(*s.service, "POST", "/v2/models/digits/infer", body, "", "req-7"),
                    "X-Model-Version") == first);
  }
  for (int i = 0; i < 200; ++i) {
    const Reply r = call(*s.service, "POST", "/v2/models/digits/versions/2/infer", body, "",
                         "pin-" + std::to_string(i));
    CHECK(header_of(r, "X-Model-Version") == "2");
  }
  const std::string text = s.service->metrics().render();
  CHECK(metric(text, R"(model_batch_size_count{model="digits",version="3"})") == by_version["3"]);
}

TEST_CASE("model repository: the poller picks up a new version by itself") {
  TempDir dir("repo-poll");
  put_version(dir.path(), "digits", 1);
  RepositoryOptions o = options_for(dir.path());
  o.poll_seconds = 1;
  Service s(std::move(o));
  put_version(dir.path(), "digits", 2);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (s.primary("digits") != "2" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(s.primary("digits") == "2");
}

}  // namespace test_model_repository
