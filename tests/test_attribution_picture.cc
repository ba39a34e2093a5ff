// Explanation pictures (<simdnn/attribution_picture.h>, <simdnn/png_encode.h>): the diverging
// colour map, the three-panel layout, and PNGs that decode back.
#include <doctest/doctest.h>

#include <array>
#include <cstdint>
#include <vector>

#include "simdnn/attribution_picture.h"
#include "simdnn/image.h"
#include "simdnn/png_encode.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_attribution_picture {

using Rgb = std::array<uint8_t, 3>;

TEST_CASE("attribution picture: the diverging colour map is symmetric about white") {
  CHECK(simdnn::diverging_colour(0.0f, 2.0f) == Rgb{255, 255, 255});
  CHECK(simdnn::diverging_colour(2.0f, 2.0f) == Rgb{255, 0, 0});
  CHECK(simdnn::diverging_colour(-2.0f, 2.0f) == Rgb{0, 0, 255});
  CHECK(simdnn::diverging_colour(9.0f, 2.0f) == Rgb{255, 0, 0});  // clamped
  CHECK(simdnn::diverging_colour(1.0f, 2.0f) == Rgb{255, 128, 128});
  CHECK(simdnn::diverging_colour(-1.0f, 2.0f) == Rgb{128, 128, 255});
  CHECK(simdnn::diverging_colour(1.0f, 0.0f) == Rgb{255, 255, 255});  // no scale: all white
  const std::vector<float> v = {0.5f, -3.0f, 1.0f};
  CHECK(simdnn::symmetric_scale(v) == 3.0f);
}

TEST_CASE("attribution picture: three zoomed panels, and PNG bytes that decode back") {
  const size_t w = 3, h = 2, zoom = 4;
  const std::vector<uint8_t> input = {0, 100, 200, 255, 50, 0};
  const std::vector<float> values = {0.0f, 1.0f, -1.0f, 0.5f, 0.0f, 0.0f};
  const simdnn::RgbImage picture = simdnn::explanation_picture(input, values, w, h, zoom);
  CHECK(picture.width == 3 * w * zoom + 4 * zoom);
  CHECK(picture.height == h * zoom + 2 * zoom);
  // Pixel (1, 0) in each panel: input gray 100; heatmap full red; overlay full red.
  const size_t top = zoom, x1 = zoom + 1 * zoom;
  CHECK(Rgb{picture.at(x1, top)[0], picture.at(x1, top)[1], picture.at(x1, top)[2]} ==
        Rgb{100, 100, 100});
  const size_t heat = 2 * zoom + w * zoom + 1 * zoom;
  CHECK(Rgb{picture.at(heat, top)[0], picture.at(heat, top)[1], picture.at(heat, top)[2]} ==
        Rgb{255, 0, 0});
  const size_t heat_blue = 2 * zoom + w * zoom + 2 * zoom;
  CHECK(picture.at(heat_blue, top)[2] == 255);
  CHECK(picture.at(heat_blue, top)[0] == 0);
  const size_t over = 3 * zoom + 2 * w * zoom + 1 * zoom;
  CHECK(Rgb{picture.at(over, top)[0], picture.at(over, top)[1], picture.at(over, top)[2]} ==
        Rgb{255, 0, 0});

  const std::vector<uint8_t> png = simdnn::encode_png(picture);
  REQUIRE(png.size() > 8);
  CHECK(png[1] == 'P');
  const simdnn::GrayImage back = simdnn::decode_image(png, "explanation.png");
  CHECK(back.width == static_cast<int>(picture.width));
  CHECK(back.height == static_cast<int>(picture.height));

  const simdnn::RgbImage heatmap = simdnn::attribution_heatmap(values, w, h, 2);
  CHECK(heatmap.width == 6);
  CHECK(heatmap.height == 4);

  CHECK_THROWS_AS(simdnn::explanation_picture(input, std::vector<float>(5), w, h, zoom),
                  std::invalid_argument);
  CHECK_THROWS_AS(simdnn::attribution_heatmap(values, w, h, 0), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::encode_png(simdnn::RgbImage{}), std::invalid_argument);
}

}  // namespace test_attribution_picture
