#include "simdnn/autograd.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>

#include "simdnn/output_layer.h"
#include "simdnn/regularization.h"
#include "simdnn/softmax_kernels.h"
#include "simdnn/vector_kernels.h"

namespace simdnn {
namespace {

void require_matrix(const Shape& s, const char* op, const char* what) {
  if (s.rank() != 2) {
    throw std::invalid_argument(std::string(op) + ": " + what + " must be a matrix [rows, cols], got " +
                                s.to_string());
  }
}
void require_matrix(const Tensor& t, const char* op, const char* what) {
  require_matrix(t.shape(), op, what);
}

}  // namespace

Tape::Node& Tape::push(Op op, std::initializer_list<Var> inputs) {
  for (Var v : inputs) {
    if (v.index < 0 || static_cast<size_t>(v.index) >= count_) {
      throw std::invalid_argument("Tape: a Var from another tape or from before clear()");
    }
  }
  if (count_ == nodes_.size()) nodes_.emplace_back();
  Node& n = nodes_[count_++];
  n.op = op;
  n.requires_grad = false;
  n.has_grad = false;
  n.input.reset();
  n.materialized = false;
  n.parameter = nullptr;
  n.target = nullptr;
  n.column = 0;
  n.labels = {};
  n.class_weights = {};
  int k = 0;
  for (int& i : n.in) i = -1;
  for (Var v : inputs) {
    n.in[k++] = v.index;
    n.requires_grad = n.requires_grad || nodes_[v.index].requires_grad;
  }
  return n;
}

Tape::Node& Tape::node(Var v) {
  if (v.index < 0 || static_cast<size_t>(v.index) >= count_) {
    throw std::invalid_argument("Tape: Var is not recorded on this tape");
  }
  return nodes_[v.index];
}

const Tape::Node& Tape::node(Var v) const { return const_cast<Tape*>(this)->node(v); }

const Tensor& Tape::value_of(int32_t index) const {
  const Node& n = nodes_[index];
  if (n.op == Op::kInput) {
    if (const Tensor* floats = n.input->floats()) return *floats;
    // Gathered rows are converted only when something other than dense() needs the floats;
    // the buffer is the tape's own (a cache: logically the node does not change).
    Node& cached = const_cast<Node&>(n);
    if (!cached.materialized) {
      n.input->materialize(cached.value);
      cached.materialized = true;
    }
    return cached.value;
  }
  if (n.op == Op::kParam) return n.parameter->value;
  return n.value;
}

Shape Tape::shape_of(int32_t index) const {
  const Node& n = nodes_[index];
  if (n.op == Op::kInput) return n.input->floats() ? n.input->floats()->shape() : n.input->shape();
  return value_of(index).shape();
}

DenseInput Tape::dense_input_of(int32_t index) const {
  const Node& n = nodes_[index];
  if (n.op == Op::kInput) return *n.input;
  return value_of(index);
}

const Tensor& Tape::value(Var v) const {
  node(v);  // validates the handle
  return value_of(v.index);
}

const Tensor& Tape::grad(Var v) const {
  const Node& n = node(v);
  if ((n.op == Op::kInput && !n.requires_grad) || n.op == Op::kParam || !n.has_grad) {
    throw std::logic_error("Tape::grad: no gradient flowed into this value");
  }
  return n.grad;
}

Var Tape::input(const DenseInput& x) {
  Node& n = push(Op::kInput, {});
  n.input = x;
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::differentiable_input(const Tensor& x) {
  require_matrix(x, "differentiable_input", "x");
  Node& n = push(Op::kInput, {});
  n.input = DenseInput(x);
  n.requires_grad = true;
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::param(Parameter& p) {
  Node& n = push(Op::kParam, {});
  n.parameter = &p;
  n.requires_grad = p.trainable;  // a frozen parameter: nothing computes its gradient
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::dense(Var x, Var w, Var b) {
  node(x);  // validates the handles
  const DenseInput xin = dense_input_of(x.index);
  const Tensor& wv = value(w);
  const Tensor& bv = value(b);
  Node& n = push(Op::kDense, {x, w, b});
  dense_forward(xin, wv, bv, n.value, threads_);
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::activation(Var x, Activation a) {
  const Tensor& xv = value(x);
  Node& n = push(Op::kActivation, {x});
  n.activation = a;
  activation_forward(a, xv, n.value);
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::softmax_cross_entropy(Var logits, std::span<const int32_t> labels) {
  const Tensor& lv = value(logits);
  require_matrix(lv, "softmax_cross_entropy", "logits");
  if (labels.size() != lv.rows()) {
    throw std::invalid_argument("softmax_cross_entropy: " + std::to_string(labels.size()) +
                                " labels for logits " + lv.shape().to_string());
  }
  Node& n = push(Op::kSoftmaxCrossEntropy, {logits});
  n.labels = labels;
  n.aux.resize(lv.shape());
  n.value.resize(Shape{1});
  n.value[0] = static_cast<float>(softmax_cross_entropy_forward(
      lv.rows(), lv.cols(), lv.data(), lv.cols(), labels.data(), n.aux.data()));
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::softmax_cross_entropy(Var logits, std::span<const int32_t> labels,
                                std::span<const float> class_weights) {
  if (class_weights.empty()) return softmax_cross_entropy(logits, labels);
  const Var v = softmax_cross_entropy(logits, labels);
  Node& n = nodes_[v.index];
  const size_t rows = n.aux.rows(), cols = n.aux.cols();
  if (class_weights.size() != cols) {
    throw std::invalid_argument("softmax_cross_entropy: " + std::to_string(class_weights.size()) +
                                " class weights for " + std::to_string(cols) + " classes");
  }
  n.class_weights = class_weights;
  // Each row's loss from the logits (log-sum-exp, stable), weighted; the kernel above has
  // already written the probabilities the backward pass needs.
  const Tensor& z = value_of(n.in[0]);
  double sum = 0.0;
  for (size_t r = 0; r < rows; ++r) {
    const float* row = z.data() + r * cols;
    double max = row[0];
    for (size_t c = 1; c < cols; ++c) max = std::max(max, static_cast<double>(row[c]));
    double e = 0.0;
    for (size_t c = 0; c < cols; ++c) e += std::exp(static_cast<double>(row[c]) - max);
    const double loss = max + std::log(e) - row[labels[r]];
    sum += class_weights[labels[r]] * loss;
  }
  n.value[0] = static_cast<float>(rows ? sum / static_cast<double>(rows) : 0.0);
  return v;
}

// x [B, in], w [in, classes], b [classes] -> the mean (weighted) loss, with d/dx, d/dw, d/db.
Var Tape::dense_softmax_cross_entropy(Var x, Var w, Var b, std::span<const int32_t> labels,
                                      std::span<const float> class_weights) {
  const char* op = "dense_softmax_cross_entropy";
  const Tensor& xv = value(x);  // gathered rows: their floats
  const Tensor& wv = value(w);
  const Tensor& bv = value(b);
  require_matrix(xv, op, "x");
  require_matrix(wv, op, "w");
  if (xv.cols() != wv.rows()) {
    throw std::invalid_argument(std::string(op) + ": input " + xv.shape().to_string() +
                                " does not fit weight " + wv.shape().to_string());
  }
  if (bv.size() != wv.cols()) {
    throw std::invalid_argument(std::string(op) + ": bias " + bv.shape().to_string() +
                                " does not fit weight " + wv.shape().to_string());
  }
  if (labels.size() != xv.rows()) {
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(labels.size()) +
                                " labels for input " + xv.shape().to_string());
  }
  if (!class_weights.empty() && class_weights.size() != wv.cols()) {
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(class_weights.size()) +
                                " class weights for " + std::to_string(wv.cols()) + " classes");
  }
  const bool want_dx = nodes_[x.index].requires_grad;
  Node& n = push(Op::kDenseSoftmaxCrossEntropy, {x, w, b});
  n.labels = labels;
  n.class_weights = class_weights;
  const size_t rows = xv.rows(), in = wv.rows(), classes = wv.cols();
  n.aux.resize(Shape{rows, classes});
  n.dw.resize(wv.shape());
  n.db.resize(bv.shape());
  if (want_dx) n.dx.resize(xv.shape());
  const float scale = rows ? 1.0f / static_cast<float>(rows) : 0.0f;
  const double loss = output_layer_train(
      rows, in, classes, xv.data(), in, wv.data(), bv.data(), labels.data(), scale, n.dw.data(),
      n.db.data(), want_dx ? n.dx.data() : nullptr, in, n.aux.data(),
      class_weights.empty() ? nullptr : class_weights.data());
  n.value.resize(Shape{1});
  n.value[0] = static_cast<float>(rows ? loss / static_cast<double>(rows) : 0.0);
  return Var{static_cast<int32_t>(count_ - 1)};
}

const Tensor& Tape::probabilities(Var loss) const {
  const Node& n = node(loss);
  if (n.op != Op::kSoftmaxCrossEntropy && n.op != Op::kDenseSoftmaxCrossEntropy) {
    throw std::invalid_argument("Tape::probabilities: not a softmax cross-entropy op");
  }
  return n.aux;
}

Var Tape::dropout(Var x, float rate, Rng& rng) {
  const Tensor& xv = value(x);
  Node& n = push(Op::kDropout, {x});
  dropout_mask(rate, rng, xv.size(), n.aux);
  dropout_forward(xv, n.aux, n.value);
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::mean_squared_error(Var pred, const Tensor& target) {
  const Tensor& pv = value(pred);
  require_same_shape(pv.shape(), target.shape(), "mean_squared_error");
  Node& n = push(Op::kMse, {pred});
  n.target = &target;
  double sum = 0.0;
  for (size_t i = 0; i < pv.size(); ++i) {
    const double d = static_cast<double>(pv[i]) - target[i];
    sum += d * d;
  }
  n.value.resize(Shape{1});
  n.value[0] = static_cast<float>(pv.empty() ? 0.0 : sum / static_cast<double>(pv.size()));
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::mean(Var x) {
  const Tensor& xv = value(x);
  Node& n = push(Op::kMean, {x});
  double sum = 0.0;
  for (size_t i = 0; i < xv.size(); ++i) sum += xv[i];
  n.value.resize(Shape{1});
  n.value[0] = static_cast<float>(xv.empty() ? 0.0 : sum / static_cast<double>(xv.size()));
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::sum_column(Var x, size_t column) {
  const Tensor& xv = value(x);
  require_matrix(xv, "sum_column", "x");
  if (column >= xv.cols()) {
    throw std::invalid_argument("sum_column: column " + std::to_string(column) +
                                " is outside x " + xv.shape().to_string());
  }
  Node& n = push(Op::kSumColumn, {x});
  n.column = column;
  double sum = 0.0;
  for (size_t r = 0; r < xv.rows(); ++r) sum += xv.data()[r * xv.cols() + column];
  n.value.resize(Shape{1});
  n.value[0] = static_cast<float>(sum);
  return Var{static_cast<int32_t>(count_ - 1)};
}

Tape::GradTarget Tape::grad_target(int32_t index) {
  Node& n = nodes_[index];
  if (n.op == Op::kParam) {
    Parameter& p = *n.parameter;
    const float beta = p.has_grad ? 1.0f : 0.0f;
    p.has_grad = true;
    return {&p.grad, beta};
  }
  const float beta = n.has_grad ? 1.0f : 0.0f;
  if (!n.has_grad) n.grad.resize(value_of(index).shape());
  n.has_grad = true;
  return {&n.grad, beta};
}

void Tape::accumulate_from_scratch(int32_t index) {
  GradTarget t = grad_target(index);
  if (t.beta == 0.0f) {
    std::copy_n(scratch_.data(), scratch_.size(), t.grad->data());
  } else {
    axpy(scratch_.size(), 1.0f, scratch_.data(), t.grad->data());
  }
}

void Tape::backward(Var loss, float seed) {
  Node& l = node(loss);
  if (l.value.size() != 1 || l.op == Op::kInput || l.op == Op::kParam) {
    throw std::invalid_argument("Tape::backward: the loss must be a scalar op result, got " +
                                value(loss).shape().to_string());
  }
  for (size_t i = 0; i < count_; ++i) nodes_[i].has_grad = false;
  l.grad.resize(Shape{1});
  l.grad[0] = seed;
  l.has_grad = true;
  for (size_t i = count_; i-- > 0;) {
    Node& n = nodes_[i];
    if (n.has_grad && n.requires_grad) backward_node(n);
  }
}

void Tape::backward_node(Node& n) {
  const float* dy = n.grad.data();
  switch (n.op) {
    case Op::kInput:
    case Op::kParam:
      return;
    case Op::kDense: {
      const DenseInput x = dense_input_of(n.in[0]);
      const Tensor& w = value_of(n.in[1]);
      GradSink dw, db, dx;
      if (nodes_[n.in[1]].requires_grad) {
        const GradTarget t = grad_target(n.in[1]);
        dw = {t.grad->data(), t.beta};
      }
      if (nodes_[n.in[2]].requires_grad) {
        const GradTarget t = grad_target(n.in[2]);
        db = {t.grad->data(), t.beta};
      }
      if (nodes_[n.in[0]].requires_grad) {
        const GradTarget t = grad_target(n.in[0]);
        dx = {t.grad->data(), t.beta};
      }
      dense_backward(x, w, n.grad, dw, db, dx, threads_);
      return;
    }
    case Op::kActivation: {
      if (!nodes_[n.in[0]].requires_grad) return;
      GradTarget t = grad_target(n.in[0]);
      if (t.beta == 0.0f) {
        activation_backward(n.activation, n.value, n.grad, t.grad->data());
      } else {
        scratch_.resize(n.value.shape());
        activation_backward(n.activation, n.value, n.grad, scratch_.data());
        axpy(n.value.size(), 1.0f, scratch_.data(), t.grad->data());
      }
      return;
    }
    case Op::kSoftmaxCrossEntropy: {
      if (!nodes_[n.in[0]].requires_grad) return;
      const size_t rows = n.aux.rows(), cols = n.aux.cols();
      const float scale = dy[0] / static_cast<float>(rows);
      GradTarget t = grad_target(n.in[0]);
      float* dx = t.grad->data();
      if (t.beta != 0.0f) {
        scratch_.resize(n.aux.shape());
        dx = scratch_.data();
      }
      softmax_cross_entropy_backward(rows, cols, n.aux.data(), n.labels.data(), scale, dx);
      if (!n.class_weights.empty()) {  // each row's gradient scaled by its class's weight
        for (size_t r = 0; r < rows; ++r) {
          const float w = n.class_weights[n.labels[r]];
          for (size_t c = 0; c < cols; ++c) dx[r * cols + c] *= w;
        }
      }
      if (t.beta != 0.0f) axpy(n.aux.size(), 1.0f, scratch_.data(), t.grad->data());
      return;
    }
    case Op::kDenseSoftmaxCrossEntropy: {
      // The gradients were computed with the forward pass for an incoming gradient of 1.
      const float g = dy[0];
      const auto hand_on = [&](int32_t index, Tensor& computed) {
        if (!nodes_[index].requires_grad) return;
        const bool parameter = nodes_[index].op == Op::kParam;
        const GradTarget t = grad_target(index);
        float* dst = t.grad->data();
        if (t.beta != 0.0f) {
          axpy(computed.size(), g, computed.data(), dst);
        } else if (g != 1.0f) {
          for (size_t i = 0; i < computed.size(); ++i) dst[i] = g * computed[i];
        } else if (!parameter) {
          // Both are the tape's buffers of the same shape: hand dx over instead of copying
          // it (B x in floats per step); the next forward pass writes into the other one.
          std::swap(*t.grad, computed);
        } else {
          std::copy_n(computed.data(), computed.size(), dst);
        }
      };
      hand_on(n.in[0], n.dx);
      hand_on(n.in[1], n.dw);
      hand_on(n.in[2], n.db);
      return;
    }
    case Op::kDropout: {
      if (!nodes_[n.in[0]].requires_grad) return;
      GradTarget t = grad_target(n.in[0]);
      dropout_backward(n.aux, n.grad, t.grad->data(), t.beta);
      return;
    }
    case Op::kMse: {
      if (!nodes_[n.in[0]].requires_grad) return;
      const Tensor& p = value_of(n.in[0]);
      scratch_.resize(p.shape());
      const float scale = p.empty() ? 0.0f : 2.0f * dy[0] / static_cast<float>(p.size());
      for (size_t i = 0; i < p.size(); ++i) scratch_[i] = scale * (p[i] - (*n.target)[i]);
      accumulate_from_scratch(n.in[0]);
      return;
    }
    case Op::kMean: {
      if (!nodes_[n.in[0]].requires_grad) return;
      const Tensor& x = value_of(n.in[0]);
      scratch_.resize(x.shape());
      scratch_.fill(x.empty() ? 0.0f : dy[0] / static_cast<float>(x.size()));
      accumulate_from_scratch(n.in[0]);
      return;
    }
    case Op::kSumColumn: {
      if (!nodes_[n.in[0]].requires_grad) return;
      GradTarget t = grad_target(n.in[0]);
      Tensor& g = *t.grad;
      if (t.beta == 0.0f) g.fill(0.0f);
      const size_t cols = g.cols();
      for (size_t r = 0; r < g.rows(); ++r) g.data()[r * cols + n.column] += dy[0];
      return;
    }
  }
}

void Tape::clear() { count_ = 0; }

}  // namespace simdnn
