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

// A tree node's slice as the all-to-all left it: where it lies, and whether in this process's
// own buffers (a piece's gradient, which the parameters can view) or in the receive buffer.
struct TreePart {
  size_t lo, hi;
  float* at;
  bool local;
};

// The node [lo, hi) from the given nodes (which tile [0, K)), completed by the same tree. Each
// sum is written into a local operand when there is one: float addition commutes exactly, so
// a + b and b + a are the same bits, and the root (which holds this process's pieces) ends in
// one of its own buffers, where the parameters' gradients can view it without a copy.
TreePart complete(size_t lo, size_t hi, size_t length, const std::vector<TreePart>& given) {
  for (const TreePart& g : given) {
    if (g.lo == lo && g.hi == hi) return g;
  }
  if (hi - lo < 2) throw std::logic_error("data parallel: the tree nodes do not tile the pieces");
  const size_t mid = lo + (hi - lo) / 2;
  const TreePart left = complete(lo, mid, length, given);
  const TreePart right = complete(mid, hi, length, given);
  if (!left.local && right.local) {
    add_into(right.at, left.at, length);
    return {lo, hi, right.at, true};
  }
  add_into(left.at, right.at, length);
  return {lo, hi, left.at, left.local};
}

std::span<const std::byte> bytes_of(std::span<const float> v) { return std::as_bytes(v); }

// Calls f(at, offset, count) for the floats [lo, hi) of `parts` taken end to end: `count` of
// them at `at`, which are floats [lo + offset, lo + offset + count) of the whole.
template <class F>
void for_range(std::span<Tensor* const> parts, size_t lo, size_t hi, const F& f) {
  for_each_segment(
      parts.size(), [&](size_t i) { return parts[i]->size(); }, lo, hi,
      [&](size_t i, size_t begin, size_t count, size_t offset) {
        f(parts[i]->data() + begin, offset, count);
      });
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

void SingleProcess::all_to_all(std::span<const std::byte> head, std::span<const std::byte> send,
                               std::span<const size_t> send_offsets,
                               std::span<const size_t> send_counts, std::span<std::byte> recv,
                               std::span<const size_t>) {
  if (recv.size() < head.size() + send_counts[0] || send.size() < send_offsets[0] + send_counts[0]) {
    throw std::logic_error("SingleProcess::all_to_all: short buffer");
  }
  std::copy(head.begin(), head.end(), recv.begin());
  std::copy_n(send.begin() + static_cast<std::ptrdiff_t>(send_offsets[0]), send_counts[0],
              recv.begin() + static_cast<std::ptrdiff_t>(head.size()));
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
  // Every tensor at a 64-byte boundary, as owned storage is: the kernels' aligned loads.
  constexpr size_t kAlign = Tensor::kAlignment / sizeof(float);
  for (Parameter* p : params_) {
    length_ += p->value.size();
    values_.push_back(&p->value);
    grads_.push_back(&p->grad);
    place_.push_back(span_);
    span_ += (p->value.size() + kAlign - 1) / kAlign * kAlign;
  }
  const Shape layout{std::max<size_t>(span_, 1)};
  weights_ = Tensor(layout);
  const int r = collective_->rank();
  leaf_.resize(plan_.last_piece(r) - plan_.first_piece(r));
  for (Tensor& l : leaf_) l = Tensor(layout);
  own_values_.resize(params_.size());
  own_grads_.resize(params_.size());
  bind(&Parameter::value, own_values_, weights_.data(), /*copy=*/true);
  bind(&Parameter::grad, own_grads_, leaf_.front().data(), /*copy=*/true);
}

DataParallelStep::~DataParallelStep() {
  unbind(&Parameter::value, own_values_);
  unbind(&Parameter::grad, own_grads_);
}

void DataParallelStep::bind(Tensor Parameter::*member, std::vector<Tensor>& saved, float* buffer,
                            bool copy) {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& t = params_[i]->*member;
    float* at = buffer + place_[i];
    if (t.data() == at) continue;
    if (copy) std::copy_n(t.data(), t.size(), at);
    const Shape shape = t.shape();
    if (t.owns_data()) saved[i] = std::move(t);  // views of this object's buffers are not kept
    t = Tensor::view(at, shape);
  }
}

void DataParallelStep::unbind(Tensor Parameter::*member, std::vector<Tensor>& saved) {
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& t = params_[i]->*member;
    if (t.owns_data() || saved[i].size() != t.size()) continue;  // replaced meanwhile: theirs
    std::copy_n(t.data(), t.size(), saved[i].data());
    t = std::move(saved[i]);
  }
}

size_t DataParallelStep::place(size_t at) const {
  size_t base = 0;
  for (size_t i = 0; i < values_.size(); ++i) {
    const size_t n = values_[i]->size();
    if (at < base + n) return place_[i] + (at - base);
    base += n;
  }
  return span_;
}

