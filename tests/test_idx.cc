#include <doctest/doctest.h>
#include <sys/resource.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "io_test_support.h"
#include "simdnn/gzip.h"
#include "simdnn/idx.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_idx {

using simdnn::Dataset;
using simdnn::ImageSet;
using simdnn::LabelSet;
using simdnn::test::contains;
using simdnn::test::io_error_message;
using simdnn::test::TempDir;
using simdnn::test::write_raw;

namespace {

void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
}

// Raw IDX images bytes with an arbitrary header and `data_bytes` bytes of pixels.
std::vector<uint8_t> raw_images(uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols,
                                size_t data_bytes) {
  std::vector<uint8_t> out;
  for (uint32_t v : {magic, count, rows, cols}) put_be32(out, v);
  for (size_t i = 0; i < data_bytes; ++i) out.push_back(static_cast<uint8_t>(i * 7));
  return out;
}

std::vector<uint8_t> raw_labels(uint32_t count, std::vector<uint8_t> labels) {
  std::vector<uint8_t> out;
  put_be32(out, simdnn::kIdxLabelsMagic);
  put_be32(out, count);
  out.insert(out.end(), labels.begin(), labels.end());
  return out;
}

ImageSet sample_images(size_t count, size_t rows, size_t cols) {
  ImageSet set{count, rows, cols, std::vector<uint8_t>(count * rows * cols)};
  for (size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = static_cast<uint8_t>(i * 31 + 5);
  return set;
}

// Peak resident set size of this process, in KiB.
long peak_rss_kib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

}  // namespace

TEST_CASE("idx: images and labels round trip, plain and gzip") {
  TempDir dir("idx-roundtrip");
  const ImageSet images = sample_images(7, 3, 5);
  const LabelSet labels{{0, 9, 3, 3, 1, 0, 8}};
  for (const char* suffix : {"", ".gz"}) {
    CAPTURE(suffix);
    const auto images_path = dir / (std::string("images-idx3-ubyte") + suffix);
    const auto labels_path = dir / (std::string("labels-idx1-ubyte") + suffix);
    simdnn::write_idx_images(images_path, images);
    simdnn::write_idx_labels(labels_path, labels);

    const std::vector<uint8_t> raw = simdnn::test::read_raw(images_path);
    REQUIRE(raw.size() >= 2);
    const bool gzipped = raw[0] == 0x1f && raw[1] == 0x8b;
    CHECK(gzipped == (std::string(suffix) == ".gz"));

    const ImageSet read = simdnn::read_idx_images(images_path);
    CHECK(read.count == 7);
    CHECK(read.rows == 3);
    CHECK(read.cols == 5);
    CHECK(read.pixels == images.pixels);
    CHECK(read.image(2)[0] == images.pixels[2 * 15]);
    CHECK(simdnn::read_idx_labels(labels_path).labels == labels.labels);
  }
  // Nothing but the four files: no temporaries left behind by the atomic writes.
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                      std::filesystem::directory_iterator()) == 4);
}

TEST_CASE("idx: load_mnist_dir finds every file spelling and checks the counts") {
  TempDir dir("idx-mnist-dir");
  simdnn::write_idx_images(dir / "train-images-idx3-ubyte.gz", sample_images(4, 2, 2));
  simdnn::write_idx_labels(dir / "train-labels-idx1-ubyte", LabelSet{{1, 2, 3, 4}});
  // The original MNIST download's dotted names.
  simdnn::write_idx_images(dir / "t10k-images.idx3-ubyte", sample_images(3, 2, 2));
  simdnn::write_idx_labels(dir / "t10k-labels.idx1-ubyte.gz", LabelSet{{5, 6}});

  const Dataset train = simdnn::load_mnist_dir(dir.path(), "train");
  CHECK(train.images.count == 4);
  CHECK(train.labels.labels == std::vector<uint8_t>{1, 2, 3, 4});

  const std::string mismatch = io_error_message([&] { simdnn::load_mnist_dir(dir.path(), "t10k"); });
  CHECK(contains(mismatch, "t10k-images.idx3-ubyte"));
  CHECK(contains(mismatch, "t10k-labels.idx1-ubyte.gz"));
  CHECK(contains(mismatch, "count"));
  CHECK(contains(mismatch, "3 images"));
  CHECK(contains(mismatch, "2 labels"));

  std::filesystem::remove(dir / "train-labels-idx1-ubyte");
  const std::string missing = io_error_message([&] { simdnn::load_mnist_dir(dir.path(), "train"); });
  CHECK(contains(missing, dir.path().string()));
  CHECK(contains(missing, "train-labels-idx1-ubyte.gz"));

  const std::string no_dir =
      io_error_message([&] { simdnn::load_mnist_dir(dir / "nowhere", "train"); });
  CHECK(contains(no_dir, "nowhere"));
  CHECK(contains(no_dir, "does not exist"));
  CHECK_THROWS_AS(simdnn::load_mnist_dir(dir.path(), "test"), std::invalid_argument);
}

