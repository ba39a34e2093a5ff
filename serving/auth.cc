#include "auth.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

namespace simdnn::serving {

namespace {

std::array<unsigned char, 32> sha256(std::string_view s) {
  std::array<unsigned char, 32> d{};
  SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}


Reply unauthorized(std::string_view message, std::string_view challenge) {
  Reply reply = error_reply(401, message);
  reply.headers.emplace_back("WWW-Authenticate", std::string(challenge));
  return reply;
}

}  // namespace

TokenCheck::TokenCheck(std::string_view token) : enabled_(!token.empty()) {
  if (enabled_) digest_ = sha256(token);
}

std::optional<Reply> TokenCheck::require_token(const Request& request) const {
  if (!enabled_) return std::nullopt;
  const std::string_view field = request.header("Authorization");
  if (field.empty()) {
    return unauthorized("this endpoint needs \"Authorization: Bearer <token>\"",
                        R"(Bearer realm="simdnn")");
  }
  // The scheme is case-insensitive (RFC 7235); one or more spaces before the token.
  const size_t space = field.find(' ');
  std::string_view token;
  if (space != std::string_view::npos && iequals_ascii(field.substr(0, space), "Bearer")) {
    token = field.substr(space);
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  }
  const std::array<unsigned char, 32> presented = sha256(token);
  if (token.empty() || CRYPTO_memcmp(presented.data(), digest_.data(), digest_.size()) != 0) {
    return unauthorized("invalid bearer token",
                        R"(Bearer realm="simdnn", error="invalid_token")");
  }
  return std::nullopt;
}

}  // namespace simdnn::serving
