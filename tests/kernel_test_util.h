// Helpers shared by the non-GEMM kernel tests: the length sweep, misaligned buffers and ULP
// distances.
#pragma once

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <vector>

namespace simdnn::test {

// Empty, single, below one SSE/AVX/AVX-512 vector, exact multiples and +-1 around them (ragged
// tails for every target's width), and large sizes that run many full vectors.
inline constexpr size_t kKernelLengths[] = {0,  1,  2,  3,   7,   15,  16,   17,
                                            31, 33, 63, 64, 65, 127, 1000, 4099};

// Start offsets in floats: 0 is 64-byte aligned (std::vector of float is at least 16-byte
// aligned; the helper below over-aligns), 1..3 are misaligned for every vector width.
inline constexpr size_t kMisalignments[] = {0, 1, 2, 3};

// A float buffer whose view starts `offset` floats past a 64-byte boundary; the slack before
// and after is filled with a sentinel so stray writes can be detected.
class OffsetBuffer {
 public:
  static constexpr float kSentinel = -12345.5f;
  static constexpr size_t kGuard = 32;

  OffsetBuffer(size_t n, size_t offset) : n_(n), storage_(n + offset + 2 * kGuard + 16, kSentinel) {
    const auto base = reinterpret_cast<uintptr_t>(storage_.data());
    const size_t to_aligned = ((64 - base % 64) % 64) / sizeof(float);
    begin_ = to_aligned + kGuard + offset;
  }
  float* data() { return storage_.data() + begin_; }
  const float* data() const { return storage_.data() + begin_; }
  size_t size() const { return n_; }
  float& operator[](size_t i) { return data()[i]; }
  void assign(const std::vector<float>& values) {
    for (size_t i = 0; i < n_; ++i) data()[i] = values[i];
  }
  std::vector<float> to_vector() const { return std::vector<float>(data(), data() + n_); }
  // True when nothing outside [0, n) was written.
  bool guards_intact() const {
    for (size_t i = 0; i < storage_.size(); ++i) {
      if ((i < begin_ || i >= begin_ + n_) && std::bit_cast<uint32_t>(storage_[i]) !=
                                                  std::bit_cast<uint32_t>(kSentinel)) {
        return false;
      }
    }
    return true;
  }

 private:
  size_t n_;
  std::vector<float> storage_;
  size_t begin_ = 0;
};

// Distance in representable floats; 0 for equal values (including +0 vs -0) and for two NaNs.
inline uint64_t ulp_distance(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) {
    return std::isnan(a) && std::isnan(b) ? 0 : std::numeric_limits<uint64_t>::max();
  }
  if (a == b) return 0;
  const auto ordered = [](float f) -> int64_t {
    const int32_t bits = std::bit_cast<int32_t>(f);
    return bits < 0 ? -static_cast<int64_t>(bits & 0x7fffffff) : bits;
  };
  return static_cast<uint64_t>(std::llabs(ordered(a) - ordered(b)));
}

// Equal as values, with NaN == NaN (signed zeros compare equal, deliberately).
inline bool same_value(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || a == b;
}

}  // namespace simdnn::test
