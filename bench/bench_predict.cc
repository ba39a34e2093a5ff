// In-process inference of the served model shape (784 -> 128 ReLU -> 10 softmax, random
// weights): what tools/serve pays per request in model.predict, and batch throughput.
//
//   PredictLatency/single_image      one image per predict call, one thread; besides the mean
//                                    time, counters p50_us / p99_us / max_us from timing every
//                                    call individually (steady_clock around each predict).
//   PredictLatency/single_image_u8   the same plus the uint8 -> float scaling the server does.
//   PredictThroughput/batch:B/threads:T
//                                    10,000 images in predict calls of B rows; images_per_s.
//   Explain/integrated_gradients/steps:32
//                                    one integrated-gradients explanation of one image (32
//                                    path points plus the image and the baseline: one batched
//                                    forward and backward of 34 rows), one thread.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <vector>

#include "simdnn/attribution.h"
#include "simdnn/model.h"
#include "simdnn/random.h"
#include "simdnn/tensor.h"
#include "simdnn/threading.h"

namespace {

constexpr size_t kFeatures = 784;
constexpr size_t kImages = 10000;

simdnn::Model make_model() {
  simdnn::ModelInfo info;
  info.class_names = simdnn::digit_class_names();
  simdnn::Rng rng(1);
  return simdnn::Model::mlp(info, {128}, simdnn::Activation::kRelu, 10, rng);
}

// MNIST-like pixels: mostly background, some ink.
std::vector<uint8_t> make_pixels(size_t images) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> dist(0, 255);
  std::vector<uint8_t> px(images * kFeatures);
  for (auto& v : px) v = static_cast<uint8_t>(std::max(0, dist(rng) - 128) * 2);
  return px;
}

double percentile(std::vector<double>& sorted, double q) {
  const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(q * sorted.size()));
  return sorted[i];
}

void run_single(benchmark::State& state, bool include_scaling) {
  simdnn::enable_flush_to_zero();
  simdnn::Model model = make_model();
  const std::vector<uint8_t> pixels = make_pixels(256);
  simdnn::Tensor x(simdnn::Shape{1, kFeatures});
  for (size_t i = 0; i < kFeatures; ++i) x[i] = pixels[i] / 255.0f;
  simdnn::Workspace workspace;
  model.predict(x, workspace, 1);  // buffers sized once, as after a server's first request

  std::vector<double> micros;
  micros.reserve(1 << 20);
  size_t image = 0;
  float sink = 0.0f;
  for (auto _ : state) {
    const auto start = std::chrono::steady_clock::now();
    if (include_scaling) {
      const uint8_t* src = pixels.data() + (image++ % 256) * kFeatures;
      float* dst = x.data();
      for (size_t i = 0; i < kFeatures; ++i) dst[i] = src[i] * (1.0f / 255.0f);
    }
    const simdnn::Tensor& p = model.predict(x, workspace, 1);
    sink += p[0];
    const auto end = std::chrono::steady_clock::now();
    micros.push_back(std::chrono::duration<double, std::micro>(end - start).count());
  }
  benchmark::DoNotOptimize(sink);
  std::sort(micros.begin(), micros.end());
  state.counters["p50_us"] = percentile(micros, 0.50);
  state.counters["p99_us"] = percentile(micros, 0.99);
  state.counters["max_us"] = micros.back();
  state.SetItemsProcessed(state.iterations());
}

void BM_PredictSingle(benchmark::State& state) { run_single(state, false); }
void BM_PredictSingleU8(benchmark::State& state) { run_single(state, true); }

void BM_PredictThroughput(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  simdnn::set_num_threads(threads);
  simdnn::Model model = make_model();
  const std::vector<uint8_t> pixels = make_pixels(kImages);
  // The whole set as floats up front: this measures the model, not the conversion.
  std::vector<float> all(pixels.size());
  for (size_t i = 0; i < pixels.size(); ++i) all[i] = pixels[i] / 255.0f;
  simdnn::Tensor x(simdnn::Shape{batch, kFeatures});
  simdnn::Workspace workspace;
  float sink = 0.0f;
  for (auto _ : state) {
    for (size_t start = 0; start < kImages; start += batch) {
      const size_t n = std::min(batch, kImages - start);
      x.resize(simdnn::Shape{n, kFeatures});
      std::copy_n(all.data() + start * kFeatures, n * kFeatures, x.data());
      const simdnn::Tensor& p = model.predict(x, workspace, threads);
      sink += p[0];
    }
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kImages));
  state.counters["images_per_s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * kImages), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_PredictSingle)->Name("PredictLatency/single_image")->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_PredictSingleU8)->Name("PredictLatency/single_image_u8")->MinTime(1.0)->UseRealTime();
BENCHMARK(BM_PredictThroughput)
    ->Name("PredictThroughput")
    ->ArgNames({"batch", "threads"})
    ->ArgsProduct({{1, 32, 256, 1000, 10000}, {1, 2}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(0.5);

void BM_ExplainIntegratedGradients(benchmark::State& state) {
  simdnn::enable_flush_to_zero();
  const simdnn::Model model = make_model();
  const std::vector<uint8_t> pixels = make_pixels(16);
  std::vector<float> x(kFeatures);
  simdnn::Explainer explainer(model, {.threads = 1});
  const size_t steps = static_cast<size_t>(state.range(0));
  size_t image = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kFeatures; ++i) x[i] = pixels[image * kFeatures + i] / 255.0f;
    image = (image + 1) % 16;
    simdnn::Attribution a = explainer.integrated_gradients(x, image % 10, steps);
    benchmark::DoNotOptimize(a.values.data());
  }
}
BENCHMARK(BM_ExplainIntegratedGradients)
    ->Name("Explain/integrated_gradients")
    ->ArgName("steps")
    ->Arg(32)
    ->MinTime(1.0)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

BENCHMARK_MAIN();
