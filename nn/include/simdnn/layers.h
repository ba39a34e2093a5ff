// Layers and the Sequential container: the model-building API.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "simdnn/autograd.h"
#include "simdnn/parameter.h"
#include "simdnn/random.h"
#include "simdnn/tensor.h"

namespace simdnn {

enum class Activation { kLinear, kRelu, kSigmoid, kTanh, kSoftmax };

// "relu" <-> Activation::kRelu, and so on ("linear", "relu", "sigmoid", "tanh", "softmax").
const char* activation_name(Activation a);
// Throws std::invalid_argument naming the unknown value and the accepted ones.
Activation parse_activation(const std::string& name);

// A layer maps a [batch, in] matrix to a [batch, out] matrix.
class Layer {
 public:
  virtual ~Layer() = default;
  // Records the layer's ops on the tape.
  virtual Var forward(Tape& tape, Var x) = 0;
  // Inference without a tape: y is resized (allocation only when it grows).
  virtual void infer(const Tensor& x, Tensor& y, int threads) const = 0;
  virtual std::vector<Parameter*> parameters() { return {}; }
  virtual size_t output_size(size_t input_size) const = 0;
};

// y = x·W + b with W [in, out] Glorot-uniform and b zero (the Keras defaults).
class Dense : public Layer {
 public:
  Dense(size_t in, size_t out, Rng& rng, const std::string& name = "dense");
  Var forward(Tape& tape, Var x) override;
  void infer(const Tensor& x, Tensor& y, int threads) const override;
  std::vector<Parameter*> parameters() override { return {&weight, &bias}; }
  size_t output_size(size_t) const override { return weight.value.cols(); }
  size_t in() const { return weight.value.rows(); }
  size_t out() const { return weight.value.cols(); }

  Parameter weight;  // [in, out]
  Parameter bias;    // [out]
};

// An elementwise (or row-wise, for softmax) activation.
class ActivationLayer : public Layer {
 public:
  explicit ActivationLayer(Activation a) : activation_(a) {}
  Var forward(Tape& tape, Var x) override;
  void infer(const Tensor& x, Tensor& y, int threads) const override;
  size_t output_size(size_t input_size) const override { return input_size; }
  Activation activation() const { return activation_; }

 private:
  Activation activation_;
};

// Layers applied in order.
class Sequential {
 public:
  Sequential() = default;
  Sequential(Sequential&&) = default;
  Sequential& operator=(Sequential&&) = default;

  Sequential& add(std::unique_ptr<Layer> layer);
  // Dense(in, out) followed by its activation (nothing for kLinear), as Keras'
  // Dense(units, activation=...).
  Sequential& add_dense(size_t in, size_t out, Activation activation, Rng& rng);

  // Records the whole network on the tape.
  Var forward(Tape& tape, Var x);
  // Records every layer except a final softmax: the logits, for the fused softmax
  // cross-entropy loss.
  Var forward_logits(Tape& tape, Var x);
  // Inference without a tape. Returns a reference to an internal buffer, valid until the next
  // call; after the first call with a given batch size nothing is allocated.
  const Tensor& predict(const Tensor& x, int threads = 0);

  // Every layer's parameters in order; kept up to date by add(), so reading it allocates
  // nothing (train_step reads it every step).
  const std::vector<Parameter*>& parameters() const { return parameters_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  // True when the last layer is a softmax activation.
  bool ends_with_softmax() const;

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Tensor> buffers_;  // per-layer inference outputs
  std::vector<Parameter*> parameters_;  // point into layers_, which own them (stable on move)
};

}  // namespace simdnn
