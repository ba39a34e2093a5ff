// Reading a whole file into memory, with a size bound checked before allocating.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace simdnn {

// Returns the bytes of the regular file at `path`. Throws IoError naming the path when it is
// missing, not a regular file, unreadable, or changes size while being read; DataError when it
// is larger than `max_bytes` (checked before any allocation).
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& path, size_t max_bytes);

}  // namespace simdnn
