#include "serve_app.h"

#include <httplib.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <span>
#include <stdexcept>

#include "simdnn/io_error.h"
#include "simdnn/safetensors.h"
#include "simdnn/tensor.h"
#include "simdnn/threading.h"

namespace simdnn::serving {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// JSON request parsing: a SAX handler, so the 784 numbers of an image go straight into a
// reused float vector instead of a DOM of 784 json nodes, and nesting is refused at the first
// unexpected '[' or '{' rather than after building it.

class PredictJsonHandler {
 public:
  PredictJsonHandler(size_t input_size, size_t max_batch, ParsedInstances& out)
      : input_size_(input_size), max_batch_(max_batch), out_(out) {}

  bool null() { return unexpected("null"); }
  bool boolean(bool) { return unexpected("a boolean"); }
  bool number_integer(json::number_integer_t v) { return number(static_cast<double>(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return number(static_cast<double>(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return number(v); }
  bool string(json::string_t&) { return unexpected("a string"); }
  bool binary(json::binary_t&) { return unexpected("binary data"); }

  bool start_object(size_t) {
    if (where_ != Where::kTop) return unexpected("an object");
    where_ = Where::kObject;
    return true;
  }
  bool key(json::string_t& name) {
    // Keys occur only in the top-level object: nested objects are refused in start_object.
    if (field_ != Field::kNone) return fail(400, "give either \"pixels\" or \"instances\", once");
    if (name == "pixels") {
      field_ = Field::kPixels;
    } else if (name == "instances") {
      field_ = Field::kInstances;
    } else {
      return fail(400, "unknown field " + json(name).dump() +
                           ": expected \"pixels\" or \"instances\"");
    }
    return true;
  }
  bool end_object() {
    where_ = Where::kDone;
    return true;
  }
  bool start_array(size_t) {
    if (where_ == Where::kObject) {
      if (field_ == Field::kPixels) {
        where_ = Where::kPixelRow;
        return begin_row();
      }
      where_ = Where::kInstances;
      return true;
    }
    if (where_ == Where::kInstances) {
      where_ = Where::kInstanceRow;
      return begin_row();
    }
    return unexpected("an array");
  }
  bool end_array() {
    switch (where_) {
      case Where::kPixelRow: where_ = Where::kObject; return end_row();
      case Where::kInstanceRow: where_ = Where::kInstances; return end_row();
      case Where::kInstances:
        where_ = Where::kObject;
        if (out_.rows == 0) return fail(400, "\"instances\" is empty");
        return true;
      default: return unexpected("the end of an array");  // unreachable for valid JSON
    }
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) {
    if (!error_) {
      // "[json.exception.parse_error.101] parse error at line 1, column 3: ..." without the id.
      std::string_view what = e.what();
      if (const size_t close = what.find("] "); close != std::string_view::npos) {
        what.remove_prefix(close + 2);
      }
      error_ = RequestError{400, "malformed JSON: " + std::string(what)};
    }
    return false;
  }

  // The outcome once sax_parse has returned.
  std::optional<RequestError> finish(bool parsed) {
    if (error_) return error_;
    if (!parsed) return RequestError{400, "malformed JSON"};
    if (field_ == Field::kNone) {
      return RequestError{400, "expected a JSON object with \"pixels\" or \"instances\""};
    }
    return std::nullopt;
  }

 private:
  enum class Where { kTop, kObject, kPixelRow, kInstances, kInstanceRow, kDone };
  enum class Field { kNone, kPixels, kInstances };

  bool fail(int status, std::string message) {
    error_ = RequestError{status, std::move(message)};
    return false;
  }

  // "pixels[12]" or "instances[3][12]".
  std::string position(size_t column) const {
    std::string s = field_ == Field::kPixels ? "pixels" : "instances[" + std::to_string(out_.rows) + "]";
    return s + "[" + std::to_string(column) + "]";
  }

  std::string expected_row() const {
    return "an array of " + std::to_string(input_size_) + " pixel values (0..255)";
  }

  bool unexpected(const char* what) {
    switch (where_) {
      case Where::kTop:
        return fail(400, std::string("the body is ") + what +
                             ", expected a JSON object with \"pixels\" or \"instances\"");
      case Where::kObject:
        return fail(400, std::string(field_ == Field::kPixels ? "\"pixels\"" : "\"instances\"") +
                             " is " + what + ", expected " +
                             (field_ == Field::kPixels ? expected_row()
                                                       : "an array of such arrays"));
      case Where::kInstances:
        return fail(400, "instances[" + std::to_string(out_.rows) + "] is " + what +
                             ", expected " + expected_row());
      case Where::kPixelRow:
      case Where::kInstanceRow:
        return fail(400, position(column_) + " is " + what + ", expected a number 0..255");
      case Where::kDone: break;
    }
    return fail(400, std::string("unexpected ") + what);
  }

  bool begin_row() {
    if (out_.rows >= max_batch_) {
      return fail(413, "more than " + std::to_string(max_batch_) +
                           " instances in one request (--max-batch)");
    }
    column_ = 0;
    return true;
  }
  bool end_row() {
    if (column_ != input_size_) {
      const std::string name =
          field_ == Field::kPixels ? "\"pixels\"" : "instances[" + std::to_string(out_.rows) + "]";
      return fail(400, name + " has " + std::to_string(column_) + " values, expected " +
                           std::to_string(input_size_));
    }
    ++out_.rows;
    return true;
  }
  bool number(double v) {
    if (where_ != Where::kPixelRow && where_ != Where::kInstanceRow) return unexpected("a number");
    if (column_ >= input_size_) {
      const std::string name =
          field_ == Field::kPixels ? "\"pixels\"" : "instances[" + std::to_string(out_.rows) + "]";
      return fail(400, name + " has more than " + std::to_string(input_size_) + " values");
    }
    // Also catches overflowing literals such as 1e999, which parse to infinity.
    if (!(v >= 0.0 && v <= 255.0)) {
      char buf[32];
      const auto r = std::to_chars(buf, buf + sizeof buf, v);
      return fail(400, position(column_) + " = " + std::string(buf, r.ptr) +
                           " is outside the pixel range 0..255");
    }
    out_.pixels.push_back(static_cast<float>(v));
    ++column_;
    return true;
  }

  const size_t input_size_;
  const size_t max_batch_;
  ParsedInstances& out_;
  Where where_ = Where::kTop;
  Field field_ = Field::kNone;
  size_t column_ = 0;
  std::optional<RequestError> error_;
};

// The common case without a general JSON parser: exactly {"pixels": [numbers]} or
// {"instances": [[numbers], ...]} with plain keys, every row the right length and every value
// in range. It accepts only valid JSON of that shape and converts numbers as the SAX path does
// (integers exactly, others with a correctly rounded from_chars), so the two agree on every
// body the fast path accepts. Anything else, errors included, returns false and goes to the
// SAX parser, which then produces the precise message. About 8x faster for 784 numbers.
class FastPredictParser {
 public:
  FastPredictParser(std::string_view body, size_t input_size, size_t max_batch,
                    ParsedInstances& out)
      : p_(body.data()), end_(body.data() + body.size()), input_size_(input_size),
        max_batch_(max_batch), out_(out) {}

  bool parse() {
    if (!consume('{')) return false;
    skip_space();
    bool ok = false;
    if (consume_literal("\"pixels\"")) {
      ok = consume(':') && row();
    } else if (consume_literal("\"instances\"")) {
      ok = consume(':') && consume('[') && row();
      while (ok && consume(',')) ok = row();
      ok = ok && consume(']');
    }
    if (!ok || !consume('}')) return false;
    skip_space();
    return p_ == end_;
  }

 private:
  static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  void skip_space() {
    while (p_ < end_ && is_space(*p_)) ++p_;
  }
  // Skips whitespace, then consumes c.
  bool consume(char c) {
    skip_space();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool consume_literal(std::string_view s) {
    if (static_cast<size_t>(end_ - p_) < s.size() || std::string_view(p_, s.size()) != s) {
      return false;
    }
    p_ += s.size();
    return true;
  }

  // [v, v, ...] with exactly input_size values.
  bool row() {
    if (out_.rows >= max_batch_ || !consume('[')) return false;
    for (size_t i = 0; i < input_size_; ++i) {
      if (i && !consume(',')) return false;
      skip_space();
      float v;
      if (!number(v)) return false;
      out_.pixels.push_back(v);
    }
    if (!consume(']')) return false;
    ++out_.rows;
    return true;
  }

  // A JSON number in 0..255: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, no sign here
  // (negative values are errors, left to the SAX path).
  bool number(float& v) {
    const char* start = p_;
    const char* q = p_;
    if (q == end_ || !is_digit(*q)) return false;
    unsigned integer = 0;
    if (*q == '0') {
      ++q;
    } else {
      while (q < end_ && is_digit(*q) && q - start < 4) integer = integer * 10 + (*q++ - '0');
      if (q < end_ && is_digit(*q)) return false;  // 5+ digits: out of range (or SAX decides)
    }
    const bool plain_integer = q == end_ || (*q != '.' && *q != 'e' && *q != 'E');
    if (plain_integer) {
      if (integer > 255) return false;
      v = static_cast<float>(integer);
      p_ = q;
      return true;
    }
    if (*q == '.') {
      ++q;
      if (q == end_ || !is_digit(*q)) return false;
      while (q < end_ && is_digit(*q)) ++q;
    }
    if (q < end_ && (*q == 'e' || *q == 'E')) {
      ++q;
      if (q < end_ && (*q == '+' || *q == '-')) ++q;
      if (q == end_ || !is_digit(*q)) return false;
      while (q < end_ && is_digit(*q)) ++q;
    }
    double d = 0;
    const auto r = std::from_chars(start, q, d);
    if (r.ec != std::errc() || r.ptr != q || !(d >= 0.0 && d <= 255.0)) return false;
    v = static_cast<float>(d);
    p_ = q;
    return true;
  }

  const char* p_;
  const char* const end_;
  const size_t input_size_;
  const size_t max_batch_;
  ParsedInstances& out_;
};

// ---------------------------------------------------------------------------------------------
// Worker threads and per-worker state.

// cpp-httplib's ThreadPool, plus flush-to-zero on each worker thread (denormal activations
// would otherwise slow inference on inputs that drive them there).
class FlushToZeroThreadPool : public httplib::TaskQueue {
 public:
  explicit FlushToZeroThreadPool(size_t n) {
    threads_.reserve(n);
    for (size_t i = 0; i < n; ++i) threads_.emplace_back([this] { work(); });
  }
  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard lock(mutex_);
      jobs_.push_back(std::move(fn));
    }
    cond_.notify_one();
  }
  // Runs every queued job, then joins: the server calls this after it stops accepting.
  void shutdown() override {
    {
      std::lock_guard lock(mutex_);
      shutdown_ = true;
    }
    cond_.notify_all();
    for (auto& t : threads_) t.join();
  }

 private:
  void work() {
    enable_flush_to_zero();
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock lock(mutex_);
        cond_.wait(lock, [&] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;  // shutdown_ and nothing left
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      fn();
    }
  }

  std::vector<std::thread> threads_;
  std::deque<std::function<void()>> jobs_;
  std::mutex mutex_;
  std::condition_variable cond_;
  bool shutdown_ = false;
};

// What one request needs besides the request itself: a model copy (predict is not
// thread-safe) and buffers that keep their capacity from request to request.
struct Worker {
  explicit Worker(Model m) : model(std::move(m)) {}
  Model model;
  ParsedInstances parsed;
  Tensor x;
  std::vector<int> order;  // class indices, sorted for top-k
  std::string response;
};

// At most `threads` requests run at once (one per httplib worker), and there are as many
// Workers, so acquire() does not wait in practice; the lock is held for a few instructions.
class WorkerPool {
 public:
  void add(std::unique_ptr<Worker> w) {
    free_.push_back(w.get());
    all_.push_back(std::move(w));
  }
  Worker* acquire() {
    std::unique_lock lock(mutex_);
    cond_.wait(lock, [&] { return !free_.empty(); });
    Worker* w = free_.back();
    free_.pop_back();
    return w;
  }
  void release(Worker* w) {
    {
      std::lock_guard lock(mutex_);
      free_.push_back(w);
    }
    cond_.notify_one();
  }
  Worker& any() { return *all_.front(); }

 private:
  std::vector<std::unique_ptr<Worker>> all_;
  std::vector<Worker*> free_;
  std::mutex mutex_;
  std::condition_variable cond_;
};

class WorkerLease {
 public:
  explicit WorkerLease(WorkerPool& pool) : pool_(pool), worker_(pool.acquire()) {}
  ~WorkerLease() { pool_.release(worker_); }
  WorkerLease(const WorkerLease&) = delete;
  WorkerLease& operator=(const WorkerLease&) = delete;
  Worker& operator*() const { return *worker_; }
  Worker* operator->() const { return worker_; }

 private:
  WorkerPool& pool_;
  Worker* worker_;
};

// ---------------------------------------------------------------------------------------------
// Metrics.

enum Endpoint { kPredict, kMetrics, kHealthz, kReadyz, kOther, kEndpointCount };
constexpr std::array<const char*, kEndpointCount> kEndpointLabels = {
    "/predict", "/metrics", "/healthz", "/readyz", "other"};

// Bounded label cardinality: unknown paths all count as "other".
Endpoint endpoint_of(const std::string& path) {
  for (int e = 0; e < kOther; ++e) {
    if (path == kEndpointLabels[e]) return static_cast<Endpoint>(e);
  }
  return kOther;
}

prometheus::Histogram::BucketBoundaries batch_buckets(size_t max_batch) {
  prometheus::Histogram::BucketBoundaries b;
  for (size_t v = 1; v < max_batch; v *= 2) b.push_back(static_cast<double>(v));
  b.push_back(static_cast<double>(max_batch));
  return b;
}

struct Metrics {
  explicit Metrics(const ModelInfo& info, size_t num_classes, size_t max_batch)
      : registry(std::make_shared<prometheus::Registry>()),
        requests(prometheus::BuildCounter()
                     .Name("http_requests_total")
                     .Help("HTTP requests answered, by endpoint and status code")
                     .Register(*registry)),
        inference_time(prometheus::BuildHistogram()
                           .Name("model_inference_time_seconds")
                           .Help("Time in model.predict per request (one batched call)")
                           .Register(*registry)
                           .Add({}, prometheus::Histogram::BucketBoundaries{
                                        5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3,
                                        2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 1.0})),
        batch_size(prometheus::BuildHistogram()
                       .Name("model_batch_size")
                       .Help("Instances per /predict request that reached the model")
                       .Register(*registry)
                       .Add({}, batch_buckets(max_batch))),
        in_flight(prometheus::BuildGauge()
                      .Name("http_requests_in_flight")
                      .Help("Requests being handled right now")
                      .Register(*registry)
                      .Add({})) {
    const std::string input = std::to_string(info.input_height) + "x" +
                              std::to_string(info.input_width);
    prometheus::BuildGauge()
        .Name("model_info")
        .Help("The model being served (always 1)")
        .Register(*registry)
        .Add({{"version", info.version.empty() ? "unknown" : info.version},
              {"input", input},
              {"classes", std::to_string(num_classes)}})
        .Set(1);
  }

  // Family::Add builds a metric object and looks it up under the family's lock on every call;
  // the counters are cached per (endpoint, status) instead.
  void count(Endpoint endpoint, int status) {
    if (status < 100 || status > 599) status = 500;
    std::atomic<prometheus::Counter*>& slot = counters[endpoint][status - 100];
    prometheus::Counter* c = slot.load(std::memory_order_acquire);
    if (!c) {
      std::lock_guard lock(counters_mutex);
      c = &requests.Add({{"endpoint", kEndpointLabels[endpoint]},
                         {"status", std::to_string(status)}});
      slot.store(c, std::memory_order_release);
    }
    c->Increment();
  }

  std::string render() const {
    return prometheus::TextSerializer().Serialize(registry->Collect());
  }

  std::shared_ptr<prometheus::Registry> registry;
  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Histogram& inference_time;
  prometheus::Histogram& batch_size;
  prometheus::Gauge& in_flight;
  std::array<std::array<std::atomic<prometheus::Counter*>, 500>, kEndpointCount> counters{};
  std::mutex counters_mutex;
};

class InFlight {
 public:
  explicit InFlight(prometheus::Gauge& g) : gauge_(g) { gauge_.Increment(); }
  ~InFlight() { gauge_.Decrement(); }

 private:
  prometheus::Gauge& gauge_;
};

// ---------------------------------------------------------------------------------------------
// Responses.

void set_json(httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.body = std::move(body);
  res.set_header("Content-Type", "application/json");
}

void set_error(httplib::Response& res, int status, const std::string& message) {
  set_json(res, status, json{{"error", message}}.dump());
}

void append_float(std::string& out, float v) {
  if (!std::isfinite(v)) {
    out += "null";  // JSON has no NaN or infinity
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back as v
  out.append(buf, r.ptr);
}

// "image/png; charset=x" -> "image/png", lower case.
std::string media_type(const std::string& content_type) {
  std::string t = content_type.substr(0, content_type.find(';'));
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  t.erase(t.begin(), std::find_if(t.begin(), t.end(), not_space));
  t.erase(std::find_if(t.rbegin(), t.rend(), not_space).base(), t.end());
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  return t;
}

}  // namespace

std::optional<RequestError> parse_predict_json(std::string_view body, size_t input_size,
                                               size_t max_batch, ParsedInstances& out) {
  out.rows = 0;
  out.pixels.clear();
  if (FastPredictParser(body, input_size, max_batch, out).parse()) return std::nullopt;
  out.rows = 0;
  out.pixels.clear();
  PredictJsonHandler handler(input_size, max_batch, out);
  const bool parsed = json::sax_parse(body.begin(), body.end(), &handler,
                                      json::input_format_t::json, /*strict=*/true);
  return handler.finish(parsed);
}

// ---------------------------------------------------------------------------------------------

struct PredictionServer::Impl {
  Impl(Model model, ServeOptions opts)
      : options(std::move(opts)),
        info(model.info()),
        num_classes(model.num_classes()),
        metrics(info, num_classes, options.max_batch) {
    // Each worker gets its own copy, made through the file format (Model has no copy
    // constructor; the round trip is exact and costs milliseconds, once).
    const SafetensorsFile file = model_to_safetensors(model);
    workers.add(std::make_unique<Worker>(std::move(model)));
    for (int i = 1; i < options.threads; ++i) {
      workers.add(std::make_unique<Worker>(model_from_safetensors(file, "model copy")));
    }
    for (const std::string& name : info.class_names) label_json.push_back(json(name).dump());
    while (label_json.size() < num_classes) label_json.push_back(json(std::to_string(label_json.size())).dump());
    version_json = json(info.version).dump();
    configure();
  }

  void configure() {
    const size_t threads = static_cast<size_t>(options.threads);
    server.new_task_queue = [threads] { return new FlushToZeroThreadPool(threads); };
    server.set_payload_max_length(options.max_body_bytes);
    server.set_keep_alive_max_count(std::max<size_t>(1, options.keep_alive_max_requests));
    server.set_keep_alive_timeout(options.keep_alive_timeout_seconds);
    server.set_read_timeout(options.read_timeout_seconds, 0);
    // Small responses: without TCP_NODELAY, Nagle + delayed ACK add up to 40 ms per request.
    server.set_tcp_nodelay(true);

    server.Post("/predict", [this](const httplib::Request& req, httplib::Response& res) {
      InFlight guard(metrics.in_flight);
      handle_predict(req, res);
    });
    server.Get("/predict", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("Allow", "POST");
      set_error(res, 405, "use POST /predict");
    });
    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      InFlight guard(metrics.in_flight);
      set_json(res, 200, R"({"status":"ok"})");
    });
    server.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
      InFlight guard(metrics.in_flight);
      if (ready.load()) {
        set_json(res, 200, R"({"status":"ready","model_version":)" + version_json + "}");
      } else {
        set_json(res, 503, R"({"status":"stopping"})");
      }
    });
    server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      InFlight guard(metrics.in_flight);
      res.status = 200;
      res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
    });

    // Called for every response with status >= 400 before it is written; fills in a JSON body
    // where httplib produced none (unknown path, body too large, malformed request line).
    server.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      switch (res.status) {
        case 404: set_error(res, 404, "no such endpoint: " + req.method + " " + req.path); break;
        case 413:
          set_error(res, 413, "request body larger than " +
                                  std::to_string(options.max_body_bytes) +
                                  " bytes (--max-body-bytes)");
          break;
        default: set_error(res, res.status, "HTTP status " + std::to_string(res.status)); break;
      }
      return httplib::Server::HandlerResponse::Handled;
    }));
    server.set_exception_handler(
        [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(ep);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          set_error(res, 500, "internal error: " + what);
        });
    // Counted just before the response is written, so a client that has its response also
    // finds it in /metrics.
    server.set_post_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      metrics.count(endpoint_of(req.path), res.status);
    });
  }

  void handle_predict(const httplib::Request& req, httplib::Response& res) {
    const std::string type = media_type(req.get_header_value("Content-Type"));
    const bool is_json = type == "application/json";
    const bool is_image = type.starts_with("image/");
    if (!is_json && !is_image) {
      set_error(res, 415,
                (type.empty() ? std::string("no Content-Type")
                              : "unsupported Content-Type \"" + type + "\"") +
                    ": send application/json or an image (image/png, image/jpeg, ...)");
      return;
    }
    size_t top_k = static_cast<size_t>(std::max(1, options.default_top_k));
    if (req.has_param("top_k")) {
      const std::string v = req.get_param_value("top_k");
      size_t parsed = 0;
      const auto r = std::from_chars(v.data(), v.data() + v.size(), parsed);
      if (r.ec != std::errc() || r.ptr != v.data() + v.size() || parsed == 0) {
        set_error(res, 400, "top_k must be a positive integer, got \"" + v + "\"");
        return;
      }
      top_k = parsed;
    }
    top_k = std::min(top_k, num_classes);

    WorkerLease worker(workers);
    ParsedInstances& input = worker->parsed;
    const size_t features = info.input_size();
    if (is_json) {
      if (auto error = parse_predict_json(req.body, features, options.max_batch, input)) {
        set_error(res, error->status, error->message);
        return;
      }
    } else {
      try {
        const auto* bytes = reinterpret_cast<const uint8_t*>(req.body.data());
        const GrayImage image = decode_image(std::span(bytes, req.body.size()),
                                             "request body (" + type + ")",
                                             options.max_image_pixels);
        const std::vector<uint8_t> pixels =
            prepare_for_model(image, static_cast<int>(info.input_width),
                              static_cast<int>(info.input_height), Invert::kAuto);
        input.rows = 1;
        input.pixels.assign(pixels.begin(), pixels.end());
      } catch (const IoError& e) {
        set_error(res, 400, e.what());
        return;
      }
    }

    Tensor& x = worker->x;
    x.resize(Shape{input.rows, features});
    float* xd = x.data();
    const float scale = info.pixel_scale;
    for (size_t i = 0; i < input.pixels.size(); ++i) xd[i] = input.pixels[i] * scale;

    const auto start = Clock::now();
    // One thread: the HTTP workers already run requests in parallel.
    const Tensor& probs = worker->model.predict(x, 1);
    metrics.inference_time.Observe(std::chrono::duration<double>(Clock::now() - start).count());
    metrics.batch_size.Observe(static_cast<double>(input.rows));

    write_predictions(probs, top_k, *worker);
    set_json(res, 200, worker->response);  // copied: the worker keeps its buffer's capacity
  }

  // {"model_version": "...", "predictions": [{"class": 3, "label": "Dress",
  //   "probabilities": [...], "top_k": [{"class": 3, "label": "Dress", "probability": 0.9}]}]}
  void write_predictions(const Tensor& probs, size_t top_k, Worker& w) const {
    std::string& out = w.response;
    out.clear();
    out += R"({"model_version":)";
    out += version_json;
    out += R"(,"predictions":[)";
    const size_t classes = probs.cols();
    w.order.resize(classes);
    for (size_t r = 0; r < probs.rows(); ++r) {
      const float* p = probs.data() + r * classes;
      for (size_t c = 0; c < classes; ++c) w.order[c] = static_cast<int>(c);
      // Highest first, the lower index on ties (as argmax_rows).
      std::partial_sort(w.order.begin(), w.order.begin() + top_k, w.order.end(),
                        [p](int a, int b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
      if (r) out += ',';
      out += R"({"class":)";
      out += std::to_string(w.order[0]);
      out += R"(,"label":)";
      out += label_json[w.order[0]];
      out += R"(,"probabilities":[)";
      for (size_t c = 0; c < classes; ++c) {
        if (c) out += ',';
        append_float(out, p[c]);
      }
      out += R"(],"top_k":[)";
      for (size_t k = 0; k < top_k; ++k) {
        const int c = w.order[k];
        if (k) out += ',';
        out += R"({"class":)";
        out += std::to_string(c);
        out += R"(,"label":)";
        out += label_json[c];
        out += R"(,"probability":)";
        append_float(out, p[c]);
        out += '}';
      }
      out += "]}";
    }
    out += "]}";
  }

  ServeOptions options;
  ModelInfo info;
  size_t num_classes;
  Metrics metrics;
  WorkerPool workers;
  std::vector<std::string> label_json;  // class names, already JSON-quoted
  std::string version_json;
  httplib::Server server;
  std::atomic<bool> ready{true};
  std::atomic<bool> stopping{false};
  std::atomic<bool> in_run{false};
};

PredictionServer::PredictionServer(Model model, ServeOptions options) {
  if (options.threads < 1) throw std::invalid_argument("threads must be at least 1");
  if (options.max_batch < 1) throw std::invalid_argument("max batch must be at least 1");
  if (options.max_body_bytes < 1) throw std::invalid_argument("max body bytes must be positive");
  if (options.port < 0 || options.port > 65535) {
    throw std::invalid_argument("port " + std::to_string(options.port) + " is not 0..65535");
  }
  impl_ = std::make_unique<Impl>(std::move(model), std::move(options));
}

PredictionServer::~PredictionServer() {
  stop();
  wait();
}

const ModelInfo& PredictionServer::model_info() const { return impl_->info; }

int PredictionServer::bind() {
  const ServeOptions& o = impl_->options;
  if (o.port == 0) {
    port_ = impl_->server.bind_to_any_port(o.host);
  } else {
    port_ = impl_->server.bind_to_port(o.host, o.port) ? o.port : -1;
  }
  if (port_ <= 0) {
    throw std::runtime_error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                             " (address in use, or not a local address?)");
  }
  return port_;
}

void PredictionServer::run() {
  // Paired with stop(): whichever of the two flags is set second sees the first, so a stop()
  // that races with the start of run() either prevents the accept loop or waits for it.
  impl_->in_run = true;
  if (!impl_->stopping) impl_->server.listen_after_bind();
  impl_->in_run = false;
}

int PredictionServer::start() {
  bind();
  listener_ = std::thread([this] { run(); });
  for (int i = 0; i < 5000 && !impl_->server.is_running() && !impl_->stopping; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return port_;
}

void PredictionServer::stop() {
  impl_->ready = false;
  impl_->stopping = true;
  // httplib's stop() does nothing until the accept loop runs; wait for it if run() has begun.
  for (int i = 0; i < 5000 && impl_->in_run && !impl_->server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  impl_->server.stop();
}

void PredictionServer::wait() {
  if (listener_.joinable()) listener_.join();
}

}  // namespace simdnn::serving
