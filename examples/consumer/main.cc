// Trains a small MLP on two Gaussian blobs with simdnn's public API and checks it learned.
#include <cmath>
#include <cstdio>
#include <vector>

#include <simdnn/model.h>
#include <simdnn/optimizer.h>
#include <simdnn/training.h>

int main() {
  // 256 points in 2-D: class 0 around (-1, -1), class 1 around (+1, +1).
  const size_t n = 256;
  simdnn::Rng rng(42);
  simdnn::Tensor x({n, 2});
  std::vector<int32_t> labels(n);
  for (size_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int32_t>(i % 2);
    const float centre = labels[i] ? 1.0f : -1.0f;
    for (size_t j = 0; j < 2; ++j) x[i * 2 + j] = centre + rng.uniform(-0.8f, 0.8f);
  }

  // 2 inputs -> Dense 16 ReLU -> Dense 2 softmax.
  simdnn::ModelInfo info{.input_height = 1, .input_width = 2, .class_names = {"left", "right"}};
  simdnn::Model model = simdnn::Model::mlp(info, {16}, simdnn::Activation::kRelu, 2, rng);
  simdnn::Adam adam({.learning_rate = 0.01f});
  simdnn::Tape tape;

  double first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    last = simdnn::train_step(model.network(), tape, adam, x, labels).loss;
    if (step == 0) first = last;
  }

  std::vector<int32_t> predicted;
  simdnn::argmax_rows(model.predict(x), predicted);
  size_t correct = 0;
  for (size_t i = 0; i < n; ++i) correct += predicted[i] == labels[i];
  std::printf("loss %.4f -> %.4f, accuracy %zu/%zu\n", first, last, correct, n);
  if (!std::isfinite(last) || !(last < 0.5 * first) || correct < n * 95 / 100) {
    std::fprintf(stderr, "consumer: training did not converge\n");
    return 1;
  }
  return 0;
}
