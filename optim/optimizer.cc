#include "simdnn/optimizer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "simdnn/parallel_for.h"
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

// Runs update(param_index, begin, count) over the elements [from, to) of the parameters taken
// end to end, cut into one contiguous share per thread. Every cut falls where
// <simdnn/parameter.h> allows (kTensorCutStep: a multiple of 64 elements from a tensor's
// start, or its end), so each element goes through the same vector or the same scalar tail as
// in one pass over its whole tensor, and the result is the same for every thread count (a
// cut elsewhere could move an element into a scalar tail, where AdamW's decay is not fused
// into an FMA). `from` must be such a cut itself (step_slice's contract).
// Equal shares, not fixed-size chunks: 64 KiB chunks dealt out statically gave one thread 5 of
// W1's 7 chunks and the other the rest (82k vs 20k elements), and 2 threads ran Adam only 1.1x
// faster than one. Slices under 64k elements stay on the calling thread (the fork/join would
// cost more than it saves).
template <class Update>
void for_each_chunk(std::span<Parameter* const> params, int threads, size_t from, size_t to,
                    const Update& update) {
  constexpr size_t kMinParallel = 65536;
  const size_t total = to - from;
  const int workers = total < kMinParallel ? 1 : resolve_threads(threads);
  const auto size_of = [&](size_t i) { return params[i]->value.size(); };
  // Worker w's share is [cut(w), cut(w + 1)): the equal split's cut moved down onto the grid.
  const auto cut = [&](int64_t w) -> size_t {
    if (w <= 0) return from;
    if (w >= workers) return to;
    const size_t at = from + total * static_cast<size_t>(w) / static_cast<size_t>(workers);
    return std::max(from, snap_to_cut(params.size(), size_of, at));
  };
  parallel_for(workers, workers, [&](int64_t w) {
    for_each_segment(params.size(), size_of, cut(w), cut(w + 1),
                     [&](size_t i, size_t begin, size_t count, size_t) {
                       // Frozen: its share of the work is simply skipped.
                       if (params[i]->trainable) update(i, begin, count);
                     });
  });
}

size_t total_size(std::span<Parameter* const> params) {
  size_t total = 0;
  for (const Parameter* p : params) total += p->value.size();
  return total;
}

void check_slice(std::span<Parameter* const> params, size_t begin, size_t end, const char* who) {
  const size_t total = total_size(params);
  if (begin > end || end > total) {
    throw std::invalid_argument(std::string(who) + ": slice [" + std::to_string(begin) + ", " +
                                std::to_string(end) + ") of " + std::to_string(total) +
                                " parameters");
  }
}

}  // namespace

void Optimizer::step_slice(std::span<Parameter* const>, size_t, size_t) {
  throw std::logic_error(name() + ": no sliced step (its update is not element-wise)");
}

void Adam::ensure_state(std::span<Parameter* const> params) {
  ensure_slots(m_, params, name_.c_str());
  ensure_slots(v_, params, name_.c_str());
}

void Adam::step(std::span<Parameter* const> params) {
  step_slice(params, 0, total_size(params));
}

void Adam::step_slice(std::span<Parameter* const> params, size_t begin, size_t end) {
  check_slice(params, begin, end, name_.c_str());
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
  for (Parameter* param : params) param->gradient();  // zero-fills gradients nothing reached
  for_each_chunk(params, threads_, begin, end, [&](size_t i, size_t from, size_t count) {
    Parameter& param = *params[i];
    adam_step(count, param.value.data() + from, param.grad.data() + from, m_[i].data() + from,
              v_[i].data() + from, p);
  });
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
  step_slice(params, 0, total_size(params));
}

void Sgd::step_slice(std::span<Parameter* const> params, size_t begin, size_t end) {
  check_slice(params, begin, end, "sgd");
  ensure_state(params);
  ++steps_;
  for (Parameter* param : params) param->gradient();  // zero-fills gradients nothing reached
  for_each_chunk(params, threads_, begin, end, [&](size_t i, size_t from, size_t count) {
    Parameter& param = *params[i];
    sgd_momentum_step(count, param.value.data() + from, param.grad.data() + from,
                      velocity_[i].data() + from, options_.learning_rate, options_.momentum);
  });
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
