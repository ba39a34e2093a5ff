#include "simdnn/checkpoint.h"

#include <algorithm>
#include <array>
#include <cinttypes>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "simdnn/io_error.h"
#include "simdnn/model_file.h"
#include "simdnn/safetensors.h"

namespace simdnn {
namespace {

using json = nlohmann::json;

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

json parse_settings(const std::string& settings_json) {
  try {
    return json::parse(settings_json);
  } catch (const json::exception& e) {
    throw std::invalid_argument(std::string("checkpoint settings are not JSON: ") + e.what());
  }
}

}  // namespace

void save_checkpoint(const std::filesystem::path& path, const Model& model, Optimizer& optimizer,
                     const Rng& rng, int epochs_done, const std::string& settings_json) {
  const json settings = parse_settings(settings_json);
  SafetensorsFile file = model_to_safetensors(model);
  for (auto& [name, tensor] : optimizer.state(model.parameters())) {
    file.tensors.emplace_back("training." + name, tensor->clone());
  }
  json rng_state = json::array();
  for (uint64_t s : rng.state()) rng_state.push_back(hex64(s));
  file.metadata["training"] = json{{"epochs_done", epochs_done},
                                   {"optimizer", optimizer.name()},
                                   {"optimizer_steps", optimizer.steps()},
                                   {"rng", rng_state},
                                   {"config", settings}}
                                  .dump();
  save_safetensors(path, file);
}

int restore_checkpoint(const std::filesystem::path& path, Model& model, Optimizer& optimizer,
                       Rng& rng, const std::string& settings_json) {
  const json settings = parse_settings(settings_json);
  SafetensorsFile file = load_safetensors(path);
  const std::string name = path.string();
  auto it = file.metadata.find("training");
  if (it == file.metadata.end()) {
    throw IoError(name + ": not a checkpoint (no \"training\" metadata)");
  }
  json t;
  try {
    t = json::parse(it->second);
  } catch (const std::exception& e) {
    throw IoError(name + ": checkpoint \"training\" metadata is not JSON: " + e.what());
  }
  int epochs_done = 0;
  try {
    if (t.at("config") != settings) {
      throw IoError(name + ": the checkpoint was written with different settings " +
                    t.at("config").dump() + " than this run " + settings.dump());
    }
    if (t.at("optimizer").get<std::string>() != optimizer.name()) {
      throw IoError(name + ": the checkpoint's optimizer is " +
                    t.at("optimizer").get<std::string>() + ", this run's " + optimizer.name());
    }
    epochs_done = t.at("epochs_done").get<int>();
    optimizer.set_steps(t.at("optimizer_steps").get<int64_t>());
    std::array<uint64_t, 4> s{};
    for (size_t i = 0; i < 4; ++i) {
      s[i] = std::stoull(t.at("rng").at(i).get<std::string>(), nullptr, 16);
    }
    rng.set_state(s);
  } catch (const json::exception& e) {
    throw IoError(name + ": bad checkpoint \"training\" metadata: " + e.what());
  } catch (const std::logic_error& e) {  // stoull: not a hex number
    throw IoError(name + ": bad checkpoint RNG state: " + e.what());
  }
  const Model restored = model_from_safetensors(file, name);
  const ModelInfo& saved = restored.info();
  if (saved.input_height != model.info().input_height ||
      saved.input_width != model.info().input_width) {
    throw IoError(name + ": the checkpoint's model takes " + std::to_string(saved.input_height) +
                  "x" + std::to_string(saved.input_width) + " images, the data has " +
                  std::to_string(model.info().input_height) + "x" +
                  std::to_string(model.info().input_width));
  }
  const std::vector<Parameter*>& dst = model.parameters();
  const std::vector<Parameter*>& src = restored.parameters();
  if (restored.layers().size() != model.layers().size() || src.size() != dst.size()) {
    throw IoError(name + ": the checkpoint's architecture differs from this run's");
  }
  for (size_t i = 0; i < dst.size(); ++i) {
    if (src[i]->value.shape() != dst[i]->value.shape()) {
      throw IoError(name + ": the checkpoint's " + src[i]->name + " is " +
                    src[i]->value.shape().to_string() + ", this run's " +
                    dst[i]->value.shape().to_string());
    }
    std::copy_n(src[i]->value.data(), src[i]->value.size(), dst[i]->value.data());
  }
  for (auto& [slot, tensor] : optimizer.state(dst)) {
    const Tensor* state = file.find("training." + slot);
    if (!state) throw IoError(name + ": checkpoint lacks tensor \"training." + slot + "\"");
    if (state->shape() != tensor->shape()) {
      throw IoError(name + ": checkpoint tensor \"training." + slot + "\" is " +
                    state->shape().to_string() + ", the optimizer needs " +
                    tensor->shape().to_string());
    }
    std::copy_n(state->data(), state->size(), tensor->data());
  }
  return epochs_done;
}

}  // namespace simdnn
