#include "simdnn/atomic_file.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "io_util.h"
#include "simdnn/io_error.h"

namespace simdnn {

using io_detail::errno_text;
using io_detail::in_quotes;

namespace {

std::filesystem::path temp_path_for(const std::filesystem::path& path) {
  std::filesystem::path temp = path;
  temp += ".tmp." + std::to_string(::getpid());
  return temp;
}

// The directory that holds `path`, for the fsync that makes a rename durable.
std::filesystem::path parent_dir(const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  return dir.empty() ? std::filesystem::path(".") : dir;
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::filesystem::path path)
    : path_(std::move(path)), temp_path_(temp_path_for(path_)) {
  // O_TRUNC, not O_EXCL: a leftover from a crashed process that had the same pid is garbage.
  fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd_ < 0) {
    const int err = errno;
    throw IoError("cannot write " + in_quotes(path_) + ": cannot create temporary file " +
                  in_quotes(temp_path_) + ": " + errno_text(err));
  }
  // Replacing a file must not change who can read it (umask would otherwise decide).
  struct stat st {};
  if (::stat(path_.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
    if (::fchmod(fd_, st.st_mode & 07777) != 0) fail("cannot copy permissions", errno);
  }
}

AtomicFileWriter::~AtomicFileWriter() { abandon(); }

void AtomicFileWriter::abandon() noexcept {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::fail(const char* action, int err) {
  abandon();
  std::string message = "cannot write " + in_quotes(path_) + ": " + action + ": " + errno_text(err);
  if (err == ENOSPC || err == EDQUOT) message += " (the disk or quota is full)";
  message += "; the previous contents of " + in_quotes(path_) + ", if any, are unchanged";
  throw IoError(message);
}

void AtomicFileWriter::write(std::span<const uint8_t> bytes) {
  if (fd_ < 0) throw std::logic_error("AtomicFileWriter::write after commit or failure");
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed", errno);
    }
    done += static_cast<size_t>(n);
  }
}

void AtomicFileWriter::commit() {
  if (fd_ < 0) throw std::logic_error("AtomicFileWriter::commit after commit or failure");
  // Delayed allocation means ENOSPC and EIO often surface only here, so both are checked.
  if (::fsync(fd_) != 0) fail("fsync failed", errno);
  const int fd = fd_;
  fd_ = -1;  // from here on the failure paths unlink by hand; the descriptor is gone
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    throw IoError("cannot write " + in_quotes(path_) + ": close failed: " + errno_text(err) +
                  "; the previous contents are unchanged");
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp_path_.c_str());
    throw IoError("cannot write " + in_quotes(path_) + ": rename from " + in_quotes(temp_path_) +
                  " failed: " + errno_text(err) + "; the previous contents are unchanged");
  }
  // The new contents are in place; without this fsync a power cut could still undo the rename.
  const std::filesystem::path dir = parent_dir(path_);
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    const int err = errno;
    throw IoError("wrote " + in_quotes(path_) + " but cannot open its directory " + in_quotes(dir) +
                  " to make the rename durable: " + errno_text(err));
  }
  const int sync_result = ::fsync(dir_fd);
  const int sync_errno = errno;
  ::close(dir_fd);
  if (sync_result != 0) {
    throw IoError("wrote " + in_quotes(path_) + " but fsync of its directory " + in_quotes(dir) +
                  " failed: " + errno_text(sync_errno));
  }
}

size_t remove_stale_temp_files(const std::filesystem::path& path) {
  const std::filesystem::path dir = parent_dir(path);
  const std::string prefix = path.filename().string() + ".tmp.";
  size_t removed = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string pid_text = name.substr(prefix.size());
    if (pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) {
      continue;
    }
    const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
    // ESRCH: no such process, so nobody is writing this file any more.
    if (pid != ::getpid() && ::kill(pid, 0) != 0 && errno == ESRCH) {
      removed += std::filesystem::remove(entry.path(), ec) ? 1 : 0;
    }
  }
  return removed;
}

void write_file_atomically(const std::filesystem::path& path, std::span<const uint8_t> bytes) {
  AtomicFileWriter writer(path);
  writer.write(bytes);
  writer.commit();
}

}  // namespace simdnn
