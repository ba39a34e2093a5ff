#include "tools/tests/http_client.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace simdnn::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](unsigned char x, unsigned char y) {
           return std::tolower(x) == std::tolower(y);
         });
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (iequals(k, name)) return v;
  }
  return {};
}

// ---- HttpClient ----------------------------------------------------------------------------

struct HttpClient::Impl {
  std::string host;
  int port = 0;
  std::chrono::milliseconds timeout;
  asio::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  int opened = 0;
  std::string error;

  // Runs the pending operation to completion; tcp_stream's expiry bounds it.
  void run() {
    ioc.restart();
    ioc.run();
  }

  void close() {
    if (stream) {
      error_code ignored;
      stream->socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
      stream->socket().close(ignored);
      run();  // lets cancelled handlers finish
      stream.reset();
    }
    buffer.clear();
  }

  bool connect() {
    close();
    error_code ec;
    asio::ip::tcp::endpoint endpoint;
    const auto address = asio::ip::make_address(host, ec);
    if (!ec) {
      endpoint = {address, static_cast<uint16_t>(port)};
    } else {
      asio::ip::tcp::resolver resolver(ioc);
      const auto results = resolver.resolve(host, std::to_string(port), ec);
      if (ec || results.empty()) {
        error = "resolve " + host + ": " + ec.message();
        return false;
      }
      endpoint = *results.begin();
    }
    stream.emplace(ioc);
    stream->expires_after(timeout);
    stream->async_connect(endpoint, [&](error_code e) { ec = e; });
    run();
    if (ec) {
      error = "connect " + host + ":" + std::to_string(port) + ": " + ec.message();
      stream.reset();
      return false;
    }
    stream->socket().set_option(asio::ip::tcp::no_delay(true), ec);
    ++opened;
    return true;
  }
};

HttpClient::HttpClient(std::string host, int port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout = timeout;
}
HttpClient::~HttpClient() {
  if (impl_) impl_->close();
}
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

void HttpClient::set_timeout(std::chrono::milliseconds timeout) { impl_->timeout = timeout; }
void HttpClient::close() { impl_->close(); }
int HttpClient::connections_opened() const { return impl_->opened; }
const std::string& HttpClient::last_error() const { return impl_->error; }

std::optional<HttpResponse> HttpClient::get(const std::string& path, const HttpHeaders& headers) {
  return request("GET", path, {}, "", headers);
}

std::optional<HttpResponse> HttpClient::post(const std::string& path, std::string_view body,
                                             const std::string& content_type,
                                             const HttpHeaders& headers) {
  return request("POST", path, body, content_type, headers);
}

std::optional<HttpResponse> HttpClient::request(const std::string& method, const std::string& path,
                                                std::string_view body,
                                                const std::string& content_type,
                                                const HttpHeaders& headers) {
  Impl& s = *impl_;
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(path);
  req.version(11);
  req.set(http::field::host, s.host + ":" + std::to_string(s.port));
  req.set(http::field::user_agent, "simdnn-test");
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  for (const auto& [name, value] : headers) req.insert(name, value);
  req.body().assign(body.data(), body.size());
  if (method != "GET" || !body.empty()) req.prepare_payload();

  // A reused connection may have been closed by the server (idle timeout) since the last
  // request: then reconnect once, as long as no byte of a response had arrived.
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool reused = s.stream.has_value();
    if (!s.stream && !s.connect()) return std::nullopt;
    error_code ec;
    s.stream->expires_after(s.timeout);
    http::async_write(*s.stream, req, [&](error_code e, size_t) { ec = e; });
    s.run();
    if (ec) {
      s.error = "write: " + ec.message();
      s.close();
      if (reused) continue;
      return std::nullopt;
    }
    http::response_parser<http::string_body> parser;
    parser.body_limit(size_t{1} << 28);
    parser.header_limit(1 << 20);
    s.stream->expires_after(s.timeout);
    http::async_read(*s.stream, s.buffer, parser, [&](error_code e, size_t) { ec = e; });
    s.run();
    if (ec) {
      s.error = "read: " + ec.message();
      const bool nothing = !parser.got_some();
      s.close();
      if (reused && nothing && ec != beast::error::timeout) continue;
      return std::nullopt;
    }
    const auto& res = parser.get();
    HttpResponse out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& field : res) {
      out.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    out.body = res.body();
    if (!res.keep_alive()) s.close();
    s.error.clear();
    return out;
  }
  return std::nullopt;
}

// ---- Raw sockets ---------------------------------------------------------------------------

namespace {

sockaddr_in loopback(int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

// A non-blocking socket with connect() started; -1 on an immediate error.
int start_connect(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  const sockaddr_in addr = loopback(port);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 &&
      errno != EINPROGRESS) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool connected(int fd) {
  int err = 0;
  socklen_t len = sizeof err;
  return ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

void set_blocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK); }

// Length of the first complete response in `data`, or 0 if it is not complete yet.
size_t complete_response_length(std::string_view data) {
  const size_t end = data.find("\r\n\r\n");
  if (end == std::string_view::npos) return 0;
  const std::string head = lower(data.substr(0, end + 2));
  const size_t body_start = end + 4;
  const int status = status_of(data);
  if (status == 204 || status == 304 || (status >= 100 && status < 200)) return body_start;
  if (head.find("\r\ntransfer-encoding:") != std::string::npos &&
      head.find("chunked") != std::string::npos) {
    const size_t last = data.find("\r\n0\r\n\r\n", end);
    return last == std::string_view::npos ? 0 : last + 7;
  }
  const size_t at = head.find("\r\ncontent-length:");
  if (at == std::string::npos) return 0;  // delimited by close
  const size_t length = std::strtoul(head.c_str() + at + 17, nullptr, 10);
  return data.size() >= body_start + length ? body_start + length : 0;
}

}  // namespace

