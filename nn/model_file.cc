#include "simdnn/model_file.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "simdnn/atomic_file.h"
#include "simdnn/dataset.h"
#include "simdnn/io_error.h"

namespace simdnn {

SafetensorsFile model_to_safetensors(const Model& model) {
  SafetensorsFile file;
  const ModelInfo& info = model.info();
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerSpec& l : model.layers()) {
    layers.push_back({{"units", l.units}, {"activation", activation_name(l.activation)}});
  }
  char scale[32];
  auto res = std::to_chars(scale, scale + sizeof scale, info.pixel_scale);
  file.metadata = {
      {"format", "simdnn-mlp"},
      {"format_version", "1"},
      {"input_height", std::to_string(info.input_height)},
      {"input_width", std::to_string(info.input_width)},
      {"pixel_scale", std::string(scale, res.ptr)},
      {"layers", layers.dump()},
      {"class_names", nlohmann::json(info.class_names).dump()},
      {"version", info.version},
  };
  if (!info.provenance.empty()) file.metadata["provenance"] = info.provenance;
  if (info.reference_profile) {
    file.metadata["reference_profile"] = reference_profile_to_json(*info.reference_profile);
  }
  for (Parameter* p : model.parameters()) file.tensors.emplace_back(p->name, p->value.clone());
  return file;
}

namespace {

[[noreturn]] void bad(std::string_view name, const std::string& what) {
  throw DataError(std::string(name) + ": " + what);
}

const std::string& meta(const SafetensorsFile& f, std::string_view name, const char* key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) bad(name, std::string("__metadata__ has no \"") + key + "\"");
  return it->second;
}

size_t meta_size(const SafetensorsFile& f, std::string_view name, const char* key,
                 size_t max_value) {
  const std::string& s = meta(f, name, key);
  size_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v == 0 || v > max_value) {
    bad(name, std::string("__metadata__ \"") + key + "\" must be an integer in 1.." +
                  std::to_string(max_value) + ", got \"" + s + "\"");
  }
  return v;
}

// Finite weights can still overflow (a weight of 1e30 gives inf, then NaN probabilities):
// one forward pass on fixed inputs (a blank image and a ramp over the pixel range) must give
// finite probabilities that sum to 1.
void self_test(const Model& model, std::string_view name) {
  const ModelInfo& info = model.info();
  const size_t n = info.input_size();
  Tensor x(Shape{2, n});
  for (size_t i = 0; i < n; ++i) {
    x.data()[i] = 0.0f;
    x.data()[n + i] = static_cast<float>(i * 255 / std::max<size_t>(1, n - 1)) * info.pixel_scale;
  }
  const Tensor p = model.predict(x, 1);
  for (size_t r = 0; r < p.rows(); ++r) {
    double sum = 0;
    for (size_t c = 0; c < p.cols(); ++c) {
      const float v = p.data()[r * p.cols() + c];
      if (!std::isfinite(v) || v < 0 || v > 1) {
        bad(name, "self-test: the model outputs " + std::to_string(v) + " for class " +
                      std::to_string(c) + " on a fixed input (weights too large?)");
      }
      sum += v;
    }
    if (std::abs(sum - 1.0) > 1e-3) {
      bad(name, "self-test: the probabilities sum to " + std::to_string(sum) +
                    " on a fixed input, expected 1");
    }
  }
}

}  // namespace

