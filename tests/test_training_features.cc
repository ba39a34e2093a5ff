// The training features a Keras user expects, in the library: learning-rate schedules, early
// stopping with the best weights restored, divergence beyond NaN, frozen layers, dropout, L2
// and class weights (gradients against central differences), and the provenance and validated
// save of the model file.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <numbers>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "io_test_support.h"
#include "simdnn/autograd.h"
#include "simdnn/batches.h"
#include "simdnn/evaluation.h"
#include "simdnn/training.h"
#include "simdnn/fit.h"
#include "simdnn/io_error.h"
#include "simdnn/lr_schedule.h"
#include "simdnn/model_file.h"
#include "simdnn/regularization.h"
#include "gradient_check.h"
#include "test_util.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_training_features {

using simdnn::Parameter;
using simdnn::Shape;
using simdnn::Tape;
using simdnn::Tensor;
using simdnn::Var;

namespace {

using simdnn::test::check_gradients;
using simdnn::test::random_parameter;

// 200 6x6 images of 3 classes, class c lighting rows 2c..2c+1, plus noise.
struct Data {
  std::vector<uint8_t> pixels, labels;
  static constexpr size_t kCount = 200, kFeatures = 36, kClasses = 3;
  simdnn::LabelledSamples samples() const { return {pixels, labels, kFeatures}; }
};

Data make_data(uint64_t seed = 99) {
  Data d;
  simdnn::Rng rng(seed);
  d.pixels.resize(d.kCount * d.kFeatures);
  d.labels.resize(d.kCount);
  for (size_t i = 0; i < d.kCount; ++i) {
    const auto label = static_cast<uint8_t>(rng.below(d.kClasses));
    d.labels[i] = label;
    for (size_t p = 0; p < d.kFeatures; ++p) {
      const bool ink = (p / 6) / 2 == label && rng.below(3) != 0;
      d.pixels[i * d.kFeatures + p] =
          ink ? static_cast<uint8_t>(120 + rng.below(136)) : static_cast<uint8_t>(rng.below(60));
    }
  }
  return d;
}

simdnn::Model make_model(simdnn::Rng& rng, std::vector<size_t> hidden = {12}) {
  simdnn::ModelInfo info;
  info.input_height = info.input_width = 6;
  info.class_names = {"top", "middle", "bottom"};
  info.version = "1";
  return simdnn::Model::mlp(info, hidden, simdnn::Activation::kRelu, Data::kClasses, rng);
}

std::vector<float> values(const Parameter& p) { return {p.value.data(), p.value.data() + p.value.size()}; }

}  // namespace

TEST_CASE("lr schedule: step, cosine and plateau give the documented rates") {
  simdnn::LrScheduleOptions step{.kind = simdnn::LrScheduleKind::kStep, .step_epochs = 3,
                                 .step_factor = 0.1};
  const simdnn::LrSchedule s(step, 1.0, 10);
  CHECK(s.rate(1) == doctest::Approx(1.0));
  CHECK(s.rate(3) == doctest::Approx(1.0));
  CHECK(s.rate(4) == doctest::Approx(0.1));
  CHECK(s.rate(7) == doctest::Approx(0.01));

  simdnn::LrScheduleOptions cosine{.kind = simdnn::LrScheduleKind::kCosine, .min_lr = 0.1};
  const simdnn::LrSchedule c(cosine, 1.1, 4);
  CHECK(c.rate(1) == doctest::Approx(1.1));
  // epoch 2 of 4: t = 1/4, 0.1 + 1.0 * (1 + cos(pi/4)) / 2
  CHECK(c.rate(2) == doctest::Approx(0.1 + (1 + std::cos(std::numbers::pi / 4)) / 2));
  CHECK(c.rate(3) == doctest::Approx(0.6));  // halfway
  CHECK(c.rate(4) < c.rate(3));
  CHECK(c.rate(4) > 0.1);

  simdnn::LrScheduleOptions plateau{.kind = simdnn::LrScheduleKind::kPlateau,
                                    .plateau_patience = 2, .plateau_factor = 0.5, .min_lr = 0.3};
  simdnn::LrSchedule p(plateau, 1.0, 20);
  CHECK_FALSE(p.on_epoch_end(1.0));  // best so far
  CHECK_FALSE(p.on_epoch_end(0.9));  // better
  CHECK_FALSE(p.on_epoch_end(0.95));  // 1 epoch without improvement
  CHECK(p.rate(4) == doctest::Approx(1.0));
  CHECK(p.on_epoch_end(0.91));  // 2: reduce
  CHECK(p.rate(5) == doctest::Approx(0.5));
  CHECK_FALSE(p.on_epoch_end(0.92));  // the count restarted
  CHECK(p.on_epoch_end(0.93));
  CHECK(p.rate(7) == doctest::Approx(0.3));  // 0.25, floored
  CHECK_FALSE(p.on_epoch_end(0.94));
  CHECK_FALSE(p.on_epoch_end(0.95));  // at the floor already: no change

  CHECK_THROWS_AS(simdnn::LrSchedule({.step_factor = 0.0}, 1.0, 3), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::LrSchedule({.min_lr = 2.0}, 1.0, 3), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::parse_lr_schedule("linear"), std::invalid_argument);
}

