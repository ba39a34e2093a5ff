#include "simdnn/idx.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <climits>
#include <stdexcept>
#include <string>

#include "io_util.h"
#include "simdnn/atomic_file.h"
#include "simdnn/gzip.h"
#include "simdnn/io_error.h"

namespace simdnn {

using io_detail::checked_mul;
using io_detail::errno_text;
using io_detail::hex32;
using io_detail::in_quotes;

namespace {

// Reads a plain or gzip IDX file (gzip detected from its first two bytes, not its name).
// Decompression is done here with inflate() rather than zlib's gzread, which silently ignores
// anything after the last gzip member: a .gz with trailing garbage must be refused, not read.
// Several concatenated gzip members (what `cat a.gz b.gz` gives) are one stream, as for gunzip.
class IdxReader {
 public:
  IdxReader(const std::filesystem::path& path, const char* kind) : path_(path), kind_(kind) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      const int err = errno;
      throw IoError("cannot open IDX " + std::string(kind) + " file " + in_quotes(path) + ": " +
                    (err == ENOENT ? std::string("no such file") : errno_text(err)));
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd_);
      throw IoError("cannot open IDX " + std::string(kind) + " file " + in_quotes(path) +
                    ": not a regular file");
    }
    file_size_ = static_cast<size_t>(st.st_size);
    raw_.resize(size_t{1} << 17);
    while (in_end_ < 2 && fill()) {
    }
    gzip_ = in_end_ - in_pos_ >= 2 && raw_[in_pos_] == 0x1f && raw_[in_pos_ + 1] == 0x8b;
    if (gzip_) start_member();
  }
  ~IdxReader() {
    if (gzip_) inflateEnd(&z_);
    ::close(fd_);
  }
  IdxReader(const IdxReader&) = delete;
  IdxReader& operator=(const IdxReader&) = delete;

  // Reads up to n bytes; fewer only at the end of the data. Throws on I/O or gzip errors.
  size_t read(uint8_t* dst, size_t n) { return gzip_ ? inflate_into(dst, n) : copy_into(dst, n); }

  // Whether the file is uncompressed.
  bool plain() const { return !gzip_; }
  size_t file_size() const { return file_size_; }

  // Throws DataError "bad IDX <kind> file '<path>': <what>".
  [[noreturn]] void fail(const std::string& what) const {
    throw DataError("bad IDX " + std::string(kind_) + " file " + in_quotes(path_) + ": " + what);
  }

  const std::filesystem::path& path() const { return path_; }

 private:
  // Moves the unread bytes to the front of raw_ and reads more after them; false at the end
  // of the file.
  bool fill() {
    consumed_ += in_pos_;
    std::copy(raw_.begin() + static_cast<std::ptrdiff_t>(in_pos_),
              raw_.begin() + static_cast<std::ptrdiff_t>(in_end_), raw_.begin());
    in_end_ -= in_pos_;
    in_pos_ = 0;
    for (;;) {
      const ssize_t got = ::read(fd_, raw_.data() + in_end_, raw_.size() - in_end_);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0) {
        const int err = errno;
        throw IoError("cannot read IDX " + std::string(kind_) + " file " + in_quotes(path_) +
                      ": " + errno_text(err));
      }
      in_end_ += static_cast<size_t>(got);
      return got > 0;
    }
  }

  size_t copy_into(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n) {
      if (in_pos_ == in_end_ && !fill()) break;
      const size_t take = std::min(n - done, in_end_ - in_pos_);
      std::copy_n(raw_.data() + in_pos_, take, dst + done);
      in_pos_ += take;
      done += take;
    }
    return done;
  }

  void start_member() {
    z_ = z_stream{};
    // windowBits 15 + 16: a gzip wrapper only (a zlib or raw stream is not an IDX .gz).
    if (inflateInit2(&z_, 15 + 16) != Z_OK) throw IoError("inflateInit2 failed: out of memory");
  }

  size_t inflate_into(uint8_t* dst, size_t n) {
    size_t done = 0;
    while (done < n && !finished_) {
      if (in_pos_ == in_end_ && !fill()) {
        fail("truncated gzip stream: the file ends inside compressed data (" +
             std::to_string(file_size_) + " bytes)");
      }
      z_.next_in = raw_.data() + in_pos_;
      z_.avail_in = static_cast<uInt>(in_end_ - in_pos_);
      const size_t room = std::min<size_t>(n - done, size_t{1} << 30);
      z_.next_out = dst + done;
      z_.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&z_, Z_NO_FLUSH);
      in_pos_ = in_end_ - z_.avail_in;
      done += room - z_.avail_out;
      if (rc == Z_STREAM_END) {
        after_member();
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        fail(std::string("corrupt gzip stream: ") + (z_.msg ? z_.msg : "zlib error " + std::to_string(rc)));
      }
    }
    return done;
  }

  // At the end of a gzip member: the end of the file, another member, or garbage.
  void after_member() {
    const size_t member_end = consumed_ + in_pos_;
    while (in_end_ - in_pos_ < 2 && fill()) {
    }
    if (in_end_ == in_pos_) {
      finished_ = true;
      return;
    }
    if (in_end_ - in_pos_ < 2 || raw_[in_pos_] != 0x1f || raw_[in_pos_ + 1] != 0x8b) {
      fail("trailing garbage after the gzip stream: " + std::to_string(file_size_ - member_end) +
           " more bytes after the compressed data ends at byte " + std::to_string(member_end) +
           " (a damaged or appended-to file)");
    }
    inflateEnd(&z_);
    start_member();
  }

  std::filesystem::path path_;
  const char* kind_;
  int fd_ = -1;
  size_t file_size_ = 0;
  std::vector<uint8_t> raw_;
  size_t in_pos_ = 0, in_end_ = 0;
  size_t consumed_ = 0;  // file bytes before raw_[0]
  bool gzip_ = false;
  bool finished_ = false;
  z_stream z_{};
};

