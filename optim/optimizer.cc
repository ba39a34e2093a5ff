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
// end to end, cut into one contiguous share per thread (at 16-element boundaries from `from`).
// Updates are element-wise, so the split changes no result as long as every cut falls where
// a kernel's vector loop would cut anyway: a cut 16 elements from `from` can land inside a
// tensor off its 64-element grid (when a tensor's size is not a multiple of 16), and AdamW's
// decay, fused into an FMA in the vector loop but not in the scalar tail, then rounds an
// element differently: for such models AdamW's bits can depend on the thread count. Not yet
// fixed (cut per tensor at 64-element steps); the default model's tensors are aligned.
// Equal shares, not fixed-size chunks: 64 KiB chunks dealt out statically gave one thread 5 of
// W1's 7 chunks and the other the rest (82k vs 20k elements), and 2 threads ran Adam only 1.1x
// faster than one.
// Slices under 64k elements stay on the calling thread (the fork/join would cost more than it
// saves).
template <class Update>
void for_each_chunk(std::span<Parameter* const> params, int threads, size_t from, size_t to,
                    const Update& update) {
  constexpr size_t kMinParallel = 65536, kAlign = 16;
  const size_t total = to - from;
  const int workers = total < kMinParallel ? 1 : resolve_threads(threads);
  const size_t share =
      (total + static_cast<size_t>(workers) * kAlign - 1) / (static_cast<size_t>(workers) * kAlign) *
      kAlign;
  parallel_for(workers, workers, [&](int64_t w) {
    const size_t lo = from + static_cast<size_t>(w) * share, hi = std::min(to, lo + share);
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
