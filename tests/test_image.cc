#include <doctest/doctest.h>

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "io_test_support.h"
#include "simdnn/image.h"
#include "simdnn/image_ops.h"
#include "tests/support/image_encode.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_image {

using simdnn::GrayImage;
using simdnn::ImageFormat;
using simdnn::Invert;
using simdnn::test::contains;
using simdnn::test::io_error_message;
using simdnn::test::TempDir;

namespace {

GrayImage gradient(int width, int height) {
  GrayImage img{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height)};
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = static_cast<uint8_t>(i * 13 + 1);
  return img;
}

// A "digit": a vertical bar of `ink` on a `paper` background, 28x28.
GrayImage bar_digit(uint8_t paper, uint8_t ink) {
  GrayImage img{28, 28, std::vector<uint8_t>(28 * 28, paper)};
  for (int y = 6; y < 22; ++y) {
    for (int x = 12; x < 16; ++x) img.pixels[y * 28 + x] = ink;
  }
  return img;
}

GrayImage checkerboard(int size, int cell) {
  GrayImage img{size, size, std::vector<uint8_t>(static_cast<size_t>(size) * size)};
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      img.pixels[y * size + x] = ((x / cell + y / cell) % 2) ? 255 : 0;
    }
  }
  return img;
}

double mean(const std::vector<uint8_t>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

std::vector<uint8_t> png_of(const GrayImage& img) {
  return simdnn::encode_image(img.pixels, img.width, img.height, 1, ImageFormat::kPng);
}

}  // namespace

TEST_CASE("image: gray PNG and BMP decode exactly") {
  const GrayImage img = gradient(7, 5);
  for (ImageFormat format : {ImageFormat::kPng, ImageFormat::kBmp}) {
    const auto bytes = simdnn::encode_image(img.pixels, 7, 5, 1, format);
    const GrayImage decoded = simdnn::decode_image(bytes, "gradient");
    CHECK(decoded.width == 7);
    CHECK(decoded.height == 5);
    CHECK(decoded.pixels == img.pixels);
  }
}

TEST_CASE("image: colour is converted to luma") {
  // red, green, blue, white, black, mid gray
  const std::vector<uint8_t> rgb = {255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 128, 128, 128};
  const GrayImage img =
      simdnn::decode_image(simdnn::encode_image(rgb, 6, 1, 3, ImageFormat::kPng), "rgb");
  REQUIRE(img.pixels.size() == 6);
  // stb's luma weights are (77, 150, 29) / 256, close to Rec. 601's 0.299, 0.587, 0.114.
  CHECK(std::abs(img.pixels[0] - 76) <= 1);
  CHECK(std::abs(img.pixels[1] - 149) <= 1);
  CHECK(std::abs(img.pixels[2] - 28) <= 1);
  CHECK(img.pixels[3] == 255);
  CHECK(img.pixels[4] == 0);
  CHECK(std::abs(img.pixels[5] - 128) <= 1);
}

TEST_CASE("image: a transparent background becomes white paper, not black") {
  // RGBA: a fully transparent black background, one opaque black pixel, one half-transparent.
  std::vector<uint8_t> rgba(4 * 4 * 4, 0);
  auto set = [&](int x, int y, uint8_t alpha) { rgba[(y * 4 + x) * 4 + 3] = alpha; };
  set(1, 1, 255);
  set(2, 2, 128);
  const GrayImage img =
      simdnn::decode_image(simdnn::encode_image(rgba, 4, 4, 4, ImageFormat::kPng), "rgba");
  CHECK(img.at(0, 0) == 255);
  CHECK(img.at(3, 3) == 255);
  CHECK(img.at(1, 1) == 0);
  CHECK(img.at(2, 2) == 127);  // black at 50% over white
  // ...and so a transparent-background digit is recognised as dark ink on light paper.
  CHECK(simdnn::has_light_background(img));
}

TEST_CASE("image: JPEG decodes close to the original") {
  const GrayImage flat{16, 16, std::vector<uint8_t>(256, 200)};
  const auto jpeg = simdnn::encode_image(flat.pixels, 16, 16, 1, ImageFormat::kJpeg, 95);
  REQUIRE(jpeg.size() > 2);
  CHECK(jpeg[0] == 0xFF);
  CHECK(jpeg[1] == 0xD8);  // JPEG start-of-image marker
  const GrayImage img = simdnn::decode_image(jpeg, "flat.jpg");
  CHECK(img.width == 16);
  for (uint8_t v : img.pixels) CHECK(std::abs(v - 200) <= 3);
}

