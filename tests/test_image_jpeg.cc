// JPEG decoding (libjpeg-turbo, io/jpeg_decode.cc): test images are written with libjpeg's own
// compressor, so that gray, RGB, CMYK, YCCK and progressive files can all be made here.
#include <doctest/doctest.h>
#include <unistd.h>

// jpeglib.h needs FILE and size_t declared before it.
#include <cstdio>
#include <jpeglib.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "io_test_support.h"
#include "jpeg_writer.h"
#include "simdnn/image.h"
#include "tests/support/image_encode.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_image_jpeg {

using simdnn::GrayImage;
using simdnn::ImageFormat;
using simdnn::test::contains;
using simdnn::test::io_error_message;
using simdnn::test::TempDir;

namespace {

using JpegSpec = simdnn::test::JpegWriteSpec;
using simdnn::test::write_jpeg;

// A smooth 28x28-style gradient (JPEG keeps those within a few levels at quality 95).
std::vector<uint8_t> gray_gradient(int width, int height) {
  std::vector<uint8_t> px(static_cast<size_t>(width) * height);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      px[static_cast<size_t>(y) * width + x] = static_cast<uint8_t>(20 + (x * 150) / width + (y * 80) / height);
    }
  }
  return px;
}

// RGB with smooth colour gradients in every channel.
std::vector<uint8_t> rgb_gradient(int width, int height) {
  std::vector<uint8_t> px(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &px[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>(30 + x * 200 / width);
      p[1] = static_cast<uint8_t>(220 - y * 180 / height);
      p[2] = static_cast<uint8_t>(60 + (x + y) * 100 / (width + height));
    }
  }
  return px;
}

// The luma weights decode_image uses for every colour format.
uint8_t luma(unsigned r, unsigned g, unsigned b) { return static_cast<uint8_t>((r * 77 + g * 150 + b * 29) >> 8); }

int max_abs_diff(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  REQUIRE(a.size() == b.size());
  int worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(int{a[i]} - int{b[i]}));
  return worst;
}

// Offset of the first marker `code` (FF code) in a JPEG's header, or npos.
size_t find_marker(const std::vector<uint8_t>& jpeg, uint8_t code) {
  for (size_t i = 2; i + 1 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xFF && jpeg[i + 1] == code) return i;
  }
  return std::string::npos;
}

// Runs f() with file descriptor 2 sent to a scratch file; returns what was written there.
template <class F>
std::string captured_stderr(const TempDir& dir, F&& f) {
  const auto path = dir / "stderr.txt";
  std::fflush(stderr);
  const int saved = ::dup(2);
  REQUIRE(saved >= 0);
  FILE* sink = std::fopen(path.c_str(), "w");
  REQUIRE(sink != nullptr);
  ::dup2(::fileno(sink), 2);
  f();
  std::fflush(stderr);
  ::dup2(saved, 2);
  ::close(saved);
  std::fclose(sink);
  const auto bytes = simdnn::test::read_raw(path);
  return std::string(bytes.begin(), bytes.end());
}

}  // namespace

TEST_CASE("jpeg: a gray 28x28 gradient at quality 95 decodes within a few levels") {
  const std::vector<uint8_t> px = gray_gradient(28, 28);
  const std::vector<uint8_t> jpeg = write_jpeg(px, JpegSpec{});
  const GrayImage img = simdnn::decode_image(jpeg, "gradient.jpg");
  CHECK(img.width == 28);
  CHECK(img.height == 28);
  CHECK(max_abs_diff(img.pixels, px) <= 3);

  // Progressive, same quantisation: the same coefficients, so the same pixels.
  JpegSpec progressive;
  progressive.progressive = true;
  const std::vector<uint8_t> pjpeg = write_jpeg(px, progressive);
  REQUIRE(find_marker(pjpeg, 0xC2) != std::string::npos);  // SOF2: progressive
  CHECK(simdnn::decode_image(pjpeg, "progressive.jpg").pixels == img.pixels);

  // stb_image_write's baseline JPEG (encode_image) decodes too.
  const GrayImage stb = simdnn::decode_image(
      simdnn::encode_image(px, 28, 28, 1, ImageFormat::kJpeg, 95), "stb-written.jpg");
  CHECK(max_abs_diff(stb.pixels, px) <= 4);
}

TEST_CASE("jpeg: RGB and YCbCr files give the luma of the source, as PNG of the same picture") {
  const int w = 32, h = 24;
  const std::vector<uint8_t> rgb = rgb_gradient(w, h);
  std::vector<uint8_t> expected(static_cast<size_t>(w) * h);
  for (size_t i = 0; i < expected.size(); ++i) expected[i] = luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
  const GrayImage png = simdnn::decode_image(simdnn::encode_image(rgb, w, h, 3, ImageFormat::kPng), "rgb.png");
  REQUIRE(png.pixels == expected);

  for (J_COLOR_SPACE stored : {JCS_YCbCr, JCS_RGB}) {
    CAPTURE(stored);
    const JpegSpec spec{.width = w, .height = h, .input = JCS_RGB, .stored = stored};
    const GrayImage img = simdnn::decode_image(write_jpeg(rgb, spec), "colour.jpg");
    REQUIRE(img.width == w);
    REQUIRE(img.height == h);
    CHECK(max_abs_diff(img.pixels, expected) <= 4);
  }
  // stb_image_write writes YCbCr with 4:2:0 chroma; luma is stored at full resolution.
  const GrayImage stb = simdnn::decode_image(simdnn::encode_image(rgb, w, h, 3, ImageFormat::kJpeg, 95),
                                             "stb-colour.jpg");
  CHECK(max_abs_diff(stb.pixels, expected) <= 4);
}

