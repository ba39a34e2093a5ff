// Fused output layer (see simdnn/output_layer.h): per block of N rows (N = the vector length),
//   1. logits: dot products of two rows of H with five rows of Wᵀ at a time, vectorized over
//      the input dimension (10 accumulators + 2 + 1 registers), each reduced to a sum; on AVX2
//      four rows with two rows of Wᵀ, the eight sums reduced together (Logits4x2);
//   2. softmax, loss and dlogits vectorized over the block's rows (the logits sit class-major
//      in a small buffer: one vector per class);
//   3. dWᵀ[c][p] += dl[c][i] * H[i][p], vectorized over p, five classes x two vectors at a time
//      kept in registers across the block's rows;
//   4. dH[i][p] = sum_c dl[c][i] * Wᵀ[c][p], vectorized over p, four rows x three vectors
//      (AVX2; two elsewhere).
// The block of H (N rows x in) is read from memory once and reused from L1 by steps 1, 3, 4.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "output_layer.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
#include "gemm-inl.h"  // TransposeCopy

#ifndef SIMDNN_KERNELS_OUTPUT_LAYER_ARGS_
#define SIMDNN_KERNELS_OUTPUT_LAYER_ARGS_
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>

namespace simdnn::detail {
// One call's operands after the checks, with the scratch the HWY_ONCE part provides.
struct OutputLayerArgs {
  size_t rows, in, classes;
  const float* h;
  size_t ldh;
  const float* w;  // in x classes
  const float* b;
  const int32_t* labels;
  float scale;
  float* dw;
  float* db;
  float* dh;  // may be null
  size_t lddh;
  float* probs;  // may be null
  const float* class_weights;  // may be null: all 1
  // Scratch, each at least classes * in (wt, dwt) or classes * kMaxLanes (lt, dbv) floats.
  float* wt;
  float* dwt;
  float* lt;
  float* dbv;
};
constexpr size_t kOutputLayerMaxLanes = 64;
}  // namespace simdnn::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace simdnn {
namespace HWY_NAMESPACE {
namespace output_layer {

namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// out0[g] = dot(h0, wt[c0 + g]) and out1[g] = dot(h1, wt[c0 + g]) for g < G, plus b[c0 + g].
template <size_t G>
HWY_INLINE void LogitsGroup(const detail::OutputLayerArgs& a, const float* HWY_RESTRICT h0,
                            const float* HWY_RESTRICT h1, size_t c0, float* HWY_RESTRICT out0,
                            float* HWY_RESTRICT out1) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t in = a.in;
  const float* HWY_RESTRICT wt = a.wt + c0 * in;
  VF acc0[G], acc1[G];
  for (size_t g = 0; g < G; ++g) acc0[g] = acc1[g] = hn::Zero(d);
  size_t p = 0;
  for (; p + N <= in; p += N) {
    const VF x0 = hn::LoadU(d, h0 + p);
    const VF x1 = hn::LoadU(d, h1 + p);
    for (size_t g = 0; g < G; ++g) {
      const VF wv = hn::LoadU(d, wt + g * in + p);
      acc0[g] = hn::MulAdd(x0, wv, acc0[g]);
      acc1[g] = hn::MulAdd(x1, wv, acc1[g]);
    }
  }
  for (size_t g = 0; g < G; ++g) {
    float s0 = hn::GetLane(hn::SumOfLanes(d, acc0[g]));
    float s1 = hn::GetLane(hn::SumOfLanes(d, acc1[g]));
    for (size_t q = p; q < in; ++q) {
      s0 += h0[q] * wt[g * in + q];
      s1 += h1[q] * wt[g * in + q];
    }
    out0[g] = s0 + a.b[c0 + g];
    out1[g] = s1 + a.b[c0 + g];
  }
}

#if HWY_TARGET == HWY_AVX2
// AVX2, in a multiple of 8: lt[c][i0 + j] and lt[c1][i0 + j] for the four rows h[j] (c1 may equal
// c), dot products vectorized over the input as in LogitsGroup, but the eight sums leave
// through one transposing reduction (six hadds, two lane swaps, an add) that lands them in
// lt's class-major layout, instead of eight horizontal sums and scalar stores: those took a
// third of the logits step's time (perf, cpu-clock, batch 256).
HWY_INLINE void Logits4x2(const detail::OutputLayerArgs& a, const float* const* HWY_RESTRICT h,
                          size_t c, size_t c1, float* HWY_RESTRICT lt) {
  const size_t in = a.in;
  const float* HWY_RESTRICT w0 = a.wt + c * in;
  const float* HWY_RESTRICT w1 = a.wt + c1 * in;
  __m256 acc[8];
  for (auto& v : acc) v = _mm256_setzero_ps();
  for (size_t p = 0; p < in; p += 8) {
    const __m256 u = _mm256_loadu_ps(w0 + p);
    const __m256 v = _mm256_loadu_ps(w1 + p);
    for (size_t j = 0; j < 4; ++j) {
      __m256 x = _mm256_loadu_ps(h[j] + p);
      // Keeps x in a register: GCC otherwise folds the load into both FMAs (10 loads per 8
      // FMAs instead of 6, load-bound on Zen 3's two 256-bit loads per cycle).
      asm("" : "+x"(x));
      acc[j] = _mm256_fmadd_ps(x, u, acc[j]);
      acc[4 + j] = _mm256_fmadd_ps(x, v, acc[4 + j]);
    }
  }
  // hadd(hadd(a0, a1), hadd(a2, a3)) = [a0..a3 summed over lanes 0-3 | over lanes 4-7].
  const __m256 s0123 = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]),
                                      _mm256_hadd_ps(acc[2], acc[3]));
  const __m256 s4567 = _mm256_hadd_ps(_mm256_hadd_ps(acc[4], acc[5]),
                                      _mm256_hadd_ps(acc[6], acc[7]));
  const __m256 sums = _mm256_add_ps(_mm256_permute2f128_ps(s0123, s4567, 0x20),
                                    _mm256_permute2f128_ps(s0123, s4567, 0x31));
  const __m256 bias = _mm256_setr_m128(_mm_set1_ps(a.b[c]), _mm_set1_ps(a.b[c1]));
  const __m256 out = _mm256_add_ps(sums, bias);
  _mm_storeu_ps(lt + c * 8, _mm256_castps256_ps128(out));
  _mm_storeu_ps(lt + c1 * 8, _mm256_extractf128_ps(out, 1));
}
#endif

