// A Model as a file: safetensors (see <simdnn/safetensors.h>) with the architecture in
// __metadata__, so Python's `safetensors` package opens it too.
#pragma once

#include <filesystem>
#include <string_view>

#include "simdnn/model.h"
#include "simdnn/safetensors.h"

namespace simdnn {

// The model as a safetensors file: tensors "dense_<i>.weight" [in, out] (x·W convention; the
// transpose of a PyTorch Linear weight) and "dense_<i>.bias" [out]; __metadata__ keys
// "format" = "simdnn-mlp", "format_version" = "1", "input_height", "input_width",
// "pixel_scale", "layers" (JSON [{"units":128,"activation":"relu"}, ...]), "class_names"
// (JSON list of strings), "version", and "reference_profile" when the model has one
// (<simdnn/reference_profile.h>: JSON {"samples","class_frequencies","intensity_histogram"}).
SafetensorsFile model_to_safetensors(const Model& model);

// Rebuilds a model, validating everything: format and version, metadata values, layer list,
// class names, and that each tensor exists with the shape the architecture implies. Tensors
// whose names start with "training." (checkpoint state) are ignored; any other extra tensor is
// an error. Throws IoError starting with name_for_errors.
Model model_from_safetensors(const SafetensorsFile& file, std::string_view name_for_errors);

// Atomic save (temporary file, then rename) and validated load. Throw IoError naming the path.
void save_model(const std::filesystem::path& path, const Model& model);
Model load_model(const std::filesystem::path& path);

}  // namespace simdnn
