#include "simdnn/autograd.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "simdnn/activation_kernels.h"
#include "simdnn/gemm.h"
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
  n.leaf = nullptr;
  n.gathered = {};
  n.materialized = false;
  n.parameter = nullptr;
  n.target = nullptr;
  n.labels = {};
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
  if (n.op == Op::kInput) return *n.leaf;
  if (n.op == Op::kInputGathered) {
    // Converted only when something other than dense() needs the floats; the buffer is the
    // tape's own (a cache: logically the node does not change).
    Node& cached = const_cast<Node&>(n);
    if (!cached.materialized) {
      cached.value.resize(shape_of(index));
      materialize(n.gathered, cached.value.data());
      cached.materialized = true;
    }
    return cached.value;
  }
  if (n.op == Op::kParam) return n.parameter->value;
  return n.value;
}

Shape Tape::shape_of(int32_t index) const {
  const Node& n = nodes_[index];
  if (n.op == Op::kInputGathered) return Shape{n.gathered.rows.size(), n.gathered.cols};
  return value_of(index).shape();
}

const Tensor& Tape::value(Var v) const {
  node(v);  // validates the handle
  return value_of(v.index);
}

const Tensor& Tape::grad(Var v) const {
  const Node& n = node(v);
  if (n.op == Op::kInput || n.op == Op::kInputGathered || n.op == Op::kParam || !n.has_grad) {
    throw std::logic_error("Tape::grad: no gradient flowed into this value");
  }
  return n.grad;
}