uint32_t load_be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

void store_be32(uint32_t v, uint8_t* p) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

std::string describe_magic(uint32_t magic) {
  if (magic == kIdxImagesMagic) return " (an IDX images file)";
  if (magic == kIdxLabelsMagic) return " (an IDX labels file)";
  if ((magic >> 16) == 0x1f8b) return " (gzip data inside the file: compressed twice?)";
  if ((magic >> 16) == 0 && (magic >> 8 & 0xFF) != 0x08) return " (IDX data that is not unsigned bytes)";
  return "";
}

void check_magic(IdxReader& in, uint32_t found, uint32_t expected, const char* meaning) {
  if (found != expected) {
    in.fail("magic number: expected " + hex32(expected) + " (" + meaning + "), found " +
            hex32(found) + describe_magic(found));
  }
}

// Reads the `data_bytes` that follow a `header_bytes` header and checks nothing follows them.
// `layout` describes the expected size for messages, e.g. "count 10000 x rows 28 x cols 28".
std::vector<uint8_t> read_idx_data(IdxReader& in, size_t header_bytes, size_t data_bytes,
                                   const std::string& layout, size_t max_data_bytes) {
  if (data_bytes > max_data_bytes) {
    in.fail("data size " + layout + " = " + std::to_string(data_bytes) +
            " bytes exceeds the limit of " + std::to_string(max_data_bytes) + " bytes");
  }
  if (in.plain()) {
    // Uncompressed: the exact size is known before anything is allocated.
    const size_t file_size = in.file_size();
    const size_t expected = header_bytes + data_bytes;
    if (file_size != expected) {
      in.fail(std::string(file_size < expected ? "truncated data" : "trailing bytes after the data") +
              ": file size expected " + std::to_string(expected) + " bytes (" +
              std::to_string(header_bytes) + "-byte header + " + layout + "), found " +
              std::to_string(file_size));
    }
  }
  // Compressed: grow with the data actually present, so a lying count cannot force a large
  // allocation before the stream runs out.
  constexpr size_t kChunk = size_t{4} << 20;
  std::vector<uint8_t> data;
  data.reserve(std::min(data_bytes, kChunk));
  size_t done = 0;
  while (done < data_bytes) {
    const size_t want = std::min(kChunk, data_bytes - done);
    data.resize(done + want);
    const size_t got = in.read(data.data() + done, want);
    done += got;
    if (got < want) {
      in.fail("truncated data: expected " + std::to_string(data_bytes) + " bytes after the " +
              std::to_string(header_bytes) + "-byte header (" + layout + "), found " +
              std::to_string(done));
    }
  }
  uint8_t extra[256];
  if (const size_t got = in.read(extra, sizeof extra); got > 0) {
    in.fail("trailing bytes after the data: expected " + std::to_string(data_bytes) +
            " data bytes (" + layout + "), found at least " + std::to_string(data_bytes + got));
  }
  return data;
}

