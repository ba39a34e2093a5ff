// Internal: the Open Inference Protocol (KServe v2) REST API that Triton, KServe and Seldon
// clients speak: the infer request parser, the paths, and the response bodies. Formats and the
// choices made where the protocol leaves them open (datatypes, scaling): docs/serving.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "simdnn/model.h"
#include "simdnn/serving/predict_request.h"
#include "simdnn/tensor.h"

namespace simdnn::serving {

// The model's one input and its outputs, as named in metadata and infer bodies.
constexpr const char* kOipInputName = "input";
constexpr const char* kOipProbabilitiesName = "probabilities";
constexpr const char* kOipClassName = "class";

struct OipLimits {
  size_t input_height = 28;
  size_t input_width = 28;
  size_t max_batch = 256;
  // FP32 data are model inputs (pixel * pixel_scale): they must lie in 0..max_fp32, i.e.
  // 255 * pixel_scale (1.0 for MNIST's 1/255).
  double max_fp32 = 1.0;
  // The explain endpoint's body may name the class to explain: a top-level "class".
  bool accept_class = false;
};

enum class OipDatatype { kFp32, kUint8 };

// What an infer body asked for, besides the tensor values.
struct OipInferRequest {
  std::optional<std::string> id;  // the body's "id", echoed in the response
  OipDatatype datatype = OipDatatype::kFp32;
  // Requested outputs; both when the body has no "outputs".
  bool want_probabilities = true;
  bool want_class = true;
  // The explain endpoint's "class" (only with OipLimits::accept_class); unset: the predicted.
  std::optional<size_t> target_class;
};

// Parses a POST /v2/models/{name}/infer body: {"id"?, "inputs":[{"name":"input", "shape":[N,
// H*W] or [N,H,W], "datatype":"FP32"|"UINT8", "data": flat row-major or nested}], "outputs"?,
// "parameters"?}. The values go into `values` (rows = N, pixels = N*H*W values exactly as
// sent: FP32 model inputs or UINT8 pixels; capacity reused). A SAX parse: numbers stream
// into the vector, nesting and counts are bounded as they arrive. Errors: 400 naming the field
// (malformed JSON, invalid UTF-8, wrong shape/size/datatype, values out of range), 413 for a
// batch larger than max_batch. Takes bytes, so it can be fuzzed directly.
std::optional<RequestError> parse_oip_infer(std::string_view body, const OipLimits& limits,
                                            OipInferRequest& request, ParsedInstances& values);

// A /v2/models/... path: {name}[/versions/{version}][/ready|/infer|/explain]. Names are compared as
// sent (not percent-decoded).
struct OipModelPath {
  enum class Action { kMetadata, kReady, kInfer, kExplain };
  std::string_view name;
  std::optional<std::string_view> version;
  Action action = Action::kMetadata;
};
// false when path is not of that form.
bool parse_oip_model_path(std::string_view path, OipModelPath& out);

// s as a JSON string (invalid UTF-8 replaced, never an exception).
std::string json_quote(std::string_view s);

// GET /v2: {"name":"simdnn","version":...,"extensions":[]}.
std::string oip_server_metadata();
// GET /v2/models/{name}: name, versions (the live ones), platform, inputs and outputs with
// their shapes (those of `info`, the version asked for or the primary one).
std::string oip_model_metadata(std::string_view name, const std::vector<std::string>& versions,
                               const ModelInfo& info, size_t classes);

// The infer response, replacing `out`: {"model_name","model_version","id","outputs":[
// {"name":"probabilities","datatype":"FP32","shape":[N,classes],"data":[...]},
// {"name":"class","datatype":"INT64","shape":[N],"data":[...]}]}. Probabilities print as the
// shortest decimal that reads back as the same float32, like /predict.
void write_oip_infer_response(std::string& out, std::string_view model_name,
                              std::string_view version, std::string_view id, const Tensor& probs,
                              const OipInferRequest& request);

}  // namespace simdnn::serving
