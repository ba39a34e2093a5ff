// The model file: round trip with identical predictions, and validation of what is loaded.
#include <doctest/doctest.h>

#include <unistd.h>

#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "io_test_support.h"
#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/safetensors.h"
#include "test_util.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_model {

using simdnn::Tensor;

namespace {

simdnn::Model small_model(uint64_t seed) {
  simdnn::ModelInfo info;
  info.input_height = 4;
  info.input_width = 5;
  info.class_names = {"a", "b", "c"};
  info.version = "test-1";
  simdnn::Rng rng(seed);
  return simdnn::Model::mlp(info, {7, 6}, simdnn::Activation::kRelu, 3, rng);
}

Tensor random_input(size_t rows, size_t cols, uint64_t seed) {
  Tensor x({rows, cols});
  auto v = simdnn::test::random_floats(x.size(), seed, 0.0f, 1.0f);
  std::copy(v.begin(), v.end(), x.data());
  return x;
}

std::string load_error(const simdnn::SafetensorsFile& file) {
  try {
    simdnn::model_from_safetensors(file, "m.safetensors");
  } catch (const simdnn::IoError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("model file: round trip keeps metadata and gives identical predictions") {
  simdnn::test::TempDir dir("model-roundtrip");
  simdnn::Model model = small_model(5);
  simdnn::save_model(dir / "m.safetensors", model);
  simdnn::Model loaded = simdnn::load_model(dir / "m.safetensors");
  CHECK(loaded.info().input_height == 4);
  CHECK(loaded.info().input_width == 5);
  CHECK(loaded.info().class_names == model.info().class_names);
  CHECK(loaded.info().version == "test-1");
  CHECK(loaded.info().pixel_scale == model.info().pixel_scale);
  REQUIRE(loaded.layers().size() == 3);
  CHECK(loaded.layers()[1].units == 6);
  CHECK(loaded.layers()[2].activation == simdnn::Activation::kSoftmax);
  Tensor x = random_input(9, 20, 1);
  simdnn::Workspace workspace;
  const Tensor& a = model.predict(x, workspace, 1);
  const Tensor b = loaded.predict(x, 1);
  REQUIRE(a.shape() == b.shape());
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == b[i]);
  // Inference reuses the workspace's buffers: a second call of the same or a smaller batch
  // allocates nothing.
  const float* buffer = a.data();
  Tensor smaller = random_input(3, 20, 2);
  CHECK(model.predict(x, workspace, 1).data() == buffer);
  CHECK(model.predict(smaller, workspace, 1).data() == buffer);
  model.predict(x, workspace, 1);
  // Probabilities: rows sum to 1.
  for (size_t r = 0; r < a.rows(); ++r) {
    double s = 0;
    for (float p : a.row(r)) s += p;
    CHECK(s == doctest::Approx(1.0).epsilon(1e-5));
  }
}

TEST_CASE("model: one const model serves several threads, each with its own workspace") {
  const simdnn::Model model = small_model(11);
  const Tensor x = random_input(33, 20, 3);
  const Tensor expected = model.predict(x, 1);
  // Four threads share the model and predict at the same time, many times over: every result
  // equals the serial one bit for bit (nothing inside the model is written during inference).
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      simdnn::Workspace workspace;
      for (int round = 0; round < 200; ++round) {
        const Tensor& y = model.predict(x, workspace, 1);
        for (size_t i = 0; i < y.size(); ++i) mismatches[t] += y[i] != expected[i];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int m : mismatches) CHECK(m == 0);
}

TEST_CASE("model: clone() is a deep copy with the same info and predictions") {
  simdnn::Model model = small_model(12);
  simdnn::Model copy = model.clone();
  CHECK(copy.info().class_names == model.info().class_names);
  CHECK(copy.info().version == model.info().version);
  REQUIRE(copy.parameters().size() == model.parameters().size());
  const Tensor x = random_input(5, 20, 4);
  const Tensor a = model.predict(x, 1);
  const Tensor b = copy.predict(x, 1);
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == b[i]);
  // Changing the copy's weights leaves the original alone.
  for (size_t i = 0; i < model.parameters().size(); ++i) {
    CHECK(copy.parameters()[i]->value.data() != model.parameters()[i]->value.data());
    CHECK(copy.parameters()[i]->name == model.parameters()[i]->name);
  }
  copy.parameters()[0]->value.fill(0.0f);
  const Tensor c = model.predict(x, 1);
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == c[i]);
  const Tensor d = copy.predict(x, 1);
  bool differs = false;
  for (size_t i = 0; i < a.size(); ++i) differs = differs || a[i] != d[i];
  CHECK(differs);
}

