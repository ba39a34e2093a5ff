// Every tape op's backward against central finite differences, plus the tape's bookkeeping:
// accumulation, no gradient for data inputs, and buffer reuse.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "simdnn/autograd.h"
#include "simdnn/layers.h"
#include "gradient_check.h"
#include "test_util.h"

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
