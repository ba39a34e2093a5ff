#include "simdnn/dense.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "simdnn/gemm.h"
#include "simdnn/vector_kernels.h"

namespace simdnn {

DenseInput::DenseInput(const GatheredRows& x) : gathered_(x) {
  check_gathered_rows(x, "dense input");
}

size_t DenseInput::rows() const { return floats_ ? floats_->rows() : gathered_.rows.size(); }
size_t DenseInput::cols() const { return floats_ ? floats_->cols() : gathered_.cols; }

void DenseInput::materialize(Tensor& out) const {
  out.resize(shape());
  if (floats_) {
    std::copy_n(floats_->data(), floats_->size(), out.data());
  } else {
    simdnn::materialize(gathered_, out.data());
  }
}

namespace {
void check_shapes(const DenseInput& x, const Tensor& w, const Tensor& b) {
  if (x.floats() && x.floats()->rank() != 2) {
    throw std::invalid_argument("dense: input must be a matrix [rows, cols], got " +
                                x.floats()->shape().to_string());
  }
  if (w.rank() != 2) {
    throw std::invalid_argument("dense: weight must be a matrix [rows, cols], got " +
                                w.shape().to_string());
  }
  if (x.cols() != w.rows()) {
    throw std::invalid_argument("dense: input " + x.shape().to_string() +
                                " does not fit weight " + w.shape().to_string());
  }
  if (b.size() != w.cols()) {
    throw std::invalid_argument("dense: bias " + b.shape().to_string() +
                                " does not fit weight " + w.shape().to_string());
  }
}
}  // namespace

// x [B, in], w [in, out], b [out] -> y [B, out]
void dense_forward(const DenseInput& x, const Tensor& w, const Tensor& b, Tensor& y,
                   int threads) {
  check_shapes(x, w, b);
  const size_t batch = x.rows(), in = w.rows(), out = w.cols();
  y.resize(Shape{batch, out});
  if (const Tensor* xf = x.floats()) {
    gemm(Transpose::kNo, Transpose::kNo, batch, out, in, 1.0f, xf->data(), in, w.data(), out,
         0.0f, y.data(), out, threads);
  } else {
    gemm_gathered(Transpose::kNo, Transpose::kNo, out, 1.0f, x.gathered(), w.data(), out, 0.0f,
                  y.data(), out, threads);
  }
  add_bias_rows(batch, out, b.data(), y.data(), out);
}

// x [B, in], w [in, out], dy [B, out] -> dw [in, out], db [out], dx [B, in]
void dense_backward(const DenseInput& x, const Tensor& w, const Tensor& dy, GradSink dw,
                    GradSink db, GradSink dx, int threads) {
  const size_t batch = x.rows(), in = w.rows(), out = w.cols();
  if (dy.rows() != batch || dy.cols() != out) {
    throw std::invalid_argument("dense backward: output gradient " + dy.shape().to_string() +
                                " does not fit input " + x.shape().to_string() + " and weight " +
                                w.shape().to_string());
  }
  if (dw.grad) {  // dW = xᵀ · dy
    if (const Tensor* xf = x.floats()) {
      gemm(Transpose::kYes, Transpose::kNo, in, out, batch, 1.0f, xf->data(), in, dy.data(), out,
           dw.beta, dw.grad, out, threads);
    } else {
      gemm_gathered(Transpose::kYes, Transpose::kNo, out, 1.0f, x.gathered(), dy.data(), out,
                    dw.beta, dw.grad, out, threads);
    }
  }
  if (db.grad) column_sum(batch, out, dy.data(), out, db.grad, db.beta != 0.0f);
  if (dx.grad) {  // dx = dy · wᵀ
    gemm(Transpose::kNo, Transpose::kYes, batch, in, out, 1.0f, dy.data(), out, w.data(), out,
         dx.beta, dx.grad, in, threads);
  }
}

}  // namespace simdnn
