// load_dataset (<simdnn/dataset.h>): the image-folder and CSV readers, format detection, and
// the refusals every format shares (empty split, sides a model cannot take); IDX files with
// trailing garbage after the gzip stream; DataError for contents, IoError for I/O.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "io_test_support.h"
#include "simdnn/dataset.h"
#include "simdnn/gzip.h"
#include "simdnn/idx.h"
#include "simdnn/image_ops.h"
#include "support/image_encode.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_dataset {

namespace fs = std::filesystem;
using simdnn::DataError;
using simdnn::DatasetFormat;
using simdnn::DatasetOptions;
using simdnn::IoError;
using simdnn::load_dataset;
using simdnn::test::contains;
using simdnn::test::TempDir;
using simdnn::test::write_raw;

namespace {

// A w x h gray image whose pixels encode (seed, index): every image of a test is distinct.
std::vector<uint8_t> pattern(int w, int h, int seed) {
  std::vector<uint8_t> px(static_cast<size_t>(w) * h);
  for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>((seed * 37 + i * 11) % 256);
  return px;
}

void write_png(const fs::path& path, int w, int h, int seed) {
  fs::create_directories(path.parent_path());
  write_raw(path, simdnn::encode_image(pattern(w, h, seed), w, h, 1, simdnn::ImageFormat::kPng));
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  write_raw(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// What load_dataset throws, with its exact type checked: DataError (contents) or a plain
// IoError (I/O).
template <class Expected, class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    const bool is_data = dynamic_cast<const DataError*>(&e) != nullptr;
    const bool is_io = dynamic_cast<const IoError*>(&e) != nullptr;
    if constexpr (std::is_same_v<Expected, DataError>) {
      CHECK_MESSAGE(is_data, "expected DataError, got: " << e.what());
    } else {
      CHECK_MESSAGE((is_io && !is_data), "expected a plain IoError, got: " << e.what());
    }
    return e.what();
  }
  FAIL("nothing was thrown");
  return {};
}

}  // namespace

TEST_CASE("dataset: an image folder is read with sorted class names, classes interleaved") {
  TempDir dir("dataset-folder");
  // Three classes of 2, 2 and 4 images, names deliberately not in creation order.
  const char* classes[] = {"shirt", "boot", "coat"};
  const int counts[] = {2, 2, 4};
  int seed = 0;
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < counts[c]; ++i) {
      write_png(dir / classes[c] / ("img" + std::to_string(i) + ".png"), 6, 5, seed++);
    }
  }
  write_text(dir / "coat" / "notes.txt", "not an image: skipped");
  write_png(dir / "coat" / ".hidden.png", 6, 5, 99);  // hidden: skipped

  const auto loaded = load_dataset(dir.path(), "train");
  REQUIRE(loaded);
  CHECK(loaded->format == DatasetFormat::kImageFolder);
  CHECK(loaded->class_names == std::vector<std::string>{"boot", "coat", "shirt"});
  const simdnn::Dataset& d = loaded->data;
  CHECK(d.images.count == 8);
  CHECK(d.images.rows == 5);
  CHECK(d.images.cols == 6);
  REQUIRE(d.labels.count() == 8);
  // Every image is its file's pixels, labelled by its folder: find each written image.
  seed = 0;
  for (int c = 0; c < 3; ++c) {
    const size_t label = c == 0 ? 2 : c == 1 ? 0 : 1;  // shirt, boot, coat
    for (int i = 0; i < counts[c]; ++i) {
      const std::vector<uint8_t> want = pattern(6, 5, seed++);
      size_t found = 0;
      for (size_t k = 0; k < d.images.count; ++k) {
        const auto img = d.images.image(k);
        if (std::equal(img.begin(), img.end(), want.begin())) {
          ++found;
          CHECK(d.labels.labels[k] == label);
        }
      }
      CHECK(found == 1);
    }
  }
  // Interleaved: the last quarter (a validation split) holds more than one class, and the
  // first three images are one of each class.
  CHECK(d.labels.labels[6] != d.labels.labels[7]);
  CHECK(std::set<uint8_t>(d.labels.labels.begin(), d.labels.labels.begin() + 3).size() == 3);
  // No train/ and test/: the whole folder is training data, there is no test split.
  CHECK_FALSE(load_dataset(dir.path(), "test"));
  // Deterministic.
  CHECK(load_dataset(dir.path(), "train")->data.images.pixels == d.images.pixels);
}

