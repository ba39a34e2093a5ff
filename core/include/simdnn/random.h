// A small, fully specified random number generator, so that the same seed gives the same
// model with every standard library (std::uniform_real_distribution and std::shuffle are
// implementation-defined).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace simdnn {

// xoshiro256** seeded through splitmix64.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0);

  uint64_t next_u64();
  // Uniform in [0, 1) with 24 random bits.
  float uniform_float();
  // Uniform in [lo, hi).
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform_float(); }
  // Uniform integer in [0, bound), bound > 0, without modulo bias.
  uint64_t below(uint64_t bound);
  // Fisher-Yates shuffle.
  void shuffle(std::span<uint32_t> values);

  // The full state, for checkpoints.
  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

 private:
  std::array<uint64_t, 4> s_;
};

}  // namespace simdnn
