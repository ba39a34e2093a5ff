#include "simdnn/attribution_picture.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace simdnn {
namespace {

void check_sizes(size_t count, size_t width, size_t height, size_t zoom, const char* what) {
  if (width == 0 || height == 0 || zoom == 0 || zoom > 1024 || width * height != count) {
    throw std::invalid_argument(std::string(what) + ": " + std::to_string(count) +
                                " values for a " + std::to_string(width) + "x" +
                                std::to_string(height) + " map at zoom " + std::to_string(zoom));
  }
}

uint8_t blend(uint8_t from, uint8_t to, float t) {
  return static_cast<uint8_t>(std::lround(from + (static_cast<float>(to) - from) * t));
}

void fill_block(RgbImage& image, size_t x0, size_t y0, size_t zoom,
                const std::array<uint8_t, 3>& c) {
  for (size_t y = y0; y < y0 + zoom; ++y) {
    for (size_t x = x0; x < x0 + zoom; ++x) std::copy(c.begin(), c.end(), image.at(x, y));
  }
}

}  // namespace

float symmetric_scale(std::span<const float> values) {
  float scale = 0.0f;
  for (float v : values) {
    if (std::isfinite(v)) scale = std::max(scale, std::abs(v));
  }
  return scale;
}

std::array<uint8_t, 3> diverging_colour(float v, float scale) {
  if (!(scale > 0.0f) || !std::isfinite(v)) return {255, 255, 255};
  const float t = std::clamp(v / scale, -1.0f, 1.0f);
  // Toward red, the green and blue channels fade; toward blue, red and green do.
  const uint8_t fade = blend(255, 0, std::abs(t));
  return t >= 0.0f ? std::array<uint8_t, 3>{255, fade, fade}
                   : std::array<uint8_t, 3>{fade, fade, 255};
}

RgbImage attribution_heatmap(std::span<const float> values, size_t width, size_t height,
                             size_t zoom) {
  check_sizes(values.size(), width, height, zoom, "attribution_heatmap");
  const float scale = symmetric_scale(values);
  RgbImage image(width * zoom, height * zoom);
  for (size_t y = 0; y < height; ++y) {
    for (size_t x = 0; x < width; ++x) {
      fill_block(image, x * zoom, y * zoom, zoom, diverging_colour(values[y * width + x], scale));
    }
  }
  return image;
}

RgbImage explanation_picture(std::span<const uint8_t> input, std::span<const float> values,
                             size_t width, size_t height, size_t zoom) {
  check_sizes(values.size(), width, height, zoom, "explanation_picture");
  check_sizes(input.size(), width, height, zoom, "explanation_picture (input)");
  const size_t panel_w = width * zoom, panel_h = height * zoom, gap = zoom;
  RgbImage image(3 * panel_w + 4 * gap, panel_h + 2 * gap);
  const float scale = symmetric_scale(values);
  for (size_t y = 0; y < height; ++y) {
    for (size_t x = 0; x < width; ++x) {
      const size_t i = y * width + x;
      const uint8_t g = input[i];
      const float v = values[i];
      const std::array<uint8_t, 3> heat = diverging_colour(v, scale);
      // The overlay: the input tinted toward the full red or blue by |v| / scale.
      const float t = scale > 0.0f && std::isfinite(v) ? std::min(std::abs(v) / scale, 1.0f) : 0.0f;
      const std::array<uint8_t, 3> tint = v >= 0.0f ? std::array<uint8_t, 3>{255, 0, 0}
                                                    : std::array<uint8_t, 3>{0, 0, 255};
      const std::array<uint8_t, 3> over{blend(g, tint[0], t), blend(g, tint[1], t),
                                        blend(g, tint[2], t)};
      const size_t top = gap + y * zoom;
      fill_block(image, gap + x * zoom, top, zoom, {g, g, g});
      fill_block(image, 2 * gap + panel_w + x * zoom, top, zoom, heat);
      fill_block(image, 3 * gap + 2 * panel_w + x * zoom, top, zoom, over);
    }
  }
  return image;
}

}  // namespace simdnn