TEST_CASE("dataset: an image folder with train/ and test/ labels both by train's classes") {
  TempDir dir("dataset-split");
  write_png(dir / "train" / "a" / "1.png", 4, 4, 1);
  write_png(dir / "train" / "b" / "1.png", 4, 4, 2);
  write_png(dir / "train" / "c" / "1.png", 4, 4, 3);
  write_png(dir / "test" / "c" / "1.png", 4, 4, 4);  // test holds only class c
  const auto train = load_dataset(dir.path(), "train");
  const auto test = load_dataset(dir.path(), "t10k");
  REQUIRE(train);
  REQUIRE(test);
  CHECK(train->data.images.count == 3);
  CHECK(test->data.images.count == 1);
  CHECK(test->class_names == std::vector<std::string>{"a", "b", "c"});
  CHECK(test->data.labels.labels == std::vector<uint8_t>{2});

  // Given class names (a model's): labels follow them; a folder not among them is refused.
  DatasetOptions named;
  named.class_names = {"c", "b", "a", "d"};
  CHECK(load_dataset(dir.path(), "test", named)->data.labels.labels == std::vector<uint8_t>{0});
  write_png(dir / "test" / "zebra" / "1.png", 4, 4, 5);
  const std::string m = error_of<DataError>([&] { load_dataset(dir.path(), "test"); });
  CHECK(contains(m, "zebra"));
  CHECK(contains(m, "not one of the classes"));
}

TEST_CASE("dataset: image folders of mixed sizes are refused unless a size is given") {
  TempDir dir("dataset-mixed");
  write_png(dir / "a" / "1.png", 8, 8, 1);
  write_png(dir / "a" / "2.png", 8, 8, 2);
  write_png(dir / "b" / "odd.png", 10, 7, 3);
  const std::string m = error_of<DataError>([&] { load_dataset(dir.path(), "train"); });
  CHECK(contains(m, "odd.png"));
  CHECK(contains(m, "7x10"));
  CHECK(contains(m, "8x8"));

  DatasetOptions sized;
  sized.height = 4;
  sized.width = 6;
  const auto loaded = load_dataset(dir.path(), "train", sized);
  REQUIRE(loaded);
  CHECK(loaded->data.images.rows == 4);
  CHECK(loaded->data.images.cols == 6);
  CHECK(loaded->data.images.pixels.size() == 3 * 24);
  // The resize is resize_gray's.
  const simdnn::GrayImage odd{10, 7, pattern(10, 7, 3)};
  const simdnn::GrayImage small = simdnn::resize_gray(odd, 6, 4);
  bool found = false;
  for (size_t k = 0; k < 3; ++k) {
    const auto img = loaded->data.images.image(k);
    found = found || std::equal(img.begin(), img.end(), small.pixels.begin());
  }
  CHECK(found);
}

TEST_CASE("dataset: image folder limits: pixels before decoding, sides a model can take") {
  TempDir dir("dataset-limits");
  write_png(dir / "a" / "big.png", 64, 64, 1);
  DatasetOptions tight;
  tight.max_pixels = 1000;
  const std::string m = error_of<DataError>([&] { load_dataset(dir.path(), "train", tight); });
  CHECK(contains(m, "big.png"));
  CHECK(contains(m, "4096 pixels"));

  // A 1 x 5000 image: within the pixel limit, but no model file may declare a side of 5000.
  TempDir wide("dataset-wide");
  write_png(wide / "a" / "wide.png", 5000, 1, 1);
  const std::string w = error_of<DataError>([&] { load_dataset(wide.path(), "train"); });
  CHECK(contains(w, "1x5000"));
  CHECK(contains(w, std::to_string(simdnn::kMaxInputSide)));

  // A corrupt image names its file.
  TempDir corrupt("dataset-corrupt");
  write_png(corrupt / "a" / "good.png", 4, 4, 1);
  write_text(corrupt / "a" / "broken.png", "\x89PNG not really");
  CHECK(contains(error_of<DataError>([&] { load_dataset(corrupt.path(), "train"); }), "broken.png"));
}

