#include "simdnn/image.h"

#include <stb_image.h>
#include <stb_image_write.h>

// jpeglib.h needs FILE and size_t declared before it.
#include <cstdio>
#include <jerror.h>
#include <jpeglib.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <csetjmp>
#include <stdexcept>
#include <string>

#include "io_util.h"
#include "simdnn/io_error.h"
#include "simdnn/read_file.h"

namespace simdnn {

using io_detail::in_quotes;

namespace {

std::string stb_reason() {
  const char* reason = stbi_failure_reason();
  return std::string("stb_image: ") + (reason ? reason : "no reason given");
}

// stb frees with free(); this owns what stbi_load_* returns.
struct StbPixels {
  unsigned char* p = nullptr;
  ~StbPixels() { stbi_image_free(p); }
};

// One output pixel's source pixels along an axis and their weights (summing to 1).
struct Taps {
  int first = 0;
  std::vector<float> weights;
};

// Per output index along one axis: area coverage when shrinking, bilinear otherwise.
std::vector<Taps> axis_taps(int src, int dst) {
  std::vector<Taps> taps(dst);
  const double scale = static_cast<double>(src) / dst;
  for (int i = 0; i < dst; ++i) {
    Taps& t = taps[i];
    if (dst < src) {
      // Output pixel i covers [i*scale, (i+1)*scale) of the source; weight = overlap / scale.
      const double lo = i * scale, hi = (i + 1) * scale;
      t.first = static_cast<int>(std::floor(lo));
      const int last = std::min(src - 1, static_cast<int>(std::ceil(hi)) - 1);
      for (int s = t.first; s <= last; ++s) {
        const double overlap = std::min<double>(hi, s + 1) - std::max<double>(lo, s);
        t.weights.push_back(static_cast<float>(std::max(0.0, overlap) / scale));
      }
    } else {
      // Pixel centres aligned: output centre i + 0.5 maps to source (i + 0.5) * scale.
      const double x = std::clamp((i + 0.5) * scale - 0.5, 0.0, static_cast<double>(src - 1));
      t.first = static_cast<int>(std::floor(x));
      const float frac = static_cast<float>(x - t.first);
      t.weights.push_back(1.0f - frac);
      if (frac > 0.0f) t.weights.push_back(frac);
    }
  }
  return taps;
}

// Binary PGM/PPM (P5/P6) are decoded here rather than by stb_image 2.27 (Debian 12), which
// neither checks that the data is complete (it decodes uninitialised memory), nor byte-swaps
// 16-bit samples (PNM is big-endian), nor scales by maxval, and whose channel conversion reads
// past its buffer for 16-bit PNM (a 22-byte file segfaulted predict). Returns false when the
// bytes are not a binary PNM; throws IoError naming the image when they are a bad one.
bool decode_binary_pnm(std::span<const uint8_t> bytes, const std::string& name,
                       size_t max_pixels, GrayImage& image) {
  if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6')) return false;
  const size_t channels = bytes[1] == '6' ? 3 : 1;
  size_t pos = 2;
  uint64_t fields[3] = {0, 0, 0};  // width, height, maxval
  const char* field_names[3] = {"width", "height", "maxval"};
  for (int f = 0; f < 3; ++f) {
    while (pos < bytes.size()) {  // whitespace and # comments
      if (std::isspace(bytes[pos])) {
        ++pos;
      } else if (bytes[pos] == '#') {
        while (pos < bytes.size() && bytes[pos] != '\n') ++pos;
      } else {
        break;
      }
    }
    if (pos >= bytes.size() || !std::isdigit(bytes[pos])) {
      throw IoError("cannot decode image " + name + ": PNM header has no " + field_names[f]);
    }
    while (pos < bytes.size() && std::isdigit(bytes[pos])) {
      fields[f] = fields[f] * 10 + (bytes[pos++] - '0');
      if (fields[f] > 0xFFFFFFFFu) {
        throw IoError("cannot decode image " + name + ": PNM " + field_names[f] + " is too large");
      }
    }
  }
  const uint64_t width = fields[0], height = fields[1], maxval = fields[2];
  if (width == 0 || height == 0 || width * height > max_pixels) {
    throw IoError("cannot decode image " + name + ": dimensions " + std::to_string(width) + "x" +
                  std::to_string(height) + " = " + std::to_string(width * height) +
                  " pixels, expected 1 to " + std::to_string(max_pixels));
  }
  if (maxval == 0 || maxval > 65535) {
    throw IoError("cannot decode image " + name + ": PNM maxval " + std::to_string(maxval) +
                  " is not in 1..65535");
  }
  if (pos >= bytes.size() || !std::isspace(bytes[pos])) {
    throw IoError("cannot decode image " + name + ": PNM header does not end in whitespace");
  }
  ++pos;  // exactly one whitespace byte before the data
  const size_t sample_bytes = maxval > 255 ? 2 : 1;
  const uint64_t needed = width * height * channels * sample_bytes;
  if (bytes.size() - pos < needed) {
    throw IoError("cannot decode image " + name + ": truncated PNM data (" +
                  std::to_string(bytes.size() - pos) + " bytes after the header, " +
                  std::to_string(needed) + " needed for " + std::to_string(width) + "x" +
                  std::to_string(height) + ")");
  }
  image = GrayImage{static_cast<int>(width), static_cast<int>(height),
                    std::vector<uint8_t>(width * height)};
  const uint8_t* d = bytes.data() + pos;
  auto sample = [&](size_t i) -> unsigned {  // scaled to 0..255, rounded
    const uint64_t v = sample_bytes == 2 ? (uint64_t{d[2 * i]} << 8 | d[2 * i + 1]) : d[i];
    return static_cast<unsigned>((std::min(v, maxval) * 255 + maxval / 2) / maxval);
  };
  for (size_t i = 0; i < image.pixels.size(); ++i) {
    image.pixels[i] = static_cast<uint8_t>(
        channels == 3 ? (sample(3 * i) * 77u + sample(3 * i + 1) * 150u + sample(3 * i + 2) * 29u) >> 8
                      : sample(i));
  }
  return true;
}

// PNG: every chunk's declared length must fit in the bytes that follow it. stb_image 2.27
// grows its IDAT buffer to the declared length before reading, so a 100-byte file declaring a
// 2 GiB chunk made it allocate 2 GiB (found by fuzz_image). Checking the chunk walk here bounds
// stb's buffers by the file size.
void check_png_chunks(std::span<const uint8_t> bytes, const std::string& name) {
  static constexpr uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (bytes.size() < 8 || !std::equal(kSignature, kSignature + 8, bytes.begin())) return;
  size_t pos = 8;
  while (bytes.size() - pos >= 12) {  // length, type, (data), crc
    const uint64_t length = uint64_t{bytes[pos]} << 24 | uint64_t{bytes[pos + 1]} << 16 |
                            uint64_t{bytes[pos + 2]} << 8 | bytes[pos + 3];
    if (length > bytes.size() - pos - 12) {
      throw IoError("cannot decode image " + name + ": PNG chunk at byte " + std::to_string(pos) +
                    " declares " + std::to_string(length) + " bytes, only " +
                    std::to_string(bytes.size() - pos - 12) + " follow (truncated or corrupt)");
    }
    const bool end = std::equal(bytes.begin() + pos + 4, bytes.begin() + pos + 8, "IEND");
    pos += 12 + length;
    if (end) return;
  }
}

// ---- JPEG: libjpeg-turbo ---------------------------------------------------------------------
// Debian 12's stb_image 2.27 reads out of bounds on a corrupt JPEG Huffman code (h->values[c] in
// stbi__jpeg_huff_decode, fixed upstream in 2.28), so no JPEG reaches stb: Debian's libjpeg-turbo
// decodes it instead. "JPEG" here is every input stb would take for one, not only the FF D8 FF
// of a well-formed file: stbi__get_marker reads 0xFF, skips further 0xFF fill bytes and takes
// the next byte as the marker, and after SOI stb skips any bytes up to the next marker, so
// FF D8 00 ... or FF FF D8 ... would reach stb's Huffman decoder too. libjpeg-turbo refuses
// what does not start with exactly FF D8.
bool is_jpeg(std::span<const uint8_t> bytes) {
  if (bytes.empty() || bytes[0] != 0xFF) return false;
  size_t i = 1;
  while (i < bytes.size() && bytes[i] == 0xFF) ++i;
  return i < bytes.size() && bytes[i] == 0xD8;
}

// A progressive JPEG may carry any number of scans, and each one passes over the whole
// coefficient buffer: a small file could keep the decoder busy for minutes. Encoders write
// about 10 (libjpeg's default progression) and never near this many.
constexpr int kMaxJpegScans = 100;

struct JpegErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg hands &pub back as cinfo->err
  std::jmp_buf jump;
  bool reading_header;  // jpeg_read_header is running (see jpeg_emit_message)
  bool corrupt;         // the message is a corrupt-data warning rather than an error
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo, bool corrupt) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  err->corrupt = corrupt;
  std::longjmp(err->jump, 1);
}

