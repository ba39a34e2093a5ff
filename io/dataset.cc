// load_dataset: format detection, the image-folder and CSV readers, and the checks every
// format shares (a non-empty split, sides a model file can declare).
#include "simdnn/dataset.h"

#include <algorithm>
#include <charconv>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>

#include "io_util.h"
#include "simdnn/image_ops.h"
#include "simdnn/io_error.h"
#include "simdnn/read_file.h"

namespace simdnn {

namespace fs = std::filesystem;
using io_detail::checked_mul;
using io_detail::in_quotes;

const char* dataset_format_name(DatasetFormat format) {
  switch (format) {
    case DatasetFormat::kIdx: return "MNIST IDX";
    case DatasetFormat::kImageFolder: return "image folder";
    case DatasetFormat::kCsv: return "CSV";
  }
  return "unknown";
}

namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string size_text(size_t rows, size_t cols) {
  return std::to_string(rows) + "x" + std::to_string(cols);
}

// Whether `path` exists and is a regular file; IoError when that cannot be told (a parent
// without search permission, say), so that "cannot read" is not reported as "missing".
bool is_file(const fs::path& path) {
  std::error_code ec;
  const bool yes = fs::is_regular_file(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw IoError("cannot read " + in_quotes(path) + ": " + ec.message());
  }
  return yes;
}

// The names of the entries of `dir` that are directories (want_dirs) or regular files,
// sorted; hidden entries (".git", ".DS_Store") are skipped.
std::vector<std::string> sorted_entries(const fs::path& dir, bool want_dirs) {
  std::vector<std::string> names;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw IoError("cannot read the directory " + in_quotes(dir) + ": " + ec.message());
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code type_ec;
    const bool match = want_dirs ? it->is_directory(type_ec) : it->is_regular_file(type_ec);
    if (type_ec) {
      throw IoError("cannot read " + in_quotes(it->path()) + ": " + type_ec.message());
    }
    if (match) names.push_back(name);
  }
  if (ec) throw IoError("cannot read the directory " + in_quotes(dir) + ": " + ec.message());
  std::sort(names.begin(), names.end());
  return names;
}

// A side a model file could not declare is refused now rather than after training.
void check_sides(size_t rows, size_t cols, const std::string& where) {
  if (rows == 0 || cols == 0 || rows > kMaxInputSide || cols > kMaxInputSide) {
    throw DataError(where + ": images are " + size_text(rows, cols) +
                    " (height x width); a model's input sides must be 1.." +
                    std::to_string(kMaxInputSide));
  }
}

void check_options_size(const LoadedDataset& d, const DatasetOptions& o, const std::string& where) {
  if (o.height && o.width && (d.data.images.rows != o.height || d.data.images.cols != o.width)) {
    throw DataError(where + ": images are " + size_text(d.data.images.rows, d.data.images.cols) +
                    ", expected " + size_text(o.height, o.width));
  }
}

// ---- MNIST IDX --------------------------------------------------------------------------------

// Any IDX file of either split: a directory holding only t10k files is an evaluation set.
bool has_idx_files(const fs::path& dir) {
  for (const char* stem : {"train-images-idx3-ubyte", "train-images.idx3-ubyte",
                           "train-labels-idx1-ubyte", "train-labels.idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte",
                           "t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"}) {
    for (const char* suffix : {"", ".gz"}) {
      if (is_file(dir / (std::string(stem) + suffix))) return true;
    }
  }
  return false;
}

// ---- CSV --------------------------------------------------------------------------------------

class CsvReader {
 public:
  CsvReader(const fs::path& path, const DatasetOptions& options)
      : path_(path), options_(options), bytes_(read_file_bytes(path, kMaxCsvBytes)) {}

