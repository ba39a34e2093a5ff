// export-data: turns the prediction store's labelled predictions (rows with feedback and a
// stored input, i.e. served with --store --store-inputs) into a training set, optionally merged
// with the original training data, with duplicates removed and a per-class summary.
//
//   export-data --store predictions.db --out DIR [--format idx|folder] [--model NAME]
//               [--model-version V] [--model-file MODEL] [--merge MNIST_DIR] [--class-names ...]
//               [--force] [--json]
//
// Rules (docs/api.md#export-data):
// - Input size: H x W from --model-file, else from --merge's images, else the most frequent
//   stored-input length that is a perfect square (side x side; ties: the one seen first). Rows
//   whose input has another length are skipped and counted, never fatal.
// - Labels: 0..classes-1, the classes being --class-names, the model's, or (neither given)
//   every label 0..255 that IDX can hold; rows with another label are skipped and counted.
// - Order: the store's rows (oldest first), then --merge's train images (appended).
// - De-duplication on the pixels: copies with the same label keep the first; copies with
//   conflicting labels keep the most frequent label (ties: the label seen first, so feedback
//   beats the original data on a 1-1 tie), at the position of the first copy with that label;
//   the other copies with that label count as duplicates, those with other labels as
//   conflicts, and the image is reported as a conflict.
// - Output: IDX (train-images-idx3-ubyte, train-labels-idx1-ubyte and, with --merge, --merge's
//   t10k files copied so that `train --data DIR` works and the test set stays the original) or
//   an image folder DIR/<class>/<request id>.png (merged images as train-<index>.png).
//   Written into a temporary directory beside DIR, synced, then renamed: DIR appears complete
//   or not at all. An existing DIR is refused unless --force (then swapped in one rename).
//
// Exit codes (tools/exit_codes.h): 0 written; 1 bad flags, DIR exists without --force;
// 2 bad data (not a prediction store, a bad model or merge set, nothing usable to export);
// 4 I/O failure.
#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "simdnn/idx.h"
#include "simdnn/io_error.h"
#include "simdnn/model.h"
#include "simdnn/png_encode.h"
#include "simdnn/prediction_store.h"
#include "tools/directory_publish.h"
#include "tools/exit_codes.h"
#include "tools/tool_inputs.h"
#include "tools/tool_version.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using simdnn::tools::UsageError;

namespace {

constexpr const char* kTool = "export-data";

struct Options {
  std::string store;
  std::string out;
  std::string format = "idx";
  std::string model;
  std::string version;
  std::string model_file;
  std::string merge;
  std::string class_names;
  bool force = false;
  bool json = false;
};

// One labelled image before de-duplication.
struct Sample {
  bool from_feedback = true;
  int32_t label = 0;
  size_t offset = 0;       // into the pixel pool
  std::string name;        // request id (feedback) or "train-<index>" (merge)
  int64_t row_id = -1;     // the store's row id (feedback)
};

struct ClassCounts {
  size_t feedback = 0;    // kept, from the store
  size_t merge = 0;       // kept, from --merge
  size_t duplicates = 0;  // identical image and label, dropped
  size_t conflicts = 0;   // dropped because the same image had another, more frequent label
};

struct Conflict {
  std::string kept;                       // the name of the kept copy
  int32_t kept_label = 0;
  std::map<int32_t, size_t> label_counts;
};

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<std::string> parse_class_names(const std::string& flag) {
  if (flag == "fashion") return simdnn::fashion_mnist_class_names();
  if (flag == "digits") return simdnn::digit_class_names();
  std::vector<std::string> names = split_commas(flag);
  if (names.size() < 2 || names.size() > 256) {
    throw UsageError("--class-names: give fashion, digits or 2..256 comma-separated names");
  }
  for (const std::string& n : names) {
    if (n.empty()) throw UsageError("--class-names: an empty class name in \"" + flag + "\"");
  }
  return names;
}

// A file or folder name from free text (request ids and class names come from users): letters,
// digits, '-', '_' and '.' are kept, anything else ('/', spaces, '#') becomes '_', a leading '.'
// too (no hidden files, no "..") and the length is capped.
std::string safe_name(std::string_view text) {
  std::string out;
  for (char ch : text.substr(0, 120)) {
    const auto c = static_cast<unsigned char>(ch);
    out += std::isalnum(c) || c == '-' || c == '_' || c == '.' ? ch : '_';
  }
  if (out.empty() || out[0] == '.') out.insert(out.begin(), '_');
  return out;
}

void write_bytes(const fs::path& path, const std::vector<uint8_t>& bytes) {
  // O_EXCL: a name is used once; the whole tree is synced by sync_tree() before it is published.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw simdnn::IoError(path.string() + ": cannot create: " + std::strerror(errno));
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int err = errno;
      ::close(fd);
      throw simdnn::IoError(path.string() + ": write failed: " + std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0) {
    throw simdnn::IoError(path.string() + ": close failed: " + std::strerror(errno));
  }
}

int run(const Options& o) {
  fs::path out = fs::path(o.out).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" -> "dir"
  if (out.empty() || out == "." || out == "..") throw UsageError("--out: give a directory name");
  std::error_code ec;
  const bool out_exists = fs::exists(fs::symlink_status(out, ec));
  if (out_exists && !o.force) {
    throw UsageError("--out " + out.string() + " exists (give --force to replace it)");
  }
  if (out_exists && !fs::is_directory(fs::symlink_status(out, ec))) {
    throw UsageError("--out " + out.string() + " exists and is not a directory");
  }
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) {
    throw simdnn::IoError("--out " + out.string() + ": the directory " + parent.string() +
                          " does not exist");
  }