// dwt[c0 + g][p] += sum over the block's valid rows i of dl[c0 + g][i] * h_i[p].
template <size_t G>
HWY_INLINE void DwGroup(const detail::OutputLayerArgs& a, size_t r0, size_t valid, size_t c0) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t in = a.in;
  const float* HWY_RESTRICT lt = a.lt;
  float* HWY_RESTRICT dwt = a.dwt + c0 * in;
  size_t p = 0;
  for (; p + 2 * N <= in; p += 2 * N) {
    VF acc[G][2];
    for (size_t g = 0; g < G; ++g) {
      acc[g][0] = hn::LoadU(d, dwt + g * in + p);
      acc[g][1] = hn::LoadU(d, dwt + g * in + p + N);
    }
    for (size_t i = 0; i < valid; ++i) {
      const float* hi = a.h + (r0 + i) * a.ldh + p;
      const VF x0 = hn::LoadU(d, hi);
      const VF x1 = hn::LoadU(d, hi + N);
      for (size_t g = 0; g < G; ++g) {
        const VF s = hn::Set(d, lt[(c0 + g) * N + i]);
        acc[g][0] = hn::MulAdd(s, x0, acc[g][0]);
        acc[g][1] = hn::MulAdd(s, x1, acc[g][1]);
      }
    }
    for (size_t g = 0; g < G; ++g) {
      hn::StoreU(acc[g][0], d, dwt + g * in + p);
      hn::StoreU(acc[g][1], d, dwt + g * in + p + N);
    }
  }
  for (; p + N <= in; p += N) {
    VF acc[G];
    for (size_t g = 0; g < G; ++g) acc[g] = hn::LoadU(d, dwt + g * in + p);
    for (size_t i = 0; i < valid; ++i) {
      const VF x0 = hn::LoadU(d, a.h + (r0 + i) * a.ldh + p);
      for (size_t g = 0; g < G; ++g) {
        acc[g] = hn::MulAdd(hn::Set(d, lt[(c0 + g) * N + i]), x0, acc[g]);
      }
    }
    for (size_t g = 0; g < G; ++g) hn::StoreU(acc[g], d, dwt + g * in + p);
  }
  for (; p < in; ++p) {
    for (size_t g = 0; g < G; ++g) {
      float s = dwt[g * in + p];
      for (size_t i = 0; i < valid; ++i) s += lt[(c0 + g) * N + i] * a.h[(r0 + i) * a.ldh + p];
      dwt[g * in + p] = s;
    }
  }
}

