#include "simdnn/parallel_for.h"

namespace simdnn {

ContentionGuard& contention_guard() {
  static ContentionGuard guard;
  return guard;
}

}  // namespace simdnn
