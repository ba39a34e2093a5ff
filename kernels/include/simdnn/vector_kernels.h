// Bias, reduction and conversion kernels on float32 matrices and arrays. Every fast kernel has
// a *_ref twin with the same signature.
#pragma once

#include <cstddef>
#include <cstdint>

namespace simdnn {

// y[r][c] += bias[c] for a rows x cols matrix with leading dimension ldy.
void add_bias_rows(size_t rows, size_t cols, const float* bias, float* y, size_t ldy);
void add_bias_rows_ref(size_t rows, size_t cols, const float* bias, float* y, size_t ldy);

// out[c] = (accumulate ? out[c] : 0) + sum over r of x[r][c]: the bias gradient.
// The summation order over r is fixed (row by row), so the result is deterministic.
void column_sum(size_t rows, size_t cols, const float* x, size_t ldx, float* out,
                bool accumulate);
void column_sum_ref(size_t rows, size_t cols, const float* x, size_t ldx, float* out,
                    bool accumulate);

// y[i] += alpha * x[i].
void axpy(size_t n, float alpha, const float* x, float* y);
void axpy_ref(size_t n, float alpha, const float* x, float* y);

// x[i] *= alpha.
void scale(size_t n, float alpha, float* x);
void scale_ref(size_t n, float alpha, float* x);

// dst[i] = src[i] * scale: uint8 pixels to float (scale = 1/255 for MNIST).
void convert_u8_to_float(size_t n, const uint8_t* src, float scale, float* dst);
void convert_u8_to_float_ref(size_t n, const uint8_t* src, float scale, float* dst);

// True when every element is finite (no NaN, no +-inf).
bool all_finite(size_t n, const float* x);
bool all_finite_ref(size_t n, const float* x);

}  // namespace simdnn
