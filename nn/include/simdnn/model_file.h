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
// (JSON list of strings), "version", "provenance" when the model has one (a JSON object as
// text, ModelInfo::provenance), and "reference_profile" when the model has one
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

// save_model() that never replaces a good file with one its readers would refuse: writes the
// temporary file, loads it back with load_model() (the validation predict and serve apply),
// and only then renames it over `path`. Throws DataError naming the path and the reason when
// the model does not load back (then `path` is left as it was), IoError when writing fails.
void save_model_validated(const std::filesystem::path& path, const Model& model);

}  // namespace simdnn
