// The OIP infer body parser (declared in oip.h). Like predict_request.cc, a SAX handler: the
// values of a tensor go straight into a reused float vector (784 numbers per image must not
// become 784 DOM nodes), and depth and counts are checked as the events arrive.
#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>

#include "json_errors.h"
#include "oip.h"

namespace simdnn::serving {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxDataDepth = 3;      // [N][H][W]
constexpr size_t kMaxShapeRank = 8;      // refused later unless 2 or 3; bounded here
constexpr size_t kMaxSkipDepth = 32;     // "parameters" values we do not read
constexpr size_t kMaxOutputs = 8;

std::string number_text(double v) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

class OipInferHandler {
 public:
  OipInferHandler(const OipLimits& limits, OipInferRequest& request, ParsedInstances& values)
      : limits_(limits), request_(request), values_(values),
        max_values_(limits.max_batch * limits.input_height * limits.input_width) {}

  bool null() { return scalar("null"); }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(json::number_integer_t v) { return number(static_cast<double>(v), true); }
  bool number_unsigned(json::number_unsigned_t v) { return number(static_cast<double>(v), true); }
  bool number_float(json::number_float_t v, const json::string_t&) { return number(v, false); }
  bool binary(json::binary_t&) { return scalar("binary data"); }

  bool string(json::string_t& s) {
    if (skip_depth_) return true;
    if (skip_next_) return end_skip();
    if (ctx_ == Ctx::kRoot && key_ == Key::kId) {
      request_.id = s;
      return true;
    }
    if (ctx_ == Ctx::kInput && key_ == Key::kName) {
      if (s != kOipInputName) {
        return fail(400, "inputs[0].name " + json(s).dump() + " is not an input of the model: "
                         "its one input is \"input\"");
      }
      seen_name_ = true;
      return true;
    }
    if (ctx_ == Ctx::kInput && key_ == Key::kDatatype) {
      if (s == "FP32") {
        request_.datatype = OipDatatype::kFp32;
      } else if (s == "UINT8") {
        request_.datatype = OipDatatype::kUint8;
      } else {
        return fail(400, "inputs[0].datatype " + json(s).dump() +
                         " is not supported: use FP32 (model inputs, pixel * pixel_scale) or "
                         "UINT8 (pixels 0..255)");
      }
      seen_datatype_ = true;
      return true;
    }
    if (ctx_ == Ctx::kOutput && key_ == Key::kName) {
      if (s == kOipProbabilitiesName) {
        request_.want_probabilities = true;
      } else if (s == kOipClassName) {
        request_.want_class = true;
      } else {
        return fail(400, "outputs[" + std::to_string(outputs_ - 1) + "].name " + json(s).dump() +
                         " is not an output of the model: \"probabilities\" or \"class\"");
      }
      return true;
    }
    return unexpected("a string");
  }

