// train's data-parallel flags without mpirun (the MPI runs are tests/mpi/, label mpi):
// --micro-shards alone, and --distributed in a build without MPI.
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "simdnn/model_file.h"
#include "simdnn/random.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_train_data_parallel {

namespace fs = std::filesystem;
using simdnn::test::contains;
using simdnn::test::model_weights;
using simdnn::test::same_bits;
using simdnn::test::run_tool;
using simdnn::test::TempDir;
using simdnn::test::write_raw;

namespace {

// label,pixel0..pixel143 rows of two classes: a bright top or bottom half on noise.
void write_csv(const fs::path& path, int rows, uint64_t seed) {
  simdnn::Rng rng(seed);
  std::string text;
  for (int r = 0; r < rows; ++r) {
    const int label = r % 2;
    text += std::to_string(label);
    for (int i = 0; i < 144; ++i) {
      const bool lit = (i < 72) == (label == 0);
      text += "," + std::to_string(static_cast<int>(rng.uniform(0, 90) + (lit ? 120 : 0)));
    }
    text += "\n";
  }
  write_raw(path, std::vector<uint8_t>(text.begin(), text.end()));
}

}  // namespace

TEST_CASE("train --micro-shards: one piece is the plain step and four pieces train alone") {
  TempDir dir("micro-shards");
  fs::create_directories(dir / "data");
  write_csv(dir / "data" / "train.csv", 200, 1);
  write_csv(dir / "data" / "test.csv", 100, 2);
  auto args = [&](const std::string& out, const std::string& pieces) {
    std::vector<std::string> a = {"--data", (dir / "data").string(), "--image-size", "12x12",
                                  "--epochs", "2", "--batch", "16", "--hidden", "8",
                                  "--threads", "1", "--no-progress",
                                  "--out", (dir / out).string()};
    if (!pieces.empty()) a.insert(a.end(), {"--micro-shards", pieces});
    return a;
  };
  const auto plain = run_tool(SIMDNN_TRAIN_BIN, args("plain.safetensors", ""), dir.path());
  REQUIRE_MESSAGE(plain.exit_code == 0, plain.err);
  const auto one = run_tool(SIMDNN_TRAIN_BIN, args("one.safetensors", "1"), dir.path());
  REQUIRE_MESSAGE(one.exit_code == 0, one.err);
  const auto four = run_tool(SIMDNN_TRAIN_BIN, args("four.safetensors", "4"), dir.path());
  REQUIRE_MESSAGE(four.exit_code == 0, four.err);
  CHECK(contains(four.out, "data parallel: 1 processes, 4 pieces per batch of 16"));
  const std::vector<float> w = model_weights(dir / "plain.safetensors");
  CHECK(same_bits(w, model_weights(dir / "one.safetensors")));
  // Four pieces sum the gradient in another order: close, not the same bits.
  const std::vector<float> w4 = model_weights(dir / "four.safetensors");
  CHECK_FALSE(same_bits(w, w4));
  REQUIRE(w4.size() == w.size());
  double max_diff = 0;
  for (size_t i = 0; i < w.size(); ++i) max_diff = std::max<double>(max_diff, std::abs(w[i] - w4[i]));
  CHECK(max_diff < 1e-2);
  const auto negative = run_tool(SIMDNN_TRAIN_BIN, args("n.safetensors", "-1"), dir.path());
  CHECK(negative.exit_code == 1);
  CHECK(contains(negative.err, "--micro-shards must be >= 0"));
}

#if !SIMDNN_TOOLS_WITH_MPI
TEST_CASE("train --distributed in a build without MPI: exit 1 says so") {
  TempDir dir("no-mpi");
  const auto r = run_tool(SIMDNN_TRAIN_BIN, {"--distributed", "--epochs", "1"}, dir.path());
  CHECK(r.exit_code == 1);
  CHECK(contains(r.err, "built without MPI"));
}
#endif

}  // namespace test_train_data_parallel
