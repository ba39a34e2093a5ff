// format_plain_reply_head: serve writes its common replies without Beast's serializer (a tenth
// of a request's CPU), so its bytes must stay exactly those Beast writes for the same reply. A
// Boost upgrade that changes Beast's output (a reason phrase, the order of fields) fails here
// rather than on the wire.
#include <doctest/doctest.h>

#include <boost/beast/http.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "serving/http_message.h"
#include "serving/http_session.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_serve_reply_bytes {

namespace {

namespace http = boost::beast::http;
using simdnn::serving::Reply;

// What http_session.cc's Beast path sends for the reply: status line, fields and body.
std::string beast_bytes(const Reply& reply, unsigned version, bool keep_alive) {
  http::response<http::string_body> response;
  response.version(version);
  response.result(static_cast<unsigned>(reply.status));
  response.set(http::field::content_type, reply.content_type);
  for (const auto& [name, value] : reply.headers) response.insert(name, value);
  response.body() = reply.body;
  response.keep_alive(keep_alive);
  response.prepare_payload();
  std::ostringstream out;
  out << response;
  return out.str();
}

}  // namespace

TEST_CASE("format_plain_reply_head: the same bytes as Beast's serializer") {
  const std::vector<int> statuses = {200, 201, 202, 299, 400, 401, 403, 404, 405, 408,
                                     409, 413, 415, 422, 429, 431, 500, 501, 503, 599, 999};
  const std::vector<std::string> content_types = {
      simdnn::serving::kJsonContentType, simdnn::serving::kMetricsContentType,
      " text/plain ", "\timage/png\t"};
  const std::vector<std::vector<std::pair<std::string, std::string>>> header_sets = {
      {},
      {{"Allow", "GET, POST"}},
      {{"Retry-After", " 1 "}, {"X-Request-Id", "\t0190abcdef01-23456789abcdef012345\t"}},
      {{"WWW-Authenticate", "Bearer realm=\"simdnn\""}, {"Cache-Control", "no-store"},
       {"x-lower-case", "v"}, {"X-Empty", ""}}};
  const std::vector<std::string> bodies = {"", "{}", std::string(10'000, 'x')};
  int compared = 0;
  for (const int status : statuses) {
    for (const auto& content_type : content_types) {
      for (const auto& headers : header_sets) {
        for (const auto& body : bodies) {
          for (const unsigned version : {10u, 11u}) {
            for (const bool keep_alive : {false, true}) {
              const Reply reply{status, body, content_type, headers};
              std::string head = "stale";
              REQUIRE(simdnn::serving::format_plain_reply_head(reply, version, keep_alive, head));
              CAPTURE(status);
              CAPTURE(content_type);
              CAPTURE(version);
              CAPTURE(keep_alive);
              CHECK(head + body == beast_bytes(reply, version, keep_alive));
              ++compared;
            }
          }
        }
      }
    }
  }
  CHECK(compared == 21 * 4 * 4 * 3 * 2 * 2);
}

TEST_CASE("format_plain_reply_head: replies Beast treats specially are left to Beast") {
  std::string head = "untouched";
  for (const int status : {100, 101, 199, 204, 304, 1000}) {
    CAPTURE(status);
    CHECK_FALSE(simdnn::serving::format_plain_reply_head(Reply{status, "", "text/plain", {}}, 11,
                                                         true, head));
  }
  for (const char* field : {"Connection", "content-length", "Transfer-Encoding", "CONTENT-TYPE"}) {
    CAPTURE(field);
    const Reply reply{200, "{}", simdnn::serving::kJsonContentType, {{field, "x"}}};
    CHECK_FALSE(simdnn::serving::format_plain_reply_head(reply, 11, true, head));
  }
  CHECK(head == "untouched");
}

}  // namespace test_serve_reply_bytes