TEST_CASE("image: resize is exact for the identity and averages areas when shrinking") {
  const GrayImage img = gradient(28, 28);
  CHECK(simdnn::resize_gray(img, 28, 28).pixels == img.pixels);

  // 1-pixel checkerboard halved: every 2x2 block holds two 0s and two 255s.
  const GrayImage fine = simdnn::resize_gray(checkerboard(56, 1), 28, 28);
  CHECK(fine.width == 28);
  for (uint8_t v : fine.pixels) CHECK(v == 128);  // 127.5 rounded half up
  // 2-pixel cells halved: a 1-pixel checkerboard of pure 0 and 255.
  CHECK(simdnn::resize_gray(checkerboard(56, 2), 28, 28).pixels == checkerboard(28, 1).pixels);
  // Non-integer factor: the mean brightness is preserved.
  const GrayImage odd = simdnn::resize_gray(checkerboard(56, 4), 20, 20);
  CHECK(mean(odd.pixels) == doctest::Approx(127.5).epsilon(0.02));

  // Upscaling is bilinear between pixel centres: [0, 255] -> [0, 64, 191, 255].
  const GrayImage two{2, 1, {0, 255}};
  CHECK(simdnn::resize_gray(two, 4, 1).pixels == std::vector<uint8_t>{0, 64, 191, 255});
  // Mixed: shrink one axis, grow the other.
  const GrayImage mixed = simdnn::resize_gray(checkerboard(56, 1), 14, 112);
  CHECK(mixed.width == 14);
  CHECK(mixed.height == 112);
  CHECK(mean(mixed.pixels) == doctest::Approx(127.5).epsilon(0.02));

  CHECK_THROWS_AS(simdnn::resize_gray(img, 0, 28), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::resize_gray(GrayImage{}, 28, 28), std::invalid_argument);
}

namespace {

// The separable two-pass resize as first written (a float buffer of source rows x target
// columns): the reference the streaming resize_gray must equal bit for bit.
GrayImage resize_two_pass_ref(const GrayImage& image, int width, int height) {
  struct Taps {
    int first = 0;
    std::vector<float> weights;
  };
  const auto axis_taps = [](int src, int dst) {
    std::vector<Taps> taps(dst);
    const double scale = static_cast<double>(src) / dst;
    for (int i = 0; i < dst; ++i) {
      Taps& t = taps[i];
      if (dst < src) {
        const double lo = i * scale, hi = (i + 1) * scale;
        t.first = static_cast<int>(std::floor(lo));
        const int last = std::min(src - 1, static_cast<int>(std::ceil(hi)) - 1);
        for (int s = t.first; s <= last; ++s) {
          const double overlap = std::min<double>(hi, s + 1) - std::max<double>(lo, s);
          t.weights.push_back(static_cast<float>(std::max(0.0, overlap) / scale));
        }
      } else {
        const double x = std::clamp((i + 0.5) * scale - 0.5, 0.0, static_cast<double>(src - 1));
        t.first = static_cast<int>(std::floor(x));
        const float frac = static_cast<float>(x - t.first);
        t.weights.push_back(1.0f - frac);
        if (frac > 0.0f) t.weights.push_back(frac);
      }
    }
    return taps;
  };
  const std::vector<Taps> x_taps = axis_taps(image.width, width);
  const std::vector<Taps> y_taps = axis_taps(image.height, height);
  std::vector<float> rows(static_cast<size_t>(image.height) * width);
  for (int y = 0; y < image.height; ++y) {
    const uint8_t* src = image.pixels.data() + static_cast<size_t>(y) * image.width;
    for (int x = 0; x < width; ++x) {
      float sum = 0.0f;
      for (size_t k = 0; k < x_taps[x].weights.size(); ++k) {
        sum += x_taps[x].weights[k] * src[x_taps[x].first + k];
      }
      rows[static_cast<size_t>(y) * width + x] = sum;
    }
  }
  GrayImage out{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height)};
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      float sum = 0.0f;
      for (size_t k = 0; k < y_taps[y].weights.size(); ++k) {
        sum += y_taps[y].weights[k] * rows[(y_taps[y].first + k) * width + x];
      }
      out.pixels[static_cast<size_t>(y) * width + x] =
          static_cast<uint8_t>(std::clamp(std::lround(sum), 0L, 255L));
    }
  }
  return out;
}

