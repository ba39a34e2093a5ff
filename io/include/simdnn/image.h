// Image decoding for prediction: JPEG via libjpeg-turbo; PNG, BMP, GIF, TGA, PSD, PNM, HDR via
// stb_image (binary PGM/PPM by simdnn itself), to 8-bit grayscale. Resizing and conversion to
// MNIST-style model input are in <simdnn/image_ops.h>.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace simdnn {

// Default limit on width * height, checked from the image header before decoding, so a small
// file that declares a huge image cannot make the decoder allocate gigabytes.
inline constexpr size_t kDefaultMaxImagePixels = size_t{4096} * 4096;
// load_image refuses files larger than this before reading them.
inline constexpr size_t kMaxImageFileBytes = size_t{256} << 20;

// 8-bit grayscale, row-major, width * height pixels; 0 is black.
struct GrayImage {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> pixels;

  uint8_t at(int x, int y) const { return pixels[static_cast<size_t>(y) * width + x]; }
};

// Decodes JPEG (with libjpeg-turbo) and the other formats stb_image knows. Colour is converted
// to luma (a JPEG's own Y channel); transparency is composited over white, so a transparent
// background reads as paper rather than black. Throws DataError naming `name_for_errors` and the
// decoder's reason when the bytes are not a decodable image (unknown format, truncated,
// corrupt), or when the header declares more than max_pixels pixels.
GrayImage decode_image(std::span<const uint8_t> bytes, std::string_view name_for_errors,
                       size_t max_pixels = kDefaultMaxImagePixels);

// read_file_bytes(path, kMaxImageFileBytes) + decode_image, naming the path in errors.
GrayImage load_image(const std::filesystem::path& path, size_t max_pixels = kDefaultMaxImagePixels);

}  // namespace simdnn
