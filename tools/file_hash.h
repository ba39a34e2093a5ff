// SHA-256 of files, for provenance (which data a model was trained on) and for any tool that
// must name a file's exact contents. OpenSSL's EVP digest; kept in tools so that the engine
// (nn, io) does not link OpenSSL.
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace simdnn::tools {

// The lowercase hex SHA-256 of a file's bytes. Throws IoError naming the file when it cannot be
// opened or read.
std::string sha256_file(const std::filesystem::path& path);

// The hex SHA-256 of a string.
std::string sha256_text(const std::string& text);

// What a data path holds, by content: a file gives {"path", "sha256", "bytes"}; a directory
// gives {"path", "files": {relative path: sha256}} for its regular files (recursively, sorted),
// or, above `max_listed` files (an image folder), {"path", "file_count", "tree_sha256"}: the
// SHA-256 of the sorted lines "<relative path> <sha256>\n", as precise and much shorter.
// Throws IoError when a file cannot be read.
nlohmann::json hash_data_path(const std::filesystem::path& path, size_t max_listed = 64);

}  // namespace simdnn::tools
