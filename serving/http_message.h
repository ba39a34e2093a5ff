// Internal: a request and a reply as the service sees them, whatever the HTTP transport. The
// transport (http_server.cc) parses the wire format, enforces its limits, and turns each
// complete request into a Request; PredictionService::handle routes it and answers a Reply.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace simdnn::serving {

constexpr const char* kJsonContentType = "application/json";
constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

// Views into the transport's buffers, valid while handle() runs.
struct Request {
  std::string_view method;  // "GET", "POST", ...
  std::string_view path;    // "/v2/models/fashion/infer": the target up to '?', not decoded
  std::string_view query;   // the target after '?', without it ("" when none)
  std::string_view body;
  std::string_view peer;    // "127.0.0.1:51234", for logs
  // Header fields in arrival order, names as sent.
  std::vector<std::pair<std::string_view, std::string_view>> headers;

  // The first field of that name (case-insensitive), or "" when absent.
  std::string_view header(std::string_view name) const;
  // The value of query parameter `name` ("top_k=3&x=1"), if present; not percent-decoded
  // (the service's parameters are plain numbers and names).
  bool query_param(std::string_view name, std::string_view* value) const;
};

struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = kJsonContentType;
  // Extra response header fields (e.g. Allow, Retry-After, X-Request-Id).
  std::vector<std::pair<std::string, std::string>> headers;
};

// ASCII case-insensitive equality (header names, auth schemes, multipart parameters).
bool iequals_ascii(std::string_view a, std::string_view b);

// {"error": message}, the body of every error response; message may hold any bytes (invalid
// UTF-8 is replaced, never an exception).
std::string error_body(std::string_view message);
Reply error_reply(int status, std::string_view message);

}  // namespace simdnn::serving
