// JPEG decoding with libjpeg-turbo, for decode_image (io/image_decode.cc). Internal to the io
// module: not installed, not part of the API.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "simdnn/image.h"

namespace simdnn::io_detail {

// True for every input stb_image would take for a JPEG (not only one that starts FF D8 FF):
// decode_image sends those to decode_jpeg so that none reaches stb_image 2.27's Huffman
// decoder. jpeg_decode.cc says why.
bool is_jpeg(std::span<const uint8_t> bytes);

// Decodes a JPEG to gray (the Y channel of YCbCr; CMYK and YCCK converted as stb_image did)
// with libjpeg-turbo. Throws DataError starting "cannot decode image <name>: " for data that is
// not a decodable JPEG, corrupt or truncated, an unsupported colour space, more than max_pixels
// pixels, too many progressive scans, or (IoError) no memory for the pixels. `name` is the image's
// name as it appears in messages (already quoted).
GrayImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& name, size_t max_pixels);

}  // namespace simdnn::io_detail