// dh row (r0 + i0 + j)[p .. p + V * N) = sum_c dl[c][i0 + j] * wt[c][p ..], for j < R.
template <size_t R, size_t V>
HWY_INLINE void DhChunk(const detail::OutputLayerArgs& a, size_t r0, size_t i0, size_t p) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t in = a.in, classes = a.classes;
  const float* HWY_RESTRICT lt = a.lt;
  float* dh = a.dh + (r0 + i0) * a.lddh + p;
  VF acc[R][V];
  for (size_t j = 0; j < R; ++j) {
    for (size_t v = 0; v < V; ++v) acc[j][v] = hn::Zero(d);
  }
  for (size_t c = 0; c < classes; ++c) {
    VF w[V];
    for (size_t v = 0; v < V; ++v) w[v] = hn::LoadU(d, a.wt + c * in + p + v * N);
    for (size_t j = 0; j < R; ++j) {
      const VF s = hn::Set(d, lt[c * N + i0 + j]);
      for (size_t v = 0; v < V; ++v) acc[j][v] = hn::MulAdd(s, w[v], acc[j][v]);
    }
  }
  for (size_t j = 0; j < R; ++j) {
    for (size_t v = 0; v < V; ++v) hn::StoreU(acc[j][v], d, dh + j * a.lddh + v * N);
  }
}

// Vectors per dH chunk: on AVX2 4 rows x 3 vectors = 12 accumulators (+ 3 + 1 of the 16
// registers); with 8 the FMAs' 4-cycle latency on two pipes left no slack. Every element is
// the same sum over the classes in the same order whatever the chunk, so this is speed only.
#if HWY_TARGET == HWY_AVX2
constexpr size_t kDhVectors = 3;
#else
constexpr size_t kDhVectors = 2;
#endif

// dh row (r0 + i0 + j)[p] = sum_c dl[c][i0 + j] * wt[c][p] for j < R.
template <size_t R>
HWY_INLINE void DhGroup(const detail::OutputLayerArgs& a, size_t r0, size_t i0) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t in = a.in, classes = a.classes;
  const float* HWY_RESTRICT lt = a.lt;
  size_t p = 0;
  for (; p + kDhVectors * N <= in; p += kDhVectors * N) DhChunk<R, kDhVectors>(a, r0, i0, p);
  for (; p + N <= in; p += N) DhChunk<R, 1>(a, r0, i0, p);
  float* dh = a.dh + (r0 + i0) * a.lddh;
  for (; p < in; ++p) {
    for (size_t j = 0; j < R; ++j) {
      float s = 0.0f;
      for (size_t c = 0; c < classes; ++c) s += lt[c * N + i0 + j] * a.wt[c * in + p];
      dh[j * a.lddh + p] = s;
    }
  }
}

// Calls f(std::integral_constant<size_t, K>) for K = min(left, kMax) (kMax <= 5), and
// returns K.
template <size_t kMax, class F>
HWY_INLINE size_t UpTo(size_t left, const F& f) {
  if (kMax >= 5 && left >= 5) return f(std::integral_constant<size_t, 5>()), 5;
  if (left >= 4) return f(std::integral_constant<size_t, 4>()), 4;
  if (left == 3) return f(std::integral_constant<size_t, 3>()), 3;
  if (left == 2) return f(std::integral_constant<size_t, 2>()), 2;
  return f(std::integral_constant<size_t, 1>()), 1;
}

// Classes per register group in the logits and dW steps: 2 x 5 accumulators (+ 3) fit the 16
// registers of AVX2/SSE4, and ten classes split 5 + 5 rather than 4 + 4 + 2, whose last
// group has too few independent FMA chains to hide the FMA latency (4 cycles, 2 pipes).
constexpr size_t kClassGroup = 5;

