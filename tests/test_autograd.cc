// Every tape op's backward against central finite differences, plus the tape's bookkeeping:
// accumulation, no gradient for data inputs, and buffer reuse.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "simdnn/autograd.h"
#include "simdnn/layers.h"
#include "gradient_check.h"
#include "test_util.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_autograd {

using simdnn::Parameter;
using simdnn::Shape;
using simdnn::Tape;
using simdnn::Tensor;
using simdnn::Var;

using simdnn::test::check_gradients;
using simdnn::test::random_parameter;

TEST_CASE("autograd: dense backward (dx, dW, db) matches finite differences") {
  Parameter x = random_parameter("x", Shape{4, 5}, 1);
  Parameter w = random_parameter("w", Shape{5, 3}, 2);
  Parameter b = random_parameter("b", Shape{3}, 3);
  Tensor target({4, 3});
  auto t = simdnn::test::random_floats(12, 4);
  std::copy(t.begin(), t.end(), target.data());
  check_gradients({&x, &w, &b}, [&](Tape& tape) {
    return tape.mean_squared_error(tape.dense(tape.param(x), tape.param(w), tape.param(b)),
                                   target);
  });
}

TEST_CASE("autograd: activations backward match finite differences") {
  Tensor target({3, 7});
  auto t = simdnn::test::random_floats(21, 5);
  std::copy(t.begin(), t.end(), target.data());
  // Keep ReLU inputs away from its kink at 0, where finite differences are meaningless.
  Parameter x = random_parameter("x", Shape{3, 7}, 6, 0.05f, 1.0f);
  for (size_t i = 0; i < x.value.size(); i += 2) x.value[i] = -x.value[i];
  SUBCASE("relu") {
    check_gradients({&x}, [&](Tape& tape) {
      return tape.mean_squared_error(tape.relu(tape.param(x)), target);
    });
  }
  SUBCASE("sigmoid") {
    check_gradients({&x}, [&](Tape& tape) {
      return tape.mean_squared_error(tape.sigmoid(tape.param(x)), target);
    });
  }
  SUBCASE("tanh") {
    check_gradients({&x}, [&](Tape& tape) {
      return tape.mean_squared_error(tape.tanh(tape.param(x)), target);
    });
  }
  SUBCASE("softmax") {
    check_gradients({&x}, [&](Tape& tape) {
      return tape.mean_squared_error(tape.softmax(tape.param(x)), target);
    });
  }
  SUBCASE("mean") {
    check_gradients({&x}, [&](Tape& tape) { return tape.mean(tape.sigmoid(tape.param(x))); });
  }
}

TEST_CASE("autograd: fused softmax cross-entropy backward matches finite differences") {
  Parameter logits = random_parameter("logits", Shape{5, 4}, 7, -3.0f, 3.0f);
  std::vector<int32_t> labels = {0, 3, 1, 1, 2};
  check_gradients({&logits}, [&](Tape& tape) {
    return tape.softmax_cross_entropy(tape.param(logits), labels);
  });
}

TEST_CASE("autograd: dense_softmax_cross_entropy matches finite differences and the unfused ops") {
  // x -> dense -> tanh -> fused output layer: dX of the fused op flows on into the first layer.
  Parameter x = random_parameter("x", Shape{7, 5}, 21);
  Parameter w1 = random_parameter("w1", Shape{5, 6}, 22);
  Parameter b1 = random_parameter("b1", Shape{6}, 23);
  Parameter w2 = random_parameter("w2", Shape{6, 4}, 24);
  Parameter b2 = random_parameter("b2", Shape{4}, 25);
  const std::vector<int32_t> labels = {0, 3, 1, 1, 2, 3, 0};
  const std::vector<float> weights = {0.5f, 2.0f, 1.0f, 3.0f};
  const std::vector<Parameter*> params = {&x, &w1, &b1, &w2, &b2};
  for (bool weighted : {false, true}) {
    CAPTURE(weighted);
    const std::span<const float> cw = weighted ? std::span<const float>(weights)
                                               : std::span<const float>();
    const auto hidden = [&](Tape& tape) {
      return tape.tanh(tape.dense(tape.param(x), tape.param(w1), tape.param(b1)));
    };
    const auto fused = [&](Tape& tape) {
      return tape.dense_softmax_cross_entropy(hidden(tape), tape.param(w2), tape.param(b2),
                                              labels, cw);
    };
    const auto separate = [&](Tape& tape) {
      return tape.softmax_cross_entropy(tape.dense(hidden(tape), tape.param(w2), tape.param(b2)),
                                        labels, cw);
    };
    check_gradients(params, fused);

    // Against the separate dense + loss ops: loss, probabilities and every gradient agree
    // within float rounding (the sums run in another order).
    Tape a(1), b(1);
    for (Parameter* p : params) p->zero_grad();
    const Var la = fused(a);
    a.backward(la);
    std::vector<Tensor> ga;
    for (Parameter* p : params) ga.push_back(p->gradient().clone());
    for (Parameter* p : params) p->zero_grad();
    const Var lb = separate(b);
    b.backward(lb);
    CHECK(a.value(la)[0] == doctest::Approx(b.value(lb)[0]).epsilon(1e-6));
    const Tensor& pa = a.probabilities(la);
    const Tensor& pb = b.probabilities(lb);
    REQUIRE(pa.size() == pb.size());
    for (size_t i = 0; i < pa.size(); ++i) CHECK(pa[i] == doctest::Approx(pb[i]).epsilon(1e-5));
    for (size_t k = 0; k < params.size(); ++k) {
      CAPTURE(params[k]->name);
      const Tensor& gb = params[k]->gradient();
      for (size_t i = 0; i < gb.size(); ++i) {
        CHECK(ga[k][i] == doctest::Approx(gb[i]).epsilon(1e-5).scale(1e-6));
      }
    }
  }
}