TEST_CASE("fit: the schedule sets the optimizer's rate each epoch") {
  const Data d = make_data();
  simdnn::Rng rng(1);
  simdnn::Model model = make_model(rng);
  simdnn::Adam adam({.learning_rate = 0.01f});
  simdnn::FitOptions o{.epochs = 4, .batch = 50, .threads = 1};
  o.lr_schedule = simdnn::LrScheduleOptions{.kind = simdnn::LrScheduleKind::kCosine};
  const simdnn::History h = simdnn::fit(model, adam, rng, d.samples(), {}, o);
  REQUIRE(h.epochs.size() == 4);
  const simdnn::LrSchedule expected(*o.lr_schedule, 0.01, 4);
  for (const auto& e : h.epochs) {
    CAPTURE(e.epoch);
    CHECK(e.learning_rate == doctest::Approx(expected.rate(e.epoch)).epsilon(1e-6));
  }
}

TEST_CASE("fit: early stopping stops after the patience and restores the best weights") {
  const Data d = make_data();
  const simdnn::LabelledSamples all = d.samples();
  // Validation labels that disagree with the pictures: the validation loss rises while the
  // model learns the training set, so the best epoch is an early one.
  std::vector<uint8_t> wrong(d.labels.begin() + 150, d.labels.end());
  for (uint8_t& l : wrong) l = static_cast<uint8_t>((l + 1) % 3);
  const simdnn::LabelledSamples val{{d.pixels.data() + 150 * Data::kFeatures, 50 * Data::kFeatures},
                                    wrong, Data::kFeatures};
  simdnn::Rng rng(2);
  simdnn::Model model = make_model(rng);
  simdnn::Adam adam({.learning_rate = 0.01f});
  std::vector<std::vector<float>> weights_after;  // dense_0.weight after each epoch
  std::vector<double> val_losses;
  simdnn::FitCallbacks cb;
  cb.on_epoch_end = [&](const simdnn::EpochResult& r) {
    weights_after.push_back(values(*model.parameters()[0]));
    val_losses.push_back(r.validation->loss);
    return true;
  };
  simdnn::FitOptions o{.epochs = 30, .batch = 25, .threads = 1};
  o.early_stopping_patience = 2;
  const simdnn::History h = simdnn::fit(model, adam, rng, all.slice(0, 150), val, o, cb);
  CHECK(h.stopped_early);
  REQUIRE(h.epochs.size() < 30);
  const int best = static_cast<int>(std::min_element(val_losses.begin(), val_losses.end()) -
                                    val_losses.begin()) + 1;
  CHECK(h.best_epoch == best);
  CHECK(static_cast<int>(h.epochs.size()) == best + 2);  // patience 2 after the best
  CHECK(h.restored_best);
  CHECK(values(*model.parameters()[0]) == weights_after[best - 1]);

  // Without restore, the model keeps the last epoch's weights.
  simdnn::Rng rng2(2);
  simdnn::Model model2 = make_model(rng2);
  simdnn::Adam adam2({.learning_rate = 0.01f});
  o.restore_best_weights = false;
  const simdnn::History h2 = simdnn::fit(model2, adam2, rng2, all.slice(0, 150), val, o);
  CHECK_FALSE(h2.restored_best);
  CHECK(values(*model2.parameters()[0]) == weights_after.back());

  // Early stopping needs validation data.
  CHECK_THROWS_WITH_AS(simdnn::fit(model, adam, rng, all, {}, o), doctest::Contains("validation"),
                       std::invalid_argument);
}