double OutputLayerTrain(const detail::OutputLayerArgs& a) {
  const DF d;
  const size_t N = hn::Lanes(d);
  const size_t rows = a.rows, in = a.in, classes = a.classes;
  // Wᵀ (classes x in), and zeroed accumulators for dWᵀ and the per-lane db. The transposes
  // go in 4 x 4 blocks (gemm::TransposeCopy): element by element they took ~1/3 of a
  // batch-32 call.
  const int64_t in64 = static_cast<int64_t>(in), classes64 = static_cast<int64_t>(classes);
  gemm::TransposeCopy(a.w, classes64, in64, classes64, a.wt, in64);
  std::memset(a.dwt, 0, classes * in * sizeof(float));
  std::memset(a.dbv, 0, classes * N * sizeof(float));

  HWY_ALIGN float tmp0[kClassGroup], tmp1[kClassGroup];
  HWY_ALIGN float lab_logit[detail::kOutputLayerMaxLanes];
  HWY_ALIGN float lab_f[detail::kOutputLayerMaxLanes];
  HWY_ALIGN float row_scale[detail::kOutputLayerMaxLanes];
  HWY_ALIGN float row_weight[detail::kOutputLayerMaxLanes];
  HWY_ALIGN float loss_lanes[detail::kOutputLayerMaxLanes];
  double loss = 0.0;
  bool nonfinite = false;
  float* HWY_RESTRICT lt = a.lt;
  for (size_t r0 = 0; r0 < rows; r0 += N) {
    const size_t valid = rows - r0 < N ? rows - r0 : N;
    // 1. Logits of the block, class-major: lt[c * N + i]. Rows past the batch repeat the last
    // row (in bounds; masked out below).
#if HWY_TARGET == HWY_AVX2
    const bool transposing_sums = in % 8 == 0;
#else
    constexpr bool transposing_sums = false;
#endif
    if (transposing_sums) {
#if HWY_TARGET == HWY_AVX2
      for (size_t i0 = 0; i0 < 8; i0 += 4) {
        const float* hr[4];
        for (size_t j = 0; j < 4; ++j) {
          const size_t i = i0 + j;
          hr[j] = a.h + (r0 + (i < valid ? i : valid - 1)) * a.ldh;
        }
        for (size_t c = 0; c < classes; c += 2) {
          Logits4x2(a, hr, c, c + 1 < classes ? c + 1 : c, lt + i0);
        }
      }
#endif
    } else {
      for (size_t i = 0; i < N; i += 2) {
        const size_t ra = r0 + (i < valid ? i : valid - 1);
        const size_t rb = r0 + (i + 1 < valid ? i + 1 : valid - 1);
        const float* h0 = a.h + ra * a.ldh;
        const float* h1 = a.h + rb * a.ldh;
        for (size_t c0 = 0; c0 < classes;) {
          c0 += UpTo<kClassGroup>(classes - c0, [&](auto g) HWY_ATTR {
            constexpr size_t G = decltype(g)::value;
            LogitsGroup<G>(a, h0, h1, c0, tmp0, tmp1);
            for (size_t k = 0; k < G; ++k) {
              lt[(c0 + k) * N + i] = tmp0[k];
              if (i + 1 < N) lt[(c0 + k) * N + i + 1] = tmp1[k];
            }
          });
        }
      }
    }
    // 2. Softmax, loss and dlogits over the block's rows, one vector per class.
    for (size_t i = 0; i < N; ++i) {
      const bool ok = i < valid;
      const int32_t label = ok ? a.labels[r0 + i] : 0;
      lab_f[i] = static_cast<float>(label);
      lab_logit[i] = lt[static_cast<size_t>(label) * N + i];
      row_weight[i] = a.class_weights != nullptr ? a.class_weights[label] : 1.0f;
      row_scale[i] = ok ? a.scale * row_weight[i] : 0.0f;
    }
    // A NaN or infinite logit makes the loss NaN (as softmax_cross_entropy_forward does): the
    // SIMD max and exp would otherwise drop it. Lanes past the batch repeat a valid row.
    VF m = hn::Load(d, lt);
    auto finite = hn::IsFinite(m);
    for (size_t c = 1; c < classes; ++c) {
      const VF v = hn::Load(d, lt + c * N);
      finite = hn::And(finite, hn::IsFinite(v));
      m = hn::Max(m, v);
    }
    if (!hn::AllTrue(d, finite)) nonfinite = true;
    VF sum = hn::Zero(d);
    for (size_t c = 0; c < classes; ++c) {
      const VF e = hn::Exp(d, hn::Sub(hn::Load(d, lt + c * N), m));
      hn::Store(e, d, lt + c * N);
      sum = hn::Add(sum, e);
    }
    const VF inv = hn::Div(hn::Set(d, 1.0f), sum);
    // -log p[label] = log(sum) + max - logit[label]
    hn::Store(hn::Sub(hn::Add(hn::Log(d, sum), m), hn::Load(d, lab_logit)), d, loss_lanes);
    if (a.class_weights != nullptr) {
      for (size_t i = 0; i < valid; ++i) {
        loss += static_cast<double>(row_weight[i]) * static_cast<double>(loss_lanes[i]);
      }
    } else {
      for (size_t i = 0; i < valid; ++i) loss += static_cast<double>(loss_lanes[i]);
    }
    const VF labv = hn::Load(d, lab_f);
    const VF sv = hn::Load(d, row_scale);
    for (size_t c = 0; c < classes; ++c) {
      const VF p = hn::Mul(hn::Load(d, lt + c * N), inv);
      if (a.probs != nullptr) {
        hn::Store(p, d, loss_lanes);
        for (size_t i = 0; i < valid; ++i) a.probs[(r0 + i) * classes + c] = loss_lanes[i];
      }
      const VF onehot = hn::IfThenElseZero(hn::Eq(labv, hn::Set(d, static_cast<float>(c))),
                                           hn::Set(d, 1.0f));
      const VF dl = hn::Mul(hn::Sub(p, onehot), sv);
      hn::Store(dl, d, lt + c * N);
      hn::Store(hn::Add(hn::Load(d, a.dbv + c * N), dl), d, a.dbv + c * N);
    }
    // 3. dWᵀ += dlᵀ · H_block.
    for (size_t c0 = 0; c0 < classes;) {
      c0 += UpTo<kClassGroup>(classes - c0, [&](auto g) HWY_ATTR {
        DwGroup<decltype(g)::value>(a, r0, valid, c0);
      });
    }
    // 4. dH_block = dl · Wᵀ.
    if (a.dh != nullptr) {
      for (size_t i0 = 0; i0 < valid;) {
        i0 += UpTo<4>(valid - i0, [&](auto r) HWY_ATTR { DhGroup<decltype(r)::value>(a, r0, i0); });
      }
    }
  }
  gemm::TransposeCopy(a.dwt, in64, classes64, in64, a.dw, classes64);
  for (size_t c = 0; c < classes; ++c) {
    float s = 0.0f;
    for (size_t i = 0; i < N; ++i) s += a.dbv[c * N + i];
    a.db[c] = s;
  }
  return nonfinite ? std::numeric_limits<double>::quiet_NaN() : loss;
}

}  // namespace output_layer

