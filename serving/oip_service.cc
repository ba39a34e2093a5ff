// PredictionService's Open Inference Protocol (KServe v2) endpoints, under /v2 (formats in
// docs/serving.md, parsing and bodies in oip.h).
#include <chrono>
#include <string>

#include "prediction_service.h"

namespace simdnn::serving {

namespace {

Reply json_reply(int status, std::string body) {
  return {status, std::move(body), kJsonContentType, {}};
}

Reply method_not_allowed(const char* allow, std::string_view path) {
  Reply reply = error_reply(405, "use " + std::string(allow) + " " + std::string(path));
  reply.headers.emplace_back("Allow", allow);
  return reply;
}

}  // namespace

Reply PredictionService::route_v2(const Request& request, Exchange& exchange) {
  const std::string_view path = request.path;
  const bool get = request.method == "GET";
  if (path == "/v2") {
    if (!get) return method_not_allowed("GET", path);
    Metrics::InFlight guard(metrics_);
    return json_reply(200, oip_server_metadata());
  }
  if (path == "/v2/health/live") {
    if (!get) return method_not_allowed("GET", path);
    Metrics::InFlight guard(metrics_);
    return json_reply(200, R"({"live":true})");
  }
  if (path == "/v2/health/ready") {
    if (!get) return method_not_allowed("GET", path);
    Metrics::InFlight guard(metrics_);
    return ready_.load() ? json_reply(200, R"({"ready":true})")
                         : json_reply(503, R"({"ready":false})");
  }
  OipModelPath target;
  if (!parse_oip_model_path(path, target)) {
    return error_reply(404, "no such endpoint: " + std::string(request.method) + " " +
                                std::string(path));
  }
  if (target.name != model_name_) {
    return error_reply(404, "unknown model \"" + std::string(target.name) + "\": this server "
                            "serves \"" + model_name_ + "\"");
  }
  const std::string& version = workers_.info().version;
  if (target.version && *target.version != version) {
    return error_reply(404, "model \"" + model_name_ + "\" has no version \"" +
                                std::string(*target.version) + "\": it serves \"" + version +
                                "\"");
  }
  exchange.model = true;
  switch (target.action) {
    case OipModelPath::Action::kMetadata: {
      if (!get) return method_not_allowed("GET", path);
      Metrics::InFlight guard(metrics_);
      return json_reply(200, oip_model_metadata(model_name_, workers_.info(),
                                                workers_.num_classes()));
    }
    case OipModelPath::Action::kReady: {
      if (!get) return method_not_allowed("GET", path);
      Metrics::InFlight guard(metrics_);
      return ready_.load() ? json_reply(200, R"({"name":)" + json_quote(model_name_) +
                                                 R"(,"ready":true})")
                           : json_reply(503, R"({"name":)" + json_quote(model_name_) +
                                                 R"(,"ready":false})");
    }
    case OipModelPath::Action::kInfer:
      if (request.method != "POST") return method_not_allowed("POST", path);
      if (options_.auth_inference) {
        if (auto denied = token_.require_token(request)) return std::move(*denied);
      }
      return oip_infer(request, exchange);
    case OipModelPath::Action::kExplain:
      if (request.method != "POST") return method_not_allowed("POST", path);
      if (options_.auth_inference) {
        if (auto denied = token_.require_token(request)) return std::move(*denied);
      }
      return oip_explain(request, exchange);
  }
  return error_reply(404, "no such endpoint");
}

Reply PredictionService::oip_infer(const Request& request, Exchange& exchange) {
  Metrics::InFlight guard(metrics_);
  if (!request.header("Inference-Header-Content-Length").empty()) {
    return error_reply(400, "the binary tensor data extension is not supported: send the "
                            "tensor as JSON \"data\"");
  }
  WorkerLease worker(workers_);
  OipInferRequest infer;
  ParsedInstances& input = worker->parsed;
  if (auto error = parse_oip_infer(request.body, oip_limits_, infer, input)) {
    return error_reply(error->status, error->message);
  }
  const ModelInfo& info = workers_.info();
  Tensor& x = worker->x;
  x.resize(Shape{input.rows, info.input_size()});
  float* xd = x.data();
  // FP32 values are model inputs already; UINT8 values are pixels, scaled as training did.
  const float scale = infer.datatype == OipDatatype::kUint8 ? info.pixel_scale : 1.0f;
  for (size_t i = 0; i < input.pixels.size(); ++i) xd[i] = input.pixels[i] * scale;

  const Tensor& probs = run_model(*worker, exchange);
  // The protocol echoes the body's "id"; without one, the request id stands in.
  write_oip_infer_response(worker->response, model_name_, info.version,
                           infer.id ? std::string_view(*infer.id) : std::string_view(exchange.id),
                           probs, infer);
  return json_reply(200, worker->response);
}

}  // namespace simdnn::serving