  // Classes and input size from the flags, the model and the merge set.
  std::optional<std::vector<std::string>> class_names;
  if (!o.class_names.empty()) class_names = parse_class_names(o.class_names);
  std::optional<std::pair<size_t, size_t>> size;  // rows, cols
  std::string size_from;
  if (!o.model_file.empty()) {
    const simdnn::Model model = simdnn::tools::load_model_file(o.model_file).model;
    const auto& info = model.info();
    size = {info.input_height, info.input_width};
    size_from = "--model-file";
    if (class_names && *class_names != info.class_names) {
      throw UsageError("--class-names differ from the class names of " + o.model_file);
    }
    class_names = info.class_names;
  }
  // Without names, any label IDX can hold is a class; folder names are then the label numbers.
  const size_t num_classes = class_names ? class_names->size() : 256;

  std::optional<simdnn::Dataset> merge_train, merge_test;
  if (!o.merge.empty()) {
    merge_train = simdnn::tools::load_labelled_data(o.merge, "train", num_classes);
    const auto& im = merge_train->images;
    if (size && (size->first != im.rows || size->second != im.cols)) {
      throw simdnn::DataError(o.merge + ": images are " + std::to_string(im.rows) + "x" +
                              std::to_string(im.cols) + " but the model takes " +
                              std::to_string(size->first) + "x" + std::to_string(size->second));
    }
    if (!size) {
      size = {im.rows, im.cols};
      size_from = "--merge";
    }
    // The test split travels with an IDX export so that `train --data OUT` finds one; it is the
    // original test set, never mixed with feedback.
    bool has_test = false;
    for (const auto& e : fs::directory_iterator(o.merge, ec)) {
      has_test = has_test || e.path().filename().string().rfind("t10k-", 0) == 0;
    }
    if (has_test && o.format == "idx") {
      merge_test = simdnn::tools::load_labelled_data(o.merge, "t10k", num_classes);
      if (merge_test->images.rows != im.rows || merge_test->images.cols != im.cols) {
        throw simdnn::DataError(o.merge + ": t10k images are " +
                                std::to_string(merge_test->images.rows) + "x" +
                                std::to_string(merge_test->images.cols) + ", train images " +
                                std::to_string(im.rows) + "x" + std::to_string(im.cols));
      }
    }
  }

  // The store's labelled rows, read once into memory (their inputs are small: one byte a pixel).
  std::vector<simdnn::LabelledPrediction> rows;
  if (::access(o.store.c_str(), R_OK) != 0) {
    throw simdnn::IoError(o.store + ": cannot read the prediction store: " + std::strerror(errno));
  }
  size_t without_input = 0;
  try {
    simdnn::for_each_labelled_prediction(
        o.store, {o.model, o.version}, [&](const simdnn::LabelledPrediction& r) {
          if (r.input.empty()) {
            ++without_input;
          } else {
            rows.push_back(r);
          }
        });
  } catch (const simdnn::StoreError& e) {
    // The file is readable (checked above): what fails is its contents.
    throw simdnn::DataError(e.what());
  }
  const size_t labelled_rows = rows.size() + without_input;