TEST_CASE("fit: a loss far above its start is divergence even when it stays finite") {
  const Data d = make_data();
  simdnn::Rng rng(3);
  simdnn::Model model = make_model(rng);
  // SGD at rate 30 throws the weights far out; the loss stays finite but huge.
  simdnn::Sgd sgd({.learning_rate = 30.0f});
  simdnn::FitOptions o{.epochs = 20, .batch = 8, .threads = 1};
  try {
    simdnn::fit(model, sgd, rng, d.samples(), {}, o);
    FAIL("SGD at rate 30 did not diverge");
  } catch (const simdnn::TrainingDiverged& e) {
    CHECK(e.epoch >= 1);
    const std::string what = e.what();
    CHECK_MESSAGE((what.find("diverged") != std::string::npos ||
                   what.find("loss became") != std::string::npos), what);
  }
  // A healthy run never trips it.
  simdnn::Rng rng2(3);
  simdnn::Model healthy = make_model(rng2);
  simdnn::Adam adam;
  CHECK_NOTHROW(simdnn::fit(healthy, adam, rng2, d.samples(), {}, o));
}

TEST_CASE("fit: frozen parameters stay bit-identical while the rest trains") {
  const Data d = make_data();
  simdnn::Rng rng(4);
  simdnn::Model model = make_model(rng, {10, 8});
  const auto& params = model.parameters();  // dense_0 w,b  dense_1 w,b  dense_2 w,b
  params[0]->trainable = params[1]->trainable = false;
  const auto w0 = values(*params[0]), b0 = values(*params[1]), w1 = values(*params[2]);
  for (bool adamw : {false, true}) {
    CAPTURE(adamw);
    // AdamW's decoupled decay would shrink even a zero-gradient weight: it must skip them too.
    std::unique_ptr<simdnn::Adam> opt =
        adamw ? simdnn::make_adamw() : std::make_unique<simdnn::Adam>();
    simdnn::fit(model, *opt, rng, d.samples(), {}, {.epochs = 2, .batch = 20, .threads = 1});
    CHECK(values(*params[0]) == w0);
    CHECK(values(*params[1]) == b0);
    CHECK(values(*params[2]) != w1);
  }
}

namespace {

// Keeps a copy of every gradient it is given and leaves the parameters alone.
class RecordingOptimizer : public simdnn::Optimizer {
 public:
  void step(std::span<Parameter* const> params) override {
    grads.clear();
    for (Parameter* p : params) {
      grads.push_back(p->trainable ? p->gradient().clone() : Tensor(Shape{0}));
    }
    ++steps_;
  }
  std::string name() const override { return "recording"; }
  float learning_rate() const override { return 0.0f; }
  void set_learning_rate(float) override {}
  std::vector<std::pair<std::string, Tensor*>> state(std::span<Parameter* const>) override {
    return {};
  }
  std::vector<Tensor> grads;
};

}  // namespace