int connect_loopback(int port) {
  const int fd = start_connect(port);
  if (fd < 0) return -1;
  pollfd p{fd, POLLOUT, 0};
  if (::poll(&p, 1, 2000) != 1 || !connected(fd)) {
    ::close(fd);
    return -1;
  }
  set_blocking(fd);
  return fd;
}

bool send_all(int fd, std::string_view data) {
  size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string read_responses(int fd, int count, std::chrono::milliseconds timeout) {
  std::string out;
  char buf[16384];
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    size_t offset = 0;
    int complete = 0;
    while (complete < count) {
      const size_t n = complete_response_length(std::string_view(out).substr(offset));
      if (n == 0) break;
      offset += n;
      ++complete;
    }
    if (complete >= count) break;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

std::string exchange(int port, std::string_view request, std::chrono::milliseconds timeout) {
  const int fd = connect_loopback(port);
  if (fd < 0) return {};
  send_all(fd, request);  // the server may answer and close before reading everything
  std::string response = read_responses(fd, 1, timeout);
  ::close(fd);
  return response;
}

int status_of(std::string_view response) {
  if (response.substr(0, 7) != "HTTP/1." || response.size() < 12) return 0;
  return std::atoi(std::string(response.substr(9, 3)).c_str());
}

std::vector<int> statuses_of(std::string_view responses) {
  std::vector<int> out;
  while (!responses.empty()) {
    const size_t n = complete_response_length(responses);
    if (n == 0) break;
    out.push_back(status_of(responses));
    responses.remove_prefix(n);
  }
  return out;
}

std::string body_of(std::string_view response) {
  const size_t n = complete_response_length(response);
  const size_t at = response.find("\r\n\r\n");
  if (at == std::string_view::npos) return {};
  return std::string(response.substr(at + 4, n == 0 ? std::string_view::npos : n - at - 4));
}

// ---- Idle and slow connections -------------------------------------------------------------

namespace {

// Starts n connects at once and waits (up to 3 s in all) for them; returns the connected
// sockets, blocking. The rest are closed.
std::vector<int> connect_many(int port, int n) {
  std::vector<int> pending;
  for (int i = 0; i < n; ++i) {
    const int fd = start_connect(port);
    if (fd >= 0) pending.push_back(fd);
  }
  std::vector<int> done;
  const auto deadline = Clock::now() + std::chrono::seconds(3);
  while (!pending.empty() && Clock::now() < deadline) {
    std::vector<pollfd> polls;
    for (int fd : pending) polls.push_back({fd, POLLOUT, 0});
    if (::poll(polls.data(), polls.size(), 100) <= 0) continue;
    std::vector<int> still;
    for (const pollfd& p : polls) {
      if (p.revents == 0) {
        still.push_back(p.fd);
      } else if (connected(p.fd)) {
        set_blocking(p.fd);
        done.push_back(p.fd);
      } else {
        ::close(p.fd);
      }
    }
    pending.swap(still);
  }
  for (int fd : pending) ::close(fd);
  return done;
}

// True once the peer has closed (EOF or reset); never blocks.
bool peer_closed(int fd) {
  char c;
  const ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
  if (n == 0) return true;
  if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
  return false;  // the server sent something (say a 408) and may close next
}

}  // namespace

IdleConnections::IdleConnections(int port, int n, std::string_view prefix)
    : fds_(connect_many(port, n)) {
  if (!prefix.empty()) {
    for (int fd : fds_) send_all(fd, prefix);
  }
}

IdleConnections::~IdleConnections() {
  for (int fd : fds_) ::close(fd);
}

int IdleConnections::closed_by_peer() const {
  return static_cast<int>(std::count_if(fds_.begin(), fds_.end(), peer_closed));
}

Slowloris::Slowloris(int port, int n, std::chrono::milliseconds interval)
    : fds_(connect_many(port, n)), opened_(static_cast<int>(fds_.size())) {
  thread_ = std::thread([this, interval] {
    // A header that never ends: after the request line, "X-a: b\r\n" lines forever.
    const std::string start = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    const std::string line = "X-a: b\r\n";
    std::vector<bool> open(fds_.size(), true);
    for (size_t step = 0; !stop_.load(); ++step) {
      const char byte = step < start.size() ? start[step] : line[(step - start.size()) % line.size()];
      for (size_t i = 0; i < fds_.size(); ++i) {
        if (!open[i]) continue;
        if (peer_closed(fds_[i]) || ::send(fds_[i], &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) != 1) {
          open[i] = false;
          ++closed_;
        }
      }
      const auto until = Clock::now() + interval;
      while (!stop_.load() && Clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  });
}

Slowloris::~Slowloris() {
  stop_ = true;
  thread_.join();
  for (int fd : fds_) ::close(fd);
}

size_t raise_fd_limit(size_t n) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 0;
  if (lim.rlim_cur < n) {
    lim.rlim_cur = std::min<rlim_t>(n, lim.rlim_max);
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  return lim.rlim_cur;
}

}  // namespace simdnn::test
