// tools/train as a user runs it: reproducible model files, resume, and refusal of bad input.
// SIMDNN_TRAIN_BIN is the path of the built tool (tests/CMakeLists.txt).
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "io_test_support.h"
#include "simdnn/idx.h"
#include "simdnn/model_file.h"
#include "simdnn/random.h"

#ifdef SIMDNN_TRAIN_BIN
namespace fs = std::filesystem;

namespace {

struct RunResult {
  int exit_code;
  std::string out, err;
};

// Runs the trainer with stdout and stderr redirected to files (so stderr is not a terminal),
// with --no-progress unless `progress` is set.
RunResult run_train(const simdnn::test::TempDir& dir, const std::string& args,
                    bool progress = false) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = std::string(SIMDNN_TRAIN_BIN) + (progress ? " " : " --no-progress ") +
                          args + " >" + out.string() + " 2>" + err.string();
  const int status = std::system(cmd.c_str());
  auto slurp = [](const fs::path& p) {
    auto bytes = simdnn::test::read_raw(p);
    return std::string(bytes.begin(), bytes.end());
  };
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

// A small MNIST-format directory: 8x8 images whose class lights one of four quadrants.
void write_dataset(const fs::path& dir, size_t train_count, size_t test_count, size_t side = 8) {
  fs::create_directories(dir);
  simdnn::Rng rng(5);
  for (auto [split, count] : {std::pair{"train", train_count}, std::pair{"t10k", test_count}}) {
    simdnn::ImageSet images;
    simdnn::LabelSet labels;
    images.count = count;
    images.rows = images.cols = side;
    images.pixels.resize(count * side * side);
    for (size_t i = 0; i < count; ++i) {
      const uint8_t label = static_cast<uint8_t>(rng.below(4));
      labels.labels.push_back(label);
      for (size_t p = 0; p < side * side; ++p) {
        const size_t quadrant = (p / side / (side / 2)) * 2 + (p % side) / (side / 2);
        images.pixels[i * side * side + p] =
            static_cast<uint8_t>(rng.uniform(0, 100) + (quadrant == label ? 150 : 0));
      }
    }
    simdnn::write_idx_images(dir / (std::string(split) + "-images-idx3-ubyte.gz"), images);
    simdnn::write_idx_labels(dir / (std::string(split) + "-labels-idx1-ubyte"), labels);
  }
}

std::vector<uint8_t> file_bytes(const fs::path& p) { return simdnn::test::read_raw(p); }

}  // namespace

TEST_CASE("train CLI: same seed gives the same model file on 1 and 2 threads, and it learns") {
  simdnn::test::TempDir dir("train-cli-repro");
  write_dataset(dir / "data", 400, 100);
  // --hidden 1200: 80K parameters and 2.4M multiply-adds per GEMM, enough for the optimizer
  // and the GEMMs to really use the second thread.
  const std::string common =
      "--data " + (dir / "data").string() + " --epochs 2 --seed 3 --hidden 1200 ";
  RunResult a = run_train(dir, common + "--threads 1 --out " + (dir / "a.st").string());
  REQUIRE_MESSAGE(a.exit_code == 0, a.err);
  RunResult b = run_train(dir, common + "--threads 2 --out " + (dir / "b.st").string());
  REQUIRE_MESSAGE(b.exit_code == 0, b.err);
  CHECK(file_bytes(dir / "a.st") == file_bytes(dir / "b.st"));
  // The model carries its training set's reference profile (the drift metrics' baseline):
  // labels 0..3, each about a quarter of the samples trained on; the model's other classes 0.
  {
    const simdnn::Model m = simdnn::load_model(dir / "a.st");
    REQUIRE(m.info().reference_profile);
    const simdnn::ReferenceProfile& p = *m.info().reference_profile;
    CHECK(p.samples > 300);
    CHECK(p.samples <= 400);
    REQUIRE(p.class_frequencies.size() == m.num_classes());
    for (size_t c = 0; c < p.class_frequencies.size(); ++c) {
      CAPTURE(c);
      if (c < 4) CHECK(p.class_frequencies[c] > 0.15);
      if (c >= 4) CHECK(p.class_frequencies[c] == 0.0);
    }
    double sum = 0.0;
    for (double f : p.intensity_histogram) sum += f;
    CHECK(sum == doctest::Approx(1.0));
  }
  CHECK(a.out.find("test accuracy") != std::string::npos);
  CHECK(a.out.find("confusion matrix") != std::string::npos);
  RunResult j = run_train(dir, common + "--json --out " + (dir / "c.st").string());
  REQUIRE(j.exit_code == 0);
  CHECK(file_bytes(dir / "a.st") == file_bytes(dir / "c.st"));
  CHECK(j.out.find("\"event\":\"done\"") != std::string::npos);
  const auto acc_pos = j.out.rfind("\"test_accuracy\":");
  REQUIRE(acc_pos != std::string::npos);
  CHECK(std::stod(j.out.substr(acc_pos + 16)) > 0.9);
}

