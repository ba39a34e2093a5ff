// tools/train as a user runs it: reproducible model files, resume, and refusal of bad input.
// SIMDNN_TRAIN_BIN is the path of the built tool (tests/CMakeLists.txt).
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

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

RunResult run_train(const simdnn::test::TempDir& dir, const std::string& args) {
  const fs::path out = dir / "stdout.txt", err = dir / "stderr.txt";
  const std::string cmd = std::string(SIMDNN_TRAIN_BIN) + " --no-progress " + args + " >" +
                          out.string() + " 2>" + err.string();
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
#endif  // SIMDNN_TRAIN_BIN
