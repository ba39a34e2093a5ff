// Private helpers shared by the io/ sources (not installed, not part of the API).
#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "simdnn/io_error.h"

namespace simdnn::io_detail {

// "'<name>'" — quoted so that empty names and trailing spaces are visible in messages.
// Built with append: GCC 12 gives a false -Wrestrict for "'" + std::string(...) + "'".
inline std::string in_quotes(std::string_view name) {
  std::string s;
  s.reserve(name.size() + 2);
  s.append(1, '\'').append(name).append(1, '\'');
  return s;
}
inline std::string in_quotes(const std::string& name) { return in_quotes(std::string_view(name)); }
inline std::string in_quotes(const char* name) { return in_quotes(std::string_view(name)); }
inline std::string in_quotes(const std::filesystem::path& path) { return in_quotes(path.native()); }

// strerror_r in its GNU or XSI form, whichever the C library provides.
inline std::string errno_text(int err) {
  char buf[256] = {};
  auto result = strerror_r(err, buf, sizeof buf);
  if constexpr (std::is_same_v<decltype(result), char*>) {
    return result;  // GNU: may point to a static string instead of buf
  } else {
    return result == 0 ? std::string(buf) : "errno " + std::to_string(err);
  }
}

inline std::string hex32(uint32_t v) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string s = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) s += kDigits[(v >> shift) & 0xF];
  return s;
}

// a * b, or false when it does not fit in size_t.
inline bool checked_mul(size_t a, size_t b, size_t* out) { return !__builtin_mul_overflow(a, b, out); }

}  // namespace simdnn::io_detail
