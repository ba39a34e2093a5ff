// The model file: round trip with identical predictions, and validation of what is loaded.
#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "io_test_support.h"
#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/safetensors.h"
#include "test_util.h"

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