  LoadedDataset read() {
    LoadedDataset out;
    out.format = DatasetFormat::kCsv;
    out.files = {path_};
    ImageSet& images = out.data.images;
    std::vector<uint8_t>& labels = out.data.labels.labels;
    size_t pos = 0, line = 0, pixels = 0, first_data_line = 0;
    while (pos < bytes_.size()) {
      size_t end = pos;
      while (end < bytes_.size() && bytes_[end] != '\n') ++end;
      ++line;
      std::string_view text(reinterpret_cast<const char*>(bytes_.data()) + pos, end - pos);
      pos = end + 1;
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      if (text.find_first_not_of(" \t") == std::string_view::npos) {
        if (rest_is_blank(pos)) break;  // blank lines at the end of the file
        fail(line, "is empty");
      }
      if (line == 1 && !starts_with_number(text)) continue;  // a header line
      if (first_data_line == 0) {
        first_data_line = line;
        const size_t columns = static_cast<size_t>(std::count(text.begin(), text.end(), ',')) + 1;
        if (columns < 2) fail(line, "has 1 column, expected a label and at least one pixel");
        pixels = columns - 1;
        set_size(images, pixels, line);
      }
      parse_row(text, line, pixels, first_data_line, images.pixels, labels);
    }
    images.count = labels.size();
    if (first_data_line == 0) {
      images.rows = options_.height;
      images.cols = options_.width;
    }
    return out;
  }

 private:
  [[noreturn]] void fail(size_t line, const std::string& what) const {
    throw DataError("bad CSV file " + in_quotes(path_) + ": line " + std::to_string(line) + " " +
                    what);
  }
  [[noreturn]] void fail_cell(size_t line, size_t column, const std::string& what) const {
    throw DataError("bad CSV file " + in_quotes(path_) + ": line " + std::to_string(line) +
                    ", column " + std::to_string(column) +
                    (column == 1 ? " (label)" : " (pixel " + std::to_string(column - 2) + ")") +
                    ": " + what);
  }

  bool rest_is_blank(size_t pos) const {
    return std::all_of(bytes_.begin() + static_cast<std::ptrdiff_t>(std::min(pos, bytes_.size())),
                       bytes_.end(), [](uint8_t c) { return c == '\n' || c == '\r' || c == ' ' || c == '\t'; });
  }

  static std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  }

  // A header is recognised by its first field not being a number ("label", "class", ...).
  static bool starts_with_number(std::string_view text) {
    const std::string_view first = trim(text.substr(0, text.find(',')));
    double v = 0;
    const auto [ptr, ec] = std::from_chars(first.data(), first.data() + first.size(), v);
    return ec == std::errc() && ptr == first.data() + first.size() && !first.empty();
  }

  void set_size(ImageSet& images, size_t pixels, size_t line) const {
    if (options_.height && options_.width) {
      if (pixels != options_.height * options_.width) {
        fail(line, "has " + std::to_string(pixels) + " pixels, but the image size " +
                        size_text(options_.height, options_.width) + " needs " +
                        std::to_string(options_.height * options_.width));
      }
      images.rows = options_.height;
      images.cols = options_.width;
      return;
    }
    size_t side = 0;
    while ((side + 1) * (side + 1) <= pixels) ++side;
    if (side * side != pixels) {
      fail(line, "has " + std::to_string(pixels) +
                     " pixels, which is not a square: give the image size (height x width)");
    }
    images.rows = images.cols = side;
  }

  void parse_row(std::string_view text, size_t line, size_t pixels, size_t first_data_line,
                 std::vector<uint8_t>& out, std::vector<uint8_t>& labels) const {
    const size_t start = out.size();
    size_t column = 0;
    size_t field_begin = 0;
    for (;;) {
      const size_t comma = text.find(',', field_begin);
      const std::string_view field =
          trim(text.substr(field_begin, comma == std::string_view::npos ? comma : comma - field_begin));
      ++column;
      if (column > pixels + 1) {
        const size_t columns = static_cast<size_t>(std::count(text.begin(), text.end(), ',')) + 1;
        fail(line, "has " + std::to_string(columns) + " columns, expected " +
                       std::to_string(pixels + 1) + " (a label and " + std::to_string(pixels) +
                       " pixels, as on line " + std::to_string(first_data_line) + ")");
      }
      unsigned v = 0;
      const auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
      const unsigned limit = column == 1 ? static_cast<unsigned>(options_.num_classes) - 1 : 255;
      if (field.empty() || ec != std::errc() || ptr != field.data() + field.size() || v > limit) {
        std::string shown(field.substr(0, 24));
        if (field.size() > 24) shown += "...";
        fail_cell(line, column,
                  std::string(column == 1 ? "expected a class index" : "expected an integer") +
                      " 0.." + std::to_string(limit) + ", found \"" + shown + "\"");
      }
      if (column == 1) {
        labels.push_back(static_cast<uint8_t>(v));
      } else {
        out.push_back(static_cast<uint8_t>(v));
      }
      if (comma == std::string_view::npos) break;
      field_begin = comma + 1;
    }
    if (column != pixels + 1) {
      out.resize(start);
      fail(line, "has " + std::to_string(column) + " columns, expected " +
                     std::to_string(pixels + 1) + " (a label and " + std::to_string(pixels) +
                     " pixels, as on line " + std::to_string(first_data_line) + ")");
    }
  }

  fs::path path_;
  const DatasetOptions& options_;
  std::vector<uint8_t> bytes_;
};

