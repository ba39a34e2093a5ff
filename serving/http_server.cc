#include "http_server.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <thread>
#include <utility>

#include "prediction_service.h"
#include "thread_pool.h"

namespace simdnn::serving {

namespace {

// cpp-httplib's ThreadPool, with flush-to-zero on each worker thread (see thread_pool.h).
class FlushToZeroTaskQueue : public httplib::TaskQueue {
 public:
  explicit FlushToZeroTaskQueue(size_t threads) : pool_(threads) {}
  void enqueue(std::function<void()> fn) override { pool_.enqueue(std::move(fn)); }
  // Runs every queued job, then joins: the server calls this after it stops accepting.
  void shutdown() override { pool_.shutdown(); }

 private:
  FlushToZeroThreadPool pool_;
};

void send(httplib::Response& res, Reply reply) {
  res.status = reply.status;
  for (auto& [name, value] : reply.headers) res.set_header(name, value);
  res.body = std::move(reply.body);  // set_content would copy it
  res.set_header("Content-Type", reply.content_type);
}

void set_error(httplib::Response& res, int status, const std::string& message) {
  send(res, error_reply(status, message));
}

}  // namespace

struct HttpServer::Impl {
  explicit Impl(PredictionService& s) : service(s) { configure(); }

  void configure() {
    const ServeOptions& options = service.options();
    const size_t threads = static_cast<size_t>(options.threads);
    server.new_task_queue = [threads] { return new FlushToZeroTaskQueue(threads); };
    server.set_payload_max_length(options.max_body_bytes);
    server.set_keep_alive_max_count(std::max<size_t>(1, options.keep_alive_max_requests));
    server.set_keep_alive_timeout(options.keep_alive_timeout_seconds);
    server.set_read_timeout(options.read_timeout_seconds, 0);
    // Small responses: without TCP_NODELAY, Nagle + delayed ACK add up to 40 ms per request.
    server.set_tcp_nodelay(true);

    // Every method and path goes to the service, which routes it.
    const auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      Request request;
      request.method = req.method;
      const std::string_view target = req.target;
      const size_t q = target.find('?');
      request.path = req.path;
      request.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
      request.body = req.body;
      request.peer = req.remote_addr;
      for (const auto& [name, value] : req.headers) request.headers.emplace_back(name, value);
      send(res, service.handle(request));
    };
    server.Get(".*", handler);
    server.Post(".*", handler);
    server.Put(".*", handler);
    server.Delete(".*", handler);
    server.Patch(".*", handler);
    server.Options(".*", handler);

    // Called for every response with status >= 400 before it is written; fills in a JSON body
    // where httplib produced none (unknown path, body too large, malformed request line).
    server.set_error_handler(httplib::Server::HandlerWithResponse(
        [this](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
      service.count_transport_reply(req.path, res.status);
      switch (res.status) {
        case 404: set_error(res, 404, "no such endpoint: " + req.method + " " + req.path); break;
        case 413:
          set_error(res, 413, "request body larger than " +
                                  std::to_string(service.options().max_body_bytes) +
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
  }

  PredictionService& service;
  httplib::Server server;
  std::atomic<bool> stopping{false};
  std::atomic<bool> in_run{false};
};

HttpServer::HttpServer(PredictionService& service) : impl_(std::make_unique<Impl>(service)) {}

HttpServer::~HttpServer() = default;

int HttpServer::bind(const std::string& host, int port) {
  const int bound = port == 0 ? impl_->server.bind_to_any_port(host)
                              : (impl_->server.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    throw std::runtime_error("cannot listen on " + host + ":" + std::to_string(port) +
                             " (address in use, or not a local address?)");
  }
  return bound;
}

void HttpServer::run() {
  // Paired with stop(): whichever of the two flags is set second sees the first, so a stop()
  // that races with the start of run() either prevents the accept loop or waits for it.
  impl_->in_run = true;
  if (!impl_->stopping) impl_->server.listen_after_bind();
  impl_->in_run = false;
}

void HttpServer::wait_until_running() {
  for (int i = 0; i < 5000 && !impl_->server.is_running() && !impl_->stopping; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void HttpServer::stop() {
  impl_->stopping = true;
  // httplib's stop() does nothing until the accept loop runs; wait for it if run() has begun.
  for (int i = 0; i < 5000 && impl_->in_run && !impl_->server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  impl_->server.stop();
}

}  // namespace simdnn::serving
