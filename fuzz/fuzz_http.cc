// libFuzzer target: the whole request path behind the HTTP transport, PredictionService::handle
// (routing, headers, /predict JSON and image bodies, multipart uploads, the Open Inference
// Protocol v2 endpoints, /metrics, /healthz, /readyz), fed a request built from the input:
//
//   METHOD SP TARGET LF          (TARGET split at the first '?' into path and query)
//   Name: value LF ...           (header fields, until an empty line; a line without ':' is a
//   LF                            field with an empty value)
//   body...                      (the rest, as is)
//
// A trailing CR on a line is dropped, so a real HTTP/1.1 request is also a valid input.
// Contract checked: handle() never throws and never crashes; every reply has a status in
// 200..599, an error status (>= 400) never has an empty body, and every application/json reply
// is well-formed JSON (error messages with invalid UTF-8 included).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>

#include "prediction_service.h"  // internal to serving/: included by path (fuzz/CMakeLists.txt)
#include "simdnn/model.h"
#include "simdnn/random.h"

namespace {

using simdnn::serving::PredictionService;
using simdnn::serving::Reply;
using simdnn::serving::Request;

simdnn::Model small_model() {
  simdnn::ModelInfo info;
  info.class_names = simdnn::digit_class_names();
  info.version = "fuzz";
  simdnn::Rng rng(3);
  return simdnn::Model::mlp(info, {8}, simdnn::Activation::kRelu, 10, rng);
}

const simdnn::serving::ServeOptions& fuzz_options() {
  static const simdnn::serving::ServeOptions options = [] {
    simdnn::serving::ServeOptions o;
    o.threads = 1;
    o.max_batch = 8;
    o.max_body_bytes = 65536;
    o.max_image_pixels = 256 * 256;  // keeps image decoding fast
    return o;
  }();
  return options;
}

// Next line of `in` (without LF and a trailing CR); false at the end.
bool next_line(std::string_view& in, std::string_view& line) {
  if (in.empty()) return false;
  const size_t lf = in.find('\n');
  line = in.substr(0, lf);
  in.remove_prefix(lf == std::string_view::npos ? in.size() : lf + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return true;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Request parse(std::string_view in) {
  Request r;
  r.peer = "127.0.0.1:40000";
  std::string_view line;
  if (next_line(in, line)) {
    const size_t sp = line.find(' ');
    r.method = line.substr(0, sp);
    std::string_view target = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
    target = target.substr(0, target.find(' '));  // " HTTP/1.1", if any
    const size_t q = target.find('?');
    r.path = target.substr(0, q);
    r.query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  }
  while (next_line(in, line) && !line.empty()) {
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
      r.headers.emplace_back(line, std::string_view());
    } else {
      r.headers.emplace_back(line.substr(0, colon), trim(line.substr(colon + 1)));
    }
    if (r.headers.size() > 200) break;  // the transport allows far fewer
  }
  r.body = in;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static PredictionService service(small_model(), fuzz_options());
  const Request request = parse(std::string_view(reinterpret_cast<const char*>(data), size));
  Reply reply;
  try {
    reply = service.handle(request);
  } catch (...) {
    std::fprintf(stderr, "handle() threw\n");
    std::abort();
  }
  if (reply.status < 200 || reply.status > 599) {
    std::fprintf(stderr, "status %d\n", reply.status);
    std::abort();
  }
  if (reply.status >= 400 && reply.body.empty()) {
    std::fprintf(stderr, "status %d with an empty body\n", reply.status);
    std::abort();
  }
  if (reply.content_type.rfind("application/json", 0) == 0 &&
      !nlohmann::json::accept(reply.body)) {
    std::fprintf(stderr, "status %d: invalid JSON body: %.300s\n", reply.status,
                 reply.body.c_str());
    std::abort();
  }
  return 0;
}
