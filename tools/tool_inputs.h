// Reading a tool's inputs (a labelled data set, a model file) with the failure classes of the
// exit-code scheme (tools/exit_codes.h): what cannot be opened or read is an IoError (exit 4),
// what was read but cannot be used is a DataError (exit 2). The io and nn readers throw plain
// IoError for both, so the split is made here by looking at the path first.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "simdnn/dataset.h"
#include "simdnn/idx.h"
#include "simdnn/io_error.h"
#include "simdnn/model_file.h"
#include "simdnn/read_file.h"
#include "simdnn/safetensors.h"

namespace simdnn::tools {

// The one place export-data and promote read a labelled data set: `split` ("train", or "test"
// / "t10k") of any format train reads (simdnn::load_dataset: an MNIST IDX directory, an image
// folder, CSV). An image folder's subfolders are matched to `class_names` by name when given (a
// model's classes; else sorted folder names). A layout without a test split (a lone image folder
// or CSV file) answers "test" with the whole set: a held-out set given on its own. A missing or
// unreadable path is an IoError; files that are missing or malformed are a DataError.
inline Dataset load_labelled_data(const std::filesystem::path& path, std::string_view split,
                                  size_t num_classes,
                                  const std::vector<std::string>& class_names = {}) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec) || ::access(path.c_str(), R_OK) != 0) {
    throw IoError(path.string() + ": not readable");
  }
  DatasetOptions options;
  options.num_classes = num_classes;
  options.class_names = class_names;
  std::optional<LoadedDataset> loaded = load_dataset(path, split, options);
  if (!loaded && split != "train") loaded = load_dataset(path, "train", options);
  if (!loaded) throw DataError(path.string() + ": no " + std::string(split) + " split");
  return std::move(loaded->data);
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
