// The JSON body of POST /predict (docs/serving.md): {"pixels": [N numbers]} or
// {"instances": [[N numbers], ...]}, parsed into model input rows.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace simdnn::serving {

// A request the server refuses: the HTTP status and the message for {"error": ...}.
struct RequestError {
  int status;
  std::string message;
};

// Input rows parsed from a JSON body: rows * input_size pixel values (0..255) in row order.
struct ParsedInstances {
  size_t rows = 0;
  std::vector<float> pixels;
};

// Parses {"pixels": [N numbers]} or {"instances": [[N numbers], ...]} into `out` (its
// capacity is reused). Every number must be finite and within 0..255. Returns an error
// (400, or 413 for more than max_batch instances) instead of throwing, so the hot path does
// not pay for exceptions.
std::optional<RequestError> parse_predict_json(std::string_view body, size_t input_size,
                                               size_t max_batch, ParsedInstances& out);

}  // namespace simdnn::serving
