// Fast GEMM: per-target packing and register-tiled micro-kernels (kernels/gemm-inl.h), and
// in the HWY_ONCE part below the BLIS loop nest, the thread split and the public entry.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "gemm.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "gemm-inl.h"

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {
namespace gemm {

// Time of the tall tile relative to the wide one for the same padded work, measured on Zen 4
// (1 thread, GFLOP/s): AVX3 16x16 beat 12x32 by 0-6% on every square and MLP shape (sq512
// 107 vs 103, fwd1 B256 106 vs 100, dW1 B32 103 vs 101), so it is preferred unless it pads
// more; AVX2 12x8 lost 10-20% to 6x16 (13 loads per 12 FMAs against 8), so it serves only
// narrow n or rows the wide tile pads badly. Other targets: unmeasured, keep the wide tile.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int64_t kTallCostPercent = 95;
#elif HWY_TARGET == HWY_AVX2
constexpr int64_t kTallCostPercent = 120;
#else
constexpr int64_t kTallCostPercent = 105;
#endif
// The AVX2 mid tile (4 x 16) against the wide one (6 x 16) for the same padded work: 6 loads
// per 8 FMAs against 8 per 12, and a third fewer multiply-adds per packed C update.
constexpr int64_t kMidCostPercent = 105;

// Up to this many tile rows of A, B is read in place (see gemm_rect). AVX-512's 4 was
// measured with its 16-row tiles (a batch of 64). AVX2's 4-row mid tile makes a batch of 32
// eight panels; each kc x 16 strip of B (392 x 64 bytes at k = 784) still stays in L1 across
// them, and packing the 784 x 128 B was 15% of X*W1 at batch 32 (perf, Zen 3).
#if HWY_TARGET == HWY_AVX2
constexpr int64_t kDirectBMaxPanels = 8;
#else
constexpr int64_t kDirectBMaxPanels = 4;
#endif

// C = A * B^T computed as C^T = B * A^T for few rows of C (GemmPlan::swap_nt): AVX2 only,
// where it was measured; other targets keep their paths.
#if HWY_TARGET == HWY_AVX2
constexpr bool kSwapNT = true;
#else
constexpr bool kSwapNT = false;
#endif

// The tile with the least padded work: rows rounded up to mr times columns rounded up to nr.
// m <= kSmallMaxM takes an m-row tile (see SmallNV): same kc/mc/nc blocking, hence the same
// bits.
void PlanTile(int64_t m, int64_t n, bool trans_b, detail::GemmPlan* plan) {
  plan->kc_max = kKC;
  plan->mc_max = kMC;
  plan->nc_max = kNC;
  plan->direct_b_max_panels = kDirectBMaxPanels;
  if (m <= kSmallMaxM) {
    plan->mr = m;
    // Transposed B is packed anyway: one-vector strips pack ~15% faster than wide ones
    // (1 x 784 x 128: 33 vs 37 us with 128-wide strips) and pad nothing at n = 784.
    // C narrower than one wide strip (the n = 10 output layer) takes one-vector strips too:
    // B is read in place (gemm_rect's direct_b) for every full strip and only the last
    // n % lanes columns are packed, where one ragged wide strip packed all of it, padding
    // included (AVX2, 1 x 10 x 128: 128 x 32 floats per call, ~9.6k instructions), and the
    // tile multiplied padded vectors. Same per-element operations, hence the same bits.
    const int64_t wide_nr = static_cast<int64_t>(SmallNV(static_cast<size_t>(m)) * kLanes);
    const bool one_vector = trans_b || n < wide_nr;
    plan->nr = one_vector ? static_cast<int64_t>(kLanes) : wide_nr;
    return;
  }
  const auto padded = [](int64_t x, int64_t step) { return (x + step - 1) / step * step; };
  constexpr int64_t kWideNR = static_cast<int64_t>(kNV * kLanes);
  constexpr int64_t kTallNR = static_cast<int64_t>(kLanes);
  const int64_t wide = padded(m, kMR) * padded(n, kWideNR) * 100;
  const int64_t tall = padded(m, kMRTall) * padded(n, kTallNR) * kTallCostPercent;
  const bool use_tall = tall < wide;
  plan->mr = static_cast<int64_t>(use_tall ? kMRTall : kMR);
  plan->nr = use_tall ? kTallNR : kWideNR;
  if constexpr (kMRMid > 0) {
    constexpr int64_t kMidNR = static_cast<int64_t>(kNVMid * kLanes);
    const int64_t mid = padded(m, kMRMid) * padded(n, kMidNR) * kMidCostPercent;
    if (mid < wide && mid < tall) {
      plan->mr = static_cast<int64_t>(kMRMid);
      plan->nr = kMidNR;
    }
  }
}

bool IsWide(const detail::GemmPlan& plan) {
  return plan.mr == static_cast<int64_t>(kMR) && plan.nr == static_cast<int64_t>(kNV * kLanes);
}

bool IsMid(const detail::GemmPlan& plan) {
  return kMRMid > 0 && plan.mr == static_cast<int64_t>(kMRMid) &&
         plan.nr == static_cast<int64_t>(kNVMid * kLanes);
}

void PlanFor(int64_t m, int64_t n, int64_t /*k*/, bool trans_b, detail::GemmPlan* plan) {
  PlanTile(m, n, trans_b, plan);
  // MacroKernel reads A in place only for tiles of up to kDirectAMaxMR rows.
  plan->direct_a_max_n = plan->mr <= static_cast<int64_t>(kDirectAMaxMR) ? kDirectAMaxN : 0;
  // The mid tile's rows read in place go mostly in wide-tile heights (see MacroKernel), so
  // it reads A in place at any n: its A is a few dozen rows (m = 32: dY of dX = dY * W1^T,
  // 32 x 128, 16 KiB), which stays in L1 whether packed or not.
  if (kDirectAEnabled && IsMid(*plan)) plan->direct_a_max_n = INT64_MAX;
  // AVX2: dX = dY * W1^T at batch 32 (32 x 784 x 128) spent ~19% of its time packing the
  // transposed 784 x 128 W1 into strips (perf, Zen 3); as C^T = W1 * dY^T, W1 is read in
  // place (6 x 16 tiles, 784 rows) and only dY (4 Ki floats) and C (25 Ki) are transposed.
  plan->swap_nt = kSwapNT && trans_b && m >= 8 && m <= 48 && n >= 256;
}

template <size_t N>
using SizeT = std::integral_constant<size_t, N>;

// Calls f(SizeT<MR>, SizeT<NV>) for the tile a plan names.
template <class F>
HWY_INLINE void WithTile(const detail::GemmPlan& plan, const F& f) {
  const bool one_vector = plan.nr == static_cast<int64_t>(kLanes);
  const auto small = [&](auto rows) HWY_ATTR {
    if (one_vector) {
      f(rows, SizeT<1>());
    } else {
      f(rows, SizeT<SmallNV(decltype(rows)::value)>());
    }
  };
  if (plan.mr == 1) return small(SizeT<1>());
  if (plan.mr == 2) return small(SizeT<2>());
  if (plan.mr == 3) return small(SizeT<3>());
  if constexpr (kSmallMaxM >= 4) {
    if (plan.mr == 4) return small(SizeT<4>());
  }
  if (IsWide(plan)) return f(SizeT<kMR>(), SizeT<kNV>());
  if constexpr (kMRMid > 0) {
    if (IsMid(plan)) return f(SizeT<kMRMid>(), SizeT<kNVMid>());
  }
  f(SizeT<kMRTall>(), SizeT<1>());
}

void PackBEntry(const detail::GemmPlan& plan, bool trans_b, const float* b, int64_t ldb,
                int64_t p0, int64_t kc, int64_t j0, int64_t nc, int64_t s_begin, int64_t s_end,
                float* bp) {
  WithTile(plan, [&](auto /*mr*/, auto nv) HWY_ATTR {
    PackB<decltype(nv)::value * kLanes>(trans_b, b, ldb, p0, kc, j0, nc, s_begin, s_end, bp);
  });
}

void PackAEntry(const detail::GemmPlan& plan, bool trans_a, const float* a, int64_t lda,
                int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* ap) {
  WithTile(plan, [&](auto mr, auto /*nv*/) HWY_ATTR {
    PackA<decltype(mr)::value>(trans_a, a, lda, i0, mc, p0, kc, ap);
  });
}

void PackAGatheredEntry(const detail::GemmPlan& plan, bool trans_a, const GatheredRows& x,
                        int64_t i0, int64_t mc, int64_t p0, int64_t kc, float* ap,
                        int32_t* depth_index, int64_t* depth_count) {
  WithTile(plan, [&](auto mr, auto /*nv*/) HWY_ATTR {
    PackAGathered<decltype(mr)::value>(trans_a, x, i0, mc, p0, kc, ap, depth_index, depth_count);
  });
}

// One out-of-line function per tile: inlining all macro-kernels into one entry changed the
// code of the batch tiles (bwd2_dH, k = 10, lost 3-5%).
template <size_t MR, size_t NV>
HWY_NOINLINE void MacroFor(const detail::GemmAView& a, int64_t mc, int64_t kc, const detail::GemmBView& b,
                           int64_t s_begin, int64_t s_end, int64_t nc, float alpha, float beta,
                           float* c, int64_t ldc, const detail::PanelDepths& depths) {
  MacroKernel<MR, NV>(a, mc, kc, b, s_begin, s_end, nc, alpha, beta, c, ldc, depths);
}

void MacroEntry(const detail::GemmPlan& plan, const detail::GemmAView& a, int64_t mc, int64_t kc,
                const detail::GemmBView& b, int64_t s_begin, int64_t s_end, int64_t nc,
                float alpha, float beta, float* c, int64_t ldc,
                const detail::PanelDepths& depths) {
  WithTile(plan, [&](auto mr, auto nv) HWY_ATTR {
    MacroFor<decltype(mr)::value, decltype(nv)::value>(a, mc, kc, b, s_begin, s_end, nc, alpha,
                                                       beta, c, ldc, depths);
  });
}

void TransposeEntry(const float* src, int64_t ld_src, int64_t rows, int64_t depth, float* dst,
                    int64_t ld_dst) {
  TransposeCopy(src, ld_src, rows, depth, dst, ld_dst);
}

}  // namespace gemm

detail::GemmKernels GemmKernelsForTarget() {
  return detail::GemmKernels{&gemm::PlanFor,           &gemm::PackBEntry,  &gemm::PackAEntry,
                             &gemm::PackAGatheredEntry, &gemm::MacroEntry, &gemm::TransposeEntry};
}

}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>

