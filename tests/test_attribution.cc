// Input attributions (<simdnn/attribution.h>): the input gradient against central finite
// differences, completeness of integrated gradients on random and trained models, and the
// deletion test on Fashion-MNIST (zeroing the most attributed pixels hurts the prediction far
// more than zeroing random ones).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <vector>

#include "io_test_support.h"
#include "simdnn/attribution.h"
#include "simdnn/batches.h"
#include "simdnn/evaluation.h"
#include "simdnn/fit.h"
#include "simdnn/idx.h"
#include "test_util.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_attribution {

namespace {

using simdnn::Activation;
using simdnn::AttributionTarget;
using simdnn::Explainer;
using simdnn::Model;
using simdnn::Tensor;

Model small_model(size_t side, Activation hidden, uint64_t seed) {
  simdnn::Rng rng(seed);
  simdnn::ModelInfo info;
  info.input_height = info.input_width = side;
  info.class_names = {"a", "b", "c", "d"};
  return Model::mlp(info, {16, 8}, hidden, 4, rng);
}

// f_class(x) as the explainer computes it (its own forward pass on the tape).
double explained_output(Explainer& explainer, std::span<const float> x, size_t cls) {
  return explainer.gradient_times_input(x, cls).output;
}

const char* name(AttributionTarget t) {
  return t == AttributionTarget::kProbability ? "probability" : "logit";
}

// The installed Fashion-MNIST (scripts/setup.sh), or nothing.
const std::filesystem::path kFashion = "/usr/share/datasets/fashion-mnist";
bool have_fashion() { return std::filesystem::exists(kFashion / "t10k-images-idx3-ubyte.gz"); }

// 784 -> 128 ReLU -> 10 softmax trained by fit() for one epoch (all 60,000 images in Release,
// the first 10,000 in sanitized builds, where an epoch is far slower).
Model trained_fashion_model() {
  const simdnn::Dataset train = simdnn::load_mnist_dir(kFashion, "train");
  simdnn::Rng rng(7);
  simdnn::ModelInfo info;
  info.class_names = simdnn::fashion_mnist_class_names();
  Model model = Model::mlp(info, {128}, Activation::kRelu, 10, rng);
  simdnn::Adam adam;
  const simdnn::LabelledSamples all{train.images.pixels, train.labels.labels, 784};
  const size_t count = simdnn::test::kSanitized ? 10000 : all.count();
  simdnn::fit(model, adam, rng, all.slice(0, count), {}, {.epochs = 1, .batch = 32, .threads = 0});
  return model;
}

}  // namespace

TEST_CASE("attribution: the input gradient matches central finite differences") {
  // A smooth network (tanh), so the central difference has no kink to straddle. Float32
  // forward passes: f is O(1) with rounding ~1e-7, so with h = 1e-2 the difference quotient
  // carries ~1e-5 of rounding error and ~h²/6·|f'''| ~ 1e-5 of truncation error; 3e-4 leaves
  // a margin of 10x over both while a wrong gradient (a missing factor, a wrong column) is off
  // by far more than that.
  const size_t side = 4, n = side * side;
  const Model model = small_model(side, Activation::kTanh, 11);
  for (AttributionTarget target : {AttributionTarget::kProbability, AttributionTarget::kLogit}) {
    CAPTURE(name(target));
    Explainer explainer(model, {.target = target});
    const std::vector<float> values = simdnn::test::random_floats(3 * n, 5, 0.0f, 1.0f);
    Tensor x(simdnn::Shape{3, n});
    std::copy(values.begin(), values.end(), x.data());
    for (size_t cls = 0; cls < 4; ++cls) {
      CAPTURE(cls);
      const Tensor& g = explainer.input_gradient(x, cls);
      REQUIRE(g.shape() == x.shape());
      const std::vector<float> grad(g.data(), g.data() + g.size());
      if (target == AttributionTarget::kProbability) {  // the tape's f is inference's f
        CHECK(explained_output(explainer, x.row(0), cls) ==
              doctest::Approx(model.predict(x, 1)[cls]));
      }
      const float h = 1e-2f;
      double max_error = 0.0, max_grad = 0.0;
      for (size_t r = 0; r < 3; ++r) {
        for (size_t i = 0; i < n; ++i) {
          Tensor probe(simdnn::Shape{2, n});
          std::copy_n(x.row(r).data(), n, probe.data());
          std::copy_n(x.row(r).data(), n, probe.data() + n);
          probe[i] += h;
          probe[n + i] -= h;
          const double fd = (explained_output(explainer, probe.row(0), cls) -
                              explained_output(explainer, probe.row(1), cls)) /
                             (2.0 * h);
          max_error = std::max(max_error, std::abs(fd - grad[r * n + i]));
          max_grad = std::max(max_grad, std::abs(fd));
        }
      }
      CHECK(max_grad > 1e-3);  // the comparison is not between two zeros
      CHECK(max_error < 3e-4);
    }
  }
}