Var Tape::input(const Tensor& x) {
  Node& n = push(Op::kInput, {});
  n.leaf = &x;
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::input(const GatheredRows& x) {
  check_gathered_rows(x, "Tape::input");
  Node& n = push(Op::kInputGathered, {});
  n.gathered = x;
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::param(Parameter& p) {
  Node& n = push(Op::kParam, {});
  n.parameter = &p;
  n.requires_grad = true;
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::dense(Var x, Var w, Var b) {
  const Node& xn = node(x);
  const Shape xs = shape_of(x.index);
  const Tensor& wv = value(w);
  const Tensor& bv = value(b);
  require_matrix(xs, "dense", "input");
  require_matrix(wv, "dense", "weight");
  if (xs[1] != wv.rows()) {
    throw std::invalid_argument("dense: input " + xs.to_string() +
                                " does not fit weight " + wv.shape().to_string());
  }
  if (bv.size() != wv.cols()) {
    throw std::invalid_argument("dense: bias " + bv.shape().to_string() +
                                " does not fit weight " + wv.shape().to_string());
  }
  const size_t batch = xs[0], in = wv.rows(), out = wv.cols();
  const bool gathered = xn.op == Op::kInputGathered;
  const float* xdata = gathered ? nullptr : value_of(x.index).data();
  const GatheredRows xrows = xn.gathered;
  Node& n = push(Op::kDense, {x, w, b});
  n.value.resize(Shape{batch, out});
  if (gathered) {
    gemm_gathered(Transpose::kNo, Transpose::kNo, out, 1.0f, xrows, wv.data(), out, 0.0f,
                  n.value.data(), out, threads_);
  } else {
    gemm(Transpose::kNo, Transpose::kNo, batch, out, in, 1.0f, xdata, in, wv.data(), out, 0.0f,
         n.value.data(), out, threads_);
  }
  add_bias_rows(batch, out, bv.data(), n.value.data(), out);
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::unary(Op op, Var x) {
  const Tensor& xv = value(x);
  Node& n = push(op, {x});
  n.value.resize(xv.shape());
  const size_t size = xv.size();
  float* y = n.value.data();
  switch (op) {
    case Op::kRelu: relu_forward(size, xv.data(), y); break;
    case Op::kSigmoid: sigmoid_forward(size, xv.data(), y); break;
    case Op::kTanh: tanh_forward(size, xv.data(), y); break;
    case Op::kSoftmax:
      require_matrix(xv, "softmax", "input");
      softmax_rows(xv.rows(), xv.cols(), xv.data(), xv.cols(), y, xv.cols());
      break;
    default: throw std::logic_error("Tape::unary: not a unary op");
  }
  return Var{static_cast<int32_t>(count_ - 1)};
}

Var Tape::relu(Var x) { return unary(Op::kRelu, x); }
Var Tape::sigmoid(Var x) { return unary(Op::kSigmoid, x); }
Var Tape::tanh(Var x) { return unary(Op::kTanh, x); }
Var Tape::softmax(Var x) { return unary(Op::kSoftmax, x); }

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

void Tape::backward(Var loss) {
  Node& l = node(loss);
  if (l.value.size() != 1 || l.op == Op::kInput || l.op == Op::kInputGathered ||
      l.op == Op::kParam) {
    throw std::invalid_argument("Tape::backward: the loss must be a scalar op result, got " +
                                value(loss).shape().to_string());
  }
  for (size_t i = 0; i < count_; ++i) nodes_[i].has_grad = false;
  l.grad.resize(Shape{1});
  l.grad[0] = 1.0f;
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
    case Op::kInputGathered:
    case Op::kParam:
      return;
    case Op::kDense: {
      const Node& xn = nodes_[n.in[0]];
      const Tensor& w = value_of(n.in[1]);
      const size_t batch = shape_of(n.in[0])[0], in = w.rows(), out = w.cols();
      if (nodes_[n.in[1]].requires_grad) {  // dW = xᵀ · dy
        GradTarget t = grad_target(n.in[1]);
        if (xn.op == Op::kInputGathered) {
          gemm_gathered(Transpose::kYes, Transpose::kNo, out, 1.0f, xn.gathered, dy, out, t.beta,
                        t.grad->data(), out, threads_);
        } else {
          gemm(Transpose::kYes, Transpose::kNo, in, out, batch, 1.0f, value_of(n.in[0]).data(),
               in, dy, out, t.beta, t.grad->data(), out, threads_);
        }
      }
      if (nodes_[n.in[2]].requires_grad) {  // db = column sums of dy
        GradTarget t = grad_target(n.in[2]);
        column_sum(batch, out, dy, out, t.grad->data(), t.beta != 0.0f);
      }
      if (nodes_[n.in[0]].requires_grad) {  // dx = dy · wᵀ
        GradTarget t = grad_target(n.in[0]);
        gemm(Transpose::kNo, Transpose::kYes, batch, in, out, 1.0f, dy, out, w.data(), out,
             t.beta, t.grad->data(), in, threads_);
      }
      return;
    }
    case Op::kRelu:
    case Op::kSigmoid:
    case Op::kTanh: {
      if (!nodes_[n.in[0]].requires_grad) return;
      const size_t size = n.value.size();
      GradTarget t = grad_target(n.in[0]);
      float* dx = t.grad->data();
      if (t.beta != 0.0f) {
        scratch_.resize(n.value.shape());
        dx = scratch_.data();
      }
      if (n.op == Op::kRelu) relu_backward(size, n.value.data(), dy, dx);
      if (n.op == Op::kSigmoid) sigmoid_backward(size, n.value.data(), dy, dx);
      if (n.op == Op::kTanh) tanh_backward(size, n.value.data(), dy, dx);
      if (t.beta != 0.0f) axpy(size, 1.0f, scratch_.data(), t.grad->data());
      return;
    }
    case Op::kSoftmax: {
      if (!nodes_[n.in[0]].requires_grad) return;
      // dx = y ⊙ (dy − <dy, y>) per row.
      const size_t rows = n.value.rows(), cols = n.value.cols();
      scratch_.resize(n.value.shape());
      for (size_t r = 0; r < rows; ++r) {
        const float* y = n.value.data() + r * cols;
        const float* g = dy + r * cols;
        double dot = 0.0;
        for (size_t c = 0; c < cols; ++c) dot += static_cast<double>(g[c]) * y[c];
        float* dx = scratch_.data() + r * cols;
        for (size_t c = 0; c < cols; ++c) dx[c] = y[c] * (g[c] - static_cast<float>(dot));
      }
      accumulate_from_scratch(n.in[0]);
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
      if (t.beta != 0.0f) axpy(n.aux.size(), 1.0f, scratch_.data(), t.grad->data());
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
  }
}

void Tape::clear() { count_ = 0; }

}  // namespace simdnn
