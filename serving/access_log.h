// Internal: the JSON-lines access log (--access-log, --log-sample; line format in
// docs/serving.md). One line per sampled request, written with one fwrite under a mutex and
// flushed, so lines from concurrent requests never interleave and a crash loses at most the
// line being written. Never holds the raw input.
#pragma once

#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace simdnn::serving {

struct AccessRecord {
  std::string_view id;
  std::string_view peer;
  std::string_view method;
  std::string_view path;
  int status = 0;
  size_t bytes = 0;        // response body size
  double seconds = 0;      // time in PredictionService::handle
  std::string_view model;  // "" when the request did not reach a model endpoint
  std::string_view version;
  std::optional<size_t> predicted_class;  // of the first instance, when there is one
  float confidence = 0;                   // its probability
};

class AccessLog {
 public:
  // destination: "" (off), "-" (stdout) or a file, opened for appending (throws
  // std::runtime_error naming it when it cannot be opened). sample: the fraction of requests
  // logged, 0..1 (each request drawn independently).
  AccessLog(const std::string& destination, double sample);
  ~AccessLog();
  AccessLog(const AccessLog&) = delete;
  AccessLog& operator=(const AccessLog&) = delete;

  bool enabled() const { return file_ != nullptr; }
  // Draws whether this request is logged (true when sample is 1).
  bool sampled() const;
  // The line for r, without its newline: {"time":"2024-05-01T12:00:00.123Z","id":...}.
  static std::string format(const AccessRecord& r, double unix_seconds);
  void write(const AccessRecord& r);

 private:
  std::FILE* file_ = nullptr;
  bool owned_ = false;
  double sample_ = 1;
  std::mutex mutex_;
};

}  // namespace simdnn::serving