  if (!size) {
    // The most frequent square input length; ties go to the length seen first.
    std::vector<std::pair<size_t, size_t>> counts;  // (length, rows), in first-seen order
    for (const auto& r : rows) {
      const size_t n = r.input.size();
      const auto side = static_cast<size_t>(std::llround(std::sqrt(static_cast<double>(n))));
      if (side * side != n) continue;
      auto it = std::find_if(counts.begin(), counts.end(), [n](const auto& c) { return c.first == n; });
      if (it == counts.end()) counts.emplace_back(n, 1);
      else ++it->second;
    }
    const auto best = std::max_element(counts.begin(), counts.end(), [](const auto& a, const auto& b) {
      return a.second < b.second;  // max_element keeps the first of equal maxima
    });
    if (best == counts.end()) {
      throw simdnn::DataError(o.store + ": no labelled row with a stored input of a square size (" +
                              std::to_string(labelled_rows) + " labelled, " +
                              std::to_string(without_input) +
                              " without an input); give --model-file for the input size");
    }
    const auto side = static_cast<size_t>(std::llround(std::sqrt(static_cast<double>(best->first))));
    size = {side, side};
    size_from = "stored inputs";
  }
  const size_t pixels = size->first * size->second;

  // Every usable sample's pixels in one pool; views into it key the de-duplication.
  std::vector<uint8_t> pool;
  std::vector<Sample> samples;
  size_t size_mismatch = 0, bad_label = 0;
  for (const auto& r : rows) {
    if (r.input.size() != pixels) {
      ++size_mismatch;
      continue;
    }
    if (r.label < 0 || static_cast<size_t>(r.label) >= num_classes) {
      ++bad_label;
      continue;
    }
    samples.push_back({true, r.label, pool.size(), r.request_id, r.id});
    pool.insert(pool.end(), r.input.begin(), r.input.end());
  }
  rows.clear();
  rows.shrink_to_fit();
  const size_t merge_rows = merge_train ? merge_train->images.count : 0;
  if (merge_train) {
    pool.reserve(pool.size() + merge_train->images.pixels.size());
    for (size_t i = 0; i < merge_rows; ++i) {
      const auto img = merge_train->images.image(i);
      samples.push_back({false, merge_train->labels.labels[i], pool.size(),
                         "train-" + std::to_string(i), -1});
      pool.insert(pool.end(), img.begin(), img.end());
    }
    merge_train.reset();
  }

