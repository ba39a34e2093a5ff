// The simdnn model file format: safetensors (https://github.com/huggingface/safetensors).
//
//   8 bytes     N, little-endian u64
//   N bytes     JSON header, padded with spaces so that 8 + N is a multiple of 8:
//               {"__metadata__": {"key": "value", ...},
//                "<tensor name>": {"dtype": "F32", "shape": [d0, d1], "data_offsets": [b, e]}, ...}
//   rest        the data section: raw little-endian tensor bytes; data_offsets are relative to
//               its start, and the tensors tile it exactly.
//
// simdnn stores and loads only F32 tensors of rank 1 to 4 (simdnn::Tensor).
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "simdnn/tensor.h"

namespace simdnn {

// Upper bound on the JSON header (the reference implementation uses 100 MB too).
inline constexpr size_t kMaxSafetensorsHeaderBytes = 100'000'000;
// Default upper bound on a whole model file; the MNIST MLP is about 400 KB.
inline constexpr size_t kDefaultMaxSafetensorsBytes = size_t{1} << 30;

struct SafetensorsFile {
  std::map<std::string, std::string> metadata;
  // In file order (ascending data offset) when loaded; written in this order.
  std::vector<std::pair<std::string, Tensor>> tensors;

  // The tensor called `name`, or nullptr.
  const Tensor* find(std::string_view name) const;
};

// The complete file contents: header (metadata first, then the tensors in the given order,
// data offsets contiguous from 0) and data. Throws std::invalid_argument for an empty or
// duplicate tensor name, the reserved name "__metadata__", or a rank-0 (empty) tensor.
std::vector<uint8_t> serialize_safetensors(const SafetensorsFile& file);

// serialize_safetensors + write_file_atomically: the previous file survives any failure.
void save_safetensors(const std::filesystem::path& path, const SafetensorsFile& file);

// Parses and validates an in-memory safetensors image; nothing in it is trusted. Throws DataError
// whose message starts with `name_for_errors` and names the tensor and field at fault: shorter
// than 8 bytes; header length beyond the buffer or kMaxSafetensorsHeaderBytes; header not a JSON
// object; duplicate keys; __metadata__ not an object of strings; a dtype other than F32; a
// shape that is not a list of 1..4 non-negative integers or whose byte size overflows;
// data_offsets not two integers with begin <= end <= data size; end - begin != elements * 4;
// tensors overlapping, leaving gaps, or not covering the data section exactly.
SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, std::string_view name_for_errors);

// read_file_bytes(path, max_bytes) + parse_safetensors, naming the path in errors.
SafetensorsFile load_safetensors(const std::filesystem::path& path,
                                 size_t max_bytes = kDefaultMaxSafetensorsBytes);

}  // namespace simdnn
