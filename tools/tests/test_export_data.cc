// tools/export-data: a prediction store filled through the store's API (rows with and without
// inputs and feedback), exported as IDX and as an image folder; de-duplication, conflicts,
// skipped rows, --merge, the refusal of an existing --out, exit codes. And the store's read API
// (for_each_labelled_prediction) on its own.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "simdnn/idx.h"
#include "simdnn/image.h"
#include "simdnn/model_file.h"
#include "simdnn/prediction_store.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_export_data {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using simdnn::test::TempDir;
using namespace std::chrono_literals;

// A 28x28 image whose every pixel depends on `seed`, so different seeds differ.
std::vector<uint8_t> image(uint8_t seed, size_t pixels = 784) {
  std::vector<uint8_t> p(pixels);
  for (size_t i = 0; i < pixels; ++i) p[i] = static_cast<uint8_t>((i * 7 + seed * 31) % 251);
  return p;
}

struct Row {
  std::string request_id;
  std::string model;
  std::vector<uint8_t> input;
  int feedback;  // -1: none
};

void fill_store(const fs::path& path, const std::vector<Row>& rows) {
  simdnn::PredictionStore store(path, {.batch_interval = 10ms});
  int64_t t = 1'700'000'000'000;
  for (const Row& r : rows) {
    simdnn::PredictionRecord rec;
    rec.request_id = r.request_id;
    rec.time_ms = t++;
    rec.model = r.model;
    rec.version = "1";
    rec.predicted_class = 0;
    rec.confidence = 0.5f;
    rec.input = r.input;
    REQUIRE(store.record(rec));
  }
  store.flush();
  for (const Row& r : rows) {
    if (r.feedback < 0) continue;
    REQUIRE(store.record_feedback(r.model, r.request_id, r.feedback).status ==
            simdnn::FeedbackStatus::kRecorded);
  }
}

// The rows of the tests below: A twice with label 3 (a duplicate), B with labels 1, 2, 2 (a
// conflict that label 2 wins), a 10x10 input (another size), a row without an input, a row
// without feedback, another model's row, and a label beyond the ten digit classes.
std::vector<Row> standard_rows() {
  return {
      {"r1", "digits", image(1), 3},
      {"r2", "digits", image(1), 3},
      {"r3", "digits", image(2), 1},
      {"../evil/r4", "digits", image(2), 2},
      {"r5", "digits", image(2), 2},
      {"r6", "digits", image(3, 100), 4},
      {"r7", "digits", {}, 5},
      {"r8", "digits", image(4), -1},
      {"r9", "other", image(5), 7},
      {"r10", "digits", image(6), 12},
  };
}

json run_json(const std::vector<std::string>& args, const fs::path& scratch, int expect = 0) {
  std::vector<std::string> a = args;
  a.push_back("--json");
  const auto r = simdnn::test::run_tool(SIMDNN_EXPORT_DATA_BIN, a, scratch);
  REQUIRE_MESSAGE(r.exit_code == expect, r.err);
  if (expect != 0) return json();
  CHECK(r.err.empty());
  return json::parse(r.out);
}

const json& class_entry(const json& report, int c) {
  for (const json& e : report.at("classes")) {
    if (e.at("class") == c) return e;
  }
  FAIL("class " << c << " not in the report");
  static json none;
  return none;
}

}  // namespace

TEST_CASE("prediction store: for_each_labelled_prediction reads rows with feedback, filtered") {
  TempDir dir("store-read");
  const auto db = dir / "p.db";
  fill_store(db, standard_rows());
  std::vector<simdnn::LabelledPrediction> rows;
  const size_t n = simdnn::for_each_labelled_prediction(
      db, {}, [&](const simdnn::LabelledPrediction& r) { rows.push_back(r); });
  CHECK(n == 9);  // every row but r8
  REQUIRE(rows.size() == 9);
  CHECK(rows[0].request_id == "r1");
  CHECK(rows[0].label == 3);
  CHECK(rows[0].input == image(1));
  CHECK(rows[0].model == "digits");
  CHECK(rows[0].version == "1");
  for (size_t i = 1; i < rows.size(); ++i) CHECK(rows[i].id > rows[i - 1].id);
  CHECK(rows[6].request_id == "r7");
  CHECK(rows[6].input.empty());

  size_t other = 0;
  simdnn::for_each_labelled_prediction(db, {"other", ""}, [&](const auto& r) {
    CHECK(r.request_id == "r9");
    ++other;
  });
  CHECK(other == 1);
  CHECK(simdnn::for_each_labelled_prediction(db, {"digits", "2"}, [](const auto&) {}) == 0);
  // Never creates a database: a missing file is an error, and stays missing.
  CHECK_THROWS_AS(simdnn::for_each_labelled_prediction(dir / "missing.db", {}, [](const auto&) {}),
                  simdnn::StoreError);
  CHECK_FALSE(fs::exists(dir / "missing.db"));
  simdnn::test::write_raw(dir / "junk.db", std::vector<uint8_t>(4096, 'x'));
  CHECK_THROWS_AS(simdnn::for_each_labelled_prediction(dir / "junk.db", {}, [](const auto&) {}),
                  simdnn::StoreError);
}

