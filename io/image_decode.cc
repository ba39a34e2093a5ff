// decode_image and load_image: binary PNM decoded here, JPEG by libjpeg-turbo (jpeg_decode.cc),
// everything else by stb_image behind guards for the bugs of the 2.27 that Debian 12 ships.
#include "simdnn/image.h"

#include <stb_image.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <string>

#include "io_util.h"
#include "jpeg_decode.h"
#include "simdnn/io_error.h"
#include "simdnn/read_file.h"

namespace simdnn {

using io_detail::in_quotes;

namespace {

std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return std::string("stb_image: ") + (reason ? reason : "no reason given");
}

// stb frees with free(); this owns what stbi_load_* returns.
struct StbPixels {
  unsigned char* p = nullptr;
  ~StbPixels() { stbi_image_free(p); }
};

// Binary PGM/PPM (P5/P6) are decoded here rather than by stb_image 2.27 (Debian 12), which
// neither checks that the data is complete (it decodes uninitialised memory), nor byte-swaps
// 16-bit samples (PNM is big-endian), nor scales by maxval, and whose channel conversion reads
// past its buffer for 16-bit PNM (a 22-byte file segfaulted predict). Returns false when the
// bytes are not a binary PNM; throws DataError naming the image when they are a bad one.
bool decode_binary_pnm(std::span<const uint8_t> bytes, const std::string& name,
                       size_t max_pixels, GrayImage& image) {
  if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6')) return false;
  const size_t channels = bytes[1] == '6' ? 3 : 1;
  size_t pos = 2;
  uint64_t fields[3] = {0, 0, 0};  // width, height, maxval
  const char* field_names[3] = {"width", "height", "maxval"};
  for (int f = 0; f < 3; ++f) {
    while (pos < bytes.size()) {  // whitespace and # comments
      if (std::isspace(bytes[pos])) {
        ++pos;
      } else if (bytes[pos] == '#') {
        while (pos < bytes.size() && bytes[pos] != '\n') ++pos;
      } else {
        break;
      }
    }
    if (pos >= bytes.size() || !std::isdigit(bytes[pos])) {
      throw DataError("cannot decode image " + name + ": PNM header has no " + field_names[f]);
    }
    while (pos < bytes.size() && std::isdigit(bytes[pos])) {
      fields[f] = fields[f] * 10 + (bytes[pos++] - '0');
      if (fields[f] > 0xFFFFFFFFu) {
        throw DataError("cannot decode image " + name + ": PNM " + field_names[f] + " is too large");
      }
    }
  }
  const uint64_t width = fields[0], height = fields[1], maxval = fields[2];
  if (width == 0 || height == 0 || width * height > max_pixels) {
    throw DataError("cannot decode image " + name + ": dimensions " + std::to_string(width) + "x" +
                  std::to_string(height) + " = " + std::to_string(width * height) +
                  " pixels, expected 1 to " + std::to_string(max_pixels));
  }
  if (maxval == 0 || maxval > 65535) {
    throw DataError("cannot decode image " + name + ": PNM maxval " + std::to_string(maxval) +
                  " is not in 1..65535");
  }
  if (pos >= bytes.size() || !std::isspace(bytes[pos])) {
    throw DataError("cannot decode image " + name + ": PNM header does not end in whitespace");
  }
  ++pos;  // exactly one whitespace byte before the data
  const size_t sample_bytes = maxval > 255 ? 2 : 1;
  const uint64_t needed = width * height * channels * sample_bytes;
  if (bytes.size() - pos < needed) {
    throw DataError("cannot decode image " + name + ": truncated PNM data (" +
                  std::to_string(bytes.size() - pos) + " bytes after the header, " +
                  std::to_string(needed) + " needed for " + std::to_string(width) + "x" +
                  std::to_string(height) + ")");
  }
  image = GrayImage{static_cast<int>(width), static_cast<int>(height),
                    std::vector<uint8_t>(width * height)};
  const uint8_t* d = bytes.data() + pos;
  auto sample = [&](size_t i) -> unsigned {  // scaled to 0..255, rounded
    const uint64_t v = sample_bytes == 2 ? (uint64_t{d[2 * i]} << 8 | d[2 * i + 1]) : d[i];
    return static_cast<unsigned>((std::min(v, maxval) * 255 + maxval / 2) / maxval);
  };
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    image.pixels[i] = static_cast<uint8_t>(
        channels == 3 ? (sample(3 * i) * 77u + sample(3 * i + 1) * 150u + sample(3 * i + 2) * 29u) >> 8
                      : sample(i));
  }
  return true;
}

