// Data-parallel training: several processes share every batch, each computes the gradients of
// its part, and the gradients are summed in a fixed order so that every process applies the
// same optimizer step to the same weights. fit() (<simdnn/fit.h>) runs it when
// FitOptions::data_parallel is set; the processes and their transport are a Collective, which
// this module only declares: the MPI one is simdnn::distributed's (<simdnn/distributed/mpi.h>),
// so nn itself links no MPI.
//
// The decomposition (docs/distributed.md). Every global batch of n rows (the same batch, in the
// same order, as one process would train on: the shuffle comes from the shared seed) is cut into
// `pieces` contiguous pieces, piece k being rows [k*n/K, (k+1)*n/K); process p owns pieces
// [p*K/N, (p+1)*K/N). Each piece's gradient is the gradient of its mean loss, scaled by its
// share of the batch (rows_k / n); the batch's gradient is their sum over a fixed binary tree
// on the K pieces (node [lo, hi) = node [lo, mid) + node [mid, hi), mid = lo + (hi - lo) / 2).
// A process sums the largest tree nodes inside its own pieces locally, sends those, and the
// nodes are completed into the root by the same tree: the result depends on K, never on N or
// on the order messages arrive in. Hence:
//   - pieces = 0 (one per process): K = N; the same N and seed give the same bits on every
//     run, and N = 1 is exactly the plain single-process step (one piece, scale 1).
//   - pieces = K fixed (K >= N): every N up to K gives the same bits as one process with the
//     same K. The price is K smaller steps per batch instead of N.
// Each process receives, for its slice (1/N) of the gradient, every process's tree nodes
// (all-to-all) and completes the tree there. With an element-wise optimizer (Adam, AdamW,
// SGD: Optimizer::elementwise) it then updates only that slice of the parameters and the
// updated slices are gathered (all-gather), as ZeRO stage 1 shards the optimizer: the same
// arithmetic per element as a whole step, so the same bits, for 1/N of the update's work.
// Any other optimizer gets the gathered gradient and takes the whole step. Either way two
// collective calls per step; with one node per process (K = N, or N dividing a power-of-two
// K) 2(N-1)/N of the gradient's size in and out per process, the volume of a ring allreduce.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "simdnn/batches.h"
#include "simdnn/layers.h"
#include "simdnn/optimizer.h"
#include "simdnn/random.h"
#include "simdnn/training.h"

namespace simdnn {

// The processes of a data-parallel run and the two exchanges it needs, as bytes. A transport
// implements it (MPI: MpiCollective); every process calls each exchange in the same order with
// matching counts. A transport reports a failure by throwing.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;  // this process, in [0, size())
  virtual int size() const = 0;
  // Sends every process p the bytes `head` followed by send_counts[p] bytes of `send` from
  // byte send_offsets[p] (0 bytes are allowed, e.g. to itself), and receives from each process
  // p recv_counts[p] bytes: its head, then its part for this process, stored in `recv` one
  // after the other in process order (MPI_Alltoallv's exchange, plus the head). `head` has
  // the same size on every process. It carries what every process must see (a step's loss
  // statistics) in the same exchange as the gradient, which is then sent from where it lies
  // without a copy into a buffer with room for it.
  virtual void all_to_all(std::span<const std::byte> head, std::span<const std::byte> send,
                          std::span<const size_t> send_offsets,
                          std::span<const size_t> send_counts, std::span<std::byte> recv,
                          std::span<const size_t> recv_counts) = 0;
  // `all` receives every process's `mine`, counts[p] bytes each, in process order
  // (MPI_Allgatherv); counts[rank()] == mine.size().
  virtual void all_gather(std::span<const std::byte> mine, std::span<std::byte> all,
                          std::span<const size_t> counts) = 0;
  // all_gather() with this process's part already in place in `all`: process p's counts[p]
  // bytes start at the sum of counts[0, p) (MPI_Allgatherv with MPI_IN_PLACE). The weights,
  // laid out in one buffer, are gathered so straight into the parameters.
  virtual void all_gather_in_place(std::span<std::byte> all, std::span<const size_t> counts) = 0;
};

// One process alone: what fit() uses for FitOptions::data_parallel without a collective (e.g.
// `train --micro-shards K` on one machine, which writes the bits K processes would).
class SingleProcess final : public Collective {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void all_to_all(std::span<const std::byte> head, std::span<const std::byte> send,
                  std::span<const size_t> send_offsets, std::span<const size_t> send_counts,
                  std::span<std::byte> recv, std::span<const size_t> recv_counts) override;
  void all_gather(std::span<const std::byte> mine, std::span<std::byte> all,
                  std::span<const size_t> counts) override;
  void all_gather_in_place(std::span<std::byte>, std::span<const size_t>) override {}
};

struct DataParallelOptions {
  // The processes; nullptr: this process alone (SingleProcess). Borrowed.
  Collective* collective = nullptr;
  // K, the pieces of every batch (see the top of this header); 0: one per process. Must be
  // >= the number of processes.
  size_t pieces = 0;
};

