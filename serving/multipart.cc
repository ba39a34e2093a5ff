#include "multipart.h"

#include <algorithm>
#include <cctype>

#include "http_message.h"

namespace simdnn::serving {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The value of parameter `name` in a header value such as
// `form-data; name="file"; filename="a.png"` or `multipart/form-data; boundary=xyz`
// (quoted or not; quoted-pair escapes are not decoded: names and boundaries do not need them).
bool header_param(std::string_view value, std::string_view name, std::string_view* out) {
  size_t pos = value.find(';');
  while (pos != std::string_view::npos) {
    std::string_view rest = value.substr(pos + 1);
    const size_t next_semi = rest.find(';');
    const size_t eq = rest.find('=');
    if (eq != std::string_view::npos && eq < next_semi) {
      const std::string_view key = trim(rest.substr(0, eq));
      std::string_view v = trim(rest.substr(eq + 1));
      if (!v.empty() && v.front() == '"') {
        const size_t close = v.find('"', 1);
        if (close == std::string_view::npos) return false;
        v = v.substr(1, close - 1);
        // A quoted value may contain ';': continue after the closing quote.
        pos = value.find(';', static_cast<size_t>(v.data() + close - value.data()));
      } else {
        v = trim(v.substr(0, v.find(';')));
        pos = next_semi == std::string_view::npos ? next_semi : pos + 1 + next_semi;
      }
      if (iequals_ascii(key, name)) {
        *out = v;
        return true;
      }
    } else {
      pos = next_semi == std::string_view::npos ? next_semi : pos + 1 + next_semi;
    }
  }
  return false;
}

RequestError bad(std::string message) { return {400, "multipart body: " + std::move(message)}; }

}  // namespace

std::optional<RequestError> parse_multipart_file(std::string_view content_type,
                                                 std::string_view body, FilePart& out) {
  std::string_view boundary;
  if (!header_param(content_type, "boundary", &boundary) || boundary.empty()) {
    return bad("no boundary parameter in Content-Type (expected multipart/form-data; boundary=...)");
  }
  if (boundary.size() > 70) return bad("boundary longer than 70 characters (RFC 2046)");
  const std::string delimiter = "--" + std::string(boundary);
  const std::string next_delimiter = "\r\n" + delimiter;

  // The body starts with the first delimiter (a preamble before it is allowed and ignored).
  size_t pos = body.starts_with(delimiter) ? 0 : body.find(next_delimiter);
  if (pos == std::string_view::npos) return bad("no part starts with the boundary");
  pos += body.starts_with(delimiter) && pos == 0 ? delimiter.size() : next_delimiter.size();

  bool found = false;
  for (size_t parts = 0;; ++parts) {
    // After a delimiter: "--" ends the body, CRLF starts a part.
    if (body.substr(pos).starts_with("--")) break;
    // Transport padding (spaces) may follow the delimiter.
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) ++pos;
    if (!body.substr(pos).starts_with("\r\n")) {
      return bad(pos >= body.size() ? "truncated (no closing boundary)"
                                    : "a boundary is not followed by a line break");
    }
    if (parts == kMaxMultipartParts) {
      return bad("more than " + std::to_string(kMaxMultipartParts) + " parts");
    }
    pos += 2;
    const size_t headers_end = body.find("\r\n\r\n", pos);
    const size_t empty_headers = body.substr(pos).starts_with("\r\n") ? pos : std::string_view::npos;
    size_t content_start;
    std::string_view headers;
    if (empty_headers != std::string_view::npos) {
      content_start = pos + 2;
    } else if (headers_end == std::string_view::npos || headers_end - pos > kMaxPartHeaderBytes) {
      return bad(headers_end == std::string_view::npos
                     ? "truncated (part " + std::to_string(parts) + " has no end of headers)"
                     : "part " + std::to_string(parts) + " has more than " +
                           std::to_string(kMaxPartHeaderBytes) + " bytes of headers");
    } else {
      headers = body.substr(pos, headers_end - pos);
      content_start = headers_end + 4;
    }
    const size_t content_end = body.find(next_delimiter, content_start);
    if (content_end == std::string_view::npos) {
      return bad("truncated (part " + std::to_string(parts) + " has no closing boundary)");
    }
    FilePart part;
    part.data = body.substr(content_start, content_end - content_start);
    // Header lines: Content-Disposition and Content-Type matter, the rest is ignored.
    while (!headers.empty()) {
      const size_t eol = headers.find("\r\n");
      const std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view() : headers.substr(eol + 2);
      const size_t colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      const std::string_view field = trim(line.substr(0, colon));
      const std::string_view value = trim(line.substr(colon + 1));
      if (iequals_ascii(field, "Content-Disposition")) {
        header_param(value, "name", &part.name);
        header_param(value, "filename", &part.filename);
      } else if (iequals_ascii(field, "Content-Type")) {
        part.content_type = value;
      }
    }
    if (part.name == "file") {
      out = part;
      return std::nullopt;
    }
    if (!found && !part.filename.empty()) {
      out = part;
      found = true;
    }
    pos = content_end + next_delimiter.size();
  }
  if (!found) return bad("no file part (send the image as a field named \"file\", e.g. curl -F file=@image.png)");
  return std::nullopt;
}

}  // namespace simdnn::serving