std::vector<uint8_t> maybe_gzip(const std::filesystem::path& path, std::vector<uint8_t> bytes) {
  if (path.extension() == ".gz") return gzip_compress(bytes);
  return bytes;
}

uint32_t checked_u32(size_t v, const std::filesystem::path& path, const char* field) {
  if (v > UINT32_MAX) {
    throw std::invalid_argument("cannot write IDX file " + in_quotes(path) + ": " + field + " " +
                                std::to_string(v) + " does not fit the u32 header field");
  }
  return static_cast<uint32_t>(v);
}

}  // namespace

ImageSet read_idx_images(const std::filesystem::path& path, size_t max_data_bytes) {
  IdxReader in(path, "images");
  std::array<uint8_t, 16> header{};
  if (const size_t got = in.read(header.data(), header.size()); got < header.size()) {
    in.fail("truncated header: expected 16 bytes (magic, count, rows, cols), found " +
            std::to_string(got));
  }
  check_magic(in, load_be32(&header[0]), kIdxImagesMagic, "unsigned-byte images, 3 dimensions");
  ImageSet set;
  set.count = load_be32(&header[4]);
  set.rows = load_be32(&header[8]);
  set.cols = load_be32(&header[12]);
  if (set.rows == 0) in.fail("rows: expected > 0, found 0");
  if (set.cols == 0) in.fail("cols: expected > 0, found 0");
  const std::string layout = "count " + std::to_string(set.count) + " x rows " +
                             std::to_string(set.rows) + " x cols " + std::to_string(set.cols);
  size_t per_image = 0, data_bytes = 0;
  if (!checked_mul(set.rows, set.cols, &per_image) ||
      !checked_mul(set.count, per_image, &data_bytes)) {
    in.fail("data size " + layout + " overflows");
  }
  set.pixels = read_idx_data(in, header.size(), data_bytes, layout, max_data_bytes);
  return set;
}

LabelSet read_idx_labels(const std::filesystem::path& path, size_t num_classes,
                         size_t max_data_bytes) {
  IdxReader in(path, "labels");
  std::array<uint8_t, 8> header{};
  if (const size_t got = in.read(header.data(), header.size()); got < header.size()) {
    in.fail("truncated header: expected 8 bytes (magic, count), found " + std::to_string(got));
  }
  check_magic(in, load_be32(&header[0]), kIdxLabelsMagic, "unsigned-byte labels, 1 dimension");
  const size_t count = load_be32(&header[4]);
  LabelSet set;
  set.labels = read_idx_data(in, header.size(), count, "count " + std::to_string(count),
                             max_data_bytes);
  const auto bad = std::find_if(set.labels.begin(), set.labels.end(),
                                [&](uint8_t label) { return label >= num_classes; });
  if (bad != set.labels.end()) {
    in.fail("label at index " + std::to_string(bad - set.labels.begin()) + ": expected < " +
            std::to_string(num_classes) + " (num_classes), found " + std::to_string(*bad));
  }
  return set;
}

