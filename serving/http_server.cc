#include "http_server.h"

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <chrono>
#include <malloc.h>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <vector>

#include "http_session.h"
#include "prediction_service.h"
#include "simdnn/threading.h"

namespace simdnn::serving {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

// TLS 1.2 and later only, from PEM files.
std::optional<net::ssl::context> make_tls_context(const ServeOptions& options) {
  if (options.tls_cert.empty() && options.tls_key.empty()) return std::nullopt;
  if (options.tls_cert.empty() || options.tls_key.empty()) {
    throw std::runtime_error("TLS needs both a certificate (--tls-cert) and a key (--tls-key)");
  }
  std::optional<net::ssl::context> ctx(std::in_place, net::ssl::context::tls_server);
  ctx->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                   net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                   net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
  boost::system::error_code ec;
  ctx->use_certificate_chain_file(options.tls_cert, ec);
  if (ec) throw std::runtime_error("cannot load TLS certificate " + options.tls_cert + ": " + ec.message());
  ctx->use_private_key_file(options.tls_key, net::ssl::context::pem, ec);
  if (ec) throw std::runtime_error("cannot load TLS key " + options.tls_key + ": " + ec.message());
  return ctx;
}

}  // namespace

struct HttpServer::Impl {
  explicit Impl(PredictionService& s)
      : service(s),
        options(s.options()),
        hub(s),
        tls(make_tls_context(options)),
        ioc(std::max(1, options.threads)) {}

  void do_accept() {
    acceptor.async_accept(net::make_strand(ioc),
                          [this](boost::system::error_code ec, ConnectionSocket socket) {
                            on_accept(ec, std::move(socket));
                          });
  }

  void on_accept(boost::system::error_code ec, ConnectionSocket socket) {
    if (!acceptor.is_open()) return;  // drained
    if (ec) {
      // Out of file descriptors (or a connection reset before accept): retry shortly rather
      // than spin.
      std::fprintf(stderr, "serve: accept failed: %s\n", ec.message().c_str());
      accept_retry.expires_after(std::chrono::milliseconds(100));
      accept_retry.async_wait([this](boost::system::error_code e) {
        if (!e && acceptor.is_open()) do_accept();
      });
      return;
    }
    if (hub.open() >= options.max_connections) {
      boost::system::error_code ignored;
      socket.close(ignored);
      service.metrics().connection_rejected();
    } else {
      start_connection(hub, std::move(socket), tls ? &*tls : nullptr);
    }
    do_accept();
  }

  // Asio keeps each socket's reactor state (~150 bytes) in a pool it never frees: a closed
  // socket's state waits on a free list for the next one. Allocated one at a time as
  // connections arrive, these blocks end up between the connections' buffers on the same pages,
  // and after a flood of connections they pin those pages: RSS stayed at 31 MB against 9.5 MB
  // before it, malloc_trim or not. So the pool is filled up front, as nginx allocates its
  // worker_connections, with the states of --max-connections sockets (plus the ones accepted
  // only to be closed) in one run of the heap; later sockets reuse them. Best effort: if the
  // descriptor limit stops it early, the pool simply grows later as before.
  void reserve_socket_states() {
    size_t n = options.max_connections + kRejectSlack;
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY) {
      n = std::min<size_t>(n, files.rlim_cur);  // no more sockets than the process may open
    }
    std::vector<tcp::socket> sockets;
    sockets.reserve(n);
    boost::system::error_code ec;
    for (size_t i = 0; i < n; ++i) {
      sockets.emplace_back(ioc);
      sockets.back().open(tcp::v4(), ec);
      if (ec) break;
    }
  }  // closed here: their states go to the pool's free list
  static constexpr size_t kRejectSlack = 64;

  // glibc keeps the memory of freed connections in its arenas, so after an attack of
  // thousands of connections RSS would stay at the attack's peak. Once a second, when at
  // least kTrimAfterClosed connections have gone since the last look, give it back.
  static constexpr size_t kTrimAfterClosed = 256;
  void schedule_trim() {
    trim_timer.expires_after(std::chrono::seconds(1));
    trim_timer.async_wait([this](boost::system::error_code ec) {
      if (ec || !acceptor.is_open()) return;
      if (hub.take_peak() >= hub.open() + kTrimAfterClosed) malloc_trim(0);
      schedule_trim();
    });
  }

  // On the acceptor's strand.
  void begin_drain(std::chrono::milliseconds deadline) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    accept_retry.cancel();
    trim_timer.cancel();
    hub.draining = true;
    hub.for_each([](Connection& c) { c.drain(); });
    drain_deadline = Clock::now() + deadline;
    poll_drain();
  }

  // Until every connection has closed: at the deadline cut them all; should any survive
  // that by 2 s, stop the event loop.
  void poll_drain() {
    if (hub.open() == 0) return;
    const auto now = Clock::now();
    if (now >= drain_deadline && !forced) {
      forced = true;
      std::fprintf(stderr, "serve: drain deadline reached, closing %zu connection(s)\n",
                   hub.open());
      hub.for_each([](Connection& c) { c.force_close(); });
    }
    if (now >= drain_deadline + std::chrono::seconds(2)) {
      ioc.stop();
      return;
    }
    drain_timer.expires_after(std::chrono::milliseconds(20));
    drain_timer.async_wait([this](boost::system::error_code ec) {
      if (!ec) poll_drain();
    });
  }

  PredictionService& service;
  const ServeOptions& options;
  // Declared before the io_context: connections still pending when it is destroyed
  // unregister from the hub and may use the TLS context.
  ConnectionHub hub;
  std::optional<net::ssl::context> tls;
  net::io_context ioc;
  net::strand<net::io_context::executor_type> strand{ioc.get_executor()};
  tcp::acceptor acceptor{strand};
  net::steady_timer accept_retry{strand};
  net::steady_timer drain_timer{strand};
  net::steady_timer trim_timer{strand};
  Clock::time_point drain_deadline;
  bool forced = false;
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> in_run{false};
};