TEST_CASE("autograd: dense_softmax_cross_entropy skips frozen and data operands, reuses its "
          "buffers, and checks shapes") {
  Parameter w = random_parameter("w", Shape{5, 3}, 31);
  Parameter b = random_parameter("b", Shape{3}, 32);
  Tensor x({4, 5});
  auto xv = simdnn::test::random_floats(20, 33);
  std::copy(xv.begin(), xv.end(), x.data());
  const std::vector<int32_t> labels = {2, 0, 1, 2};
  Tape tape(1);
  w.trainable = false;
  w.zero_grad();
  b.zero_grad();
  Var in = tape.input(x);
  Var loss = tape.dense_softmax_cross_entropy(in, tape.param(w), tape.param(b), labels);
  tape.backward(loss);
  CHECK_FALSE(w.has_grad);  // frozen: nothing written
  CHECK(b.has_grad);
  CHECK_THROWS(tape.grad(in));  // data: no dX
  // b's gradient is the column sum of (p - onehot) / rows.
  const Tensor& p = tape.probabilities(loss);
  for (size_t c = 0; c < 3; ++c) {
    double s = 0;
    for (size_t r = 0; r < 4; ++r) s += (p[r * 3 + c] - (labels[r] == int32_t(c) ? 1.0 : 0.0)) / 4;
    CHECK(b.grad[c] == doctest::Approx(s).epsilon(1e-5).scale(1e-6));
  }
  const float* probs = p.data();
  tape.clear();
  Var again = tape.dense_softmax_cross_entropy(tape.input(x), tape.param(w), tape.param(b), labels);
  CHECK(tape.probabilities(again).data() == probs);  // same node slot, same storage
  CHECK_THROWS_AS(tape.probabilities(tape.param(b)), std::invalid_argument);
  w.trainable = true;

  Parameter wrong("wrong", Shape{4, 3});
  Tape t2(1);
  try {
    t2.dense_softmax_cross_entropy(t2.input(x), t2.param(wrong), t2.param(b), labels);
    FAIL("no exception");
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    CHECK_MESSAGE(what.find("[4, 5]") != std::string::npos, what);
    CHECK_MESSAGE(what.find("[4, 3]") != std::string::npos, what);
  }
  const std::vector<int32_t> short_labels = {0, 1};
  CHECK_THROWS_AS(t2.dense_softmax_cross_entropy(t2.input(x), t2.param(w), t2.param(b),
                                                 short_labels),
                  std::invalid_argument);
  const std::vector<float> two_weights = {1.0f, 2.0f};
  CHECK_THROWS_AS(t2.dense_softmax_cross_entropy(t2.input(x), t2.param(w), t2.param(b), labels,
                                                 two_weights),
                  std::invalid_argument);
}

TEST_CASE("autograd: whole MLP gradient, and a parameter used twice accumulates") {
  simdnn::Rng rng(11);
  simdnn::Sequential net;
  net.add_dense(6, 8, simdnn::Activation::kTanh, rng);
  net.add_dense(8, 4, simdnn::Activation::kSoftmax, rng);
  Tensor x({5, 6});
  auto xv = simdnn::test::random_floats(30, 12);
  std::copy(xv.begin(), xv.end(), x.data());
  std::vector<int32_t> labels = {0, 1, 2, 3, 1};
  check_gradients(net.parameters(), [&](Tape& tape) {
    return tape.softmax_cross_entropy(net.forward_logits(tape, tape.input(x)), labels);
  });

  // y = (x·W + b)·W + b with a square W: both uses must reach W's and b's gradients.
  Parameter in = random_parameter("in", Shape{3, 4}, 13);
  Parameter w = random_parameter("w", Shape{4, 4}, 14, -0.5f, 0.5f);
  Parameter b = random_parameter("b", Shape{4}, 15);
  Tensor target({3, 4});
  check_gradients({&in, &w, &b}, [&](Tape& tape) {
    Var wv = tape.param(w), bv = tape.param(b);
    Var h = tape.tanh(tape.dense(tape.param(in), wv, bv));
    return tape.mean_squared_error(tape.dense(h, wv, bv), target);
  });
}

TEST_CASE("autograd: data inputs get no gradient; buffers are reused across steps") {
  simdnn::Rng rng(3);
  simdnn::Dense layer(5, 3, rng);
  Tensor x({4, 5});
  Tensor target({4, 3});
  Tape tape(1);
  Var in = tape.input(x);
  Var y = layer.forward(tape, in);
  Var loss = tape.mean_squared_error(y, target);
  tape.backward(loss);
  CHECK_THROWS(tape.grad(in));  // no dX for a data input
  CHECK(layer.weight.has_grad);
  const float* value_buffer = tape.value(y).data();

  tape.clear();
  Var y2 = layer.forward(tape, tape.input(x));
  CHECK(tape.value(y2).data() == value_buffer);  // same node slot, same storage
  CHECK_THROWS_AS(tape.backward(y2), std::invalid_argument);  // not a scalar
}

TEST_CASE("autograd: shape errors name both shapes") {
  Parameter x("x", Shape{2, 3});
  Parameter w("w", Shape{4, 5});
  Parameter b("b", Shape{5});
  Tape tape(1);
  try {
    tape.dense(tape.param(x), tape.param(w), tape.param(b));
    FAIL("expected a throw");
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    CHECK(msg.find("[2, 3]") != std::string::npos);
    CHECK(msg.find("[4, 5]") != std::string::npos);
  }
}

}  // namespace test_autograd