double OutputLayerTrain(const detail::OutputLayerArgs& a) {
  return output_layer::OutputLayerTrain(a);
}

}  // namespace HWY_NAMESPACE
}  // namespace simdnn
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "hwy/aligned_allocator.h"
#include "simdnn/output_layer.h"

namespace simdnn {
HWY_EXPORT(OutputLayerTrain);

namespace {

void check(const char* fn, size_t rows, size_t in, size_t classes, const float* h, size_t ldh,
           const float* w, const float* b, const int32_t* labels, const float* dw,
           const float* db, const float* dh, size_t lddh) {
  const auto fail = [&](const std::string& what) {
    throw std::invalid_argument(std::string(fn) + ": " + what);
  };
  if (classes == 0) fail("classes must be > 0");
  if (in == 0) fail("in must be > 0");
  if (ldh < in) fail("ldh (" + std::to_string(ldh) + ") < in (" + std::to_string(in) + ")");
  if (dh != nullptr && lddh < in) {
    fail("lddh (" + std::to_string(lddh) + ") < in (" + std::to_string(in) + ")");
  }
  if (w == nullptr) fail("w is null");
  if (b == nullptr) fail("b is null");
  if (dw == nullptr) fail("dw is null");
  if (db == nullptr) fail("db is null");
  if (rows > 0 && (h == nullptr || labels == nullptr)) fail("h or labels is null");
  for (size_t r = 0; r < rows; ++r) {
    if (labels[r] < 0 || static_cast<size_t>(labels[r]) >= classes) {
      fail("labels[" + std::to_string(r) + "] = " + std::to_string(labels[r]) +
           " outside [0, " + std::to_string(classes) + ")");
    }
  }
}

template <class T>
T* scratch(hwy::AlignedFreeUniquePtr<T[]>& buf, size_t& cap, size_t count) {
  if (count > cap) {
    buf = hwy::AllocateAligned<T>(count);
    cap = count;
  }
  return buf.get();
}

}  // namespace

double output_layer_train(size_t rows, size_t in, size_t classes, const float* h, size_t ldh,
                          const float* w, const float* b, const int32_t* labels, float scale,
                          float* dw, float* db, float* dh, size_t lddh, float* probs,
                          const float* class_weights) {
  check("output_layer_train", rows, in, classes, h, ldh, w, b, labels, dw, db, dh, lddh);
  thread_local hwy::AlignedFreeUniquePtr<float[]> buf;
  thread_local size_t cap = 0;
  const size_t mat = (classes * in + 63) / 64 * 64;
  const size_t vec = classes * detail::kOutputLayerMaxLanes;
  float* s = scratch(buf, cap, 2 * mat + 2 * vec);
  detail::OutputLayerArgs a{rows,  in,   classes, h,    ldh,   w,
                            b,     labels, scale, dw,   db,    dh,
                            lddh,  probs, class_weights, s, s + mat, s + 2 * mat,
                            s + 2 * mat + vec};
  return HWY_DYNAMIC_DISPATCH(OutputLayerTrain)(a);
}

double output_layer_train_ref(size_t rows, size_t in, size_t classes, const float* h, size_t ldh,
                              const float* w, const float* b, const int32_t* labels, float scale,
                              float* dw, float* db, float* dh, size_t lddh, float* probs,
                              const float* class_weights) {
  check("output_layer_train_ref", rows, in, classes, h, ldh, w, b, labels, dw, db, dh, lddh);
  std::vector<double> gw(in * classes, 0.0), gb(classes, 0.0), logit(classes), dl(classes);
  double loss = 0.0;
  for (size_t r = 0; r < rows; ++r) {
    const float* hr = h + r * ldh;
    for (size_t c = 0; c < classes; ++c) {
      double s = b[c];
      for (size_t p = 0; p < in; ++p) s += static_cast<double>(hr[p]) * w[p * classes + c];
      logit[c] = s;
    }
    const double m = *std::max_element(logit.begin(), logit.end());
    double sum = 0.0;
    for (size_t c = 0; c < classes; ++c) sum += std::exp(logit[c] - m);
    const size_t label = static_cast<size_t>(labels[r]);
    const double cw = class_weights != nullptr ? class_weights[label] : 1.0;
    loss += cw * (std::log(sum) + m - logit[label]);
    for (size_t c = 0; c < classes; ++c) {
      const double p = std::exp(logit[c] - m) / sum;
      if (probs != nullptr) probs[r * classes + c] = static_cast<float>(p);
      dl[c] = static_cast<double>(scale) * cw * (p - (c == label ? 1.0 : 0.0));
      gb[c] += dl[c];
    }
    for (size_t p = 0; p < in; ++p) {
      for (size_t c = 0; c < classes; ++c) gw[p * classes + c] += hr[p] * dl[c];
    }
    if (dh != nullptr) {
      for (size_t p = 0; p < in; ++p) {
        double s = 0.0;
        for (size_t c = 0; c < classes; ++c) s += dl[c] * w[p * classes + c];
        dh[r * lddh + p] = static_cast<float>(s);
      }
    }
  }
  for (size_t i = 0; i < in * classes; ++i) dw[i] = static_cast<float>(gw[i]);
  for (size_t c = 0; c < classes; ++c) db[c] = static_cast<float>(gb[c]);
  return loss;
}

}  // namespace simdnn
#endif  // HWY_ONCE
