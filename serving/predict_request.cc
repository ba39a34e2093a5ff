#include "simdnn/serving/predict_request.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "json_errors.h"

namespace simdnn::serving {

namespace {

using json = nlohmann::json;

// The general parser: a SAX handler, so the 784 numbers of an image go straight into a
// reused float vector instead of a DOM of 784 json nodes, and nesting is refused at the first
// unexpected '[' or '{' rather than after building it.

class PredictJsonHandler {
 public:
  PredictJsonHandler(size_t input_size, size_t max_batch, ParsedInstances& out)
      : input_size_(input_size), max_batch_(max_batch), out_(out) {}

  bool null() { return unexpected("null"); }
  bool boolean(bool) { return unexpected("a boolean"); }
  bool number_integer(json::number_integer_t v) { return number(static_cast<double>(v)); }
  bool number_unsigned(json::number_unsigned_t v) { return number(static_cast<double>(v)); }
  bool number_float(json::number_float_t v, const json::string_t&) { return number(v); }
  bool string(json::string_t&) { return unexpected("a string"); }
  bool binary(json::binary_t&) { return unexpected("binary data"); }

  bool start_object(size_t) {
    if (where_ != Where::kTop) return unexpected("an object");
    where_ = Where::kObject;
    return true;
  }
  bool key(json::string_t& name) {
    // Keys occur only in the top-level object: nested objects are refused in start_object.
    if (field_ != Field::kNone) return fail(400, "give either \"pixels\" or \"instances\", once");
    if (name == "pixels") {
      field_ = Field::kPixels;
    } else if (name == "instances") {
      field_ = Field::kInstances;
    } else {
      return fail(400, "unknown field " + json(name).dump() +
                           ": expected \"pixels\" or \"instances\"");
    }
    return true;
  }
  bool end_object() {
    where_ = Where::kDone;
    return true;
  }
  bool start_array(size_t) {
    if (where_ == Where::kObject) {
      if (field_ == Field::kPixels) {
        where_ = Where::kPixelRow;
        return begin_row();
      }
      where_ = Where::kInstances;
      return true;
    }
    if (where_ == Where::kInstances) {
      where_ = Where::kInstanceRow;
      return begin_row();
    }
    return unexpected("an array");
  }
  bool end_array() {
    switch (where_) {
      case Where::kPixelRow: where_ = Where::kObject; return end_row();
      case Where::kInstanceRow: where_ = Where::kInstances; return end_row();
      case Where::kInstances:
        where_ = Where::kObject;
        if (out_.rows == 0) return fail(400, "\"instances\" is empty");
        return true;
      default: return unexpected("the end of an array");  // unreachable for valid JSON
    }
  }
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) {
    if (!error_) error_ = RequestError{400, malformed_json_message(e)};
    return false;
  }

  // The outcome once sax_parse has returned.
  std::optional<RequestError> finish(bool parsed) {
    if (error_) return error_;
    if (!parsed) return RequestError{400, "malformed JSON"};
    if (field_ == Field::kNone) {
      return RequestError{400, "expected a JSON object with \"pixels\" or \"instances\""};
    }
    return std::nullopt;
  }

 private:
  enum class Where { kTop, kObject, kPixelRow, kInstances, kInstanceRow, kDone };
  enum class Field { kNone, kPixels, kInstances };

  bool fail(int status, std::string message) {
    error_ = RequestError{status, std::move(message)};
    return false;
  }

  // "pixels[12]" or "instances[3][12]".
  std::string position(size_t column) const {
    std::string s = field_ == Field::kPixels ? "pixels" : "instances[" + std::to_string(out_.rows) + "]";
    return s + "[" + std::to_string(column) + "]";
  }

  std::string expected_row() const {
    return "an array of " + std::to_string(input_size_) + " pixel values (0..255)";
  }

