// tools/train as a user runs it: reproducible model files, resume, and refusal of bad input.
// SIMDNN_TRAIN_BIN is the path of the built tool (tests/CMakeLists.txt).
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "io_test_support.h"
#include "simdnn/idx.h"
#include "simdnn/model_file.h"
#include "simdnn/random.h"
#include "simdnn/safetensors.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_train_cli {

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
// Training samples from `mislabel_from` on carry the next quadrant's label instead of their own
// (a validation part whose loss rises as the model learns).
void write_dataset(const fs::path& dir, size_t train_count, size_t test_count, size_t side = 8,
                   size_t mislabel_from = SIZE_MAX) {
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
      if (std::string(split) == "train" && i >= mislabel_from) {
        labels.labels.back() = static_cast<uint8_t>((label + 1) % 4);
      }
    }
    simdnn::write_idx_images(dir / (std::string(split) + "-images-idx3-ubyte.gz"), images);
    simdnn::write_idx_labels(dir / (std::string(split) + "-labels-idx1-ubyte"), labels);
  }
}

// A model file's bytes without its provenance (which records the time, the command line and the
// thread count): what must be the same bit for bit for the same seed.
std::vector<uint8_t> file_bytes(const fs::path& p) {
  simdnn::Model m = simdnn::load_model(p);
  REQUIRE_FALSE(m.info().provenance.empty());
  m.info().provenance.clear();
  return simdnn::serialize_safetensors(simdnn::model_to_safetensors(m));
}

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
  // The same command again, with SOURCE_DATE_EPOCH fixing the creation time: the very same
  // file, provenance included.
  fs::rename(dir / "a.st", dir / "a1.st");
  ::setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
  RunResult again = run_train(dir, common + "--threads 1 --out " + (dir / "a.st").string());
  ::unsetenv("SOURCE_DATE_EPOCH");
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  fs::rename(dir / "a.st", dir / "a2.st");
  ::setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
  again = run_train(dir, common + "--threads 1 --out " + (dir / "a.st").string());
  ::unsetenv("SOURCE_DATE_EPOCH");
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(simdnn::test::read_raw(dir / "a.st") == simdnn::test::read_raw(dir / "a2.st"));
  CHECK(nlohmann::json::parse(simdnn::load_model(dir / "a.st").info().provenance)["created_utc"] ==
        "2023-11-14T22:13:20Z");
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
  // CLI11's own errors are exit 1 too (not its 100+ codes).
  RunResult abc = run_train(dir, "--epochs abc --out " + model);
  CHECK(abc.exit_code == 1);
  CHECK(abc.err.find("--epochs") != std::string::npos);

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

TEST_CASE("train CLI: a finite but runaway loss exits 3 and leaves the good model byte-identical") {
  simdnn::test::TempDir dir("train-cli-runaway");
  write_dataset(dir / "data", 512, 32);
  const std::string data = "--data " + (dir / "data").string() + " --epochs 2 ";
  const fs::path model = dir / "m.st";
  REQUIRE(run_train(dir, data + "--out " + model.string()).exit_code == 0);
  const auto good = simdnn::test::read_raw(model);
  RunResult r = run_train(dir, data + "--optimizer sgd --lr 30 --out " + model.string());
  CHECK(r.exit_code == 3);
  CHECK_MESSAGE(r.err.find("without writing") != std::string::npos, r.err);
  CHECK(simdnn::test::read_raw(model) == good);
}

TEST_CASE("train CLI: the test set is reported once, at the end, not per epoch") {
  simdnn::test::TempDir dir("train-cli-test-once");
  write_dataset(dir / "data", 200, 40);
  RunResult r = run_train(dir, "--data " + (dir / "data").string() +
                                   " --epochs 3 --val-split 0.2 --json --out " +
                                   (dir / "m.st").string());
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  size_t epochs = 0, done = 0;
  std::stringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["event"] == "epoch") {
      ++epochs;
      CHECK_FALSE(j.contains("test_accuracy"));
      CHECK_FALSE(j.contains("test_loss"));
      CHECK(j.contains("val_accuracy"));
    }
    if (j["event"] == "done") {
      ++done;
      CHECK(j["test_accuracy"].get<double>() > 0.5);
    }
  }
  CHECK(epochs == 3);
  CHECK(done == 1);
  RunResult text = run_train(dir, "--data " + (dir / "data").string() +
                                      " --epochs 2 --out " + (dir / "t.st").string());
  REQUIRE(text.exit_code == 0);
  for (const auto& line : lines_starting_with(text.out, "epoch ")) {
    CHECK(line.find("test") == std::string::npos);
  }
  CHECK(lines_starting_with(text.out, "test accuracy").size() == 1);
}