void jpeg_error_exit(j_common_ptr cinfo) { jpeg_fail(cinfo, false); }

// libjpeg reports corrupt data as a warning (level -1) and carries on: a truncated file is
// padded with an EOI ("Premature end of JPEG file"), a bad Huffman code gives zeros. Those
// images would be partly made up, so every warning is an error except the ones about metadata
// alone, and padding between the header's segments.
void jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level >= 0) return;  // trace messages
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  ++err->pub.num_warnings;
  switch (err->pub.msg_code) {
    case JWRN_ADOBE_XFORM:  // unknown Adobe colour transform: the colour space is guessed
    case JWRN_JFIF_MAJOR:   // unknown JFIF version
    case JWRN_BOGUS_ICC:    // bad ICC profile (only read on request, which we do not make)
      return;
    case JWRN_EXTRANEOUS_DATA:
      // Garbage bytes between header segments are harmless; after a scan they mean that the
      // entropy-coded data did not end where it should have.
      if (err->reading_header) return;
      break;
    default:
      break;
  }
  jpeg_fail(cinfo, true);
}

void jpeg_output_message(j_common_ptr) {}  // no stderr output from the library

void jpeg_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  const auto* dinfo = reinterpret_cast<j_decompress_ptr>(cinfo);
  if (dinfo->input_scan_number > kMaxJpegScans) {
    auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
    std::snprintf(err->message, sizeof err->message, "more than %d scans", kMaxJpegScans);
    err->corrupt = false;
    std::longjmp(err->jump, 1);
  }
}

