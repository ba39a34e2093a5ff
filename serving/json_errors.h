// Internal: the message of a JSON syntax error, as the SAX request parsers report it.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace simdnn::serving {

// "[json.exception.parse_error.101] parse error at line 1, column 3: ..." without the id,
// prefixed with "malformed JSON: ".
inline std::string malformed_json_message(const nlohmann::detail::exception& e) {
  std::string_view what = e.what();
  if (const size_t close = what.find("] "); close != std::string_view::npos) {
    what.remove_prefix(close + 2);
  }
  return "malformed JSON: " + std::string(what);
}

}  // namespace simdnn::serving