TEST_CASE("train CLI: an unwritable --out fails at once with exit 4") {
  simdnn::test::TempDir dir("train-cli-out");
  write_dataset(dir / "data", 64, 16);
  RunResult missing = run_train(dir, "--data " + (dir / "data").string() + " --out " +
                                         (dir / "no-such-dir" / "m.st").string());
  CHECK(missing.exit_code == 4);
  CHECK_MESSAGE(missing.err.find("no-such-dir") != std::string::npos, missing.err);
  CHECK(missing.out.find("epoch") == std::string::npos);  // before any training
  // Before the data is read, too: a missing data directory is not what is reported.
  RunResult first = run_train(dir, "--data " + (dir / "nowhere").string() + " --out " +
                                       (dir / "no-such-dir" / "m.st").string());
  CHECK(first.exit_code == 4);
  CHECK(first.err.find("no-such-dir") != std::string::npos);
  CHECK(first.err.find("nowhere") == std::string::npos);
  if (::geteuid() != 0) {  // root writes anywhere
    fs::create_directories(dir / "ro");
    fs::permissions(dir / "ro", fs::perms::owner_read | fs::perms::owner_exec);
    RunResult ro = run_train(dir, "--data " + (dir / "data").string() + " --out " +
                                      (dir / "ro" / "m.st").string());
    CHECK(ro.exit_code == 4);
    CHECK(ro.err.find("not writable") != std::string::npos);
    fs::permissions(dir / "ro", fs::perms::owner_all);
  }
}

TEST_CASE("train CLI: a model predict would refuse is not written, the old one stays, exit 2") {
  simdnn::test::TempDir dir("train-cli-validate");
  write_dataset(dir / "data", 64, 16);
  const fs::path model = dir / "m.st";
  REQUIRE(run_train(dir, "--data " + (dir / "data").string() + " --epochs 1 --out " +
                             model.string()).exit_code == 0);
  const auto good = simdnn::test::read_raw(model);
  // 1x5000-pixel images: training works, but the model file's reader takes at most 4096
  // pixels a side, so the model would not load in predict or serve.
  fs::create_directories(dir / "wide");
  for (const char* split : {"train", "t10k"}) {
    simdnn::ImageSet images;
    simdnn::LabelSet labels;
    images.count = 8;
    images.rows = 1;
    images.cols = 5000;
    images.pixels.assign(8 * 5000, 0);
    for (size_t i = 0; i < 8; ++i) {
      labels.labels.push_back(static_cast<uint8_t>(i % 2));
      images.pixels[i * 5000 + i] = 200;
    }
    simdnn::write_idx_images(dir / "wide" / (std::string(split) + "-images-idx3-ubyte"), images);
    simdnn::write_idx_labels(dir / "wide" / (std::string(split) + "-labels-idx1-ubyte"), labels);
  }
  RunResult r = run_train(dir, "--data " + (dir / "wide").string() + " --epochs 1 --hidden 4 --out " +
                                   model.string());
  CHECK(r.exit_code == 2);
  CHECK_MESSAGE(r.err.find("5000") != std::string::npos, r.err);
  CHECK(simdnn::test::read_raw(model) == good);
  for (const auto& e : fs::directory_iterator(dir.path())) {
    CHECK_MESSAGE(e.path().filename().string().find(".tmp.") == std::string::npos, e.path());
  }
}

