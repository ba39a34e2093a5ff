// The training set's reference profile and the population stability index
// (<simdnn/reference_profile.h>): PSI against hand-computed values, the profile of a small set,
// and the profile's round trip through the model file.
#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>
#include <vector>

#include "simdnn/io_error.h"
#include "simdnn/model_file.h"
#include "simdnn/reference_profile.h"

namespace simdnn {
namespace test_reference_profile {  // one per file: the test programs are unity builds

TEST_CASE("population_stability_index: hand-computed values") {
  const std::vector<double> half{0.5, 0.5}, skewed{0.9, 0.1};
  // (0.9-0.5) ln(0.9/0.5) + (0.1-0.5) ln(0.1/0.5) = 0.4 ln 1.8 + 0.4 ln 5
  CHECK(population_stability_index(half, skewed) == doctest::Approx(0.8788898309344878));
  CHECK(population_stability_index(half, half) == 0.0);
  // Counts are normalised: 10/30/60 against 20/30/50 is 0.1/0.3/0.6 against 0.2/0.3/0.5,
  // 0.1 ln 2 + 0 - 0.1 ln(0.5/0.6).
  const std::vector<double> ref{10, 30, 60}, live{20, 30, 50};
  CHECK(population_stability_index(ref, live) == doctest::Approx(0.08754687373538998));
  // An empty reference bin counts as epsilon = 1e-4:
  // (0.5-1) ln(0.5/1) + (0.5-1e-4) ln(0.5/1e-4).
  const std::vector<double> one_bin{1, 0}, both{1, 1};
  CHECK(population_stability_index(one_bin, both) == doctest::Approx(4.60431846666895));
  // Symmetric in its arguments (with the same epsilon).
  CHECK(population_stability_index(both, one_bin) == doctest::Approx(4.60431846666895));
  // A larger epsilon makes the empty bin cost less.
  CHECK(population_stability_index(one_bin, both, 1e-2) < 4.0);
}

TEST_CASE("population_stability_index: bad histograms are refused") {
  const std::vector<double> two{1, 1}, three{1, 1, 1}, zeros{0, 0}, negative{1, -1},
      nan{1, std::nan("")};
  CHECK_THROWS_AS(population_stability_index(two, three), std::invalid_argument);
  CHECK_THROWS_AS(population_stability_index({}, {}), std::invalid_argument);
  CHECK_THROWS_AS(population_stability_index(two, zeros), std::invalid_argument);
  CHECK_THROWS_AS(population_stability_index(negative, two), std::invalid_argument);
  CHECK_THROWS_AS(population_stability_index(two, nan), std::invalid_argument);
}

TEST_CASE("intensity bins: 20 fixed bins over [0, 1], clamped") {
  CHECK(intensity_bin(0.0) == 0);
  CHECK(intensity_bin(0.049) == 0);
  CHECK(intensity_bin(0.05) == 1);
  CHECK(intensity_bin(0.999) == 19);
  CHECK(intensity_bin(1.0) == 19);
  CHECK(intensity_bin(7.0) == 19);
  CHECK(intensity_bin(-1.0) == 0);
  CHECK(intensity_bin(std::nan("")) == 0);
  const std::vector<uint8_t> px{0, 255, 255, 0};
  CHECK(mean_intensity(px) == doctest::Approx(0.5));
  // The same image as model features (pixel * scale) has the same intensity.
  const std::vector<float> features{0.0f, 1.0f, 1.0f, 0.0f};
  CHECK(mean_intensity(features, 1.0f / 255.0f) == doctest::Approx(0.5));
  const std::vector<float> raw{0.0f, 255.0f, 255.0f, 0.0f};
  CHECK(mean_intensity(raw, 1.0f) == doctest::Approx(0.5));
}

TEST_CASE("reference_profile: mean_intensity of scaled pixels is exact for any length") {
  // The served path sums features with several partial sums; for pixel / 255 features that
  // sum is exact, so it must equal, bit for bit, one sequential double sum, including the
  // lengths that leave a tail after the partial sums (1, 5, 783) and the 784 of an image.
  for (size_t n : {size_t{1}, size_t{5}, size_t{8}, size_t{17}, size_t{783}, size_t{784}}) {
    std::vector<float> features(n);
    double sequential = 0.0;
    for (size_t i = 0; i < n; ++i) {
      features[i] = static_cast<float>((i * 37 + 11) % 256) * (1.0f / 255.0f);
      sequential += features[i];
    }
    const double expected = sequential / (255.0 * (1.0f / 255.0f) * static_cast<double>(n));
    CHECK(mean_intensity(features, 1.0f / 255.0f) == expected);
  }
}

TEST_CASE("reference_profile: class frequencies and the intensity histogram of a set") {
  // Four 2-pixel samples: intensities 0, 0.5, 1, 1 -> bins 0, 10, 19, 19; labels 0, 1, 1, 2.
  const std::vector<uint8_t> pixels{0, 0, 0, 255, 255, 255, 255, 255};
  const std::vector<uint8_t> labels{0, 1, 1, 2};
  const ReferenceProfile p = reference_profile({pixels, labels, 2}, 4);
  CHECK(p.samples == 4);
  CHECK(p.class_frequencies == std::vector<double>{0.25, 0.5, 0.25, 0.0});
  REQUIRE(p.intensity_histogram.size() == ReferenceProfile::kIntensityBins);
  CHECK(p.intensity_histogram[0] == 0.25);
  CHECK(p.intensity_histogram[10] == 0.25);
  CHECK(p.intensity_histogram[19] == 0.5);
  // A set is stable against itself.
  CHECK(population_stability_index(p.intensity_histogram, p.intensity_histogram) == 0.0);

  const std::vector<uint8_t> bad_labels{0, 1, 1, 4};
  CHECK_THROWS_AS(reference_profile({pixels, bad_labels, 2}, 4), std::invalid_argument);
  CHECK_THROWS_AS(reference_profile({pixels, labels, 3}, 4), std::invalid_argument);
}

TEST_CASE("reference_profile: saved in the model's metadata and validated on load") {
  ModelInfo info;
  info.input_height = 2;
  info.input_width = 1;
  info.class_names = {"a", "b", "c"};
  Rng rng(1);
  Model model = Model::mlp(info, {4}, Activation::kRelu, 3, rng);
  CHECK_FALSE(model_from_safetensors(model_to_safetensors(model), "m").info().reference_profile);

  const std::vector<uint8_t> pixels{0, 0, 255, 255};
  const std::vector<uint8_t> labels{0, 2};
  model.info().reference_profile = reference_profile({pixels, labels, 2}, 3);
  SafetensorsFile file = model_to_safetensors(model);
  const Model loaded = model_from_safetensors(file, "m");
  REQUIRE(loaded.info().reference_profile);
  CHECK(loaded.info().reference_profile->samples == 2);
  CHECK(loaded.info().reference_profile->class_frequencies ==
        model.info().reference_profile->class_frequencies);
  CHECK(loaded.info().reference_profile->intensity_histogram ==
        model.info().reference_profile->intensity_histogram);

  for (const char* bad : {
           "not json",
           R"({"samples":2,"class_frequencies":[0.5,0.5],"intensity_histogram":[1]})",
           R"({"samples":2,"class_frequencies":[0.5,0,0.5],"intensity_histogram":[]})",
           R"({"samples":2,"class_frequencies":[0.5,-1,0.5],"intensity_histogram":[1]})",
           R"({"samples":-2,"class_frequencies":[0.5,0,0.5],"intensity_histogram":[1]})",
           R"([1,2,3])",
       }) {
    file.metadata["reference_profile"] = bad;
    try {
      model_from_safetensors(file, "bad.safetensors");
      FAIL("loaded a model whose reference_profile is " << bad);
    } catch (const IoError& e) {
      CHECK(std::string(e.what()).find("bad.safetensors") != std::string::npos);
      CHECK(std::string(e.what()).find("reference_profile") != std::string::npos);
    }
  }
}

}  // namespace test_reference_profile
}  // namespace simdnn
