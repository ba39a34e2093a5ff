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

// Runs update(param_index, begin, count) over every parameter, the concatenated elements cut
// into one contiguous share per thread (at 16-element boundaries). Updates are element-wise,
// so the split does not change any result. Equal shares, not fixed-size chunks: 64 KiB chunks
// dealt out statically gave one thread 5 of W1's 7 chunks and the other the rest (82k vs 20k
// elements), and 2 threads ran Adam only 1.1x faster than one. Parameter sets under 64k
// elements stay on the calling thread (the fork/join would cost more than it saves).
template <class Update>
void for_each_chunk(std::span<Parameter* const> params, int threads, const Update& update) {
  constexpr size_t kMinParallel = 65536, kAlign = 16;
  size_t total = 0;
  for (Parameter* p : params) total += p->value.size();
  const int workers = total < kMinParallel ? 1 : resolve_threads(threads);
  const size_t share =
      (total + static_cast<size_t>(workers) * kAlign - 1) / (static_cast<size_t>(workers) * kAlign) *
      kAlign;
  parallel_for(workers, workers, [&](int64_t w) {
    const size_t lo = static_cast<size_t>(w) * share, hi = std::min(total, lo + share);
    size_t base = 0;
    for (size_t i = 0; i < params.size() && base < hi; ++i) {
      const size_t n = params[i]->value.size();
      if (!params[i]->trainable) {  // frozen: its share of the work is simply skipped
        base += n;
        continue;
      }
      const size_t b = std::max(lo, base), e = std::min(hi, base + n);
      if (b < e) update(i, b - base, e - b);
      base += n;
    }
  });
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
  for (Parameter* param : params) param->gradient();  // zero-fills gradients nothing reached
  for_each_chunk(params, threads_, [&](size_t i, size_t begin, size_t count) {
    Parameter& param = *params[i];
    adam_step(count, param.value.data() + begin, param.grad.data() + begin,
              m_[i].data() + begin, v_[i].data() + begin, p);
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
  ensure_state(params);
  ++steps_;
  for (Parameter* param : params) param->gradient();  // zero-fills gradients nothing reached
  for_each_chunk(params, threads_, [&](size_t i, size_t begin, size_t count) {
    Parameter& param = *params[i];
    sgd_momentum_step(count, param.value.data() + begin, param.grad.data() + begin,
                      velocity_[i].data() + begin, options_.learning_rate, options_.momentum);
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
