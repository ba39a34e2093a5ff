// libFuzzer target: the IDX readers (read_idx_images, read_idx_labels), plain and gzip.
// The readers take a path, so each input is written to a per-process file in /dev/shm (RAM)
// first. Contract checked: IoError for anything invalid, and a consistent set otherwise.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "simdnn/idx.h"
#include "simdnn/io_error.h"
#include "fuzz_temp_file.h"

namespace {

// Small enough that a gzip bomb cannot make one run slow or hit the RSS limit.
constexpr size_t kMaxDataBytes = size_t{4} << 20;

const simdnn::fuzz::FuzzTempFile input_file("idx");

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_file.write(data, size);
  try {
    const simdnn::ImageSet images = simdnn::read_idx_images(input_file.path(), kMaxDataBytes);
    if (images.rows == 0 || images.cols == 0 ||
        images.pixels.size() != images.count * images.rows * images.cols ||
        images.pixels.size() > kMaxDataBytes) {
      std::fprintf(stderr, "inconsistent ImageSet %zu x %zu x %zu, %zu pixels\n", images.count,
                   images.rows, images.cols, images.pixels.size());
      std::abort();
    }
  } catch (const simdnn::IoError&) {
  }
  try {
    const size_t num_classes = size > 0 ? 1 + data[size - 1] % 10 : 10;
    const simdnn::LabelSet labels = simdnn::read_idx_labels(input_file.path(), num_classes, kMaxDataBytes);
    for (uint8_t label : labels.labels) {
      if (label >= num_classes) {
        std::fprintf(stderr, "label %d >= %zu accepted\n", label, num_classes);
        std::abort();
      }
    }
  } catch (const simdnn::IoError&) {
  }
  return 0;
}
