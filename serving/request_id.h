// Internal: the id that ties a request to its response, its access-log line and the client's
// own logs (X-Request-Id, as nginx, Envoy and most tracing setups pass it along).
#pragma once

#include <string>
#include <string_view>

namespace simdnn::serving {

// The longest client-supplied id that is kept; longer ones are replaced.
constexpr size_t kMaxRequestIdLength = 128;

// `client_id` when it is 1..128 printable ASCII characters (0x20..0x7e): it goes into a
// response header and a log line as it is (no CR/LF, no control bytes, no
// UTF-8). Otherwise a fresh generate_request_id().
std::string sanitize_request_id(std::string_view client_id);

// 128 random bits as 32 lower-case hex digits, from a thread-local generator seeded from
// std::random_device: no lock and no shared state on the request path.
std::string generate_request_id();

}  // namespace simdnn::serving
