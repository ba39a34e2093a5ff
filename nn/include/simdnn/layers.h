// Layers and the Sequential container: the model-building API. Each layer's computation lives
// once (dense.h, activation.h); the tape (training) and infer() (inference) both call it.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "simdnn/activation.h"
#include "simdnn/autograd.h"
#include "simdnn/parameter.h"
#include "simdnn/random.h"
#include "simdnn/tensor.h"

namespace simdnn {

// A layer maps a [batch, in] matrix to a [batch, out] matrix.
class Layer {
 public:
  virtual ~Layer() = default;
  // Records the layer's ops on the tape.
  virtual Var forward(Tape& tape, Var x) = 0;
  // Inference without a tape: y is resized (allocation only when it grows). Const and free of
  // hidden state, so one layer serves any number of threads, each with its own y.
  virtual void infer(const Tensor& x, Tensor& y, int threads) const = 0;
  virtual std::vector<Parameter*> parameters() { return {}; }
  virtual size_t output_size(size_t input_size) const = 0;
  // A deep copy (weights copied; gradients not).
  virtual std::unique_ptr<Layer> clone() const = 0;
};

// y = x·W + b with W [in, out] Glorot-uniform and b zero (the Keras defaults).
class Dense : public Layer {
 public:
  Dense(size_t in, size_t out, Rng& rng, const std::string& name = "dense");
  Var forward(Tape& tape, Var x) override;
  void infer(const Tensor& x, Tensor& y, int threads) const override;
  std::vector<Parameter*> parameters() override { return {&weight, &bias}; }
  size_t output_size(size_t) const override { return weight.value.cols(); }
  std::unique_ptr<Layer> clone() const override;
  size_t in() const { return weight.value.rows(); }
  size_t out() const { return weight.value.cols(); }

  Parameter weight;  // [in, out]
  Parameter bias;    // [out]

 private:
  Dense(const Dense& other);  // clone()
};

// An elementwise (or row-wise, for softmax) activation.
class ActivationLayer : public Layer {
 public:
  explicit ActivationLayer(Activation a) : activation_(a) {}
  Var forward(Tape& tape, Var x) override;
  void infer(const Tensor& x, Tensor& y, int threads) const override;
  size_t output_size(size_t input_size) const override { return input_size; }
  std::unique_ptr<Layer> clone() const override;
  Activation activation() const { return activation_; }

 private:
  Activation activation_;
};

// The buffers of one inference caller: each layer's output. A model is shared by any number of
// threads, each with its own Workspace; after the first call with a given batch size nothing
// is allocated.
struct Workspace {
  std::vector<Tensor> outputs;
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
  // A deep copy.
  Sequential clone() const;

  // Records the whole network on the tape.
  Var forward(Tape& tape, Var x);
  // Records every layer except a final softmax: the logits, for the fused softmax
  // cross-entropy loss.
  Var forward_logits(Tape& tape, Var x);
  // Inference without a tape: the last layer's output, which lives in `workspace` (valid until
  // its next use). Thread-safe for distinct workspaces.
  const Tensor& predict(const Tensor& x, Workspace& workspace, int threads = 0) const;

  // Every layer's parameters in order; kept up to date by add(), so reading it allocates
  // nothing (train_step reads it every step).
  const std::vector<Parameter*>& parameters() const { return parameters_; }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }
  // True when the last layer is a softmax activation.
  bool ends_with_softmax() const;

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Parameter*> parameters_;  // point into layers_, which own them (stable on move)
};

}  // namespace simdnn
