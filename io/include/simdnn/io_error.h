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

// The file could be read but its contents cannot be used: a malformed or truncated format, a
// field out of range, a data set the model cannot take. Tools report it with exit code 2 ("bad
// data") and a plain IoError (cannot open, read, write, rename) with exit code 4.
class DataError : public IoError {
 public:
  using IoError::IoError;
};

}  // namespace simdnn
