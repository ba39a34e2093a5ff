// GEMM throughput (GFLOP/s) of simdnn::gemm against OpenBLAS cblas_sgemm and oneDNN dnnl_sgemm
// (when found at configure time) on square sizes and the MLP training shapes, 1 and 2 threads.
// Benchmark names: <library>/<shape>/threads:<t>. bench/run_gemm_bench.sh runs each library in
// its own process (so one library's idle spinning threads cannot slow another) and tabulates.
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "simdnn/gemm.h"
#include "simdnn/output_layer.h"
#include "simdnn/softmax_kernels.h"
#include "simdnn/vector_kernels.h"
#include "simdnn/testing/simd_target_control.h"

#ifdef SIMDNN_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef SIMDNN_HAVE_DNNL
#include <dnnl.h>
#endif

namespace {

using simdnn::Transpose;

struct Shape {
  std::string name;
  Transpose ta, tb;
  int64_t m, n, k;
};

std::vector<Shape> shapes() {
  const Transpose N = Transpose::kNo, T = Transpose::kYes;
  std::vector<Shape> out;
  for (int64_t s : {64, 128, 256, 512, 1024, 2048}) {
    out.push_back({"sq" + std::to_string(s), N, N, s, s, s});
  }
  for (int64_t b : {32, 256}) {
    const std::string bs = "B" + std::to_string(b);
    out.push_back({"fwd1_XW1_" + bs, N, N, b, 128, 784});
    out.push_back({"fwd2_HW2_" + bs, N, N, b, 10, 128});
    out.push_back({"bwd1_dW1_" + bs, T, N, 784, 128, b});
    out.push_back({"bwd1_dX_" + bs, N, T, b, 784, 128});
    out.push_back({"bwd2_dW2_" + bs, T, N, 128, 10, b});
    out.push_back({"bwd2_dH_" + bs, N, T, b, 128, 10});
  }
  return out;
}

struct Operands {
  std::vector<float> a, b, c;
  int64_t lda, ldb, ldc;
  explicit Operands(const Shape& s) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    a.resize(static_cast<size_t>(s.m * s.k));
    b.resize(static_cast<size_t>(s.k * s.n));
    c.assign(static_cast<size_t>(s.m * s.n), 0.0f);
    for (float& x : a) x = dist(rng);
    for (float& x : b) x = dist(rng);
    lda = s.ta == Transpose::kYes ? s.m : s.k;
    ldb = s.tb == Transpose::kYes ? s.k : s.n;
    ldc = s.n;
  }
};

void set_flops(benchmark::State& state, const Shape& s) {
  state.counters["GFLOPS"] = benchmark::Counter(
      2e-9 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k),
      benchmark::Counter::kIsIterationInvariantRate);
}

void bm_simdnn(benchmark::State& state, Shape s, int threads) {
  Operands op(s);
  for (auto _ : state) {
    simdnn::gemm(s.ta, s.tb, s.m, s.n, s.k, 1.0f, op.a.data(), op.lda, op.b.data(), op.ldb, 0.0f,
                 op.c.data(), op.ldc, threads);
    benchmark::ClobberMemory();
  }
  set_flops(state, s);
}

#ifdef SIMDNN_HAVE_OPENBLAS
void bm_openblas(benchmark::State& state, Shape s, int threads) {
  Operands op(s);
  openblas_set_num_threads(threads);
  const auto ta = s.ta == Transpose::kYes ? CblasTrans : CblasNoTrans;
  const auto tb = s.tb == Transpose::kYes ? CblasTrans : CblasNoTrans;
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, ta, tb, static_cast<int>(s.m), static_cast<int>(s.n),
                static_cast<int>(s.k), 1.0f, op.a.data(), static_cast<int>(op.lda), op.b.data(),
                static_cast<int>(op.ldb), 0.0f, op.c.data(), static_cast<int>(op.ldc));
    benchmark::ClobberMemory();
  }
  set_flops(state, s);
}
#endif

#ifdef SIMDNN_HAVE_DNNL
void bm_onednn(benchmark::State& state, Shape s, int threads) {
  Operands op(s);
  omp_set_num_threads(threads);  // this oneDNN build threads with OpenMP
  const char ta = s.ta == Transpose::kYes ? 'T' : 'N';
  const char tb = s.tb == Transpose::kYes ? 'T' : 'N';
  for (auto _ : state) {
    if (dnnl_sgemm(ta, tb, s.m, s.n, s.k, 1.0f, op.a.data(), op.lda, op.b.data(), op.ldb, 0.0f,
                   op.c.data(), op.ldc) != dnnl_success) {
      state.SkipWithError("dnnl_sgemm failed");
      break;
    }
    benchmark::ClobberMemory();
  }
  set_flops(state, s);
}
#endif

