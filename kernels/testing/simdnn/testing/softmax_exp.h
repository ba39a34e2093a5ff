// Test support, not installed: the exp approximation inside the softmax kernels, exposed so
// that its accuracy can be checked directly (tests/test_softmax_kernels.cc).
#pragma once

#include <cstddef>

namespace simdnn::softmax_detail {

// y[i] = the exp approximation every softmax kernel applies to x - row_max (meant for x <= 0;
// at most ~1 ULP from exp there; see softmax_kernels.cc).
void softmax_exp_for_test(size_t n, const float* x, float* y);

}  // namespace simdnn::softmax_detail
