// A trainable tensor and its gradient.
#pragma once

#include <cstddef>
#include <string>

#include "simdnn/tensor.h"

namespace simdnn {

// A trainable tensor, its gradient (same shape) and whether the gradient holds anything yet.
// Backward passes accumulate into `grad`; zero_grad() only drops the flag, so the first
// contribution after it overwrites instead of adding (no memset pass per step).
struct Parameter {
  Parameter() = default;
  Parameter(std::string name, const Shape& shape)
      : name(std::move(name)), value(shape), grad(shape) {}

  std::string name;
  Tensor value;
  Tensor grad;
  bool has_grad = false;
  // False freezes the parameter (fine-tuning's --freeze): the tape computes no gradient for it
  // and the optimizers leave its value, and their state for it, untouched.
  bool trainable = true;

  void zero_grad() { has_grad = false; }
  // The gradient as the optimizer should see it: zeros when nothing contributed.
  const Tensor& gradient() {
    if (!has_grad) {
      grad.fill(0.0f);
      has_grad = true;
    }
    return grad;
  }
};

// ---- Tensors taken end to end ----------------------------------------------------------------
// Optimizers update a model's parameters as one long vector, and data-parallel training cuts
// that vector into slices (<simdnn/data_parallel.h>); both walk it with these.

// Where a cut of the end-to-end vector may fall without changing any result: at a multiple of
// 64 elements from the start of a tensor, or at its end. SIMD kernels group a tensor's
// elements into vectors counted from its start (64 is a multiple of every vector width), and
// their scalar tail, which may round differently (g++ fuses AdamW's decay into an FMA in the
// vector loop, not in the tail), stays at the tensor's end: a pass over pieces cut there
// computes every element exactly as one pass over the whole tensor.
inline constexpr size_t kTensorCutStep = 64;

// Calls f(i, begin, count, offset) for the elements [lo, hi) of `tensors` taken end to end
// (tensor i has size_of(i) elements, i < tensors), tensor by tensor, in order: elements
// [begin, begin + count) of tensor i, which are elements [lo + offset, lo + offset + count) of
// the whole. Tensors with no element in [lo, hi) are not visited.
template <class SizeOf, class F>
void for_each_segment(size_t tensors, const SizeOf& size_of, size_t lo, size_t hi, const F& f) {
  size_t base = 0;
  for (size_t i = 0; i < tensors && base < hi; ++i) {
    const size_t n = size_of(i);
    const size_t b = lo > base ? lo : base, e = hi < base + n ? hi : base + n;
    if (b < e) f(i, b - base, e - b, b - lo);
    base += n;
  }
}

// `at` moved down to the nearest allowed cut (kTensorCutStep) of the tensors taken end to end;
// at or past their end: their total size.
template <class SizeOf>
size_t snap_to_cut(size_t tensors, const SizeOf& size_of, size_t at) {
  size_t base = 0;
  for (size_t i = 0; i < tensors; ++i) {
    const size_t n = size_of(i);
    if (at < base + n) return base + (at - base) / kTensorCutStep * kTensorCutStep;
    base += n;
  }
  return base;
}

}  // namespace simdnn
