#include "tests/support/image_encode.h"

#include <stb_image_write.h>

#include <stdexcept>
#include <string>

#include "simdnn/io_error.h"

namespace simdnn {

std::vector<uint8_t> encode_image(std::span<const uint8_t> pixels, int width, int height,
                                  int channels, ImageFormat format, int jpeg_quality) {
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 ||
      pixels.size() != static_cast<size_t>(width) * height * channels) {
    throw std::invalid_argument("encode_image: " + std::to_string(pixels.size()) +
                                " bytes do not hold a " + std::to_string(width) + "x" +
                                std::to_string(height) + " image with " +
                                std::to_string(channels) + " channels");
  }
  std::vector<uint8_t> out;
  auto append = [](void* context, void* data, int size) {
    auto* bytes = static_cast<std::vector<uint8_t>*>(context);
    const auto* p = static_cast<const uint8_t*>(data);
    bytes->insert(bytes->end(), p, p + size);
  };
  int ok = 0;
  switch (format) {
    case ImageFormat::kPng:
      ok = stbi_write_png_to_func(append, &out, width, height, channels, pixels.data(),
                                  width * channels);
      break;
    case ImageFormat::kBmp:
      ok = stbi_write_bmp_to_func(append, &out, width, height, channels, pixels.data());
      break;
    case ImageFormat::kJpeg:
      ok = stbi_write_jpg_to_func(append, &out, width, height, channels, pixels.data(),
                                  jpeg_quality);
      break;
  }
  if (!ok) throw IoError("encode_image: stb_image_write failed");
  return out;
}

}  // namespace simdnn