  bool unexpected(const char* what) {
    switch (where_) {
      case Where::kTop:
        return fail(400, std::string("the body is ") + what +
                             ", expected a JSON object with \"pixels\" or \"instances\"");
      case Where::kObject:
        return fail(400, std::string(field_ == Field::kPixels ? "\"pixels\"" : "\"instances\"") +
                             " is " + what + ", expected " +
                             (field_ == Field::kPixels ? expected_row()
                                                       : "an array of such arrays"));
      case Where::kInstances:
        return fail(400, "instances[" + std::to_string(out_.rows) + "] is " + what +
                             ", expected " + expected_row());
      case Where::kPixelRow:
      case Where::kInstanceRow:
        return fail(400, position(column_) + " is " + what + ", expected a number 0..255");
      case Where::kDone: break;
    }
    return fail(400, std::string("unexpected ") + what);
  }

  bool begin_row() {
    if (out_.rows >= max_batch_) {
      return fail(413, "more than " + std::to_string(max_batch_) +
                           " instances in one request (--max-batch)");
    }
    column_ = 0;
    return true;
  }
  bool end_row() {
    if (column_ != input_size_) {
      const std::string name =
          field_ == Field::kPixels ? "\"pixels\"" : "instances[" + std::to_string(out_.rows) + "]";
      return fail(400, name + " has " + std::to_string(column_) + " values, expected " +
                           std::to_string(input_size_));
    }
    ++out_.rows;
    return true;
  }
  bool number(double v) {
    if (where_ != Where::kPixelRow && where_ != Where::kInstanceRow) return unexpected("a number");
    if (column_ >= input_size_) {
      const std::string name =
          field_ == Field::kPixels ? "\"pixels\"" : "instances[" + std::to_string(out_.rows) + "]";
      return fail(400, name + " has more than " + std::to_string(input_size_) + " values");
    }
    // Also catches overflowing literals such as 1e999, which parse to infinity.
    if (!(v >= 0.0 && v <= 255.0)) {
      char buf[32];
      const auto r = std::to_chars(buf, buf + sizeof buf, v);
      return fail(400, position(column_) + " = " + std::string(buf, r.ptr) +
                           " is outside the pixel range 0..255");
    }
    out_.pixels.push_back(static_cast<float>(v));
    ++column_;
    return true;
  }

  const size_t input_size_;
  const size_t max_batch_;
  ParsedInstances& out_;
  Where where_ = Where::kTop;
  Field field_ = Field::kNone;
  size_t column_ = 0;
  std::optional<RequestError> error_;
};

// The common case without a general JSON parser: exactly {"pixels": [numbers]} or
// {"instances": [[numbers], ...]} with plain keys, every row the right length and every value
// in range. It accepts only valid JSON of that shape and converts numbers as the SAX path does
// (integers exactly, others with a correctly rounded from_chars), so the two agree on every
// body the fast path accepts. Anything else, errors included, returns false and goes to the
// SAX parser, which then produces the precise message. About 8x faster for 784 numbers than
// the SAX parser; with the inline small-integer path in row(), 24k instructions for a
// 784-value MNIST-like body against 52k before (callgrind).
class FastPredictParser {
 public:
  FastPredictParser(std::string_view body, size_t input_size, size_t max_batch,
                    ParsedInstances& out)
      : p_(body.data()), end_(body.data() + body.size()), input_size_(input_size),
        max_batch_(max_batch), out_(out) {}

  bool parse() {
    if (!consume('{')) return false;
    skip_space();
    bool ok = false;
    if (consume_literal("\"pixels\"")) {
      ok = consume(':') && row();
    } else if (consume_literal("\"instances\"")) {
      ok = consume(':') && consume('[') && row();
      while (ok && consume(',')) ok = row();
      ok = ok && consume(']');
    }
    if (!ok || !consume('}')) return false;
    skip_space();
    return p_ == end_;
  }

 private:
  static bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  void skip_space() {
    while (p_ < end_ && is_space(*p_)) ++p_;
  }
  // Skips whitespace, then consumes c.
  bool consume(char c) {
    skip_space();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return false;
  }
  bool consume_literal(std::string_view s) {
    if (static_cast<size_t>(end_ - p_) < s.size() || std::string_view(p_, s.size()) != s) {
      return false;
    }
    p_ += s.size();
    return true;
  }

