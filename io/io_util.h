// Private helpers shared by the io/ sources (not installed, not part of the API).
#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
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

// An unreadable directory (no read or search permission) makes every file in it look
// missing; say what is wrong instead, with the system's reason.
inline void check_readable_directory(const std::filesystem::path& dir, const char* who) {
  std::error_code ec;
  const auto status = std::filesystem::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw IoError(std::string(who) + ": cannot read " + in_quotes(dir) + ": " + ec.message());
  }
  if (!std::filesystem::exists(status)) {
    throw IoError(std::string(who) + ": " + in_quotes(dir) + " does not exist");
  }
  if (!std::filesystem::is_directory(status)) {
    throw IoError(std::string(who) + ": " + in_quotes(dir) + " is not a directory");
  }
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    throw IoError(std::string(who) + ": cannot read the directory " + in_quotes(dir) + ": " +
                  ec.message());
  }
}

// a * b, or false when it does not fit in size_t.
inline bool checked_mul(size_t a, size_t b, size_t* out) { return !__builtin_mul_overflow(a, b, out); }

}  // namespace simdnn::io_detail
