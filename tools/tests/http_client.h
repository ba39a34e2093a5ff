// A small blocking HTTP/1.1 client for the serve tests (Boost.Beast underneath, kept out of
// this header), and raw-socket helpers for the attack tests: arbitrary bytes, idle
// connections, slowloris senders. Loopback test use only: no TLS, no redirects, no proxies.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace simdnn::test {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpResponse {
  int status = 0;
  HttpHeaders headers;  // in arrival order, names as sent
  std::string body;
  // The first field of that name (case-insensitive), or "" when absent.
  std::string header(std::string_view name) const;
};

// One connection, reused across requests while the server keeps it open (keep-alive); it
// reconnects when the server has closed it. Every operation (connect, write, read) is bounded
// by the timeout. Not thread-safe: one client per thread.
class HttpClient {
 public:
  HttpClient(std::string host, int port,
             std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~HttpClient();
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;

  void set_timeout(std::chrono::milliseconds timeout);

  // nullopt on a connection error or timeout (last_error() says which).
  std::optional<HttpResponse> get(const std::string& path, const HttpHeaders& headers = {});
  // content_type "" sends no Content-Type field.
  std::optional<HttpResponse> post(const std::string& path, std::string_view body,
                                   const std::string& content_type,
                                   const HttpHeaders& headers = {});
  std::optional<HttpResponse> request(const std::string& method, const std::string& path,
                                      std::string_view body, const std::string& content_type,
                                      const HttpHeaders& headers = {});

  // Closes the connection; the next request opens a new one.
  void close();
  // How many TCP connections this client has opened so far (keep-alive reuse check).
  int connections_opened() const;
  const std::string& last_error() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- Raw sockets ---------------------------------------------------------------------------

// A blocking TCP connection to 127.0.0.1:port, or -1. TCP_NODELAY is set.
int connect_loopback(int port);
// Sends everything (false if the peer reset or closed).
bool send_all(int fd, std::string_view data);
// Reads until `count` complete responses (status line, headers, Content-Length or chunked
// body) have arrived, the peer closes, or `timeout` passes; returns the bytes read.
std::string read_responses(int fd, int count, std::chrono::milliseconds timeout);
// Connect, send `request`, read one response (or until close/timeout), close.
std::string exchange(int port, std::string_view request,
                     std::chrono::milliseconds timeout = std::chrono::seconds(5));
// "HTTP/1.1 413 ..." -> 413; 0 when `response` does not start with a status line.
int status_of(std::string_view response);
// Splits concatenated responses (as read from one connection) into their status codes.
std::vector<int> statuses_of(std::string_view responses);
// The body of the first response in `response` ("" if incomplete).
std::string body_of(std::string_view response);

// N open connections, each having sent nothing (or a request prefix) and left idle.
class IdleConnections {
 public:
  // Opens up to n connections; `prefix` is sent on each right after connecting.
  IdleConnections(int port, int n, std::string_view prefix = {});
  ~IdleConnections();
  IdleConnections(const IdleConnections&) = delete;
  IdleConnections& operator=(const IdleConnections&) = delete;
  int opened() const { return static_cast<int>(fds_.size()); }
  // How many the server has closed so far (a read returns EOF or reset), without blocking.
  int closed_by_peer() const;

 private:
  std::vector<int> fds_;
};

// Slowloris: n connections that each send a request's header one byte every `interval`,
// never finishing it, from one background thread, until destroyed.
class Slowloris {
 public:
  Slowloris(int port, int n, std::chrono::milliseconds interval = std::chrono::seconds(1));
  ~Slowloris();
  Slowloris(const Slowloris&) = delete;
  Slowloris& operator=(const Slowloris&) = delete;
  int opened() const { return opened_; }
  // Connections the server has closed so far.
  int closed_by_peer() const { return closed_.load(); }

 private:
  std::vector<int> fds_;
  int opened_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> closed_{0};
  std::thread thread_;
};

// RLIMIT_NOFILE raised to at least n (up to the hard limit); returns the new soft limit.
size_t raise_fd_limit(size_t n);

}  // namespace simdnn::test
