// Publishing a directory that was filled under a temporary name: make its contents durable,
// then give it its final name with one rename, so a reader (train, serve's repository scan)
// sees either nothing or the complete directory. Used by export-data and promote.
#pragma once

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "simdnn/io_error.h"

namespace simdnn::tools {

inline std::string errno_text(int err) { return std::strerror(err); }

// fsync on a directory (or file) by path; IoError naming it on failure.
inline void fsync_path(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw IoError(path.string() + ": cannot open to sync: " + errno_text(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError(path.string() + ": fsync failed: " + errno_text(err));
}

// Flushes every file written under `dir` to disk with one syncfs() of its file system, cheaper
// than one fsync per file when there are thousands (an image folder), then fsyncs `dir`.
inline void sync_tree(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw IoError(dir.string() + ": cannot open to sync: " + errno_text(errno));
  const int rc = ::syncfs(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw IoError(dir.string() + ": syncfs failed: " + errno_text(err));
  fsync_path(dir);
}

// Renames the directory `from` to `to`, which must not exist (RENAME_NOREPLACE: a concurrent
// writer of the same name makes this fail rather than be overwritten), then fsyncs the parent
// of `to` so that the rename survives a power cut. Throws IoError naming both paths; EEXIST and
// ENOTEMPTY mean `to` appeared.
inline void publish_directory(const std::filesystem::path& from, const std::filesystem::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
    int err = errno;
    if (err == EINVAL || err == ENOSYS) {
      // A file system without RENAME_NOREPLACE: check, then rename (a race with another
      // writer of the same name is then possible; rename(2) never replaces a non-empty dir).
      std::error_code ec;
      if (std::filesystem::exists(to, ec)) {
        err = EEXIST;
      } else if (::rename(from.c_str(), to.c_str()) == 0) {
        err = 0;
      } else {
        err = errno;
      }
    }
    if (err != 0) {
      throw IoError("cannot rename " + from.string() + " to " + to.string() + ": " +
                    errno_text(err));
    }
  }
  std::filesystem::path parent = to.parent_path();
  fsync_path(parent.empty() ? std::filesystem::path(".") : parent);
}

// Swaps the directories `a` and `b` in one step (RENAME_EXCHANGE), then fsyncs b's parent.
// Falls back to two renames through "<b>.old-<pid>" where the file system cannot exchange.
inline void exchange_directories(const std::filesystem::path& a, const std::filesystem::path& b) {
  if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) != 0) {
    const int err = errno;
    if (err != EINVAL && err != ENOSYS) {
      throw IoError("cannot exchange " + a.string() + " and " + b.string() + ": " +
                    errno_text(err));
    }
    const std::filesystem::path aside = b.string() + ".old-" + std::to_string(::getpid());
    if (::rename(b.c_str(), aside.c_str()) != 0) {
      throw IoError("cannot move " + b.string() + " aside: " + errno_text(errno));
    }
    if (::rename(a.c_str(), b.c_str()) != 0) {
      const int e = errno;
      ::rename(aside.c_str(), b.c_str());  // put the old one back
      throw IoError("cannot rename " + a.string() + " to " + b.string() + ": " + errno_text(e));
    }
    ::rename(aside.c_str(), a.c_str());  // the caller removes `a`, now the old contents
  }
  std::filesystem::path parent = b.parent_path();
  fsync_path(parent.empty() ? std::filesystem::path(".") : parent);
}

// Removes a directory tree on scope exit unless release()d: a temporary directory that must not
// outlive a failure.
class TempDirGuard {
 public:
  explicit TempDirGuard(std::filesystem::path path) : path_(std::move(path)) {}
  ~TempDirGuard() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDirGuard(const TempDirGuard&) = delete;
  TempDirGuard& operator=(const TempDirGuard&) = delete;
  void release() { path_.clear(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace simdnn::tools
