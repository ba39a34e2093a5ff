// Data-parallel fit() (<simdnn/data_parallel.h>) without MPI: the shard plan's tree nodes, and
// processes simulated by threads exchanging through shared memory: one piece is the plain
// loop's step, a fixed number of pieces gives the same bits on 1, 2 and 3 "processes", and the
// sharded optimizer step gives the whole step's bits and, gathered, its state.
#include <doctest/doctest.h>

#include <algorithm>
#include <barrier>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "simdnn/data_parallel.h"
#include "simdnn/fit.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_data_parallel {

namespace {

// N threads as N processes: each exchange publishes the senders' buffers, waits for all, copies
// what is addressed to this one, and waits again before anyone reuses a buffer.
struct Hub {
  explicit Hub(int n) : n(n), barrier(n), send(n), head(n), counts(n), offsets(n) {}
  int n;
  std::barrier<> barrier;
  std::vector<const std::byte*> send;
  std::vector<std::span<const std::byte>> head;
  std::vector<std::vector<size_t>> counts, offsets;
};

class ThreadCollective final : public simdnn::Collective {
 public:
  ThreadCollective(Hub& hub, int rank) : hub_(hub), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return hub_.n; }
  void all_to_all(std::span<const std::byte> head, std::span<const std::byte> send,
                  std::span<const size_t> send_offsets, std::span<const size_t> send_counts,
                  std::span<std::byte> recv, std::span<const size_t> recv_counts) override {
    hub_.send[rank_] = send.data();
    hub_.head[rank_] = head;
    hub_.counts[rank_].assign(send_counts.begin(), send_counts.end());
    hub_.offsets[rank_].assign(send_offsets.begin(), send_offsets.end());
    hub_.barrier.arrive_and_wait();
    size_t at = 0;
    for (int p = 0; p < hub_.n; ++p) {
      const std::span<const std::byte> h = hub_.head[p];
      if (h.size() + hub_.counts[p][rank_] != recv_counts[p]) throw std::logic_error("counts differ");
      std::memcpy(recv.data() + at, h.data(), h.size());
      std::memcpy(recv.data() + at + h.size(), hub_.send[p] + hub_.offsets[p][rank_],
                  hub_.counts[p][rank_]);
      at += recv_counts[p];
    }
    hub_.barrier.arrive_and_wait();
  }
  void all_gather(std::span<const std::byte> mine, std::span<std::byte> all,
                  std::span<const size_t> counts) override {
    hub_.send[rank_] = mine.data();
    hub_.barrier.arrive_and_wait();
    size_t at = 0;
    for (int p = 0; p < hub_.n; ++p) {
      std::memcpy(all.data() + at, hub_.send[p], counts[p]);
      at += counts[p];
    }
    hub_.barrier.arrive_and_wait();
  }
  void all_gather_in_place(std::span<std::byte> all, std::span<const size_t> counts) override {
    hub_.send[rank_] = all.data();
    hub_.barrier.arrive_and_wait();
    size_t at = 0;
    for (int p = 0; p < hub_.n; ++p) {
      if (p != rank_) std::memcpy(all.data() + at, hub_.send[p] + at, counts[p]);
      at += counts[p];
    }
    hub_.barrier.arrive_and_wait();
  }

 private:
  Hub& hub_;
  int rank_;
};

struct Data {
  std::vector<uint8_t> pixels, labels;
  static constexpr size_t kCount = 150, kFeatures = 16, kClasses = 3;
  simdnn::LabelledSamples samples() const { return {pixels, labels, kFeatures}; }
};

Data make_data() {
  Data d;
  simdnn::Rng rng(3);
  d.pixels.resize(d.kCount * d.kFeatures);
  d.labels.resize(d.kCount);
  for (size_t i = 0; i < d.kCount; ++i) {
    const auto label = static_cast<uint8_t>(rng.below(d.kClasses));
    d.labels[i] = label;
    for (size_t p = 0; p < d.kFeatures; ++p) {
      d.pixels[i * d.kFeatures + p] =
          static_cast<uint8_t>(rng.below(80) + (p / 5 == label ? 150 : 0));
    }
  }
  return d;
}

