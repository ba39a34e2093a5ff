#include "simdnn/layers.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "simdnn/dense.h"

namespace simdnn {

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

Dense::Dense(const Dense& other)
    : Layer(),
      weight(other.weight.name, other.weight.value.shape()),
      bias(other.bias.name, other.bias.value.shape()) {
  std::copy_n(other.weight.value.data(), other.weight.value.size(), weight.value.data());
  std::copy_n(other.bias.value.data(), other.bias.value.size(), bias.value.data());
}

std::unique_ptr<Layer> Dense::clone() const { return std::unique_ptr<Layer>(new Dense(*this)); }

Var Dense::forward(Tape& tape, Var x) {
  return tape.dense(x, tape.param(weight), tape.param(bias));
}

void Dense::infer(const Tensor& x, Tensor& y, int threads) const {
  dense_forward(x, weight.value, bias.value, y, threads);
}

Var ActivationLayer::forward(Tape& tape, Var x) {
  // Linear records nothing: the input is the output.
  return activation_ == Activation::kLinear ? x : tape.activation(x, activation_);
}

void ActivationLayer::infer(const Tensor& x, Tensor& y, int) const {
  activation_forward(activation_, x, y);
}

std::unique_ptr<Layer> ActivationLayer::clone() const {
  return std::make_unique<ActivationLayer>(activation_);
}

Sequential& Sequential::add(std::unique_ptr<Layer> layer) {
  for (Parameter* p : layer->parameters()) parameters_.push_back(p);
  layers_.push_back(std::move(layer));
  return *this;
}

Sequential& Sequential::add_dense(size_t in, size_t out, Activation activation, Rng& rng) {
  size_t dense_count = 0;
  for (const auto& l : layers_) dense_count += dynamic_cast<const Dense*>(l.get()) != nullptr;
  add(std::make_unique<Dense>(in, out, rng, "dense_" + std::to_string(dense_count)));
  if (activation != Activation::kLinear) add(std::make_unique<ActivationLayer>(activation));
  return *this;
}

Sequential Sequential::clone() const {
  Sequential copy;
  for (const auto& l : layers_) copy.add(l->clone());
  return copy;
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

const Tensor& Sequential::predict(const Tensor& x, Workspace& workspace, int threads) const {
  if (layers_.empty()) throw std::logic_error("Sequential::predict: the model has no layers");
  workspace.outputs.resize(layers_.size());
  const Tensor* in = &x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->infer(*in, workspace.outputs[i], threads);
    in = &workspace.outputs[i];
  }
  return *in;
}

}  // namespace simdnn