TEST_CASE("train_step: the fused output layer gives the separate ops' loss and gradients, "
          "with dropout, class weights, L2 and frozen layers") {
  const Data d = make_data();
  std::vector<uint32_t> idx(20);
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<uint32_t>(7 * i % Data::kCount);
  std::vector<int32_t> labels;
  simdnn::gather_labels(d.labels, idx, labels);
  Tensor x;
  simdnn::gather_batch(d.pixels, Data::kFeatures, idx, 1.0f / 255, x);
  for (int variant = 0; variant < 4; ++variant) {
    CAPTURE(variant);
    simdnn::Rng init(12);
    simdnn::Model model = make_model(init, {10, 8});  // dense, relu, dense, relu, dense, softmax
    const auto& params = model.parameters();
    simdnn::Regularization reg;
    if (variant >= 1) reg.dropout = 0.25f;
    if (variant >= 2) {
      reg.class_weights = {1.0f, 2.5f, 0.5f};
      reg.l2 = 1e-3f;
    }
    if (variant == 3) params[0]->trainable = params[1]->trainable = false;
    const simdnn::Rng seeded(40);

    // train_step: Dense(8 -> 3) + softmax cross-entropy run fused.
    RecordingOptimizer fused;
    Tape tape(1);
    simdnn::Rng rng = seeded;
    const simdnn::StepResult r = simdnn::train_step(model.network(), tape, fused, x, labels, reg, rng);
    REQUIRE(fused.grads.size() == params.size());

    // The same step from the separate ops: logits, the loss, backward, the L2 gradient.
    for (Parameter* p : params) p->zero_grad();
    simdnn::Rng rng2 = seeded;
    Tape t(1);
    const auto& layers = model.network().layers();
    Var h = t.input(x);
    for (size_t i = 0; i + 1 < layers.size(); ++i) {
      h = layers[i]->forward(t, h);
      const bool dense_next = dynamic_cast<const simdnn::Dense*>(layers[i + 1].get()) != nullptr;
      if (reg.dropout > 0 && dense_next) h = t.dropout(h, reg.dropout, rng2);
    }
    const Var loss = t.softmax_cross_entropy(h, labels, reg.class_weights);
    t.backward(loss);
    double want_loss = t.value(loss)[0];
    for (const auto& layer : layers) {
      if (auto* dense = dynamic_cast<simdnn::Dense*>(layer.get())) {
        Parameter* kernel = &dense->weight;
        want_loss += simdnn::l2_penalty({&kernel, 1}, reg.l2, true);
      }
    }
    size_t want_correct = 0;
    const Tensor& z = t.value(h);
    for (size_t row = 0; row < z.rows(); ++row) {
      want_correct += static_cast<int32_t>(simdnn::argmax(z.row(row))) == labels[row];
    }
    CHECK(r.loss == doctest::Approx(want_loss).epsilon(1e-6));
    CHECK(r.correct == want_correct);
    for (size_t k = 0; k < params.size(); ++k) {
      CAPTURE(params[k]->name);
      if (!params[k]->trainable) {
        CHECK(fused.grads[k].size() == 0);
        CHECK_FALSE(params[k]->has_grad);
        continue;
      }
      const Tensor& want = params[k]->gradient();
      REQUIRE(fused.grads[k].size() == want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        CHECK(fused.grads[k][i] == doctest::Approx(want[i]).epsilon(1e-4).scale(1e-6));
      }
    }
  }
}

TEST_CASE("dropout: the mask keeps 1-rate of the values scaled up, and is the seed's") {
  simdnn::Rng a(7), b(7);
  Tensor m1, m2;
  simdnn::dropout_mask(0.25f, a, 4000, m1);
  simdnn::dropout_mask(0.25f, b, 4000, m2);
  size_t kept = 0;
  for (size_t i = 0; i < m1.size(); ++i) {
    CHECK(m1[i] == m2[i]);
    CHECK((m1[i] == 0.0f || m1[i] == doctest::Approx(1.0f / 0.75f)));
    kept += m1[i] != 0.0f;
  }
  CHECK(kept > 2800);
  CHECK(kept < 3200);
  CHECK_THROWS_AS(simdnn::dropout_mask(1.0f, a, 4, m1), std::invalid_argument);
}

