// Fast GEMM: per-target packing and register-tiled micro-kernels (kernels/gemm-inl.h), and
// in the HWY_ONCE part below the BLIS loop nest, the thread split and the public entry.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/gemm.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "kernels/gemm-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {
namespace gemm {

// The narrow tile serves n <= one vector (e.g. the 10-class output layer).
bool UseNarrowTile(int64_t n) { return kNV > 1 && n <= static_cast<int64_t>(kLanes); }

void PlanFor(int64_t /*m*/, int64_t n, int64_t /*k*/, detail::GemmPlan* plan) {
  const bool narrow = UseNarrowTile(n);
  plan->mr = static_cast<int64_t>(narrow ? kMRNarrow : kMR);
  plan->nr = static_cast<int64_t>((narrow ? 1 : kNV) * kLanes);
  plan->kc_max = kKC;
  plan->mc_max = kMC;
  plan->nc_max = kNC;
}

void PackBEntry(const detail::GemmPlan& plan, bool trans_b, const float* b, int64_t ldb,
                int64_t p0, int64_t kc, int64_t j0, int64_t nc, int64_t s_begin, int64_t s_end,
                float* bp) {
  if (plan.nr == static_cast<int64_t>(kNV * kLanes)) {
    PackB<kNV * kLanes>(trans_b, b, ldb, p0, kc, j0, nc, s_begin, s_end, bp);
  } else {
    PackB<kLanes>(trans_b, b, ldb, p0, kc, j0, nc, s_begin, s_end, bp);
  }
}

void ComputeEntry(const detail::GemmPlan& plan, bool trans_a, const float* a, int64_t lda,
                  int64_t i0, int64_t mc, int64_t p0, int64_t kc, const detail::GemmBView& b,
                  int64_t j0, int64_t nc, int64_t s_begin, int64_t s_end, float alpha,
                  float beta, float* c, int64_t ldc, float* ap) {
  if (plan.nr == static_cast<int64_t>(kNV * kLanes)) {
    ComputeBlock<kMR, kNV>(trans_a, a, lda, i0, mc, p0, kc, b, j0, nc, s_begin, s_end, alpha,
                           beta, c, ldc, ap);
  } else {
    ComputeBlock<kMRNarrow, 1>(trans_a, a, lda, i0, mc, p0, kc, b, j0, nc, s_begin, s_end,
                               alpha, beta, c, ldc, ap);
  }
}

}  // namespace gemm

detail::GemmKernels GemmKernelsForTarget() {
  return detail::GemmKernels{&gemm::PlanFor, &gemm::PackBEntry, &gemm::ComputeEntry};
}

}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <omp.h>

#include <algorithm>

#include "hwy/aligned_allocator.h"
#include "kernels/parallel.h"
#include "simdnn/gemm.h"
#include "simdnn/threading.h"