TEST_CASE("attribution: each row of a batch gets the gradient of its own output") {
  const size_t side = 5, n = side * side;
  const Model model = small_model(side, Activation::kRelu, 3);
  Explainer explainer(model);
  const std::vector<float> values = simdnn::test::random_floats(4 * n, 9, 0.0f, 1.0f);
  Tensor batch(simdnn::Shape{4, n});
  std::copy(values.begin(), values.end(), batch.data());
  const std::vector<float> together(explainer.input_gradient(batch, 2).span().begin(),
                                    explainer.input_gradient(batch, 2).span().end());
  for (size_t r = 0; r < 4; ++r) {
    Tensor one(simdnn::Shape{1, n});
    std::copy_n(values.data() + r * n, n, one.data());
    const Tensor& g = explainer.input_gradient(one, 2);
    for (size_t i = 0; i < n; ++i) CHECK(g[i] == doctest::Approx(together[r * n + i]).epsilon(1e-5));
  }
}

TEST_CASE("attribution: gradient x input is the input times the gradient") {
  const size_t side = 4, n = side * side;
  const Model model = small_model(side, Activation::kRelu, 21);
  Explainer explainer(model);
  const std::vector<float> x = simdnn::test::random_floats(n, 2, 0.0f, 1.0f);
  const simdnn::Attribution a = explainer.gradient_times_input(x, 1);
  Tensor one(simdnn::Shape{1, n});
  std::copy(x.begin(), x.end(), one.data());
  const Tensor& g = explainer.input_gradient(one, 1);
  REQUIRE(a.values.size() == n);
  for (size_t i = 0; i < n; ++i) CHECK(a.values[i] == doctest::Approx(x[i] * g[i]));
  Tensor zero(simdnn::Shape{1, n});
  zero.fill(0.0f);
  CHECK(a.baseline_output == doctest::Approx(model.predict(zero, 1)[1]));
  CHECK(a.output == doctest::Approx(model.predict(one, 1)[1]));
}

TEST_CASE("attribution: integrated gradients are complete on random models and inputs") {
  // 784 -> 128 ReLU -> 10 softmax with Glorot weights: the sum of the attributions equals
  // f(x) - f(black) within 1%, for both targets, at 64 and 256 steps.
  simdnn::Rng rng(4);
  simdnn::ModelInfo info;
  info.class_names = simdnn::fashion_mnist_class_names();
  const Model model = Model::mlp(info, {128}, Activation::kRelu, 10, rng);
  for (AttributionTarget target : {AttributionTarget::kProbability, AttributionTarget::kLogit}) {
    CAPTURE(name(target));
    Explainer explainer(model, {.target = target});
    for (uint64_t seed = 1; seed <= 4; ++seed) {
      // Inputs scaled up (x4) so that the output moves well away from the baseline's.
      const std::vector<float> x = simdnn::test::random_floats(784, seed, 0.0f, 4.0f);
      for (size_t steps : {64, 256}) {
        CAPTURE(seed);
        CAPTURE(steps);
        for (size_t cls : {size_t{0}, size_t{seed + 3}}) {
          const simdnn::Attribution a = explainer.integrated_gradients(x, cls, steps);
          const double delta = a.output - a.baseline_output;
          CAPTURE(delta);
          CAPTURE(a.sum());
          REQUIRE(std::abs(delta) > 1e-3);
          CHECK(std::abs(a.sum() - delta) <= 0.01 * std::abs(delta));
        }
      }
    }
  }
}

