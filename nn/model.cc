#include "simdnn/model.h"

#include <stdexcept>

namespace simdnn {

std::vector<std::string> fashion_mnist_class_names() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

std::vector<std::string> digit_class_names() {
  return {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
}

Model::Model(ModelInfo info, std::vector<LayerSpec> layers, Rng& rng)
    : info_(std::move(info)), layers_(std::move(layers)) {
  if (layers_.empty()) throw std::invalid_argument("Model: at least one layer is needed");
  if (info_.input_size() == 0) throw std::invalid_argument("Model: the input size is 0");
  if (!info_.class_names.empty() && info_.class_names.size() != layers_.back().units) {
    throw std::invalid_argument("Model: " + std::to_string(info_.class_names.size()) +
                                " class names for " + std::to_string(layers_.back().units) +
                                " outputs");
  }
  size_t in = info_.input_size();
  for (const LayerSpec& l : layers_) {
    network_.add_dense(in, l.units, l.activation, rng);
    in = l.units;
  }
}

Model Model::mlp(ModelInfo info, const std::vector<size_t>& hidden, Activation activation,
                 size_t num_classes, Rng& rng) {
  std::vector<LayerSpec> layers;
  for (size_t h : hidden) layers.push_back({h, activation});
  layers.push_back({num_classes, Activation::kSoftmax});
  return Model(std::move(info), std::move(layers), rng);
}

Model Model::clone() const {
  Model copy(*this, network_.clone());
  return copy;
}

Model::Model(const Model& other, Sequential network)
    : info_(other.info_), layers_(other.layers_), network_(std::move(network)) {}

size_t Model::parameter_count() const {
  size_t n = 0;
  for (const Parameter* p : parameters()) n += p->value.size();
  return n;
}

Tensor Model::predict(const Tensor& x, int threads) const {
  Workspace workspace;
  network_.predict(x, workspace, threads);
  return std::move(workspace.outputs.back());
}

}  // namespace simdnn
