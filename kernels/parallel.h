// Internal: the one place where the kernels start OpenMP threads. Kept out of the per-target
// Highway code on purpose (clang 14 crashes on OpenMP pragmas inside it).
#pragma once

#include <cstdint>

#include "simdnn/threading.h"

namespace simdnn::detail {

// Calls body(i) for i in [0, count) on `threads` OpenMP threads with a static schedule, so the
// same i always runs the same computation whatever the thread count. Each worker thread gets
// flush-to-zero before it runs any work.
template <class Body>
void parallel_for(int64_t count, int threads, const Body& body) {
  if (threads <= 1 || count <= 1) {
    enable_flush_to_zero();
    for (int64_t i = 0; i < count; ++i) body(i);
    return;
  }
  const int t = static_cast<int>(count < threads ? count : threads);
#pragma omp parallel num_threads(t)
  {
    enable_flush_to_zero();
#pragma omp for schedule(static)
    for (int64_t i = 0; i < count; ++i) body(i);
  }
}

}  // namespace simdnn::detail
