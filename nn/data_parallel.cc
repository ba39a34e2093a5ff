#include "simdnn/data_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "simdnn/gathered_rows.h"

namespace simdnn {
namespace {

// The largest tree nodes inside [a, b), left to right.
void cover(size_t lo, size_t hi, size_t a, size_t b, std::vector<std::pair<size_t, size_t>>& out) {
  if (hi <= a || lo >= b) return;
  if (a <= lo && hi <= b) {
    out.emplace_back(lo, hi);
    return;
  }
  const size_t mid = lo + (hi - lo) / 2;
  cover(lo, mid, a, b, out);
  cover(mid, hi, a, b, out);
}

void add_into(float* dst, const float* src, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}

// The tree node [lo, hi) summed in place into leaf(lo): leaf(lo) = node [lo, mid), then
// += node [mid, hi). Float addition of two values commutes exactly, so this is the tree's sum.
template <class Leaf>
float* tree_sum(size_t lo, size_t hi, size_t length, const Leaf& leaf) {
  if (hi - lo == 1) return leaf(lo);
  const size_t mid = lo + (hi - lo) / 2;
  float* left = tree_sum(lo, mid, length, leaf);
  add_into(left, tree_sum(mid, hi, length, leaf), length);
  return left;
}

// The node [lo, hi) from the given nodes (which tile [0, K)), completed by the same tree.
float* complete(size_t lo, size_t hi, size_t length,
                const std::vector<std::pair<std::pair<size_t, size_t>, float*>>& given) {
  for (const auto& g : given) {
    if (g.first.first == lo && g.first.second == hi) return g.second;
  }
  if (hi - lo < 2) throw std::logic_error("data parallel: the tree nodes do not tile the pieces");
  const size_t mid = lo + (hi - lo) / 2;
  float* left = complete(lo, mid, length, given);
  add_into(left, complete(mid, hi, length, given), length);
  return left;
}

std::span<const std::byte> bytes_of(std::span<const float> v) { return std::as_bytes(v); }

// Calls f(at, offset, count) for the floats [lo, hi) of `parts` taken end to end: `count` of
// them at `at`, which are floats [lo + offset, lo + offset + count) of the whole.
template <class F>
void for_range(std::span<Tensor* const> parts, size_t lo, size_t hi, const F& f) {
  size_t base = 0;
  for (Tensor* t : parts) {
    if (base >= hi) break;
    const size_t n = t->size();
    const size_t b = std::max(lo, base), e = std::min(hi, base + n);
    if (b < e) f(t->data() + (b - base), b - lo, e - b);
    base += n;
  }
}

// Floats [lo, hi) of `parts` end to end = src[0, hi - lo).
void copy_into(std::span<Tensor* const> parts, size_t lo, size_t hi, const float* src) {
  for_range(parts, lo, hi, [&](float* at, size_t offset, size_t count) {
    std::copy_n(src + offset, count, at);
  });
}

// dst[0, hi - lo) = floats [lo, hi) of `parts` end to end.
void copy_from(std::span<Tensor* const> parts, size_t lo, size_t hi, float* dst) {
  for_range(parts, lo, hi, [&](const float* at, size_t offset, size_t count) {
    std::copy_n(at, count, dst + offset);
  });
}

}  // namespace

void SingleProcess::all_to_all(std::span<const std::byte> send, std::span<const size_t>,
                               std::span<std::byte> recv, std::span<const size_t>) {
  if (recv.size() < send.size()) throw std::logic_error("SingleProcess::all_to_all: short buffer");
  std::copy(send.begin(), send.end(), recv.begin());
}

void SingleProcess::all_gather(std::span<const std::byte> mine, std::span<std::byte> all,
                               std::span<const size_t>) {
  if (all.size() < mine.size()) throw std::logic_error("SingleProcess::all_gather: short buffer");
  std::copy(mine.begin(), mine.end(), all.begin());
}

std::vector<std::pair<size_t, size_t>> ShardPlan::nodes(int p) const {
  std::vector<std::pair<size_t, size_t>> out;
  cover(0, pieces, first_piece(p), last_piece(p), out);
  return out;
}

DataParallelStep::DataParallelStep(const DataParallelOptions& options,
                                   std::span<Parameter* const> params)
    : collective_(options.collective), params_(params.begin(), params.end()) {
  if (!collective_) {
    own_ = std::make_unique<SingleProcess>();
    collective_ = own_.get();
  }
  plan_.processes = collective_->size();
  plan_.pieces = options.pieces ? options.pieces : static_cast<size_t>(plan_.processes);
  if (plan_.pieces < static_cast<size_t>(plan_.processes)) {
    throw std::invalid_argument("data parallel: " + std::to_string(plan_.pieces) +
                                " pieces per batch for " + std::to_string(plan_.processes) +
                                " processes: every process needs at least one");
  }
  for (Parameter* p : params_) {
    length_ += p->value.size();
    values_.push_back(&p->value);
    grads_.push_back(&p->grad);
  }
  const int r = collective_->rank();
  room_ = plan_.processes > 1 ? stats_floats(r) : 0;
  leaf_.resize(plan_.last_piece(r) - plan_.first_piece(r));
  for (auto& l : leaf_) l.resize(length_ + static_cast<size_t>(plan_.processes) * room_);
}

DataParallelStep::~DataParallelStep() = default;

void DataParallelStep::check_agreement(std::span<const uint64_t> values,
                                       std::span<const char* const> names) {
  const int n = collective_->size();
  std::vector<uint64_t> all(values.size() * static_cast<size_t>(n));
  std::vector<size_t> counts(static_cast<size_t>(n), values.size() * sizeof(uint64_t));
  collective_->all_gather(std::as_bytes(values), std::as_writable_bytes(std::span(all)), counts);
  for (int p = 0; p < n; ++p) {
    for (size_t i = 0; i < values.size(); ++i) {
      const uint64_t theirs = all[static_cast<size_t>(p) * values.size() + i];
      if (theirs != values[i]) {
        throw std::invalid_argument(
            "data parallel: the processes disagree: " +
            std::string(i < names.size() ? names[i] : "a setting") + " is " +
            std::to_string(theirs) + " on process " + std::to_string(p) + " and " +
            std::to_string(values[i]) + " on process " + std::to_string(collective_->rank()) +
            " (every process must load the same data, model, settings and seed)");
      }
    }
  }
}

StepResult DataParallelStep::step(Sequential& model, Tape& tape, Optimizer& optimizer,
                                  const LabelledSamples& data, std::span<const uint32_t> batch,
                                  float scale, const Regularization& regularization, Rng& rng) {
  const int rank = collective_->rank();
  const size_t n = batch.size();
  const size_t first = plan_.first_piece(rank), last = plan_.last_piece(rank);
  // With several pieces the dropout masks come from a per-piece generator, seeded by one draw
  // of the shared rng per step: every process draws the same, whichever pieces it owns.
  const bool piece_rngs = regularization.dropout > 0.0f && plan_.pieces > 1;
  const uint64_t step_seed = piece_rngs ? rng.next_u64() : 0;
  std::vector<double> stats(2 * (last - first), 0.0);  // per piece: loss * rows, correct
  for (size_t k = first; k < last; ++k) {
    std::vector<float>& leaf = leaf_[k - first];
    const size_t b = plan_.piece_begin(k, n), e = plan_.piece_end(k, n);
    if (b == e) {  // a last batch smaller than the pieces
      std::fill(leaf.begin(), leaf.end(), 0.0f);
      continue;
    }
    const std::span<const uint32_t> idx = batch.subspan(b, e - b);
    const GatheredRows x{data.pixels, data.features, idx, scale};
    gather_labels(data.labels, idx, labels_);
    Rng piece_rng(step_seed ^ (0x9E3779B97F4A7C15ull * (k + 1)));
    const StepResult r = loss_and_gradients(model, tape, x, labels_, regularization,
                                            piece_rngs ? piece_rng : rng);
    stats[2 * (k - first)] = r.loss * static_cast<double>(e - b);
    stats[2 * (k - first) + 1] = static_cast<double>(r.correct);
    if (!std::isfinite(r.loss)) continue;  // everyone throws below
    // The piece's share of the batch mean: rows_k / n (exactly 1 for a single piece), written
    // straight into the all-to-all's layout (see room_).
    const float share = static_cast<float>(static_cast<double>(e - b) / static_cast<double>(n));
    for (Parameter* p : params_) p->gradient();  // zero-fills gradients nothing reached
    for (int d = 0; d < plan_.processes; ++d) {
      const size_t lo = slice_begin(d);
      float* out = leaf.data() + static_cast<size_t>(d + 1) * room_ + lo;
      for_range(grads_, lo, slice_begin(d + 1), [&](const float* g, size_t offset, size_t count) {
        float* dst = out + offset;
        if (share == 1.0f) {
          std::copy_n(g, count, dst);
        } else {
          for (size_t i = 0; i < count; ++i) dst[i] = g[i] * share;
        }
      });
    }
  }

  // One exchange carries the gradients and every piece's loss statistics; the statistics are
  // summed in piece order on every process, so all see the same loss (and throw alike).
  std::vector<double> all_stats(2 * plan_.pieces);
  const float* mine = reduce(stats, all_stats);
  double loss_sum = 0.0, correct = 0.0;
  bool finite = true;
  for (size_t k = 0; k < plan_.pieces; ++k) {
    finite = finite && std::isfinite(all_stats[2 * k]);
    loss_sum += all_stats[2 * k];
    correct += all_stats[2 * k + 1];
  }
  StepResult result;
  result.loss = loss_sum / static_cast<double>(n);
  result.correct = static_cast<size_t>(correct);
  if (!finite || !std::isfinite(result.loss)) {
    throw NonFiniteLoss("the training loss became " + std::to_string(result.loss));
  }

  for (Parameter* p : params_) p->gradient();  // marks it as holding a gradient
  const size_t lo = slice_begin(rank), hi = slice_begin(rank + 1);
  if (optimizer.elementwise()) {
    // The sharded update: this process steps only its slice, whose gradient it has just
    // completed, and the updated slices are gathered. add_l2_gradients also adds to the
    // gradient outside the slice, which nothing reads (its loss term needs every weight).
    copy_into(grads_, lo, hi, mine);
    add_l2_gradients(model, regularization.l2, result.loss);
    optimizer.step_slice(params_, lo, hi);
    if (plan_.processes > 1) {
      part_.resize(hi - lo);
      copy_from(values_, lo, hi, part_.data());
      gather(part_, 1, gathered_);
      copy_into(values_, 0, lo, gathered_.data());
      copy_into(values_, hi, length_, gathered_.data() + hi);
    }
  } else {
    // Any other optimizer needs the whole gradient: the completed slices are gathered and
    // every process takes the whole step.
    gather(std::span<const float>(mine, hi - lo), 1, gathered_);
    copy_into(grads_, 0, length_, gathered_.data());
    add_l2_gradients(model, regularization.l2, result.loss);
    optimizer.step(params_);
  }
  return result;
}

void DataParallelStep::gather_optimizer_state(Optimizer& optimizer) {
  if (plan_.processes == 1 || !optimizer.elementwise() || params_.empty()) return;
  const std::vector<std::pair<std::string, Tensor*>> state = optimizer.state(params_);
  // Optimizer::state lists each parameter's slots together, in parameter order: slot s of
  // every parameter, end to end, is sliced as the parameters are.
  const size_t slots = state.size() / params_.size();
  if (slots * params_.size() != state.size()) {
    throw std::logic_error("data parallel: " + std::to_string(state.size()) +
                           " optimizer state tensors for " + std::to_string(params_.size()) +
                           " parameters");
  }
  std::vector<std::vector<Tensor*>> slot(slots);
  for (size_t i = 0; i < params_.size(); ++i) {
    for (size_t s = 0; s < slots; ++s) {
      const auto& [name, tensor] = state[i * slots + s];
      if (tensor->size() != params_[i]->value.size()) {
        throw std::logic_error("data parallel: optimizer state " + name +
                               " does not match parameter " + params_[i]->name);
      }
      slot[s].push_back(tensor);
    }
  }
  const int rank = collective_->rank();
  const size_t lo = slice_begin(rank), hi = slice_begin(rank + 1);
  std::vector<float> mine(slots * (hi - lo)), all;
  for (size_t s = 0; s < slots; ++s) copy_from(slot[s], lo, hi, mine.data() + s * (hi - lo));
  gather(mine, slots, all);
  // `all` holds every process's slots in process order: process p's slot s at
  // slots * begin(p) + s * size(p).
  for (int p = 0; p < plan_.processes; ++p) {
    if (p == rank) continue;
    const size_t b = slice_begin(p), e = slice_begin(p + 1);
    for (size_t s = 0; s < slots; ++s) {
      copy_into(slot[s], b, e, all.data() + slots * b + s * (e - b));
    }
  }
}

size_t DataParallelStep::stats_floats(int p) const {
  return 2 * (plan_.last_piece(p) - plan_.first_piece(p)) * sizeof(double) / sizeof(float);
}

size_t DataParallelStep::slice_begin(int p) const {
  if (p >= plan_.processes) return length_;
  // p * L / N, rounded down to a multiple of 64 floats from the start of the tensor it falls
  // in: the optimizer kernels then take every element in the same vector (or in the same
  // scalar tail) as a whole step does, whatever the SIMD width. A slice cut elsewhere changes
  // bits: a kernel's tail may round differently from its vectors (g++ contracts AdamW's
  // w * decay - update into one FMA in the vector loop and not in the one-lane tail).
  constexpr size_t kLanes = 64;
  const size_t cut = static_cast<size_t>(p) * length_ / static_cast<size_t>(plan_.processes);
  size_t base = 0;
  for (const Tensor* t : values_) {
    if (cut < base + t->size()) return base + (cut - base) / kLanes * kLanes;
    base += t->size();
  }
  return length_;
}

void DataParallelStep::gather(std::span<const float> mine, size_t per_float,
                              std::vector<float>& all) {
  all.resize(per_float * length_);
  if (plan_.processes == 1) {
    std::copy(mine.begin(), mine.end(), all.begin());
    return;
  }
  std::vector<size_t> counts(static_cast<size_t>(plan_.processes));
  for (int p = 0; p < plan_.processes; ++p) {
    const size_t floats = per_float * (slice_begin(p + 1) - slice_begin(p));
    counts[static_cast<size_t>(p)] = floats * sizeof(float);
  }
  collective_->all_gather(bytes_of(mine), std::as_writable_bytes(std::span(all)), counts);
}

const float* DataParallelStep::reduce(std::span<const double> my_stats,
                                      std::span<double> all_stats) {
  const int rank = collective_->rank();
  const size_t first = plan_.first_piece(rank);
  auto leaf = [&](size_t k) { return leaf_[k - first].data(); };
  // This process's largest tree nodes, summed locally (each into its first leaf).
  const std::vector<std::pair<size_t, size_t>> mine = plan_.nodes(rank);
  std::vector<float*> my_nodes;
  const size_t wire = leaf_.front().size();  // the statistics' room is summed too, then set
  for (const auto& node : mine) {
    my_nodes.push_back(tree_sum(node.first, node.second, wire, leaf));
  }
  const int processes = plan_.processes;
  if (processes == 1) {  // one node, the root
    std::copy(my_stats.begin(), my_stats.end(), all_stats.begin());
    return my_nodes.front();
  }
  // Process d completes the tree on its slice of the gradient. What p sends d: p's statistics
  // (its pieces' doubles, as floats' bytes), then p's nodes' part for d.
  auto chunk_begin = [&](int d) { return slice_begin(d); };
  auto chunk_size = [&](int d) { return slice_begin(d + 1) - slice_begin(d); };
  std::vector<size_t> send_counts(static_cast<size_t>(processes));
  std::vector<size_t> recv_counts(static_cast<size_t>(processes));
  std::vector<std::vector<std::pair<size_t, size_t>>> nodes_of(static_cast<size_t>(processes));
  size_t sent = 0, received = 0;
  for (int p = 0; p < processes; ++p) {
    const auto u = static_cast<size_t>(p);
    nodes_of[u] = plan_.nodes(p);
    send_counts[u] = stats_floats(rank) + mine.size() * chunk_size(p);
    recv_counts[u] = stats_floats(p) + nodes_of[u].size() * chunk_size(rank);
    sent += send_counts[u];
    received += recv_counts[u];
  }
  // Node parts for d at (d + 1) * room_ + chunk_begin(d): one node is its own send buffer
  // once its rooms hold the statistics; several are interleaved into send_.
  std::span<const float> send;
  if (my_nodes.size() == 1) {
    float* node = my_nodes.front();
    for (int d = 0; d < processes; ++d) {
      std::memcpy(node + static_cast<size_t>(d) * room_ + chunk_begin(d), my_stats.data(),
                  my_stats.size_bytes());
    }
    send = std::span<const float>(node, sent);
  } else {
    send_.resize(sent);
    size_t at = 0;
    for (int d = 0; d < processes; ++d) {
      std::memcpy(send_.data() + at, my_stats.data(), my_stats.size_bytes());
      at += room_;
      for (float* node : my_nodes) {
        std::copy_n(node + static_cast<size_t>(d + 1) * room_ + chunk_begin(d), chunk_size(d),
                    send_.data() + at);
        at += chunk_size(d);
      }
    }
    send = send_;
  }
  recv_.resize(received);
  for (size_t& c : send_counts) c *= sizeof(float);
  for (size_t& c : recv_counts) c *= sizeof(float);
  collective_->all_to_all(bytes_of(send), send_counts, std::as_writable_bytes(std::span(recv_)),
                          recv_counts);
  std::vector<std::pair<std::pair<size_t, size_t>, float*>> given;
  size_t at = 0;
  for (int p = 0; p < processes; ++p) {
    std::memcpy(all_stats.data() + 2 * plan_.first_piece(p), recv_.data() + at,
                stats_floats(p) * sizeof(float));
    at += stats_floats(p);
    for (const auto& node : nodes_of[static_cast<size_t>(p)]) {
      given.emplace_back(node, recv_.data() + at);
      at += chunk_size(rank);
    }
  }
  return complete(0, plan_.pieces, chunk_size(rank), given);
}

}  // namespace simdnn
