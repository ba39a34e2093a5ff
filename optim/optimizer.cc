#include "simdnn/optimizer.h"

#include <cmath>
#include <stdexcept>

#include "simdnn/optimizer_kernels.h"

namespace simdnn {
namespace {

void ensure_slots(std::vector<Tensor>& slots, std::span<Parameter* const> params,
                  const char* optimizer) {
  if (slots.empty()) {
    for (Parameter* p : params) slots.emplace_back(p->value.shape());
    return;
  }
  if (slots.size() != params.size()) {
    throw std::invalid_argument(std::string(optimizer) + ": called with " +
                                std::to_string(params.size()) + " parameters, state has " +
                                std::to_string(slots.size()));
  }
  for (size_t i = 0; i < params.size(); ++i) {
    require_same_shape(params[i]->value.shape(), slots[i].shape(), optimizer);
  }
}

}  // namespace

void Adam::ensure_state(std::span<Parameter* const> params) {
  ensure_slots(m_, params, name_.c_str());
  ensure_slots(v_, params, name_.c_str());
}

void Adam::step(std::span<Parameter* const> params) {
  ensure_state(params);
  ++steps_;
  // Everything that depends only on t is computed once per step, in double.
  const double t = static_cast<double>(steps_);
  AdamStepParams p;
  p.lr = options_.learning_rate;
  p.beta1 = options_.beta1;
  p.beta2 = options_.beta2;
  p.eps = options_.epsilon;
  p.weight_decay = options_.weight_decay;
  p.inv_bias1 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(p.beta1), t)));
  p.inv_bias2 = static_cast<float>(1.0 / (1.0 - std::pow(static_cast<double>(p.beta2), t)));
  for (size_t i = 0; i < params.size(); ++i) {
    Parameter& param = *params[i];
    const Tensor& g = param.gradient();
    adam_step(param.value.size(), param.value.data(), g.data(), m_[i].data(), v_[i].data(), p);
  }
}

std::vector<std::pair<std::string, Tensor*>> Adam::state(std::span<Parameter* const> params) {
  ensure_state(params);
  std::vector<std::pair<std::string, Tensor*>> out;
  for (size_t i = 0; i < params.size(); ++i) {
    out.emplace_back(params[i]->name + ".m", &m_[i]);
    out.emplace_back(params[i]->name + ".v", &v_[i]);
  }
  return out;
}

std::unique_ptr<Adam> make_adamw(AdamOptions options) {
  return std::make_unique<Adam>(options, "adamw");
}

void Sgd::ensure_state(std::span<Parameter* const> params) {
  ensure_slots(velocity_, params, "sgd");
}

void Sgd::step(std::span<Parameter* const> params) {
  ensure_state(params);
  ++steps_;
  for (size_t i = 0; i < params.size(); ++i) {
    Parameter& param = *params[i];
    const Tensor& g = param.gradient();
    sgd_momentum_step(param.value.size(), param.value.data(), g.data(), velocity_[i].data(),
                      options_.learning_rate, options_.momentum);
  }
}

std::vector<std::pair<std::string, Tensor*>> Sgd::state(std::span<Parameter* const> params) {
  ensure_state(params);
  std::vector<std::pair<std::string, Tensor*>> out;
  for (size_t i = 0; i < params.size(); ++i) {
    out.emplace_back(params[i]->name + ".velocity", &velocity_[i]);
  }
  return out;
}

}  // namespace simdnn
