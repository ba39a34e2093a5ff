// The optimizer classes: bias correction, state handling, and Keras semantics.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "simdnn/optimizer.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_optimizer {

using simdnn::Parameter;
using simdnn::Shape;

TEST_CASE("Adam: three steps match the textbook formula in double") {
  Parameter p("w", Shape{3});
  p.value[0] = 0.5f;
  p.value[1] = -1.0f;
  p.value[2] = 2.0f;
  simdnn::Adam adam;  // Keras defaults
  std::vector<Parameter*> params = {&p};
  double w[3] = {0.5, -1.0, 2.0}, m[3] = {}, v[3] = {};
  const double grads[3][3] = {{0.1, -0.2, 0.0}, {0.3, 0.1, -0.05}, {-0.2, 0.4, 1e-3}};
  for (int t = 1; t <= 3; ++t) {
    for (int i = 0; i < 3; ++i) p.grad[i] = static_cast<float>(grads[t - 1][i]);
    p.has_grad = true;
    adam.step(params);
    for (int i = 0; i < 3; ++i) {
      const double g = static_cast<float>(grads[t - 1][i]);
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      const double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.999, t));
      w[i] -= 1e-3 * mh / (std::sqrt(vh) + 1e-7);
      CHECK(p.value[i] == doctest::Approx(w[i]).epsilon(1e-6));
    }
  }
  CHECK(adam.steps() == 3);
  // First step moves each weight by lr * sign(g) (g != 0): bias correction makes m̂/√v̂ = ±1.
  Parameter q("q", Shape{1});
  simdnn::Adam fresh;
  std::vector<Parameter*> qp = {&q};
  q.grad[0] = -7.0f;
  q.has_grad = true;
  fresh.step(qp);
  CHECK(q.value[0] == doctest::Approx(1e-3).epsilon(1e-5));
}

TEST_CASE("AdamW decays weights decoupled from the gradient; SGD momentum is Keras'") {
  Parameter p("w", Shape{1});
  p.value[0] = 2.0f;
  auto adamw = simdnn::make_adamw({.learning_rate = 0.1f, .weight_decay = 0.5f});
  std::vector<Parameter*> params = {&p};
  p.zero_grad();  // zero gradient: only the decay acts
  adamw->step(params);
  CHECK(p.value[0] == doctest::Approx(2.0 * (1 - 0.1 * 0.5)));
  CHECK(adamw->name() == "adamw");

  Parameter s("s", Shape{1});
  s.value[0] = 1.0f;
  simdnn::Sgd sgd({.learning_rate = 0.1f, .momentum = 0.9f});
  std::vector<Parameter*> sp = {&s};
  s.grad[0] = 1.0f;
  s.has_grad = true;
  sgd.step(sp);  // v = -0.1, w = 0.9
  CHECK(s.value[0] == doctest::Approx(0.9));
  sgd.step(sp);  // v = 0.9 * -0.1 - 0.1 = -0.19, w = 0.71
  CHECK(s.value[0] == doctest::Approx(0.71));
}

TEST_CASE("optimizer state follows the parameters it was created for") {
  Parameter a("a", Shape{2, 2}), b("b", Shape{3});
  simdnn::Adam adam;
  std::vector<Parameter*> params = {&a, &b};
  auto state = adam.state(params);
  REQUIRE(state.size() == 4);
  CHECK(state[0].first == "a.m");
  CHECK(state[3].first == "b.v");
  Parameter c("c", Shape{5});
  std::vector<Parameter*> other = {&a, &c};
  CHECK_THROWS_AS(adam.step(other), std::invalid_argument);
}