TEST_CASE("idx: the installed Fashion-MNIST test split loads") {
  const std::filesystem::path dir = "/usr/share/datasets/fashion-mnist";
  if (!std::filesystem::exists(dir / "t10k-images-idx3-ubyte.gz")) {
    MESSAGE("skipped: " << dir << " is not installed (scripts/setup.sh installs it)");
    return;
  }
  const Dataset test = simdnn::load_mnist_dir(dir, "t10k");
  CHECK(test.images.count == 10000);
  CHECK(test.images.rows == 28);
  CHECK(test.images.cols == 28);
  CHECK(test.images.pixels.size() == 10000 * 28 * 28);
  REQUIRE(test.labels.count() == 10000);
  // The Fashion-MNIST test split is balanced: 1000 images of each of the 10 classes.
  std::array<int, 10> per_class{};
  for (uint8_t label : test.labels.labels) {
    REQUIRE(label < 10);
    ++per_class[label];
  }
  for (int n : per_class) CHECK(n == 1000);
}

TEST_CASE("idx: malformed image files are refused with the file and field named") {
  TempDir dir("idx-bad-images");
  const auto path = dir / "bad-images-idx3-ubyte";
  auto message_for = [&](const std::vector<uint8_t>& bytes) {
    write_raw(path, bytes);
    return io_error_message([&] { simdnn::read_idx_images(path); });
  };

  SUBCASE("wrong magic") {
    const std::string m = message_for(raw_images(simdnn::kIdxLabelsMagic, 1, 2, 2, 4));
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "magic"));
    CHECK(contains(m, "0x00000803"));
    CHECK(contains(m, "0x00000801"));
  }
  SUBCASE("truncated header") {
    std::vector<uint8_t> bytes = raw_images(simdnn::kIdxImagesMagic, 1, 2, 2, 4);
    bytes.resize(10);
    const std::string m = message_for(bytes);
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "truncated header"));
    CHECK(contains(m, "found 10"));
  }
  SUBCASE("truncated data") {
    const std::string m = message_for(raw_images(simdnn::kIdxImagesMagic, 3, 2, 2, 11));
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "truncated data"));
    CHECK(contains(m, "count 3 x rows 2 x cols 2"));
    CHECK(contains(m, "expected 28"));
  }
  SUBCASE("trailing bytes") {
    const std::string m = message_for(raw_images(simdnn::kIdxImagesMagic, 3, 2, 2, 13));
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "trailing bytes"));
  }
  SUBCASE("zero rows or cols") {
    CHECK(contains(message_for(raw_images(simdnn::kIdxImagesMagic, 3, 0, 2, 0)), "rows"));
    CHECK(contains(message_for(raw_images(simdnn::kIdxImagesMagic, 3, 2, 0, 0)), "cols"));
  }
  SUBCASE("huge count is rejected before allocating") {
    const std::string m = message_for(raw_images(simdnn::kIdxImagesMagic, 0xFFFFFFFF, 28, 28, 8));
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "count 4294967295"));
    CHECK(contains(m, "exceeds the limit"));
    const std::string overflow =
        message_for(raw_images(simdnn::kIdxImagesMagic, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 8));
    CHECK(contains(overflow, "overflows"));
  }
}