enum class JpegOutcome {
  kDecoded,
  kFailed,            // err.message: a libjpeg error, or one of ours
  kCorrupt,           // err.message: a libjpeg corrupt-data warning
  kTooManyPixels,     // width, height
  kUnsupportedColor,  // components, color_space
  kOutOfMemory,
};

// Everything run_libjpeg works with lives here, outside its stack frame.
struct JpegJob {
  // In.
  const uint8_t* data;
  size_t size;
  size_t max_pixels;
  std::vector<uint8_t>* pixels;  // resized to width * height and filled
  // Out.
  JDIMENSION width;
  JDIMENSION height;
  int components;
  J_COLOR_SPACE color_space;
  // libjpeg's state.
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  jpeg_progress_mgr progress;
};

// CMYK as Adobe writes it (inverted: 255 = no ink) to luma, the way stb_image 2.27 did it:
// R = C * K / 255 (stbi__blinn_8x8), then the (77, 150, 29) / 256 weights used for every format.
void cmyk_row_to_gray(const JSAMPLE* cmyk, uint8_t* gray, size_t width) {
  auto blinn = [](unsigned x, unsigned y) {
    const unsigned t = x * y + 128;
    return (t + (t >> 8)) >> 8;
  };
  for (size_t i = 0; i < width; ++i, cmyk += 4) {
    const unsigned k = cmyk[3];
    gray[i] = static_cast<uint8_t>(
        (blinn(cmyk[0], k) * 77u + blinn(cmyk[1], k) * 150u + blinn(cmyk[2], k) * 29u) >> 8);
  }
}