TEST_CASE("train CLI: early stopping needs a validation split, and restores the best epoch") {
  simdnn::test::TempDir dir("train-cli-early");
  write_dataset(dir / "data", 300, 40, 8, 240);  // the last 20%, the validation part, mislabelled
  const std::string data = "--data " + (dir / "data").string() + " ";
  RunResult no_val = run_train(dir, data + "--early-stopping 2 --out " + (dir / "a.st").string());
  CHECK(no_val.exit_code == 1);
  CHECK(no_val.err.find("--val-split") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "a.st"));
  RunResult r = run_train(dir, data + "--early-stopping 1 --val-split 0.2 --epochs 40 --json "
                                      "--lr-schedule plateau --lr-plateau-patience 1 --out " +
                                      (dir / "b.st").string());
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  nlohmann::json done;
  std::stringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    const auto j = nlohmann::json::parse(line);
    if (j["event"] == "done") done = j;
  }
  REQUIRE(done.is_object());
  CHECK(done["stopped_early"].get<bool>());
  CHECK(done["epochs_run"].get<int>() < 40);
  CHECK(done["best_epoch"].get<int>() == done["epochs_run"].get<int>() - 1);
  RunResult bad = run_train(dir, data + "--lr-schedule step --lr-step-factor 2 --out " +
                                     (dir / "c.st").string());
  CHECK(bad.exit_code == 1);
  CHECK(bad.err.find("factor") != std::string::npos);
}

