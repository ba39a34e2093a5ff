// Trains a small classifier with simdnn's public API, as an embedder would, and checks it
// learned: fit() for the loop, then tape-free inference on the trained model.
#include <simdnn/evaluation.h>
#include <simdnn/fit.h>
#include <simdnn/model.h>
#include <simdnn/optimizer.h>

#include <cstdint>
#include <cstdio>
#include <vector>

int main() {
  // 512 tiny 2x2 "images": class 0 lights the left column, class 1 the right one.
  const size_t n = 512;
  simdnn::Rng rng(42);
  std::vector<uint8_t> pixels(n * 4), labels(n);
  for (size_t i = 0; i < n; ++i) {
    labels[i] = static_cast<uint8_t>(i % 2);
    for (size_t p = 0; p < 4; ++p) {
      const bool lit = (p % 2) == labels[i];
      pixels[i * 4 + p] = static_cast<uint8_t>(lit ? 160 + rng.below(96) : rng.below(100));
    }
  }

  // 4 inputs -> Dense 16 ReLU -> Dense 2 softmax, trained for 5 epochs of batch 32.
  simdnn::ModelInfo info{.input_height = 2, .input_width = 2, .class_names = {"left", "right"}};
  simdnn::Model model = simdnn::Model::mlp(info, {16}, simdnn::Activation::kRelu, 2, rng);
  simdnn::Adam adam({.learning_rate = 0.01f});
  const simdnn::LabelledSamples train{pixels, labels, info.input_size()};
  const simdnn::History history =
      simdnn::fit(model, adam, rng, train.slice(0, 448), train.slice(448, 64),
                  {.epochs = 5, .batch = 32, .threads = 1});

  const simdnn::EpochResult& first = history.epochs.front();
  const simdnn::EpochResult& last = history.epochs.back();
  std::printf("loss %.4f -> %.4f, validation accuracy %.3f\n", first.loss, last.loss,
              last.validation->accuracy);
  if (!(last.loss < 0.5 * first.loss) || last.validation->accuracy < 0.95) {
    std::fprintf(stderr, "consumer: training did not converge\n");
    return 1;
  }
  return 0;
}
