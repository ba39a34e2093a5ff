// Ranking class scores (the one top-k every tool uses) and evaluation on a labelled set.
#include <doctest/doctest.h>

#include <vector>

#include "simdnn/evaluation.h"
#include "simdnn/model.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_evaluation {

TEST_CASE("top_k_classes: best first, ties to the lower index, k capped, agrees with argmax") {
  std::vector<size_t> order;
  const std::vector<float> p = {0.1f, 0.4f, 0.05f, 0.4f, 0.05f};
  simdnn::top_k_classes(p, 3, order);
  CHECK(order == std::vector<size_t>{1, 3, 0});
  simdnn::top_k_classes(p, 10, order);
  CHECK(order == std::vector<size_t>{1, 3, 0, 2, 4});
  simdnn::top_k_classes(p, 1, order);
  CHECK(order == std::vector<size_t>{simdnn::argmax(p)});
  // Random rows: the first of top-k is always argmax, and the list is sorted.
  simdnn::Rng rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> row(1 + rng.below(20));
    for (float& v : row) v = static_cast<float>(rng.below(5)) * 0.25f;  // many ties
    const size_t k = 1 + rng.below(row.size());
    simdnn::top_k_classes(row, k, order);
    REQUIRE(order.size() == k);
    CHECK(order[0] == simdnn::argmax(row));
    for (size_t j = 1; j < k; ++j) {
      CHECK((row[order[j - 1]] > row[order[j]] ||
             (row[order[j - 1]] == row[order[j]] && order[j - 1] < order[j])));
    }
  }
}

TEST_CASE("evaluate: accuracy, loss and confusion on a model that knows the answer") {
  // 2 inputs -> 2 classes, identity weights and a softmax: class = the larger input.
  simdnn::ModelInfo info{.input_height = 1, .input_width = 2, .pixel_scale = 1.0f};
  simdnn::Rng rng(1);
  simdnn::Model model(info, {{2, simdnn::Activation::kSoftmax}}, rng);
  simdnn::Tensor& w = model.parameters()[0]->value;
  w[0] = 1;
  w[1] = 0;
  w[2] = 0;
  w[3] = 1;
  const std::vector<uint8_t> pixels = {9, 1, 1, 9, 5, 2, 2, 5};
  const std::vector<uint8_t> labels = {0, 1, 1, 1};  // the third is wrong
  const simdnn::Evaluation ev =
      simdnn::evaluate(model.network(), {pixels, labels, 2}, 2, 1.0f, 3, 1);
  CHECK(ev.count == 4);
  CHECK(ev.accuracy == doctest::Approx(0.75));
  CHECK(ev.confusion == std::vector<std::vector<size_t>>{{1, 0}, {1, 2}});
  CHECK(ev.loss > 0.0);
}

}  // namespace test_evaluation
