#!/usr/bin/env python3
"""Which OpenBLAS cores to try on this CPU, and which one a process actually runs.

Debian's OpenBLAS (DYNAMIC_ARCH) picks its core at load time; OPENBLAS_CORETYPE overrides it.
A core this CPU cannot run crashes (SkylakeX on an AVX2-only CPU dies with SIGILL), so the
candidates follow the CPU's flags, fastest-first by OpenBLAS's own kernels:
  avx512f            -> SkylakeX, Haswell
  avx2 + fma         -> Haswell, Zen (Zen uses the Haswell kernels with other blocking;
                        on a Zen 3 EPYC, Haswell ran 122 and Zen 90-123 GFLOP/s at 256x784x128)
  avx                -> Sandybridge
  otherwise          -> Nehalem
The benchmark scripts measure each candidate and keep the fastest, so the order only matters
for ties. Some machines set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE in the environment (older
OpenBLAS builds misdetect them); the scripts override both for the benchmark processes only.

usage: bench/blas_cores.py            prints the candidates, space-separated
       bench/blas_cores.py --cpu      prints the CPU model name
"""
import ctypes
import ctypes.util
import sys


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def candidates(flags=None):
    flags = cpu_flags() if flags is None else flags
    if "avx512f" in flags:
        return ["SkylakeX", "Haswell"]
    if "avx2" in flags and "fma" in flags:
        return ["Haswell", "Zen"]
    if "avx" in flags:
        return ["Sandybridge"]
    return ["Nehalem"]


def simd_level(flags=None):
    flags = cpu_flags() if flags is None else flags
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    return "SSE4" if "sse4_2" in flags else "SSE2"


def loaded_openblas():
    """The libopenblas already loaded in this process (e.g. through torch), or None."""
    for name in ("libopenblas.so.0", ctypes.util.find_library("openblas")):
        if not name:
            continue
        try:
            lib = ctypes.CDLL(name)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_num_threads.restype = ctypes.c_int
            lib.openblas_set_num_threads.argtypes = [ctypes.c_int]
            return lib
        except (OSError, AttributeError):
            continue
    return None


if __name__ == "__main__":
    if "--cpu" in sys.argv[1:]:
        print(f"{cpu_name()} ({simd_level()})")
    else:
        print(" ".join(candidates()))