// Lines of `text` that start with `prefix`.
std::vector<std::string> lines_starting_with(const std::string& text, const std::string& prefix) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) lines.push_back(line);
  }
  return lines;
}

TEST_CASE("train CLI: progress on a non-terminal stderr is plain lines, one per epoch") {
  simdnn::test::TempDir dir("train-cli-progress");
  // 400 samples in batches of 32: 13 batches, so every tenth of the epoch ends a batch.
  write_dataset(dir / "data", 400, 50);
  const std::string common = "--data " + (dir / "data").string() + " --epochs 2 --seed 4 ";

  // Default: a short epoch logs only its end (10 s between in-epoch lines), with no carriage
  // returns or bar redraws.
  RunResult quiet = run_train(dir, common + "--out " + (dir / "a.st").string(), true);
  REQUIRE_MESSAGE(quiet.exit_code == 0, quiet.err);
  CHECK(quiet.err.find('\r') == std::string::npos);
  const auto ends = lines_starting_with(quiet.err, "epoch ");
  REQUIRE_MESSAGE(ends.size() == 2, quiet.err);
  CHECK(ends[0].rfind("epoch 1/2 - 400/400 - ", 0) == 0);
  CHECK(ends[1].rfind("epoch 2/2 - 400/400 - ", 0) == 0);
  CHECK(ends[1].find(" samples/s - loss ") != std::string::npos);

  // --progress-interval 0: a line at every tenth of each epoch (10% .. 90%), then its end.
  RunResult chatty =
      run_train(dir, common + "--progress-interval 0 --out " + (dir / "b.st").string(), true);
  REQUIRE_MESSAGE(chatty.exit_code == 0, chatty.err);
  const auto lines = lines_starting_with(chatty.err, "epoch ");
  REQUIRE_MESSAGE(lines.size() == 20, chatty.err);
  for (int epoch = 1; epoch <= 2; ++epoch) {
    for (int tenth = 1; tenth <= 9; ++tenth) {
      const std::string& line = lines[(epoch - 1) * 10 + tenth - 1];
      CAPTURE(line);
      CHECK(line.rfind("epoch " + std::to_string(epoch) + "/2 - " + std::to_string(tenth * 10) +
                           "% ", 0) == 0);
      CHECK(line.find(" ETA ") != std::string::npos);
    }
    CHECK(lines[(epoch - 1) * 10 + 9].rfind("epoch " + std::to_string(epoch) + "/2 - 400/400 - ",
                                            0) == 0);
  }
  // Progress does not change what is trained.
  CHECK(file_bytes(dir / "a.st") == file_bytes(dir / "b.st"));

  // --no-progress: nothing on stderr; a negative interval is refused.
  RunResult none = run_train(dir, common + "--out " + (dir / "c.st").string());
  REQUIRE(none.exit_code == 0);
  CHECK(none.err.empty());
  RunResult bad = run_train(dir, common + "--progress-interval -1 --out " + (dir / "d.st").string());
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("--progress-interval") != std::string::npos);
}