// The output layer (H [B x 128] -> 10 classes) as training runs it: forward H·W2, backward dW2
// = Hᵀ·dY and dH = dY·W2ᵀ. GFLOP/s count those three GEMMs (3 · 2·B·128·10) for every library.
// simdnn/out_fused_B*: output_layer_train (the three GEMMs plus bias, softmax cross-entropy and
// db in one pass); openblas/ and onednn/out_fused_B*: their three separate GEMMs only (bias and
// softmax not counted against them). simdnn/out_sep_B*: simdnn's separate calls (three GEMMs,
// bias, softmax cross-entropy forward and backward, column sum), as nn runs them today.
constexpr int64_t kOutIn = 128, kOutClasses = 10;

struct OutOperands {
  int64_t batch;
  std::vector<float> h, w, b, dy, dw, db, dh, logits, probs;
  std::vector<int32_t> labels;
  explicit OutOperands(int64_t bsz) : batch(bsz) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    const auto fill = [&](std::vector<float>& v, size_t n) {
      v.resize(n);
      for (float& x : v) x = dist(rng);
    };
    fill(h, static_cast<size_t>(batch * kOutIn));
    fill(w, static_cast<size_t>(kOutIn * kOutClasses));
    fill(b, kOutClasses);
    fill(dy, static_cast<size_t>(batch * kOutClasses));
    dw.resize(w.size());
    db.resize(b.size());
    dh.resize(h.size());
    logits.resize(dy.size());
    probs.resize(dy.size());
    labels.resize(static_cast<size_t>(batch));
    for (auto& l : labels) l = static_cast<int32_t>(rng() % kOutClasses);
  }
};

void set_out_flops(benchmark::State& state, int64_t batch) {
  state.counters["GFLOPS"] = benchmark::Counter(
      3.0 * 2e-9 * static_cast<double>(batch * kOutIn * kOutClasses),
      benchmark::Counter::kIsIterationInvariantRate);
}

void bm_out_fused(benchmark::State& state, int64_t batch, int /*threads*/) {
  OutOperands op(batch);
  const float scale = 1.0f / static_cast<float>(batch);
  for (auto _ : state) {
    benchmark::DoNotOptimize(simdnn::output_layer_train(
        static_cast<size_t>(batch), kOutIn, kOutClasses, op.h.data(), kOutIn, op.w.data(),
        op.b.data(), op.labels.data(), scale, op.dw.data(), op.db.data(), op.dh.data(), kOutIn));
    benchmark::ClobberMemory();
  }
  set_out_flops(state, batch);
}

void bm_out_separate(benchmark::State& state, int64_t batch, int threads) {
  OutOperands op(batch);
  const size_t rows = static_cast<size_t>(batch);
  const float scale = 1.0f / static_cast<float>(batch);
  const Transpose N = Transpose::kNo, T = Transpose::kYes;
  for (auto _ : state) {
    simdnn::gemm(N, N, batch, kOutClasses, kOutIn, 1.0f, op.h.data(), kOutIn, op.w.data(),
                 kOutClasses, 0.0f, op.logits.data(), kOutClasses, threads);
    simdnn::add_bias_rows(rows, kOutClasses, op.b.data(), op.logits.data(), kOutClasses);
    benchmark::DoNotOptimize(simdnn::softmax_cross_entropy_forward(
        rows, kOutClasses, op.logits.data(), kOutClasses, op.labels.data(), op.probs.data()));
    simdnn::softmax_cross_entropy_backward(rows, kOutClasses, op.probs.data(), op.labels.data(),
                                           scale, op.dy.data());
    simdnn::gemm(T, N, kOutIn, kOutClasses, batch, 1.0f, op.h.data(), kOutIn, op.dy.data(),
                 kOutClasses, 0.0f, op.dw.data(), kOutClasses, threads);
    simdnn::column_sum(rows, kOutClasses, op.dy.data(), kOutClasses, op.db.data(), false);
    simdnn::gemm(N, T, batch, kOutIn, kOutClasses, 1.0f, op.dy.data(), kOutClasses, op.w.data(),
                 kOutClasses, 0.0f, op.dh.data(), kOutIn, threads);
    benchmark::ClobberMemory();
  }
  set_out_flops(state, batch);
}

