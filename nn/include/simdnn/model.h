// A classifier model: a Sequential MLP plus what is needed to use it on images, and its file
// format (safetensors, see <simdnn/safetensors.h>).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "simdnn/layers.h"
#include "simdnn/random.h"
#include "simdnn/safetensors.h"

namespace simdnn {

// One Dense layer and the activation after it.
struct LayerSpec {
  size_t units = 0;
  Activation activation = Activation::kLinear;
};

// What a model expects and produces, beyond its weights.
struct ModelInfo {
  size_t input_height = 28;
  size_t input_width = 28;
  // Input feature = pixel (0..255, 0 = background) * pixel_scale.
  float pixel_scale = 1.0f / 255.0f;
  std::vector<std::string> class_names;
  // Free-form version label stored in the file (the serving tool reports it).
  std::string version;

  size_t input_size() const { return input_height * input_width; }
};

// Fashion-MNIST's ten class names, and "0".."9" for MNIST digits.
std::vector<std::string> fashion_mnist_class_names();
std::vector<std::string> digit_class_names();

// A dense classifier: Dense layers with activations, the last one usually softmax.
class Model {
 public:
  // Builds input -> layers[0] -> ... with Glorot-uniform weights from rng.
  // Throws std::invalid_argument for no layers, a zero size, or class_names whose count
  // differs from the last layer's units.
  Model(ModelInfo info, std::vector<LayerSpec> layers, Rng& rng);

  // The Keras example: input -> Dense(hidden..., activation) -> Dense(classes, softmax).
  static Model mlp(ModelInfo info, const std::vector<size_t>& hidden, Activation activation,
                   size_t num_classes, Rng& rng);

  Model(Model&&) = default;
  Model& operator=(Model&&) = default;

  const ModelInfo& info() const { return info_; }
  ModelInfo& info() { return info_; }
  const std::vector<LayerSpec>& layers() const { return layers_; }
  Sequential& network() { return network_; }
  size_t num_classes() const { return layers_.back().units; }
  const std::vector<Parameter*>& parameters() const { return network_.parameters(); }
  size_t parameter_count();

  // Class probabilities (or the last layer's outputs) for a [batch, input_size] matrix; the
  // reference is valid until the next call.
  const Tensor& predict(const Tensor& x, int threads = 0) { return network_.predict(x, threads); }

 private:
  ModelInfo info_;
  std::vector<LayerSpec> layers_;
  Sequential network_;
};

// The model as a safetensors file: tensors "dense_<i>.weight" [in, out] (x·W convention; the
// transpose of a PyTorch Linear weight) and "dense_<i>.bias" [out]; __metadata__ keys
// "format" = "simdnn-mlp", "format_version" = "1", "input_height", "input_width",
// "pixel_scale", "layers" (JSON [{"units":128,"activation":"relu"}, ...]), "class_names"
// (JSON list of strings), "version".
SafetensorsFile model_to_safetensors(Model& model);

// Rebuilds a model, validating everything: format and version, metadata values, layer list,
// class names, and that each tensor exists with the shape the architecture implies. Tensors
// whose names start with "training." (checkpoint state) are ignored; any other extra tensor is
// an error. Throws IoError starting with name_for_errors.
Model model_from_safetensors(const SafetensorsFile& file, std::string_view name_for_errors);

// Atomic save (temporary file, then rename) and validated load.
void save_model(const std::filesystem::path& path, Model& model);
Model load_model(const std::filesystem::path& path);

}  // namespace simdnn