// Adam that takes whole steps only (not elementwise()): data-parallel fit() then gathers the
// gradient and every process steps every parameter, instead of sharding the update.
class WholeStepAdam final : public simdnn::Optimizer {
 public:
  explicit WholeStepAdam(simdnn::AdamOptions options = {}) : adam_(options) {}
  void step(std::span<simdnn::Parameter* const> params) override {
    adam_.step(params);
    steps_ = adam_.steps();
  }
  std::string name() const override { return "adam"; }
  float learning_rate() const override { return adam_.learning_rate(); }
  void set_learning_rate(float lr) override { adam_.set_learning_rate(lr); }
  std::vector<std::pair<std::string, simdnn::Tensor*>> state(
      std::span<simdnn::Parameter* const> params) override {
    return adam_.state(params);
  }

 private:
  simdnn::Adam adam_;
};

// One "process"'s model weights and optimizer state after fit(), each end to end.
struct Trained {
  std::vector<float> weights, state;
  // Whether every parameter owned its value and gradient storage again after fit() (during a
  // data-parallel fit they view the step's buffers).
  bool owns_storage = true;
};

// Trains a fresh model (same seed) on every "process" and returns what each ends with.
// processes = 0: plain fit(). whole_step: WholeStepAdam instead of Adam. adamw: with AdamW's
// weight decay.
std::vector<Trained> train_all(const Data& data, int processes, size_t pieces, float dropout,
                               bool whole_step = false, bool adamw = false) {
  auto one = [&](simdnn::Collective* collective, Trained* out) {
    simdnn::Rng rng(11);
    simdnn::ModelInfo info;
    info.input_height = 4;
    info.input_width = 4;
    info.class_names = {"a", "b", "c"};
    simdnn::Model model = simdnn::Model::mlp(info, {10}, simdnn::Activation::kRelu,
                                             Data::kClasses, rng);
    const simdnn::AdamOptions adam_options{.weight_decay = adamw ? 0.004f : 0.0f};
    simdnn::Adam adam(adam_options);
    WholeStepAdam whole(adam_options);
    simdnn::Optimizer& optimizer = whole_step ? static_cast<simdnn::Optimizer&>(whole) : adam;
    simdnn::FitOptions options;
    options.epochs = 2;
    options.batch = 13;  // 150 = 11 * 13 + 7: a smaller last batch, and pieces of unequal rows
    options.threads = 1;
    options.regularization.dropout = dropout;
    options.regularization.l2 = 1e-3f;
    if (processes > 0) options.data_parallel = simdnn::DataParallelOptions{collective, pieces};
    simdnn::fit(model, optimizer, rng, data.samples(), {}, options);
    for (const simdnn::Parameter* p : model.parameters()) {
      out->owns_storage = out->owns_storage && p->value.owns_data() && p->grad.owns_data();
      out->weights.insert(out->weights.end(), p->value.data(), p->value.data() + p->value.size());
    }
    for (const auto& slot : optimizer.state(model.parameters())) {
      const simdnn::Tensor& t = *slot.second;
      out->state.insert(out->state.end(), t.data(), t.data() + t.size());
    }
  };
  std::vector<Trained> trained(static_cast<size_t>(std::max(processes, 1)));
  if (processes <= 1) {
    one(nullptr, &trained[0]);
    return trained;
  }
  Hub hub(processes);
  std::vector<ThreadCollective> collectives;
  collectives.reserve(static_cast<size_t>(processes));
  for (int r = 0; r < processes; ++r) collectives.emplace_back(hub, r);
  std::vector<std::thread> threads;
  for (int r = 1; r < processes; ++r) threads.emplace_back(one, &collectives[r], &trained[r]);
  one(&collectives[0], &trained[0]);
  for (auto& t : threads) t.join();
  return trained;
}

