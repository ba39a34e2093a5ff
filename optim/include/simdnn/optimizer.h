// Optimizers: Adam (Keras defaults), AdamW (decoupled weight decay) and SGD with momentum.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "simdnn/parameter.h"
#include "simdnn/tensor.h"

namespace simdnn {

// Updates parameters from their gradients, one SIMD pass per parameter tensor. Per-parameter
// state (moments, velocity) is created on the first step and keyed by position: pass the same
// parameters in the same order every step. Parameters whose `trainable` is false are skipped
// (their values and state do not change), but keep their position.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual void step(std::span<Parameter* const> params) = 0;
  // Whether each element's update depends only on that element's value, gradient and state
  // (and on the step count), so that step_slice() exists: true for Adam, AdamW and SGD.
  virtual bool elementwise() const { return false; }
  // One step for the elements [begin, end) of the parameters' values taken end to end, in the
  // order given; the other elements and their state stay as they are, and the step count
  // advances as in step(). Slices that cover the parameters, each stepped once (on one
  // optimizer or on copies of it in the same state) and cut at multiples of 64 elements from
  // a tensor's start or at its end, give step()'s values exactly; cut elsewhere, an element
  // may move between a kernel's vectors and its scalar tail, which can round differently
  // (AdamW's decay is fused into an FMA in one and not the other).
  // Data-parallel training shards the update so (docs/distributed.md): every process steps its
  // slice only. Only gradients inside the slice are read. Throws std::logic_error unless
  // elementwise().
  virtual void step_slice(std::span<Parameter* const> params, size_t begin, size_t end);
  // "adam", "adamw" or "sgd".
  virtual std::string name() const = 0;
  // The step size of the next step(); learning-rate schedules (<simdnn/lr_schedule.h>) set it
  // between epochs.
  virtual float learning_rate() const = 0;
  virtual void set_learning_rate(float lr) = 0;

  // Threads for the update passes (0 = OpenMP default). Updates are element-wise and the
  // threads' shares are cut per tensor where a kernel's vectors would cut anyway
  // (kTensorCutStep, <simdnn/parameter.h>), so the result does not depend on the thread count.
  void set_threads(int threads) { threads_ = threads; }
  int threads() const { return threads_; }

  // Steps taken so far (Adam's t).
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  // The state tensors, named "<parameter name>.<slot>", created (zeroed) if needed so a
  // checkpoint can be written before the first step or restored into.
  virtual std::vector<std::pair<std::string, Tensor*>> state(
      std::span<Parameter* const> params) = 0;

 protected:
  int64_t steps_ = 0;
  int threads_ = 0;
};

struct AdamOptions {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-7f;       // Keras default; outside the square root
  float weight_decay = 0.0f;   // decoupled (AdamW): w *= 1 - lr * weight_decay
};

class Adam : public Optimizer {
 public:
  explicit Adam(AdamOptions options = {}, std::string name = "adam")
      : options_(options), name_(std::move(name)) {}
  void step(std::span<Parameter* const> params) override;
  bool elementwise() const override { return true; }
  void step_slice(std::span<Parameter* const> params, size_t begin, size_t end) override;
  std::string name() const override { return name_; }
  std::vector<std::pair<std::string, Tensor*>> state(
      std::span<Parameter* const> params) override;
  const AdamOptions& options() const { return options_; }
  float learning_rate() const override { return options_.learning_rate; }
  void set_learning_rate(float lr) override { options_.learning_rate = lr; }

 private:
  void ensure_state(std::span<Parameter* const> params);
  AdamOptions options_;
  std::string name_;
  std::vector<Tensor> m_, v_;
};

// AdamW with the Keras default weight decay (0.004) unless given.
std::unique_ptr<Adam> make_adamw(AdamOptions options = {.weight_decay = 0.004f});

struct SgdOptions {
  float learning_rate = 0.01f;  // Keras default
  float momentum = 0.0f;
};

// Keras SGD: velocity = momentum * velocity - lr * g; w += velocity.
class Sgd : public Optimizer {
 public:
  explicit Sgd(SgdOptions options = {}) : options_(options) {}
  void step(std::span<Parameter* const> params) override;
  bool elementwise() const override { return true; }
  void step_slice(std::span<Parameter* const> params, size_t begin, size_t end) override;
  std::string name() const override { return "sgd"; }
  float learning_rate() const override { return options_.learning_rate; }
  void set_learning_rate(float lr) override { options_.learning_rate = lr; }
  std::vector<std::pair<std::string, Tensor*>> state(
      std::span<Parameter* const> params) override;

 private:
  void ensure_state(std::span<Parameter* const> params);
  SgdOptions options_;
  std::vector<Tensor> velocity_;
};

}  // namespace simdnn