TEST_CASE("jpeg: CMYK and YCCK (Adobe, inverted) files are converted as stb_image did") {
  const int w = 16, h = 16;
  const std::vector<uint8_t> rgb = rgb_gradient(w, h);
  // Adobe's inverted CMYK (255 = no ink) for these colours: C = R, M = G, Y = B, and K = 255
  // (no black) in the top half, K = 200 in the bottom half (then R = C * K / 255).
  std::vector<uint8_t> cmyk(static_cast<size_t>(w) * h * 4);
  std::vector<uint8_t> expected(static_cast<size_t>(w) * h);
  for (size_t i = 0; i < expected.size(); ++i) {
    const unsigned k = i >= expected.size() / 2 ? 200 : 255;
    for (int c = 0; c < 3; ++c) cmyk[4 * i + c] = rgb[3 * i + c];
    cmyk[4 * i + 3] = static_cast<uint8_t>(k);
    expected[i] = luma(rgb[3 * i] * k / 255, rgb[3 * i + 1] * k / 255, rgb[3 * i + 2] * k / 255);
  }
  for (J_COLOR_SPACE stored : {JCS_CMYK, JCS_YCCK}) {
    CAPTURE(stored);
    const JpegSpec spec{.width = w, .height = h, .input = JCS_CMYK, .stored = stored};
    const GrayImage img = simdnn::decode_image(write_jpeg(cmyk, spec), "print.jpg");
    REQUIRE(img.pixels.size() == expected.size());
    CHECK(max_abs_diff(img.pixels, expected) <= 4);
  }
}

TEST_CASE("jpeg: truncated files are refused with their name, and libjpeg prints nothing") {
  TempDir dir("jpeg-truncated");
  const std::vector<uint8_t> px = gray_gradient(64, 64);
  JpegSpec spec;
  spec.width = spec.height = 64;
  const std::vector<uint8_t> jpeg = write_jpeg(px, spec);
  const size_t sos = find_marker(jpeg, 0xDA);
  REQUIRE(sos != std::string::npos);
  // In the entropy-coded data, just before EOI, and inside the header.
  for (size_t keep : {(sos + jpeg.size()) / 2, jpeg.size() - 2, sos / 2, size_t{3}}) {
    CAPTURE(keep);
    const std::vector<uint8_t> cut(jpeg.begin(), jpeg.begin() + keep);
    std::string msg;
    const std::string printed = captured_stderr(dir, [&] {
      msg = io_error_message([&] { simdnn::decode_image(cut, "cut.jpg"); });
    });
    CHECK(contains(msg, "'cut.jpg'"));
    CHECK(contains(msg, "libjpeg-turbo"));
    if (keep > sos) {
      CHECK(contains(msg, "truncated"));
      CHECK(contains(msg, "Premature end of JPEG file"));
    }
    CHECK(printed.empty());
  }
  // Through load_image: the path is named.
  simdnn::test::write_raw(dir / "half.jpg", std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + jpeg.size() / 2));
  const std::string msg = io_error_message([&] { simdnn::load_image(dir / "half.jpg"); });
  CHECK(contains(msg, (dir / "half.jpg").string()));
}

TEST_CASE("jpeg: garbage after SOI, and every other start stb would take for JPEG, is refused") {
  std::vector<uint8_t> garbage = {0xFF, 0xD8};
  uint32_t state = 99;
  for (int i = 0; i < 500; ++i) garbage.push_back(static_cast<uint8_t>((state = state * 1664525 + 1013904223) >> 24));
  std::string msg = io_error_message([&] { simdnn::decode_image(garbage, "noise.jpg"); });
  CHECK(contains(msg, "noise.jpg"));
  CHECK(contains(msg, "libjpeg-turbo"));

  // stb_image reads FF, skips FF fill bytes and takes the next byte as the marker: FF FF D8 is
  // an SOI to stb. It must not reach stb's JPEG decoder; libjpeg-turbo refuses it.
  const std::vector<uint8_t> valid = write_jpeg(gray_gradient(28, 28), JpegSpec{});
  std::vector<uint8_t> filled = valid;
  filled.insert(filled.begin(), 0xFF);
  msg = io_error_message([&] { simdnn::decode_image(filled, "filled.jpg"); });
  CHECK(contains(msg, "filled.jpg"));
  CHECK(contains(msg, "Not a JPEG file"));

  CHECK_THROWS_AS(simdnn::decode_image(std::vector<uint8_t>{0xFF, 0xD8}, "soi-only.jpg"), simdnn::IoError);
  CHECK_THROWS_AS(simdnn::decode_image(std::vector<uint8_t>{0xFF, 0xD8, 0xFF, 0xD9}, "soi-eoi.jpg"),
                  simdnn::IoError);
}

