// libFuzzer target: the image path of tools/predict and tools/serve: decode_image (libjpeg-turbo
// for JPEG; stb_image for PNG, BMP, GIF, PNM, ...) then prepare_for_model to a small model input
// size. libjpeg-turbo is Debian's shared library, not instrumented: the fuzzer gets no coverage
// from inside it, and ASan sees only its calls into the C library (malloc, memcpy, ...).
// Contract checked (as serve relies on it): IoError for anything undecodable, and a decoded
// image of the declared size.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#include "simdnn/image.h"
#include "simdnn/image_ops.h"
#include "simdnn/io_error.h"

namespace {
// Smaller than the 4096x4096 default so that each run stays fast; the header check that
// enforces the limit is the same code for any value.
constexpr size_t kMaxPixels = size_t{512} * 512;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  simdnn::GrayImage image;
  try {
    image = simdnn::decode_image(std::span(data, size), "fuzz input", kMaxPixels);
  } catch (const simdnn::IoError&) {
    return 0;
  }
  if (image.width <= 0 || image.height <= 0 ||
      static_cast<size_t>(image.width) * static_cast<size_t>(image.height) > kMaxPixels ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height) {
    std::fprintf(stderr, "decoded image %d x %d with %zu pixels\n", image.width, image.height,
                 image.pixels.size());
    std::abort();
  }
  // The model size and inversion come from the last bytes, so the fuzzer explores both
  // shrinking and enlarging with every inversion mode.
  const int width = 1 + (size > 1 ? data[size - 2] % 64 : 27);
  const int height = 1 + (size > 0 ? data[size - 1] % 64 : 27);
  const auto invert = static_cast<simdnn::Invert>((size > 2 ? data[size - 3] : 0) % 3);
  const std::vector<uint8_t> input = simdnn::prepare_for_model(image, width, height, invert);
  if (input.size() != static_cast<size_t>(width) * height) std::abort();
  return 0;
}
