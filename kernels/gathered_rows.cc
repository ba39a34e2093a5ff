#include "simdnn/gathered_rows.h"

#include <cmath>
#include <stdexcept>
#include <string>

#include "simdnn/vector_kernels.h"

namespace simdnn {

void check_gathered_rows(const GatheredRows& x, const char* what) {
  if (x.cols == 0) throw std::invalid_argument(std::string(what) + ": rows of 0 columns");
  // A zero byte must stand for a zero value: the GEMM skips blank pixels (0 * inf is NaN).
  if (!std::isfinite(x.scale)) {
    throw std::invalid_argument(std::string(what) + ": scale " + std::to_string(x.scale) +
                                " is not finite");
  }
  if (x.table.size() % x.cols != 0) {
    throw std::invalid_argument(std::string(what) + ": a table of " +
                                std::to_string(x.table.size()) + " bytes is not whole rows of " +
                                std::to_string(x.cols));
  }
  const size_t table_rows = x.table.size() / x.cols;
  for (size_t i = 0; i < x.rows.size(); ++i) {
    if (x.rows[i] >= table_rows) {
      throw std::out_of_range(std::string(what) + ": row " + std::to_string(i) + " is index " +
                              std::to_string(x.rows[i]) + ", past the table's " +
                              std::to_string(table_rows) + " rows");
    }
  }
}

void materialize(const GatheredRows& x, float* dst) {
  for (size_t i = 0; i < x.rows.size(); ++i) {
    convert_u8_to_float(x.cols, x.table.data() + static_cast<size_t>(x.rows[i]) * x.cols,
                        x.scale, dst + i * x.cols);
  }
}

}  // namespace simdnn
