// POST /v2/models/{name}/explain: integrated-gradients attributions (<simdnn/attribution.h>)
// of the Open Inference Protocol infer body's images, as an OIP-shaped JSON response or, for
// `Accept: image/png`, one PNG of the explanation pictures (docs/serving.md).
#include <algorithm>
#include <charconv>
#include <string>

#include "prediction_service.h"
#include "simdnn/attribution.h"
#include "simdnn/attribution_picture.h"
#include "simdnn/png_encode.h"

namespace simdnn::serving {

namespace {

// Integrated-gradients steps: the sum of the attributions is within ~1% of f(x) - f(black) at
// 128 (docs/api.md); one image then costs about 1 ms of one core.
constexpr size_t kExplainSteps = 128;

// Explanations cost ~kExplainSteps forward and backward rows per image: a small batch only.
constexpr size_t kMaxExplainBatch = 8;

void append_float(std::string& out, double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, static_cast<float>(v));
  out.append(buf, r.ptr);
}

// Whether the client asked for a picture: "image/png" among the Accept header's media ranges.
bool wants_png(std::string_view accept) {
  std::string lower(accept);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return lower.find("image/png") != std::string::npos;
}

}  // namespace

Reply PredictionService::oip_explain(const Request& request, Exchange& exchange) {
  Metrics::InFlight guard(metrics_);
  if (auto refused = refuse_binary_tensors(request)) return std::move(*refused);
  // The version route_v2 resolved (a canary included): the explanation is of the model that
  // predicts, and the response names it.
  const ModelVersion& served = *exchange.served;
  const ModelInfo& info = served.model.info();
  const size_t classes = served.model.num_classes();
  OipLimits limits = oip_limits(info);
  limits.max_batch = std::min(limits.max_batch, kMaxExplainBatch);
  limits.accept_class = true;
  WorkerLease worker(workers_);
  OipInferRequest infer;
  ParsedInstances& input = worker->parsed;
  if (auto error = parse_oip_infer(request.body, limits, infer, input)) {
    return error_reply(error->status, error->message);
  }
  if (infer.target_class && *infer.target_class >= classes) {
    return error_reply(400, "\"class\" " + std::to_string(*infer.target_class) +
                                " is not a class of the model (0.." +
                                std::to_string(classes - 1) + ")");
  }
  const size_t features = info.input_size();
  Tensor& x = worker->x;
  x.resize(Shape{input.rows, features});
  const float scale = infer.datatype == OipDatatype::kUint8 ? info.pixel_scale : 1.0f;
  for (size_t i = 0; i < input.pixels.size(); ++i) x.data()[i] = input.pixels[i] * scale;

  // The predictions (metered as inference), then one explanation per image.
  const Tensor& probs = run_model(served, *worker, exchange);
  std::vector<size_t> explained(input.rows);
  for (size_t r = 0; r < input.rows; ++r) {
    const std::span<const float> p = probs.row(r);
    explained[r] = infer.target_class
                       ? *infer.target_class
                       : static_cast<size_t>(std::max_element(p.begin(), p.end()) - p.begin());
  }
  // One Explainer per request: it is bound to this version's weights, and its tape (a few
  // hundred KB for steps + 2 rows) is small next to the ~1 ms per image it computes.
  Explainer explainer(served.model, AttributionOptions{.threads = 1});
  std::vector<Attribution> attributions;
  attributions.reserve(input.rows);
  for (size_t r = 0; r < input.rows; ++r) {
    attributions.push_back(explainer.integrated_gradients(x.row(r), explained[r], kExplainSteps));
  }

  if (wants_png(request.header("Accept"))) {
    // The images one under the other, each as predict --explain draws it.
    constexpr size_t kZoom = 4;
    RgbImage sheet;
    std::vector<uint8_t> pixels(features);
    for (size_t r = 0; r < input.rows; ++r) {
      for (size_t i = 0; i < features; ++i) {
        pixels[i] = static_cast<uint8_t>(std::clamp(x.data()[r * features + i] /
                                                    info.pixel_scale + 0.5f, 0.0f, 255.0f));
      }
      const RgbImage one = explanation_picture(pixels, attributions[r].values, info.input_width,
                                               info.input_height, kZoom);
      if (r == 0) {
        sheet.width = one.width;
        sheet.height = 0;
      }
      sheet.pixels.insert(sheet.pixels.end(), one.pixels.begin(), one.pixels.end());
      sheet.height += one.height;
    }
    const std::vector<uint8_t> png = encode_png(sheet);
    return {200, std::string(png.begin(), png.end()), "image/png", {}};
  }

  // Appended piece by piece (no temporaries: the response buffer keeps its capacity).
  std::string& out = worker->response;
  out.clear();
  out += R"({"model_name":)";
  out += json_quote(served.name);
  out += R"(,"model_version":)";
  out += json_quote(served.version);
  out += R"(,"id":)";
  out += json_quote(infer.id ? std::string_view(*infer.id) : std::string_view(exchange.id));
  out += R"(,"parameters":{"method":"integrated_gradients","steps":)";
  out += std::to_string(kExplainSteps);
  out += R"(,"baseline":"black","target":"probability"},"outputs":[)";
  const auto open_output = [&](const char* name, const char* datatype, bool image_shape) {
    out += R"({"name":")";
    out += name;
    out += R"(","datatype":")";
    out += datatype;
    out += R"(","shape":[)";
    out += std::to_string(input.rows);
    if (image_shape) {
      out += ',';
      out += std::to_string(info.input_height);
      out += ',';
      out += std::to_string(info.input_width);
    }
    out += R"(],"data":[)";
  };
  open_output("attributions", "FP32", true);
  for (size_t r = 0; r < input.rows; ++r) {
    for (size_t i = 0; i < features; ++i) {
      if (r || i) out += ',';
      append_float(out, attributions[r].values[i]);
    }
  }
  out += "]},";
  open_output("class", "INT64", false);
  for (size_t r = 0; r < input.rows; ++r) {
    if (r) out += ',';
    out += std::to_string(explained[r]);
  }
  out += "]},";
  open_output("probability", "FP32", false);
  for (size_t r = 0; r < input.rows; ++r) {
    if (r) out += ',';
    append_float(out, attributions[r].output);
  }
  out += "]},";
  open_output("baseline_probability", "FP32", false);
  for (size_t r = 0; r < input.rows; ++r) {
    if (r) out += ',';
    append_float(out, attributions[r].baseline_output);
  }
  out += "]}]}";
  return {200, out, kJsonContentType, {}};
}

}  // namespace simdnn::serving
