// Owned (or viewed), 64-byte-aligned, row-major float32 tensors of rank 1 to 4.
#pragma once

#include <array>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

namespace simdnn {

// The dimensions of a tensor: rank 1..4 (rank 0 only for a default-constructed, empty shape).
class Shape {
 public:
  static constexpr size_t kMaxRank = 4;

  Shape() = default;
  // Throws std::invalid_argument when the rank is above kMaxRank.
  Shape(std::initializer_list<size_t> dims);

  size_t rank() const { return rank_; }
  size_t operator[](size_t axis) const { return dims_[axis]; }
  // Product of all dimensions (0 for an empty shape).
  size_t num_elements() const;
  // "[32, 784]", for error messages.
  std::string to_string() const;

  friend bool operator==(const Shape& a, const Shape& b);
  friend bool operator!=(const Shape& a, const Shape& b) { return !(a == b); }

 private:
  std::array<size_t, kMaxRank> dims_{};
  size_t rank_ = 0;
};

namespace detail {
// Tensor's storage deleter (outside the class: a nested class with a member initialiser is not
// default constructible until Tensor is complete, which unique_ptr's constructor needs).
struct FreeAligned {
  bool owned = true;  // false: a Tensor::view(), nothing to free
  void operator()(float* p) const;
};
}  // namespace detail

// A float32 tensor that owns its storage (except a view(), below). Storage is contiguous,
// row-major and aligned to 64 bytes (one cache line, one AVX-512 vector), and
// zero-initialised on construction.
// Moves are cheap; copies are explicit (clone()) so that no hidden copy lands in a hot loop.
class Tensor {
 public:
  static constexpr size_t kAlignment = 64;

  Tensor() = default;
  explicit Tensor(const Shape& shape);
  Tensor(std::initializer_list<size_t> dims) : Tensor(Shape(dims)) {}

  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;
  Tensor& operator=(const Tensor&) = delete;

  // A deep copy (owning its storage, whatever this one does).
  Tensor clone() const;

  // A tensor over `shape.num_elements()` floats at `data`, which it does not own: `data` must
  // outlive it (and anything it is moved into). Data-parallel training lays every parameter
  // out in one buffer so that an exchange writes straight into them
  // (<simdnn/data_parallel.h>). The pointer should be aligned like owned storage
  // (kAlignment) for the kernels' full speed. resize() beyond the size allocates owned storage.
  static Tensor view(float* data, const Shape& shape);
  // False for a view().
  bool owns_data() const { return data_.get_deleter().owned; }

  const Shape& shape() const { return shape_; }
  size_t rank() const { return shape_.rank(); }
  size_t dim(size_t axis) const { return shape_[axis]; }
  size_t size() const { return shape_.num_elements(); }
  bool empty() const { return size() == 0; }

  // Viewed as a matrix: rows() = first dimension, cols() = product of the others.
  size_t rows() const { return rank() == 0 ? 0 : shape_[0]; }
  size_t cols() const { return rows() == 0 ? 0 : size() / rows(); }

  float* data() { return data_.get(); }
  const float* data() const { return data_.get(); }
  float& operator[](size_t i) { return data_.get()[i]; }
  float operator[](size_t i) const { return data_.get()[i]; }
  std::span<float> span() { return {data(), size()}; }
  std::span<const float> span() const { return {data(), size()}; }

  // Row r of the matrix view (cols() elements). Throws std::out_of_range.
  std::span<float> row(size_t r);
  std::span<const float> row(size_t r) const;

  // Same elements, new shape; throws std::invalid_argument naming both shapes when the
  // element counts differ.
  void reshape(const Shape& shape);
  // Reallocates only when the element count grows past the capacity; contents are unspecified
  // afterwards. Used for per-batch-size buffers that must not be reallocated every step.
  void resize(const Shape& shape);
  void fill(float value);

 private:
  using FreeAligned = detail::FreeAligned;
  Shape shape_;
  size_t capacity_ = 0;
  std::unique_ptr<float[], FreeAligned> data_;
};

// Throws std::invalid_argument "<what>: shape [a, b] does not match [c, d]" unless equal.
void require_same_shape(const Shape& a, const Shape& b, const char* what);

}  // namespace simdnn