TEST_CASE("idx: malformed gzip image files are refused too") {
  TempDir dir("idx-bad-gz");
  const auto path = dir / "bad-images-idx3-ubyte.gz";
  auto message_for = [&](const std::vector<uint8_t>& bytes) {
    write_raw(path, bytes);
    return io_error_message([&] { simdnn::read_idx_images(path); });
  };
  SUBCASE("truncated data inside a complete gzip stream") {
    const std::string m =
        message_for(simdnn::gzip_compress(raw_images(simdnn::kIdxImagesMagic, 3, 2, 2, 11)));
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "truncated data"));
  }
  SUBCASE("trailing bytes inside the gzip stream") {
    const std::string m =
        message_for(simdnn::gzip_compress(raw_images(simdnn::kIdxImagesMagic, 3, 2, 2, 14)));
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "trailing bytes"));
  }
  SUBCASE("gzip stream cut short") {
    std::vector<uint8_t> gz =
        simdnn::gzip_compress(raw_images(simdnn::kIdxImagesMagic, 64, 28, 28, 64 * 784));
    gz.resize(gz.size() / 2);
    const std::string m = message_for(gz);
    CHECK(contains(m, path.string()));
    CHECK((contains(m, "gzip") || contains(m, "truncated")));
  }
  SUBCASE("a lying count does not allocate for it") {
    // 1,000,000 images of 28x28 = 784 MB is under the default limit, but only one image is
    // present: the reader must fail at the end of the stream without having reserved 784 MB.
    const long rss_before = peak_rss_kib();
    const std::string m =
        message_for(simdnn::gzip_compress(raw_images(simdnn::kIdxImagesMagic, 1000000, 28, 28, 784)));
    CHECK(contains(m, "truncated data"));
    CHECK(contains(m, "count 1000000"));
    CHECK(peak_rss_kib() - rss_before < 64 * 1024);
  }
  SUBCASE("a count over the limit is refused from the header") {
    const std::string m = message_for(
        simdnn::gzip_compress(raw_images(simdnn::kIdxImagesMagic, 0x7FFFFFFF, 28, 28, 784)));
    CHECK(contains(m, "exceeds the limit"));
  }
}

TEST_CASE("idx: malformed label files are refused with the file and field named") {
  TempDir dir("idx-bad-labels");
  const auto path = dir / "bad-labels-idx1-ubyte";
  auto message_for = [&](const std::vector<uint8_t>& bytes, size_t num_classes = 10) {
    write_raw(path, bytes);
    return io_error_message([&] { simdnn::read_idx_labels(path, num_classes); });
  };
  SUBCASE("label out of range names the index") {
    const std::string m = message_for(raw_labels(5, {1, 2, 9, 10, 200}));
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "index 3"));
    CHECK(contains(m, "found 10"));
    CHECK(contains(m, "< 10"));
    CHECK(contains(message_for(raw_labels(2, {0, 2}), 2), "index 1"));
  }
  SUBCASE("wrong magic: an images file given as labels") {
    const std::string m = message_for(raw_images(simdnn::kIdxImagesMagic, 1, 1, 1, 1));
    CHECK(contains(m, "magic"));
    CHECK(contains(m, "images file"));
  }
  SUBCASE("truncated header, truncated data, trailing bytes") {
    CHECK(contains(message_for({0, 0, 8}), "truncated header"));
    CHECK(contains(message_for(raw_labels(5, {1, 2})), "truncated data"));
    CHECK(contains(message_for(raw_labels(1, {1, 2})), "trailing bytes"));
  }
  SUBCASE("missing file") {
    const std::string m =
        io_error_message([&] { simdnn::read_idx_labels(dir / "no-such-labels-idx1-ubyte"); });
    CHECK(contains(m, "no-such-labels-idx1-ubyte"));
    CHECK(contains(m, "no such file"));
  }
}

TEST_CASE("idx: writers refuse inconsistent sets") {
  TempDir dir("idx-writer");
  ImageSet images = sample_images(2, 3, 3);
  images.pixels.pop_back();
  CHECK_THROWS_AS(simdnn::write_idx_images(dir / "x", images), std::invalid_argument);
  CHECK_THROWS_AS(simdnn::write_idx_images(dir / "x", ImageSet{0, 0, 3, {}}),
                  std::invalid_argument);
  CHECK_FALSE(std::filesystem::exists(dir / "x"));
  // An empty set is still a valid file.
  simdnn::write_idx_images(dir / "empty", ImageSet{0, 28, 28, {}});
  CHECK(simdnn::read_idx_images(dir / "empty").count == 0);
}

}  // namespace test_idx
