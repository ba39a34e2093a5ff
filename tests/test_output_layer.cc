// The fused output layer (logits GEMM + bias + softmax cross-entropy + dW, db, dH) against its
// scalar reference on every SIMD target, random shapes with ragged tails and odd strides, and
// its gradients against central differences of the reference loss.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "simdnn/output_layer.h"
#include "test_util.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_output_layer {

namespace {

struct Case {
  size_t rows, in, classes, ldh, lddh;
  std::vector<float> h, w, b;
  std::vector<int32_t> labels;
  Case(size_t r, size_t i, size_t c, size_t pad_h, size_t pad_dh, uint64_t seed)
      : rows(r), in(i), classes(c), ldh(i + pad_h), lddh(i + pad_dh) {
    h = simdnn::test::random_floats(std::max<size_t>(1, rows * ldh), seed, -2.0f, 2.0f);
    w = simdnn::test::random_floats(in * classes, seed + 1, -0.5f, 0.5f);
    b = simdnn::test::random_floats(classes, seed + 2, -1.0f, 1.0f);
    std::mt19937 rng(static_cast<uint32_t>(seed));
    labels.resize(rows);
    for (auto& l : labels) l = static_cast<int32_t>(rng() % classes);
  }
};

struct Out {
  std::vector<float> dw, db, dh, probs;
  double loss = 0.0;
};

template <class Fn>
Out run(const Case& k, float scale, Fn fn, const float* class_weights = nullptr) {
  Out o;
  o.dw.assign(k.in * k.classes, -7.0f);
  o.db.assign(k.classes, -7.0f);
  o.dh.assign(std::max<size_t>(1, k.rows * k.lddh), 123.0f);  // padding must survive
  o.probs.assign(std::max<size_t>(1, k.rows * k.classes), -7.0f);
  o.loss = fn(k.rows, k.in, k.classes, k.h.data(), k.ldh, k.w.data(), k.b.data(),
              k.labels.data(), scale, o.dw.data(), o.db.data(), o.dh.data(), k.lddh,
              o.probs.data(), class_weights);
  return o;
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    CAPTURE(i);
    CHECK(std::fabs(static_cast<double>(got[i]) - want[i]) <= tol * (1.0 + std::fabs(want[i])));
  }
}

}  // namespace

TEST_CASE("output_layer_train: matches the reference on every target, ragged shapes, odd strides") {
  simdnn::test::for_each_simd_target([](const std::string&) {
    uint64_t seed = 1;
    for (size_t rows : {1, 2, 3, 7, 8, 9, 16, 17, 33, 64}) {
      for (size_t in : {1, 3, 7, 8, 9, 16, 17, 31, 40, 128}) {
        for (size_t classes : {1, 2, 3, 5, 10, 17}) {
          CAPTURE(rows);
          CAPTURE(in);
          CAPTURE(classes);
          const Case k(rows, in, classes, seed % 3, (seed + 1) % 4, seed);
          ++seed;
          const float scale = 1.0f / static_cast<float>(rows);
          const Out fast = run(k, scale, simdnn::output_layer_train);
          const Out ref = run(k, scale, simdnn::output_layer_train_ref);
          CHECK(fast.loss == doctest::Approx(ref.loss).epsilon(1e-4));
          check_close(fast.dw, ref.dw, 1e-4);
          check_close(fast.db, ref.db, 1e-4);
          check_close(fast.dh, ref.dh, 1e-4);  // includes the untouched row padding
          check_close(fast.probs, ref.probs, 1e-5);
        }
      }
    }
  });
}

TEST_CASE("output_layer_train: MLP shapes (128 -> 10) at batch 32 and 256, dh optional") {
  simdnn::test::for_each_simd_target([](const std::string&) {
    for (size_t rows : {32, 256}) {
      const Case k(rows, 128, 10, 0, 0, rows);
      const float scale = 1.0f / static_cast<float>(rows);
      const Out fast = run(k, scale, simdnn::output_layer_train);
      const Out ref = run(k, scale, simdnn::output_layer_train_ref);
      CHECK(fast.loss == doctest::Approx(ref.loss).epsilon(1e-5));
      check_close(fast.dw, ref.dw, 1e-4);
      check_close(fast.db, ref.db, 1e-4);
      check_close(fast.dh, ref.dh, 1e-4);
      std::vector<float> dw(k.in * k.classes), db(k.classes);
      const double loss = simdnn::output_layer_train(rows, k.in, k.classes, k.h.data(), k.ldh,
                                                     k.w.data(), k.b.data(), k.labels.data(),
                                                     scale, dw.data(), db.data(), nullptr, 0);
      CHECK(loss == fast.loss);
      CHECK(dw == fast.dw);
      CHECK(db == fast.db);
    }
  });
}

