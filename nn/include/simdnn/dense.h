// The dense (fully connected) layer's computation, y = x·W + b: its one forward and its one
// backward, side by side, shared by the autograd tape and by tape-free inference.
#pragma once

#include <cstddef>

#include "simdnn/gathered_rows.h"
#include "simdnn/tensor.h"

namespace simdnn {

// A dense layer's input, a [rows, cols] matrix: either floats, or uint8 rows gathered by index
// from a table and scaled (a shuffled batch of images), which the GEMMs convert while they pack
// them, so the batch never exists as floats. Both give bit-identical results; which one is used
// is decided here and in dense_forward / dense_backward, nowhere else. Borrows what it views:
// the tensor, or the table and index of the rows, must outlive it.
class DenseInput {
 public:
  DenseInput(const Tensor& x) : floats_(&x) {}  // NOLINT: implicit on purpose
  // Throws as check_gathered_rows() does.
  DenseInput(const GatheredRows& x);  // NOLINT: implicit on purpose

  size_t rows() const;
  size_t cols() const;
  Shape shape() const { return Shape{rows(), cols()}; }
  // The float matrix, or null when the rows are gathered uint8.
  const Tensor* floats() const { return floats_; }
  const GatheredRows& gathered() const { return gathered_; }
  // Writes the float matrix into out (resized to [rows, cols]).
  void materialize(Tensor& out) const;

 private:
  const Tensor* floats_ = nullptr;
  GatheredRows gathered_;
};

// Forward: x [B, in] · w [in, out] + b [out] -> y [B, out]. y is resized (allocating only when
// it grows). Throws std::invalid_argument naming the shapes when they do not fit.
void dense_forward(const DenseInput& x, const Tensor& w, const Tensor& b, Tensor& y,
                   int threads);

// Where a gradient goes: `grad` is overwritten when beta is 0 and added to when beta is 1;
// a null grad skips that gradient.
struct GradSink {
  float* grad = nullptr;
  float beta = 0.0f;
};

// Backward of dense_forward, given dy [B, out] = d(loss)/dy:
//   dw [in, out] = xᵀ · dy,   db [out] = column sums of dy,   dx [B, in] = dy · wᵀ.
// Each is computed only when its sink has a buffer. Deterministic for every thread count (the
// GEMMs never split the batch dimension across threads).
void dense_backward(const DenseInput& x, const Tensor& w, const Tensor& dy, GradSink dw,
                    GradSink db, GradSink dx, int threads);

}  // namespace simdnn
