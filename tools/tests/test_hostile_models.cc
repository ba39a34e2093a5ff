// Issue 11: predict and serve refuse hostile or broken model files (NaN/Inf weights, metadata
// claiming a huge input without tensors, a non-softmax output layer, an absurd pixel_scale,
// weights that overflow) with exit code 1 and a message naming the file and the problem.
#include <doctest/doctest.h>

#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "simdnn/model_file.h"
#include "simdnn/safetensors.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_hostile_models {

namespace {

using simdnn::SafetensorsFile;
using simdnn::test::contains;
using simdnn::test::run_tool;
using simdnn::test::TempDir;

struct Attack {
  const char* name;
  std::function<void(SafetensorsFile&)> spoil;
  const char* expected;  // in the error message
};

std::vector<Attack> attacks() {
  return {
      {"nan-weight",
       [](SafetensorsFile& f) { f.tensors[0].second.data()[5] = std::numeric_limits<float>::quiet_NaN(); },
       "non-finite"},
      {"inf-bias",
       [](SafetensorsFile& f) { f.tensors[1].second.data()[0] = std::numeric_limits<float>::infinity(); },
       "non-finite"},
      {"huge-input-no-tensors",
       [](SafetensorsFile& f) {
         f.tensors.clear();
         f.metadata["input_height"] = "4096";
         f.metadata["input_width"] = "4096";
       },
       "missing tensor"},
      {"relu-output",
       [](SafetensorsFile& f) {
         f.metadata["layers"] = R"([{"units":32,"activation":"relu"},{"units":10,"activation":"relu"}])";
       },
       "expected \"softmax\""},
      {"tiny-pixel-scale", [](SafetensorsFile& f) { f.metadata["pixel_scale"] = "1e-30"; },
       "pixel_scale"},
      {"overflowing-weights",
       [](SafetensorsFile& f) {
         for (auto& [name, t] : f.tensors) {
           for (size_t i = 0; i < t.size(); ++i) t.data()[i] = 1e30f;
         }
       },
       "self-test"},
  };
}

}  // namespace

TEST_CASE("hostile models: predict and serve refuse each one, exit 2 (bad data), naming file and problem") {
  TempDir dir("hostile-models");
  const auto image = dir / "img.png";
  simdnn::test::write_raw(image, simdnn::test::encode_gray(simdnn::test::make_stroke_image(1),
                                                           simdnn::ImageFormat::kPng));
  for (const Attack& attack : attacks()) {
    CAPTURE(attack.name);
    SafetensorsFile f = simdnn::model_to_safetensors(simdnn::test::make_test_model());
    attack.spoil(f);
    const auto path = dir / (std::string(attack.name) + ".safetensors");
    simdnn::save_safetensors(path, f);

    const auto p = run_tool(SIMDNN_PREDICT_BIN, {"--model", path.string(), image.string()}, dir.path());
    CHECK(p.exit_code == 2);
    CHECK(p.out.empty());
    CHECK(contains(p.err, path.string()));
    CHECK(contains(p.err, attack.expected));

    const auto s = run_tool(SIMDNN_SERVE_BIN, {"--model", path.string(), "--port", "0"}, dir.path());
    CHECK(s.exit_code == 2);
    CHECK(contains(s.err, path.string()));
    CHECK(contains(s.err, attack.expected));
  }
}

}  // namespace test_hostile_models
