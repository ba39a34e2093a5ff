// JPEG decoding with libjpeg-turbo (see is_jpeg for why stb_image decodes no JPEG).
#include "jpeg_decode.h"

// jpeglib.h needs FILE and size_t declared before it.
#include <cstdio>
#include <jerror.h>
#include <jpeglib.h>

#include <csetjmp>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "simdnn/io_error.h"

namespace simdnn::io_detail {

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

namespace {

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

}  // namespace

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
      throw DataError(prefix + "not a decodable JPEG" + libjpeg);
    case JpegOutcome::kCorrupt:
      throw DataError(prefix + "corrupt or truncated JPEG data" + libjpeg);
    case JpegOutcome::kTooManyPixels: {
      const uint64_t pixel_count = static_cast<uint64_t>(job.width) * job.height;
      throw DataError(prefix + "dimensions " + std::to_string(job.width) + "x" +
                    std::to_string(job.height) + " = " + std::to_string(pixel_count) +
                    " pixels, expected at most " + std::to_string(max_pixels));
    }
    case JpegOutcome::kUnsupportedColor:
      throw DataError(prefix + "JPEG with " + std::to_string(job.components) +
                    " colour components (libjpeg colour space " +
                    std::to_string(static_cast<int>(job.color_space)) +
                    ") is not supported: expected gray, YCbCr, RGB, CMYK or YCCK");
    case JpegOutcome::kOutOfMemory:
      throw IoError(prefix + "out of memory for " + std::to_string(job.width) + "x" +
                    std::to_string(job.height) + " pixels");
  }
  throw DataError(prefix + "JPEG decoder in an unknown state");
}

}  // namespace simdnn::io_detail
