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