TEST_CASE("dropout, weighted cross-entropy and L2: gradients match finite differences") {
  Parameter x = random_parameter("x", Shape{4, 6}, 1);
  Parameter w = random_parameter("w", Shape{6, 3}, 2);
  Parameter b = random_parameter("b", Shape{3}, 3);
  const std::vector<int32_t> labels = {0, 2, 1, 2};
  SUBCASE("dropout with a fixed mask") {
    const simdnn::Rng seeded(5);
    check_gradients({&x, &w, &b}, [&](Tape& tape) {
      simdnn::Rng rng = seeded;  // the same mask on every evaluation
      Var h = tape.dropout(tape.param(x), 0.5f, rng);
      return tape.softmax_cross_entropy(tape.dense(h, tape.param(w), tape.param(b)), labels);
    });
  }
  SUBCASE("class-weighted cross-entropy") {
    const std::vector<float> weights = {0.5f, 2.0f, 3.0f};
    check_gradients({&x, &w, &b}, [&](Tape& tape) {
      return tape.softmax_cross_entropy(tape.dense(tape.param(x), tape.param(w), tape.param(b)),
                                        labels, weights);
    });
    // Weights of 1 are the unweighted loss, bit for bit.
    const std::vector<float> ones = {1.0f, 1.0f, 1.0f};
    Parameter z = random_parameter("z", Shape{4, 3}, 9, -3.0f, 3.0f);
    Tape t1(1), t2(1);
    const float plain = t1.value(t1.softmax_cross_entropy(t1.param(z), labels))[0];
    const float weighted = t2.value(t2.softmax_cross_entropy(t2.param(z), labels, ones))[0];
    CHECK(plain == doctest::Approx(weighted).epsilon(1e-6));
  }
  SUBCASE("L2 penalty") {
    // d/dw of lambda * sum(w^2), by central differences on the penalty itself.
    Parameter* kernel = &w;
    const float lambda = 0.3f;
    w.zero_grad();
    const double penalty = simdnn::l2_penalty({&kernel, 1}, lambda, true);
    double sum = 0;
    for (size_t i = 0; i < w.value.size(); ++i) sum += double(w.value[i]) * w.value[i];
    CHECK(penalty == doctest::Approx(lambda * sum));
    for (size_t i = 0; i < w.value.size(); ++i) {
      const float saved = w.value[i];
      w.value[i] = saved + 1e-2f;
      const double up = simdnn::l2_penalty({&kernel, 1}, lambda, false);
      w.value[i] = saved - 1e-2f;
      const double down = simdnn::l2_penalty({&kernel, 1}, lambda, false);
      w.value[i] = saved;
      CHECK(w.grad[i] == doctest::Approx((up - down) / 2e-2).epsilon(1e-3));
      CHECK(w.grad[i] == doctest::Approx(2 * lambda * saved));
    }
  }
}

TEST_CASE("balanced class weights are n / (classes * count)") {
  const std::vector<uint8_t> labels = {0, 0, 0, 1, 2, 2};
  const auto w = simdnn::balanced_class_weights(labels, 4);
  REQUIRE(w.size() == 4);
  CHECK(w[0] == doctest::Approx(6.0 / (3 * 3)));
  CHECK(w[1] == doctest::Approx(6.0 / (3 * 1)));
  CHECK(w[2] == doctest::Approx(6.0 / (3 * 2)));
  CHECK(w[3] == 1.0f);  // absent
}

TEST_CASE("fit with dropout, L2 and class weights learns, and is the seed's bit for bit") {
  const Data d = make_data();
  auto train = [&] {
    simdnn::Rng rng(6);
    simdnn::Model model = make_model(rng);
    simdnn::Adam adam({.learning_rate = 0.01f});
    simdnn::FitOptions o{.epochs = 6, .batch = 20, .threads = 1};
    o.regularization.dropout = 0.3f;
    o.regularization.l2 = 1e-4f;
    o.regularization.class_weights = {1.0f, 2.0f, 0.5f};
    const simdnn::History h = simdnn::fit(model, adam, rng, d.samples(), {}, o);
    CHECK(h.epochs.back().accuracy > 0.8);
    return values(*model.parameters()[0]);
  };
  CHECK(train() == train());
}

TEST_CASE("model file: provenance round-trips, and a model that would not load is not written") {
  simdnn::test::TempDir dir("provenance");
  simdnn::Rng rng(8);
  simdnn::Model model = make_model(rng);
  model.info().provenance = R"({"version":"1","seed":8})";
  const auto path = dir.path() / "m.safetensors";
  simdnn::save_model_validated(path, model);
  CHECK(simdnn::load_model(path).info().provenance == model.info().provenance);

  // A provenance that is not a JSON object is refused by the reader, hence never written.
  const auto good = simdnn::test::read_raw(path);
  model.info().provenance = "[1, 2]";
  CHECK_THROWS_WITH_AS(simdnn::save_model_validated(path, model),
                       doctest::Contains("does not load back"), simdnn::DataError);
  CHECK(simdnn::test::read_raw(path) == good);
  // No temporary file is left behind.
  size_t files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) files += e.is_regular_file();
  CHECK(files == 1);
}

}  // namespace test_training_features
