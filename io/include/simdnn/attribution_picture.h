// Pictures of input attributions (<simdnn/attribution.h>): a diverging heatmap (blue negative,
// white zero, red positive, on a scale symmetric about zero) and the explanation picture that
// predict --explain writes: the input, the heatmap and the two overlaid, side by side.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "simdnn/png_encode.h"

namespace simdnn {

// The largest |value| (the heatmap's symmetric scale); 0 for no values or all zeros.
float symmetric_scale(std::span<const float> values);

// The diverging colour of v / scale, clamped to [-1, 1]: -1 blue (0, 0, 255)... 0 white ...
// +1 red (255, 0, 0), linear in between. scale <= 0 gives white.
std::array<uint8_t, 3> diverging_colour(float v, float scale);

// One width x height map of values, each cell drawn as a zoom x zoom block. Throws
// std::invalid_argument when values.size() != width * height or a size is zero.
RgbImage attribution_heatmap(std::span<const float> values, size_t width, size_t height,
                             size_t zoom);

// Three panels of (width * zoom) x (height * zoom), `zoom` pixels apart on a white ground:
// the input (gray, pixel value = brightness, as the model sees it), the heatmap, and the
// input with the heatmap's colour blended over it in proportion to |value| / scale. Throws as
// attribution_heatmap does, and for input.size() != width * height.
RgbImage explanation_picture(std::span<const uint8_t> input, std::span<const float> values,
                             size_t width, size_t height, size_t zoom);

}  // namespace simdnn
