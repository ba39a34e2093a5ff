#include "simdnn/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>

#include "io_util.h"
#include "simdnn/atomic_file.h"
#include "simdnn/io_error.h"
#include "simdnn/read_file.h"

namespace simdnn {

using io_detail::checked_mul;
using io_detail::in_quotes;
// ordered_json keeps the header's key order: it is the order written, and on load it breaks
// ties between zero-size tensors that share an offset.
using Json = nlohmann::ordered_json;

namespace {

constexpr size_t kLengthBytes = 8;
constexpr const char* kMetadataKey = "__metadata__";

// Every dtype of the safetensors spec, so that a valid file of another type gets "not
// supported" rather than "unknown".
constexpr const char* kKnownDtypes[] = {"BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "I16",
                                        "U16",  "F16", "BF16", "I32",    "U32",     "F32",
                                        "F64",  "I64", "U64", "F4",      "F6_E2M3", "F6_E3M2",
                                        "F8_E8M0", "C64"};

uint64_t load_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

void store_le64(uint64_t v, uint8_t* p) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Copies little-endian float32 bytes into floats whatever the host byte order.
void copy_le_floats(const uint8_t* src, size_t n, float* dst) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(dst, src, n * sizeof(float));
  } else {
    for (size_t i = 0; i < n; ++i) {
      uint32_t bits = 0;
      for (int b = 3; b >= 0; --b) bits = bits << 8 | src[4 * i + b];
      dst[i] = std::bit_cast<float>(bits);
    }
  }
}

void append_le_floats(const float* src, size_t n, std::vector<uint8_t>& out) {
  const size_t at = out.size();
  out.resize(at + n * sizeof(float));
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out.data() + at, src, n * sizeof(float));
  } else {
    for (size_t i = 0; i < n; ++i) {
      const auto bits = std::bit_cast<uint32_t>(src[i]);
      for (int b = 0; b < 4; ++b) out[at + 4 * i + b] = static_cast<uint8_t>(bits >> (8 * b));
    }
  }
}

Shape make_shape(const std::vector<size_t>& dims) {
  switch (dims.size()) {
    case 1: return Shape{dims[0]};
    case 2: return Shape{dims[0], dims[1]};
    case 3: return Shape{dims[0], dims[1], dims[2]};
    case 4: return Shape{dims[0], dims[1], dims[2], dims[3]};
    default: throw std::logic_error("make_shape: rank checked by the caller");
  }
}

// One tensor entry of the header, validated on its own; the layout is checked afterwards.
struct TensorEntry {
  std::string name;
  std::vector<size_t> dims;
  size_t begin = 0;
  size_t end = 0;
};

