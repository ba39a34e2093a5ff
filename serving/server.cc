#include "simdnn/serving/server.h"

#include <algorithm>
#include <stdexcept>
#include <thread>
#include <utility>

#include "http_server.h"
#include "prediction_service.h"

namespace simdnn::serving {

struct PredictionServer::Impl {
  Impl(Model model, ServeOptions opts)
      : options(std::move(opts)), service(std::move(model), options), http(service) {}
  Impl(RepositoryOptions models, ServeOptions opts)
      : options(std::move(opts)), service(std::move(models), options), http(service) {}

  ServeOptions options;
  PredictionService service;
  HttpServer http;
};

namespace {

void check_options(ServeOptions& options) {
  if (options.threads == 0) {
    options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  if (options.threads < 1) throw std::invalid_argument("threads must be at least 1");
  if (options.max_connections < 1) throw std::invalid_argument("max connections must be positive");
  if (options.max_header_bytes < 256) throw std::invalid_argument("max header bytes must be >= 256");
  if (options.max_header_fields < 1) throw std::invalid_argument("max header fields must be positive");
  if (options.header_timeout_seconds < 1 || options.body_timeout_seconds < 1 ||
      options.keep_alive_timeout_seconds < 1) {
    throw std::invalid_argument("timeouts must be at least 1 second");
  }
  if (options.drain_seconds < 0) throw std::invalid_argument("drain seconds must be >= 0");
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    throw std::invalid_argument("TLS needs both a certificate and a key");
  }
  if (options.max_batch < 1) throw std::invalid_argument("max batch must be at least 1");
  if (options.max_body_bytes < 1) throw std::invalid_argument("max body bytes must be positive");
  if (options.port < 0 || options.port > 65535) {
    throw std::invalid_argument("port " + std::to_string(options.port) + " is not 0..65535");
  }
}

}  // namespace

PredictionServer::PredictionServer(Model model, ServeOptions options) {
  check_options(options);
  impl_ = std::make_unique<Impl>(std::move(model), std::move(options));
}

PredictionServer::PredictionServer(RepositoryOptions models, ServeOptions options) {
  check_options(options);
  impl_ = std::make_unique<Impl>(std::move(models), std::move(options));
}

PredictionServer::~PredictionServer() {
  stop();
  wait();
}

ModelRepository& PredictionServer::models() { return impl_->service.repository(); }

const ServeOptions& PredictionServer::options() const { return impl_->options; }

int PredictionServer::bind() {
  port_ = -1;
  port_ = impl_->http.bind(impl_->options.host, impl_->options.port);
  return port_;
}

void PredictionServer::run() { impl_->http.run(); }

int PredictionServer::start() {
  bind();
  listener_ = std::thread([this] { run(); });
  impl_->http.wait_until_running();
  return port_;
}

void PredictionServer::stop(std::chrono::milliseconds deadline) {
  impl_->service.stop_ready();
  impl_->http.stop(deadline);
}

void PredictionServer::stop() { stop(std::chrono::seconds(impl_->options.drain_seconds)); }

void PredictionServer::wait() {
  if (listener_.joinable()) listener_.join();
}

}  // namespace simdnn::serving
