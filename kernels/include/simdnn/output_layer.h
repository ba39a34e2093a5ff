// The output layer of a classifier, fused for training: the logits GEMM, the bias, softmax
// cross-entropy and the backward pass (dW, db, dH) in one pass over the batch.
//
// With few classes (10) the separate calls (H·W, bias, softmax/CE, Hᵀ·dY, column sum, dY·Wᵀ)
// each run at 10-40% of the machine's peak: every GEMM has a dimension of 10, which fills
// neither a register tile nor a vector, and H (rows x in) is read three times. Here each block
// of rows is read once while it sits in L1: its logits are dot products vectorized over `in`,
// softmax and the loss are vectorized over the block's rows, and dW / dH are vectorized over
// `in` again, so no lane is wasted on the 10 classes.
//
// One thread, by design: dW and db are sums over the batch, and a fixed order of additions
// keeps the result the same for every thread count (the whole layer is ~1 MFLOP at batch 256).
#pragma once

#include <cstddef>
#include <cstdint>

namespace simdnn {

// For rows r < rows, classes c < classes, p < in:
//   logits[r][c] = b[c] + sum_p h[r*ldh + p] * w[p*classes + c]     (w is in x classes)
//   loss         = sum_r cw[labels[r]] * -log softmax(logits[r])[labels[r]]   (returned, not
//                  scaled)
//   dl[r][c]     = scale * cw[labels[r]] * (softmax(logits[r])[c] - (c == labels[r]))
//   dw[p*classes + c] = sum_r h[r][p] * dl[r][c]     (overwritten)
//   db[c]             = sum_r dl[r][c]               (overwritten)
//   dh[r*lddh + p]    = sum_c dl[r][c] * w[p][c]     (overwritten; may be null to skip)
//   probs[r*classes + c] = softmax(logits[r])[c]     (when probs is not null)
// where cw = class_weights (one per class, Keras' class_weight), or 1 for every class when it is
// null. With scale = 1 / rows, dw, db and dh are the gradients of the mean loss. Labels must
// lie in [0, classes); ldh, lddh >= in. Throws std::invalid_argument naming the argument
// otherwise. A NaN or infinite logit makes the returned loss NaN.
double output_layer_train(size_t rows, size_t in, size_t classes, const float* h, size_t ldh,
                          const float* w, const float* b, const int32_t* labels, float scale,
                          float* dw, float* db, float* dh, size_t lddh, float* probs = nullptr,
                          const float* class_weights = nullptr);

// Scalar reference (double accumulation), same contract.
double output_layer_train_ref(size_t rows, size_t in, size_t classes, const float* h, size_t ldh,
                              const float* w, const float* b, const int32_t* labels, float scale,
                              float* dw, float* db, float* dh, size_t lddh,
                              float* probs = nullptr, const float* class_weights = nullptr);

}  // namespace simdnn
