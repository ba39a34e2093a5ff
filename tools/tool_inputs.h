// Reading a tool's inputs (a labelled data set, a model file) with the failure classes of the
// exit-code scheme (tools/exit_codes.h): what cannot be opened or read is an IoError (exit 4),
// what was read but cannot be used is a DataError (exit 2). The io and nn readers throw plain
// IoError for both, so the split is made here by looking at the path first.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "simdnn/idx.h"
#include "simdnn/io_error.h"
#include "simdnn/model_file.h"
#include "simdnn/read_file.h"
#include "simdnn/safetensors.h"

namespace simdnn::tools {

// The one place export-data and promote read a labelled data set: `split` ("train" or "t10k")
// of an MNIST-format directory today (simdnn::load_mnist_dir). When io grows load_dataset
// (image folders, CSV; issue 12) this is the function to switch. A missing or unreadable
// directory is an IoError; a directory whose files are missing or malformed is a DataError.
inline Dataset load_labelled_data(const std::filesystem::path& dir, std::string_view split,
                                  size_t num_classes) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec) || ::access(dir.c_str(), R_OK | X_OK) != 0) {
    throw IoError(dir.string() + ": not a readable directory");
  }
  try {
    return load_mnist_dir(dir, split, num_classes);
  } catch (const DataError&) {
    throw;
  } catch (const IoError& e) {
    throw DataError(e.what());
  }
}

// A model file's bytes and the model they hold, validated by nn's loader (format, shapes,
// finite weights, a self-test forward pass). Keeping the bytes lets a caller copy exactly what
// was validated. A file that cannot be read is an IoError, one that is not a valid model a
// DataError.
struct LoadedModel {
  std::vector<uint8_t> bytes;
  Model model;
};
inline LoadedModel load_model_file(const std::filesystem::path& path) {
  std::vector<uint8_t> bytes = read_file_bytes(path, kDefaultMaxSafetensorsBytes);
  try {
    Model model = model_from_safetensors(parse_safetensors(bytes, path.string()), path.string());
    return {std::move(bytes), std::move(model)};
  } catch (const DataError&) {
    throw;
  } catch (const IoError& e) {
    throw DataError(e.what());
  }
}

}  // namespace simdnn::tools
