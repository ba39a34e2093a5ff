#include "simdnn/layers.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "simdnn/activation_kernels.h"
#include "simdnn/gemm.h"
#include "simdnn/softmax_kernels.h"
#include "simdnn/vector_kernels.h"

namespace simdnn {

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::kLinear: return "linear";
    case Activation::kRelu: return "relu";
    case Activation::kSigmoid: return "sigmoid";
    case Activation::kTanh: return "tanh";
    case Activation::kSoftmax: return "softmax";
  }
  return "?";
}

Activation parse_activation(const std::string& name) {
  for (Activation a : {Activation::kLinear, Activation::kRelu, Activation::kSigmoid,
                       Activation::kTanh, Activation::kSoftmax}) {
    if (name == activation_name(a)) return a;
  }
  throw std::invalid_argument("unknown activation '" + name +
                              "' (expected linear, relu, sigmoid, tanh or softmax)");
}

Dense::Dense(size_t in, size_t out, Rng& rng, const std::string& name)
    : weight(name + ".weight", Shape{in, out}), bias(name + ".bias", Shape{out}) {
  if (in == 0 || out == 0) {
    throw std::invalid_argument("Dense: sizes must be positive, got in=" + std::to_string(in) +
                                " out=" + std::to_string(out));
  }
  // Glorot uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out)).
  const float limit = std::sqrt(6.0f / static_cast<float>(in + out));
  for (size_t i = 0; i < weight.value.size(); ++i) weight.value[i] = rng.uniform(-limit, limit);
}

Var Dense::forward(Tape& tape, Var x) {
  return tape.dense(x, tape.param(weight), tape.param(bias));
}

void Dense::infer(const Tensor& x, Tensor& y, int threads) const {
  if (x.rank() != 2 || x.cols() != in()) {
    throw std::invalid_argument("Dense: input " + x.shape().to_string() +
                                " does not fit weight " + weight.value.shape().to_string());
  }
  y.resize(Shape{x.rows(), out()});
  gemm(Transpose::kNo, Transpose::kNo, x.rows(), out(), in(), 1.0f, x.data(), in(),
       weight.value.data(), out(), 0.0f, y.data(), out(), threads);
  add_bias_rows(x.rows(), out(), bias.value.data(), y.data(), out());
}

Var ActivationLayer::forward(Tape& tape, Var x) {
  switch (activation_) {
    case Activation::kLinear: return x;
    case Activation::kRelu: return tape.relu(x);
    case Activation::kSigmoid: return tape.sigmoid(x);
    case Activation::kTanh: return tape.tanh(x);
    case Activation::kSoftmax: return tape.softmax(x);
  }
  return x;
}

void ActivationLayer::infer(const Tensor& x, Tensor& y, int) const {
  y.resize(x.shape());
  const size_t n = x.size();
  switch (activation_) {
    case Activation::kLinear: std::copy_n(x.data(), n, y.data()); break;
    case Activation::kRelu: relu_forward(n, x.data(), y.data()); break;
    case Activation::kSigmoid: sigmoid_forward(n, x.data(), y.data()); break;
    case Activation::kTanh: tanh_forward(n, x.data(), y.data()); break;
    case Activation::kSoftmax:
      softmax_rows(x.rows(), x.cols(), x.data(), x.cols(), y.data(), x.cols());
      break;
  }
}

Sequential& Sequential::add(std::unique_ptr<Layer> layer) {
  for (Parameter* p : layer->parameters()) parameters_.push_back(p);
  layers_.push_back(std::move(layer));
  buffers_.resize(layers_.size());
  return *this;
}

Sequential& Sequential::add_dense(size_t in, size_t out, Activation activation, Rng& rng) {
  size_t dense_count = 0;
  for (const auto& l : layers_) dense_count += dynamic_cast<const Dense*>(l.get()) != nullptr;
  add(std::make_unique<Dense>(in, out, rng, "dense_" + std::to_string(dense_count)));
  if (activation != Activation::kLinear) add(std::make_unique<ActivationLayer>(activation));
  return *this;
}

Var Sequential::forward(Tape& tape, Var x) {
  for (auto& l : layers_) x = l->forward(tape, x);
  return x;
}

bool Sequential::ends_with_softmax() const {
  if (layers_.empty()) return false;
  const auto* a = dynamic_cast<const ActivationLayer*>(layers_.back().get());
  return a && a->activation() == Activation::kSoftmax;
}

Var Sequential::forward_logits(Tape& tape, Var x) {
  const size_t n = layers_.size() - (ends_with_softmax() ? 1 : 0);
  for (size_t i = 0; i < n; ++i) x = layers_[i]->forward(tape, x);
  return x;
}

const Tensor& Sequential::predict(const Tensor& x, int threads) {
  if (layers_.empty()) throw std::logic_error("Sequential::predict: the model has no layers");
  const Tensor* in = &x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->infer(*in, buffers_[i], threads);
    in = &buffers_[i];
  }
  return *in;
}


}  // namespace simdnn