TEST_CASE("attribution: integrated gradients with a non-black baseline, and bad arguments") {
  const size_t side = 4, n = side * side;
  const Model model = small_model(side, Activation::kTanh, 8);
  Explainer explainer(model);
  const std::vector<float> x = simdnn::test::random_floats(n, 3, 0.0f, 3.0f);
  const std::vector<float> base = simdnn::test::random_floats(n, 4, 0.0f, 1.0f);
  const simdnn::Attribution a = explainer.integrated_gradients(x, 3, 128, base);
  Tensor b(simdnn::Shape{1, n});
  std::copy(base.begin(), base.end(), b.data());
  CHECK(a.baseline_output == doctest::Approx(model.predict(b, 1)[3]));
  CHECK(a.sum() == doctest::Approx(a.output - a.baseline_output).epsilon(0.01));
  // A feature equal to its baseline gets nothing.
  std::vector<float> same = x;
  same[5] = base[5];
  CHECK(explainer.integrated_gradients(same, 3, 16, base).values[5] == 0.0f);

  CHECK_THROWS_AS(explainer.integrated_gradients(x, 3, 0), std::invalid_argument);
  CHECK_THROWS_AS(explainer.integrated_gradients(x, 4, 8), std::invalid_argument);
  CHECK_THROWS_AS(explainer.integrated_gradients(std::span(x).first(n - 1), 0, 8),
                  std::invalid_argument);
  CHECK_THROWS_AS(explainer.integrated_gradients(x, 0, 8, std::span(base).first(3)),
                  std::invalid_argument);
  CHECK_THROWS_AS(explainer.input_gradient(Tensor(simdnn::Shape{0, n}), 0), std::invalid_argument);
  CHECK_THROWS_AS(explainer.input_gradient(Tensor(simdnn::Shape{2, n + 1}), 0),
                  std::invalid_argument);
}

TEST_CASE("attribution: explaining does not touch the model's parameter gradients") {
  const Model model = small_model(4, Activation::kRelu, 1);
  Explainer explainer(model);
  const std::vector<float> x = simdnn::test::random_floats(16, 1, 0.0f, 1.0f);
  (void)explainer.integrated_gradients(x, 0, 8);
  for (const simdnn::Parameter* p : model.parameters()) CHECK_FALSE(p->has_grad);
}

