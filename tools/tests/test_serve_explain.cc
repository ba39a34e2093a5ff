// POST /v2/models/{name}/explain, in process (PredictionService::handle, no sockets): the
// attributions are the library's integrated gradients, the class can be chosen, batches are
// small, the PNG form decodes, and the endpoint is metered under its own label.
#include <doctest/doctest.h>
#include <stb_image.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "serving/prediction_service.h"
#include "serving/worker_pool.h"
#include "simdnn/attribution.h"
#include "simdnn/evaluation.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_serve_explain {

namespace {

using json = nlohmann::json;
using simdnn::serving::PredictionService;
using simdnn::serving::Reply;
using simdnn::serving::Request;

constexpr size_t kFeatures = 784;

std::vector<int> stroke_pixels(int variant) {
  const simdnn::GrayImage img = simdnn::test::make_stroke_image(variant);
  return std::vector<int>(img.pixels.begin(), img.pixels.end());
}

std::string explain_body(const std::vector<std::vector<int>>& rows, const std::string& extra = "") {
  json data = json::array();
  for (const auto& row : rows) {
    for (int v : row) data.push_back(v);
  }
  json body = {{"inputs", json::array({{{"name", "input"},
                                        {"shape", {rows.size(), kFeatures}},
                                        {"datatype", "UINT8"},
                                        {"data", data}}})}};
  std::string s = body.dump();
  if (!extra.empty()) s.insert(1, extra + ",");
  return s;
}

Reply post(PredictionService& service, const std::string& path, const std::string& body,
           std::vector<std::pair<std::string_view, std::string_view>> headers = {},
           std::string_view method = "POST") {
  Request r;
  r.method = method;
  r.path = path;
  r.body = body;
  r.peer = "127.0.0.1:4242";
  r.headers = std::move(headers);
  return service.handle(r);
}

struct Fixture {
  simdnn::serving::ServeOptions options;
  simdnn::Model model = simdnn::test::make_test_model();
  std::unique_ptr<PredictionService> service;
  Fixture() {
    options.threads = 2;
    options.model_name = "digits";
    service = std::make_unique<PredictionService>(simdnn::test::make_test_model(), options);
  }
};

}  // namespace

TEST_CASE("serve explain: attributions are the library's integrated gradients of the predicted class") {
  Fixture f;
  const std::vector<std::vector<int>> rows = {stroke_pixels(1), stroke_pixels(4)};
  const Reply r = post(*f.service, "/v2/models/digits/explain", explain_body(rows, R"("id":"e1")"));
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.content_type == simdnn::serving::kJsonContentType);
  const json j = json::parse(r.body);
  CHECK(j.at("id") == "e1");
  CHECK(j.at("model_name") == "digits");  // the version that computed it, as infer names it
  const auto version_header = std::find_if(r.headers.begin(), r.headers.end(), [](const auto& h) {
    return h.first == "X-Model-Version";
  });
  REQUIRE(version_header != r.headers.end());
  CHECK(j.at("model_version") == version_header->second);
  CHECK(j.at("parameters").at("method") == "integrated_gradients");
  const size_t steps = j.at("parameters").at("steps").get<size_t>();
  const json& attributions = j.at("outputs")[0];
  CHECK(attributions.at("name") == "attributions");
  CHECK(attributions.at("shape") == json::array({2, 28, 28}));
  REQUIRE(attributions.at("data").size() == 2 * kFeatures);
  const json& classes = j.at("outputs")[1];
  CHECK(classes.at("name") == "class");

  simdnn::Explainer explainer(f.model);
  for (size_t r_i = 0; r_i < rows.size(); ++r_i) {
    CAPTURE(r_i);
    std::vector<float> x(kFeatures);
    for (size_t i = 0; i < kFeatures; ++i) x[i] = rows[r_i][i] * f.model.info().pixel_scale;
    simdnn::Tensor one(simdnn::Shape{1, kFeatures});
    std::copy(x.begin(), x.end(), one.data());
    const size_t predicted = simdnn::argmax(f.model.predict(one, 1).row(0));
    CHECK(classes.at("data")[r_i] == predicted);
    const simdnn::Attribution expected = explainer.integrated_gradients(x, predicted, steps);
    double sum = 0.0;
    for (size_t i = 0; i < kFeatures; ++i) {
      const float got = attributions.at("data")[r_i * kFeatures + i].get<float>();
      CHECK(got == doctest::Approx(expected.values[i]).epsilon(1e-5));
      sum += got;
    }
    const double p = j.at("outputs")[2].at("data")[r_i].get<double>();
    const double p0 = j.at("outputs")[3].at("data")[r_i].get<double>();
    CHECK(p == doctest::Approx(expected.output));
    CHECK(std::abs(sum - (p - p0)) <= 0.01 * std::abs(p - p0) + 1e-5);  // completeness
  }

  // A chosen class.
  const Reply chosen = post(*f.service, "/v2/models/digits/explain", explain_body(rows, R"("class":3)"));
  REQUIRE_MESSAGE(chosen.status == 200, chosen.body);
  CHECK(json::parse(chosen.body).at("outputs")[1].at("data") == json::array({3, 3}));
}

TEST_CASE("serve explain: bad classes, large batches and wrong methods are refused") {
  Fixture f;
  const std::vector<std::vector<int>> one = {stroke_pixels(2)};
  for (const std::string bad : {R"("class":10)", R"("class":-1)", R"("class":1.5)", R"("class":"3")"}) {
    CAPTURE(bad);
    const Reply r = post(*f.service, "/v2/models/digits/explain", explain_body(one, bad));
    CHECK(r.status == 400);
    CHECK(r.body.find("class") != std::string::npos);
  }
  const std::vector<std::vector<int>> nine(9, stroke_pixels(2));
  CHECK(post(*f.service, "/v2/models/digits/explain", explain_body(nine)).status == 413);
  CHECK(post(*f.service, "/v2/models/digits/explain", "", {}, "GET").status == 405);
  CHECK(post(*f.service, "/v2/models/other/explain", explain_body(one)).status == 404);
  // "class" belongs to explain only: infer still refuses unknown fields.
  CHECK(post(*f.service, "/v2/models/digits/infer", explain_body(one, R"("class":3)")).status == 400);
  CHECK(post(*f.service, "/v2/models/digits/explain", "{").status == 400);
}

TEST_CASE("serve explain: Accept image/png answers the explanation pictures, one per image") {
  Fixture f;
  const std::vector<std::vector<int>> rows = {stroke_pixels(1), stroke_pixels(3)};
  const Reply r = post(*f.service, "/v2/models/digits/explain", explain_body(rows),
                       {{"Accept", "image/png"}});
  REQUIRE_MESSAGE(r.status == 200, r.body);
  CHECK(r.content_type == "image/png");
  int w = 0, h = 0, channels = 0;
  uint8_t* rgb = stbi_load_from_memory(reinterpret_cast<const uint8_t*>(r.body.data()),
                                       static_cast<int>(r.body.size()), &w, &h, &channels, 3);
  REQUIRE(rgb != nullptr);
  size_t coloured = 0;  // heatmap pixels that are not gray (red or blue evidence)
  for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) coloured += rgb[3 * i] != rgb[3 * i + 2];
  stbi_image_free(rgb);
  CHECK(w == 3 * 112 + 4 * 4);
  CHECK(h == 2 * (112 + 2 * 4));
  CHECK(coloured > 200);

  // Metered under its own label.
  const Reply m = post(*f.service, "/metrics", "", {}, "GET");
  CHECK(m.body.find(R"(endpoint="/v2/explain")") != std::string::npos);
}

}  // namespace test_serve_explain
