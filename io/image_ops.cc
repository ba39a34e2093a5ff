#include "simdnn/image_ops.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace simdnn {

namespace {

// One output pixel's source pixels along an axis and their weights (summing to 1).
struct Taps {
  int first = 0;
  std::vector<float> weights;
};

// Per output index along one axis: area coverage when shrinking, bilinear otherwise.
std::vector<Taps> axis_taps(int src, int dst) {
  std::vector<Taps> taps(dst);
  const double scale = static_cast<double>(src) / dst;
  for (int i = 0; i < dst; ++i) {
    Taps& t = taps[i];
    if (dst < src) {
      // Output pixel i covers [i*scale, (i+1)*scale) of the source; weight = overlap / scale.
      const double lo = i * scale, hi = (i + 1) * scale;
      t.first = static_cast<int>(std::floor(lo));
      const int last = std::min(src - 1, static_cast<int>(std::ceil(hi)) - 1);
      for (int s = t.first; s <= last; ++s) {
        const double overlap = std::min<double>(hi, s + 1) - std::max<double>(lo, s);
        t.weights.push_back(static_cast<float>(std::max(0.0, overlap) / scale));
      }
    } else {
      // Pixel centres aligned: output centre i + 0.5 maps to source (i + 0.5) * scale.
      const double x = std::clamp((i + 0.5) * scale - 0.5, 0.0, static_cast<double>(src - 1));
      t.first = static_cast<int>(std::floor(x));
      const float frac = static_cast<float>(x - t.first);
      t.weights.push_back(1.0f - frac);
      if (frac > 0.0f) t.weights.push_back(frac);
    }
  }
  return taps;
}

// Calls fn(source index, weight) for the source pixels of output index i along an axis, in
// ascending order, with the same weights as axis_taps (computed on the fly: for a 1 x 16M
// image resized to 28 rows a table of vertical taps would hold 16M floats).
template <class Fn>
void for_each_tap(int src, int dst, int i, Fn&& fn) {
  const double scale = static_cast<double>(src) / dst;
  if (dst < src) {
    const double lo = i * scale, hi = (i + 1) * scale;
    const int first = static_cast<int>(std::floor(lo));
    const int last = std::min(src - 1, static_cast<int>(std::ceil(hi)) - 1);
    for (int s = first; s <= last; ++s) {
      const double overlap = std::min<double>(hi, s + 1) - std::max<double>(lo, s);
      fn(s, static_cast<float>(std::max(0.0, overlap) / scale));
    }
  } else {
    const double x = std::clamp((i + 0.5) * scale - 0.5, 0.0, static_cast<double>(src - 1));
    const int first = static_cast<int>(std::floor(x));
    const float frac = static_cast<float>(x - first);
    fn(first, 1.0f - frac);
    if (frac > 0.0f) fn(first + 1, frac);
  }
}

}  // namespace

GrayImage resize_gray(const GrayImage& image, int width, int height) {
  if (width <= 0 || height <= 0) {
    throw std::invalid_argument("resize_gray: target size " + std::to_string(width) + "x" +
                                std::to_string(height) + " is not positive");
  }
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height) {
    throw std::invalid_argument("resize_gray: source image " + std::to_string(image.width) + "x" +
                                std::to_string(image.height) + " with " +
                                std::to_string(image.pixels.size()) + " pixels is inconsistent");
  }
  // Memory: the output, one horizontally resampled row and its accumulator, and the horizontal
  // taps (O(source width + width)); never a buffer per source row. Each output row sums its
  // source rows' horizontal passes in ascending order, so the arithmetic (and every result)
  // is that of a separable two-pass resize. A source row shared by two output rows is
  // resampled twice: at most twice the work when shrinking, cheap rows when enlarging.
  const std::vector<Taps> x_taps = axis_taps(image.width, width);
  std::vector<float> row(static_cast<size_t>(width));
  std::vector<float> acc(static_cast<size_t>(width));
  GrayImage out{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height)};
  for (int y = 0; y < height; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for_each_tap(image.height, height, y, [&](int s, float wy) {
      const uint8_t* src = image.pixels.data() + static_cast<size_t>(s) * image.width;
      for (int x = 0; x < width; ++x) {
        const Taps& t = x_taps[x];
        float sum = 0.0f;
        for (size_t k = 0; k < t.weights.size(); ++k) sum += t.weights[k] * src[t.first + k];
        row[x] = sum;
      }
      for (int x = 0; x < width; ++x) acc[x] += wy * row[x];
    });
    for (int x = 0; x < width; ++x) {
      out.pixels[static_cast<size_t>(y) * width + x] =
          static_cast<uint8_t>(std::clamp(std::lround(acc[x]), 0L, 255L));
    }
  }
  return out;
}

bool has_light_background(const GrayImage& image) {
  if (image.width <= 0 || image.height <= 0) return false;
  uint64_t sum = 0, n = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      if (y == 0 || y == image.height - 1 || x == 0 || x == image.width - 1) {
        sum += image.at(x, y);
        ++n;
      }
    }
  }
  return sum > 127 * n;
}

std::vector<uint8_t> prepare_for_model(const GrayImage& image, int width, int height,
                                       Invert invert) {
  // Decided on the source image: its border has the most pixels to judge the paper by.
  const bool do_invert =
      invert == Invert::kYes || (invert == Invert::kAuto && has_light_background(image));
  GrayImage resized = resize_gray(image, width, height);
  if (do_invert) {
    for (uint8_t& v : resized.pixels) v = static_cast<uint8_t>(255 - v);
  }
  return std::move(resized.pixels);
}

}  // namespace simdnn
