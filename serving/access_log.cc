#include "access_log.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>

namespace simdnn::serving {

namespace {

// Fields come from the client (path, peer, id): JSON-quote them, replacing invalid UTF-8.
void append_string(std::string& out, std::string_view s) {
  // The usual field (an id, a path, an address) is printable ASCII, where JSON quoting only
  // escapes '"' and '\\' (as nlohmann::json's dump does): quoted here without building a json
  // value and a temporary string per field.
  const bool printable =
      std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
  if (printable) {
    out += '"';
    for (const char c : s) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
    return;
  }
  out += nlohmann::json(std::string(s)).dump(-1, ' ', false,
                                             nlohmann::json::error_handler_t::replace);
}

void append_number(std::string& out, double v) {
  if (!(v == v) || v - v != 0) {  // NaN or infinity: not JSON
    out += "null";
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

// RFC 3339 in UTC with milliseconds: 2024-05-01T12:00:00.123Z.
void append_time(std::string& out, double unix_seconds) {
  const auto whole = static_cast<std::time_t>(unix_seconds);
  int millis = static_cast<int>((unix_seconds - static_cast<double>(whole)) * 1000.0);
  millis = millis < 0 ? 0 : (millis > 999 ? 999 : millis);
  std::tm tm{};
  gmtime_r(&whole, &tm);
  char buf[40];
  const size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::snprintf(buf + n, sizeof buf - n, ".%03dZ", millis);
  out += '"';
  out += buf;
  out += '"';
}

}  // namespace

AccessLog::AccessLog(const std::string& destination, double sample)
    : sample_(sample < 0 ? 0 : (sample > 1 ? 1 : sample)) {
  if (destination.empty()) return;
  if (destination == "-") {
    file_ = stdout;
    return;
  }
  file_ = std::fopen(destination.c_str(), "a");
  if (!file_) {
    throw std::runtime_error("cannot open access log " + destination + ": " +
                             std::strerror(errno));
  }
  owned_ = true;
}

AccessLog::~AccessLog() {
  if (owned_) std::fclose(file_);
}

bool AccessLog::sampled() const {
  if (sample_ >= 1) return true;
  if (sample_ <= 0) return false;
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0, 1)(rng) < sample_;
}

std::string AccessLog::format(const AccessRecord& r, double unix_seconds) {
  std::string line;
  line.reserve(256);
  line += R"({"time":)";
  append_time(line, unix_seconds);
  line += R"(,"id":)";
  append_string(line, r.id);
  line += R"(,"peer":)";
  append_string(line, r.peer);
  line += R"(,"method":)";
  append_string(line, r.method);
  line += R"(,"path":)";
  append_string(line, r.path);
  line += R"(,"status":)";
  line += std::to_string(r.status);
  line += R"(,"bytes":)";
  line += std::to_string(r.bytes);
  line += R"(,"duration":)";
  append_number(line, r.seconds);
  if (!r.model.empty()) {
    line += R"(,"model":)";
    append_string(line, r.model);
    line += R"(,"version":)";
    append_string(line, r.version);
  }
  if (r.predicted_class) {
    line += R"(,"class":)";
    line += std::to_string(*r.predicted_class);
    line += R"(,"confidence":)";
    append_number(line, static_cast<double>(r.confidence));
  }
  line += '}';
  return line;
}

void AccessLog::write(const AccessRecord& r) {
  if (!file_) return;
  const double now = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
  std::string line = format(r, now);  // formatted outside the lock
  line += '\n';
  std::lock_guard lock(mutex_);
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace simdnn::serving
