// A classifier model: a Sequential MLP plus what is needed to use it on images. Its file format
// is in <simdnn/model_file.h>.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "simdnn/activation.h"
#include "simdnn/layers.h"
#include "simdnn/random.h"
#include "simdnn/reference_profile.h"
#include "simdnn/tensor.h"

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
  // The training set's class frequencies and input-intensity histogram (tools/train writes
  // it); the service measures drift against it. Absent in models trained before it existed.
  std::optional<ReferenceProfile> reference_profile;
  // How the model was made (tools/train writes it): one JSON object as text, e.g. version,
  // parent version, creation time, data hashes, sample counts, metrics, flags. Empty: unknown
  // (models trained before it existed). The library stores it and checks it is a JSON object;
  // what it holds is the writer's (see docs/api.md, "provenance").
  std::string provenance;

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
  // A deep copy: same info, layers and weights.
  Model clone() const;

  const ModelInfo& info() const { return info_; }
  ModelInfo& info() { return info_; }
  const std::vector<LayerSpec>& layers() const { return layers_; }
  Sequential& network() { return network_; }
  const Sequential& network() const { return network_; }
  size_t num_classes() const { return layers_.back().units; }
  const std::vector<Parameter*>& parameters() const { return network_.parameters(); }
  size_t parameter_count() const;

  // Class probabilities (or the last layer's outputs) for a [batch, input_size] matrix. The
  // result lives in `workspace`; one model serves many threads, each with its own workspace.
  const Tensor& predict(const Tensor& x, Workspace& workspace, int threads = 0) const {
    return network_.predict(x, workspace, threads);
  }
  // The same with a workspace of its own (allocates per call): for one-off use.
  Tensor predict(const Tensor& x, int threads = 0) const;

 private:
  Model(const Model& other, Sequential network);  // clone()

  ModelInfo info_;
  std::vector<LayerSpec> layers_;
  Sequential network_;
};

}  // namespace simdnn
