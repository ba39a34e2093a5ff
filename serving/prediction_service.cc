#include "prediction_service.h"

#include <algorithm>
#include <cmath>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>
#include <system_error>
#include <utility>
#include <vector>

#include "simdnn/image.h"
#include "simdnn/image_ops.h"
#include "simdnn/io_error.h"
#include "multipart.h"
#include "request_id.h"

namespace simdnn::serving {

namespace {

// One of a bounded number of concurrent image decodes; false when none is free.
class DecodeSlot {
 public:
  DecodeSlot(std::atomic<size_t>& running, size_t most) : running_(running) {
    held_ = running_.fetch_add(1) < most;
    if (!held_) running_.fetch_sub(1);
  }
  ~DecodeSlot() {
    if (held_) running_.fetch_sub(1);
  }
  DecodeSlot(const DecodeSlot&) = delete;
  DecodeSlot& operator=(const DecodeSlot&) = delete;
  explicit operator bool() const { return held_; }

 private:
  std::atomic<size_t>& running_;
  bool held_ = false;
};

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// "image/png; charset=x" -> "image/png", lower case.
std::string media_type(std::string_view content_type) {
  std::string t(content_type.substr(0, content_type.find(';')));
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  t.erase(t.begin(), std::find_if(t.begin(), t.end(), not_space));
  t.erase(std::find_if(t.rbegin(), t.rend(), not_space).base(), t.end());
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  return t;
}

MonitorOptions monitor_options(const ServeOptions& o) {
  if (o.store_queue == 0 || o.accuracy_window == 0 || o.drift_window == 0) {
    throw std::invalid_argument("--store-queue, --accuracy-window and --drift-window must be >= 1");
  }
  if (!(o.store_max_age_hours >= 0)) {
    throw std::invalid_argument("--store-max-age-hours must be >= 0");
  }
  if (o.store_inputs && o.store.empty()) {
    throw std::invalid_argument("--store-inputs needs --store FILE");
  }
  MonitorOptions m;
  m.store = o.store;
  m.store_inputs = o.store_inputs;
  m.store_options.queue_capacity = o.store_queue;
  m.store_options.max_age =
      std::chrono::seconds(static_cast<int64_t>(std::llround(o.store_max_age_hours * 3600)));
  m.store_options.max_rows = o.store_max_rows;
  m.quality.accuracy_window = o.accuracy_window;
  m.quality.prediction_window = o.drift_window;
  m.top_k = static_cast<size_t>(std::max(1, o.default_top_k));
  return m;
}

}  // namespace

PredictionService::PredictionService(const ServeOptions& options, bool)
    : options_(options),
      workers_(static_cast<size_t>(options.threads)),
      metrics_(options.max_batch),
      token_(options.auth_token),
      access_log_(options.access_log, options.log_sample),
      monitor_(monitor_options(options)) {
  if (options.auth_inference && options.auth_token.empty()) {
    throw std::invalid_argument("--auth-inference needs a token (--auth-token-file)");
  }
  if (options.max_inflight_body_bytes < options.max_body_bytes) {
    throw std::invalid_argument("--max-inflight-body-bytes (" +
                                std::to_string(options.max_inflight_body_bytes) +
                                ") is below --max-body-bytes (" +
                                std::to_string(options.max_body_bytes) +
                                "): no chunked body could ever be received");
  }
  const size_t io_threads = options.threads > 0 ? static_cast<size_t>(options.threads)
                                                : std::max(1u, std::thread::hardware_concurrency());
  max_decodes_ = options.max_concurrent_decodes > 0 ? options.max_concurrent_decodes : io_threads;
  if (!(options.log_sample >= 0 && options.log_sample <= 1)) {
    throw std::invalid_argument("--log-sample must be within 0..1");
  }
}

PredictionService::PredictionService(Model model, const ServeOptions& options)
    : PredictionService(options, true) {
  repository_ = std::make_unique<ModelRepository>(
      std::move(model), options.model_name.empty() ? "model" : options.model_name, metrics_);
}

PredictionService::PredictionService(RepositoryOptions repository, const ServeOptions& options)
    : PredictionService(options, true) {
  repository_ = std::make_unique<ModelRepository>(std::move(repository), metrics_);
}

Resolution PredictionService::default_model(const ModelSet& live,
                                            std::string_view request_id) const {
  const std::string& name = options_.model_name;
  if (!name.empty() && (live.find(name) || live.unloaded(name))) {
    return live.resolve(name, std::nullopt, request_id);
  }
  if (live.models().empty()) return {nullptr, 503, "no model is loaded"};
  return live.resolve(live.models().begin()->first, std::nullopt, request_id);
}

Reply PredictionService::handle(const Request& request) {
  const auto start = Clock::now();
  Exchange exchange;
  exchange.id = sanitize_request_id(request.header("X-Request-Id"));
  Reply reply;
  try {
    reply = route(request, exchange);
  } catch (const std::exception& e) {
    reply = error_reply(500, std::string("internal error: ") + e.what());
  }
  reply.headers.emplace_back("X-Request-Id", exchange.id);
  if (exchange.served) {
    reply.headers.emplace_back("X-Model-Name", exchange.served->name);
    reply.headers.emplace_back("X-Model-Version", exchange.served->version);
  }
  count_transport_reply(request.path, reply.status);
  if (access_log_.enabled() && access_log_.sampled()) {
    AccessRecord record;
    record.id = exchange.id;
    record.peer = request.peer;
    record.method = request.method;
    record.path = request.path;
    record.status = reply.status;
    record.bytes = reply.body.size();
    record.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (exchange.served) {
      record.model = exchange.served->name;
      record.version = exchange.served->version;
    }
    record.predicted_class = exchange.predicted_class;
    record.confidence = exchange.confidence;
    access_log_.write(record);
  }
  return reply;
}

Reply PredictionService::route(const Request& request, Exchange& exchange) {
  const std::string_view path = request.path;
  const bool get = request.method == "GET";
  if (path == "/v2" || path.starts_with("/v2/")) return route_v2(request, exchange);
  if (path == "/predict") {
    if (request.method == "POST") {
      exchange.model = true;
      if (options_.auth_inference) {
        if (auto denied = token_.require_token(request)) return std::move(*denied);
      }
      std::string_view top_k;
      const bool has_top_k = request.query_param("top_k", &top_k);
      Reply reply = predict(request.header("Content-Type"),
                            has_top_k ? std::optional<std::string_view>(top_k) : std::nullopt,
                            request.body, exchange);
      if (reply.status == 200 && !reply.body.empty() && reply.body.back() == '}') {
        // The id is printable ASCII (sanitize_request_id); json quotes '"' and '\\'.
        reply.body.pop_back();
        reply.body += R"(,"request_id":")";
        for (const char c : exchange.id) {  // as json(id).dump() quotes printable ASCII
          if (c == '"' || c == '\\') reply.body += '\\';
          reply.body += c;
        }
        reply.body += '"';
        if (exchange.served) {
          reply.body += R"(,"model_name":)";
          reply.body += exchange.served->name_json;
        }
        reply.body += '}';
      }
      return reply;
    }
    Reply reply = error_reply(405, "use POST /predict");
    reply.headers.emplace_back("Allow", "POST");
    return reply;
  }
  if (get && path == "/healthz") return healthz();
  if (get && path == "/readyz") return readyz();
  if (get && path == "/metrics") return metrics_text();
  return error_reply(404, "no such endpoint: " + std::string(request.method) + " " +
                              std::string(path));
}

