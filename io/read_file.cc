#include "simdnn/read_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "io_util.h"
#include "simdnn/io_error.h"

namespace simdnn {

using io_detail::errno_text;
using io_detail::in_quotes;

std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    throw IoError("cannot open " + in_quotes(path) + ": " + errno_text(err));
  }
  // Closes fd on every exit path.
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    throw IoError("cannot stat " + in_quotes(path) + ": " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) throw IoError(in_quotes(path) + " is not a regular file");
  const auto size = static_cast<size_t>(st.st_size);
  if (size > max_bytes) {
    throw DataError(in_quotes(path) + " is too large: " + std::to_string(size) +
                  " bytes, the limit is " + std::to_string(max_bytes));
  }

  std::vector<uint8_t> bytes(size);
  size_t done = 0;
  while (done < size) {
    const ssize_t n = ::read(fd, bytes.data() + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      throw IoError("cannot read " + in_quotes(path) + ": " + errno_text(err));
    }
    if (n == 0) {
      throw IoError(in_quotes(path) + " shrank while being read: expected " + std::to_string(size) +
                    " bytes, found " + std::to_string(done));
    }
    done += static_cast<size_t>(n);
  }
  uint8_t extra;
  ssize_t n;
  do {
    n = ::read(fd, &extra, 1);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    throw IoError(in_quotes(path) + " grew while being read beyond " + std::to_string(size) +
                  " bytes");
  }
  return bytes;
}

}  // namespace simdnn
