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

// The accepted "pixel_scale" range: input feature = pixel (0..255) * pixel_scale, so 1/255
// (0..1) and 1 (raw pixels) are in, while 1e-30 (every input ~0) or 1e6 are not.
inline constexpr float kMinPixelScale = 1e-6f;
inline constexpr float kMaxPixelScale = 1.0f;

// Rebuilds a model, validating everything before it is used: format and version, metadata
// values (pixel_scale in kMinPixelScale..kMaxPixelScale), layer list (the output layer must be
// softmax), class names, and that each tensor exists with the shape the architecture implies,
// checked before anything is allocated (a small file cannot claim gigabytes), with finite
// values only. Then a self-test: a forward pass on fixed inputs must give finite probabilities
// summing to 1. Tensors whose names start with "training." (checkpoint state) are ignored;
// any other extra tensor is an error. Throws DataError starting with name_for_errors.
Model model_from_safetensors(const SafetensorsFile& file, std::string_view name_for_errors);

// Atomic save (temporary file, then rename) and validated load. Throw IoError naming the path
// when it cannot be read or written, DataError when its contents are not a usable model.
void save_model(const std::filesystem::path& path, const Model& model);
Model load_model(const std::filesystem::path& path);

}  // namespace simdnn