// ---- Image folder -----------------------------------------------------------------------------

bool is_image_name(const std::string& name) {
  const std::string ext = lower(fs::path(name).extension().string());
  // Keras' image_dataset_from_directory list.
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp" || ext == ".gif";
}

// The images of `split_dir`/<class>/, labelled by `class_names`.
LoadedDataset load_image_folder(const fs::path& split_dir, std::vector<std::string> class_names,
                                const DatasetOptions& options) {
  if (class_names.size() > 256) {
    throw DataError("image folder " + in_quotes(split_dir) + ": " +
                    std::to_string(class_names.size()) + " classes, at most 256 are supported");
  }
  std::map<std::string, size_t> label_of;
  for (size_t i = 0; i < class_names.size(); ++i) label_of.emplace(class_names[i], i);

  struct Item {
    double position;  // where in the sequence: (index in its class + 0.5) / files in its class
    size_t label;
    fs::path path;
  };
  std::vector<Item> items;
  for (const std::string& folder : sorted_entries(split_dir, /*want_dirs=*/true)) {
    const auto it = label_of.find(folder);
    if (it == label_of.end()) {
      std::string known;
      for (const std::string& n : class_names) known += (known.empty() ? "" : ", ") + n;
      throw DataError("image folder " + in_quotes(split_dir) + ": class folder " +
                      in_quotes(folder) + " is not one of the classes (" + known + ")");
    }
    std::vector<std::string> files = sorted_entries(split_dir / folder, /*want_dirs=*/false);
    files.erase(std::remove_if(files.begin(), files.end(),
                               [](const std::string& f) { return !is_image_name(f); }),
                files.end());
    for (size_t i = 0; i < files.size(); ++i) {
      items.push_back({(static_cast<double>(i) + 0.5) / static_cast<double>(files.size()),
                       it->second, split_dir / folder / files[i]});
    }
  }
  // Each class spread evenly over the sequence (ties: by label, then by name), so that any
  // stretch of it, a validation split at the end say, holds the classes in proportion.
  std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) {
    return a.position != b.position ? a.position < b.position : a.label < b.label;
  });

  LoadedDataset out;
  out.format = DatasetFormat::kImageFolder;
  out.class_names = std::move(class_names);
  out.files = {split_dir};
  ImageSet& images = out.data.images;
  images.rows = options.height;
  images.cols = options.width;
  const bool resize = options.height && options.width;
  fs::path first;
  for (const Item& item : items) {
    const std::vector<uint8_t> bytes = read_file_bytes(item.path, kMaxImageFileBytes);
    GrayImage image = decode_image(bytes, item.path.string(), options.max_pixels);
    const auto h = static_cast<size_t>(image.height), w = static_cast<size_t>(image.width);
    if (resize) {
      if (h != options.height || w != options.width) {
        image = resize_gray(image, static_cast<int>(options.width), static_cast<int>(options.height));
      }
    } else if (first.empty()) {
      first = item.path;
      check_sides(h, w, in_quotes(item.path));
      images.rows = h;
      images.cols = w;
    } else if (h != images.rows || w != images.cols) {
      throw DataError("image folder " + in_quotes(split_dir) + ": " + in_quotes(item.path) +
                      " is " + size_text(h, w) + " (height x width) but " + in_quotes(first) +
                      " is " + size_text(images.rows, images.cols) +
                      ": all images must have one size, or give the size to resize them to");
    }
    size_t total = 0;
    if (!checked_mul(images.count + 1, images.rows * images.cols, &total) ||
        total > kDefaultMaxIdxBytes) {
      throw DataError("image folder " + in_quotes(split_dir) + ": more than " +
                      std::to_string(kDefaultMaxIdxBytes) + " bytes of pixels (at " +
                      in_quotes(item.path) + ")");
    }
    images.pixels.insert(images.pixels.end(), image.pixels.begin(), image.pixels.end());
    out.data.labels.labels.push_back(static_cast<uint8_t>(item.label));
    ++images.count;
  }
  return out;
}

}  // namespace

