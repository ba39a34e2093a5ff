// PredictionService's Open Inference Protocol (KServe v2) endpoints, under /v2 (formats in
// docs/serving.md, parsing and bodies in oip.h).
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "feedback_request.h"
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
  if (path.starts_with("/v2/repository/") || path == "/v2/repository") {
    return route_repository(request);
  }
  if (const auto feedback_model = feedback_model_of(path)) {
    if (request.method != "POST") return method_not_allowed("POST", path);
    if (options_.auth_inference) {
      if (auto denied = token_.require_token(request)) return std::move(*denied);
    }
    return feedback(request, *feedback_model);
  }
  OipModelPath target;
  if (!parse_oip_model_path(path, target)) {
    return error_reply(404, "no such endpoint: " + std::string(request.method) + " " +
                                std::string(path));
  }
  // The live set is read once: this request finishes on this version whatever reloads do.
  const std::shared_ptr<const ModelSet> live = repository_->live();
  Resolution resolved = live->resolve(target.name, target.version, exchange.id);
  if (!resolved.version) return error_reply(resolved.status, resolved.error);
  const ModelSet::Entry& entry = *live->find(target.name);
  // Metadata and readiness without a version describe the primary version, not a canary.
  const ModelVersion& described = target.version ? *resolved.version : *entry.primary;
  exchange.model = true;
  switch (target.action) {
    case OipModelPath::Action::kMetadata: {
      if (!get) return method_not_allowed("GET", path);
      Metrics::InFlight guard(metrics_);
      std::vector<std::string> versions;
      if (target.version) {
        versions.push_back(described.version);
      } else {
        for (const auto& v : entry.versions) versions.push_back(v->version);
      }
      return json_reply(200, oip_model_metadata(described.name, versions, described.model.info(),
                                                described.model.num_classes()));
    }
    case OipModelPath::Action::kReady: {
      if (!get) return method_not_allowed("GET", path);
      Metrics::InFlight guard(metrics_);
      return ready_.load() ? json_reply(200, R"({"name":)" + json_quote(described.name) +
                                                 R"(,"ready":true})")
                           : json_reply(503, R"({"name":)" + json_quote(described.name) +
                                                 R"(,"ready":false})");
    }
    case OipModelPath::Action::kInfer:
      if (request.method != "POST") return method_not_allowed("POST", path);
      if (options_.auth_inference) {
        if (auto denied = token_.require_token(request)) return std::move(*denied);
      }
      exchange.served = std::move(resolved.version);
      return oip_infer(request, exchange);
    case OipModelPath::Action::kExplain:
      if (request.method != "POST") return method_not_allowed("POST", path);
      if (options_.auth_inference) {
        if (auto denied = token_.require_token(request)) return std::move(*denied);
      }
      exchange.served = std::move(resolved.version);
      return oip_explain(request, exchange);
  }
  return error_reply(404, "no such endpoint");
}

Reply PredictionService::route_repository(const Request& request) {
  const std::string_view path = request.path;
  if (request.method != "POST") return method_not_allowed("POST", path);
  Metrics::InFlight guard(metrics_);
  // Repository control changes what every client gets: it always needs the token, and is off
  // when the server has none.
  if (!token_.enabled()) {
    return error_reply(403, "the repository API needs a bearer token: start serve with "
                            "--auth-token-file");
  }
  if (auto denied = token_.require_token(request)) return std::move(*denied);
  if (path == "/v2/repository/index") {
    std::string out = "[";
    for (const RepositoryIndexEntry& e : repository_->index()) {
      if (out.size() > 1) out += ',';
      out += R"({"name":)" + json_quote(e.name) + R"(,"version":)" + json_quote(e.version) +
             R"(,"state":)" + json_quote(e.state) + R"(,"reason":)" + json_quote(e.reason) + "}";
    }
    return json_reply(200, out + "]");
  }
  constexpr std::string_view kPrefix = "/v2/repository/models/";
  if (path.starts_with(kPrefix)) {
    const std::string_view rest = path.substr(kPrefix.size());
    const size_t slash = rest.find('/');
    if (slash != std::string_view::npos && slash > 0) {
      const std::string name(rest.substr(0, slash));
      const std::string_view action = rest.substr(slash + 1);
      if (action == "load" || action == "unload") {
        const LoadOutcome outcome =
            action == "load" ? repository_->load(name) : repository_->unload(name);
        if (outcome.status != 200) return error_reply(outcome.status, outcome.message);
        return json_reply(200, "{}");
      }
    }
  }
  return error_reply(404, "no such endpoint: " + std::string(request.method) + " " +
                              std::string(path));
}

std::optional<Reply> refuse_binary_tensors(const Request& request) {
  if (request.header("Inference-Header-Content-Length").empty()) return std::nullopt;
  return error_reply(400, "the binary tensor data extension is not supported: send the "
                          "tensor as JSON \"data\"");
}

OipLimits PredictionService::oip_limits(const ModelInfo& info) const {
  OipLimits limits;
  limits.input_height = info.input_height;
  limits.input_width = info.input_width;
  limits.max_batch = options_.max_batch;
  limits.max_fp32 = 255.0 * static_cast<double>(info.pixel_scale);
  return limits;
}

Reply PredictionService::oip_infer(const Request& request, Exchange& exchange) {
  Metrics::InFlight guard(metrics_);
  if (auto refused = refuse_binary_tensors(request)) return std::move(*refused);
  const ModelVersion& served = *exchange.served;
  const ModelInfo& info = served.model.info();
  const OipLimits limits = oip_limits(info);
  WorkerLease worker(workers_);
  OipInferRequest infer;
  ParsedInstances& input = worker->parsed;
  if (auto error = parse_oip_infer(request.body, limits, infer, input)) {
    return error_reply(error->status, error->message);
  }
  Tensor& x = worker->x;
  x.resize(Shape{input.rows, info.input_size()});
  float* xd = x.data();
  // FP32 values are model inputs already; UINT8 values are pixels, scaled as training did.
  const float scale = infer.datatype == OipDatatype::kUint8 ? info.pixel_scale : 1.0f;
  for (size_t i = 0; i < input.pixels.size(); ++i) xd[i] = input.pixels[i] * scale;

  const Tensor& probs = run_model(served, *worker, exchange);
  // The protocol echoes the body's "id"; without one, the request id stands in.
  write_oip_infer_response(worker->response, served.name, served.version,
                           infer.id ? std::string_view(*infer.id) : std::string_view(exchange.id),
                           probs, infer);
  return json_reply(200, worker->response);
}

}  // namespace simdnn::serving
