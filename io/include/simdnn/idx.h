// MNIST-format IDX files (http://yann.lecun.com/exdb/mnist/): unsigned-byte images and labels,
// plain or gzip-compressed.
//
// Layout, every header field a big-endian u32:
//   images: magic 0x00000803, count, rows, cols, then count*rows*cols pixel bytes
//   labels: magic 0x00000801, count, then count label bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string_view>
#include <vector>

namespace simdnn {

inline constexpr uint32_t kIdxImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension

// Upper bound on the data bytes of one IDX file. A .gz file's uncompressed size is unknown
// until it has been read, so a header's count is checked against this before reading, and the
// buffer grows only as data actually arrives. Fashion-MNIST train images are 47 MB.
inline constexpr size_t kDefaultMaxIdxBytes = size_t{1} << 30;

// `count` grayscale images of rows x cols pixels, image after image, each row-major.
// MNIST convention: 0 is background, 255 is full ink.
struct ImageSet {
  size_t count = 0;
  size_t rows = 0;
  size_t cols = 0;
  std::vector<uint8_t> pixels;  // count * rows * cols

  size_t pixels_per_image() const { return rows * cols; }
  std::span<const uint8_t> image(size_t i) const {
    return {pixels.data() + i * pixels_per_image(), pixels_per_image()};
  }
};

// Class indices, one per image.
struct LabelSet {
  std::vector<uint8_t> labels;
  size_t count() const { return labels.size(); }
};

struct Dataset {
  ImageSet images;
  LabelSet labels;  // labels.count() == images.count
};

// Reads an IDX3 unsigned-byte image file, plain or gzip (detected from the content, not the
// name). Throws IoError naming the path when the file is missing or unreadable, and DataError
// naming the path and the field when: the magic is wrong; rows or cols is 0; count*rows*cols
// overflows or exceeds max_data_bytes; the header or the data is short; there are bytes after
// the data; the gzip stream is corrupt, truncated, or followed by anything but another gzip
// member (trailing garbage, which gunzip only warns about, is refused).
ImageSet read_idx_images(const std::filesystem::path& path,
                         size_t max_data_bytes = kDefaultMaxIdxBytes);

// Reads an IDX1 unsigned-byte label file, plain or gzip. Besides the checks above, every label
// must be < num_classes; the error names the index and value of the first one that is not.
LabelSet read_idx_labels(const std::filesystem::path& path, size_t num_classes = 10,
                         size_t max_data_bytes = kDefaultMaxIdxBytes);

// Loads "<dir>/<split>-images-idx3-ubyte" and "<dir>/<split>-labels-idx1-ubyte", each optionally
// ending in ".gz"; the original MNIST download's "<split>-images.idx3-ubyte" spelling is
// accepted too. split is "train" or "t10k". Throws IoError when the directory or either file is
// missing (listing the names tried) or cannot be read (with the system's reason), DataError
// when either file is invalid or the image and label counts differ; std::invalid_argument for
// any other split. A file with a count of 0 is valid here; load_dataset (<simdnn/dataset.h>)
// refuses an empty set.
Dataset load_mnist_dir(const std::filesystem::path& dir, std::string_view split,
                       size_t num_classes = 10);

// Write IDX files atomically (see atomic_file.h); a path ending in ".gz" is gzip-compressed.
// Throw std::invalid_argument when the set is inconsistent (pixel count != count*rows*cols, a
// dimension above 2^32-1, rows or cols 0) and IoError when writing fails.
void write_idx_images(const std::filesystem::path& path, const ImageSet& images);
void write_idx_labels(const std::filesystem::path& path, const LabelSet& labels);

}  // namespace simdnn