std::vector<size_t> DataParallelStep::slice_bytes() const {
  std::vector<size_t> bytes(static_cast<size_t>(plan_.processes));
  for (int p = 0; p < plan_.processes; ++p) {
    bytes[static_cast<size_t>(p)] =
        (place(slice_begin(p + 1)) - place(slice_begin(p))) * sizeof(float);
  }
  return bytes;
}

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
  // Whoever replaced a parameter's tensor since the last step (rather than writing into it)
  // gets it viewed again, its contents kept: normally this finds nothing to do.
  bind(&Parameter::value, own_values_, weights_.data(), /*copy=*/true);
  // With several pieces the dropout masks come from a per-piece generator, seeded by one draw
  // of the shared rng per step: every process draws the same, whichever pieces it owns.
  const bool piece_rngs = regularization.dropout > 0.0f && plan_.pieces > 1;
  const uint64_t step_seed = piece_rngs ? rng.next_u64() : 0;
  // Per piece: loss * rows, correct; room for as many pieces as any process has (the
  // exchange's head has one size everywhere).
  std::vector<double> stats(2 * plan_.most_pieces(), 0.0);
  for (size_t k = first; k < last; ++k) {
    // The backward pass writes the piece's gradient straight into its buffer.
    Tensor& leaf = leaf_[k - first];
    bind(&Parameter::grad, own_grads_, leaf.data(), /*copy=*/false);
    const size_t b = plan_.piece_begin(k, n), e = plan_.piece_end(k, n);
    if (b == e) {  // a last batch smaller than the pieces
      leaf.fill(0.0f);
      for (Parameter* p : params_) p->has_grad = true;
      continue;
    }
    const std::span<const uint32_t> idx = batch.subspan(b, e - b);
    const GatheredRows x{data.pixels, data.features, idx, scale};
    gather_labels(data.labels, idx, labels_);
    Rng piece_rng(step_seed ^ (0x9E3779B97F4A7C15ull * (k + 1)));
    // The gradient of the piece's mean loss times its share of the batch, rows_k / n (exactly
    // 1 for a single piece: the plain step's gradient), the share entering at the loss.
    const float share = static_cast<float>(static_cast<double>(e - b) / static_cast<double>(n));
    const StepResult r = loss_and_gradients(model, tape, x, labels_, regularization,
                                            piece_rngs ? piece_rng : rng, share);
    stats[2 * (k - first)] = r.loss * static_cast<double>(e - b);
    stats[2 * (k - first) + 1] = static_cast<double>(r.correct);
    if (!std::isfinite(r.loss)) continue;  // everyone throws below
    // Zero-fills the gradients nothing reached, and marks every one as holding a gradient
    // (the optimizer would otherwise zero the reduced slice): once per piece.
    for (Parameter* p : params_) p->gradient();
  }

  // One exchange carries the gradients and every piece's loss statistics; the statistics are
  // summed in piece order on every process, so all see the same loss (and throw alike).
  std::vector<double> all_stats(2 * plan_.pieces);
  reduce(stats, all_stats);
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

  const size_t lo = slice_begin(rank), hi = slice_begin(rank + 1);
  if (optimizer.elementwise()) {
    // The sharded update: this process steps only its slice, whose gradient it has just
    // completed, and the updated slices are gathered straight into the weights' buffer.
    // add_l2_gradients also adds to the gradient outside the slice, which nothing reads (its
    // loss term needs every weight).
    add_l2_gradients(model, regularization.l2, result.loss);
    optimizer.step_slice(params_, lo, hi);
    if (plan_.processes > 1) {
      const std::vector<size_t> counts = slice_bytes();
      collective_->all_gather_in_place(
          std::as_writable_bytes(std::span(weights_.data(), span_)), counts);
    }
  } else {
    // Any other optimizer needs the whole gradient: the completed slices are gathered into
    // the gradients' buffer and every process takes the whole step.
    if (plan_.processes > 1) {
      const std::vector<size_t> counts = slice_bytes();
      collective_->all_gather_in_place(
          std::as_writable_bytes(std::span(grads_.front()->data() - place_.front(), span_)),
          counts);
    }
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

size_t DataParallelStep::slice_begin(int p) const {
  if (p >= plan_.processes) return length_;
  // p * L / N, moved down to a cut that changes no result (<simdnn/parameter.h>: a multiple of
  // 64 floats from the start of the tensor it falls in): the optimizer kernels then take every
  // element in the same vector (or in the same scalar tail) as a whole step does, whatever the
  // SIMD width. A slice cut elsewhere changes bits: a kernel's tail may round differently
  // from its vectors (g++ contracts AdamW's w * decay - update into one FMA in the vector
  // loop and not in the one-lane tail).
  const size_t cut = static_cast<size_t>(p) * length_ / static_cast<size_t>(plan_.processes);
  return snap_to_cut(values_.size(), [&](size_t i) { return values_[i]->size(); }, cut);
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

void DataParallelStep::reduce(std::span<const double> my_stats, std::span<double> all_stats) {
  const int rank = collective_->rank();
  const size_t first = plan_.first_piece(rank);
  auto leaf = [&](size_t k) { return leaf_[k - first].data(); };
  // This process's largest tree nodes, summed locally (each into its first leaf).
  const std::vector<std::pair<size_t, size_t>> mine = plan_.nodes(rank);
  std::vector<float*> my_nodes;
  for (const auto& node : mine) {
    my_nodes.push_back(tree_sum(node.first, node.second, span_, leaf));
  }
  // The parameters' gradients view the buffer holding the reduced slice: the root's, or with
  // several processes the local buffer complete() leaves it in.
  auto view_result = [&](const float* slice_at, size_t offset) {
    for (Tensor& l : leaf_) {
      if (l.data() + offset == slice_at) {
        bind(&Parameter::grad, own_grads_, l.data(), /*copy=*/false);
        return;
      }
    }
    throw std::logic_error("data parallel: the reduced gradient is not in a local buffer");
  };
  const int processes = plan_.processes;
  if (processes == 1) {  // one node, the root
    std::copy_n(my_stats.begin(), all_stats.size(), all_stats.begin());
    view_result(my_nodes.front(), 0);
    return;
  }
  // Process d completes the tree on its slice of the gradient: every process sends it its
  // statistics (the head: its pieces' doubles) and its nodes' part of d's slice, laid out as
  // the weights; to itself only the statistics (its own nodes are read where they lie).
  auto part_at = [&](int d) { return place(slice_begin(d)); };
  auto part_size = [&](int d) { return place(slice_begin(d + 1)) - place(slice_begin(d)); };
  // Process p's statistics: the first of the head's bytes (the rest is padding).
  const auto stats_bytes = [&](int p) {
    return 2 * (plan_.last_piece(p) - plan_.first_piece(p)) * sizeof(double);
  };
  const size_t head_bytes = my_stats.size_bytes();
  const auto u = [](int p) { return static_cast<size_t>(p); };
  std::vector<size_t> send_offsets(u(processes)), send_counts(u(processes));
  std::vector<size_t> recv_counts(u(processes));
  std::vector<std::vector<std::pair<size_t, size_t>>> nodes_of(u(processes));
  size_t received = 0;
  for (int p = 0; p < processes; ++p) {
    nodes_of[u(p)] = plan_.nodes(p);
    const bool self = p == rank;
    send_counts[u(p)] = self ? 0 : mine.size() * part_size(p) * sizeof(float);
    recv_counts[u(p)] =
        head_bytes + (self ? 0 : nodes_of[u(p)].size() * part_size(rank) * sizeof(float));
    received += recv_counts[u(p)];
  }
  // One node is its own send buffer; several are interleaved into send_, each process's
  // parts together.
  std::span<const float> send;
  if (my_nodes.size() == 1) {
    for (int p = 0; p < processes; ++p) send_offsets[u(p)] = part_at(p) * sizeof(float);
    send = std::span<const float>(my_nodes.front(), span_);
  } else {
    send_.resize(mine.size() * span_);
    size_t at = 0;
    for (int d = 0; d < processes; ++d) {
      send_offsets[u(d)] = at * sizeof(float);
      if (d == rank) continue;
      for (float* node : my_nodes) {
        std::copy_n(node + part_at(d), part_size(d), send_.data() + at);
        at += part_size(d);
      }
    }
    send = std::span<const float>(send_.data(), at);
  }
  recv_.resize(received / sizeof(float));
  collective_->all_to_all(std::as_bytes(my_stats), std::as_bytes(send), send_offsets, send_counts,
                          std::as_writable_bytes(std::span(recv_)), recv_counts);
  std::vector<TreePart> given;
  size_t at = 0;  // floats into recv_
  for (int p = 0; p < processes; ++p) {
    std::memcpy(all_stats.data() + 2 * plan_.first_piece(p), recv_.data() + at, stats_bytes(p));
    at += head_bytes / sizeof(float);
    for (size_t j = 0; j < nodes_of[u(p)].size(); ++j) {
      const auto& node = nodes_of[u(p)][j];
      if (p == rank) {
        given.push_back({node.first, node.second, my_nodes[j] + part_at(rank), true});
      } else {
        given.push_back({node.first, node.second, recv_.data() + at, false});
        at += part_size(rank);
      }
    }
  }
  const TreePart root = complete(0, plan_.pieces, part_size(rank), given);
  view_result(root.at, part_at(rank));
}

}  // namespace simdnn