TEST_CASE("attribution: completeness and the deletion test on a trained Fashion-MNIST model") {
  if (!have_fashion()) {
    MESSAGE("skipped: " << kFashion << " is not installed (scripts/setup.sh installs it)");
    return;
  }
  const Model model = trained_fashion_model();
  const simdnn::Dataset test = simdnn::load_mnist_dir(kFashion, "t10k");
  const size_t n = 784;
  const size_t wanted = 1000;  // correctly classified images

  Tensor all;
  std::vector<uint32_t> rows(test.labels.count());
  std::iota(rows.begin(), rows.end(), 0u);
  simdnn::gather_batch(test.images.pixels, n, rows, model.info().pixel_scale, all);
  const Tensor probabilities = model.predict(all, 0).clone();

  Explainer explainer(model);
  simdnn::Rng rng(12345);
  double top_drop = 0.0, random_drop = 0.0;
  constexpr size_t kSteps[] = {32, 64, 128, 256};
  // Measured on this model: mean relative error 0.5% at 32 steps (worst 3.7%), 0.06% at 256
  // (worst 0.64%).
  constexpr size_t kCompletenessImages = simdnn::test::kSanitized ? 50 : 200;
  double worst[std::size(kSteps)] = {}, mean[std::size(kSteps)] = {};
  size_t used = 0;
  Tensor deleted(simdnn::Shape{2, n});
  std::vector<uint32_t> nonzero;
  for (size_t i = 0; i < test.labels.count() && used < wanted; ++i) {
    const size_t predicted = simdnn::argmax(probabilities.row(i));
    if (predicted != test.labels.labels[i]) continue;
    const std::span<const float> x = all.row(i);
    const simdnn::Attribution a = explainer.integrated_gradients(x, predicted, 32);
    if (used < kCompletenessImages) {
      // Completeness: the integral's Riemann error shrinks as 1/steps²; the probability of a
      // confident prediction rises steeply somewhere along the path, so 32 steps are not
      // always enough for 1% (the deletion ranking above does not need them to be).
      for (size_t s = 0; s < std::size(kSteps); ++s) {
        const simdnn::Attribution fine = explainer.integrated_gradients(x, predicted, kSteps[s]);
        const double delta = fine.output - fine.baseline_output;
        const double error = std::abs(fine.sum() - delta) / std::max(std::abs(delta), 1e-3);
        worst[s] = std::max(worst[s], error);
        mean[s] += error / kCompletenessImages;
      }
    }

    nonzero.clear();
    for (uint32_t p = 0; p < n; ++p) {
      if (x[p] != 0.0f) nonzero.push_back(p);
    }
    const size_t k = (nonzero.size() + 9) / 10;  // 10%, rounded up
    // Row 0: the k pixels with the highest attribution zeroed; row 1: k random ones.
    std::copy(x.begin(), x.end(), deleted.data());
    std::copy(x.begin(), x.end(), deleted.data() + n);
    std::vector<uint32_t> by_attribution = nonzero;
    std::partial_sort(by_attribution.begin(), by_attribution.begin() + k, by_attribution.end(),
                      [&](uint32_t l, uint32_t r) { return a.values[l] > a.values[r]; });
    for (size_t j = 0; j < k; ++j) deleted[by_attribution[j]] = 0.0f;
    rng.shuffle(nonzero);
    for (size_t j = 0; j < k; ++j) deleted[n + nonzero[j]] = 0.0f;
    const Tensor& p = model.predict(deleted, 1);
    top_drop += a.output - p[predicted];
    random_drop += a.output - p[p.cols() + predicted];
    ++used;
  }
  REQUIRE(used == wanted);
  top_drop /= static_cast<double>(used);
  random_drop /= static_cast<double>(used);
  MESSAGE("deletion test over " << used << " images: mean probability drop " << top_drop
                                << " (top 10% by integrated gradients) vs " << random_drop
                                << " (random 10%), ratio " << top_drop / random_drop);
  for (size_t s = 0; s < std::size(kSteps); ++s) {
    MESSAGE("completeness over " << kCompletenessImages << " images, " << kSteps[s]
                                 << " steps: mean relative error " << mean[s] << ", worst "
                                 << worst[s]);
  }
  CHECK(top_drop > 0.0);
  CHECK(top_drop >= 3.0 * std::max(random_drop, 0.0));
  CHECK(mean[0] <= 0.01);   // 32 steps, on average
  CHECK(worst[3] <= 0.01);  // 256 steps, every image
}

TEST_CASE("attribution: strongest_regions ranks cells by their sums") {
  std::vector<float> v(6 * 5, 0.0f);  // width 6, height 5, cells of 4: 2 x 2 cells, edges smaller
  v[0 * 6 + 1] = 1.0f;                // cell (0, 0)
  v[4 * 6 + 5] = 3.0f;                // cell (4, 4): 1 x 2
  v[1 * 6 + 4] = -2.0f;               // cell (0, 4)
  const auto r = simdnn::strongest_regions(v, 6, 5, 4, 3);
  REQUIRE(r.size() == 3);
  CHECK(r[0].top == 4);
  CHECK(r[0].left == 4);
  CHECK(r[0].height == 1);
  CHECK(r[0].width == 2);
  CHECK(r[0].sum == 3.0);
  CHECK(r[1].sum == 1.0);
  CHECK(r[2].sum == 0.0);  // cell (4, 0)
  CHECK(r[2].top == 4);
  CHECK(r[2].left == 0);
  CHECK(simdnn::strongest_regions(v, 6, 5, 4, 10).size() == 4);
  CHECK_THROWS_AS(simdnn::strongest_regions(v, 6, 4, 4, 3), std::invalid_argument);
}

}  // namespace test_attribution