TEST_CASE("optimizers: threaded updates of large parameters equal the single-threaded ones") {
  // Large enough (> 64K elements in all) for the update passes to use several threads.
  auto run = [](int threads, bool adam) {
    Parameter a("a", Shape{300, 400}), b("b", Shape{1000});
    for (size_t i = 0; i < a.value.size(); ++i) a.value[i] = std::sin(static_cast<float>(i));
    std::vector<Parameter*> params = {&a, &b};
    std::unique_ptr<simdnn::Optimizer> opt;
    if (adam) {
      opt = std::make_unique<simdnn::Adam>();
    } else {
      opt = std::make_unique<simdnn::Sgd>(simdnn::SgdOptions{.learning_rate = 0.1f, .momentum = 0.9f});
    }
    opt->set_threads(threads);
    for (int step = 0; step < 3; ++step) {
      for (size_t i = 0; i < a.value.size(); ++i) a.grad[i] = std::cos(static_cast<float>(i + step));
      for (size_t i = 0; i < b.value.size(); ++i) b.grad[i] = 0.001f * static_cast<float>(i);
      a.has_grad = b.has_grad = true;
      opt->step(params);
    }
    std::vector<float> out(a.value.data(), a.value.data() + a.value.size());
    out.insert(out.end(), b.value.data(), b.value.data() + b.value.size());
    return out;
  };
  for (bool adam : {true, false}) {
    CAPTURE(adam);
    const std::vector<float> one = run(1, adam);
    CHECK(one == run(2, adam));
    CHECK(one == run(3, adam));
  }
}

TEST_CASE("optimizers: AdamW on tensors of unaligned sizes gives the same bits on 1 2 and 3 threads") {
  // 333 + 69,900 + 37 elements (> 64K: the update is split between threads). An equal split
  // of the parameters taken end to end cuts b at 34,803 (2 threads) and 23,091 (3 threads),
  // off the vectors' grid: an element there moves into a scalar tail, which rounds AdamW's
  // decay differently. The split must cut per tensor at 64-element steps instead.
  auto run = [](int threads, bool sgd) {
    Parameter a("a", Shape{333}), b("b", Shape{300, 233}), c("c", Shape{37});
    std::vector<Parameter*> params = {&a, &b, &c};
    size_t k = 0;
    for (Parameter* p : params) {
      for (size_t i = 0; i < p->value.size(); ++i, ++k) p->value[i] = std::sin(0.37f * static_cast<float>(k));
    }
    std::unique_ptr<simdnn::Optimizer> opt =
        sgd ? std::unique_ptr<simdnn::Optimizer>(std::make_unique<simdnn::Sgd>(
                  simdnn::SgdOptions{.learning_rate = 0.1f, .momentum = 0.9f}))
            : simdnn::make_adamw({.learning_rate = 0.01f, .weight_decay = 0.1f});
    opt->set_threads(threads);
    for (int step = 0; step < 3; ++step) {
      k = 0;
      for (Parameter* p : params) {
        for (size_t i = 0; i < p->grad.size(); ++i, ++k) {
          p->grad[i] = std::cos(1.3f * static_cast<float>(k + static_cast<size_t>(step)));
        }
        p->has_grad = true;
      }
      opt->step(params);
    }
    std::vector<uint32_t> bits;
    for (Parameter* p : params) {
      for (size_t i = 0; i < p->value.size(); ++i) {
        uint32_t u = 0;
        std::memcpy(&u, p->value.data() + i, sizeof u);
        bits.push_back(u);
      }
    }
    return bits;
  };
  for (bool sgd : {false, true}) {
    CAPTURE(sgd);
    const std::vector<uint32_t> one = run(1, sgd);
    CHECK(one == run(2, sgd));
    CHECK(one == run(3, sgd));
  }
}