bool resize_noexcept(std::vector<uint8_t>* v, size_t n) noexcept {
  try {
    v->resize(n);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// The one function that calls setjmp. libjpeg reports a fatal error by calling error_exit,
// which must not return, and an exception thrown through libjpeg's C frames is undefined
// behaviour; so error_exit (and emit_message and the progress monitor, see above) longjmp back
// here. longjmp skips destructors, so this function holds no C++ object that has one, and it
// keeps its state in *job rather than in locals (a local changed after setjmp is indeterminate
// after the longjmp). resize_noexcept's vector belongs to the caller.
JpegOutcome run_libjpeg(JpegJob* job) {
  jpeg_decompress_struct* const cinfo = &job->cinfo;
  cinfo->err = jpeg_std_error(&job->err.pub);
  job->err.pub.error_exit = jpeg_error_exit;
  job->err.pub.emit_message = jpeg_emit_message;
  job->err.pub.output_message = jpeg_output_message;
  job->err.reading_header = true;
  job->err.corrupt = false;
  job->err.message[0] = '\0';
  if (setjmp(job->err.jump)) {
    jpeg_destroy_decompress(cinfo);  // safe on a partly created object (cinfo->mem null)
    return job->err.corrupt ? JpegOutcome::kCorrupt : JpegOutcome::kFailed;
  }
  jpeg_create_decompress(cinfo);  // zeroes *cinfo but for err
  job->progress.progress_monitor = jpeg_progress;
  cinfo->progress = &job->progress;
  jpeg_mem_src(cinfo, job->data, job->size);
  jpeg_read_header(cinfo, TRUE);  // TRUE: a tables-only file is an error
  job->err.reading_header = false;

  job->width = cinfo->image_width;
  job->height = cinfo->image_height;
  job->components = cinfo->num_components;
  job->color_space = cinfo->jpeg_color_space;
  // Before jpeg_start_decompress, which allocates for the whole image.
  if (job->width == 0 || job->height == 0 ||
      static_cast<uint64_t>(job->width) * job->height > job->max_pixels) {
    jpeg_destroy_decompress(cinfo);
    return JpegOutcome::kTooManyPixels;
  }
  bool cmyk = false;
  switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE:
    case JCS_YCbCr:  // gray output is the Y channel: the JPEG's own luma, chroma not decoded
    case JCS_RGB:
      cinfo->out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_CMYK:
    case JCS_YCCK:  // libjpeg converts YCCK to CMYK; no gray output from either
      cinfo->out_color_space = JCS_CMYK;
      cmyk = true;
      break;
    default:
      jpeg_destroy_decompress(cinfo);
      return JpegOutcome::kUnsupportedColor;
  }
  jpeg_start_decompress(cinfo);
  if (cinfo->output_width != job->width || cinfo->output_height != job->height ||
      cinfo->output_components != (cmyk ? 4 : 1)) {
    std::snprintf(job->err.message, sizeof job->err.message,
                  "decoder output %ux%u with %d components", cinfo->output_width,
                  cinfo->output_height, cinfo->output_components);
    jpeg_destroy_decompress(cinfo);
    return JpegOutcome::kFailed;
  }
  const size_t width = cinfo->output_width;
  // Freed by jpeg_destroy_decompress, like all of libjpeg's pools.
  JSAMPARRAY cmyk_row =
      cmyk ? (*cinfo->mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(cinfo), JPOOL_IMAGE,
                                         static_cast<JDIMENSION>(width * 4), 1)
           : nullptr;
  if (!resize_noexcept(job->pixels, width * cinfo->output_height)) {
    jpeg_destroy_decompress(cinfo);
    return JpegOutcome::kOutOfMemory;
  }
  while (cinfo->output_scanline < cinfo->output_height) {
    uint8_t* const out = job->pixels->data() + cinfo->output_scanline * width;
    JSAMPROW row = cmyk ? cmyk_row[0] : out;
    // A memory source never suspends: 0 rows would be a libjpeg bug, not bad data.
    if (jpeg_read_scanlines(cinfo, &row, 1) != 1) {
      std::snprintf(job->err.message, sizeof job->err.message, "decoder stopped at row %u",
                    cinfo->output_scanline);
      jpeg_destroy_decompress(cinfo);
      return JpegOutcome::kFailed;
    }
    if (cmyk) cmyk_row_to_gray(row, out, width);
  }
  jpeg_finish_decompress(cinfo);  // reads up to EOI: a file missing it is truncated
  jpeg_destroy_decompress(cinfo);
  return JpegOutcome::kDecoded;
}

GrayImage decode_jpeg(std::span<const uint8_t> bytes, const std::string& name,
                      size_t max_pixels) {
  std::vector<uint8_t> pixels;
  JpegJob job{};  // zeroed: cinfo.mem is null until jpeg_create_decompress succeeds
  job.data = bytes.data();
  job.size = bytes.size();
  job.max_pixels = max_pixels;
  job.pixels = &pixels;
  const JpegOutcome outcome = run_libjpeg(&job);
  const std::string prefix = "cannot decode image " + name + ": ";
  const std::string libjpeg = std::string(" (libjpeg-turbo: ") + job.err.message + ")";
  switch (outcome) {
    case JpegOutcome::kDecoded:
      return GrayImage{static_cast<int>(job.width), static_cast<int>(job.height),
                       std::move(pixels)};
    case JpegOutcome::kFailed:
      throw IoError(prefix + "not a decodable JPEG" + libjpeg);
    case JpegOutcome::kCorrupt:
      throw IoError(prefix + "corrupt or truncated JPEG data" + libjpeg);
    case JpegOutcome::kTooManyPixels: {
      const uint64_t pixel_count = static_cast<uint64_t>(job.width) * job.height;
      throw IoError(prefix + "dimensions " + std::to_string(job.width) + "x" +
                    std::to_string(job.height) + " = " + std::to_string(pixel_count) +
                    " pixels, expected at most " + std::to_string(max_pixels));
    }
    case JpegOutcome::kUnsupportedColor:
      throw IoError(prefix + "JPEG with " + std::to_string(job.components) +
                    " colour components (libjpeg colour space " +
                    std::to_string(static_cast<int>(job.color_space)) +
                    ") is not supported: expected gray, YCbCr, RGB, CMYK or YCCK");
    case JpegOutcome::kOutOfMemory:
      throw IoError(prefix + "out of memory for " + std::to_string(job.width) + "x" +
                    std::to_string(job.height) + " pixels");
  }
  throw IoError(prefix + "JPEG decoder in an unknown state");
}

}  // namespace