TEST_CASE("export-data: IDX export de-duplicates, resolves conflicts and skips unusable rows") {
  TempDir dir("export-idx");
  const auto db = dir / "p.db";
  fill_store(db, standard_rows());
  simdnn::save_model(dir / "model.safetensors", simdnn::test::make_test_model());
  const json report = run_json({"--store", db.string(), "--out", (dir / "out").string(),
                                "--model", "digits", "--model-file",
                                (dir / "model.safetensors").string()},
                               dir.path());
  CHECK(report.at("labelled_rows") == 8);  // r1-r7 and r10 (r8: no feedback, r9: other model)
  CHECK(report.at("skipped_without_input") == 1);
  CHECK(report.at("skipped_size_mismatch") == 1);
  CHECK(report.at("skipped_bad_label") == 1);
  CHECK(report.at("duplicates_dropped") == 2);  // r2, and r5 (a copy of the kept r4)
  CHECK(report.at("conflicting_images") == 1);
  CHECK(report.at("conflicts_dropped") == 1);
  CHECK(report.at("written") == 2);
  CHECK(report.at("input_size_from") == "--model-file");
  CHECK(class_entry(report, 3).at("from_feedback") == 1);
  CHECK(class_entry(report, 3).at("duplicates_dropped") == 1);
  CHECK(class_entry(report, 2).at("from_feedback") == 1);
  CHECK(class_entry(report, 2).at("duplicates_dropped") == 1);
  CHECK(class_entry(report, 1).at("conflicts_dropped") == 1);
  CHECK(class_entry(report, 1).at("total") == 0);
  REQUIRE(report.at("conflicts").size() == 1);
  CHECK(report.at("conflicts")[0].at("kept_label") == 2);
  CHECK(report.at("conflicts")[0].at("labels") == json{{"1", 1}, {"2", 2}});

  // The IDX files read back: A with label 3, then B with the winning label 2.
  const simdnn::ImageSet images = simdnn::read_idx_images(dir / "out" / "train-images-idx3-ubyte");
  const simdnn::LabelSet labels = simdnn::read_idx_labels(dir / "out" / "train-labels-idx1-ubyte");
  REQUIRE(images.count == 2);
  CHECK(images.rows == 28);
  CHECK(images.cols == 28);
  const auto a = images.image(0), b = images.image(1);
  CHECK(std::vector<uint8_t>(a.begin(), a.end()) == image(1));
  CHECK(std::vector<uint8_t>(b.begin(), b.end()) == image(2));
  CHECK(labels.labels == std::vector<uint8_t>{3, 2});
  // Nothing else in --out, and no temporary directory left beside it.
  std::set<std::string> names, beside;
  for (const auto& e : fs::directory_iterator(dir / "out")) names.insert(e.path().filename());
  CHECK(names == std::set<std::string>{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"});
  for (const auto& e : fs::directory_iterator(dir.path())) beside.insert(e.path().filename());
  for (const std::string& n : beside) CHECK_MESSAGE(n.find(".tmp-") == std::string::npos, n);

  // Without --model-file the size comes from the most frequent square input (784 = 28x28), and
  // every label up to 255 is a class: r10 (label 12) is kept.
  const json guessed = run_json({"--store", db.string(), "--out", (dir / "out2").string(),
                                 "--model", "digits"},
                                dir.path());
  CHECK(guessed.at("input_size_from") == "stored inputs");
  CHECK(guessed.at("input_height") == 28);
  CHECK(guessed.at("skipped_bad_label") == 0);
  CHECK(guessed.at("written") == 3);
}

TEST_CASE("export-data: an image folder per class, with --merge appended and de-duplicated") {
  TempDir dir("export-folder");
  const auto db = dir / "p.db";
  fill_store(db, standard_rows());
  // The original data: A again with label 3 (a duplicate of feedback), and C with label 5.
  fs::create_directories(dir / "mnist");
  simdnn::ImageSet train{2, 28, 28, image(1)};
  const auto c = image(9);
  train.pixels.insert(train.pixels.end(), c.begin(), c.end());
  simdnn::write_idx_images(dir / "mnist" / "train-images-idx3-ubyte", train);
  simdnn::write_idx_labels(dir / "mnist" / "train-labels-idx1-ubyte", {{3, 5}});
  simdnn::write_idx_images(dir / "mnist" / "t10k-images-idx3-ubyte", {1, 28, 28, image(11)});
  simdnn::write_idx_labels(dir / "mnist" / "t10k-labels-idx1-ubyte", {{7}});

  const auto out = dir / "folder";
  const json report = run_json({"--store", db.string(), "--out", out.string(), "--model",
                                "digits", "--format", "folder", "--class-names", "digits",
                                "--merge", (dir / "mnist").string()},
                               dir.path());
  CHECK(report.at("merge_rows") == 2);
  CHECK(report.at("duplicates_dropped") == 3);  // r2, r5 and the merged copy of A
  CHECK(report.at("written") == 3);
  CHECK(class_entry(report, 3).at("from_feedback") == 1);
  CHECK(class_entry(report, 3).at("duplicates_dropped") == 2);
  CHECK(class_entry(report, 5).at("from_merge") == 1);

  std::set<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    if (e.is_regular_file()) files.insert(fs::relative(e.path(), out).string());
  }
  // The request id "../evil/r4" cannot leave its class folder.
  CHECK(files == std::set<std::string>{"3/r1.png", "2/_.._evil_r4.png", "5/train-1.png"});
  const simdnn::GrayImage r1 = simdnn::load_image(out / "3" / "r1.png");
  CHECK(r1.width == 28);
  CHECK(r1.height == 28);
  CHECK(r1.pixels == image(1));
  CHECK(simdnn::load_image(out / "5" / "train-1.png").pixels == image(9));

  // IDX with --merge: the t10k files travel along, unchanged.
  const json idx = run_json({"--store", db.string(), "--out", (dir / "idx").string(), "--model",
                             "digits", "--class-names", "digits", "--merge",
                             (dir / "mnist").string()},
                            dir.path());
  CHECK(idx.at("test_copied") == 1);
  const simdnn::Dataset copied = simdnn::load_mnist_dir(dir / "idx", "t10k");
  CHECK(copied.images.pixels == image(11));
  CHECK(copied.labels.labels == std::vector<uint8_t>{7});
  CHECK(simdnn::load_mnist_dir(dir / "idx", "train").images.count == 3);
}

TEST_CASE("export-data: an existing --out is refused unless --force, and exit codes") {
  TempDir dir("export-refuse");
  const auto db = dir / "p.db";
  fill_store(db, standard_rows());
  const auto out = dir / "out";
  fs::create_directories(out);
  simdnn::test::write_raw(out / "keep.txt", {'k'});
  const auto refused = simdnn::test::run_tool(
      SIMDNN_EXPORT_DATA_BIN, {"--store", db.string(), "--out", out.string()}, dir.path());
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("--force") != std::string::npos);
  CHECK(fs::exists(out / "keep.txt"));

  const json forced = run_json({"--store", db.string(), "--out", out.string(), "--force"}, dir.path());
  CHECK(forced.at("written") == 4);  // A, B, r9's image and r10's (no filter, no class names)
  CHECK_FALSE(fs::exists(out / "keep.txt"));
  CHECK(fs::exists(out / "train-images-idx3-ubyte"));
  for (const auto& e : fs::directory_iterator(dir.path())) {
    CHECK_MESSAGE(e.path().filename().string().find(".tmp-") == std::string::npos, e.path());
  }

  // Exit codes: a missing store 4, a file that is no store 2, nothing to export 2, bad flags 1.
  auto code = [&](std::vector<std::string> args) {
    return simdnn::test::run_tool(SIMDNN_EXPORT_DATA_BIN, args, dir.path()).exit_code;
  };
  CHECK(code({"--store", (dir / "missing.db").string(), "--out", (dir / "o1").string()}) == 4);
  simdnn::test::write_raw(dir / "junk.db", std::vector<uint8_t>(4096, 'x'));
  CHECK(code({"--store", (dir / "junk.db").string(), "--out", (dir / "o2").string()}) == 2);
  CHECK(code({"--store", db.string(), "--out", (dir / "o3").string(), "--model", "nobody"}) == 2);
  CHECK(code({"--store", db.string(), "--out", (dir / "o4").string(), "--format", "tar"}) == 1);
  CHECK(code({"--store", db.string()}) == 1);
  CHECK(code({"--store", db.string(), "--out", (dir / "no" / "such" / "o5").string()}) == 4);
  for (const char* o : {"o1", "o2", "o3", "o4"}) CHECK_FALSE(fs::exists(dir / o));
}

}  // namespace test_export_data