  // [v, v, ...] with exactly input_size values.
  bool row() {
    if (out_.rows >= max_batch_ || !consume('[')) return false;
    const size_t base = out_.pixels.size();
    out_.pixels.resize(base + input_size_);
    float* const values = out_.pixels.data() + base;
    // The common value is 0..255 written as 1-3 digits without a leading zero, right before
    // ',' or ']' (a typical image is mostly "0," and "255,"): parsed inline on a local cursor,
    // about 15 instructions a value. Anything else (spaces, fractions, exponents, 4+ digits,
    // > 255, "01", the last few bytes of the body) goes to number() and consume(), which
    // decide exactly as before.
    const char* p = p_;
    const char* const end = end_;
    for (size_t i = 0; i < input_size_; ++i) {
      if (i) {
        if (p < end && *p == ',') {
          ++p;
        } else {
          p_ = p;
          if (!consume(',')) return false;
          p = p_;
        }
      }
      if (end - p >= 4 && p[0] == '0' && (p[1] == ',' || p[1] == ']')) {  // most pixels
        values[i] = 0.0f;
        ++p;
        continue;
      }
      if (end - p >= 4 && is_digit(p[0])) {
        const char* q = p;
        unsigned value = static_cast<unsigned>(*q++ - '0');
        if (value != 0 && is_digit(*q)) {
          value = value * 10 + static_cast<unsigned>(*q++ - '0');
          if (is_digit(*q)) value = value * 10 + static_cast<unsigned>(*q++ - '0');
        }
        if ((*q == ',' || *q == ']') && value <= 255) {
          values[i] = static_cast<float>(value);
          p = q;
          continue;
        }
      }
      p_ = p;
      skip_space();
      if (!number(values[i])) return false;
      p = p_;
    }
    p_ = p;
    if (!consume(']')) return false;
    ++out_.rows;
    return true;
  }

  // A JSON number in 0..255: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?, no sign here
  // (negative values are errors, left to the SAX path).
  bool number(float& v) {
    const char* start = p_;
    const char* q = p_;
    if (q == end_ || !is_digit(*q)) return false;
    unsigned integer = 0;
    if (*q == '0') {
      ++q;
    } else {
      while (q < end_ && is_digit(*q) && q - start < 4) integer = integer * 10 + (*q++ - '0');
      if (q < end_ && is_digit(*q)) return false;  // 5+ digits: out of range (or SAX decides)
    }
    const bool plain_integer = q == end_ || (*q != '.' && *q != 'e' && *q != 'E');
    if (plain_integer) {
      if (integer > 255) return false;
      v = static_cast<float>(integer);
      p_ = q;
      return true;
    }
    if (*q == '.') {
      ++q;
      if (q == end_ || !is_digit(*q)) return false;
      while (q < end_ && is_digit(*q)) ++q;
    }
    if (q < end_ && (*q == 'e' || *q == 'E')) {
      ++q;
      if (q < end_ && (*q == '+' || *q == '-')) ++q;
      if (q == end_ || !is_digit(*q)) return false;
      while (q < end_ && is_digit(*q)) ++q;
    }
    double d = 0;
    const auto r = std::from_chars(start, q, d);
    if (r.ec != std::errc() || r.ptr != q || !(d >= 0.0 && d <= 255.0)) return false;
    v = static_cast<float>(d);
    p_ = q;
    return true;
  }

  const char* p_;
  const char* const end_;
  const size_t input_size_;
  const size_t max_batch_;
  ParsedInstances& out_;
};

}  // namespace

std::optional<RequestError> parse_predict_json(std::string_view body, size_t input_size,
                                               size_t max_batch, ParsedInstances& out) {
  out.rows = 0;
  out.pixels.clear();
  if (FastPredictParser(body, input_size, max_batch, out).parse()) return std::nullopt;
  out.rows = 0;
  out.pixels.clear();
  PredictJsonHandler handler(input_size, max_batch, out);
  const bool parsed = json::sax_parse(body.begin(), body.end(), &handler,
                                      json::input_format_t::json, /*strict=*/true);
  return handler.finish(parsed);
}

}  // namespace simdnn::serving
