// Thread-count and floating-point-mode helpers shared by the kernels and the tools.
#pragma once

namespace simdnn {

// Sets flush-to-zero and denormals-are-zero on the calling thread (x86 MXCSR; a no-op
// elsewhere). Denormal Adam moments otherwise slow training several-fold. The threaded
// kernels call this on each of their worker threads.
void enable_flush_to_zero();

// threads <= 0 -> omp_get_max_threads(); otherwise threads. Always >= 1.
int resolve_threads(int threads);

// Sets the default thread count for OpenMP regions started by the calling thread (the kernels'
// `threads = 0` default) and enables flush-to-zero on the calling thread.
void set_num_threads(int threads);

}  // namespace simdnn
