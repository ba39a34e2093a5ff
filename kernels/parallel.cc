#include "kernels/parallel.h"

namespace simdnn::detail {

ContentionGuard& contention_guard() {
  static ContentionGuard guard;
  return guard;
}

}  // namespace simdnn::detail