TEST_CASE("dataset: CSV with and without a header line") {
  TempDir dir("dataset-csv");
  const std::string rows = "3,0,10,20,255\n1,1,2,3,4\r\n0,9,9,9,9\n\n";
  write_text(dir / "plain.csv", rows);
  write_text(dir / "header.csv", "label,pixel1,pixel2,pixel3,pixel4\n" + rows);
  for (const char* name : {"plain.csv", "header.csv"}) {
    CAPTURE(name);
    const auto loaded = load_dataset(dir / name, "train");
    REQUIRE(loaded);
    CHECK(loaded->format == DatasetFormat::kCsv);
    CHECK(loaded->class_names.empty());
    CHECK(loaded->data.images.count == 3);
    CHECK(loaded->data.images.rows == 2);  // 4 pixels: inferred 2x2
    CHECK(loaded->data.images.cols == 2);
    CHECK(loaded->data.labels.labels == std::vector<uint8_t>{3, 1, 0});
    CHECK(loaded->data.images.pixels ==
          std::vector<uint8_t>{0, 10, 20, 255, 1, 2, 3, 4, 9, 9, 9, 9});
    CHECK_FALSE(load_dataset(dir / name, "test"));  // a lone file: training split only
  }
  // A size given: 1x4.
  DatasetOptions sized;
  sized.height = 1;
  sized.width = 4;
  CHECK(load_dataset(dir / "plain.csv", "train", sized)->data.images.cols == 4);

  // DIR/train.csv and DIR/test.csv are the splits.
  write_text(dir / "split" / "train.csv", rows);
  write_text(dir / "split" / "test.csv", "2,1,1,1,1\n");
  CHECK(load_dataset(dir / "split", "train")->data.images.count == 3);
  const auto test = load_dataset(dir / "split", "test");
  REQUIRE(test);
  CHECK(test->data.labels.labels == std::vector<uint8_t>{2});
}

TEST_CASE("dataset: bad CSV cells are refused naming file, line and column") {
  TempDir dir("dataset-csv-bad");
  auto error_for = [&](const std::string& text, const DatasetOptions& o = {}) {
    write_text(dir / "bad.csv", text);
    const std::string m = error_of<DataError>([&] { load_dataset(dir / "bad.csv", "train", o); });
    CHECK(contains(m, "bad.csv"));
    return m;
  };
  std::string m = error_for("label,a,b,c,d\n1,0,0,0,0\n2,0,0,256,0\n");
  CHECK(contains(m, "line 3, column 4 (pixel 2)"));
  CHECK(contains(m, "\"256\""));
  m = error_for("1,0,0,0,0\n2,0,x,0,0\n");
  CHECK(contains(m, "line 2, column 3"));
  m = error_for("1,0,0,0,0\n2,0,0.5,0,0\n");
  CHECK(contains(m, "\"0.5\""));
  m = error_for("1,0,0,0,0\n2,0,0,0\n");
  CHECK(contains(m, "line 2 has 4 columns, expected 5"));
  m = error_for("1,0,0,0,0\n2,0,0,0,0,0\n");
  CHECK(contains(m, "line 2 has 6 columns, expected 5"));
  DatasetOptions ten;
  ten.num_classes = 10;
  m = error_for("1,0,0,0,0\n12,0,0,0,0\n", ten);
  CHECK(contains(m, "line 2, column 1 (label)"));
  CHECK(contains(m, "0..9"));
  m = error_for("1,0,0,0\n");
  CHECK(contains(m, "not a square"));
  m = error_for("1,0,0,0,0\n\n2,0,0,0,0\n");
  CHECK(contains(m, "line 2 is empty"));
  // Header only: an empty set.
  m = error_for("label,pixel1\n");
  CHECK(contains(m, "no images"));
  // 1 x 5000 pixels: a side no model may have.
  DatasetOptions wide;
  wide.height = 1;
  wide.width = 5000;
  std::string row = "1";
  for (int i = 0; i < 5000; ++i) row += ",0";
  m = error_for(row + "\n", wide);
  CHECK(contains(m, "1x5000"));
}

TEST_CASE("dataset: IDX directories, empty sets and what cannot be read") {
  TempDir dir("dataset-idx");
  simdnn::ImageSet images{2, 3, 3, std::vector<uint8_t>(18, 7)};
  simdnn::write_idx_images(dir / "train-images-idx3-ubyte.gz", images);
  simdnn::write_idx_labels(dir / "train-labels-idx1-ubyte", simdnn::LabelSet{{1, 4}});
  // An empty t10k set is a valid IDX file but no test set: refused, not "accuracy 0.0000".
  simdnn::write_idx_images(dir / "t10k-images-idx3-ubyte", simdnn::ImageSet{0, 3, 3, {}});
  simdnn::write_idx_labels(dir / "t10k-labels-idx1-ubyte", simdnn::LabelSet{});
  const auto train = load_dataset(dir.path(), "train");
  REQUIRE(train);
  CHECK(train->format == DatasetFormat::kIdx);
  CHECK(train->data.labels.labels == std::vector<uint8_t>{1, 4});
  std::string m = error_of<DataError>([&] { load_dataset(dir.path(), "test"); });
  CHECK(contains(m, dir.path().string()));
  CHECK(contains(m, "test split"));
  CHECK(contains(m, "no images"));
  // The images must be the size asked for (a model's).
  DatasetOptions sized;
  sized.height = sized.width = 28;
  CHECK(contains(error_of<DataError>([&] { load_dataset(dir.path(), "train", sized); }), "3x3"));

  // Missing: IoError. A file that is not a CSV, an empty directory: DataError.
  CHECK(contains(error_of<IoError>([&] { load_dataset(dir / "nowhere", "train"); }), "does not exist"));
  write_text(dir / "notes.txt", "hello");
  CHECK(contains(error_of<DataError>([&] { load_dataset(dir / "notes.txt", "train"); }), "not a .csv"));
  fs::create_directories(dir / "empty");
  CHECK(contains(error_of<DataError>([&] { load_dataset(dir / "empty", "train"); }), "no data set"));
  CHECK_THROWS_AS(load_dataset(dir.path(), "validation"), std::invalid_argument);
}