#include "hwy/aligned_allocator.h"
#include "simdnn/parallel_for.h"
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
template <class T>
class Scratch {
 public:
  T* get(size_t count) {
    if (count > capacity_) {
      buffer_ = hwy::AllocateAligned<T>(count);
      capacity_ = count;
    }
    return buffer_.get();
  }

 private:
  hwy::AlignedFreeUniquePtr<T[]> buffer_;
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
  const GatheredRows* gathered = nullptr;  // when set, A is this view (a and lda unused)
};

// The BLIS loop nest for rows [i_begin, i_end) and columns [j_begin, j_end) of C, on the
// calling thread. The depth blocking depends only on k, so every element of C sees the same
// sequence of additions whatever the split.
void gemm_rect(const detail::GemmKernels& kern, const detail::GemmPlan& plan, const Problem& pr,
               int64_t i_begin, int64_t i_end, int64_t j_begin, int64_t j_end) {
  const int64_t rows = i_end - i_begin, cols = j_end - j_begin;
  if (rows <= 0 || cols <= 0) return;
  if (plan.swap_nt && pr.trans_b && !pr.trans_a && pr.gathered == nullptr && pr.alpha == 1.0f &&
      pr.beta == 0.0f) {
    // C^T (cols x rows) = op(B)^T * op(A)^T = B * A^T: B's rows are the first operand, read
    // as a row-major A, and A (rows x k, row-major) is the transposed second operand. Every
    // element is the same depth-ordered multiply-add chain as in C = A * B^T (the product
    // commutes exactly), with the same depth blocks (they depend on k only) and the same
    // alpha = 1, beta = 0 update, so C gets the same bits.
    thread_local Scratch<float> ct_scratch;
    float* ct = ct_scratch.get(static_cast<size_t>(cols * rows));
    const Problem swapped{false,  true,        cols, rows,  pr.k, 1.0f, pr.b + j_begin * pr.ldb,
                          pr.ldb, pr.a + i_begin * pr.lda, pr.lda, 0.0f, ct, rows};
    detail::GemmPlan splan;
    kern.plan(cols, rows, pr.k, true, &splan);
    splan.swap_nt = false;
    gemm_rect(kern, splan, swapped, 0, cols, 0, rows);
    kern.transpose(ct, rows, cols, rows, pr.c + i_begin * pr.ldc + j_begin, pr.ldc);
    return;
  }
  // Balanced blocks: k = 784 becomes 4 x 196 rather than 3 x 256 + 16.
  const int64_t kc_step = div_ceil(pr.k, div_ceil(pr.k, plan.kc_max));
  const int64_t nc_step = round_up(div_ceil(cols, div_ceil(cols, plan.nc_max)), plan.nr);
  const int64_t mc_step = round_up(div_ceil(rows, div_ceil(rows, plan.mc_max)), plan.mr);

  thread_local Scratch<float> a_scratch, b_scratch;
  float* ap = a_scratch.get(static_cast<size_t>(mc_step * kc_step));
  float* bp = b_scratch.get(static_cast<size_t>(kc_step * nc_step));
  // Gathered A: which depths of each packed panel are not all zero (see CompactZeroDepths).
  thread_local Scratch<int32_t> index_scratch;
  thread_local Scratch<int64_t> count_scratch;
  int32_t* depth_index = nullptr;
  int64_t* depth_count = nullptr;
  if (pr.gathered != nullptr) {
    depth_index = index_scratch.get(static_cast<size_t>(mc_step * kc_step));
    depth_count = count_scratch.get(static_cast<size_t>(mc_step / plan.mr));
  }
  const detail::PanelDepths depths{depth_index, depth_count};
  // Few rows of A (a small batch) reuse each strip of B only a few times: the micro-kernel
  // then reads row-major B in place (row p of a strip at + p * ldb) instead of packing it,
  // which at 32 x 128 x 784 cost as much as a third of the multiply-adds. Only a ragged last
  // strip is packed (zero-padded), as reading past column n could leave the array.
  const bool direct_b = !pr.trans_b && div_ceil(rows, plan.mr) <= plan.direct_b_max_panels;
  // Narrow C reuses each packed A block only over a few strips of B: read the full panels of a
  // row-major float A in place (the micro-kernel broadcasts single values from mr rows) and
  // pack only a ragged last panel, which needs zero rows. X * W1 at 256 x 128 x 784 went from
  // 0.83 to 0.96 of oneDNN (Zen 3). A stored k x m (trans_a) stays packed: a panel's mr
  // floats per depth sit one lda apart, a cache line per depth for 24 bytes, and dW1 = X^T * dY
  // lost 10-15% that way. Row strides that are a multiple of 4 KiB would put every row of a
  // panel in the same L1 set: those stay packed too.
  const bool direct_a = pr.gathered == nullptr && cols <= plan.direct_a_max_n && !pr.trans_a &&
                        pr.lda % 1024 != 0;

  // Packs (or points at) op(A)[ic : ic+mc, pc : pc+kc] for the macro-kernel.
  const auto prepare_a = [&](int64_t ic, int64_t mc, int64_t pc, int64_t kc) {
    detail::GemmAView av{ap};
    if (pr.gathered != nullptr) {
      kern.pack_a_gathered(plan, pr.trans_a, *pr.gathered, ic, mc, pc, kc, ap, depth_index,
                           depth_count);
      return av;
    }
    if (direct_a) {
      av.direct_panels = mc / plan.mr;
      av.direct = pr.a + ic * pr.lda + pc;
      av.row_stride = pr.lda;
      av.k_stride = 1;
    }
    const int64_t direct_rows = av.direct_panels * plan.mr;
    if (direct_rows < mc) {
      kern.pack_a(plan, pr.trans_a, pr.a, pr.lda, ic + direct_rows, mc - direct_rows, pc, kc, ap);
    }
    return av;
  };
  for (int64_t jc = j_begin; jc < j_end; jc += nc_step) {
    const int64_t nc = std::min(nc_step, j_end - jc);
    const int64_t strips = div_ceil(nc, plan.nr);
    const int64_t full_strips = direct_b ? nc / plan.nr : 0;
    for (int64_t pc = 0; pc < pr.k; pc += kc_step) {
      const int64_t kc = std::min(kc_step, pr.k - pc);
      // The first depth block applies beta; later ones accumulate onto it.
      const float beta = pc == 0 ? pr.beta : 1.0f;
      const detail::GemmBView direct{pr.b + pc * pr.ldb + jc, plan.nr, pr.ldb};
      if (full_strips < strips) {
        kern.pack_b(plan, pr.trans_b, pr.b, pr.ldb, pc, kc, jc, nc, full_strips, strips, bp);
      }
      const detail::GemmBView packed{bp + full_strips * kc * plan.nr, kc * plan.nr, plan.nr};
      for (int64_t ic = i_begin; ic < i_end; ic += mc_step) {
        const int64_t mc = std::min(mc_step, i_end - ic);
        const detail::GemmAView av = prepare_a(ic, mc, pc, kc);
        float* c = pr.c + ic * pr.ldc + jc;
        if (full_strips > 0) {
          kern.macro(plan, av, mc, kc, direct, 0, full_strips, nc, pr.alpha, beta, c, pr.ldc,
                     depths);
        }
        if (full_strips < strips) {
          kern.macro(plan, av, mc, kc, packed, full_strips, strips, nc, pr.alpha, beta, c,
                     pr.ldc, depths);
        }
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

// Runs a checked problem: the plan, the thread split and the loop nest.
void run(const Problem& pr, int threads) {
  const int64_t m = pr.m, n = pr.n, k = pr.k;
  if (m == 0 || n == 0) return;
  if (k == 0 || pr.alpha == 0.0f) {
    detail::scale_c(m, n, pr.beta, pr.c, pr.ldc);
    return;
  }
  // One dispatch per call: tile, packing and kernel all come from the same target.
  const detail::GemmKernels kern = HWY_DYNAMIC_DISPATCH(GemmKernelsForTarget)();
  detail::GemmPlan plan;
  kern.plan(m, n, k, pr.trans_b, &plan);

  int nthreads = in_parallel_for() ? 1 : resolve_threads(threads);
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
  const int64_t tasks = split.tm * split.tn;
  const auto run_task = [&](int64_t t) {
    const int64_t ti = t / split.tn, tj = t % split.tn;
    gemm_rect(kern, plan, pr, std::min(m, ti * mw), std::min(m, (ti + 1) * mw),
              std::min(n, tj * nw), std::min(n, (tj + 1) * nw));
  };
  // 20 GFLOP/s per thread: a fifth of the kernel's speed, so only a stall exceeds 8x this.
  const int64_t expected_ns = static_cast<int64_t>(macs / static_cast<double>(nthreads) / 10.0);
  // Each rectangle's bits do not depend on which thread computes it.
  parallel_for(tasks, nthreads, run_task, expected_ns);
}

}  // namespace

void gemm(Transpose trans_a, Transpose trans_b, int64_t m, int64_t n, int64_t k, float alpha,
          const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c,
          int64_t ldc, int threads) {
  detail::check_gemm_args("gemm", trans_a, trans_b, m, n, k, a, lda, b, ldb, c, ldc);
  run(Problem{trans_a == Transpose::kYes, trans_b == Transpose::kYes, m, n, k, alpha, a, lda, b,
              ldb, beta, c, ldc},
      threads);
}

void gemm_gathered(Transpose trans_x, Transpose trans_b, int64_t n, float alpha,
                   const GatheredRows& x, const float* b, int64_t ldb, float beta, float* c,
                   int64_t ldc, int threads) {
  check_gathered_rows(x, "gemm_gathered");
  const bool tx = trans_x == Transpose::kYes;
  const int64_t rows = static_cast<int64_t>(x.rows.size()), cols = static_cast<int64_t>(x.cols);
  const int64_t m = tx ? cols : rows, k = tx ? rows : cols;
  detail::check_gemm_bc_args("gemm_gathered", trans_b, m, n, k, b, ldb, c, ldc);
  Problem pr{tx, trans_b == Transpose::kYes, m, n, k, alpha, nullptr, 0, b, ldb, beta, c, ldc};
  pr.gathered = &x;
  run(pr, threads);
}

}  // namespace simdnn
#endif  // HWY_ONCE
