// A light reverse-mode autograd: a tape records the ops of one forward pass and runs their
// backward passes in reverse order.
#pragma once

#include <cstdint>
#include <span>
#include <deque>
#include <vector>

#include "simdnn/gathered_rows.h"
#include "simdnn/parameter.h"
#include "simdnn/tensor.h"

namespace simdnn {

// A handle to a value recorded on a Tape. Only valid until the tape's next clear().
struct Var {
  int32_t index = -1;
};

// Records ops on 2-D row-major tensors ([batch, features]) and computes gradients for the
// Parameters that took part. Gradients accumulate (a value used twice receives both
// contributions), and nothing is computed that no Parameter needs: inputs recorded with
// input() have no gradient, so no dX is computed for a first layer.
//
// The tape owns every intermediate value and gradient buffer. clear() forgets the recorded ops
// but keeps the buffers, so replaying the same graph for the next batch allocates nothing
// (buffers grow only when a batch is larger than any seen before).
//
// Not thread-safe; the kernels it calls use `threads` OpenMP threads (0 = OpenMP default).
class Tape {
 public:
  explicit Tape(int threads = 0) : threads_(threads) {}

  // Leaves. The tensors are borrowed: they must outlive the tape's use of them.
  Var input(const Tensor& x);   // data: no gradient
  // Data given as uint8 rows gathered from a table (a batch of images): no gradient, and a
  // dense() on it converts the bytes inside its GEMM instead of first writing the batch out
  // as floats. Other ops, and value(), see the converted floats (made on first use).
  // Bit-identical to input() on the materialized batch.
  Var input(const GatheredRows& x);
  Var param(Parameter& p);      // gradient accumulates into p.grad

  // x [B, in] · w [in, out] + b [out] -> [B, out].
  Var dense(Var x, Var w, Var b);
  Var relu(Var x);
  Var sigmoid(Var x);
  Var tanh(Var x);
  // Row-wise softmax.
  Var softmax(Var x);
  // Mean over the batch of -log softmax(logits)[label]: a scalar (shape [1]). labels has one
  // entry per row of logits, each in [0, cols). The span is borrowed until backward().
  Var softmax_cross_entropy(Var logits, std::span<const int32_t> labels);
  // Mean over all elements of (pred - target)^2: a scalar. target is borrowed.
  Var mean_squared_error(Var pred, const Tensor& target);
  // Mean of all elements: a scalar.
  Var mean(Var x);

  const Tensor& value(Var v) const;
  // Gradient of the last backward() with respect to an op's value (not for leaves; for
  // parameters read Parameter::grad). Throws when nothing flowed into it.
  const Tensor& grad(Var v) const;

  // Seeds d(loss)/d(loss) = 1 and runs every recorded op's backward in reverse. loss must be a
  // scalar recorded on this tape.
  void backward(Var loss);

  // Forgets the recorded ops; keeps the buffers for the next forward pass.
  void clear();
  size_t size() const { return count_; }

 private:
  enum class Op : uint8_t {
    kInput, kInputGathered, kParam, kDense, kRelu, kSigmoid, kTanh, kSoftmax, kSoftmaxCrossEntropy, kMse, kMean
  };
  struct Node {
    Op op = Op::kInput;
    int32_t in[3] = {-1, -1, -1};
    bool requires_grad = false;
    bool has_grad = false;
    const Tensor* leaf = nullptr;     // kInput: the data
    GatheredRows gathered;            // kInputGathered: the data
    bool materialized = false;        // kInputGathered: value holds the converted floats
    Parameter* parameter = nullptr;   // kParam
    const Tensor* target = nullptr;   // kMse
    std::span<const int32_t> labels;  // kSoftmaxCrossEntropy
    Tensor value;                     // op output
    Tensor grad;                      // d(loss)/d(value)
    Tensor aux;                       // kSoftmaxCrossEntropy: probabilities
  };

  Node& push(Op op, std::initializer_list<Var> inputs);
  Node& node(Var v);
  const Node& node(Var v) const;
  const Tensor& value_of(int32_t index) const;
  Shape shape_of(int32_t index) const;
  // The buffer d(loss)/d(input) accumulates into, and the GEMM/kernel beta that says whether
  // to overwrite (0) or add (1).
  struct GradTarget {
    Tensor* grad;
    float beta;
  };
  GradTarget grad_target(int32_t index);
  // Adds `contribution` (already computed in scratch_) into input `index`'s gradient.
  void accumulate_from_scratch(int32_t index);
  Var unary(Op op, Var x);
  void backward_node(Node& n);

  int threads_;
  std::deque<Node> nodes_;  // deque: references to values stay valid while ops are pushed
  size_t count_ = 0;
  Tensor scratch_;
};

}  // namespace simdnn
