// Internal: multipart/form-data bodies (RFC 7578), the way `curl -F file=@shoe.png` and HTML
// forms upload a file to POST /predict.
#pragma once

#include <string>
#include <string_view>

#include "simdnn/serving/predict_request.h"

namespace simdnn::serving {

struct FilePart {
  std::string_view name;          // the form field name ("" when none)
  std::string_view filename;      // "" when the part is not a file
  std::string_view content_type;  // the part's Content-Type ("" when none)
  std::string_view data;          // a view into the body
};

// Parts and header bytes a body may hold before it is refused: the work is bounded however
// the body is crafted (each part costs one search for the delimiter).
constexpr size_t kMaxMultipartParts = 64;
constexpr size_t kMaxPartHeaderBytes = 8192;

// The upload in a multipart/form-data body: the part named "file" if there is one, otherwise
// the first part with a filename. content_type is the request's Content-Type, which carries
// the boundary. Returns a 400 RequestError for a missing or bad boundary, a body that is
// truncated or not in the format, or no file part. Takes bytes, so it can be fuzzed directly.
std::optional<RequestError> parse_multipart_file(std::string_view content_type,
                                                 std::string_view body, FilePart& out);

}  // namespace simdnn::serving
