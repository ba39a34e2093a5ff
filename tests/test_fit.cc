// The library training loop, fit(), and checkpoints: a pinned model hash on forced SIMD targets
// that every x86 machine has, resume equals an uninterrupted run, callbacks, divergence.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "io_test_support.h"
#include "simdnn/checkpoint.h"
#include "simdnn/fit.h"
#include "simdnn/io_error.h"
#include "simdnn/model_file.h"
#include "test_util.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_fit {

namespace fs = std::filesystem;

namespace {

// 160 6x6 "images" of 3 classes: class c lights up rows 2c..2c+1 over a background that is
// mostly blank (so the first layer's zero-skipping paths run).
struct Data {
  std::vector<uint8_t> pixels, labels;
  static constexpr size_t kCount = 160, kSide = 6, kFeatures = 36, kClasses = 3;
  simdnn::LabelledSamples samples() const { return {pixels, labels, kFeatures}; }
};

Data make_data() {
  Data d;
  simdnn::Rng rng(99);
  d.pixels.resize(d.kCount * d.kFeatures);
  d.labels.resize(d.kCount);
  for (size_t i = 0; i < d.kCount; ++i) {
    const auto label = static_cast<uint8_t>(rng.below(d.kClasses));
    d.labels[i] = label;
    for (size_t p = 0; p < d.kFeatures; ++p) {
      const size_t row = p / d.kSide;
      const bool ink = row / 2 == label && rng.below(4) != 0;
      const bool noise = rng.below(8) == 0;
      d.pixels[i * d.kFeatures + p] =
          ink ? static_cast<uint8_t>(150 + rng.below(106)) : noise ? static_cast<uint8_t>(rng.below(90)) : 0;
    }
  }
  return d;
}

simdnn::Model make_model(simdnn::Rng& rng) {
  simdnn::ModelInfo info;
  info.input_height = info.input_width = Data::kSide;
  info.class_names = {"top", "middle", "bottom"};
  info.version = "pin";
  return simdnn::Model::mlp(info, {12}, simdnn::Activation::kRelu, Data::kClasses, rng);
}

// FNV-1a, 64 bits: enough to pin a file's bytes.
uint64_t fnv1a(const std::vector<uint8_t>& bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3ull;
  return h;
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// Trains 3 epochs (batch 16, the last 32 samples for validation) and returns the model file.
std::vector<uint8_t> train_model_file(const fs::path& dir, int threads) {
  const Data d = make_data();
  simdnn::Rng rng(5);
  simdnn::Model model = make_model(rng);
  simdnn::Adam adam;
  simdnn::FitOptions options{.epochs = 3, .batch = 16, .threads = threads};
  const simdnn::LabelledSamples all = d.samples();
  simdnn::fit(model, adam, rng, all.slice(0, 128), all.slice(128, 32), options);
  simdnn::save_model(dir / "pinned.safetensors", model);
  return simdnn::test::read_raw(dir / "pinned.safetensors");
}

}  // namespace

TEST_CASE("fit: the model file of a short run is pinned on the SSE4 and SCALAR targets") {
  // A change of these hashes is a change of behaviour: training no longer writes the model it
  // wrote before (the kernels, the loop, the optimizer or the file format changed). SSE4 and
  // SCALAR (Highway's portable fallback, compiled in by HWY_COMPILE_ALL_ATTAINABLE) run on every
  // x86-64 machine CI may get, and neither uses FMA, so their rounding does not depend on the
  // CPU. Same bits for 1 and 2 threads. The two pins differ since training
  // runs the output layer fused (output_layer_train): its sums over the hidden units go in
  // vector-length partial sums, 4 lanes on SSE4, so SSE4's rounding left SCALAR's there.
  simdnn::test::TempDir dir("fit-pin");
  const std::vector<std::string> targets = simdnn::available_simd_targets();
  const std::vector<std::pair<std::string, std::string>> pins = {
      {"SSE4", "dff2e0553d50b73f"}, {"SCALAR", "fb6d8a0d4126b0c6"}};
  for (const auto& target_pin : pins) {
    // Named copies, not a structured binding: clang 14 (the sanitizer build) cannot capture a
    // binding in CAPTURE's lambda.
    const std::string& target = target_pin.first;
    const std::string& pin = target_pin.second;
    CAPTURE(target);
    if (std::find(targets.begin(), targets.end(), target) == targets.end()) {
      // Only the sanitizer build lacks one: it compiles just the targets the CPU runs, and
      // with clang the portable baseline is EMU128, not SCALAR (GCC's). The Release build,
      // which every CI run tests, must have both.
      REQUIRE(simdnn::test::kSanitized);
      MESSAGE("pin not checked in this build: no " << target << " target");
      continue;
    }
    simdnn::ScopedSimdTarget scope(target);
    const std::string one = hex(fnv1a(train_model_file(dir.path(), 1)));
    const std::string two = hex(fnv1a(train_model_file(dir.path(), 2)));
    CHECK(one == pin);
    CHECK(two == one);
  }
}

TEST_CASE("fit: resuming from a checkpoint reaches the same model as an uninterrupted run") {
  simdnn::test::TempDir dir("fit-resume");
  const Data d = make_data();
  const std::string settings = R"({"run":"resume-test"})";
  const auto run = [&](int epochs, const fs::path& checkpoint, const fs::path& resume) {
    simdnn::Rng rng(8);
    simdnn::Model model = make_model(rng);
    simdnn::Adam adam;
    simdnn::FitOptions options{.epochs = epochs, .batch = 20, .threads = 1};
    options.checkpoint = checkpoint;
    options.checkpoint_settings = settings;
    if (!resume.empty()) {
      options.first_epoch = simdnn::restore_checkpoint(resume, model, adam, rng, settings) + 1;
    }
    simdnn::fit(model, adam, rng, d.samples(), {}, options);
    return model;
  };
  const simdnn::Model straight = run(4, dir.path() / "straight.ckpt", {});
  run(2, dir.path() / "half.ckpt", {});
  const simdnn::Model resumed = run(4, dir.path() / "resumed.ckpt", dir.path() / "half.ckpt");
  REQUIRE(straight.parameters().size() == resumed.parameters().size());
  for (size_t i = 0; i < straight.parameters().size(); ++i) {
    const simdnn::Tensor& a = straight.parameters()[i]->value;
    const simdnn::Tensor& b = resumed.parameters()[i]->value;
    for (size_t j = 0; j < a.size(); ++j) REQUIRE(a[j] == b[j]);
  }
  // The final checkpoints are the same file.
  CHECK(simdnn::test::read_raw(dir.path() / "straight.ckpt") ==
        simdnn::test::read_raw(dir.path() / "resumed.ckpt"));

  // Other settings, another optimizer, or a plain model file are refused with the path named.
  simdnn::Rng rng(8);
  simdnn::Model model = make_model(rng);
  simdnn::Adam adam;
  const fs::path half = dir.path() / "half.ckpt";
  try {
    simdnn::restore_checkpoint(half, model, adam, rng, R"({"run":"other"})");
    FAIL("other settings were accepted");
  } catch (const simdnn::IoError& e) {
    CHECK(std::string(e.what()).find("different settings") != std::string::npos);
    CHECK(std::string(e.what()).find("half.ckpt") != std::string::npos);
  }
  simdnn::Sgd sgd;
  CHECK_THROWS_AS(simdnn::restore_checkpoint(half, model, sgd, rng, settings), simdnn::IoError);
  simdnn::save_model(dir.path() / "plain.safetensors", model);
  CHECK_THROWS_WITH_AS(
      simdnn::restore_checkpoint(dir.path() / "plain.safetensors", model, adam, rng, settings),
      doctest::Contains("not a checkpoint"), simdnn::IoError);
}

TEST_CASE("fit: callbacks see progress and validation, and can stop early") {
  const Data d = make_data();
  simdnn::Rng rng(3);
  simdnn::Model model = make_model(rng);
  simdnn::Adam adam;
  size_t batches = 0, last_done = 0;
  std::vector<int> epochs_seen;
  simdnn::FitCallbacks callbacks;
  callbacks.on_batch = [&](const simdnn::BatchProgress& p) {
    ++batches;
    CHECK(p.done > last_done % p.total);
    CHECK(p.total == 120);
    last_done = p.done;
  };
  callbacks.on_epoch_end = [&](const simdnn::EpochResult& r) {
    epochs_seen.push_back(r.epoch);
    CHECK(r.samples == 120);
    REQUIRE(r.validation.has_value());
    CHECK(r.validation->count == 40);
    return r.epoch < 2;  // stop after the second epoch
  };
  const simdnn::LabelledSamples all = d.samples();
  const simdnn::History h = simdnn::fit(model, adam, rng, all.slice(0, 120), all.slice(120, 40),
                                        {.epochs = 10, .batch = 50, .threads = 1}, callbacks);
  CHECK(epochs_seen == std::vector<int>{1, 2});
  CHECK(h.epochs.size() == 2);
  CHECK(batches == 6);  // 3 batches (50, 50, 20) per epoch
  CHECK(h.epochs[1].loss < h.epochs[0].loss);
}

TEST_CASE("fit: bad data is refused, and a diverging run says where it diverged") {
  const Data d = make_data();
  simdnn::Rng rng(4);
  simdnn::Model model = make_model(rng);
  simdnn::Adam adam;
  simdnn::LabelledSamples wrong = d.samples();
  wrong.features = 35;
  CHECK_THROWS_AS(simdnn::fit(model, adam, rng, wrong, {}, {}), std::invalid_argument);
  std::vector<uint8_t> bad_labels = d.labels;
  bad_labels[7] = 3;  // the model has 3 classes
  const simdnn::LabelledSamples bad{d.pixels, bad_labels, Data::kFeatures};
  CHECK_THROWS_WITH_AS(simdnn::fit(model, adam, rng, bad, {}, {}),
                       doctest::Contains("sample 7"), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::fit(model, adam, rng, d.samples(), {}, {.batch = 0}),
                  std::invalid_argument);

  simdnn::Sgd sgd({.learning_rate = 1e38f});
  try {
    simdnn::fit(model, sgd, rng, d.samples(), {}, {.epochs = 5, .batch = 40, .threads = 1});
    FAIL("a learning rate of 1e38 did not diverge");
  } catch (const simdnn::TrainingDiverged& e) {
    CHECK(e.epoch >= 1);
    CHECK(e.sample % 40 == 0);
    CHECK(std::string(e.what()).find("loss became") != std::string::npos);
  }
}

}  // namespace test_fit
