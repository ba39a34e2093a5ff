// A light reverse-mode autograd: a tape records the ops of one forward pass and runs their
// backward passes in reverse order.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <span>

#include "simdnn/activation.h"
#include "simdnn/dense.h"
#include "simdnn/parameter.h"
#include "simdnn/random.h"
#include "simdnn/tensor.h"

namespace simdnn {

// A handle to a value recorded on a Tape. Only valid until the tape's next clear().
struct Var {
  int32_t index = -1;
};

// Records ops on 2-D row-major tensors ([batch, features]) and computes gradients for the
// Parameters that took part. Gradients accumulate (a value used twice receives both
// contributions), and nothing is computed that nothing needs: inputs recorded with input()
// have no gradient, so training computes no dX for a first layer. An input recorded with
// differentiable_input() does get one (input attributions, <simdnn/attribution.h>).
//
// The tape owns every intermediate value and gradient buffer. clear() forgets the recorded ops
// but keeps the buffers, so replaying the same graph for the next batch allocates nothing
// (buffers grow only when a batch is larger than any seen before).
//
// Not thread-safe; the kernels it calls use `threads` OpenMP threads (0 = OpenMP default).
class Tape {
 public:
  explicit Tape(int threads = 0) : threads_(threads) {}

  // Leaves. What they view is borrowed: it must outlive the tape's use of it.
  // Data: no gradient. A Tensor, or uint8 rows gathered from a table (a batch of images), which
  // a dense() converts inside its GEMMs (see DenseInput); other ops, and value(), see the
  // converted floats (made on first use).
  Var input(const DenseInput& x);
  Var param(Parameter& p);      // gradient accumulates into p.grad; none when !p.trainable
  // Float data whose gradient is wanted: after backward(), grad(v) is d(loss)/dx. Only the
  // ops that lead from it to the loss pay for it (a first dense() then computes its dX).
  Var differentiable_input(const Tensor& x);

  // x [B, in] · w [in, out] + b [out] -> [B, out] (dense_forward / dense_backward).
  Var dense(Var x, Var w, Var b);
  // f(x) elementwise, or row-wise for softmax (activation_forward / activation_backward).
  Var activation(Var x, Activation a);
  Var relu(Var x) { return activation(x, Activation::kRelu); }
  Var sigmoid(Var x) { return activation(x, Activation::kSigmoid); }
  Var tanh(Var x) { return activation(x, Activation::kTanh); }
  Var softmax(Var x) { return activation(x, Activation::kSoftmax); }
  // Mean over the batch of -log softmax(logits)[label]: a scalar (shape [1]). labels has one
  // entry per row of logits, each in [0, cols). The span is borrowed until backward().
  Var softmax_cross_entropy(Var logits, std::span<const int32_t> labels);
  // Weighted (Keras class_weight): (1/B) * sum over rows of class_weights[label] * -log
  // softmax(logits)[label]. class_weights has one entry per column and is borrowed until
  // backward(); empty means every weight 1 (the unweighted op above, same bits).
  Var softmax_cross_entropy(Var logits, std::span<const int32_t> labels,
                            std::span<const float> class_weights);
  // A classifier's output layer fused with its loss: the same value as
  // softmax_cross_entropy(dense(x, w, b), labels, class_weights), in one op
  // (output_layer_train, <simdnn/output_layer.h>). With few classes the separate dense and
  // loss ops are narrow GEMMs that fill neither a register tile nor a vector; this reads each
  // block of x once for the logits, the loss and all three gradients. For training: the
  // gradients of x, w and b are computed here, eagerly (those that require one), and
  // backward() only hands them on, scaled by the loss's incoming gradient. So the parameters
  // are untouched until backward(), and a non-finite loss can be refused first. The logits
  // are not kept; probabilities(v) gives softmax(logits). x may be a gathered data leaf
  // (converted to floats first). Shapes as dense() and softmax_cross_entropy() require.
  Var dense_softmax_cross_entropy(Var x, Var w, Var b, std::span<const int32_t> labels,
                                  std::span<const float> class_weights = {});
  // Inverted dropout (<simdnn/regularization.h>): x * mask, the mask drawn from rng with
  // dropout_mask(rate). For training only; inference skips it.
  Var dropout(Var x, float rate, Rng& rng);
  // Mean over all elements of (pred - target)^2: a scalar. target is borrowed.
  Var mean_squared_error(Var pred, const Tensor& target);
  // Mean of all elements: a scalar.
  Var mean(Var x);
  // Sum over the rows of x [rows, cols] of column `column`: a scalar. With rows that do not
  // interact (every op here but the batch-mean losses keeps rows apart), backward() from it
  // gives each row the gradient of its own value in that column: one pass differentiates one
  // output of many inputs. Throws std::invalid_argument when column >= cols.
  Var sum_column(Var x, size_t column);