  bool start_object(size_t) {
    if (skip_depth_ || skip_next_) return descend_skip();
    switch (ctx_) {
      case Ctx::kTop: ctx_ = Ctx::kRoot; return true;
      case Ctx::kInputs:
        if (inputs_ == 1) return fail(400, "\"inputs\" has more than one tensor: the model has one input, \"input\"");
        ++inputs_;
        ctx_ = Ctx::kInput;
        key_ = Key::kNone;
        return true;
      case Ctx::kOutputs:
        if (outputs_ == kMaxOutputs) return fail(400, "\"outputs\" lists more than 8 outputs");
        ++outputs_;
        ctx_ = Ctx::kOutput;
        key_ = Key::kNone;
        return true;
      default: return unexpected("an object");
    }
  }
  bool end_object() {
    if (skip_depth_) return ascend_skip();
    switch (ctx_) {
      case Ctx::kInput:
        if (!seen_name_) return fail(400, "inputs[0] has no \"name\"");
        if (!seen_datatype_) return fail(400, "inputs[0] has no \"datatype\"");
        if (!seen_shape_) return fail(400, "inputs[0] has no \"shape\"");
        if (!seen_data_) return fail(400, "inputs[0] has no \"data\"");
        ctx_ = Ctx::kInputs;
        return true;
      case Ctx::kOutput: ctx_ = Ctx::kOutputs; return true;
      case Ctx::kRoot: ctx_ = Ctx::kDone; return true;
      default: return unexpected("the end of an object");
    }
  }
  bool key(json::string_t& name) {
    if (skip_depth_) return true;
    if (ctx_ == Ctx::kRoot) {
      if (name == "id") return set_key(Key::kId, seen_id_, name);
      if (name == "inputs") return set_key(Key::kInputs, seen_inputs_, name);
      if (name == "outputs") return set_key(Key::kOutputs, seen_outputs_, name);
      if (name == "parameters") {
        return set_key(Key::kParameters, seen_parameters_, name) && begin_skip();
      }
      if (limits_.accept_class && name == "class") return set_key(Key::kClass, seen_class_, name);
      return fail(400, "unknown field " + json(name).dump() +
                       (limits_.accept_class
                            ? ": expected \"id\", \"inputs\", \"outputs\", \"parameters\" or \"class\""
                            : ": expected \"id\", \"inputs\", \"outputs\" or \"parameters\""));
    }
    if (ctx_ == Ctx::kInput) {
      if (name == "name") return set_key(Key::kName, dummy_ = false);
      if (name == "datatype") return set_key(Key::kDatatype, dummy_ = false);
      if (name == "shape") return set_key(Key::kShape, dummy_ = false);
      if (name == "data") return set_key(Key::kData, dummy_ = false);
      if (name == "parameters") return set_key(Key::kParameters, dummy_ = false) && begin_skip();
      return fail(400, "unknown field inputs[0]." + name +
                       ": expected name, shape, datatype, data or parameters");
    }
    if (ctx_ == Ctx::kOutput) {
      if (name == "name") return set_key(Key::kName, dummy_ = false);
      if (name == "parameters") return set_key(Key::kParameters, dummy_ = false) && begin_skip();
      return fail(400, "unknown field outputs[" + std::to_string(outputs_ - 1) + "]." + name +
                       ": expected name or parameters");
    }
    return fail(400, "unexpected key " + json(name).dump());
  }
  bool start_array(size_t) {
    if (skip_depth_ || skip_next_) return descend_skip();
    if (ctx_ == Ctx::kRoot && key_ == Key::kInputs) {
      ctx_ = Ctx::kInputs;
      return true;
    }
    if (ctx_ == Ctx::kRoot && key_ == Key::kOutputs) {
      // Listing outputs selects them.
      request_.want_probabilities = request_.want_class = false;
      ctx_ = Ctx::kOutputs;
      return true;
    }
    if (ctx_ == Ctx::kInput && key_ == Key::kShape) {
      if (seen_shape_) return fail(400, "inputs[0].shape is given twice");
      seen_shape_ = true;
      ctx_ = Ctx::kShape;
      return true;
    }
    if (ctx_ == Ctx::kInput && key_ == Key::kData) {
      if (seen_data_) return fail(400, "inputs[0].data is given twice");
      seen_data_ = true;
      ctx_ = Ctx::kData;
      depth_ = 1;
      counts_[1] = 0;
      return true;
    }
    if (ctx_ == Ctx::kData) {
      if (depth_ == kMaxDataDepth || (leaf_depth_ && depth_ >= leaf_depth_)) {
        return fail(400, "inputs[0].data is nested deeper than its shape allows");
      }
      ++counts_[depth_];
      ++depth_;
      counts_[depth_] = 0;
      return true;
    }
    return unexpected("an array");
  }
  bool end_array() {
    if (skip_depth_) return ascend_skip();
    switch (ctx_) {
      case Ctx::kInputs:
        if (inputs_ == 0) return fail(400, "\"inputs\" is empty");
        ctx_ = Ctx::kRoot;
        return true;
      case Ctx::kOutputs: ctx_ = Ctx::kRoot; return true;
      case Ctx::kShape: ctx_ = Ctx::kInput; return true;
      case Ctx::kData:
        if (!leaf_depth_) leaf_depth_ = depth_;  // an empty array: its values are leaves
        if (lengths_[depth_] == kUnset) {
          lengths_[depth_] = counts_[depth_];
        } else if (lengths_[depth_] != counts_[depth_]) {
          return fail(400, "inputs[0].data is ragged: arrays at depth " + std::to_string(depth_) +
                           " have " + std::to_string(lengths_[depth_]) + " and " +
                           std::to_string(counts_[depth_]) + " elements");
        }
        if (--depth_ == 0) ctx_ = Ctx::kInput;
        return true;
      default: return unexpected("the end of an array");
    }
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) {
    if (!error_) error_ = RequestError{400, malformed_json_message(e)};
    return false;
  }