TEST_CASE("train CLI: fine-tuning keeps the architecture, freezes layers, counts versions, and "
          "records provenance") {
  simdnn::test::TempDir dir("train-cli-finetune");
  write_dataset(dir / "data", 200, 40);
  const std::string data = "--data " + (dir / "data").string() + " --epochs 1 ";
  const fs::path v1 = dir / "v1.st", v2 = dir / "v2.st";
  REQUIRE(run_train(dir, data + "--hidden 16,8 --seed 5 --out " + v1.string()).exit_code == 0);
  const simdnn::Model parent = simdnn::load_model(v1);
  CHECK(parent.info().version == "1");

  RunResult r = run_train(dir, data + "--init-from " + v1.string() + " --freeze 1 --out " +
                                   v2.string());
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const simdnn::Model child = simdnn::load_model(v2);
  CHECK(child.info().version == "2");
  CHECK(child.info().class_names == parent.info().class_names);
  REQUIRE(child.layers().size() == 3);
  const auto& pp = parent.parameters();
  const auto& cp = child.parameters();
  auto same = [](const simdnn::Parameter& a, const simdnn::Parameter& b) {
    return a.value.size() == b.value.size() &&
           std::equal(a.value.data(), a.value.data() + a.value.size(), b.value.data());
  };
  CHECK(same(*pp[0], *cp[0]));  // frozen: dense_0 weight and bias, bit for bit
  CHECK(same(*pp[1], *cp[1]));
  CHECK_FALSE(same(*pp[2], *cp[2]));  // dense_1 trained

  const auto prov = nlohmann::json::parse(child.info().provenance);
  CHECK(prov["version"] == "2");
  CHECK(prov["parent_version"] == "1");
  CHECK(prov["samples"]["train"] == 200);
  CHECK(prov["samples"]["test"] == 40);
  CHECK(prov["epochs_run"] == 1);
  CHECK(prov["seed"] == 1);
  CHECK(prov["metrics"].contains("test_accuracy"));
  CHECK(prov["metrics"].contains("train_loss"));
  CHECK(prov["data"]["files"].size() == 4);
  CHECK(prov["data"]["files"]["train-labels-idx1-ubyte"].get<std::string>().size() == 64);
  CHECK(prov["parent"]["frozen_dense_layers"] == 1);
  CHECK(prov["git_commit"].is_string());
  CHECK(prov["created_utc"].get<std::string>().back() == 'Z');
  CHECK(prov["command_line"].dump().find("--freeze") != std::string::npos);

  // --model-version overrides; mismatches are refused, naming what differs.
  RunResult v7 = run_train(dir, data + "--init-from " + v1.string() + " --model-version 7 --out " +
                                    (dir / "v7.st").string());
  REQUIRE(v7.exit_code == 0);
  CHECK(simdnn::load_model(dir / "v7.st").info().version == "7");
  RunResult hidden = run_train(dir, data + "--init-from " + v1.string() + " --hidden 32 --out " +
                                        (dir / "x.st").string());
  CHECK(hidden.exit_code == 1);
  CHECK(hidden.err.find("16,8") != std::string::npos);
  RunResult act = run_train(dir, data + "--init-from " + v1.string() + " --activation tanh --out " +
                                     (dir / "x.st").string());
  CHECK(act.exit_code == 1);
  CHECK(act.err.find("activation") != std::string::npos);
  RunResult names = run_train(dir, data + "--init-from " + v1.string() +
                                       " --class-names a,b,c,d --out " + (dir / "x.st").string());
  CHECK(names.exit_code == 1);
  CHECK(names.err.find("--class-names") != std::string::npos);
  write_dataset(dir / "big", 32, 8, 10);
  RunResult size = run_train(dir, "--data " + (dir / "big").string() + " --epochs 1 --init-from " +
                                       v1.string() + " --out " + (dir / "x.st").string());
  CHECK(size.exit_code == 2);
  CHECK(size.err.find("10x10") != std::string::npos);
  RunResult freeze_all = run_train(dir, data + "--init-from " + v1.string() + " --freeze 3 --out " +
                                            (dir / "x.st").string());
  CHECK(freeze_all.exit_code == 1);
  CHECK_FALSE(fs::exists(dir / "x.st"));
  RunResult zero = run_train(dir, data + "--model-version 0 --out " + (dir / "x.st").string());
  CHECK(zero.exit_code == 1);

  // A parent whose version is not a number ("seed1", as models were labelled before): the
  // next version cannot be derived, so it must be given.
  simdnn::Model legacy = simdnn::load_model(v1);
  legacy.info().version = "seed1";
  simdnn::save_model(dir / "legacy.st", legacy);
  RunResult unnumbered = run_train(dir, data + "--init-from " + (dir / "legacy.st").string() +
                                            " --out " + (dir / "x.st").string());
  CHECK(unnumbered.exit_code == 1);
  CHECK(unnumbered.err.find("--model-version") != std::string::npos);
  RunResult numbered = run_train(dir, data + "--init-from " + (dir / "legacy.st").string() +
                                          " --model-version 3 --out " + (dir / "x.st").string());
  CHECK(numbered.exit_code == 0);
  CHECK(nlohmann::json::parse(simdnn::load_model(dir / "x.st").info().provenance)["parent_version"] ==
        "seed1");
  // A parent file that is not a model: bad data, exit 2; a missing one: I/O, exit 4.
  auto bytes = simdnn::test::read_raw(v1);
  bytes.resize(bytes.size() / 2);
  simdnn::test::write_raw(dir / "cut.st", bytes);
  RunResult cut = run_train(dir, data + "--init-from " + (dir / "cut.st").string() + " --out " +
                                     (dir / "y.st").string());
  CHECK(cut.exit_code == 2);
  CHECK(cut.err.find("cut.st") != std::string::npos);
  RunResult gone = run_train(dir, data + "--init-from " + (dir / "gone.st").string() + " --out " +
                                      (dir / "y.st").string());
  CHECK(gone.exit_code == 4);
  CHECK(gone.err.find("gone.st") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "y.st"));
}

TEST_CASE("train CLI: regularisation flags train, and bad values are usage errors") {
  simdnn::test::TempDir dir("train-cli-reg");
  write_dataset(dir / "data", 200, 40);
  const std::string data = "--data " + (dir / "data").string() + " --epochs 2 ";
  RunResult r = run_train(dir, data + "--dropout 0.2 --l2 1e-4 --class-weights balanced --json --out " +
                                   (dir / "a.st").string());
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto acc_pos = r.out.rfind("\"test_accuracy\":");
  REQUIRE(acc_pos != std::string::npos);
  CHECK(std::stod(r.out.substr(acc_pos + 16)) > 0.8);
  for (const std::string bad : {"--dropout 1", "--l2 -1", "--class-weights 1,2",
                                "--class-weights 1,x,1,1,1,1,1,1,1,1"}) {
    CAPTURE(bad);
    RunResult b = run_train(dir, data + bad + " --out " + (dir / "b.st").string());
    CHECK(b.exit_code == 1);
    CHECK_FALSE(fs::exists(dir / "b.st"));
  }
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

}  // namespace test_train_cli