class HeaderParser {
 public:
  explicit HeaderParser(std::string_view name) : name_(name) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw DataError("bad safetensors file " + in_quotes(name_) + ": " + what);
  }
  [[noreturn]] void fail_tensor(const std::string& tensor, const std::string& what) const {
    fail("tensor " + in_quotes(tensor) + ": " + what);
  }

  Json parse_json(std::string_view text) const {
    // Duplicate keys would silently keep one value; the callback sees every top-level key.
    std::set<std::string> top_level_keys;
    std::string duplicate;
    auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) {
      if (event == Json::parse_event_t::key && depth == 1 && duplicate.empty()) {
        const auto& key = parsed.get_ref<const std::string&>();
        if (!top_level_keys.insert(key).second) duplicate = key;
      }
      return true;
    };
    Json header;
    try {
      header = Json::parse(text.begin(), text.end(), callback);
    } catch (const Json::exception& e) {
      // parse_error for syntax, but out_of_range for a number too large for a double.
      fail(std::string("header is not valid JSON: ") + e.what());
    }
    if (!duplicate.empty()) fail("header: key " + in_quotes(duplicate) + " appears more than once");
    if (!header.is_object()) {
      fail(std::string("header: expected a JSON object, found ") + header.type_name());
    }
    return header;
  }

  std::map<std::string, std::string> parse_metadata(const Json& value) const {
    std::map<std::string, std::string> metadata;
    if (value.is_null()) return metadata;  // the reference writer emits null for "none"
    if (!value.is_object()) {
      fail(std::string("__metadata__: expected an object of strings, found ") + value.type_name());
    }
    for (const auto& [key, v] : value.items()) {
      if (!v.is_string()) {
        fail("__metadata__ " + in_quotes(key) + ": expected a string value, found " + v.type_name());
      }
      metadata[key] = v.get<std::string>();
    }
    return metadata;
  }

  TensorEntry parse_tensor(const std::string& name, const Json& info) const {
    if (!info.is_object()) {
      fail_tensor(name, std::string("expected an object, found ") + info.type_name());
    }
    TensorEntry entry{name, {}, 0, 0};

    const auto dtype_it = info.find("dtype");
    if (dtype_it == info.end()) fail_tensor(name, "dtype: missing");
    if (!dtype_it->is_string()) {
      fail_tensor(name, std::string("dtype: expected a string, found ") + dtype_it->type_name());
    }
    const auto& dtype = dtype_it->get_ref<const std::string&>();
    if (dtype != "F32") {
      const bool known = std::any_of(std::begin(kKnownDtypes), std::end(kKnownDtypes),
                                     [&](const char* d) { return dtype == d; });
      fail_tensor(name, "dtype: expected F32, found " + dtype +
                            (known ? " (simdnn loads only F32 tensors)" : " (unknown dtype)"));
    }

    const auto shape_it = info.find("shape");
    if (shape_it == info.end()) fail_tensor(name, "shape: missing");
    if (!shape_it->is_array()) {
      fail_tensor(name, std::string("shape: expected a list, found ") + shape_it->type_name());
    }
    if (shape_it->empty() || shape_it->size() > Shape::kMaxRank) {
      fail_tensor(name, "shape: expected rank 1 to " + std::to_string(Shape::kMaxRank) +
                            ", found rank " + std::to_string(shape_it->size()) + " " +
                            shape_it->dump());
    }
    size_t elements = 1;
    for (const Json& dim : *shape_it) {
      if (!dim.is_number_unsigned()) {
        fail_tensor(name, "shape: expected non-negative integers, found " + shape_it->dump());
      }
      entry.dims.push_back(dim.get<size_t>());
      if (!checked_mul(elements, entry.dims.back(), &elements)) {
        fail_tensor(name, "shape " + shape_it->dump() + ": element count overflows");
      }
    }
    size_t bytes = 0;
    if (!checked_mul(elements, sizeof(float), &bytes)) {
      fail_tensor(name, "shape " + shape_it->dump() + ": byte size overflows");
    }

    const auto offsets_it = info.find("data_offsets");
    if (offsets_it == info.end()) fail_tensor(name, "data_offsets: missing");
    if (!offsets_it->is_array() || offsets_it->size() != 2 ||
        !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned()) {
      fail_tensor(name, "data_offsets: expected [begin, end] with non-negative integers, found " +
                            offsets_it->dump());
    }
    entry.begin = (*offsets_it)[0].get<size_t>();
    entry.end = (*offsets_it)[1].get<size_t>();
    if (entry.begin > entry.end) {
      fail_tensor(name, "data_offsets " + offsets_it->dump() + ": begin > end");
    }
    if (entry.end - entry.begin != bytes) {
      fail_tensor(name, "data_offsets " + offsets_it->dump() + " span " +
                            std::to_string(entry.end - entry.begin) + " bytes, expected " +
                            std::to_string(bytes) + " for F32 shape " + shape_it->dump());
    }
    return entry;
  }

  // The tensors must tile [0, data_size) exactly: sorted by offset, each starts where the
  // previous one ended. This rules out overlaps (aliasing), gaps (hidden data) and slack.
  void check_layout(std::vector<TensorEntry>& entries, size_t data_size) const {
    std::stable_sort(entries.begin(), entries.end(), [](const TensorEntry& a, const TensorEntry& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    size_t position = 0;
    const std::string* previous = nullptr;
    for (const TensorEntry& e : entries) {
      if (e.end > data_size) {
        fail_tensor(e.name, "data_offsets [" + std::to_string(e.begin) + ", " +
                                std::to_string(e.end) + "] end past the data section of " +
                                std::to_string(data_size) + " bytes");
      }
      if (e.begin < position) {
        fail_tensor(e.name, "data_offsets [" + std::to_string(e.begin) + ", " +
                                std::to_string(e.end) + "] overlap tensor " + in_quotes(*previous) +
                                ", which ends at " + std::to_string(position));
      }
      if (e.begin > position) {
        fail_tensor(e.name, "data_offsets [" + std::to_string(e.begin) + ", " +
                                std::to_string(e.end) + "] leave a gap of " +
                                std::to_string(e.begin - position) + " bytes after " +
                                (previous ? "tensor " + in_quotes(*previous) : "the data start") +
                                " (expected begin " + std::to_string(position) + ")");
      }
      position = e.end;
      previous = &e.name;
    }
    if (position != data_size) {
      fail("data section: " + std::to_string(data_size - position) +
           " bytes after the last tensor are not covered by any tensor (tensors end at " +
           std::to_string(position) + ", data section is " + std::to_string(data_size) +
           " bytes)");
    }
  }

 private:
  std::string name_;
};

}  // namespace