  const Tensor& value(Var v) const;
  // softmax(logits) [rows, classes] of a softmax_cross_entropy() or
  // dense_softmax_cross_entropy() op. Throws std::invalid_argument for any other op.
  const Tensor& probabilities(Var loss) const;
  // Gradient of the last backward() with respect to an op's value or a differentiable_input()
  // (not for other leaves; for parameters read Parameter::grad). Throws when nothing flowed
  // into it.
  const Tensor& grad(Var v) const;

  // Seeds d(loss)/d(loss) = seed (1: the loss's own gradients; another value: those of
  // seed * loss, e.g. a data-parallel piece's share of its batch) and runs every recorded op's
  // backward in reverse. loss must be a scalar recorded on this tape.
  void backward(Var loss, float seed = 1.0f);

  // Forgets the recorded ops; keeps the buffers for the next forward pass.
  void clear();
  size_t size() const { return count_; }

 private:
  enum class Op : uint8_t {
    kInput, kParam, kDense, kActivation, kSoftmaxCrossEntropy, kMse, kMean, kSumColumn,
    kDropout, kDenseSoftmaxCrossEntropy
  };
  struct Node {
    Op op = Op::kInput;
    int32_t in[3] = {-1, -1, -1};
    bool requires_grad = false;
    bool has_grad = false;
    std::optional<DenseInput> input;  // kInput: the data
    bool materialized = false;        // kInput of gathered rows: value holds the floats
    Activation activation = Activation::kLinear;  // kActivation
    Parameter* parameter = nullptr;   // kParam
    const Tensor* target = nullptr;   // kMse
    size_t column = 0;                // kSumColumn
    std::span<const int32_t> labels;  // kSoftmaxCrossEntropy, kDenseSoftmaxCrossEntropy
    std::span<const float> class_weights;  // the same two: empty = unweighted
    Tensor value;                     // op output
    Tensor grad;                      // d(loss)/d(value)
    Tensor aux;                       // kSoftmaxCrossEntropy, kDenseSoftmaxCrossEntropy:
                                      // probabilities; kDropout: mask
    // kDenseSoftmaxCrossEntropy: d(value)/d(x, w, b), computed with the forward pass (dx only
    // when x requires a gradient).
    Tensor dx, dw, db;
  };

  Node& push(Op op, std::initializer_list<Var> inputs);
  Node& node(Var v);
  const Node& node(Var v) const;
  const Tensor& value_of(int32_t index) const;
  Shape shape_of(int32_t index) const;
  // A dense() operand: the input view itself for a data leaf, else the op's float value.
  DenseInput dense_input_of(int32_t index) const;
  // The buffer d(loss)/d(input) accumulates into, and the GEMM/kernel beta that says whether
  // to overwrite (0) or add (1).
  struct GradTarget {
    Tensor* grad;
    float beta;
  };
  GradTarget grad_target(int32_t index);
  // Adds `contribution` (already computed in scratch_) into input `index`'s gradient.
  void accumulate_from_scratch(int32_t index);
  void backward_node(Node& n);

  int threads_;
  std::deque<Node> nodes_;  // deque: references to values stay valid while ops are pushed
  size_t count_ = 0;
  Tensor scratch_;
};

}  // namespace simdnn
