#include "simdnn/png_encode.h"

#include <stb_image_write.h>

#include <climits>
#include <stdexcept>
#include <string>

#include "simdnn/atomic_file.h"
#include "simdnn/io_error.h"

namespace simdnn {

RgbImage::RgbImage(size_t w, size_t h, uint8_t r, uint8_t g, uint8_t b)
    : width(w), height(h), pixels(w * h * 3) {
  for (size_t i = 0; i < w * h; ++i) {
    pixels[3 * i] = r;
    pixels[3 * i + 1] = g;
    pixels[3 * i + 2] = b;
  }
}

std::vector<uint8_t> encode_png(const RgbImage& image) {
  if (image.width == 0 || image.height == 0 || image.width > INT_MAX / 3 ||
      image.height > INT_MAX || image.pixels.size() != image.width * image.height * 3) {
    throw std::invalid_argument("encode_png: " + std::to_string(image.pixels.size()) +
                                " bytes do not hold a " + std::to_string(image.width) + "x" +
                                std::to_string(image.height) + " RGB picture");
  }
  std::vector<uint8_t> out;
  auto append = [](void* context, void* data, int size) {
    auto* bytes = static_cast<std::vector<uint8_t>*>(context);
    const auto* p = static_cast<const uint8_t*>(data);
    bytes->insert(bytes->end(), p, p + size);
  };
  const int w = static_cast<int>(image.width), h = static_cast<int>(image.height);
  if (!stbi_write_png_to_func(append, &out, w, h, 3, image.pixels.data(), w * 3)) {
    throw IoError("encode_png: stb_image_write could not encode a " + std::to_string(w) + "x" +
                  std::to_string(h) + " picture");
  }
  return out;
}

void write_png(const std::filesystem::path& path, const RgbImage& image) {
  write_file_atomically(path, encode_png(image));
}

}  // namespace simdnn