GrayImage decode_image(std::span<const uint8_t> bytes, std::string_view name_for_errors,
                       size_t max_pixels) {
  const std::string name = in_quotes(name_for_errors);
  GrayImage pnm;
  if (decode_binary_pnm(bytes, name, max_pixels, pnm)) return pnm;
  if (is_jpeg(bytes)) return decode_jpeg(bytes, name, max_pixels);
  check_png_chunks(bytes, name);
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    throw IoError("cannot decode image " + name + ": " + std::to_string(bytes.size()) +
                  " bytes is more than stb_image accepts");
  }
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, channels = 0;
  // The header alone: refuse oversized images before the decoder allocates for them.
  if (!stbi_info_from_memory(data, length, &width, &height, &channels)) {
    throw IoError("cannot decode image " + name + ": not a supported image (" + stb_reason() + ")");
  }
  const size_t pixels = static_cast<size_t>(width) * static_cast<size_t>(height);
  if (width <= 0 || height <= 0 || pixels > max_pixels) {
    throw IoError("cannot decode image " + name + ": dimensions " + std::to_string(width) + "x" +
                  std::to_string(height) + " = " + std::to_string(pixels) +
                  " pixels, expected at most " + std::to_string(max_pixels));
  }
  // Decoded with the source's own channel count (req_comp 0) and converted here, which keeps
  // stb's channel-conversion code (the 16-bit one reads past its buffer in 2.27) out of the way.
  StbPixels decoded;
  int w = 0, h = 0, source_channels = 0;
  decoded.p = stbi_load_from_memory(data, length, &w, &h, &source_channels, 0);
  if (!decoded.p) {
    throw IoError("cannot decode image " + name + ": corrupt or truncated image data (" +
                  stb_reason() + ")");
  }
  if (w != width || h != height || source_channels < 1 || source_channels > 4) {
    throw IoError("cannot decode image " + name + ": header says " + std::to_string(width) + "x" +
                  std::to_string(height) + ", decoder produced " + std::to_string(w) + "x" +
                  std::to_string(h) + " with " + std::to_string(source_channels) + " channels");
  }
  GrayImage image{w, h, std::vector<uint8_t>(pixels)};
  const size_t n = static_cast<size_t>(source_channels);
  for (size_t i = 0; i < pixels; ++i) {
    const stbi_uc* px = decoded.p + n * i;
    // Colour to luma with stb's own weights (77, 150, 29)/256; alpha is the last channel of
    // 2- and 4-channel images.
    const unsigned gray = n >= 3 ? (px[0] * 77u + px[1] * 150u + px[2] * 29u) >> 8 : px[0];
    const unsigned alpha = (n == 2 || n == 4) ? px[n - 1] : 255u;
    // Transparent pixels go on white paper: gray * a + 255 * (1 - a), rounded.
    image.pixels[i] = static_cast<uint8_t>((gray * alpha + 255u * (255u - alpha) + 127u) / 255u);
  }
  return image;
}

GrayImage load_image(const std::filesystem::path& path, size_t max_pixels) {
  const std::vector<uint8_t> bytes = read_file_bytes(path, kMaxImageFileBytes);
  return decode_image(bytes, path.string(), max_pixels);
}

