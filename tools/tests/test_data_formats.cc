// train and predict on the data forms people have (an image folder, a CSV), and the exit codes
// of tools/exit_codes.h for bad flags, bad data and unreadable files.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "simdnn/model_file.h"
#include "simdnn/random.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_data_formats {

namespace fs = std::filesystem;
using json = nlohmann::json;
using simdnn::test::contains;
using simdnn::test::run_tool;
using simdnn::test::TempDir;
using simdnn::test::write_raw;

namespace {

// A 12x12 image of class `label` (0..2): a bright bar in one of three horizontal bands, on a
// noisy dark background, so that one epoch learns it.
std::vector<uint8_t> class_image(int label, simdnn::Rng& rng) {
  std::vector<uint8_t> px(144);
  for (size_t i = 0; i < px.size(); ++i) {
    const int band = static_cast<int>(i / 12) / 4;
    px[i] = static_cast<uint8_t>(rng.uniform(0, 60) + (band == label ? 180 : 0));
  }
  return px;
}

const char* const kClasses[] = {"ankle boot", "bag", "coat"};  // a space, as folder names have

// DIR/<class>/<n>.png, `per_class` images each.
void write_image_folder(const fs::path& dir, int per_class, uint64_t seed) {
  simdnn::Rng rng(seed);
  for (int n = 0; n < per_class; ++n) {
    for (int c = 0; c < 3; ++c) {
      fs::create_directories(dir / kClasses[c]);
      write_raw(dir / kClasses[c] / (std::to_string(n) + ".png"),
                simdnn::encode_image(class_image(c, rng), 12, 12, 1, simdnn::ImageFormat::kPng));
    }
  }
}

// label,pixel0..pixel143 with a header line.
void write_csv(const fs::path& path, int rows, uint64_t seed) {
  simdnn::Rng rng(seed);
  std::string text = "label";
  for (int p = 0; p < 144; ++p) text += ",pixel" + std::to_string(p);
  text += "\n";
  for (int r = 0; r < rows; ++r) {
    const int label = r % 3;
    text += std::to_string(label);
    for (uint8_t v : class_image(label, rng)) text += "," + std::to_string(v);
    text += "\n";
  }
  write_raw(path, std::vector<uint8_t>(text.begin(), text.end()));
}

std::vector<std::string> train_args(const fs::path& data, const fs::path& out) {
  return {"--data", data.string(), "--epochs", "2", "--lr", "0.01", "--batch", "16",
          "--hidden", "16", "--threads", "1", "--no-progress", "--out", out.string()};
}

}  // namespace

TEST_CASE("train and predict: an image folder trains a model with its class names") {
  TempDir dir("formats-folder");
  write_image_folder(dir / "folder", 40, 1);
  const auto model = dir / "m.safetensors";
  const auto r = run_tool(SIMDNN_TRAIN_BIN, train_args(dir / "folder", model), dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "120 train"));
  CHECK(contains(r.out, "12x12"));
  CHECK(contains(r.out, "no test set"));  // no train/ and test/: no test metrics
  CHECK_FALSE(contains(r.out, "test_acc"));
  const simdnn::Model m = simdnn::load_model(model);
  CHECK(m.info().class_names == std::vector<std::string>{"ankle boot", "bag", "coat"});
  CHECK(m.info().input_height == 12);

  // predict accepts the model, on one file and on the folder (its training split).
  const auto one = run_tool(SIMDNN_PREDICT_BIN,
                            {"--model", model.string(), "--invert", "no",
                             (dir / "folder" / "bag" / "0.png").string()},
                            dir.path());
  INFO(one.err);
  CHECK(one.exit_code == 0);
  CHECK(contains(one.out, "0.png: bag [1]"));
  const auto eval = run_tool(SIMDNN_PREDICT_BIN,
                             {"--model", model.string(), "--data", (dir / "folder").string(),
                              "--split", "train", "--json"},
                             dir.path());
  INFO(eval.err);
  REQUIRE(eval.exit_code == 0);
  const json doc = json::parse(eval.out);
  CHECK(doc.at("count") == 120);
  CHECK(doc.at("accuracy").get<double>() > 0.9);  // three bands: learnt in two epochs
  // The folder has no test split: predict says so (bad data, exit 2).
  const auto no_test = run_tool(SIMDNN_PREDICT_BIN,
                                {"--model", model.string(), "--data", (dir / "folder").string()},
                                dir.path());
  CHECK(no_test.exit_code == 2);
  CHECK(contains(no_test.err, "--split train"));

  // train/ and test/: test metrics at the end.
  write_image_folder(dir / "split" / "train", 30, 2);
  write_image_folder(dir / "split" / "test", 5, 3);
  const auto split = run_tool(SIMDNN_TRAIN_BIN, train_args(dir / "split", dir / "s.safetensors"),
                              dir.path());
  INFO(split.err);
  REQUIRE(split.exit_code == 0);
  CHECK(contains(split.out, "90 train / 0 val / 15 test"));
  CHECK(contains(split.out, "test accuracy"));
}