Model model_from_safetensors(const SafetensorsFile& file, std::string_view name) {
  if (meta(file, name, "format") != "simdnn-mlp") {
    bad(name, "__metadata__ \"format\" is \"" + meta(file, name, "format") +
                  "\", expected \"simdnn-mlp\"");
  }
  if (meta(file, name, "format_version") != "1") {
    bad(name, "unsupported format_version \"" + meta(file, name, "format_version") +
                  "\" (this build reads 1)");
  }
  ModelInfo info;
  // kMaxInputSide: the same bound load_dataset puts on training data (<simdnn/dataset.h>).
  constexpr size_t kMaxUnits = 1 << 20;
  info.input_height = meta_size(file, name, "input_height", kMaxInputSide);
  info.input_width = meta_size(file, name, "input_width", kMaxInputSide);
  {
    const std::string& s = meta(file, name, "pixel_scale");
    float v = 0;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || ptr != s.data() + s.size() || !std::isfinite(v) ||
        v < kMinPixelScale || v > kMaxPixelScale) {
      bad(name, "__metadata__ \"pixel_scale\" must be a number in " +
                    std::to_string(kMinPixelScale) + ".." + std::to_string(kMaxPixelScale) +
                    " (1/255 maps pixels to 0..1), got \"" + s + "\"");
    }
    info.pixel_scale = v;
  }
  auto it = file.metadata.find("version");
  if (it != file.metadata.end()) info.version = it->second;
  if (auto p = file.metadata.find("provenance"); p != file.metadata.end()) {
    const nlohmann::json j = nlohmann::json::parse(p->second, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) bad(name, "__metadata__ \"provenance\" is not a JSON object");
    info.provenance = p->second;
  }

  std::vector<LayerSpec> layers;
  try {
    nlohmann::json j = nlohmann::json::parse(meta(file, name, "layers"));
    if (!j.is_array() || j.empty()) throw std::runtime_error("not a non-empty list");
    for (const auto& l : j) {
      if (!l.is_object() || !l.contains("units") || !l["units"].is_number_unsigned() ||
          !l.contains("activation") || !l["activation"].is_string()) {
        throw std::runtime_error("each layer needs \"units\" (positive integer) and \"activation\"");
      }
      size_t units = l["units"].get<size_t>();
      if (units == 0 || units > kMaxUnits) throw std::runtime_error("units out of range");
      layers.push_back({units, parse_activation(l["activation"].get<std::string>())});
    }
    nlohmann::json names = nlohmann::json::parse(meta(file, name, "class_names"));
    if (!names.is_array()) throw std::runtime_error("class_names is not a list");
    for (const auto& n : names) {
      if (!n.is_string()) throw std::runtime_error("class_names holds a non-string");
      info.class_names.push_back(n.get<std::string>());
    }
  } catch (const std::exception& e) {
    bad(name, std::string("bad architecture in __metadata__: ") + e.what());
  }
  if (!info.class_names.empty() && info.class_names.size() != layers.back().units) {
    bad(name, std::to_string(info.class_names.size()) + " class names for " +
                  std::to_string(layers.back().units) + " outputs");
  }

  if (auto rp = file.metadata.find("reference_profile"); rp != file.metadata.end()) {
    try {
      info.reference_profile = reference_profile_from_json(rp->second, layers.back().units);
    } catch (const std::invalid_argument& e) {
      bad(name, std::string("bad __metadata__ \"reference_profile\": ") + e.what());
    }
  }

  if (layers.back().activation != Activation::kSoftmax) {
    bad(name, std::string("the output layer's activation is \"") +
                  activation_name(layers.back().activation) +
                  "\", expected \"softmax\" (a classifier must output probabilities)");
  }

  // Every tensor the architecture implies must be present with its shape before anything is
  // allocated: the metadata alone could claim gigabytes of weights in a file of a few bytes.
  std::vector<std::pair<std::string, Shape>> expected;
  {
    size_t in = info.input_size();
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string prefix = "dense_" + std::to_string(i);
      expected.emplace_back(prefix + ".weight", Shape{in, layers[i].units});
      expected.emplace_back(prefix + ".bias", Shape{layers[i].units});
      in = layers[i].units;
    }
  }
  for (const auto& [tensor_name, tensor] : file.tensors) {
    if (tensor_name.rfind("training.", 0) == 0) continue;
    if (std::none_of(expected.begin(), expected.end(),
                     [&n = tensor_name](const auto& e) { return e.first == n; })) {
      bad(name, "unexpected tensor \"" + tensor_name + "\"");
    }
  }
  for (const auto& [tensor_name, shape] : expected) {
    const Tensor* tensor = file.find(tensor_name);
    if (!tensor) bad(name, "missing tensor \"" + tensor_name + "\"");
    if (tensor->shape() != shape) {
      bad(name, "tensor \"" + tensor_name + "\" has shape " + tensor->shape().to_string() +
                    ", the architecture needs " + shape.to_string());
    }
    const float* d = tensor->data();
    const float* bad_value =
        std::find_if(d, d + tensor->size(), [](float v) { return !std::isfinite(v); });
    if (bad_value != d + tensor->size()) {
      bad(name, "tensor \"" + tensor_name + "\" holds a non-finite value (" +
                    std::to_string(*bad_value) + ") at index " +
                    std::to_string(bad_value - d));
    }
  }

  Rng rng(0);  // the weights are overwritten below
  Model model(std::move(info), std::move(layers), rng);
  for (Parameter* p : model.parameters()) {
    const Tensor* tensor = file.find(p->name);
    std::copy_n(tensor->data(), tensor->size(), p->value.data());
  }
  self_test(model, name);
  return model;
}

void save_model(const std::filesystem::path& path, const Model& model) {
  save_safetensors(path, model_to_safetensors(model));
}

Model load_model(const std::filesystem::path& path) {
  return model_from_safetensors(load_safetensors(path), path.string());
}

void save_model_validated(const std::filesystem::path& path, const Model& model) {
  const std::vector<uint8_t> bytes = serialize_safetensors(model_to_safetensors(model));
  AtomicFileWriter writer(path);
  writer.write(bytes);
  try {
    load_model(writer.temp_path());
  } catch (const std::exception& e) {
    // The writer's destructor removes the temporary file; `path` is untouched.
    throw DataError(path.string() + ": the new model does not load back, so it was not " +
                    "written (the previous file, if any, is unchanged): " + e.what());
  }
  writer.commit();
}

}  // namespace simdnn