namespace simdnn {
HWY_EXPORT(GemmKernelsForTarget);

namespace {

int64_t div_ceil(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t round_up(int64_t a, int64_t b) { return div_ceil(a, b) * b; }

// Below this many multiply-adds per thread, starting threads costs more than it saves.
constexpr double kMinMacsPerThread = 1 << 20;
// Rough cost of packing one float, in multiply-adds, for choosing how to split C over threads.
constexpr int64_t kPackCostInMacs = 16;

// Grows, never shrinks: one per thread, so the hot path allocates only on first use.
class Scratch {
 public:
  float* get(size_t floats) {
    if (floats > capacity_) {
      buffer_ = hwy::AllocateAligned<float>(floats);
      capacity_ = floats;
    }
    return buffer_.get();
  }

 private:
  hwy::AlignedFreeUniquePtr<float[]> buffer_;
  size_t capacity_ = 0;
};

struct Problem {
  bool trans_a, trans_b;
  int64_t m, n, k;
  float alpha;
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float beta;
  float* c;
  int64_t ldc;
};

// The BLIS loop nest for rows [i_begin, i_end) and columns [j_begin, j_end) of C, on the
// calling thread. The depth blocking depends only on k, so every element of C sees the same
// sequence of additions whatever the split.
void gemm_rect(const detail::GemmKernels& kern, const detail::GemmPlan& plan, const Problem& pr,
               int64_t i_begin, int64_t i_end, int64_t j_begin, int64_t j_end) {
  const int64_t rows = i_end - i_begin, cols = j_end - j_begin;
  if (rows <= 0 || cols <= 0) return;
  // Balanced blocks: k = 784 becomes 4 x 196 rather than 3 x 256 + 16.
  const int64_t kc_step = div_ceil(pr.k, div_ceil(pr.k, plan.kc_max));
  const int64_t nc_step = round_up(div_ceil(cols, div_ceil(cols, plan.nc_max)), plan.nr);
  const int64_t mc_step = round_up(div_ceil(rows, div_ceil(rows, plan.mc_max)), plan.mr);

  thread_local Scratch a_scratch, b_scratch;
  float* ap = a_scratch.get(static_cast<size_t>(mc_step * kc_step));
  float* bp = b_scratch.get(static_cast<size_t>(kc_step * nc_step));

  for (int64_t jc = j_begin; jc < j_end; jc += nc_step) {
    const int64_t nc = std::min(nc_step, j_end - jc);
    const int64_t strips = div_ceil(nc, plan.nr);
    for (int64_t pc = 0; pc < pr.k; pc += kc_step) {
      const int64_t kc = std::min(kc_step, pr.k - pc);
      // The first depth block applies beta; later ones accumulate onto it.
      const float beta = pc == 0 ? pr.beta : 1.0f;
      kern.pack_b(plan, pr.trans_b, pr.b, pr.ldb, pc, kc, jc, nc, 0, strips, bp);
      const detail::GemmBView bview{bp, kc * plan.nr, plan.nr};
      for (int64_t ic = i_begin; ic < i_end; ic += mc_step) {
        const int64_t mc = std::min(mc_step, i_end - ic);
        kern.compute(plan, pr.trans_a, pr.a, pr.lda, ic, mc, pc, kc, bview, jc, nc, 0, strips,
                     pr.alpha, beta, pr.c, pr.ldc, ap);
      }
    }
  }
}

// How C is cut into a tm x tn grid of rectangles, one per thread.
struct Split {
  int64_t tm = 1, tn = 1;
};

// Picks the grid with the least estimated time: the slowest thread's tile-padded
// multiply-adds plus the packing it does (each thread packs its own rows of A and columns of
// B, so splitting M repacks B and splitting N repacks A).
Split choose_split(const detail::GemmPlan& plan, int64_t m, int64_t n, int64_t k, int threads) {
  Split best;
  int64_t best_cost = -1;
  for (int64_t tm = 1; tm <= threads; ++tm) {
    if (threads % tm != 0) continue;
    const int64_t tn = threads / tm;
    const int64_t mw = round_up(div_ceil(m, tm), plan.mr);
    const int64_t nw = round_up(div_ceil(n, tn), plan.nr);
    const int64_t cost = k * (mw * nw + kPackCostInMacs * (mw + nw));
    if (best_cost < 0 || cost < best_cost) {
      best_cost = cost;
      best = Split{tm, tn};
    }
  }
  return best;
}

}  // namespace

void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc, int threads) {
  detail::check_gemm_args("gemm", trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    detail::scale_c(m, n, beta, c, ldc);
    return;
  }
  // One dispatch per call: tile, packing and kernel all come from the same target.
  const detail::GemmKernels kern = HWY_DYNAMIC_DISPATCH(GemmKernelsForTarget)();
  detail::GemmPlan plan;
  kern.plan(m, n, k, &plan);
  const Problem pr{trans_a == Transpose::kYes, trans_b == Transpose::kYes, m, n, k, alpha, a,
                   lda, b, ldb, beta, c, ldc};

  int nthreads = omp_in_parallel() ? 1 : resolve_threads(threads);
  const double macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const int affordable = static_cast<int>(std::max(1.0, macs / kMinMacsPerThread));
  nthreads = std::min(nthreads, affordable);
  if (nthreads <= 1) {
    enable_flush_to_zero();  // as on the worker threads, so 1 and N threads agree on denormals
    gemm_rect(kern, plan, pr, 0, m, 0, n);
    return;
  }
  const Split split = choose_split(plan, m, n, k, nthreads);
  // Rectangles aligned to whole register tiles, so no thread computes a padded tile inside C.
  const int64_t mw = round_up(div_ceil(m, split.tm), plan.mr);
  const int64_t nw = round_up(div_ceil(n, split.tn), plan.nr);
  detail::parallel_for(split.tm * split.tn, nthreads, [&](int64_t t) {
    const int64_t ti = t / split.tn, tj = t % split.tn;
    gemm_rect(kern, plan, pr, std::min(m, ti * mw), std::min(m, (ti + 1) * mw),
              std::min(n, tj * nw), std::min(n, (tj + 1) * nw));
  });
}

}  // namespace simdnn
#endif  // HWY_ONCE
