// Crash-safe file replacement: readers see either the old file or the complete new one.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>

namespace simdnn {

// Streams bytes into "<path>.tmp.<pid>" next to the target, and on commit() fsyncs it, renames
// it over `path` and fsyncs the directory so the rename itself survives a power cut.
// If commit() is never reached (an exception, an early return) the destructor removes the
// temporary file and `path` keeps its previous contents. When `path` already exists its
// permission bits are carried over to the new file.
//
// Every failure throws IoError naming the target path and the errno text, e.g.
// "... 'model.safetensors': No space left on device (previous file left unchanged)".
// Two writers of the same path in one process would share the temporary name: don't.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::filesystem::path path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(std::span<const uint8_t> bytes);
  // Makes the new contents visible at path(). The writer is finished afterwards.
  void commit();

  const std::filesystem::path& path() const { return path_; }
  const std::filesystem::path& temp_path() const { return temp_path_; }

 private:
  // Closes and unlinks the temporary file, ignoring errors (used on failure paths).
  void abandon() noexcept;
  [[noreturn]] void fail(const char* action, int err);

  std::filesystem::path path_;
  std::filesystem::path temp_path_;
  int fd_ = -1;
};

// Removes "<path>.tmp.<pid>" files left by writers that were killed before commit() (SIGKILL,
// power loss), skipping those whose process is still alive. Returns how many it removed;
// errors are ignored (a leftover is harmless, it is only disk space).
size_t remove_stale_temp_files(const std::filesystem::path& path);

// Replaces the file at `path` with `bytes` atomically (see AtomicFileWriter).
void write_file_atomically(const std::filesystem::path& path, std::span<const uint8_t> bytes);

}  // namespace simdnn