TEST_CASE("optimizers: slices stepped on separate copies give the whole step's values and state") {
  // What data-parallel training does (docs/distributed.md): N copies in the same state, each
  // steps its slice of the parameters taken end to end, and the slices are put together. The
  // cuts fall inside tensors at 64-element steps from their start, and at a tensor's end;
  // the tensors' sizes leave scalar tails.
  constexpr size_t kTotal = 350 + 3 + 201;
  const std::vector<size_t> cuts = {0, 128, 350, 353 + 64, kTotal};
  auto make = [](int kind) -> std::unique_ptr<simdnn::Optimizer> {
    if (kind == 0) return std::make_unique<simdnn::Adam>();
    if (kind == 1) return simdnn::make_adamw({.learning_rate = 0.01f, .weight_decay = 0.1f});
    return std::make_unique<simdnn::Sgd>(
        simdnn::SgdOptions{.learning_rate = 0.1f, .momentum = 0.9f});
  };
  struct Copy {
    Parameter a{"a", Shape{5, 70}}, b{"b", Shape{3}}, c{"c", Shape{201}};
    std::vector<Parameter*> params() { return {&a, &b, &c}; }
    std::unique_ptr<simdnn::Optimizer> opt;
  };
  auto flat = [](std::vector<Parameter*> params, bool grad) {
    std::vector<float> out;
    for (Parameter* p : params) {
      const simdnn::Tensor& t = grad ? p->grad : p->value;
      out.insert(out.end(), t.data(), t.data() + t.size());
    }
    return out;
  };
  auto set = [](std::vector<Parameter*> params, const std::vector<float>& v, bool grad) {
    size_t at = 0;
    for (Parameter* p : params) {
      simdnn::Tensor& t = grad ? p->grad : p->value;
      for (size_t i = 0; i < t.size(); ++i) t[i] = v[at++];
      p->has_grad = true;
    }
  };
  for (int kind = 0; kind < 3; ++kind) {
    CAPTURE(kind);
    Copy whole;
    whole.opt = make(kind);
    std::vector<Copy> copies(cuts.size() - 1);
    for (Copy& c : copies) c.opt = make(kind);
    std::vector<float> w(kTotal);
    for (size_t i = 0; i < kTotal; ++i) w[i] = std::sin(static_cast<float>(i));
    set(whole.params(), w, false);
    for (Copy& c : copies) set(c.params(), w, false);
    for (int step = 0; step < 3; ++step) {
      std::vector<float> g(kTotal);
      for (size_t i = 0; i < kTotal; ++i) g[i] = std::cos(static_cast<float>(3 * i + step));
      set(whole.params(), g, true);
      whole.opt->step(whole.params());
      std::vector<float> merged(kTotal);
      for (size_t k = 0; k < copies.size(); ++k) {
        set(copies[k].params(), g, true);
        copies[k].opt->step_slice(copies[k].params(), cuts[k], cuts[k + 1]);
        const std::vector<float> v = flat(copies[k].params(), false);
        std::copy(v.begin() + cuts[k], v.begin() + cuts[k + 1], merged.begin() + cuts[k]);
      }
      for (Copy& c : copies) set(c.params(), merged, false);
      CHECK(merged == flat(whole.params(), false));
    }
    CHECK(whole.opt->steps() == 3);
    // Each copy's state is the whole run's on its own slice.
    const auto expected = whole.opt->state(whole.params());
    for (size_t k = 0; k < copies.size(); ++k) {
      CHECK(copies[k].opt->steps() == 3);
      const auto state = copies[k].opt->state(copies[k].params());
      REQUIRE(state.size() == expected.size());
      const size_t slots = state.size() / 3;
      for (size_t s = 0; s < slots; ++s) {
        std::vector<float> mine, theirs;
        for (size_t i = 0; i < 3; ++i) {
          const simdnn::Tensor& x = *state[i * slots + s].second;
          const simdnn::Tensor& y = *expected[i * slots + s].second;
          mine.insert(mine.end(), x.data(), x.data() + x.size());
          theirs.insert(theirs.end(), y.data(), y.data() + y.size());
        }
        CHECK(std::equal(mine.begin() + cuts[k], mine.begin() + cuts[k + 1],
                         theirs.begin() + cuts[k]));
      }
    }
    CHECK_THROWS_AS(whole.opt->step_slice(whole.params(), 10, kTotal + 1),
                    std::invalid_argument);
    CHECK_THROWS_AS(whole.opt->step_slice(whole.params(), 10, 9), std::invalid_argument);
  }
}

}  // namespace test_optimizer