TEST_CASE("train CLI: resuming from an epoch checkpoint ends at the same model") {
  simdnn::test::TempDir dir("train-cli-resume");
  write_dataset(dir / "data", 300, 50);
  const std::string common = "--data " + (dir / "data").string() + " --seed 9 --val-split 0.1 ";
  REQUIRE(run_train(dir, common + "--epochs 3 --out " + (dir / "full.st").string()).exit_code == 0);
  RunResult part = run_train(dir, common + "--epochs 1 --out " + (dir / "part.st").string() +
                                      " --checkpoint " + (dir / "ck.st").string());
  REQUIRE(part.exit_code == 0);
  RunResult rest = run_train(dir, common + "--epochs 3 --resume " + (dir / "ck.st").string() +
                                      " --out " + (dir / "resumed.st").string());
  REQUIRE_MESSAGE(rest.exit_code == 0, rest.err);
  CHECK(file_bytes(dir / "full.st") == file_bytes(dir / "resumed.st"));
  // A resume with other settings is refused.
  RunResult other = run_train(dir, common + "--epochs 3 --batch 16 --resume " +
                                       (dir / "ck.st").string() + " --out " + (dir / "x.st").string());
  CHECK(other.exit_code != 0);
  CHECK(other.err.find("different settings") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "x.st"));
}

TEST_CASE("train CLI: bad input exits non-zero, names the problem and writes no model") {
  simdnn::test::TempDir dir("train-cli-bad");
  write_dataset(dir / "data", 64, 16);
  const std::string model = (dir / "model.st").string();
  auto expect_failure = [&](const std::string& args, const std::string& needle) {
    CAPTURE(args);
    RunResult r = run_train(dir, args + " --epochs 1 --out " + model);
    CHECK(r.exit_code != 0);
    CHECK_MESSAGE(r.err.find(needle) != std::string::npos, r.err);
    CHECK_FALSE(fs::exists(model));
  };
  expect_failure("--data " + (dir / "nowhere").string(), "nowhere");
  expect_failure("--data " + (dir / "data").string() + " --batch 0", "--batch");
  expect_failure("--data " + (dir / "data").string() + " --optimizer adamx", "--optimizer");
  expect_failure("--data " + (dir / "data").string() + " --hidden 12,x", "--hidden");

  // Corrupt copies of the data set, one problem each.
  auto corrupt = [&](const std::string& name, auto&& mutate) {
    fs::path d = dir / name;
    fs::create_directories(d);
    for (const auto& e : fs::directory_iterator(dir / "data")) fs::copy(e.path(), d / e.path().filename());
    mutate(d);
    return d.string();
  };
  std::string bad_magic = corrupt("magic", [](const fs::path& d) {
    auto b = simdnn::test::read_raw(d / "train-labels-idx1-ubyte");
    b[3] = 0x03;
    simdnn::test::write_raw(d / "train-labels-idx1-ubyte", b);
  });
  expect_failure("--data " + bad_magic, "train-labels-idx1-ubyte");
  std::string truncated = corrupt("truncated", [](const fs::path& d) {
    auto b = simdnn::test::read_raw(d / "t10k-labels-idx1-ubyte");
    b.resize(b.size() - 5);
    simdnn::test::write_raw(d / "t10k-labels-idx1-ubyte", b);
  });
  expect_failure("--data " + truncated, "t10k-labels-idx1-ubyte");
  std::string mismatch = corrupt("mismatch", [](const fs::path& d) {
    simdnn::LabelSet l;
    l.labels.assign(10, 1);
    fs::remove(d / "train-labels-idx1-ubyte");
    simdnn::write_idx_labels(d / "train-labels-idx1-ubyte", l);
  });
  expect_failure("--data " + mismatch, "train");

  // A checkpoint for 8x8 images does not fit 10x10 data.
  write_dataset(dir / "big", 32, 8, 10);
  REQUIRE(run_train(dir, "--data " + (dir / "data").string() + " --epochs 1 --out " +
                             (dir / "small.st").string())
              .exit_code == 0);
  expect_failure("--data " + (dir / "big").string() + " --resume " + (dir / "small.st.ckpt").string(),
                 "small.st.ckpt");
}

