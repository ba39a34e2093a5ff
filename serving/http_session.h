// Internal: one HTTP connection of the Beast transport (http_session.cc), and what all
// connections share (ConnectionHub): the service, the limits and the set of open connections
// that a drain walks. Only http_server.cc and http_session.cc include Boost.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

namespace simdnn::serving {

class PredictionService;
struct Reply;
struct ServeOptions;

// The status line and header fields, up to and including the blank line, that Beast's
// serializer writes for `reply` (response<string_body> with its status, Content-Type, the
// extra fields in order, keep_alive(keep_alive) and prepare_payload()), so that the common
// reply can skip the serializer. False, with `head` untouched, for replies Beast treats
// specially: 1xx, 204 and 304 (no body) and replies carrying Connection, Content-Length,
// Transfer-Encoding or a second Content-Type. tools/tests/test_serve_reply_bytes.cc compares
// the two byte for byte.
bool format_plain_reply_head(const Reply& reply, unsigned version, bool keep_alive,
                             std::string& head);

// A connection as the server sees it during a drain. Both calls are thread-safe: they post
// to the connection's strand.
class Connection {
 public:
  virtual ~Connection() = default;
  // Closes the connection if it waits between requests; otherwise its current request is
  // answered with "Connection: close" and then it closes.
  virtual void drain() = 0;
  // Closes the socket now, whatever is in flight.
  virtual void force_close() = 0;
};

class ConnectionHub {
 public:
  explicit ConnectionHub(PredictionService& service);
  ConnectionHub(const ConnectionHub&) = delete;
  ConnectionHub& operator=(const ConnectionHub&) = delete;

  PredictionService& service;
  const ServeOptions& options;
  // Set once a drain begins: connections answer with "Connection: close" and do not wait
  // for another request.
  std::atomic<bool> draining{false};

  size_t open() const { return open_.load(); }
  // The global budget of request-body bytes being received or held (options.
  // max_inflight_body_bytes): true and `bytes` taken, or false when it would overflow.
  bool try_reserve_body(size_t bytes);
  void release_body(size_t bytes) { body_bytes_ -= bytes; }
  // The most connections open at once since the last call, which resets it to open().
  size_t take_peak() { return peak_.exchange(open_.load()); }
  // A connection's lifetime (counted in http_open_connections).
  uint64_t add(std::weak_ptr<Connection> connection);
  void remove(uint64_t id);
  void for_each(const std::function<void(Connection&)>& fn);

 private:
  std::mutex mutex_;
  std::unordered_map<uint64_t, std::weak_ptr<Connection>> connections_;
  uint64_t next_id_ = 1;
  std::atomic<size_t> open_{0};
  std::atomic<size_t> peak_{0};
  std::atomic<size_t> body_bytes_{0};
};

// A connection's executor: a strand of its own on the server's io_context. Named as a concrete
// type rather than tcp::socket's type-erased any_io_executor, which every composed read and
// write copied, moved and destroyed several times per request (about 5% of a request's CPU).
using ConnectionExecutor = boost::asio::strand<boost::asio::io_context::executor_type>;
using ConnectionSocket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, ConnectionExecutor>;

// Serves an accepted socket until it closes; TLS when `tls` is not null. The connection keeps
// itself alive through its pending operations.
void start_connection(ConnectionHub& hub, ConnectionSocket socket,
                      boost::asio::ssl::context* tls);

}  // namespace simdnn::serving
