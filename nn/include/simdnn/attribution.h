// Input attributions: how much each input feature (pixel) contributed to one class's output,
// by gradient × input and by integrated gradients (Sundararajan et al., 2017). The gradients
// come from the training tape (<simdnn/autograd.h>) on the same dense and activation kernels as
// training, with the input recorded as differentiable_input(): training itself never computes
// a first-layer dX and is unchanged.
//
//   simdnn::Explainer explainer(model);
//   const simdnn::Attribution a = explainer.integrated_gradients(x, predicted_class, 32);
//   // a.values[i]: pixel i's share of a.output - a.baseline_output
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "simdnn/autograd.h"
#include "simdnn/model.h"
#include "simdnn/tensor.h"

namespace simdnn {

// Which output f of the model is explained.
enum class AttributionTarget {
  // The class's probability (the model's last output, after its softmax): attributions then
  // sum (integrated gradients) to a change of probability in [-1, 1], which a reader can
  // compare across images and classes, and zeroing a pixel moves exactly this quantity (the
  // deletion test). The default.
  kProbability,
  // The class's logit (the output before a final softmax; the same as kProbability for a
  // model without one): not saturated, so gradient × input is less flat on confident
  // predictions, but its scale differs from model to model.
  kLogit,
};

struct AttributionOptions {
  AttributionTarget target = AttributionTarget::kProbability;
  int threads = 1;  // for the kernels (0 = all cores); one explanation is small
};

// One input's attributions for one class. Completeness, for integrated gradients: the values
// sum to output - baseline_output up to the Riemann error of the path integral. On a 1-epoch
// Fashion-MNIST MLP (tests/test_attribution.cc, 200 images) that error is 0.5% on average at
// 32 steps but up to a few % where the probability jumps steeply along the path; at 256 steps
// at most 0.64%. predict --explain uses 128.
struct Attribution {
  size_t target_class = 0;
  std::vector<float> values;     // one per input feature, in the input's order
  double output = 0.0;           // f(x) for the class
  double baseline_output = 0.0;  // f(baseline) for the class
  // The sum of values, in double.
  double sum() const;
};

// Explains one model's outputs; reuses its tape and buffers, so after the first call with a
// given number of steps nothing is allocated but the returned values. Borrows the model (it
// must outlive the explainer and not change while in use; the model is never modified).
// Not thread-safe: one explainer per thread.
class Explainer {
 public:
  // Throws std::invalid_argument when the model has layers other than Dense and activations.
  explicit Explainer(const Model& model, AttributionOptions options = {});

  // Row r of the result is d f_class / dx at row r of x [rows, input_size] (each row its own
  // input): one batched forward and backward. Valid until the next call.
  const Tensor& input_gradient(const Tensor& x, size_t target_class);

  // values = x ⊙ ∂f/∂x; baseline_output is f(all zeros) (black), for reference only:
  // gradient × input does not add up to output - baseline_output.
  Attribution gradient_times_input(std::span<const float> x, size_t target_class);

  // Integrated gradients from `baseline` (empty: all zeros, a black image) to x, over the
  // straight path, by the midpoint rule with `steps` points: values_i = (x_i - x'_i) · mean_k
  // ∂f/∂x_i at x' + (k + ½)/steps · (x - x'), k = 0..steps-1. The midpoint rule's error falls
  // as 1/steps² (the trapezoid rule's as well, but needs steps + 1 points). The steps, x and
  // the baseline go through ONE batched forward and backward pass of steps + 2 rows.
  // Throws std::invalid_argument for steps == 0 or a baseline of the wrong size.
  Attribution integrated_gradients(std::span<const float> x, size_t target_class,
                                   size_t steps, std::span<const float> baseline = {});

  const Model& model() const { return model_; }

 private:
  void check(std::span<const float> x, size_t target_class, const char* what) const;
  // Records the network on x (each row an input) up to the explained output, runs backward
  // from sum_column(target_class), and returns that output's Var.
  Var record_and_differentiate(const Tensor& x, size_t target_class);

  const Model& model_;
  AttributionOptions options_;
  Tape tape_;
  Var input_;
  Tensor batch_;
};

// A cell of the input image and the sum of its attributions.
struct AttributionRegion {
  size_t top = 0, left = 0;       // pixel coordinates of the cell's top-left corner
  size_t height = 0, width = 0;   // cell size (smaller at the right and bottom edges)
  double sum = 0.0;
};

// Tiles a height x width map of attributions (row-major) into cell x cell squares from the
// top left and returns the `count` cells with the largest sums (the strongest evidence for the
// class), largest first; fewer when there are fewer cells. Throws std::invalid_argument when
// values.size() != width * height or cell == 0.
std::vector<AttributionRegion> strongest_regions(std::span<const float> values, size_t width,
                                                 size_t height, size_t cell, size_t count);

// One-off versions (an Explainer of their own).
Attribution gradient_times_input(const Model& model, std::span<const float> x,
                                 size_t target_class, AttributionOptions options = {});
Attribution integrated_gradients(const Model& model, std::span<const float> x,
                                 size_t target_class, size_t steps,
                                 std::span<const float> baseline = {},
                                 AttributionOptions options = {});

}  // namespace simdnn
