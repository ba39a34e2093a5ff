// libFuzzer target: model files. parse_safetensors on the raw bytes; for a file it accepts,
// serialize_safetensors must reproduce a file that parses to the same tensors; then
// model_from_safetensors, and for a model it accepts, one prediction.
// Contract checked: IoError for anything invalid, never another exception or a crash.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#include "simdnn/model_file.h"
#include "simdnn/io_error.h"
#include "simdnn/model.h"
#include "simdnn/safetensors.h"
#include "simdnn/tensor.h"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_safetensors: %s\n", what);
  std::abort();
}

bool same_tensor(const simdnn::Tensor& a, const simdnn::Tensor& b) {
  return a.shape() == b.shape() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  simdnn::SafetensorsFile file;
  try {
    file = simdnn::parse_safetensors(std::span(data, size), "fuzz input");
  } catch (const simdnn::IoError&) {
    return 0;
  }

  // Round trip: what the parser accepted, the writer writes, and the parser reads it back.
  try {
    const std::vector<uint8_t> bytes = simdnn::serialize_safetensors(file);
    const simdnn::SafetensorsFile again = simdnn::parse_safetensors(bytes, "round trip");
    if (again.metadata != file.metadata) fail("metadata changed in the round trip");
    if (again.tensors.size() != file.tensors.size()) fail("tensor count changed in the round trip");
    for (size_t i = 0; i < file.tensors.size(); ++i) {
      if (again.tensors[i].first != file.tensors[i].first ||
          !same_tensor(again.tensors[i].second, file.tensors[i].second)) {
        fail("a tensor changed in the round trip");
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "round trip of an accepted file threw: %s\n", e.what());
    std::abort();
  }

  try {
    simdnn::Model model = simdnn::model_from_safetensors(file, "fuzz input");
    const size_t features = model.info().input_size();
    simdnn::Tensor x({1, features});
    for (size_t i = 0; i < features; ++i) x[i] = static_cast<float>(i % 256) / 255.0f;
    const simdnn::Tensor& y = model.predict(x, 1);
    if (y.rows() != 1 || y.cols() != model.num_classes()) fail("prediction has the wrong shape");
  } catch (const simdnn::IoError&) {
  }
  return 0;
}