TEST_CASE("output_layer_train: gradients match central differences of the loss") {
  simdnn::test::for_each_simd_target([](const std::string&) {
    Case k(5, 7, 4, 1, 2, 99);
    const float scale = 0.2f;
    const Out g = run(k, scale, simdnn::output_layer_train);
    // The reference loss in double, scaled as the gradients are.
    const auto loss_of = [&](const Case& c) {
      std::vector<float> dw(c.in * c.classes), db(c.classes);
      return scale * simdnn::output_layer_train_ref(c.rows, c.in, c.classes, c.h.data(), c.ldh,
                                                    c.w.data(), c.b.data(), c.labels.data(),
                                                    scale, dw.data(), db.data(), nullptr, 0);
    };
    const float eps = 1e-2f;
    const auto central = [&](float& x) {
      const float x0 = x;
      x = x0 + eps;
      const double up = loss_of(k);
      x = x0 - eps;
      const double down = loss_of(k);
      x = x0;
      return (up - down) / (static_cast<double>(x0 + eps) - static_cast<double>(x0 - eps));
    };
    for (size_t i = 0; i < k.w.size(); ++i) {
      CAPTURE(i);
      CHECK(g.dw[i] == doctest::Approx(central(k.w[i])).epsilon(2e-3).scale(1e-3));
    }
    for (size_t c = 0; c < k.classes; ++c) {
      CHECK(g.db[c] == doctest::Approx(central(k.b[c])).epsilon(2e-3).scale(1e-3));
    }
    for (size_t r = 0; r < k.rows; ++r) {
      for (size_t p = 0; p < k.in; ++p) {
        CAPTURE(r);
        CAPTURE(p);
        CHECK(g.dh[r * k.lddh + p] ==
              doctest::Approx(central(k.h[r * k.ldh + p])).epsilon(2e-3).scale(1e-3));
      }
    }
  });
}

TEST_CASE("output_layer_train: class weights scale each row's loss and gradients as the reference") {
  simdnn::test::for_each_simd_target([](const std::string&) {
    uint64_t seed = 500;
    for (size_t rows : {1, 7, 9, 32, 33}) {
      for (size_t classes : {3, 10}) {
        CAPTURE(rows);
        CAPTURE(classes);
        const Case k(rows, 37, classes, 1, 2, seed++);
        const std::vector<float> weights =
            simdnn::test::random_floats(classes, seed++, 0.1f, 3.0f);
        const float scale = 1.0f / static_cast<float>(rows);
        const Out fast = run(k, scale, simdnn::output_layer_train, weights.data());
        const Out ref = run(k, scale, simdnn::output_layer_train_ref, weights.data());
        const Out plain = run(k, scale, simdnn::output_layer_train_ref);
        CHECK(fast.loss == doctest::Approx(ref.loss).epsilon(1e-5));
        check_close(fast.dw, ref.dw, 1e-4);
        check_close(fast.db, ref.db, 1e-4);
        check_close(fast.dh, ref.dh, 1e-4);
        check_close(fast.probs, ref.probs, 1e-5);  // probabilities are not weighted
        // The reference itself: the sum over rows of the row's unweighted loss (the reference
        // on that row alone) times its class's weight.
        double want = 0;
        std::vector<float> dw1(k.in * classes), db1(classes);
        for (size_t r = 0; r < rows; ++r) {
          want += weights[k.labels[r]] *
                  simdnn::output_layer_train_ref(1, k.in, classes, k.h.data() + r * k.ldh, k.ldh,
                                                 k.w.data(), k.b.data(), &k.labels[r], scale,
                                                 dw1.data(), db1.data(), nullptr, 0);
        }
        CHECK(ref.loss == doctest::Approx(want).epsilon(1e-12));
        CHECK(ref.loss != doctest::Approx(plain.loss).epsilon(1e-3));
      }
    }
  });
}

TEST_CASE("output_layer_train: a NaN or infinite logit gives a NaN loss on every target") {
  simdnn::test::for_each_simd_target([](const std::string&) {
    for (float bad : {std::nanf(""), INFINITY}) {
      for (size_t row : {0, 5, 8}) {
        Case k(9, 16, 10, 0, 0, 5);
        k.h[row * k.ldh + 3] = bad;
        const Out o = run(k, 0.1f, simdnn::output_layer_train);
        CAPTURE(row);
        CHECK(std::isnan(o.loss));
      }
    }
  });
}

TEST_CASE("output_layer_train: bad arguments throw naming them") {
  std::vector<float> h(20, 0.0f), w(10, 0.0f), b(2, 0.0f), dw(10), db(2), dh(20);
  std::vector<int32_t> labels = {0, 2};  // 2 is out of range for 2 classes
  CHECK_THROWS_WITH_AS(simdnn::output_layer_train(2, 5, 2, h.data(), 5, w.data(), b.data(),
                                                  labels.data(), 0.5f, dw.data(), db.data(),
                                                  dh.data(), 5),
                       doctest::Contains("labels[1]"), std::invalid_argument);
  labels[1] = 1;
  CHECK_THROWS_WITH_AS(simdnn::output_layer_train(2, 5, 2, h.data(), 4, w.data(), b.data(),
                                                  labels.data(), 0.5f, dw.data(), db.data(),
                                                  dh.data(), 5),
                       doctest::Contains("ldh"), std::invalid_argument);
}

}  // namespace test_output_layer