HttpServer::HttpServer(PredictionService& service) : impl_(std::make_unique<Impl>(service)) {}

HttpServer::~HttpServer() = default;

int HttpServer::bind(const std::string& host, int port) {
  Impl& s = *impl_;
  const std::string where = host + ":" + std::to_string(port);
  boost::system::error_code ec;
  tcp::resolver resolver(s.ioc);
  const auto endpoints = resolver.resolve(host, std::to_string(port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service,
                                          ec);
  if (ec || endpoints.empty()) {
    throw std::runtime_error("cannot listen on " + where + ": " +
                             (ec ? ec.message() : std::string("no such address")));
  }
  const tcp::endpoint endpoint = endpoints.begin()->endpoint();
  const auto fail = [&](const char* what) {
    boost::system::error_code ignored;
    s.acceptor.close(ignored);
    throw std::runtime_error("cannot listen on " + where + " (" + what + "): " + ec.message());
  };
  s.acceptor.open(endpoint.protocol(), ec);
  if (ec) fail("socket");
  // SO_REUSEADDR only lets a restart bind over connections in TIME_WAIT: on Linux a port
  // with a listening socket stays refused. SO_REUSEPORT (opt-in) is what shares it.
  s.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (s.options.reuse_port) {
    using reuse_port = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;
    s.acceptor.set_option(reuse_port(true), ec);
    if (ec) fail("SO_REUSEPORT");
  }
  s.acceptor.bind(endpoint, ec);
  if (ec) fail("bind");
  s.acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) fail("listen");
  const int bound = s.acceptor.local_endpoint(ec).port();
  if (ec) fail("local address");
  s.reserve_socket_states();
  net::post(s.strand, [&s] {
    s.do_accept();
    s.schedule_trim();
  });
  return bound;
}

void HttpServer::run() {
  Impl& s = *impl_;
  s.in_run = true;
  const int n = std::max(1, s.options.threads);
  const auto loop = [&s] {
    simdnn::enable_flush_to_zero();  // denormal activations would slow inference
    s.ioc.run();
  };
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(n - 1));
  for (int i = 1; i < n; ++i) threads.emplace_back(loop);
  loop();
  for (auto& t : threads) t.join();
}

void HttpServer::wait_until_running() {
  for (int i = 0; i < 5000 && !impl_->in_run && !impl_->stop_requested; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

void HttpServer::stop(std::chrono::milliseconds deadline) {
  Impl& s = *impl_;
  if (s.stop_requested.exchange(true)) {
    // Already draining: a shorter deadline cuts it (a second SIGTERM asks for 0).
    net::post(s.strand, [&s, deadline] {
      const auto cut = Clock::now() + deadline;
      if (cut < s.drain_deadline) s.drain_deadline = cut;
    });
    return;
  }
  net::post(s.strand, [&s, deadline] { s.begin_drain(deadline); });
}

}  // namespace simdnn::serving
