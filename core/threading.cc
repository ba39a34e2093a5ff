#include "simdnn/threading.h"

#include <omp.h>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace simdnn {

void enable_flush_to_zero() {
#if defined(__x86_64__) || defined(__i386__)
  // FTZ (bit 15) and DAZ (bit 6) of MXCSR.
  _mm_setcsr(_mm_getcsr() | 0x8040u);
#endif
}

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  int t = omp_get_max_threads();
  return t > 0 ? t : 1;
}

void set_num_threads(int threads) {
  omp_set_num_threads(resolve_threads(threads));
  enable_flush_to_zero();
}

}  // namespace simdnn
