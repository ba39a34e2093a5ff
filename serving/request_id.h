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

// 32 lower-case hex digits: the Unix time in milliseconds (12 digits, most significant first),
// then 80 random bits from a thread-local generator seeded from std::random_device (no lock and
// no shared state on the request path; two ids of the same millisecond differ by chance of
// 2^-80). Time first, as UUIDv7 does, so ids sort by time: the prediction store's request_id
// index then takes each new id near its last page instead of anywhere in the tree (random ids
// cost its writer about 3x the CPU per row, docs/serving.md).
std::string generate_request_id();

}  // namespace simdnn::serving
