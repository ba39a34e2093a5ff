// One training epoch of the default model (784 -> 128 ReLU -> 10 softmax, Adam) at batch 32
// and 256 on 1 and 2 threads, and the same epoch's work split into its parts:
//   Epoch/...       the whole training step loop over 60,000 samples (training only, no eval),
//                   as tools/train runs it (gathered:1: the uint8 batch is converted inside the
//                   first layer's GEMMs) and with the batch first converted to floats
//                   (gathered:0, gather_batch + train_step on the tensor); fused:1 is
//                   train_step's fused output layer (Dense(10) + softmax cross-entropy in one
//                   op, Tape::dense_softmax_cross_entropy), fused:0 the same model with a
//                   linear (no-op) layer before the softmax, which makes train_step run the
//                   separate GEMM / bias / loss / dW / db / dH calls: same weights, same work
//   GemmOnly/...    just the GEMMs of those steps (forward X·W1, H·W2; backward dW1, dW2, dH),
//                   the first layer's on the shuffled uint8 rows as in training (gemm_gathered)
//   AdamOnly/...    just the optimizer updates (one per step over 101,770 parameters)
//   GatherOnly/...  just gather_batch: shuffled uint8 rows to floats (what gathered:1 avoids)
//   FirstLayer/...  the first layer's two big GEMMs for one batch, from floats or uint8 rows
//   OutputStep/...  one step's output layer on the tape, forward and backward (loss, dH, dW2,
//                   db2): Tape::dense_softmax_cross_entropy (fused:1) against dense +
//                   softmax_cross_entropy (fused:0), as train_step runs them
// "other" (bias, ReLU, softmax/CE, batching) is Epoch - GemmOnly - AdamOnly.
// Uses Fashion-MNIST from /usr/share/datasets/fashion-mnist when present (SIMDNN_DATA to
// override), random pixels otherwise: the timing does not depend on the pixel values.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <vector>

#include "simdnn/batches.h"
#include "simdnn/gemm.h"
#include "simdnn/idx.h"
#include "simdnn/layers.h"
#include "simdnn/model.h"
#include "simdnn/optimizer.h"
#include "simdnn/threading.h"
#include "simdnn/training.h"

