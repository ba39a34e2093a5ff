// Row-wise softmax, log-softmax and the fused softmax cross-entropy with integer labels.
// Rows are independent; row r of x starts at x + r * ldx. Every fast kernel has a *_ref twin
// with the same signature. Numerically stable: the row maximum is subtracted first, so rows
// holding +-1e4 or -inf entries give no NaN (a row that is entirely -inf gives a uniform
// distribution for softmax and -log(cols) for log-softmax). A NaN in a row makes that whole
// output row NaN: it is never silently turned into a probability.
#pragma once

#include <cstddef>
#include <cstdint>

namespace simdnn {

void softmax_rows(size_t rows, size_t cols, const float* x, size_t ldx, float* y, size_t ldy);
void softmax_rows_ref(size_t rows, size_t cols, const float* x, size_t ldx, float* y,
                      size_t ldy);

void log_softmax_rows(size_t rows, size_t cols, const float* x, size_t ldx, float* y,
                      size_t ldy);
void log_softmax_rows_ref(size_t rows, size_t cols, const float* x, size_t ldx, float* y,
                          size_t ldy);

// Mean over rows of -log softmax(logits_r)[labels_r], computed as log-sum-exp (never log(p)),
// accumulated in double. Also writes the probabilities (rows x cols, leading dimension cols)
// for the backward pass. Returns NaN when any logit is NaN or +inf (checked explicitly, since
// the SIMD exp maps NaN to 0). Throws std::invalid_argument when a label is >= cols or
// negative, naming the row.
double softmax_cross_entropy_forward(size_t rows, size_t cols, const float* logits, size_t ld,
                                     const int32_t* labels, float* probs);
double softmax_cross_entropy_forward_ref(size_t rows, size_t cols, const float* logits,
                                         size_t ld, const int32_t* labels, float* probs);

// dlogits = (probs - onehot(labels)) * scale, rows x cols with leading dimension cols.
// For the mean loss above, scale = dloss / rows.
void softmax_cross_entropy_backward(size_t rows, size_t cols, const float* probs,
                                    const int32_t* labels, float scale, float* dlogits);
void softmax_cross_entropy_backward_ref(size_t rows, size_t cols, const float* probs,
                                        const int32_t* labels, float scale, float* dlogits);

}  // namespace simdnn
