#include "request_id.h"

#include <chrono>
#include <cstdint>
#include <random>

namespace simdnn::serving {

namespace {

// One generator per thread, seeded once from the OS: ids must not repeat across threads or
// restarts (a fixed seed would), and a shared generator would need a lock.
std::mt19937_64& thread_rng() {
  thread_local std::mt19937_64 rng = [] {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(), device(), device(), device(),
                       device()};
    return std::mt19937_64(seed);
  }();
  return rng;
}

}  // namespace

std::string generate_request_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  // 12 hex digits of Unix milliseconds first, most significant first, then 80 random bits.
  const uint64_t ms = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  for (int i = 0; i < 12; ++i) id[i] = kHex[(ms >> (44 - 4 * i)) & 0xf];
  std::mt19937_64& rng = thread_rng();
  uint64_t bits = rng();
  for (int i = 12; i < 28; ++i, bits >>= 4) id[i] = kHex[bits & 0xf];
  bits = rng();
  for (int i = 28; i < 32; ++i, bits >>= 4) id[i] = kHex[bits & 0xf];
  return id;
}

std::string sanitize_request_id(std::string_view client_id) {
  if (client_id.empty() || client_id.size() > kMaxRequestIdLength) return generate_request_id();
  for (const char c : client_id) {
    if (c < 0x20 || c > 0x7e) return generate_request_id();
  }
  return std::string(client_id);
}

}  // namespace simdnn::serving
