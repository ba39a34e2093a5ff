// The one exception type of the io/ module.
#pragma once

#include <stdexcept>

namespace simdnn {

// A file or buffer could not be read, written or trusted. The message always names the file
// (or the caller's name for an in-memory buffer) and what is wrong with it: the field, and the
// expected and found values where there are any. Programming errors (a writer handed an
// inconsistent ImageSet, say) are std::invalid_argument instead.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace simdnn