  std::optional<RequestError> finish(bool parsed);

 private:
  enum class Ctx { kTop, kRoot, kInputs, kInput, kShape, kData, kOutputs, kOutput, kDone };
  enum class Key { kNone, kId, kInputs, kOutputs, kParameters, kName, kDatatype, kShape, kData, kClass };
  static constexpr size_t kUnset = ~size_t{0};

  bool fail(int status, std::string message) {
    if (!error_) error_ = RequestError{status, std::move(message)};
    return false;
  }
  bool set_key(Key k, bool& seen, std::string_view name = {}) {
    if (seen) return fail(400, "field \"" + std::string(name) + "\" is given twice");
    seen = ctx_ == Ctx::kRoot;  // inside inputs[0], twice-given fields are caught by value
    key_ = k;
    return true;
  }
  // "parameters": any JSON value, read and dropped (bounded depth).
  bool begin_skip() {
    skip_next_ = true;
    return true;
  }
  bool end_skip() {
    skip_next_ = false;
    return true;
  }
  bool descend_skip() {
    skip_next_ = false;
    if (++skip_depth_ > kMaxSkipDepth) return fail(400, "\"parameters\" is nested too deeply");
    return true;
  }
  bool ascend_skip() {
    --skip_depth_;
    return true;
  }
  bool scalar(const char* what) {
    if (skip_depth_) return true;
    if (skip_next_) return end_skip();
    return unexpected(what);
  }
  std::string where() const {
    switch (ctx_) {
      case Ctx::kTop: return "the body";
      case Ctx::kInputs: return "inputs[" + std::to_string(inputs_) + "]";
      case Ctx::kShape: return "inputs[0].shape[" + std::to_string(shape_.size()) + "]";
      case Ctx::kData: return "inputs[0].data (value " + std::to_string(values_.pixels.size()) + ")";
      case Ctx::kOutputs: return "outputs[" + std::to_string(outputs_) + "]";
      case Ctx::kRoot:
        return key_ == Key::kId       ? "\"id\""
               : key_ == Key::kInputs ? "\"inputs\""
               : key_ == Key::kClass  ? "\"class\""
                                      : "\"outputs\"";
      case Ctx::kInput: return "a field of inputs[0]";
      case Ctx::kOutput: return "outputs[" + std::to_string(outputs_ - 1) + "].name";
      case Ctx::kDone: break;
    }
    return "the body";
  }
  bool unexpected(const char* what) {
    return fail(400, where() + " is " + what + ", which the Open Inference Protocol does not "
                     "allow there");
  }
  bool number(double v, bool integer) {
    if (skip_depth_) return true;
    if (skip_next_) return end_skip();
    if (ctx_ == Ctx::kShape) {
      if (!integer || v < 0 || v > 1e9) {
        return fail(400, "inputs[0].shape[" + std::to_string(shape_.size()) + "] = " +
                         number_text(v) + " is not a dimension (a non-negative integer)");
      }
      if (shape_.size() == kMaxShapeRank) return fail(400, "inputs[0].shape has too many dimensions");
      shape_.push_back(static_cast<size_t>(v));
      return true;
    }
    if (ctx_ == Ctx::kRoot && key_ == Key::kClass) {
      if (!integer || v < 0 || v > 1e9) {
        return fail(400, "\"class\" = " + number_text(v) + " is not a class index (a "
                         "non-negative integer)");
      }
      request_.target_class = static_cast<size_t>(v);
      return true;
    }
    if (ctx_ != Ctx::kData) return unexpected("a number");
    if (leaf_depth_ && depth_ != leaf_depth_) {
      return fail(400, "inputs[0].data mixes numbers and arrays at one level");
    }
    leaf_depth_ = depth_;
    if (values_.pixels.size() == max_values_) {
      return fail(413, "inputs[0].data has more than " + std::to_string(max_values_) +
                       " values (--max-batch " + std::to_string(limits_.max_batch) + " images)");
    }
    ++counts_[depth_];
    // Range checks wait for the datatype, which may come after the data; 1e999 is infinity.
    values_.pixels.push_back(std::isfinite(v) ? static_cast<float>(v) : std::nanf(""));
    if (!std::isfinite(v)) nonfinite_ = true;
    return true;
  }

