// The Open Inference Protocol paths and response bodies (oip.h); the request parser is in
// oip_request.cc.
#include "oip.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#ifndef SIMDNN_SERVER_VERSION
#define SIMDNN_SERVER_VERSION "0.0.0"
#endif

namespace simdnn::serving {

namespace {

using json = nlohmann::json;


void append_float(std::string& out, float v) {
  if (!std::isfinite(v)) {
    out += "null";
    return;
  }
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}



}  // namespace

std::string json_quote(std::string_view s) {
  return json(std::string(s)).dump(-1, ' ', false, json::error_handler_t::replace);
}

bool parse_oip_model_path(std::string_view path, OipModelPath& out) {
  constexpr std::string_view kPrefix = "/v2/models/";
  if (!path.starts_with(kPrefix)) return false;
  std::string_view rest = path.substr(kPrefix.size());
  const auto next = [&rest]() {
    const size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
    return segment;
  };
  out = OipModelPath{};
  out.name = next();
  if (out.name.empty()) return false;
  if (rest.empty()) return path.back() != '/';
  std::string_view segment = next();
  if (segment == "versions") {
    out.version = next();
    if (out.version->empty()) return false;
    if (rest.empty()) return path.back() != '/';
    segment = next();
  }
  if (!rest.empty() || path.back() == '/') return false;
  if (segment == "ready") {
    out.action = OipModelPath::Action::kReady;
    return true;
  }
  if (segment == "infer") {
    out.action = OipModelPath::Action::kInfer;
    return true;
  }
  if (segment == "explain") {
    out.action = OipModelPath::Action::kExplain;
    return true;
  }
  return false;
}

std::string oip_server_metadata() {
  return std::string(R"({"name":"simdnn","version":)") + json_quote(SIMDNN_SERVER_VERSION) +
         R"(,"extensions":[]})";
}

std::string oip_model_metadata(std::string_view name, const std::vector<std::string>& versions,
                               const ModelInfo& info, size_t classes) {
  std::string list;
  for (const std::string& v : versions) {
    if (!list.empty()) list += ',';
    list += json_quote(v);
  }
  std::string out = R"({"name":)" + json_quote(name) + R"(,"versions":[)" + list +
                    R"(],"platform":"simdnn","inputs":[{"name":"input","datatype":"FP32","shape":[-1,)" +
                    std::to_string(info.input_size()) +
                    R"(]}],"outputs":[{"name":"probabilities","datatype":"FP32","shape":[-1,)" +
                    std::to_string(classes) +
                    R"(]},{"name":"class","datatype":"INT64","shape":[-1]}]})";
  return out;
}

void write_oip_infer_response(std::string& out, std::string_view model_name,
                              std::string_view version, std::string_view id, const Tensor& probs,
                              const OipInferRequest& request) {
  const size_t rows = probs.rows(), classes = probs.cols();
  out.clear();
  out += R"({"model_name":)";
  out += json_quote(model_name);
  out += R"(,"model_version":)";
  out += json_quote(version);
  out += R"(,"id":)";
  out += json_quote(id);
  out += R"(,"outputs":[)";
  bool first = true;
  if (request.want_probabilities) {
    first = false;
    out += R"({"name":"probabilities","datatype":"FP32","shape":[)";
    out += std::to_string(rows) + "," + std::to_string(classes);
    out += R"(],"data":[)";
    for (size_t i = 0; i < rows * classes; ++i) {
      if (i) out += ',';
      append_float(out, probs.data()[i]);
    }
    out += "]}";
  }
  if (request.want_class) {
    if (!first) out += ',';
    out += R"({"name":"class","datatype":"INT64","shape":[)";
    out += std::to_string(rows);
    out += R"(],"data":[)";
    for (size_t r = 0; r < rows; ++r) {
      // The highest probability, the lower index on ties (as /predict's "class").
      const float* p = probs.data() + r * classes;
      size_t best = 0;
      for (size_t c = 1; c < classes; ++c) {
        if (p[c] > p[best]) best = c;
      }
      if (r) out += ',';
      out += std::to_string(best);
    }
    out += "]}";
  }
  out += "]}";
}

}  // namespace simdnn::serving