size_t peak_rss_kb_self() {
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<size_t>(usage.ru_maxrss);
}

}  // namespace

TEST_CASE("image: the streaming resize equals the two-pass reference bit for bit") {
  uint64_t state = 12345;
  const auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<uint32_t>(state >> 33);
  };
  for (int trial = 0; trial < 200; ++trial) {
    const int sw = 1 + static_cast<int>(next() % 90), sh = 1 + static_cast<int>(next() % 90);
    const int dw = 1 + static_cast<int>(next() % 60), dh = 1 + static_cast<int>(next() % 60);
    GrayImage img{sw, sh, std::vector<uint8_t>(static_cast<size_t>(sw) * sh)};
    for (uint8_t& v : img.pixels) v = static_cast<uint8_t>(next());
    CAPTURE(sw);
    CAPTURE(sh);
    CAPTURE(dw);
    CAPTURE(dh);
    REQUIRE(simdnn::resize_gray(img, dw, dh).pixels == resize_two_pass_ref(img, dw, dh).pixels);
  }
}

TEST_CASE("image: resizing a 1 x 4M image to 28 x 28 needs no buffer per source row") {
  // The two-pass resize held height x 28 floats: 470 MB here (1.9 GB for 1 x 16M, the
  // attack the HTTP front was sent). Streaming needs the output and a row.
  const int height = 4 << 20;
  GrayImage tall{1, height, std::vector<uint8_t>(static_cast<size_t>(height))};
  for (int y = 0; y < height; ++y) tall.pixels[y] = static_cast<uint8_t>(y < height / 2 ? 0 : 255);
  const size_t before = peak_rss_kb_self();
  const GrayImage small = simdnn::resize_gray(tall, 28, 28);
  const size_t after = peak_rss_kb_self();
  CHECK(small.width == 28);
  CHECK(small.height == 28);
  CHECK(small.pixels.front() == 0);
  CHECK(small.pixels.back() == 255);
  MESSAGE("peak RSS " << before / 1024 << " -> " << after / 1024 << " MB");
  CHECK(after <= before + 32 * 1024);
}

TEST_CASE("image: prepare_for_model gives light ink on a dark background") {
  const GrayImage dark_on_light = bar_digit(250, 10);
  const GrayImage light_on_dark = bar_digit(0, 255);

  const std::vector<uint8_t> auto_inverted = simdnn::prepare_for_model(dark_on_light, 28, 28, Invert::kAuto);
  CHECK(auto_inverted[0] == 5);               // paper 250 -> 5
  CHECK(auto_inverted[10 * 28 + 13] == 245);  // ink 10 -> 245
  CHECK(simdnn::prepare_for_model(light_on_dark, 28, 28, Invert::kAuto) == light_on_dark.pixels);
  CHECK(simdnn::prepare_for_model(dark_on_light, 28, 28, Invert::kNo) == dark_on_light.pixels);
  CHECK(simdnn::prepare_for_model(light_on_dark, 28, 28, Invert::kYes)[0] == 255);

  // A larger photo-like input is resized as well as inverted.
  const GrayImage big = simdnn::resize_gray(dark_on_light, 112, 112);
  const std::vector<uint8_t> prepared = simdnn::prepare_for_model(big, 28, 28, Invert::kAuto);
  REQUIRE(prepared.size() == 28 * 28);
  CHECK(prepared[0] <= 6);
  CHECK(prepared[10 * 28 + 13] >= 240);
}