// The first process's weights.
std::vector<float> train(const Data& data, int processes, size_t pieces, float dropout,
                         bool whole_step = false, bool adamw = false) {
  return train_all(data, processes, pieces, dropout, whole_step, adamw)[0].weights;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("ShardPlan: every process's tree nodes tile its pieces and all of them tile the batch") {
  for (size_t pieces = 1; pieces <= 9; ++pieces) {
    for (int processes = 1; processes <= static_cast<int>(pieces); ++processes) {
      const simdnn::ShardPlan plan{pieces, processes};
      size_t next = 0;
      for (int p = 0; p < processes; ++p) {
        CHECK(plan.first_piece(p) == next);
        for (const auto& node : plan.nodes(p)) {
          CHECK(node.first == next);
          CHECK(node.second > node.first);
          next = node.second;
        }
        CHECK(plan.last_piece(p) == next);
        CHECK(plan.last_piece(p) > plan.first_piece(p));
      }
      CHECK(next == pieces);
    }
  }
  // A power-of-two K on a dividing N: one node per process (the all-reduce's volume).
  const simdnn::ShardPlan eight{8, 4};
  for (int p = 0; p < 4; ++p) CHECK(eight.nodes(p).size() == 1);
  CHECK(simdnn::ShardPlan{8, 3}.nodes(1).size() == 2);  // pieces 2..4: [2,4) and [4,5)
}

TEST_CASE("data-parallel fit: one piece is the plain loop bit for bit") {
  const Data data = make_data();
  CHECK(same_bits(train(data, 0, 0, 0.2f), train(data, 1, 0, 0.2f)));
}

TEST_CASE("data-parallel fit: fixed pieces give the same bits on 1 2 and 3 processes") {
  const Data data = make_data();
  for (float dropout : {0.0f, 0.25f}) {
    const std::vector<float> one = train(data, 1, 4, dropout);
    CHECK(same_bits(one, train(data, 2, 4, dropout)));
    CHECK(same_bits(one, train(data, 3, 4, dropout)));
    // Another decomposition rounds differently (else this would show nothing).
    CHECK_FALSE(same_bits(one, train(data, 0, 0, dropout)));
  }
  // 5 pieces on 3 processes: process 1 owns pieces 1 and 2, two tree nodes ([1, 2) and
  // [2, 3)), so it interleaves them per receiver and completes its slice from both.
  const std::vector<float> five = train(data, 1, 5, 0.0f);
  CHECK(same_bits(five, train(data, 2, 5, 0.0f)));
  CHECK(same_bits(five, train(data, 3, 5, 0.0f)));
  // Pieces = processes: the same N gives the same bits every time.
  CHECK(same_bits(train(data, 3, 0, 0.0f), train(data, 3, 0, 0.0f)));
}

TEST_CASE("data-parallel fit: fewer pieces than processes is refused") {
  std::vector<simdnn::Parameter*> none;
  Hub hub(2);
  ThreadCollective first(hub, 0);
  CHECK_THROWS_AS(simdnn::DataParallelStep(simdnn::DataParallelOptions{&first, 1}, none),
                  std::invalid_argument);
}

TEST_CASE("data-parallel fit: the sharded optimizer step gives the whole step's bits") {
  // Each process updates its slice and the slices are gathered, against every process taking
  // the whole step on the gathered gradient: the same arithmetic per element.
  const Data data = make_data();
  for (float dropout : {0.0f, 0.25f}) {
    CHECK(same_bits(train(data, 2, 0, dropout), train(data, 2, 0, dropout, true)));
    CHECK(same_bits(train(data, 3, 4, dropout), train(data, 3, 4, dropout, true)));
  }
  // AdamW's decay rounds differently in the kernel's scalar tail: the slices are cut so that
  // no element moves between the vectors and the tail.
  CHECK(same_bits(train(data, 2, 0, 0.0f, false, true), train(data, 2, 0, 0.0f, true, true)));
  CHECK(same_bits(train(data, 3, 0, 0.0f, false, true), train(data, 3, 0, 0.0f, true, true)));
  CHECK(same_bits(train(data, 1, 0, 0.0f), train(data, 0, 0, 0.0f, true)));
}

TEST_CASE("data-parallel fit: every process ends with the whole optimizer state") {
  // Each process steps only its slice of Adam's moments; fit() gathers them after every epoch,
  // so the lead's checkpoint holds what one process would have.
  const Data data = make_data();
  const Trained one = train_all(data, 1, 4, 0.0f)[0];
  const std::vector<Trained> three = train_all(data, 3, 4, 0.0f);
  CHECK(one.owns_storage);
  for (const Trained& t : three) {
    CHECK(same_bits(t.weights, one.weights));
    CHECK(same_bits(t.state, one.state));
    CHECK(t.owns_storage);  // the step's buffers were given back, values and all
  }
  CHECK(one.state.size() == 2 * one.weights.size());  // Adam: m and v
}

TEST_CASE("data-parallel fit: an optimizer without a sliced step refuses one") {
  WholeStepAdam whole;
  std::vector<simdnn::Parameter*> none;
  CHECK_FALSE(whole.elementwise());
  CHECK_THROWS_AS(whole.step_slice(none, 0, 0), std::logic_error);
}

}  // namespace test_data_parallel
