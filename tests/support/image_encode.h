// Image encoding for tests and fuzz seeds (stb_image_write): not part of simdnn's API, which
// only decodes images. Target simdnn_test_image_support (tests/support/CMakeLists.txt).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace simdnn {

// The formats encode_image writes.
enum class ImageFormat { kPng, kBmp, kJpeg };

// Encodes interleaved 8-bit pixels (channels 1 = gray, 2 = gray+alpha, 3 = RGB, 4 = RGBA) with
// stb_image_write; for writing test fixtures and fuzz seeds. JPEG drops alpha. Throws
// std::invalid_argument for inconsistent arguments and IoError when encoding fails.
std::vector<uint8_t> encode_image(std::span<const uint8_t> pixels, int width, int height,
                                  int channels, ImageFormat format, int jpeg_quality = 90);

}  // namespace simdnn
