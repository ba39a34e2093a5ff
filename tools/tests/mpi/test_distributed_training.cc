// train --distributed under mpirun on loopback (docs/distributed.md): the same N and seed write
// the same file, one process under mpirun trains the plain run's weights, uneven shards (3
// processes) train as well as one, fixed micro-shards give the same weights for any process
// count, a rank that fails ends every rank, and --resume continues exactly. Registered as
// ctest label `mpi` only when MPI and mpirun were found; each test runs a few seconds.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "simdnn/model_file.h"
#include "simdnn/random.h"
#include "tools/tests/tools_test_support.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using simdnn::test::CommandResult;
using simdnn::test::contains;
using simdnn::test::model_weights;
using simdnn::test::same_bits;
using simdnn::test::read_text;
using simdnn::test::run_tool;
using simdnn::test::TempDir;
using simdnn::test::write_raw;

namespace {

// A 12x12 image of class `label` (0..3): a bright bar in one of four bands on noise, with some
// bars faint, so that a small model learns most but not all of it in two epochs.
std::vector<uint8_t> class_image(int label, simdnn::Rng& rng) {
  std::vector<uint8_t> px(144);
  const float bar = rng.uniform(20, 140);
  for (size_t i = 0; i < px.size(); ++i) {
    const int band = static_cast<int>(i / 12) / 3;
    px[i] = static_cast<uint8_t>(rng.uniform(0, 100) + (band == label ? bar : 0.0f));
  }
  return px;
}

void write_csv(const fs::path& path, int rows, uint64_t seed) {
  simdnn::Rng rng(seed);
  std::string text;
  for (int r = 0; r < rows; ++r) {
    const int label = static_cast<int>(rng.below(4));
    text += std::to_string(label);
    for (uint8_t v : class_image(label, rng)) text += "," + std::to_string(v);
    text += "\n";
  }
  write_raw(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// DIR/train.csv (600 rows) and DIR/test.csv (300).
fs::path write_data(const TempDir& dir) {
  const fs::path data = dir / "data";
  fs::create_directories(data);
  write_csv(data / "train.csv", 600, 1);
  write_csv(data / "test.csv", 300, 2);
  return data;
}

std::vector<std::string> train_args(const fs::path& data, const fs::path& out,
                                    const std::string& epochs = "2") {
  return {"--data", data.string(), "--image-size", "12x12", "--epochs", epochs,
          "--batch", "32", "--hidden", "16", "--lr", "0.01", "--threads", "1",
          "--seed", "5", "--no-progress", "--json", "--out", out.string()};
}

// mpirun --oversubscribe -np N train --distributed ARGS.
CommandResult mpirun(int processes, const std::vector<std::string>& args, const TempDir& dir) {
  std::vector<std::string> all = {"--oversubscribe", "-np", std::to_string(processes),
                                  SIMDNN_TRAIN_BIN, "--distributed"};
  all.insert(all.end(), args.begin(), args.end());
  return run_tool(SIMDNN_MPIRUN, all, dir.path());
}

CommandResult plain(const std::vector<std::string>& args, const TempDir& dir) {
  return run_tool(SIMDNN_TRAIN_BIN, args, dir.path());
}

double test_accuracy(const CommandResult& r) {
  for (const std::string& line : simdnn::test::split_lines(r.out)) {
    const json j = json::parse(line, nullptr, false);
    if (j.is_object() && j.value("event", "") == "done") return j.at("test_accuracy").get<double>();
  }
  FAIL("no done line in: " << r.out);
  return 0.0;
}

}  // namespace

TEST_CASE("distributed train: two runs with 2 processes write the same model file") {
  // SOURCE_DATE_EPOCH (the test's environment) fixes the provenance's creation time.
  TempDir dir("mpi-same");
  const fs::path data = write_data(dir);
  const fs::path out = dir / "m.safetensors";
  const CommandResult a = mpirun(2, train_args(data, out), dir);
  REQUIRE_MESSAGE(a.exit_code == 0, a.err);
  const std::string first = read_text(out);
  const CommandResult b = mpirun(2, train_args(data, out), dir);
  REQUIRE_MESSAGE(b.exit_code == 0, b.err);
  CHECK(first.size() > 1000);
  CHECK(first == read_text(out));
  // Only the lead reports: one start line and one done line.
  const auto lines = simdnn::test::split_lines(a.out);
  CHECK(std::count_if(lines.begin(), lines.end(), [](const std::string& l) {
          return l.find("\"event\":\"done\"") != std::string::npos;
        }) == 1);
  CHECK(contains(a.out, "\"processes\":2"));
  const json provenance = json::parse(simdnn::load_model(out).info().provenance);
  CHECK(provenance.at("data_parallel").at("processes") == 2);
  // The lead cannot write: every rank ends with its code (4), nothing is trained.
  const CommandResult c = mpirun(2, train_args(data, dir / "missing" / "m.safetensors"), dir);
  CHECK(c.exit_code == 4);
  CHECK(contains(c.err, "train: rank 0 of 2:"));
}

TEST_CASE("distributed train: 1 process under mpirun trains the plain run's weights") {
  TempDir dir("mpi-one");
  const fs::path data = write_data(dir);
  const CommandResult p = plain(train_args(data, dir / "plain.safetensors"), dir);
  REQUIRE_MESSAGE(p.exit_code == 0, p.err);
  const CommandResult m = mpirun(1, train_args(data, dir / "mpi.safetensors"), dir);
  REQUIRE_MESSAGE(m.exit_code == 0, m.err);
  CHECK(same_bits(model_weights(dir / "plain.safetensors"),
                  model_weights(dir / "mpi.safetensors")));
  CHECK(test_accuracy(p) == test_accuracy(m));
}

TEST_CASE("distributed train: 2 and 3 processes (uneven shards) train as well as one") {
  TempDir dir("mpi-three");
  const fs::path data = write_data(dir);
  const CommandResult one = plain(train_args(data, dir / "one.safetensors"), dir);
  REQUIRE_MESSAGE(one.exit_code == 0, one.err);
  const CommandResult two = mpirun(2, train_args(data, dir / "two.safetensors"), dir);
  REQUIRE_MESSAGE(two.exit_code == 0, two.err);
  const CommandResult three = mpirun(3, train_args(data, dir / "three.safetensors"), dir);
  REQUIRE_MESSAGE(three.exit_code == 0, three.err);
  const double a1 = test_accuracy(one), a2 = test_accuracy(two), a3 = test_accuracy(three);
  MESSAGE("test accuracy: 1 process " << a1 << ", 2: " << a2 << ", 3: " << a3);
  CHECK(a1 > 0.5);  // it learned something (chance is 0.25)
  CHECK(std::abs(a2 - a1) <= 0.03);
  CHECK(std::abs(a3 - a1) <= 0.03);
  // Different decompositions round differently: not the same bits (else the test shows nothing
  // about the sharding having happened).
  CHECK_FALSE(same_bits(model_weights(dir / "one.safetensors"),
                        model_weights(dir / "three.safetensors")));
}

TEST_CASE("distributed train: fixed micro-shards give the same weights for 1 2 and 3 processes") {
  TempDir dir("mpi-micro");
  const fs::path data = write_data(dir);
  auto args = [&](const std::string& name) {
    std::vector<std::string> a = train_args(data, dir / name);
    a.insert(a.end(), {"--micro-shards", "4", "--dropout", "0.1"});
    return a;
  };
  const CommandResult one = plain(args("one.safetensors"), dir);
  REQUIRE_MESSAGE(one.exit_code == 0, one.err);
  const CommandResult two = mpirun(2, args("two.safetensors"), dir);
  REQUIRE_MESSAGE(two.exit_code == 0, two.err);
  const CommandResult three = mpirun(3, args("three.safetensors"), dir);
  REQUIRE_MESSAGE(three.exit_code == 0, three.err);
  const std::vector<float> w1 = model_weights(dir / "one.safetensors");
  CHECK(same_bits(w1, model_weights(dir / "two.safetensors")));
  CHECK(same_bits(w1, model_weights(dir / "three.safetensors")));
  // More pieces than processes is required.
  const CommandResult few = mpirun(3, {"--micro-shards", "2", "--data", data.string()}, dir);
  CHECK(few.exit_code == 1);
  CHECK(contains(few.err, "--micro-shards 2 is fewer than the 3 processes"));
}

TEST_CASE("distributed train: bad data on one rank ends every rank non-zero with its message") {
  TempDir dir("mpi-bad");
  const fs::path data = write_data(dir);
  const fs::path bad = dir / "bad";
  fs::create_directories(bad);
  fs::copy_file(data / "test.csv", bad / "test.csv");
  write_raw(bad / "train.csv", std::vector<uint8_t>{'1', ',', 'x', '\n'});
  // MPMD: rank 0 gets the good data, rank 1 the bad.
  std::vector<std::string> args = {"--oversubscribe", "-np", "1", SIMDNN_TRAIN_BIN,
                                   "--distributed"};
  for (const std::string& a : train_args(data, dir / "m.safetensors")) args.push_back(a);
  args.insert(args.end(), {":", "-np", "1", SIMDNN_TRAIN_BIN, "--distributed"});
  for (const std::string& a : train_args(bad, dir / "m.safetensors")) args.push_back(a);
  const CommandResult r = run_tool(SIMDNN_MPIRUN, args, dir.path());
  CHECK(r.exit_code == 2);  // mpirun exits with the failing rank's MPI_Abort code: bad data
  CHECK(contains(r.err, "train: rank 1 of 2:"));
  CHECK(contains(r.err, "train.csv"));
  CHECK_FALSE(fs::exists(dir / "m.safetensors"));
  // Different data of the same shape: the processes notice they disagree, before training.
  const fs::path other = dir / "other";
  fs::create_directories(other);
  write_csv(other / "train.csv", 500, 1);
  fs::copy_file(data / "test.csv", other / "test.csv");
  std::vector<std::string> args2 = {"--oversubscribe", "-np", "1", SIMDNN_TRAIN_BIN,
                                    "--distributed"};
  for (const std::string& a : train_args(data, dir / "m.safetensors")) args2.push_back(a);
  args2.insert(args2.end(), {":", "-np", "1", SIMDNN_TRAIN_BIN, "--distributed"});
  for (const std::string& a : train_args(other, dir / "m.safetensors")) args2.push_back(a);
  const CommandResult d = run_tool(SIMDNN_MPIRUN, args2, dir.path());
  CHECK(d.exit_code != 0);
  CHECK(contains(d.err, "the processes disagree: the training sample count"));
  CHECK_FALSE(fs::exists(dir / "m.safetensors"));
}

TEST_CASE("distributed train: --resume under mpirun continues to the uninterrupted run's weights") {
  TempDir dir("mpi-resume");
  const fs::path data = write_data(dir);
  const CommandResult whole = mpirun(2, train_args(data, dir / "whole.safetensors", "3"), dir);
  REQUIRE_MESSAGE(whole.exit_code == 0, whole.err);
  const CommandResult first = mpirun(2, train_args(data, dir / "part.safetensors", "2"), dir);
  REQUIRE_MESSAGE(first.exit_code == 0, first.err);
  REQUIRE(fs::exists(dir / "part.safetensors.ckpt"));
  std::vector<std::string> args = train_args(data, dir / "resumed.safetensors", "3");
  args.insert(args.end(), {"--resume", (dir / "part.safetensors.ckpt").string()});
  const CommandResult resumed = mpirun(2, args, dir);
  REQUIRE_MESSAGE(resumed.exit_code == 0, resumed.err);
  CHECK(same_bits(model_weights(dir / "whole.safetensors"),
                  model_weights(dir / "resumed.safetensors")));
  CHECK(test_accuracy(whole) == test_accuracy(resumed));
}