  // De-duplication: group identical images (first-seen order), then keep one per group.
  std::unordered_map<std::string_view, size_t> group_of_pixels;
  group_of_pixels.reserve(samples.size());
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < samples.size(); ++i) {
    const std::string_view key(reinterpret_cast<const char*>(pool.data() + samples[i].offset), pixels);
    const auto [it, inserted] = group_of_pixels.try_emplace(key, groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  std::vector<ClassCounts> per_class(num_classes);
  std::vector<size_t> kept;
  kept.reserve(groups.size());
  std::vector<Conflict> conflicts;
  size_t conflict_images = 0, duplicates = 0, conflicts_dropped = 0;
  for (const auto& g : groups) {
    // label -> (count, first position in the group)
    std::map<int32_t, std::pair<size_t, size_t>> labels;
    for (size_t k = 0; k < g.size(); ++k) {
      auto [it, inserted] = labels.try_emplace(samples[g[k]].label, 0, k);
      ++it->second.first;
    }
    auto winner = labels.begin();
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      const bool more = it->second.first > winner->second.first;
      const bool tie_earlier =
          it->second.first == winner->second.first && it->second.second < winner->second.second;
      if (more || tie_earlier) winner = it;
    }
    const int32_t keep_label = winner->first;
    const size_t keep = g[winner->second.second];
    kept.push_back(keep);
    for (size_t idx : g) {
      if (idx == keep) continue;
      if (samples[idx].label == keep_label) {
        ++per_class[samples[idx].label].duplicates;
        ++duplicates;
      } else {
        ++per_class[samples[idx].label].conflicts;
        ++conflicts_dropped;
      }
    }
    if (labels.size() > 1) {
      ++conflict_images;
      Conflict c{samples[keep].name, keep_label, {}};
      for (const auto& [label, count_first] : labels) c.label_counts[label] = count_first.first;
      conflicts.push_back(std::move(c));
    }
  }
  // The kept copies in sample order: store rows first, then the merged set.
  std::sort(kept.begin(), kept.end());
  for (size_t idx : kept) {
    auto& pc = per_class[samples[idx].label];
    (samples[idx].from_feedback ? pc.feedback : pc.merge)++;
  }
  if (kept.empty()) {
    throw simdnn::DataError(o.store + ": nothing to export: " + std::to_string(labelled_rows) +
                            " labelled rows, " + std::to_string(without_input) +
                            " without a stored input (serve --store-inputs), " +
                            std::to_string(size_mismatch) + " of another input size, " +
                            std::to_string(bad_label) + " with a label out of range");
  }

  // Write into a temporary directory beside --out, sync, then rename.
  const fs::path tmp = parent / ("." + out.filename().string() + ".tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  simdnn::tools::TempDirGuard guard(tmp);
  if (!fs::create_directory(tmp, ec)) {
    throw simdnn::IoError(tmp.string() + ": cannot create: " + ec.message());
  }
  std::vector<std::string> folder_names;
  for (size_t c = 0; c < num_classes; ++c) {
    folder_names.push_back(class_names ? safe_name((*class_names)[c]) : std::to_string(c));
  }
  if (o.format == "idx") {
    simdnn::ImageSet images;
    images.count = kept.size();
    images.rows = size->first;
    images.cols = size->second;
    images.pixels.reserve(kept.size() * pixels);
    simdnn::LabelSet labels;
    for (size_t idx : kept) {
      const uint8_t* p = pool.data() + samples[idx].offset;
      images.pixels.insert(images.pixels.end(), p, p + pixels);
      labels.labels.push_back(static_cast<uint8_t>(samples[idx].label));
    }
    simdnn::write_idx_images(tmp / "train-images-idx3-ubyte", images);
    simdnn::write_idx_labels(tmp / "train-labels-idx1-ubyte", labels);
    if (merge_test) {
      simdnn::write_idx_images(tmp / "t10k-images-idx3-ubyte", merge_test->images);
      simdnn::write_idx_labels(tmp / "t10k-labels-idx1-ubyte", merge_test->labels);
    }
  } else {
    // Two class names may map to one folder name after safe_name ("a/b", "a_b").
    std::vector<std::string> sorted = folder_names;
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      throw UsageError("two class names give the same folder name; pick other --class-names");
    }
    std::vector<bool> made(num_classes, false);
    simdnn::RgbImage picture(size->second, size->first);
    for (size_t idx : kept) {
      const Sample& s = samples[idx];
      const fs::path folder = tmp / folder_names[s.label];
      if (!made[s.label]) {
        fs::create_directory(folder, ec);
        if (ec) throw simdnn::IoError(folder.string() + ": cannot create: " + ec.message());
        made[s.label] = true;
      }
      const uint8_t* p = pool.data() + s.offset;
      for (size_t i = 0; i < pixels; ++i) {
        uint8_t* rgb = picture.pixels.data() + i * 3;
        rgb[0] = rgb[1] = rgb[2] = p[i];
      }
      // Request ids are unique per prediction but not after safe_name(), and a batch row's id
      // ("id#1") or a re-sent id may repeat: then the store's row id makes the name unique.
      fs::path file = folder / (safe_name(s.name) + ".png");
      if (fs::exists(file, ec)) file = folder / (safe_name(s.name) + "-row" + std::to_string(s.row_id) + ".png");
      write_bytes(file, simdnn::encode_png(picture));
    }
  }
  simdnn::tools::sync_tree(tmp);
  if (out_exists) {
    simdnn::tools::exchange_directories(tmp, out);  // tmp now holds the old --out: removed
  } else {
    simdnn::tools::publish_directory(tmp, out);
    guard.release();
  }

  // The report.
  json report;
  report["out"] = out.string();
  report["format"] = o.format;
  report["input_height"] = size->first;
  report["input_width"] = size->second;
  report["input_size_from"] = size_from;
  report["labelled_rows"] = labelled_rows;
  report["skipped_without_input"] = without_input;
  report["skipped_size_mismatch"] = size_mismatch;
  report["skipped_bad_label"] = bad_label;
  report["merge_rows"] = merge_rows;
  report["test_copied"] = merge_test ? merge_test->images.count : 0;
  report["duplicates_dropped"] = duplicates;
  report["conflicting_images"] = conflict_images;
  report["conflicts_dropped"] = conflicts_dropped;
  report["written"] = kept.size();
  json classes = json::array();
  for (size_t c = 0; c < num_classes; ++c) {
    const ClassCounts& pc = per_class[c];
    if (!class_names && pc.feedback + pc.merge + pc.duplicates + pc.conflicts == 0) continue;
    classes.push_back({{"class", c},
                       {"name", class_names ? (*class_names)[c] : std::to_string(c)},
                       {"folder", folder_names[c]},
                       {"from_feedback", pc.feedback},
                       {"from_merge", pc.merge},
                       {"total", pc.feedback + pc.merge},
                       {"duplicates_dropped", pc.duplicates},
                       {"conflicts_dropped", pc.conflicts}});
  }
  report["classes"] = classes;
  json conflict_list = json::array();
  for (size_t i = 0; i < conflicts.size() && i < 100; ++i) {
    json counts = json::object();
    for (const auto& [label, n] : conflicts[i].label_counts) counts[std::to_string(label)] = n;
    conflict_list.push_back(
        {{"kept", conflicts[i].kept}, {"kept_label", conflicts[i].kept_label}, {"labels", counts}});
  }
  report["conflicts"] = conflict_list;  // the first 100

  if (o.json) {
    std::printf("%s\n", report.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
    return 0;
  }
  std::printf("exported %zu images (%zux%zu, input size from %s) to %s (%s)\n", kept.size(),
              size->first, size->second, size_from.c_str(), out.string().c_str(), o.format.c_str());
  std::printf("store: %zu labelled rows, skipped %zu without a stored input, %zu of another "
              "size, %zu with a label out of range\n",
              labelled_rows, without_input, size_mismatch, bad_label);
  if (!o.merge.empty()) {
    std::printf("merge: %zu train images from %s", merge_rows, o.merge.c_str());
    if (merge_test) std::printf(", %zu t10k images copied", merge_test->images.count);
    std::printf("\n");
  }
  std::printf("duplicates dropped: %zu, images with conflicting labels: %zu (%zu copies "
              "dropped, the most frequent label kept)\n",
              duplicates, conflict_images, conflicts_dropped);
  std::printf("\n%5s  %-20s %9s %9s %9s %11s %10s\n", "class", "name", "feedback", "merge",
              "total", "duplicates", "conflicts");
  for (const auto& c : classes) {
    std::printf("%5zu  %-20s %9zu %9zu %9zu %11zu %10zu\n", c["class"].get<size_t>(),
                c["name"].get<std::string>().c_str(), c["from_feedback"].get<size_t>(),
                c["from_merge"].get<size_t>(), c["total"].get<size_t>(),
                c["duplicates_dropped"].get<size_t>(), c["conflicts_dropped"].get<size_t>());
  }
  return 0;
}

constexpr const char* kFooter = R"(
The store's rows that have feedback AND a stored input (serve --store FILE --store-inputs)
become labelled images. The input size is taken from --model-file, else from --merge's images,
else it is the most frequent stored-input length that is a square (side x side); rows of
another size are skipped and counted. Identical images are kept once; when their labels
disagree, the most frequent label wins (ties: the first seen; store rows come before merged
ones) and the image is reported as a conflict.

--format idx writes DIR/train-images-idx3-ubyte and DIR/train-labels-idx1-ubyte (with --merge
also its t10k files, unchanged, so that `train --data DIR` works); --format folder writes
DIR/<class name>/<request id>.png (merged images as train-<index>.png). DIR is written under a
temporary name beside it and renamed when complete; an existing DIR needs --force.

Exit codes: 0 written, 1 bad flags or DIR exists, 2 bad data (not a prediction store, a bad
model file or merge set, nothing to export), 4 I/O failure.
)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Exports the prediction store's labelled predictions as a training set"};
  app.footer(kFooter);
  Options o;
  app.set_version_flag("--version", [] { return simdnn::tools::version_text(kTool); },
                       "Print the version, the commit and the SIMD target, then exit");
  app.add_option("--store", o.store, "Prediction store (SQLite, from serve --store)")->required();
  app.add_option("--out", o.out, "Output directory (must not exist unless --force)")->required();
  app.add_option("--format", o.format, "idx (MNIST files) or folder (one PNG folder per class)")
      ->capture_default_str()
      ->check(CLI::IsMember({"idx", "folder"}));
  app.add_option("--model", o.model, "Only predictions of this model name (default: all)");
  // Not --version: that prints the tool's own version, as in every tool.
  app.add_option("--model-version", o.version,
                 "Only predictions of this model version (default: all)");
  app.add_option("--model-file", o.model_file,
                 "Model file whose input size and class names the data must fit");
  app.add_option("--merge", o.merge,
                 "MNIST-format directory whose train images are appended (the original data)");
  app.add_option("--class-names", o.class_names,
                 "fashion, digits or a comma-separated list (default: the model's, else the "
                 "label numbers)");
  app.add_flag("--force", o.force, "Replace an existing --out directory");
  app.add_flag("--json", o.json, "Print the summary as one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return simdnn::tools::exit_code_for_parse(app, e);
  }
  return simdnn::tools::run_tool(kTool, [&] { return run(o); });
}
