#include "http_message.h"

#include <nlohmann/json.hpp>


namespace simdnn::serving {

bool iequals_ascii(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view Request::header(std::string_view name) const {
  for (const auto& [field, value] : headers) {
    if (iequals_ascii(field, name)) return value;
  }
  return {};
}

bool Request::query_param(std::string_view name, std::string_view* value) const {
  std::string_view rest = query;
  while (!rest.empty()) {
    const size_t amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    const size_t eq = pair.find('=');
    if (pair.substr(0, eq) == name) {
      *value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return true;
    }
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return false;
}

std::string error_body(std::string_view message) {
  // Messages can quote what a client sent: replace invalid UTF-8 rather than throw.
  return nlohmann::json{{"error", std::string(message)}}.dump(
      -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Reply error_reply(int status, std::string_view message) {
  return {status, error_body(message), kJsonContentType, {}};
}

}  // namespace simdnn::serving
