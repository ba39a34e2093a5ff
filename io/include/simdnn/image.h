// Images for prediction: decoding (JPEG via libjpeg-turbo; PNG, BMP, GIF, TGA, PSD, PNM, HDR via
// stb_image), resizing, and conversion to MNIST-style model input.
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
// background reads as paper rather than black. Throws IoError naming `name_for_errors` and the
// decoder's reason when the bytes are not a decodable image (unknown format, truncated,
// corrupt), or when the header declares more than max_pixels pixels.
GrayImage decode_image(std::span<const uint8_t> bytes, std::string_view name_for_errors,
                       size_t max_pixels = kDefaultMaxImagePixels);

// read_file_bytes(path, kMaxImageFileBytes) + decode_image, naming the path in errors.
GrayImage load_image(const std::filesystem::path& path, size_t max_pixels = kDefaultMaxImagePixels);

// Resamples to width x height, each axis independently: area averaging (a box filter with
// fractional pixel coverage) when shrinking, so thin strokes fade instead of vanishing;
// bilinear with pixel-centre alignment when enlarging or keeping the size (the identity is
// exact). Throws std::invalid_argument for a non-positive size or an empty image.
GrayImage resize_gray(const GrayImage& image, int width, int height);

enum class Invert {
  kNo,    // keep as is: the image is already light ink on a dark background
  kYes,   // 255 - v: dark ink on light paper
  kAuto,  // invert when the mean of the border pixels is above 127 (a light background)
};

// True when kAuto would invert `image`: the mean of its outermost rows and columns is > 127.
bool has_light_background(const GrayImage& image);

// width * height bytes of MNIST-style input (light ink on a dark background): resize_gray to
// the model's size, then invert as asked. No centring or deskewing is done.
std::vector<uint8_t> prepare_for_model(const GrayImage& image, int width, int height,
                                       Invert invert);

enum class ImageFormat { kPng, kBmp, kJpeg };

// Encodes interleaved 8-bit pixels (channels 1 = gray, 2 = gray+alpha, 3 = RGB, 4 = RGBA) with
// stb_image_write; for writing debug images and test fixtures. JPEG drops alpha. Throws
// std::invalid_argument for inconsistent arguments and IoError when encoding fails.
std::vector<uint8_t> encode_image(std::span<const uint8_t> pixels, int width, int height,
                                  int channels, ImageFormat format, int jpeg_quality = 90);

}  // namespace simdnn
