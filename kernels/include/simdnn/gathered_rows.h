// A float matrix that is never materialized: rows picked by index from a table of uint8 rows
// and scaled on the fly. A training batch of images is one: the GEMM converts the pixels while
// it packs them, so the batch never exists as floats (see gemm_gathered in simdnn/gemm.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace simdnn {

// The rows.size() x cols matrix X with X[i][j] = scale * table[rows[i] * cols + j], converted
// exactly as convert_u8_to_float does (one rounding, in the multiply). Borrows all three: the
// table and the index must outlive every use of the view.
struct GatheredRows {
  std::span<const uint8_t> table;  // whole rows of `cols` bytes each
  size_t cols = 0;
  std::span<const uint32_t> rows;  // which rows of the table, in order
  float scale = 1.0f;

  size_t size() const { return rows.size() * cols; }
};

// Throws std::invalid_argument when cols is 0, the table is not whole rows or the scale is not
// finite (a zero byte must mean a zero value: gemm_gathered skips blank pixels), and
// std::out_of_range naming the first index past the end of the table. `what` prefixes the
// message (e.g. "gemm_gathered").
void check_gathered_rows(const GatheredRows& x, const char* what);

// dst[i * cols + j] = X[i][j]: the float matrix the view stands for (for references, tests and
// ops that need the values themselves).
void materialize(const GatheredRows& x, float* dst);

}  // namespace simdnn