TEST_CASE("train and predict: a CSV trains a model that predict accepts") {
  TempDir dir("formats-csv");
  write_csv(dir / "data.csv", 120, 4);
  const auto model = dir / "m.safetensors";
  const auto r = run_tool(SIMDNN_TRAIN_BIN, train_args(dir / "data.csv", model), dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "120 train"));
  CHECK(contains(r.out, "12x12"));
  const auto eval = run_tool(SIMDNN_PREDICT_BIN,
                             {"--model", model.string(), "--data", (dir / "data.csv").string(),
                              "--split", "train", "--json"},
                             dir.path());
  INFO(eval.err);
  REQUIRE(eval.exit_code == 0);
  CHECK(json::parse(eval.out).at("count") == 120);

  // --image-size gives a non-square shape: 144 pixels as 8x18.
  const auto wide = run_tool(SIMDNN_TRAIN_BIN,
                             [&] {
                               auto a = train_args(dir / "data.csv", dir / "w.safetensors");
                               a.insert(a.end(), {"--image-size", "8x18"});
                               return a;
                             }(),
                             dir.path());
  INFO(wide.err);
  REQUIRE(wide.exit_code == 0);
  CHECK(simdnn::load_model(dir / "w.safetensors").info().input_width == 18);

  // A bad cell: the message names file, line and column; nothing is written.
  write_raw(dir / "bad.csv", {'1', ',', '0', ',', '0', ',', '0', ',', '9', '9', '9', '\n'});
  const auto bad = run_tool(SIMDNN_TRAIN_BIN, train_args(dir / "bad.csv", dir / "bad.safetensors"),
                            dir.path());
  CHECK(bad.exit_code != 0);
  CHECK(contains(bad.err, "bad.csv"));
  CHECK(contains(bad.err, "line 1, column 5"));
  CHECK_FALSE(fs::exists(dir / "bad.safetensors"));
}

TEST_CASE("exit codes: serve and predict follow the one scheme (1 usage, 2 bad data, 4 I/O)") {
  TempDir dir("formats-exit");
  CHECK(run_tool(SIMDNN_SERVE_BIN, {"--bogus"}, dir.path()).exit_code == 1);
  CHECK(run_tool(SIMDNN_PREDICT_BIN, {"--bogus"}, dir.path()).exit_code == 1);
  CHECK(run_tool(SIMDNN_SERVE_BIN, {"--help"}, dir.path()).exit_code == 0);

  const auto image = dir / "img.png";
  write_raw(image, simdnn::test::encode_gray(simdnn::test::make_stroke_image(1),
                                             simdnn::ImageFormat::kPng));
  // A corrupt model: bad data, 2, from predict and serve alike.
  const auto corrupt = dir / "corrupt.safetensors";
  write_raw(corrupt, {'n', 'o', 't', ' ', 'a', ' ', 'm', 'o', 'd', 'e', 'l', '!'});
  const auto p = run_tool(SIMDNN_PREDICT_BIN, {"--model", corrupt.string(), image.string()}, dir.path());
  CHECK(p.exit_code == 2);
  CHECK(contains(p.err, "corrupt.safetensors"));
  const auto s = run_tool(SIMDNN_SERVE_BIN, {"--model", corrupt.string(), "--port", "0"}, dir.path());
  CHECK(s.exit_code == 2);
  CHECK(contains(s.err, "corrupt.safetensors"));

  // A missing model: I/O, 4.
  const auto missing = dir / "missing.safetensors";
  const auto pm = run_tool(SIMDNN_PREDICT_BIN, {"--model", missing.string(), image.string()}, dir.path());
  CHECK(pm.exit_code == 4);
  CHECK(contains(pm.err, "missing.safetensors"));
  CHECK(contains(pm.err, "No such file"));

  // predict --data: a missing set is I/O (4), a corrupt one bad data (2).
  const auto model = dir / "m.safetensors";
  simdnn::save_model(model, simdnn::test::make_test_model());
  CHECK(run_tool(SIMDNN_PREDICT_BIN, {"--model", model.string(), "--data", (dir / "none").string()},
                 dir.path())
            .exit_code == 4);
  write_raw(dir / "broken.csv", {'x', '\n', '1', ',', '2', '\n'});
  const auto broken = run_tool(SIMDNN_PREDICT_BIN,
                               {"--model", model.string(), "--data", (dir / "broken.csv").string(),
                                "--split", "train"},
                               dir.path());
  CHECK(broken.exit_code == 2);
  CHECK(contains(broken.err, "broken.csv"));
}

}  // namespace test_data_formats
