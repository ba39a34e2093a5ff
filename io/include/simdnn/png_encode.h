// Writing RGB pictures as PNG (stb_image_write): explanation heatmaps (predict --explain, the
// service's explain endpoint) and training plots.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace simdnn {

// An 8-bit RGB picture, rows top to bottom, pixels interleaved (r, g, b).
struct RgbImage {
  size_t width = 0;
  size_t height = 0;
  std::vector<uint8_t> pixels;  // width * height * 3

  RgbImage() = default;
  // A picture of one colour (white unless told).
  RgbImage(size_t width, size_t height, uint8_t r = 255, uint8_t g = 255, uint8_t b = 255);
  uint8_t* at(size_t x, size_t y) { return pixels.data() + (y * width + x) * 3; }
  const uint8_t* at(size_t x, size_t y) const { return pixels.data() + (y * width + x) * 3; }
};

// The PNG file's bytes. Throws std::invalid_argument for an empty picture or pixels of the
// wrong size, IoError when the encoder fails.
std::vector<uint8_t> encode_png(const RgbImage& image);
// encode_png written atomically to `path` (<simdnn/atomic_file.h>); IoError names the path.
void write_png(const std::filesystem::path& path, const RgbImage& image);

}  // namespace simdnn
