#include "simdnn/tensor.h"

#include <algorithm>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

namespace simdnn {

Shape::Shape(std::initializer_list<size_t> dims) {
  if (dims.size() > kMaxRank) {
    throw std::invalid_argument("Shape: rank " + std::to_string(dims.size()) +
                                " exceeds the maximum rank " + std::to_string(kMaxRank));
  }
  std::copy(dims.begin(), dims.end(), dims_.begin());
  rank_ = dims.size();
}

size_t Shape::num_elements() const {
  if (rank_ == 0) return 0;
  size_t n = 1;
  for (size_t i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

std::string Shape::to_string() const {
  std::string s = "[";
  for (size_t i = 0; i < rank_; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims_[i]);
  }
  return s + "]";
}

bool operator==(const Shape& a, const Shape& b) {
  if (a.rank_ != b.rank_) return false;
  return std::equal(a.dims_.begin(), a.dims_.begin() + a.rank_, b.dims_.begin());
}

void detail::FreeAligned::operator()(float* p) const {
  if (owned) std::free(p);
}

static float* allocate_aligned(size_t n) {
  if (n == 0) return nullptr;
  if (n > (SIZE_MAX - Tensor::kAlignment) / sizeof(float)) throw std::bad_alloc();
  // aligned_alloc wants a size that is a multiple of the alignment.
  size_t bytes = (n * sizeof(float) + Tensor::kAlignment - 1) / Tensor::kAlignment *
                 Tensor::kAlignment;
  void* p = std::aligned_alloc(Tensor::kAlignment, bytes);
  if (!p) throw std::bad_alloc();
  return static_cast<float*>(p);
}

Tensor::Tensor(const Shape& shape) : shape_(shape), capacity_(shape.num_elements()) {
  data_ = std::unique_ptr<float[], FreeAligned>(allocate_aligned(capacity_));
  fill(0.0f);
}

Tensor Tensor::view(float* data, const Shape& shape) {
  Tensor t;
  t.shape_ = shape;
  t.capacity_ = shape.num_elements();
  t.data_ = std::unique_ptr<float[], FreeAligned>(data, FreeAligned{false});
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(shape_);
  std::copy_n(data(), size(), t.data());
  return t;
}

std::span<float> Tensor::row(size_t r) {
  if (r >= rows()) {
    throw std::out_of_range("Tensor::row: row " + std::to_string(r) + " out of range for shape " +
                            shape_.to_string());
  }
  return {data() + r * cols(), cols()};
}

std::span<const float> Tensor::row(size_t r) const {
  return const_cast<Tensor*>(this)->row(r);
}

void Tensor::reshape(const Shape& shape) {
  if (shape.num_elements() != size()) {
    throw std::invalid_argument("Tensor::reshape: shape " + shape.to_string() +
                                " does not hold the " + std::to_string(size()) +
                                " elements of " + shape_.to_string());
  }
  shape_ = shape;
}

void Tensor::resize(const Shape& shape) {
  size_t n = shape.num_elements();
  if (n > capacity_) {
    data_ = std::unique_ptr<float[], FreeAligned>(allocate_aligned(n));  // owned, even after a view
    capacity_ = n;
  }
  shape_ = shape;
}

void Tensor::fill(float value) { std::fill_n(data(), size(), value); }

void require_same_shape(const Shape& a, const Shape& b, const char* what) {
  if (a != b) {
    throw std::invalid_argument(std::string(what) + ": shape " + a.to_string() +
                                " does not match " + b.to_string());
  }
}

}  // namespace simdnn