TEST_CASE("jpeg: too many pixels are refused from the header, before decoding") {
  const std::vector<uint8_t> jpeg = write_jpeg(gray_gradient(64, 64), JpegSpec{.width = 64, .height = 64});
  std::string msg = io_error_message([&] { simdnn::decode_image(jpeg, "big.jpg", 64 * 63); });
  CHECK(contains(msg, "big.jpg"));
  CHECK(contains(msg, "64x64"));
  CHECK(contains(msg, "at most 4032"));
  CHECK(simdnn::decode_image(jpeg, "big.jpg", 64 * 64).width == 64);

  // A 600-byte file declaring 60000x60000 (3.6 G pixels): the size error, not a decoding one
  // (decoding would first allocate for the whole image, then find the data missing).
  std::vector<uint8_t> liar = jpeg;
  const size_t sof = find_marker(liar, 0xC0);
  REQUIRE(sof != std::string::npos);
  for (size_t at : {sof + 5, sof + 7}) {  // FF C0, length (2), precision (1), height, width
    liar[at] = 60000 >> 8;
    liar[at + 1] = 60000 & 0xFF;
  }
  msg = io_error_message([&] { simdnn::decode_image(liar, "bomb.jpg"); });
  CHECK(contains(msg, "bomb.jpg"));
  CHECK(contains(msg, "60000x60000"));
}

TEST_CASE("jpeg: corrupt Huffman tables and entropy data decode or throw IoError, never crash") {
  JpegSpec spec;
  spec.width = spec.height = 32;
  spec.quality = 75;
  const std::vector<uint8_t> px = gray_gradient(32, 32);
  const std::vector<uint8_t> baseline = write_jpeg(px, spec);
  spec.progressive = true;
  const std::vector<uint8_t> progressive = write_jpeg(px, spec);

  for (const std::vector<uint8_t>* jpeg : {&baseline, &progressive}) {
    const size_t dht = find_marker(*jpeg, 0xC4);
    REQUIRE(dht != std::string::npos);
    // Every byte from the first Huffman table to the end, each changed three ways.
    size_t decoded = 0, refused = 0;
    for (size_t at = dht; at < jpeg->size(); ++at) {
      for (uint8_t x : {0x01, 0x80, 0xFF}) {
        std::vector<uint8_t> bad = *jpeg;
        bad[at] ^= x;
        try {
          const GrayImage img = simdnn::decode_image(bad, "flipped.jpg");
          CHECK(img.pixels.size() == static_cast<size_t>(img.width) * img.height);
          ++decoded;
        } catch (const simdnn::IoError& e) {
          CHECK(contains(e.what(), "flipped.jpg"));
          ++refused;
        }
      }
    }
    MESSAGE("decoded " << decoded << ", refused " << refused);
    CHECK(refused > 0);
  }

  // The case that overran stb 2.27's tables: a DHT whose 16 code counts sum above 256.
  std::vector<uint8_t> bad = baseline;
  const size_t dht = find_marker(bad, 0xC4);
  for (size_t i = 0; i < 16; ++i) bad[dht + 5 + i] = 0x20;  // FF C4, length (2), class/id (1)
  const std::string msg = io_error_message([&] { simdnn::decode_image(bad, "dht.jpg"); });
  CHECK(contains(msg, "dht.jpg"));
}

TEST_CASE("jpeg: a progressive file with more than 100 scans is refused") {
  // One DC scan, then each AC coefficient on its own: 64 scans, accepted.
  std::vector<jpeg_scan_info> scans;
  scans.push_back({1, {0, 0, 0, 0}, 0, 0, 0, 0});
  for (int k = 1; k < 64; ++k) scans.push_back({1, {0, 0, 0, 0}, k, k, 0, 0});
  JpegSpec spec;
  spec.scans = scans;
  const std::vector<uint8_t> px = gray_gradient(28, 28);
  const GrayImage ok = simdnn::decode_image(write_jpeg(px, spec), "64-scans.jpg");
  CHECK(max_abs_diff(ok.pixels, px) <= 3);

  // The same with successive approximation (Al 1, then a refinement scan): 127 scans.
  scans.clear();
  scans.push_back({1, {0, 0, 0, 0}, 0, 0, 0, 0});
  for (int k = 1; k < 64; ++k) scans.push_back({1, {0, 0, 0, 0}, k, k, 0, 1});
  for (int k = 1; k < 64; ++k) scans.push_back({1, {0, 0, 0, 0}, k, k, 1, 0});
  spec.scans = scans;
  const std::string msg = io_error_message([&] { simdnn::decode_image(write_jpeg(px, spec), "many-scans.jpg"); });
  CHECK(contains(msg, "many-scans.jpg"));
  CHECK(contains(msg, "more than 100 scans"));
}

}  // namespace test_image_jpeg