#ifdef SIMDNN_HAVE_OPENBLAS
void bm_out_openblas(benchmark::State& state, int64_t batch, int threads) {
  OutOperands op(batch);
  openblas_set_num_threads(threads);
  const int B = static_cast<int>(batch), K = kOutIn, C = kOutClasses;
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, K, 1.0f, op.h.data(), K,
                op.w.data(), C, 0.0f, op.logits.data(), C);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, C, B, 1.0f, op.h.data(), K,
                op.dy.data(), C, 0.0f, op.dw.data(), C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, K, C, 1.0f, op.dy.data(), C,
                op.w.data(), C, 0.0f, op.dh.data(), K);
    benchmark::ClobberMemory();
  }
  set_out_flops(state, batch);
}
#endif

#ifdef SIMDNN_HAVE_DNNL
void bm_out_onednn(benchmark::State& state, int64_t batch, int threads) {
  OutOperands op(batch);
  omp_set_num_threads(threads);
  const int64_t B = batch, K = kOutIn, C = kOutClasses;
  for (auto _ : state) {
    if (dnnl_sgemm('N', 'N', B, C, K, 1.0f, op.h.data(), K, op.w.data(), C, 0.0f,
                   op.logits.data(), C) != dnnl_success ||
        dnnl_sgemm('T', 'N', K, C, B, 1.0f, op.h.data(), K, op.dy.data(), C, 0.0f,
                   op.dw.data(), C) != dnnl_success ||
        dnnl_sgemm('N', 'T', B, K, C, 1.0f, op.dy.data(), C, op.w.data(), C, 0.0f,
                   op.dh.data(), K) != dnnl_success) {
      state.SkipWithError("dnnl_sgemm failed");
      break;
    }
    benchmark::ClobberMemory();
  }
  set_out_flops(state, batch);
}
#endif

void register_all() {
  for (const Shape& s : shapes()) {
    for (int threads : {1, 2}) {
      const std::string suffix = "/" + s.name + "/threads:" + std::to_string(threads);
      benchmark::RegisterBenchmark(("simdnn" + suffix).c_str(), bm_simdnn, s, threads)
          ->UseRealTime();
#ifdef SIMDNN_HAVE_OPENBLAS
      benchmark::RegisterBenchmark(("openblas" + suffix).c_str(), bm_openblas, s, threads)
          ->UseRealTime();
#endif
#ifdef SIMDNN_HAVE_DNNL
      benchmark::RegisterBenchmark(("onednn" + suffix).c_str(), bm_onednn, s, threads)
          ->UseRealTime();
#endif
    }
  }
  for (int64_t batch : {32, 256}) {
    const std::string bs = "_B" + std::to_string(batch);
    // One thread only: the fused layer is single-threaded by design (see output_layer.h).
    const std::string fused = "/out_fused" + bs + "/threads:1";
    benchmark::RegisterBenchmark(("simdnn" + fused).c_str(), bm_out_fused, batch, 1)
        ->UseRealTime();
#ifdef SIMDNN_HAVE_OPENBLAS
    benchmark::RegisterBenchmark(("openblas" + fused).c_str(), bm_out_openblas, batch, 1)
        ->UseRealTime();
#endif
#ifdef SIMDNN_HAVE_DNNL
    benchmark::RegisterBenchmark(("onednn" + fused).c_str(), bm_out_onednn, batch, 1)
        ->UseRealTime();
#endif
    benchmark::RegisterBenchmark(("simdnn/out_sep" + bs + "/threads:1").c_str(), bm_out_separate,
                                 batch, 1)
        ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_all();
  // SIMDNN_BENCH_TARGET=AVX2 (or SSE4, ...) measures simdnn on a lower target of this CPU.
  if (const char* target = std::getenv("SIMDNN_BENCH_TARGET")) simdnn::force_simd_target(target);
  benchmark::AddCustomContext("simdnn_target", simdnn::current_simd_target());
#ifdef SIMDNN_HAVE_OPENBLAS
  // The core OpenBLAS actually runs (OPENBLAS_CORETYPE overrides its own pick; run_gemm_bench.sh
  // tries this CPU's candidates and keeps the fastest).
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
  std::fprintf(stderr, "OpenBLAS core: %s\n", openblas_get_corename());
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