// Which pieces and rows belong to whom (the decomposition above), for K pieces on N processes.
struct ShardPlan {
  size_t pieces = 1;
  int processes = 1;
  // [first, last) rows of piece k of a batch of n rows.
  size_t piece_begin(size_t k, size_t n) const { return k * n / pieces; }
  size_t piece_end(size_t k, size_t n) const { return (k + 1) * n / pieces; }
  // [first, last) pieces of process p.
  size_t first_piece(int p) const { return static_cast<size_t>(p) * pieces / processes; }
  size_t last_piece(int p) const { return static_cast<size_t>(p + 1) * pieces / processes; }
  // The most pieces any process owns: ceil(pieces / processes).
  size_t most_pieces() const {
    return (pieces + static_cast<size_t>(processes) - 1) / static_cast<size_t>(processes);
  }
  // The largest tree nodes [lo, hi) inside process p's pieces, left to right: what p sends.
  std::vector<std::pair<size_t, size_t>> nodes(int p) const;
};

// One data-parallel training step after another: fit()'s step when FitOptions::data_parallel
// is set. Keeps its buffers between steps.
// For its lifetime the parameters' values are views (Tensor::view) of one buffer of this
// object, each tensor at a 64-byte-aligned offset, so that the all-gather of the updated
// slices writes straight into them; their gradients are views of the buffer of the piece being
// computed, laid out alike, which the all-to-all sends from. The destructor gives every
// parameter its own storage back, holding the current values. Code that replaces a
// parameter's tensor meanwhile (rather than writing into it) is bound again at the next step.
class DataParallelStep {
 public:
  // Throws std::invalid_argument when pieces < the number of processes.
  DataParallelStep(const DataParallelOptions& options, std::span<Parameter* const> params);
  ~DataParallelStep();
  DataParallelStep(const DataParallelStep&) = delete;
  DataParallelStep& operator=(const DataParallelStep&) = delete;

  const ShardPlan& plan() const { return plan_; }
  Collective& collective() { return *collective_; }

  // Throws std::invalid_argument naming the first process whose `values` differ from this
  // one's (every process must start from the same data, model, settings and random state).
  void check_agreement(std::span<const uint64_t> values, std::span<const char* const> names);

  // The step for the global batch `batch` (row indices into `data`, already grouped by label)
  // of the whole run: this process's pieces forward and backward, the loss statistics and the
  // gradients combined with every process's, then the L2 gradient and the optimizer's step on
  // this process's slice, the slices gathered (see the top), so that every process holds the
  // same weights. The result is the global batch's (as train_step's for the whole batch).
  // With one piece `rng` draws the dropout masks as train_step does; with more, one draw of
  // `rng` per step seeds each piece's masks (by piece number: independent of N).
  // Throws NonFiniteLoss, on every process alike, before touching the parameters.
  // With an element-wise optimizer each process keeps its state (Adam's moments) current for
  // its own slice only: call gather_optimizer_state() before reading or saving that state.
  StepResult step(Sequential& model, Tape& tape, Optimizer& optimizer,
                  const LabelledSamples& data, std::span<const uint32_t> batch, float scale,
                  const Regularization& regularization, Rng& rng);

  // Brings every process's optimizer state up to date for the whole model, from the slices
  // the processes updated (one all-gather; every process calls it at the same point). fit()
  // does so after every epoch, before the checkpoint.
  void gather_optimizer_state(Optimizer& optimizer);

 private:
  // The all-to-all: every piece's statistics (2 doubles each) into all_stats, and the tree
  // sum of every piece's gradient on this process's slice, left in the parameters' gradients
  // (which it binds to the local buffer holding it).
  void reduce(std::span<const double> my_stats, std::span<double> all_stats);
  // The all-gather: `all` = every process's `mine` in process order, process p's being
  // per_float floats for each float of its slice.
  void gather(std::span<const float> mine, size_t per_float, std::vector<float>& all);
  // Process p's slice of the parameters taken end to end: floats [slice_begin(p),
  // slice_begin(p + 1)).
  size_t slice_begin(int p) const;
  // Where float `at` of the parameters taken end to end lies in a buffer laid out like
  // weights_ (at == length_: the layout's end).
  size_t place(size_t at) const;
  // The byte counts of every process's slice in that layout.
  std::vector<size_t> slice_bytes() const;
  // Makes every parameter's `member` (value or grad) a view of `buffer` at its place, keeping
  // the storage it owned in saved[i] and, when `copy`, its contents.
  void bind(Tensor Parameter::*member, std::vector<Tensor>& saved, float* buffer, bool copy);
  // Gives every parameter's `member` its own storage back, with the view's contents.
  void unbind(Tensor Parameter::*member, std::vector<Tensor>& saved);

  std::unique_ptr<SingleProcess> own_;  // when no collective was given
  Collective* collective_;
  ShardPlan plan_;
  std::vector<Parameter*> params_;
  std::vector<Tensor*> values_, grads_;  // params_' values and gradients
  size_t length_ = 0;                    // floats in all gradients
  // The buffers' layout: parameter i at place_[i], 64-byte aligned; span_ floats in all.
  std::vector<size_t> place_;
  size_t span_ = 0;
  Tensor weights_;  // the parameters' values, which view it
  // This process's pieces' gradients, one buffer each, laid out as weights_; the parameters'
  // gradients view the one being computed, or the one holding the reduced slice.
  std::vector<Tensor> leaf_;
  std::vector<Tensor> own_values_, own_grads_;  // the parameters' storage, given back at the end
  std::vector<float> send_, recv_, gathered_;
  std::vector<int32_t> labels_;
};

}  // namespace simdnn
