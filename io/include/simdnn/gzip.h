// gzip compression of an in-memory buffer (for writing .gz data sets and test fixtures).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace simdnn {

// Returns `bytes` as a complete gzip stream (RFC 1952, readable by gunzip and by zlib's
// gzopen/gzread). Throws IoError if zlib fails, which only happens when out of memory.
std::vector<uint8_t> gzip_compress(std::span<const uint8_t> bytes, int level = 6);

}  // namespace simdnn
