// Operations on decoded images (<simdnn/image.h>): resizing, and conversion to MNIST-style
// model input (light ink on a dark background) with optional inversion.
#pragma once

#include <cstdint>
#include <vector>

#include "simdnn/image.h"

namespace simdnn {

// Resamples to width x height, each axis independently: area averaging (a box filter with
// fractional pixel coverage) when shrinking, so thin strokes fade instead of vanishing;
// bilinear with pixel-centre alignment when enlarging or keeping the size (the identity is
// exact). Throws std::invalid_argument for a non-positive size or an empty image.
GrayImage resize_gray(const GrayImage& image, int width, int height);

// Whether prepare_for_model inverts the image (255 - v for every pixel).
enum class Invert {
  kNo,    // keep as is: the image is already light ink on a dark background
  kYes,   // 255 - v: dark ink on light paper
  kAuto,  // invert when the mean of the border pixels is above 127 (a light background)
};

// True when kAuto would invert `image`: the mean of its outermost rows and columns is > 127.
bool has_light_background(const GrayImage& image);

// width * height bytes of MNIST-style input (light ink on a dark background): resize_gray to
// the model's size, then invert as asked. No centring or deskewing is done.
std::vector<uint8_t> prepare_for_model(const GrayImage& image, int width, int height,
                                       Invert invert);

}  // namespace simdnn
