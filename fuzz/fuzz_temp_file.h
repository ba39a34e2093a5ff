// For fuzz targets whose API takes a path: each input is written to one per-process file in
// /dev/shm (RAM; the temp directory without it), removed when the process exits.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

namespace simdnn::fuzz {

class FuzzTempFile {
 public:
  // The file is simdnn-fuzz-<name>-<pid><extension>.
  explicit FuzzTempFile(const std::string& name, const std::string& extension = "") {
    const std::filesystem::path dir = std::filesystem::is_directory("/dev/shm")
                                          ? std::filesystem::path("/dev/shm")
                                          : std::filesystem::temp_directory_path();
    path_ = dir / ("simdnn-fuzz-" + name + "-" + std::to_string(getpid()) + extension);
  }
  ~FuzzTempFile() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  FuzzTempFile(const FuzzTempFile&) = delete;
  FuzzTempFile& operator=(const FuzzTempFile&) = delete;

  // Replaces the file's contents with the input; aborts (a harness failure) if it cannot.
  const std::filesystem::path& write(const uint8_t* data, size_t size) const {
    std::ofstream out(path_, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    if (!out) std::abort();
    return path_;
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace simdnn::fuzz