Reply PredictionService::healthz() {
  Metrics::InFlight guard(metrics_);
  return {200, R"({"status":"ok"})", kJsonContentType, {}};
}

Reply PredictionService::readyz() {
  Metrics::InFlight guard(metrics_);
  if (!ready_.load()) return {503, R"({"status":"stopping"})", kJsonContentType, {}};
  const std::shared_ptr<const ModelSet> live = repository_->live();
  const ModelSet::Entry* entry = nullptr;
  if (!options_.model_name.empty()) entry = live->find(options_.model_name);
  if (!entry && !live->models().empty()) entry = &live->models().begin()->second;
  if (!entry) return {503, R"({"status":"no model loaded"})", kJsonContentType, {}};
  return {200, R"({"status":"ready","model_version":)" + entry->primary->version_json + "}",
          kJsonContentType, {}};
}

Reply PredictionService::metrics_text() {
  Metrics::InFlight guard(metrics_);
  // The live-quality and store metrics render as a block of their own (model_monitor.h).
  return {200, metrics_.render() + monitor_.render(), kMetricsContentType, {}};
}

Reply PredictionService::predict(std::string_view content_type,
                                 std::optional<std::string_view> top_k_param,
                                 std::string_view body, Exchange& exchange) {
  Metrics::InFlight guard(metrics_);
  // The live set is read once: this request finishes on this version whatever reloads do.
  Resolution resolved = default_model(*repository_->live(), exchange.id);
  if (!resolved.version) return error_reply(resolved.status, resolved.error);
  exchange.served = std::move(resolved.version);
  const ModelVersion& served = *exchange.served;
  const std::string type = media_type(content_type);
  const bool is_json = type == "application/json";
  const bool is_multipart = type == "multipart/form-data";
  const bool is_image = type.starts_with("image/") || is_multipart;
  if (!is_json && !is_image) {
    return error_reply(415, (type.empty() ? std::string("no Content-Type")
                                          : "unsupported Content-Type \"" + type + "\"") +
                                ": send application/json, an image (image/png, image/jpeg, ...) "
                                "or multipart/form-data with a file part");
  }
  std::string image_name;  // for image errors only: not built for JSON bodies
  if (is_image) image_name = "request body (" + type + ")";
  if (is_multipart) {
    FilePart part;
    if (auto error = parse_multipart_file(content_type, body, part)) {
      return error_reply(error->status, error->message);
    }
    body = part.data;
    image_name = "multipart file part";
    if (!part.filename.empty()) image_name += " \"" + std::string(part.filename) + "\"";
  }
  size_t top_k = static_cast<size_t>(std::max(1, options_.default_top_k));
  if (top_k_param) {
    const std::string_view v = *top_k_param;
    size_t parsed = 0;
    const auto r = std::from_chars(v.data(), v.data() + v.size(), parsed);
    if (r.ec != std::errc() || r.ptr != v.data() + v.size() || parsed == 0) {
      return error_reply(400, "top_k must be a positive integer, got \"" + std::string(v) + "\"");
    }
    top_k = parsed;
  }
  top_k = std::min(top_k, served.model.num_classes());

  WorkerLease worker(workers_);
  ParsedInstances& input = worker->parsed;
  const ModelInfo& info = served.model.info();
  const size_t features = info.input_size();
  if (is_json) {
    if (auto error = parse_predict_json(body, features, options_.max_batch, input)) {
      return error_reply(error->status, error->message);
    }
  } else {
    // Decoding holds up to max_image_pixels bytes (and the decoder's rows) for its duration:
    // at most max_concurrent_decodes of them at once bounds that memory whatever clients send.
    DecodeSlot slot(decoding_, max_decodes_);
    if (!slot) {
      Reply busy = error_reply(503, "too many image decodes at once (--max-concurrent-decodes " +
                                        std::to_string(max_decodes_) + "): retry");
      busy.headers.emplace_back("Retry-After", "1");
      return busy;
    }
    try {
      const auto* bytes = reinterpret_cast<const uint8_t*>(body.data());
      const GrayImage image = decode_image(std::span(bytes, body.size()), image_name,
                                           options_.max_image_pixels);
      // Checked after decoding (bounded by max_image_pixels) and before resizing: a 1 x 16M
      // strip is no photograph, and its pixels would all fold into a few output columns.
      const double aspect =
          static_cast<double>(std::max(image.width, image.height)) /
          std::max(1, std::min(image.width, image.height));
      if (aspect > options_.max_image_aspect) {
        return error_reply(400, image_name + ": " + std::to_string(image.width) + "x" +
                                    std::to_string(image.height) +
                                    " is too elongated (aspect ratio above " +
                                    std::to_string(static_cast<int>(options_.max_image_aspect)) +
                                    ", --max-image-aspect)");
      }
      const std::vector<uint8_t> pixels =
          prepare_for_model(image, static_cast<int>(info.input_width),
                            static_cast<int>(info.input_height), Invert::kAuto);
      input.rows = 1;
      input.pixels.assign(pixels.begin(), pixels.end());
    } catch (const IoError& e) {
      return error_reply(400, e.what());
    }
  }

  Tensor& x = worker->x;
  x.resize(Shape{input.rows, features});
  float* xd = x.data();
  const float scale = info.pixel_scale;
  for (size_t i = 0; i < input.pixels.size(); ++i) xd[i] = input.pixels[i] * scale;

  const Tensor& probs = run_model(served, *worker, exchange);
  served.writer.write_response(worker->response, probs, top_k, worker->order);
  // Copied: the worker keeps its buffer's capacity.
  return {200, worker->response, kJsonContentType, {}};
}

const Tensor& PredictionService::run_model(const ModelVersion& version, Worker& worker,
                                           Exchange& exchange) {
  const auto start = Clock::now();
  const Tensor& probs = WorkerPool::predict(version.model, worker);
  metrics_.observe_inference(*version.series,
                             std::chrono::duration<double>(Clock::now() - start).count(),
                             probs.rows());
  if (probs.rows() > 0 && probs.cols() > 0) {
    const float* p = probs.data();
    size_t best = 0;
    for (size_t c = 1; c < probs.cols(); ++c) {
      if (p[c] > p[best]) best = c;
    }
    exchange.predicted_class = best;
    exchange.confidence = p[best];
  }
  // Counted, windowed and stored under the version that computed it.
  const ModelInfo& info = version.model.info();
  monitor_.observe(monitor_.version(version.name, version.version, info,
                                    version.model.num_classes()),
                   exchange.id, worker.x, probs, info.pixel_scale);
  return probs;
}

}  // namespace simdnn::serving