namespace {

// The first existing file among the MNIST spellings of "<split>-<kind>-idx<n>-ubyte[.gz]".
std::filesystem::path find_mnist_file(const std::filesystem::path& dir, std::string_view split,
                                      std::string_view kind, std::string_view idx) {
  const std::string s(split), k(kind), i(idx);
  const std::string stems[] = {s + "-" + k + "-" + i + "-ubyte", s + "-" + k + "." + i + "-ubyte"};
  std::string tried;
  for (const std::string& stem : stems) {
    for (const char* suffix : {"", ".gz"}) {
      const std::filesystem::path candidate = dir / (stem + suffix);
      std::error_code ec;
      if (std::filesystem::is_regular_file(candidate, ec)) return candidate;
      if (ec && ec != std::errc::no_such_file_or_directory) {
        throw IoError("load_mnist_dir: cannot read " + in_quotes(candidate) + ": " + ec.message());
      }
      tried += (tried.empty() ? "" : ", ") + stem + suffix;
    }
  }
  throw IoError("load_mnist_dir: no " + s + " " + k + " file in " + in_quotes(dir) + " (tried " +
                tried + ")");
}

}  // namespace

Dataset load_mnist_dir(const std::filesystem::path& dir, std::string_view split,
                       size_t num_classes) {
  if (split != "train" && split != "t10k") {
    throw std::invalid_argument("load_mnist_dir: split must be \"train\" or \"t10k\", got \"" +
                                std::string(split) + "\"");
  }
  io_detail::check_readable_directory(dir, "load_mnist_dir");
  const auto images_path = find_mnist_file(dir, split, "images", "idx3");
  const auto labels_path = find_mnist_file(dir, split, "labels", "idx1");
  Dataset data{read_idx_images(images_path), read_idx_labels(labels_path, num_classes)};
  if (data.images.count != data.labels.count()) {
    throw DataError("load_mnist_dir: count fields differ: " + in_quotes(images_path) + " has " +
                  std::to_string(data.images.count) + " images but " + in_quotes(labels_path) +
                  " has " + std::to_string(data.labels.count()) + " labels");
  }
  return data;
}

void write_idx_images(const std::filesystem::path& path, const ImageSet& images) {
  const uint32_t count = checked_u32(images.count, path, "count");
  const uint32_t rows = checked_u32(images.rows, path, "rows");
  const uint32_t cols = checked_u32(images.cols, path, "cols");
  if (rows == 0 || cols == 0) {
    throw std::invalid_argument("cannot write IDX images file " + in_quotes(path) +
                                ": rows and cols must be > 0");
  }
  size_t per_image = 0, expected = 0;
  if (!checked_mul(images.rows, images.cols, &per_image) ||
      !checked_mul(images.count, per_image, &expected) || images.pixels.size() != expected) {
    throw std::invalid_argument("cannot write IDX images file " + in_quotes(path) + ": " +
                                std::to_string(images.pixels.size()) +
                                " pixels, expected count x rows x cols = " +
                                std::to_string(images.count) + " x " +
                                std::to_string(images.rows) + " x " + std::to_string(images.cols));
  }
  std::vector<uint8_t> bytes(16 + images.pixels.size());
  store_be32(kIdxImagesMagic, &bytes[0]);
  store_be32(count, &bytes[4]);
  store_be32(rows, &bytes[8]);
  store_be32(cols, &bytes[12]);
  std::copy(images.pixels.begin(), images.pixels.end(), bytes.begin() + 16);
  write_file_atomically(path, maybe_gzip(path, std::move(bytes)));
}

void write_idx_labels(const std::filesystem::path& path, const LabelSet& labels) {
  const uint32_t count = checked_u32(labels.count(), path, "count");
  std::vector<uint8_t> bytes(8 + labels.labels.size());
  store_be32(kIdxLabelsMagic, &bytes[0]);
  store_be32(count, &bytes[4]);
  std::copy(labels.labels.begin(), labels.labels.end(), bytes.begin() + 8);
  write_file_atomically(path, maybe_gzip(path, std::move(bytes)));
}

}  // namespace simdnn