std::optional<LoadedDataset> load_dataset(const fs::path& path, std::string_view split,
                                          const DatasetOptions& options) {
  if (split == "t10k") split = "test";
  if (split != "train" && split != "test") {
    throw std::invalid_argument("load_dataset: split must be \"train\" or \"test\", got \"" +
                                std::string(split) + "\"");
  }
  if (options.num_classes == 0 || options.num_classes > 256) {
    throw std::invalid_argument("load_dataset: num_classes must be in 1..256");
  }
  if ((options.height == 0) != (options.width == 0)) {
    throw std::invalid_argument("load_dataset: give both height and width, or neither");
  }
  const bool train = split == "train";
  const std::string where = in_quotes(path);

  std::optional<LoadedDataset> out;
  std::error_code ec;
  const auto status = fs::status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    throw IoError("cannot read the data set " + where + ": " + ec.message());
  }
  if (!fs::exists(status)) throw IoError("the data set " + where + " does not exist");
  if (fs::is_regular_file(status)) {
    if (lower(path.extension().string()) != ".csv") {
      throw DataError("the data set " + where +
                      " is a file but not a .csv file: give a CSV file (label,pixel0,...) or a "
                      "directory (MNIST IDX files, train.csv, or one subfolder per class)");
    }
    if (!train) return std::nullopt;
    out = CsvReader(path, options).read();
  } else {
    io_detail::check_readable_directory(path, "cannot load the data set");
    if (has_idx_files(path)) {
      LoadedDataset d;
      d.format = DatasetFormat::kIdx;
      d.data = load_mnist_dir(path, train ? "train" : "t10k", options.num_classes);
      d.files = {path};
      out = std::move(d);
    } else if (is_file(path / "train.csv")) {
      const fs::path file = path / (train ? "train.csv" : "test.csv");
      if (!train && !is_file(file)) return std::nullopt;
      out = CsvReader(file, options).read();
    } else {
      const std::vector<std::string> folders = sorted_entries(path, /*want_dirs=*/true);
      const bool has_train = std::binary_search(folders.begin(), folders.end(), "train") &&
                             !sorted_entries(path / "train", /*want_dirs=*/true).empty();
      if (folders.empty()) {
        throw DataError("no data set in " + where +
                        ": expected MNIST IDX files (train-images-idx3-ubyte[.gz] and "
                        "train-labels-idx1-ubyte[.gz]), train.csv, or one subfolder per class "
                        "holding PNG/JPEG images");
      }
      std::vector<std::string> names = options.class_names;
      if (has_train) {
        if (names.empty()) names = sorted_entries(path / "train", /*want_dirs=*/true);
        const fs::path dir = path / split;
        if (!train && !std::binary_search(folders.begin(), folders.end(), "test")) {
          return std::nullopt;
        }
        out = load_image_folder(dir, std::move(names), options);
      } else {
        if (!train) return std::nullopt;
        if (names.empty()) names = folders;
        out = load_image_folder(path, std::move(names), options);
      }
    }
  }

  const std::string what = where + " (" + dataset_format_name(out->format) + ", " +
                           std::string(split) + " split)";
  if (out->data.images.count == 0) {
    throw DataError("the data set " + what + " has no images");
  }
  check_sides(out->data.images.rows, out->data.images.cols, "the data set " + what);
  check_options_size(*out, options, "the data set " + what);
  return out;
}

}  // namespace simdnn