  const OipLimits& limits_;
  OipInferRequest& request_;
  ParsedInstances& values_;
  const size_t max_values_;
  Ctx ctx_ = Ctx::kTop;
  Key key_ = Key::kNone;
  bool seen_id_ = false, seen_inputs_ = false, seen_outputs_ = false, seen_parameters_ = false;
  bool seen_class_ = false;
  bool seen_name_ = false, seen_datatype_ = false, seen_shape_ = false, seen_data_ = false;
  bool dummy_ = false;
  bool skip_next_ = false;
  bool nonfinite_ = false;
  size_t skip_depth_ = 0;
  size_t inputs_ = 0, outputs_ = 0;
  std::vector<size_t> shape_;
  size_t depth_ = 0, leaf_depth_ = 0;
  size_t counts_[kMaxDataDepth + 1] = {};
  size_t lengths_[kMaxDataDepth + 1] = {kUnset, kUnset, kUnset, kUnset};
  std::optional<RequestError> error_;
};

std::optional<RequestError> OipInferHandler::finish(bool parsed) {
  if (error_) return error_;
  if (!parsed) return RequestError{400, "malformed JSON"};
  if (!seen_inputs_) return RequestError{400, "\"inputs\" is missing"};
  const size_t h = limits_.input_height, w = limits_.input_width;
  const std::string expected = "expected [N," + std::to_string(h * w) + "] or [N," +
                               std::to_string(h) + "," + std::to_string(w) + "]";
  std::string shape_text = "[";
  for (size_t i = 0; i < shape_.size(); ++i) shape_text += (i ? "," : "") + std::to_string(shape_[i]);
  shape_text += "]";
  const bool flat_shape = shape_.size() == 2 && shape_[1] == h * w;
  const bool image_shape = shape_.size() == 3 && shape_[1] == h && shape_[2] == w;
  if (!flat_shape && !image_shape) {
    return RequestError{400, "inputs[0].shape " + shape_text + " does not fit the model: " + expected};
  }
  const size_t rows = shape_[0];
  if (rows == 0) return RequestError{400, "inputs[0].shape " + shape_text + " has no rows"};
  if (rows > limits_.max_batch) {
    return RequestError{413, "inputs[0].shape " + shape_text + ": more than " +
                             std::to_string(limits_.max_batch) + " instances (--max-batch)"};
  }
  const size_t needed = rows * h * w;
  if (values_.pixels.size() != needed) {
    return RequestError{400, "inputs[0].data has " + std::to_string(values_.pixels.size()) +
                             " values, shape " + shape_text + " needs " + std::to_string(needed)};
  }
  if (leaf_depth_ > 1) {  // nested data must have the shape's structure
    bool ok = leaf_depth_ == shape_.size();
    for (size_t d = 1; ok && d <= leaf_depth_; ++d) ok = lengths_[d] == shape_[d - 1];
    if (ok && lengths_[1] == kUnset) ok = false;
    if (!ok) {
      return RequestError{400, "inputs[0].data is nested differently from its shape " +
                               shape_text + " (give it flat, or nested exactly as the shape)"};
    }
  }
  const bool fp32 = request_.datatype == OipDatatype::kFp32;
  const double hi = fp32 ? limits_.max_fp32 * (1 + 1e-6) : 255.0;
  for (size_t i = 0; i < values_.pixels.size(); ++i) {
    const float v = values_.pixels[i];
    const bool ok = v >= 0 && v <= hi && (fp32 || v == std::floor(v));
    if (!ok) {
      const std::string text = std::isnan(v) ? std::string("a value beyond float range") : number_text(v);
      return RequestError{400, "inputs[0].data[" + std::to_string(i) + "] = " + text +
                               (fp32 ? " is outside the FP32 input range 0.." + number_text(limits_.max_fp32) +
                                           " (pixel * pixel_scale; send UINT8 for 0..255 pixels)"
                                     : " is not a UINT8 pixel (an integer 0..255)")};
    }
  }
  values_.rows = rows;
  (void)nonfinite_;
  return std::nullopt;
}

}  // namespace

std::optional<RequestError> parse_oip_infer(std::string_view body, const OipLimits& limits,
                                            OipInferRequest& request, ParsedInstances& values) {
  request = OipInferRequest{};
  values.rows = 0;
  values.pixels.clear();
  OipInferHandler handler(limits, request, values);
  const bool parsed = json::sax_parse(body.begin(), body.end(), &handler,
                                      json::input_format_t::json, /*strict=*/true);
  return handler.finish(parsed);
}

}  // namespace simdnn::serving
