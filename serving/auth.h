// Internal: bearer-token checks (`Authorization: Bearer <token>`, RFC 6750) for endpoints that
// need them. The token comes from --auth-token-file (see simdnn/serving/serve_config.h).
#pragma once

#include <array>
#include <optional>
#include <string_view>

#include "http_message.h"

namespace simdnn::serving {

class TokenCheck {
 public:
  // An empty token disables the check (every request passes).
  explicit TokenCheck(std::string_view token);

  bool enabled() const { return enabled_; }

  // std::nullopt when the request may proceed, otherwise the 401 reply to send (with
  // WWW-Authenticate: Bearer). Constant time in the presented token: both sides are hashed to
  // SHA-256 digests first, so the comparison (CRYPTO_memcmp) runs over 32 bytes whatever the
  // lengths, and neither the length nor a matching prefix shows in the timing.
  std::optional<Reply> require_token(const Request& request) const;

 private:
  bool enabled_ = false;
  std::array<unsigned char, 32> digest_{};
};

}  // namespace simdnn::serving