GrayImage resize_gray(const GrayImage& image, int width, int height) {
  if (width <= 0 || height <= 0) {
    throw std::invalid_argument("resize_gray: target size " + std::to_string(width) + "x" +
                                std::to_string(height) + " is not positive");
  }
  if (image.width <= 0 || image.height <= 0 ||
      image.pixels.size() != static_cast<size_t>(image.width) * image.height) {
    throw std::invalid_argument("resize_gray: source image " + std::to_string(image.width) + "x" +
                                std::to_string(image.height) + " with " +
                                std::to_string(image.pixels.size()) + " pixels is inconsistent");
  }
  const std::vector<Taps> x_taps = axis_taps(image.width, width);
  const std::vector<Taps> y_taps = axis_taps(image.height, height);

  // Horizontal pass into floats (source rows x target columns), then vertical with rounding.
  std::vector<float> rows(static_cast<size_t>(image.height) * width);
  for (int y = 0; y < image.height; ++y) {
    const uint8_t* src = image.pixels.data() + static_cast<size_t>(y) * image.width;
    for (int x = 0; x < width; ++x) {
      const Taps& t = x_taps[x];
      float sum = 0.0f;
      for (size_t k = 0; k < t.weights.size(); ++k) sum += t.weights[k] * src[t.first + k];
      rows[static_cast<size_t>(y) * width + x] = sum;
    }
  }
  GrayImage out{width, height, std::vector<uint8_t>(static_cast<size_t>(width) * height)};
  for (int y = 0; y < height; ++y) {
    const Taps& t = y_taps[y];
    for (int x = 0; x < width; ++x) {
      float sum = 0.0f;
      for (size_t k = 0; k < t.weights.size(); ++k) {
        sum += t.weights[k] * rows[(t.first + k) * width + x];
      }
      out.pixels[static_cast<size_t>(y) * width + x] =
          static_cast<uint8_t>(std::clamp(std::lround(sum), 0L, 255L));
    }
  }
  return out;
}

bool has_light_background(const GrayImage& image) {
  if (image.width <= 0 || image.height <= 0) return false;
  uint64_t sum = 0, n = 0;
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      if (y == 0 || y == image.height - 1 || x == 0 || x == image.width - 1) {
        sum += image.at(x, y);
        ++n;
      }
    }
  }
  return sum > 127 * n;
}

std::vector<uint8_t> prepare_for_model(const GrayImage& image, int width, int height,
                                       Invert invert) {
  // Decided on the source image: its border has the most pixels to judge the paper by.
  const bool do_invert =
      invert == Invert::kYes || (invert == Invert::kAuto && has_light_background(image));
  GrayImage resized = resize_gray(image, width, height);
  if (do_invert) {
    for (uint8_t& v : resized.pixels) v = static_cast<uint8_t>(255 - v);
  }
  return std::move(resized.pixels);
}

std::vector<uint8_t> encode_image(std::span<const uint8_t> pixels, int width, int height,
                                  int channels, ImageFormat format, int jpeg_quality) {
  if (width <= 0 || height <= 0 || channels < 1 || channels > 4 ||
      pixels.size() != static_cast<size_t>(width) * height * channels) {
    throw std::invalid_argument("encode_image: " + std::to_string(pixels.size()) +
                                " bytes do not hold a " + std::to_string(width) + "x" +
                                std::to_string(height) + " image with " +
                                std::to_string(channels) + " channels");
  }
  std::vector<uint8_t> out;
  auto append = [](void* context, void* data, int size) {
    auto* bytes = static_cast<std::vector<uint8_t>*>(context);
    const auto* p = static_cast<const uint8_t*>(data);
    bytes->insert(bytes->end(), p, p + size);
  };
  int ok = 0;
  switch (format) {
    case ImageFormat::kPng:
      ok = stbi_write_png_to_func(append, &out, width, height, channels, pixels.data(),
                                  width * channels);
      break;
    case ImageFormat::kBmp:
      ok = stbi_write_bmp_to_func(append, &out, width, height, channels, pixels.data());
      break;
    case ImageFormat::kJpeg:
      ok = stbi_write_jpg_to_func(append, &out, width, height, channels, pixels.data(),
                                  jpeg_quality);
      break;
  }
  if (!ok) throw IoError("encode_image: stb_image_write failed");
  return out;
}

}  // namespace simdnn