// PNG: every chunk's declared length must fit in the bytes that follow it. stb_image 2.27
// grows its IDAT buffer to the declared length before reading, so a 100-byte file declaring a
// 2 GiB chunk made it allocate 2 GiB (found by fuzz_image). Checking the chunk walk here bounds
// stb's buffers by the file size.
void check_png_chunks(std::span<const uint8_t> bytes, const std::string& name) {
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() < 8 || !std::equal(kSignature, kSignature + 8, bytes.begin())) return;
  size_t pos = 8;
  while (bytes.size() - pos >= 12) {  // length, type, (data), crc
    const uint64_t length = uint64_t{bytes[pos]} << 24 | uint64_t{bytes[pos + 1]} << 16 |
                            uint64_t{bytes[pos + 2]} << 8 | bytes[pos + 3];
    if (length > bytes.size() - pos - 12) {
      throw DataError("cannot decode image " + name + ": PNG chunk at byte " + std::to_string(pos) +
                    " declares " + std::to_string(length) + " bytes, only " +
                    std::to_string(bytes.size() - pos - 12) + " follow (truncated or corrupt)");
    }
    const bool end = std::equal(bytes.begin() + pos + 4, bytes.begin() + pos + 8, "IEND");
    pos += 12 + length;
    if (end) return;
  }
}

}  // namespace

GrayImage decode_image(std::span<const uint8_t> bytes, std::string_view name_for_errors,
                       size_t max_pixels) {
  const std::string name = in_quotes(name_for_errors);
  GrayImage pnm;
  if (decode_binary_pnm(bytes, name, max_pixels, pnm)) return pnm;
  if (io_detail::is_jpeg(bytes)) return io_detail::decode_jpeg(bytes, name, max_pixels);
  check_png_chunks(bytes, name);
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    throw DataError("cannot decode image " + name + ": " + std::to_string(bytes.size()) +
                  " bytes is more than stb_image accepts");
  }
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, channels = 0;
  // The header alone: refuse oversized images before the decoder allocates for them.
  if (!stbi_info_from_memory(data, length, &width, &height, &channels)) {
    throw DataError("cannot decode image " + name + ": not a supported image (" + stb_reason() + ")");
  }
  const size_t pixels = static_cast<size_t>(width) * static_cast<size_t>(height);
  if (width <= 0 || height <= 0 || pixels > max_pixels) {
    throw DataError("cannot decode image " + name + ": dimensions " + std::to_string(width) + "x" +
                  std::to_string(height) + " = " + std::to_string(pixels) +
                  " pixels, expected at most " + std::to_string(max_pixels));
  }
  // Decoded with the source's own channel count (req_comp 0) and converted here, which keeps
  // stb's channel-conversion code (the 16-bit one reads past its buffer in 2.27) out of the way.
  StbPixels decoded;
  int w = 0, h = 0, source_channels = 0;
  decoded.p = stbi_load_from_memory(data, length, &w, &h, &source_channels, 0);
  if (!decoded.p) {
    throw DataError("cannot decode image " + name + ": corrupt or truncated image data (" +
                  stb_reason() + ")");
  }
  if (w != width || h != height || source_channels < 1 || source_channels > 4) {
    throw DataError("cannot decode image " + name + ": header says " + std::to_string(width) + "x" +
                  std::to_string(height) + ", decoder produced " + std::to_string(w) + "x" +
                  std::to_string(h) + " with " + std::to_string(source_channels) + " channels");
  }
  GrayImage image{w, h, std::vector<uint8_t>(pixels)};
  const size_t n = static_cast<size_t>(source_channels);
  for (size_t i = 0; i < pixels; ++i) {
    const stbi_uc* px = decoded.p + n * i;
    // Colour to luma with stb's own weights (77, 150, 29)/256; alpha is the last channel of
    // 2- and 4-channel images.
    const unsigned gray = n >= 3 ? (px[0] * 77u + px[1] * 150u + px[2] * 29u) >> 8 : px[0];
    const unsigned alpha = (n == 2 || n == 4) ? px[n - 1] : 255u;
    // Transparent pixels go on white paper: gray * a + 255 * (1 - a), rounded.
    image.pixels[i] = static_cast<uint8_t>((gray * alpha + 255u * (255u - alpha) + 127u) / 255u);
  }
  return image;
}

GrayImage load_image(const std::filesystem::path& path, size_t max_pixels) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, kMaxImageFileBytes);
  return decode_image(bytes, path.string(), max_pixels);
}

}  // namespace simdnn