TEST_CASE("image: undecodable and oversized images are refused with their name") {
  const std::string not_image = io_error_message([] {
    const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
    simdnn::decode_image(text, "notes.txt");
  });
  CHECK(contains(not_image, "notes.txt"));
  CHECK(contains(not_image, "not a supported image"));

  // Noise does not compress, so half a PNG is missing most of its pixel data.
  GrayImage noise{64, 64, std::vector<uint8_t>(64 * 64)};
  uint32_t state = 12345;
  for (uint8_t& v : noise.pixels) v = static_cast<uint8_t>((state = state * 1664525 + 1013904223) >> 24);
  std::vector<uint8_t> png = png_of(noise);
  png.resize(png.size() / 2);
  const std::string truncated = io_error_message([&] { simdnn::decode_image(png, "half.png"); });
  CHECK(contains(truncated, "half.png"));
  CHECK(contains(truncated, "truncated"));

  const std::vector<uint8_t> full = png_of(noise);
  const std::string too_many =
      io_error_message([&] { simdnn::decode_image(full, "noise.png", 64 * 63); });
  CHECK(contains(too_many, "noise.png"));
  CHECK(contains(too_many, "64x64"));
  CHECK(contains(too_many, "at most 4032"));

  // A tiny file whose header declares 30000x30000: refused from the header, before decoding.
  std::vector<uint8_t> liar = full;
  for (int offset : {16, 20}) {  // IHDR width and height, big-endian (stb does not check CRCs)
    liar[offset] = 0;
    liar[offset + 1] = 0;
    liar[offset + 2] = 30000 >> 8;
    liar[offset + 3] = 30000 & 0xFF;
  }
  const std::string declared = io_error_message([&] { simdnn::decode_image(liar, "bomb.png"); });
  CHECK(contains(declared, "bomb.png"));
  CHECK(contains(declared, "30000x30000"));
}

TEST_CASE("image: load_image reads files and names missing ones") {
  TempDir dir("image-load");
  const GrayImage img = gradient(9, 4);
  simdnn::test::write_raw(dir / "g.png", png_of(img));
  const GrayImage loaded = simdnn::load_image(dir / "g.png");
  CHECK(loaded.pixels == img.pixels);

  const std::string missing = io_error_message([&] { simdnn::load_image(dir / "absent.png"); });
  CHECK(contains(missing, "absent.png"));
  simdnn::test::write_raw(dir / "junk.png", {1, 2, 3});
  const std::string junk = io_error_message([&] { simdnn::load_image(dir / "junk.png"); });
  CHECK(contains(junk, (dir / "junk.png").string()));

  CHECK_THROWS_AS(simdnn::encode_image(img.pixels, 9, 5, 1, ImageFormat::kPng), std::invalid_argument);
}

TEST_CASE("image: binary PNM is checked for truncation; 16-bit PNM decodes safely") {
  auto bytes_of = [](const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); };
  // A 22-byte 16-bit PGM declaring 2048x2048: stb 2.27 alone reads past its buffer here.
  std::string msg = simdnn::test::io_error_message([&] {
    simdnn::decode_image(bytes_of(std::string("P5\n2048 2048\n65535\n\x01\x02", 22)), "evil.pgm");
  });
  CHECK(msg.find("evil.pgm") != std::string::npos);
  CHECK(msg.find("truncated") != std::string::npos);
  msg = simdnn::test::io_error_message([&] {
    simdnn::decode_image(bytes_of(std::string("P6\n# comment\n2 2\n255\nabcdefghij")), "short.ppm");
  });
  CHECK(msg.find("short.ppm") != std::string::npos);
  // A complete 2x1 16-bit PGM, big-endian samples scaled by maxval: 0x1234 = 4660 -> 18,
  // 0xFF00 = 65280 -> 254 (round(65280 * 255 / 65535)).
  std::string full("P5 2 1 65535\n\x12\x34\xFF\x00", 17);
  simdnn::GrayImage img = simdnn::decode_image(bytes_of(full), "ok16.pgm");
  REQUIRE(img.width == 2);
  CHECK(img.pixels[0] == 18);
  CHECK(img.pixels[1] == 254);
  // maxval 15: 15 -> 255, 5 -> 85.
  img = simdnn::decode_image(bytes_of(std::string("P5 2 1 15\n\x0F\x05", 12)), "ok4.pgm");
  CHECK(img.pixels[0] == 255);
  CHECK(img.pixels[1] == 85);
}

TEST_CASE("image: a PNG chunk longer than the file is refused before stb allocates for it") {
  std::vector<uint8_t> gray(16 * 16, 100);
  std::vector<uint8_t> png = simdnn::encode_image(gray, 16, 16, 1, simdnn::ImageFormat::kPng);
  // The first chunk after the signature is IHDR (13 bytes); the next one's length is at 33.
  REQUIRE(png.size() > 41);
  png[33] = 0x7F;
  png[34] = png[35] = png[36] = 0xFF;  // declares 2 GiB
  std::string msg = simdnn::test::io_error_message(
      [&] { simdnn::decode_image(png, "huge-chunk.png"); });
  CHECK(msg.find("huge-chunk.png") != std::string::npos);
  CHECK(msg.find("PNG chunk") != std::string::npos);
}

}  // namespace test_image
