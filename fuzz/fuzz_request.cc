// libFuzzer target: serving's POST /predict body parser, parse_predict_json (the JSON half of
// the request; image bodies are fuzz_image's decode_image + prepare_for_model).
// Contract checked: an error status of 400 or 413 for anything invalid, and otherwise
// 1..max_batch rows of input_size values, each finite and within 0..255.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "simdnn/serving/predict_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The first byte picks the model input size, the rest is the body.
  static constexpr size_t kInputSizes[] = {1, 4, 784};
  static constexpr size_t kMaxBatch = 8;
  const size_t input_size = size > 0 ? kInputSizes[data[0] % 3] : 4;
  const std::string_view body(reinterpret_cast<const char*>(data) + (size > 0 ? 1 : 0),
                              size > 0 ? size - 1 : 0);

  static simdnn::serving::ParsedInstances out;  // reused, as a server worker does
  const auto error = simdnn::serving::parse_predict_json(body, input_size, kMaxBatch, out);
  if (error) {
    if (error->status != 400 && error->status != 413) {
      std::fprintf(stderr, "unexpected status %d: %s\n", error->status, error->message.c_str());
      std::abort();
    }
    if (error->message.empty()) std::abort();
    return 0;
  }
  if (out.rows == 0 || out.rows > kMaxBatch || out.pixels.size() != out.rows * input_size) {
    std::fprintf(stderr, "accepted %zu rows with %zu values (input size %zu)\n", out.rows,
                 out.pixels.size(), input_size);
    std::abort();
  }
  for (float v : out.pixels) {
    if (!std::isfinite(v) || v < 0.0f || v > 255.0f) {
      std::fprintf(stderr, "accepted pixel value %g\n", v);
      std::abort();
    }
  }
  return 0;
}
