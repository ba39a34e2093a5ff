// Writes JPEG files with libjpeg-turbo's compressor, for the tests and the fuzz seed
// generator: the variants stb_image_write cannot make (progressive or custom scan scripts,
// arithmetic coding, restart markers, optimized tables, RGB / CMYK / YCCK storage).
#pragma once

#include <cstdint>
#include <cstdio>  // jpeglib.h needs FILE
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include <jpeglib.h>

namespace simdnn::test {

struct JpegWriteSpec {
  int width = 28;
  int height = 28;
  J_COLOR_SPACE input = JCS_GRAYSCALE;   // what the pixels are: gray, RGB or CMYK
  J_COLOR_SPACE stored = JCS_GRAYSCALE;  // the file's colour space
  int quality = 95;
  bool progressive = false;              // libjpeg's default progression
  bool arithmetic = false;
  bool optimize = false;                 // optimized Huffman tables
  unsigned restart_interval = 0;         // in MCUs; 0 = no restart markers
  std::vector<jpeg_scan_info> scans;     // an explicit scan script, if any
};

inline int jpeg_components(J_COLOR_SPACE input) {
  return input == JCS_GRAYSCALE ? 1 : input == JCS_CMYK ? 4 : 3;
}

// The file for interleaved pixels (width * height * jpeg_components(spec.input) bytes).
// libjpeg's default error handler exits the process, which fails a test or the generator
// loudly; nothing here is expected to fail.
inline std::vector<uint8_t> write_jpeg(const std::vector<uint8_t>& pixels,
                                       const JpegWriteSpec& spec) {
  const int components = jpeg_components(spec.input);
  const size_t stride = static_cast<size_t>(spec.width) * static_cast<size_t>(components);
  if (pixels.size() != stride * static_cast<size_t>(spec.height)) {
    throw std::invalid_argument("write_jpeg: pixel count does not match the spec");
  }
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr err{};
  cinfo.err = jpeg_std_error(&err);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = static_cast<JDIMENSION>(spec.width);
  cinfo.image_height = static_cast<JDIMENSION>(spec.height);
  cinfo.input_components = components;
  cinfo.in_color_space = spec.input;
  jpeg_set_defaults(&cinfo);
  jpeg_set_colorspace(&cinfo, spec.stored);
  jpeg_set_quality(&cinfo, spec.quality, TRUE);
  if (spec.progressive) jpeg_simple_progression(&cinfo);
  if (!spec.scans.empty()) {
    cinfo.scan_info = spec.scans.data();
    cinfo.num_scans = static_cast<int>(spec.scans.size());
  }
  cinfo.arith_code = spec.arithmetic ? TRUE : FALSE;
  cinfo.optimize_coding = spec.optimize ? TRUE : FALSE;
  cinfo.restart_interval = spec.restart_interval;
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    auto* row = const_cast<JSAMPLE*>(pixels.data() + cinfo.next_scanline * stride);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

}  // namespace simdnn::test