TEST_CASE("model file: architecture and shapes are validated") {
  simdnn::Model model = small_model(6);
  SUBCASE("wrong shape") {
    auto f = simdnn::model_to_safetensors(model);
    f.tensors[0].second = Tensor({21, 7});
    std::string msg = load_error(f);
    CHECK(msg.find("m.safetensors") != std::string::npos);
    CHECK(msg.find("dense_0.weight") != std::string::npos);
    CHECK(msg.find("[21, 7]") != std::string::npos);
  }
  SUBCASE("missing tensor") {
    auto f = simdnn::model_to_safetensors(model);
    f.tensors.pop_back();
    CHECK(load_error(f).find("missing tensor \"dense_2.bias\"") != std::string::npos);
  }
  SUBCASE("unexpected tensor") {
    auto f = simdnn::model_to_safetensors(model);
    f.tensors.emplace_back("extra", Tensor({2}));
    CHECK(load_error(f).find("unexpected tensor \"extra\"") != std::string::npos);
  }
  SUBCASE("bad metadata") {
    auto f = simdnn::model_to_safetensors(model);
    f.metadata["layers"] = "[{\"units\": 7}]";
    CHECK(load_error(f).find("architecture") != std::string::npos);
    f = simdnn::model_to_safetensors(model);
    f.metadata["input_width"] = "-3";
    CHECK(load_error(f).find("input_width") != std::string::npos);
    f = simdnn::model_to_safetensors(model);
    f.metadata["format"] = "other";
    CHECK(load_error(f).find("format") != std::string::npos);
    f = simdnn::model_to_safetensors(model);
    f.metadata["class_names"] = "[\"only-one\"]";
    CHECK(load_error(f).find("class names") != std::string::npos);
    f = simdnn::model_to_safetensors(model);
    f.metadata["layers"] = "[{\"units\": 7, \"activation\": \"swish\"}]";
    CHECK(load_error(f).find("swish") != std::string::npos);
  }
  SUBCASE("checkpoint state is ignored by the model loader") {
    auto f = simdnn::model_to_safetensors(model);
    f.tensors.emplace_back("training.dense_0.weight.m", Tensor({20, 7}));
    CHECK(load_error(f).empty());
  }
}

// Issue 11: models an attacker (or a diverged training run) could hand to predict and serve.
TEST_CASE("model file: hostile models are refused with a message naming the problem") {
  simdnn::Model model = small_model(6);
  SUBCASE("NaN or Inf weight") {
    for (float v : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
      auto f = simdnn::model_to_safetensors(model);
      f.tensors[2].second.data()[3] = v;
      const std::string msg = load_error(f);
      CHECK(msg.find("m.safetensors") != std::string::npos);
      CHECK(msg.find("non-finite") != std::string::npos);
      CHECK(msg.find(f.tensors[2].first) != std::string::npos);
    }
  }
  SUBCASE("output layer that is not softmax") {
    auto f = simdnn::model_to_safetensors(model);
    f.metadata["layers"] =
        R"([{"units":7,"activation":"relu"},{"units":6,"activation":"relu"},{"units":3,"activation":"relu"}])";
    const std::string msg = load_error(f);
    CHECK(msg.find("\"relu\", expected \"softmax\"") != std::string::npos);
  }
  SUBCASE("absurd pixel_scale") {
    for (const char* s : {"1e-30", "0", "-1", "nan", "inf", "1e6"}) {
      auto f = simdnn::model_to_safetensors(model);
      f.metadata["pixel_scale"] = s;
      CHECK_MESSAGE(load_error(f).find("pixel_scale") != std::string::npos, s);
    }
    auto f = simdnn::model_to_safetensors(model);
    f.metadata["pixel_scale"] = "1";  // raw pixels: sane
    CHECK(load_error(f).empty());
  }
  SUBCASE("finite weights that overflow fail the self-test") {
    auto f = simdnn::model_to_safetensors(model);
    for (auto& [name, t] : f.tensors) {
      for (size_t i = 0; i < t.size(); ++i) t.data()[i] = 1e30f;
    }
    CHECK(load_error(f).find("self-test") != std::string::npos);
  }
  SUBCASE("metadata claiming a huge input with no tensors fails before allocating") {
    simdnn::SafetensorsFile f = simdnn::model_to_safetensors(model);
    f.tensors.clear();
    f.metadata["input_height"] = "4096";
    f.metadata["input_width"] = "4096";
    f.metadata["layers"] = R"([{"units":65536,"activation":"relu"},{"units":3,"activation":"softmax"}])";
    const std::vector<uint8_t> bytes = simdnn::serialize_safetensors(f);
    CHECK(bytes.size() < 1024);
    const size_t rss_before = simdnn::test::rss_kb(getpid());
    std::string msg;
    try {
      simdnn::model_from_safetensors(simdnn::parse_safetensors(bytes, "m.safetensors"),
                                     "m.safetensors");
    } catch (const simdnn::IoError& e) {
      msg = e.what();
    }
    CHECK(msg.find("missing tensor \"dense_0.weight\"") != std::string::npos);
    // 4096*4096*65536 floats would be 4 PiB; nothing near that (not even 64 MiB) was touched.
    CHECK(simdnn::test::rss_kb(getpid()) < rss_before + 64 * 1024);
  }
}

}  // namespace test_model