TEST_CASE("dataset: an unreadable data directory says so, with the system's reason") {
  // root reads a mode-000 directory anyway (CAP_DAC_OVERRIDE; CI runs as root): the permission
  // assertions are skipped there, the not-a-directory ones below still run.
  TempDir dir("dataset-unreadable");
  fs::create_directories(dir / "locked");
  simdnn::write_idx_images(dir / "locked" / "train-images-idx3-ubyte", simdnn::ImageSet{1, 2, 2, {1, 2, 3, 4}});
  simdnn::write_idx_labels(dir / "locked" / "train-labels-idx1-ubyte", simdnn::LabelSet{{0}});
  if (::geteuid() != 0) {
    REQUIRE(::chmod((dir / "locked").c_str(), 0) == 0);
    for (auto load : {+[](const fs::path& p) { load_dataset(p, "train"); },
                      +[](const fs::path& p) { simdnn::load_mnist_dir(p, "train"); }}) {
      const std::string m = error_of<IoError>([&] { load(dir / "locked"); });
      CHECK(contains(m, "locked"));
      CHECK(contains(m, "Permission denied"));
      CHECK_FALSE(contains(m, "no train images"));
    }
    ::chmod((dir / "locked").c_str(), 0755);
  }
  // A file where the directory should be: an I/O error naming it, not "no train images file".
  write_text(dir / "plainfile", "x");
  const std::string m = error_of<IoError>([&] { simdnn::load_mnist_dir(dir / "plainfile", "train"); });
  CHECK(contains(m, "not a directory"));
}

TEST_CASE("idx: a .gz with trailing garbage after the gzip stream is refused") {
  TempDir dir("idx-gz-garbage");
  simdnn::ImageSet images{3, 4, 4, std::vector<uint8_t>(48)};
  for (size_t i = 0; i < 48; ++i) images.pixels[i] = static_cast<uint8_t>(i * 5);
  simdnn::write_idx_images(dir / "good.gz", images);
  std::vector<uint8_t> bytes = simdnn::test::read_raw(dir / "good.gz");
  const size_t good_size = bytes.size();

  // Garbage appended: gunzip warns "trailing garbage ignored"; we refuse.
  for (const std::string& tail : {std::string("garbage"), std::string(1, '\0'), std::string("\x1f")}) {
    std::vector<uint8_t> bad = bytes;
    bad.insert(bad.end(), tail.begin(), tail.end());
    write_raw(dir / "bad.gz", bad);
    const std::string m = error_of<DataError>([&] { simdnn::read_idx_images(dir / "bad.gz"); });
    CHECK(contains(m, "bad.gz"));
    CHECK(contains(m, "trailing garbage"));
    CHECK(contains(m, std::to_string(good_size)));
  }

  // Two gzip members (cat a.gz b.gz) are one stream, as for gunzip: accepted.
  simdnn::write_idx_images(dir / "plain", images);
  const std::vector<uint8_t> plain = simdnn::test::read_raw(dir / "plain");
  std::vector<uint8_t> two = simdnn::gzip_compress(std::span(plain).first(20));
  const std::vector<uint8_t> second = simdnn::gzip_compress(std::span(plain).subspan(20));
  two.insert(two.end(), second.begin(), second.end());
  write_raw(dir / "two.gz", two);
  CHECK(simdnn::read_idx_images(dir / "two.gz").pixels == images.pixels);
  // ... and a cut-off second member is truncated data.
  two.resize(two.size() - 10);
  write_raw(dir / "cut.gz", two);
  CHECK(contains(error_of<DataError>([&] { simdnn::read_idx_images(dir / "cut.gz"); }), "truncated"));
}

}  // namespace test_dataset