const Tensor* SafetensorsFile::find(std::string_view name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

std::vector<uint8_t> serialize_safetensors(const SafetensorsFile& file) {
  Json header = Json::object();
  if (!file.metadata.empty()) header[kMetadataKey] = file.metadata;
  size_t offset = 0;
  std::set<std::string_view> names;
  for (const auto& [name, tensor] : file.tensors) {
    if (name.empty() || name == kMetadataKey || !names.insert(name).second) {
      throw std::invalid_argument("serialize_safetensors: tensor name " + in_quotes(name) +
                                  " is empty, reserved or duplicate");
    }
    if (tensor.rank() == 0) {
      throw std::invalid_argument("serialize_safetensors: tensor " + in_quotes(name) +
                                  " has no shape (rank 0)");
    }
    Json shape = Json::array();
    for (size_t axis = 0; axis < tensor.rank(); ++axis) shape.push_back(tensor.dim(axis));
    const size_t bytes = tensor.size() * sizeof(float);
    header[name] = Json{{"dtype", "F32"},
                        {"shape", std::move(shape)},
                        {"data_offsets", Json::array({offset, offset + bytes})}};
    offset += bytes;
  }
  std::string text = header.dump();
  // Like the reference writer: pad with spaces so the data section starts 8-byte aligned.
  text.append((kLengthBytes - text.size() % kLengthBytes) % kLengthBytes, ' ');

  std::vector<uint8_t> out(kLengthBytes);
  out.reserve(kLengthBytes + text.size() + offset);
  store_le64(text.size(), out.data());
  out.insert(out.end(), text.begin(), text.end());
  for (const auto& [name, tensor] : file.tensors) {
    if (tensor.size() > 0) append_le_floats(tensor.data(), tensor.size(), out);
  }
  return out;
}

void save_safetensors(const std::filesystem::path& path, const SafetensorsFile& file) {
  write_file_atomically(path, serialize_safetensors(file));
}

SafetensorsFile parse_safetensors(std::span<const uint8_t> bytes, std::string_view name_for_errors) {
  const HeaderParser parser(name_for_errors);
  if (bytes.size() < kLengthBytes) {
    parser.fail("header length: file is " + std::to_string(bytes.size()) +
                " bytes, expected at least 8");
  }
  const uint64_t header_length = load_le64(bytes.data());
  const size_t available = bytes.size() - kLengthBytes;
  if (header_length > kMaxSafetensorsHeaderBytes) {
    parser.fail("header length " + std::to_string(header_length) + " exceeds the limit of " +
                std::to_string(kMaxSafetensorsHeaderBytes) + " bytes");
  }
  if (header_length > available) {
    parser.fail("header length " + std::to_string(header_length) + " is past the end of the file (" +
                std::to_string(available) + " bytes after the length field)");
  }
  const std::string_view text(reinterpret_cast<const char*>(bytes.data() + kLengthBytes),
                              static_cast<size_t>(header_length));
  const Json header = parser.parse_json(text);

  SafetensorsFile file;
  std::vector<TensorEntry> entries;
  for (const auto& [key, value] : header.items()) {
    if (key == kMetadataKey) {
      file.metadata = parser.parse_metadata(value);
    } else {
      entries.push_back(parser.parse_tensor(key, value));
    }
  }
  const uint8_t* data = bytes.data() + kLengthBytes + header_length;
  const size_t data_size = available - static_cast<size_t>(header_length);
  parser.check_layout(entries, data_size);

  file.tensors.reserve(entries.size());
  for (const TensorEntry& e : entries) {
    Tensor tensor(make_shape(e.dims));
    if (tensor.size() > 0) copy_le_floats(data + e.begin, tensor.size(), tensor.data());
    file.tensors.emplace_back(e.name, std::move(tensor));
  }
  return file;
}

SafetensorsFile load_safetensors(const std::filesystem::path& path, size_t max_bytes) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, max_bytes);
  return parse_safetensors(bytes, path.string());
}

}  // namespace simdnn