namespace {

constexpr size_t kFeatures = 784, kHidden = 128, kClasses = 10;
// Forward 2·B·(784·128 + 128·10) + backward dW1, dW2, dH: 2·B·(784·128 + 2·128·10) per batch.
constexpr double kFlopsPerSample = 2.0 * (2.0 * kFeatures * kHidden + 3.0 * kHidden * kClasses);

struct TrainData {
  std::vector<uint8_t> pixels, labels;
  size_t count = 0;
};

const TrainData& train_data() {
  static const TrainData data = [] {
    TrainData d;
    const char* env = std::getenv("SIMDNN_DATA");
    const std::filesystem::path dir = env ? env : "/usr/share/datasets/fashion-mnist";
    try {
      simdnn::Dataset ds = simdnn::load_mnist_dir(dir, "train");
      d.pixels = std::move(ds.images.pixels);
      d.labels = std::move(ds.labels.labels);
      d.count = ds.images.count;
    } catch (const std::exception&) {
      simdnn::Rng rng(1);
      d.count = 60000;
      d.pixels.resize(d.count * kFeatures);
      d.labels.resize(d.count);
      for (auto& p : d.pixels) p = static_cast<uint8_t>(rng.below(256));
      for (auto& l : d.labels) l = static_cast<uint8_t>(rng.below(kClasses));
    }
    return d;
  }();
  return data;
}

void set_counters(benchmark::State& state, size_t samples) {
  state.counters["samples/s"] = benchmark::Counter(static_cast<double>(samples),
                                                   benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] = benchmark::Counter(samples * kFlopsPerSample * 1e-9,
                                                 benchmark::Counter::kIsIterationInvariantRate);
}

void Epoch(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const TrainData& d = train_data();
  simdnn::set_num_threads(threads);
  simdnn::Rng rng(1);
  simdnn::Model model =
      simdnn::Model::mlp({}, {kHidden}, simdnn::Activation::kRelu, kClasses, rng);
  simdnn::Adam adam;
  adam.set_threads(threads);
  // fused:0: a linear layer (records nothing) between the output Dense and the softmax.
  simdnn::Sequential separate;
  const auto& layers = model.network().layers();
  for (size_t i = 0; i < layers.size(); ++i) {
    if (i + 1 == layers.size()) {
      separate.add(std::make_unique<simdnn::ActivationLayer>(simdnn::Activation::kLinear));
    }
    separate.add(layers[i]->clone());
  }
  simdnn::Sequential& net = state.range(3) != 0 ? model.network() : separate;
  simdnn::Tape tape(threads);
  std::vector<uint32_t> order(d.count);
  simdnn::Tensor x;
  std::vector<int32_t> labels;
  const bool gathered = state.range(2) != 0;
  for (auto _ : state) {
    std::iota(order.begin(), order.end(), 0u);
    rng.shuffle(order);
    simdnn::group_batches_by_label(order, batch, d.labels);  // as tools/train does
    for (size_t s = 0; s < d.count; s += batch) {
      std::span<const uint32_t> idx(order.data() + s, std::min(batch, d.count - s));
      simdnn::gather_labels(d.labels, idx, labels);
      if (gathered) {  // as tools/train does: pixels converted inside the first layer's GEMMs
        const simdnn::GatheredRows rows{d.pixels, kFeatures, idx, 1.0f / 255.0f};
        simdnn::train_step(net, tape, adam, rows, labels);
      } else {
        simdnn::gather_batch(d.pixels, kFeatures, idx, 1.0f / 255.0f, x, threads);
        simdnn::train_step(net, tape, adam, x, labels);
      }
    }
  }
  set_counters(state, d.count);
}

void GemmOnly(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const TrainData& d = train_data();
  const int64_t count = static_cast<int64_t>(d.count);
  simdnn::set_num_threads(threads);
  simdnn::Rng rng(1);
  std::vector<uint32_t> order(d.count);
  std::vector<float> w1(kFeatures * kHidden, 0.01f), h(batch * kHidden),
      w2(kHidden * kClasses, 0.01f), z(batch * kClasses), dz(batch * kClasses, 0.1f),
      dh(batch * kHidden), dw1(kFeatures * kHidden), dw2(kHidden * kClasses);
  using simdnn::gemm;
  using simdnn::gemm_gathered;
  const auto N = simdnn::Transpose::kNo, T = simdnn::Transpose::kYes;
  for (auto _ : state) {
    std::iota(order.begin(), order.end(), 0u);
    rng.shuffle(order);
    simdnn::group_batches_by_label(order, batch, d.labels);  // as tools/train does
    for (int64_t s = 0; s < count; s += batch) {
      const int64_t b = std::min(batch, count - s);
      // The first layer reads the shuffled uint8 rows, as training does (gemm_gathered).
      const simdnn::GatheredRows x{d.pixels, kFeatures,
                                   std::span<const uint32_t>(order.data() + s, b),
                                   1.0f / 255.0f};
      gemm_gathered(N, N, kHidden, 1, x, w1.data(), kHidden, 0, h.data(), kHidden, threads);
      gemm(N, N, b, kClasses, kHidden, 1, h.data(), kHidden, w2.data(), kClasses, 0, z.data(),
           kClasses, threads);
      gemm(T, N, kHidden, kClasses, b, 1, h.data(), kHidden, dz.data(), kClasses, 0, dw2.data(),
           kClasses, threads);
      gemm(N, T, b, kHidden, kClasses, 1, dz.data(), kClasses, w2.data(), kClasses, 0,
           dh.data(), kHidden, threads);
      gemm_gathered(T, N, kHidden, 1, x, dh.data(), kHidden, 0, dw1.data(), kHidden, threads);
    }
    benchmark::DoNotOptimize(dw1.data());
  }
  set_counters(state, static_cast<size_t>(count));
}

void AdamOnly(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const size_t steps = (train_data().count + batch - 1) / batch;
  simdnn::set_num_threads(threads);
  simdnn::Rng rng(1);
  simdnn::Model model =
      simdnn::Model::mlp({}, {kHidden}, simdnn::Activation::kRelu, kClasses, rng);
  std::vector<simdnn::Parameter*> params = model.parameters();
  for (simdnn::Parameter* p : params) {
    p->grad.fill(1e-3f);
    p->has_grad = true;
  }
  simdnn::Adam adam;
  adam.set_threads(threads);
  for (auto _ : state) {
    for (size_t s = 0; s < steps; ++s) adam.step(params);
    benchmark::DoNotOptimize(params[0]->value.data());
  }
  set_counters(state, train_data().count);
}

void GatherOnly(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const TrainData& d = train_data();
  simdnn::set_num_threads(threads);
  simdnn::Rng rng(1);
  std::vector<uint32_t> order(d.count);
  simdnn::Tensor x;
  std::vector<int32_t> labels;
  for (auto _ : state) {
    std::iota(order.begin(), order.end(), 0u);
    rng.shuffle(order);
    for (size_t s = 0; s < d.count; s += batch) {
      std::span<const uint32_t> idx(order.data() + s, std::min(batch, d.count - s));
      simdnn::gather_batch(d.pixels, kFeatures, idx, 1.0f / 255.0f, x, threads);
      simdnn::gather_labels(d.labels, idx, labels);
    }
    benchmark::DoNotOptimize(x.data());
  }
  set_counters(state, d.count);
}

// The first layer's two big GEMMs for one batch of shuffled Fashion-MNIST images, forward
// X * W1 and dW1 = X^T * dH: from_floats:1 converts the batch with gather_batch first (and the
// GEMMs pack floats), from_floats:0 hands the GEMMs the uint8 rows (gemm_gathered), as training
// does. GFLOP/s counts the dense multiply-adds.
void FirstLayer(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const bool from_floats = state.range(1) != 0;
  const TrainData& d = train_data();
  simdnn::Rng rng(1);
  std::vector<uint32_t> order(d.count);
  std::iota(order.begin(), order.end(), 0u);
  rng.shuffle(order);
  simdnn::group_batches_by_label(order, batch, d.labels);
  std::vector<float> w1(kFeatures * kHidden, 0.01f), h(batch * kHidden),
      dh(batch * kHidden, 0.1f), dw1(kFeatures * kHidden);
  simdnn::Tensor x;
  const auto N = simdnn::Transpose::kNo, T = simdnn::Transpose::kYes;
  size_t start = 0;
  for (auto _ : state) {
    if (start + batch > d.count) start = 0;
    std::span<const uint32_t> idx(order.data() + start, batch);
    start += batch;
    if (from_floats) {
      simdnn::gather_batch(d.pixels, kFeatures, idx, 1.0f / 255.0f, x, 1);
      simdnn::gemm(N, N, batch, kHidden, kFeatures, 1, x.data(), kFeatures, w1.data(), kHidden,
                   0, h.data(), kHidden, 1);
      simdnn::gemm(T, N, kFeatures, kHidden, batch, 1, x.data(), kFeatures, dh.data(), kHidden,
                   0, dw1.data(), kHidden, 1);
    } else {
      const simdnn::GatheredRows rows{d.pixels, kFeatures, idx, 1.0f / 255.0f};
      simdnn::gemm_gathered(N, N, kHidden, 1, rows, w1.data(), kHidden, 0, h.data(), kHidden, 1);
      simdnn::gemm_gathered(T, N, kHidden, 1, rows, dh.data(), kHidden, 0, dw1.data(), kHidden,
                            1);
    }
    benchmark::DoNotOptimize(dw1.data());
  }
  state.counters["GFLOP/s"] =
      benchmark::Counter(4.0 * batch * kFeatures * kHidden * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
}

void OutputStep(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const bool fused = state.range(1) != 0;
  simdnn::set_num_threads(1);
  simdnn::Rng rng(3);
  simdnn::Tensor h({batch, kHidden});
  for (size_t i = 0; i < h.size(); ++i) h[i] = rng.uniform(0.0f, 2.0f);
  simdnn::Dense out(kHidden, kClasses, rng);
  std::vector<int32_t> labels(batch);
  for (auto& l : labels) l = static_cast<int32_t>(rng.below(kClasses));
  simdnn::Tape tape(1);
  for (auto _ : state) {
    tape.clear();
    out.weight.zero_grad();
    out.bias.zero_grad();
    const simdnn::Var x = tape.differentiable_input(h);  // so dH is computed, as in training
    const simdnn::Var loss =
        fused ? tape.dense_softmax_cross_entropy(x, tape.param(out.weight), tape.param(out.bias),
                                                 labels)
              : tape.softmax_cross_entropy(out.forward(tape, x), labels);
    tape.backward(loss);
    benchmark::DoNotOptimize(out.weight.grad.data());
  }
  state.counters["rows/s"] = benchmark::Counter(static_cast<double>(batch),
                                                benchmark::Counter::kIsIterationInvariantRate);
}

void Args(benchmark::internal::Benchmark* b) {
  for (int64_t batch : {32, 256}) {
    for (int64_t threads : {1, 2}) b->Args({batch, threads});
  }
  b->ArgNames({"batch", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(1.0);
}

}  // namespace

void EpochArgs(benchmark::internal::Benchmark* b) {
  for (int64_t batch : {32, 256}) {
    for (int64_t threads : {1, 2}) {
      b->Args({batch, threads, 1, 1});
      b->Args({batch, threads, 1, 0});
      b->Args({batch, threads, 0, 1});
    }
  }
  b->ArgNames({"batch", "threads", "gathered", "fused"})
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->MinTime(1.0);
}

BENCHMARK(Epoch)->Apply(EpochArgs);
BENCHMARK(GemmOnly)->Apply(Args);
BENCHMARK(AdamOnly)->Apply(Args);
BENCHMARK(GatherOnly)->Apply(Args);
BENCHMARK(OutputStep)
    ->ArgsProduct({{32, 256}, {1, 0}})
    ->ArgNames({"batch", "fused"})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(FirstLayer)
    ->ArgsProduct({{32, 256}, {1, 0}})
    ->ArgNames({"batch", "from_floats"})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

BENCHMARK_MAIN();
