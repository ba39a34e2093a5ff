// Bandwidth of the non-GEMM kernels against a plain memcpy of the same bytes.
//
// Every case reports bytes read + bytes written per iteration (SetBytesProcessed), so the
// bytes_per_second column is directly comparable with BM_Copy. Two working-set sizes: 64 KiB
// per array (L1/L2-resident) and 64 MiB per array (beyond L2 = 1 MiB/core and L3). Single
// thread, best SIMD target (the dispatcher's choice). Run with
//   --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
// and read the medians; see bench/README.md.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "simdnn/activation_kernels.h"
#include "simdnn/optimizer_kernels.h"
#include "simdnn/softmax_kernels.h"
#include "simdnn/vector_kernels.h"

namespace {

constexpr int64_t kSmallBytes = int64_t{64} << 10;  // per array
constexpr int64_t kLargeBytes = int64_t{64} << 20;  // per array
constexpr int64_t kSmallFloats = kSmallBytes / 4;
constexpr int64_t kLargeFloats = kLargeBytes / 4;

std::vector<float> random_vector(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

void set_bytes(benchmark::State& state, int64_t bytes_per_iteration) {
  state.SetBytesProcessed(state.iterations() * bytes_per_iteration);
}

// ---- baseline ----

void BM_Copy(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<float> x = random_vector(n, 1);
  std::vector<float> y(n);
  for (auto _ : state) {
    std::memcpy(y.data(), x.data(), n * sizeof(float));
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n * 4);
}
// kLargeFloats (16M) is also the large Adam size.
BENCHMARK(BM_Copy)->Arg(kSmallFloats)->Arg(kLargeFloats)->Arg(101770);

// ---- activations ----

void BM_ReluForward(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<float> x = random_vector(n, 2);
  std::vector<float> y(n);
  for (auto _ : state) {
    simdnn::relu_forward(n, x.data(), y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n * 4);
}
BENCHMARK(BM_ReluForward)->Arg(kSmallFloats)->Arg(kLargeFloats);

void BM_ReluForwardRef(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<float> x = random_vector(n, 2);
  std::vector<float> y(n);
  for (auto _ : state) {
    simdnn::relu_forward_ref(n, x.data(), y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n * 4);
}
BENCHMARK(BM_ReluForwardRef)->Arg(kSmallFloats);

void BM_ReluBackward(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<float> y = random_vector(n, 3), dy = random_vector(n, 4);
  std::vector<float> dx(n);
  for (auto _ : state) {
    simdnn::relu_backward(n, y.data(), dy.data(), dx.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 3 * n * 4);
}
BENCHMARK(BM_ReluBackward)->Arg(kSmallFloats)->Arg(kLargeFloats);

void BM_SigmoidForward(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<float> x = random_vector(n, 5, -8.0f, 8.0f);
  std::vector<float> y(n);
  for (auto _ : state) {
    simdnn::sigmoid_forward(n, x.data(), y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n * 4);
}
BENCHMARK(BM_SigmoidForward)->Arg(kSmallFloats)->Arg(kLargeFloats);

void BM_TanhForward(benchmark::State& state) {
  const int64_t n = state.range(0);
  const std::vector<float> x = random_vector(n, 6, -4.0f, 4.0f);
  std::vector<float> y(n);
  for (auto _ : state) {
    simdnn::tanh_forward(n, x.data(), y.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n * 4);
}
BENCHMARK(BM_TanhForward)->Arg(kSmallFloats)->Arg(kLargeFloats);

// ---- softmax / cross-entropy ----

// Args: total floats per array, columns.
void BM_SoftmaxRows(benchmark::State& state) {
  const int64_t total = state.range(0), cols = state.range(1), rows = total / cols;
  const std::vector<float> x = random_vector(rows * cols, 7, -5.0f, 5.0f);
  std::vector<float> y(rows * cols);
  for (auto _ : state) {
    simdnn::softmax_rows(rows, cols, x.data(), cols, y.data(), cols);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * rows * cols * 4);
}
BENCHMARK(BM_SoftmaxRows)
    ->Args({kSmallFloats, 10})
    ->Args({kSmallFloats, 1000})
    ->Args({kLargeFloats, 10})
    ->Args({kLargeFloats, 1000});

void BM_SoftmaxRowsRef(benchmark::State& state) {
  const int64_t total = state.range(0), cols = state.range(1), rows = total / cols;
  const std::vector<float> x = random_vector(rows * cols, 7, -5.0f, 5.0f);
  std::vector<float> y(rows * cols);
  for (auto _ : state) {
    simdnn::softmax_rows_ref(rows, cols, x.data(), cols, y.data(), cols);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * rows * cols * 4);
}
BENCHMARK(BM_SoftmaxRowsRef)->Args({kSmallFloats, 10})->Args({kSmallFloats, 1000});

void BM_LogSoftmaxRows(benchmark::State& state) {
  const int64_t total = state.range(0), cols = state.range(1), rows = total / cols;
  const std::vector<float> x = random_vector(rows * cols, 8, -5.0f, 5.0f);
  std::vector<float> y(rows * cols);
  for (auto _ : state) {
    simdnn::log_softmax_rows(rows, cols, x.data(), cols, y.data(), cols);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * rows * cols * 4);
}
BENCHMARK(BM_LogSoftmaxRows)->Args({kSmallFloats, 1000})->Args({kLargeFloats, 1000});

// Forward (logits -> probs, loss) then backward (probs -> dlogits) at B x 10: the training
// step's loss. Bytes: logits read, probs written, probs read, dlogits written.
void BM_CrossEntropyFwdBwd(benchmark::State& state) {
  const int64_t rows = state.range(0), cols = 10;
  const std::vector<float> logits = random_vector(rows * cols, 9, -5.0f, 5.0f);
  std::vector<int32_t> labels(rows);
  for (int64_t r = 0; r < rows; ++r) labels[r] = static_cast<int32_t>((r * 7) % cols);
  std::vector<float> probs(rows * cols), dlogits(rows * cols);
  for (auto _ : state) {
    const double loss = simdnn::softmax_cross_entropy_forward(rows, cols, logits.data(), cols,
                                                              labels.data(), probs.data());
    benchmark::DoNotOptimize(loss);
    simdnn::softmax_cross_entropy_backward(rows, cols, probs.data(), labels.data(),
                                           1.0f / static_cast<float>(rows), dlogits.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 4 * rows * cols * 4);
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(rows), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_CrossEntropyFwdBwd)->Arg(32)->Arg(256)->Arg(kLargeFloats / 10);

// ---- bias and reductions ----

// y (rows x 128) += bias, in place: y read and written.
void BM_AddBiasRows(benchmark::State& state) {
  const int64_t cols = 128, rows = state.range(0) / cols;
  std::vector<float> y = random_vector(rows * cols, 10);
  const std::vector<float> bias = random_vector(cols, 11);
  for (auto _ : state) {
    simdnn::add_bias_rows(rows, cols, bias.data(), y.data(), cols);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * rows * cols * 4);
}
BENCHMARK(BM_AddBiasRows)->Arg(kSmallFloats)->Arg(kLargeFloats);

// Bias gradient of a rows x 128 matrix: read once, 128 floats written.
void BM_ColumnSum(benchmark::State& state) {
  const int64_t cols = 128, rows = state.range(0) / cols;
  const std::vector<float> x = random_vector(rows * cols, 12);
  std::vector<float> out(cols);
  for (auto _ : state) {
    simdnn::column_sum(rows, cols, x.data(), cols, out.data(), false);
    benchmark::ClobberMemory();
  }
  set_bytes(state, rows * cols * 4);
}
BENCHMARK(BM_ColumnSum)->Arg(kSmallFloats)->Arg(kLargeFloats);

// ---- optimizer ----

// Adam on n parameters: w, g, m, v read; w, m, v written (7 floats of traffic per parameter).
// 101,770 is the MNIST MLP (784*128 + 128 + 128*10 + 10); 16M does not fit any cache.
void BM_AdamStep(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<float> w = random_vector(n, 13), m(n, 0.0f), v(n, 0.0f);
  const std::vector<float> g = random_vector(n, 14);
  simdnn::AdamStepParams p;
  p.inv_bias1 = 10.0f;
  p.inv_bias2 = 1000.0f;
  for (auto _ : state) {
    simdnn::adam_step(n, w.data(), g.data(), m.data(), v.data(), p);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 7 * n * 4);
}
BENCHMARK(BM_AdamStep)->Arg(101770)->Arg(16 << 20);

}  // namespace

BENCHMARK_MAIN();
