// One HTTP/1.x connection on Boost.Beast: a loop of
//   wait for the first byte (keep-alive timeout) -> read the header (header deadline)
//   -> check it -> read the body (body deadline) -> PredictionService::handle -> write
// on the connection's strand, plain TCP or TLS. Pipelined requests stay in the read buffer and
// are answered in order by the same loop.
//
// Memory per connection is bounded: a flat read buffer of at most max_header_bytes + 64 KiB
// (shrunk back when the connection goes idle), the body being received (at most
// max_body_bytes, freed after each request) and the reply being written (freed once written).
#include "http_session.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "prediction_service.h"

namespace simdnn::serving {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;
using PlainStream = beast::basic_stream<tcp, ConnectionExecutor>;
using IdleTimer = net::basic_waitable_timer<Clock, net::wait_traits<Clock>, ConnectionExecutor>;

ConnectionHub::ConnectionHub(PredictionService& s) : service(s), options(s.options()) {}

uint64_t ConnectionHub::add(std::weak_ptr<Connection> connection) {
  service.metrics().connection_opened();
  const size_t now_open = ++open_;
  size_t peak = peak_.load();
  while (now_open > peak && !peak_.compare_exchange_weak(peak, now_open)) {
  }
  std::lock_guard lock(mutex_);
  const uint64_t id = next_id_++;
  connections_.emplace(id, std::move(connection));
  return id;
}

void ConnectionHub::remove(uint64_t id) {
  {
    std::lock_guard lock(mutex_);
    connections_.erase(id);
  }
  --open_;
  service.metrics().connection_closed();
}

bool ConnectionHub::try_reserve_body(size_t bytes) {
  size_t held = body_bytes_.load();
  do {
    if (held + bytes > options.max_inflight_body_bytes) return false;
  } while (!body_bytes_.compare_exchange_weak(held, held + bytes));
  return true;
}

void ConnectionHub::for_each(const std::function<void(Connection&)>& fn) {
  std::vector<std::shared_ptr<Connection>> live;
  {
    std::lock_guard lock(mutex_);
    live.reserve(connections_.size());
    for (auto& [id, weak] : connections_) {
      if (auto c = weak.lock()) live.push_back(std::move(c));
    }
  }
  for (auto& c : live) fn(*c);  // outside the lock: a connection may end meanwhile
}

namespace {

std::string_view view(beast::string_view s) { return {s.data(), s.size()}; }

bool iequals(std::string_view a, std::string_view b) {
  return beast::iequals(beast::string_view(a.data(), a.size()),
                        beast::string_view(b.data(), b.size()));
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool format_plain_reply_head(const Reply& reply, unsigned version, bool keep_alive,
                             std::string& head) {
  const int status = reply.status;
  if (status < 200 || status > 999 || status == 204 || status == 304) return false;
  for (const auto& [name, value] : reply.headers) {
    if (iequals(name, "Connection") || iequals(name, "Content-Length") ||
        iequals(name, "Transfer-Encoding") || iequals(name, "Content-Type")) {
      return false;
    }
  }
  head.clear();
  head += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  char digits[24];
  head.append(digits, std::to_chars(digits, digits + sizeof digits, status).ptr);
  head += ' ';
  head += view(http::obsolete_reason(static_cast<http::status>(status)));
  head += "\r\nContent-Type: ";
  head += trim(reply.content_type);
  head += "\r\n";
  for (const auto& [name, value] : reply.headers) {
    head += name;
    head += ": ";
    head += trim(value);
    head += "\r\n";
  }
  if (version == 11 && !keep_alive) head += "Connection: close\r\n";
  if (version == 10 && keep_alive) head += "Connection: keep-alive\r\n";
  head += "Content-Length: ";
  head.append(digits, std::to_chars(digits, digits + sizeof digits, reply.body.size()).ptr);
  head += "\r\n\r\n";
  return true;
}

namespace {

// The client went away or the server cut the connection: nothing to answer.
bool connection_gone(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == http::error::partial_message ||
         ec == net::error::eof || ec == net::error::operation_aborted ||
         ec == net::error::connection_reset || ec == net::error::connection_aborted ||
         ec == net::error::broken_pipe || ec == net::error::bad_descriptor ||
         ec == net::error::not_connected || ec == net::ssl::error::stream_truncated ||
         ec == beast::error::timeout;  // basic_stream has closed the socket already
}

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr size_t kReadChunk = 4096;
// The read buffer a plain-TCP connection takes when a request starts (released again when it
// goes idle): a single-image JSON request (~3.7 KB) fits, so one recvmsg reads it.
constexpr size_t kRequestBufferBytes = 8192;
// The read buffer beyond which an idle connection gives memory back.
constexpr size_t kIdleBufferBytes = 16 * 1024;
// After the last reply: how long, and how many bytes, a closing connection reads and discards
// so that a client still sending (a body we refused) receives the reply instead of a reset.
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr size_t kLingerBytes = 1 << 20;

template <class Stream>
class HttpConnection final : public Connection,
                             public std::enable_shared_from_this<HttpConnection<Stream>> {
  static constexpr bool kTls = !std::is_same_v<Stream, PlainStream>;
  using Parser = http::request_parser<http::string_body>;

 public:
  HttpConnection(ConnectionHub& hub, ConnectionSocket&& socket, net::ssl::context* tls)
      : hub_(hub),
        options_(hub.options),
        stream_(make_stream(std::move(socket), tls)),
        idle_timer_(stream_.get_executor()),
        buffer_(options_.max_header_bytes + 64 * 1024) {
    beast::error_code ec;
    const tcp::endpoint remote = lowest().socket().remote_endpoint(ec);
    if (!ec) peer_ = remote.address().to_string() + ":" + std::to_string(remote.port());
    lowest().socket().set_option(tcp::no_delay(true), ec);
  }

  ~HttpConnection() override {
    release_body();
    if (id_ != 0) hub_.remove(id_);
  }

  void start() {
    id_ = hub_.add(this->weak_from_this());
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->begin(); });
  }

  void drain() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->state_ == State::kIdle) self->lowest().cancel();
    });
  }

  void force_close() override {
    net::post(stream_.get_executor(), [self = this->shared_from_this()] { self->close_now(); });
  }

 private:
  enum class State { kHandshake, kIdle, kRequest, kWriting, kClosing };

  static Stream make_stream(ConnectionSocket&& socket, net::ssl::context* tls) {
    if constexpr (kTls) {
      return Stream(PlainStream(std::move(socket)), *tls);
    } else {
      (void)tls;
      return Stream(std::move(socket));
    }
  }

  PlainStream& lowest() { return beast::get_lowest_layer(stream_); }
  auto self() { return this->shared_from_this(); }

  void begin() {
    if constexpr (kTls) {
      state_ = State::kHandshake;
      lowest().expires_after(std::chrono::seconds(options_.header_timeout_seconds));
      stream_.async_handshake(net::ssl::stream_base::server,
                              [self = self()](beast::error_code ec) {
                                if (ec) return self->close_now();
                                self->wait_request();
                              });
    } else {
      wait_request();
    }
  }

  // Between requests: waits for the first byte of the next one (or takes it from what a
  // pipelining client already sent).
  void wait_request() {
    if (hub_.draining || served_ >= options_.keep_alive_max_requests) return close_gracefully();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(options_.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(static_cast<std::uint64_t>(options_.max_body_bytes));
    if (buffer_.size() > 0) {
      start_ = Clock::now();
      return read_header();
    }
    state_ = State::kIdle;
    if constexpr (!kTls) {
      // An idle plain-TCP connection holds no read buffer: it waits for readability, and the
      // buffer is allocated when bytes arrive. 10,000 idle clients would otherwise hold 40 MB
      // of 4 KB buffers, and the pages those shared with long-lived allocations (Asio keeps
      // its per-socket state in a pool it never frees) would stay resident after they left.
      buffer_.shrink_to_fit();  // empty: frees it
      idle_since_ = Clock::now();
      if (!idle_timer_pending_) arm_idle_timer(idle_since_ + keep_alive_timeout());
      lowest().socket().async_wait(tcp::socket::wait_read, [self = self()](beast::error_code ec) {
        if (ec) return self->close_now();  // idle timeout, drain, reset
        self->start_ = Clock::now();
        // Room for a typical request at once: Beast reads max(512, free capacity) bytes per
        // call, so from an empty buffer a 3.7 KB single-image request took four recvmsg calls
        // and three reallocations (512, 1 K, 2 K, 4 K).
        self->buffer_.reserve(std::min(kRequestBufferBytes, self->buffer_.max_size()));
        self->read_header();
      });
      return;
    }
    // TLS: the TLS layer may hold decrypted bytes already, so readiness of the socket says
    // nothing; it reads into a small buffer.
    if (buffer_.capacity() > kIdleBufferBytes) buffer_.shrink_to_fit();
    lowest().expires_after(std::chrono::seconds(options_.keep_alive_timeout_seconds));
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = self()](beast::error_code ec, size_t n) {
                              if (ec) return self->close_now();  // idle timeout, drain, EOF
                              self->buffer_.commit(n);
                              self->start_ = Clock::now();
                              self->read_header();
                            });
  }

  std::chrono::seconds keep_alive_timeout() const {
    return std::chrono::seconds(options_.keep_alive_timeout_seconds);
  }

  // The keep-alive timeout of a plain-TCP idle wait, without a timer operation per request
  // (arming and cancelling one, and running its cancelled handler, cost about 5% of a
  // request's CPU): the timer is armed when the connection goes idle and none is pending. A
  // pending one always expires at or before the current idle deadline (it was armed at an
  // earlier idle start), so when it fires it ends the wait if the connection has been idle for
  // the whole timeout, re-arms for the deadline if it is idle since later, and lapses if the
  // connection is busy (the next idle start arms it again). close_now() cancels it.
  void arm_idle_timer(Clock::time_point at) {
    idle_timer_pending_ = true;
    idle_timer_.expires_at(at);
    idle_timer_.async_wait([self = self()](beast::error_code ec) {
      self->idle_timer_pending_ = false;
      if (ec || self->state_ != State::kIdle) return;  // closed, or busy
      const Clock::time_point deadline = self->idle_since_ + self->keep_alive_timeout();
      if (Clock::now() < deadline) return self->arm_idle_timer(deadline);
      self->lowest().socket().cancel();  // the idle timeout: the readability wait ends
    });
  }

  void read_header() {
    state_ = State::kRequest;
    lowest().expires_after(std::chrono::seconds(options_.header_timeout_seconds));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = self()](beast::error_code ec, size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_read_error(ec, /*body=*/false);
    const auto& req = parser_->get();
    path_ = view(req.target()).substr(0, view(req.target()).find('?'));
    size_t fields = 0;
    for (auto it = req.begin(); it != req.end(); ++it) ++fields;
    if (fields > options_.max_header_fields) {
      return reply_error(431, "more than " + std::to_string(options_.max_header_fields) +
                                  " header fields");
    }
    for (const auto& f : req) {
      if (f.name() == http::field::content_encoding) {
        const std::string_view coding = trim(view(f.value()));
        if (!iequals(coding, "identity")) {
          return reply_error(415, "unsupported Content-Encoding \"" + std::string(coding) +
                                      "\": send the body uncompressed");
        }
      } else if (f.name() == http::field::transfer_encoding) {
        if (!iequals(trim(view(f.value())), "chunked")) {
          return reply_error(501, "unsupported Transfer-Encoding \"" +
                                      std::string(view(f.value())) + "\": only chunked");
        }
      }
    }
    if (parser_->is_done()) return handle();
    // Every body being received counts against one budget (its Content-Length, or the
    // per-request limit when chunked): without it 1,024 connections x 8 MiB could hold 8 GiB.
    const size_t want = std::min<uint64_t>(parser_->content_length().value_or(options_.max_body_bytes),
                                           options_.max_body_bytes);
    if (!hub_.try_reserve_body(want)) {
      return reply_error(503, "too many request bodies in flight (--max-inflight-body-bytes " +
                                  std::to_string(options_.max_inflight_body_bytes) + "): retry");
    }
    body_reserved_ = want;
    const auto expect = req.find(http::field::expect);
    if (expect != req.end() && iequals(trim(view(expect->value())), "100-continue") &&
        req.version() >= 11) {
      lowest().expires_after(std::chrono::seconds(options_.body_timeout_seconds));
      return net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                              [self = self()](beast::error_code ec, size_t) {
                                if (ec) return self->close_now();
                                self->read_body();
                              });
    }
    read_body();
  }

  void read_body() {
    lowest().expires_after(std::chrono::seconds(options_.body_timeout_seconds));
    http::async_read(stream_, buffer_, *parser_, [self = self()](beast::error_code ec, size_t) {
      if (ec) return self->on_read_error(ec, /*body=*/true);
      self->handle();
    });
  }

  void release_body() {
    hub_.release_body(body_reserved_);
    body_reserved_ = 0;
  }

  void on_read_error(beast::error_code ec, bool body) {
    release_body();
    if (ec == beast::error::timeout) {
      // The header or body deadline: the stream has closed the socket, so nothing can be
      // answered (a slowloris client would not read it anyway). Counted as 408, as nginx
      // logs it.
      hub_.service.count_transport_reply(path_, 408);
      return close_now();
    }
    if (connection_gone(ec)) return close_now();
    if (ec == http::error::body_limit) {
      return reply_error(413, "request body larger than " +
                                  std::to_string(options_.max_body_bytes) +
                                  " bytes (--max-body-bytes)");
    }
    if (!body && (ec == http::error::header_limit || ec == http::error::buffer_overflow)) {
      return reply_error(431, "request header larger than " +
                                  std::to_string(options_.max_header_bytes) +
                                  " bytes (--max-header-bytes)");
    }
    if (ec.category() == http::make_error_code(http::error::bad_target).category() ||
        ec == http::error::buffer_overflow) {
      return reply_error(400, "malformed request: " + ec.message());
    }
    close_now();  // a socket or TLS error: nobody to answer
  }

  // Runs the service inline on this I/O thread. Inference costs ~5 us per image and
  // PredictionService::handle is synchronous and thread-safe: handing it to a separate pool
  // would add a queue and two thread switches (more than the work itself) for no gain in
  // throughput, since the I/O threads are already one per core. The price: a large batch
  // (max_batch rows) holds its thread for its duration, delaying that thread's other
  // connections; measurements in the transport commit / issue 10 report.
  void handle() {
    auto& req = parser_->get();
    const std::string_view target = view(req.target());
    const size_t q = target.find('?');
    Request request;
    request.method = view(req.method_string());
    request.path = target.substr(0, q);
    request.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
    request.body = req.body();
    request.peer = peer_;
    request.headers.reserve(16);
    for (const auto& f : req) request.headers.emplace_back(view(f.name_string()), view(f.value()));
    Reply reply = hub_.service.handle(request);
    const bool keep_alive = req.keep_alive();
    std::string().swap(req.body());  // answered: its memory leaves the budget
    release_body();
    send(std::move(reply), keep_alive);
  }

  // A reply the transport makes itself: counted, and the connection closes after it (the
  // request's framing can no longer be trusted, or its body was not read).
  void reply_error(int status, const std::string& message) {
    hub_.service.count_transport_reply(path_, status);
    send(error_reply(status, message), /*keep_alive=*/false);
  }

  void send(Reply reply, bool keep_alive) {
    ++served_;
    keep_alive = keep_alive && !hub_.draining && served_ < options_.keep_alive_max_requests;
    status_ = reply.status;
    const unsigned version =
        parser_ && parser_->is_header_done() && parser_->get().version() == 10 ? 10 : 11;
    if (write_plain_reply(reply, version, keep_alive)) return;
    response_ = {};
    response_.version(version);
    response_.result(static_cast<unsigned>(reply.status));
    response_.set(http::field::content_type, reply.content_type);
    for (auto& [name, value] : reply.headers) response_.insert(name, value);
    response_.body() = std::move(reply.body);
    response_.keep_alive(keep_alive);
    response_.prepare_payload();
    state_ = State::kWriting;
    lowest().expires_after(std::chrono::seconds(options_.body_timeout_seconds));
    http::async_write(stream_, response_,
                      [self = self(), keep_alive](beast::error_code ec, size_t) {
                        self->on_written(ec, keep_alive);
                      });
  }

  // The common reply written without Beast's serializer, which cost about a tenth of a
  // request's CPU (a field list allocated per reply, then walked as a buffer sequence of
  // variants): format_plain_reply_head's bytes and the body, as two buffers. Replies Beast
  // treats specially still go through it: false then, nothing sent.
  bool write_plain_reply(Reply& reply, unsigned version, bool keep_alive) {
    if (!format_plain_reply_head(reply, version, keep_alive, head_)) return false;
    body_ = std::move(reply.body);
    state_ = State::kWriting;
    lowest().expires_after(std::chrono::seconds(options_.body_timeout_seconds));
    const std::array<net::const_buffer, 2> buffers{net::buffer(head_), net::buffer(body_)};
    net::async_write(stream_, buffers, [self = self(), keep_alive](beast::error_code ec, size_t) {
      self->on_written(ec, keep_alive);
    });
    return true;
  }

  void on_written(beast::error_code ec, bool keep_alive) {
    response_ = {};  // frees the body
    std::string().swap(body_);
    std::string().swap(head_);  // an idle connection holds no reply memory
    if (ec) return close_now();
    hub_.service.observe_request(path_, status_,
                                 std::chrono::duration<double>(Clock::now() - start_).count());
    path_.clear();
    if (!keep_alive) return close_gracefully();
    wait_request();
  }

  // After the last reply: TLS close_notify, or a TCP half-close then a short read-and-discard
  // so that a client still sending gets the reply rather than a reset.
  void close_gracefully() {
    state_ = State::kClosing;
    parser_.reset();
    if constexpr (kTls) {
      lowest().expires_after(std::chrono::seconds(1));
      stream_.async_shutdown([self = self()](beast::error_code) { self->close_now(); });
    } else {
      beast::error_code ec;
      lowest().socket().shutdown(tcp::socket::shutdown_send, ec);
      if (ec) return close_now();
      lowest().expires_after(kLingerTime);
      linger();
    }
  }

  void linger() {
    buffer_.consume(buffer_.size());
    stream_.async_read_some(buffer_.prepare(kReadChunk),
                            [self = self()](beast::error_code ec, size_t n) {
                              self->lingered_ += n;
                              if (ec || self->lingered_ > kLingerBytes) return self->close_now();
                              self->linger();
                            });
  }

  void close_now() {
    state_ = State::kClosing;
    if (idle_timer_pending_) idle_timer_.cancel();  // it holds the connection
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close();
  }

  ConnectionHub& hub_;
  const ServeOptions& options_;
  Stream stream_;
  IdleTimer idle_timer_;  // the keep-alive timeout of a plain-TCP idle wait (arm_idle_timer)
  bool idle_timer_pending_ = false;
  Clock::time_point idle_since_;  // when the current (or last) idle wait began
  beast::flat_buffer buffer_;
  std::optional<Parser> parser_;
  http::response<http::string_body> response_;
  std::string head_;  // a plain reply's status line and fields (write_plain_reply)
  std::string body_;  // and its body, until written
  std::string peer_;
  std::string path_;  // of the request being answered, for the metrics
  int status_ = 0;
  Clock::time_point start_;  // first byte of the request being answered
  size_t served_ = 0;
  size_t lingered_ = 0;
  size_t body_reserved_ = 0;  // of the hub's body budget, for the request being received
  uint64_t id_ = 0;
  State state_ = State::kRequest;
};

}  // namespace

void start_connection(ConnectionHub& hub, ConnectionSocket socket, net::ssl::context* tls) {
  if (tls) {
    std::make_shared<HttpConnection<beast::ssl_stream<PlainStream>>>(
        hub, std::move(socket), tls)
        ->start();
  } else {
    std::make_shared<HttpConnection<PlainStream>>(hub, std::move(socket), nullptr)
        ->start();
  }
}

}  // namespace simdnn::serving