TEST_CASE("train CLI: a diverging run stops with a clear message and keeps no broken model") {
  simdnn::test::TempDir dir("train-cli-nan");
  write_dataset(dir / "data", 256, 16);
  RunResult r = run_train(dir, "--data " + (dir / "data").string() +
                                   " --optimizer sgd --lr 1e38 --epochs 3 --out " +
                                   (dir / "m.st").string());
  CHECK(r.exit_code == 3);
  CHECK_MESSAGE(r.err.find("loss became") != std::string::npos, r.err);
  CHECK_FALSE(fs::exists(dir / "m.st"));
}
// Parses an SVG with python3's xml.etree (a real XML parser) and prints
// "<series> <cells> <data-series names>": the number of polylines of class "series", of
// confusion cells, and the series' names. Empty when it does not parse.
std::string parse_svg(const simdnn::test::TempDir& dir, const fs::path& svg) {
  const fs::path out = dir / "svg-summary.txt";
  const std::string script =
      "import sys, xml.etree.ElementTree as E\n"
      "r = E.parse(sys.argv[1]).getroot()\n"
      "ns = '{http://www.w3.org/2000/svg}'\n"
      "s = [e.get('data-series') for e in r.iter(ns + 'polyline') if e.get('class') == 'series']\n"
      "c = [e for e in r.iter(ns + 'rect') if e.get('class') == 'cell']\n"
      "print(len(s), len(c), ','.join(s))\n";
  const fs::path py = dir / "parse_svg.py";
  simdnn::test::write_raw(py, std::vector<uint8_t>(script.begin(), script.end()));
  const std::string cmd = "python3 " + py.string() + " " + svg.string() + " >" + out.string() + " 2>&1";
  if (std::system(cmd.c_str()) != 0) return "";
  const auto bytes = simdnn::test::read_raw(out);
  return std::string(bytes.begin(), bytes.end());
}

TEST_CASE("train CLI: --plot writes an SVG of the curves and the confusion matrix") {
  simdnn::test::TempDir dir("train-cli-plot");
  write_dataset(dir / "data", 200, 40);
  const std::string common = "--data " + (dir / "data").string() + " --epochs 3 --seed 2 ";

  // With a validation set: train and validation curves for loss and accuracy, the validation
  // set's confusion matrix (--class-names auto gives this 4-label set the 10 digit names:
  // 100 cells).
  const fs::path with_val = dir / "with-val.svg";
  RunResult a = run_train(dir, common + "--val-split 0.2 --out " + (dir / "a.st").string() +
                                   " --plot " + with_val.string());
  REQUIRE_MESSAGE(a.exit_code == 0, a.err);
  CHECK(parse_svg(dir, with_val) == "4 100 train,validation,train,validation\n");
  const auto bytes = simdnn::test::read_raw(with_val);
  const std::string svg(bytes.begin(), bytes.end());
  CHECK(svg.find("validation set (40 images), after epoch 3") != std::string::npos);

  // Without one: train curves only, and the test set's matrix, labelled as a final report.
  const fs::path no_val = dir / "no-val.svg";
  RunResult b = run_train(dir, common + "--out " + (dir / "b.st").string() + " --plot " +
                                   no_val.string());
  REQUIRE_MESSAGE(b.exit_code == 0, b.err);
  CHECK(parse_svg(dir, no_val) == "2 100 train,train\n");
  const auto no_val_bytes = simdnn::test::read_raw(no_val);
  CHECK(std::string(no_val_bytes.begin(), no_val_bytes.end()).find("test set (40 images)") !=
        std::string::npos);

  // Not an .svg name: refused before training, nothing written.
  RunResult bad = run_train(dir, common + "--out " + (dir / "c.st").string() + " --plot " +
                                     (dir / "plot.png").string());
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("--plot") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "c.st"));
}

#endif  // SIMDNN_TRAIN_BIN
