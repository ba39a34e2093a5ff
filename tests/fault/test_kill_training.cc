// SIGKILL tools/train at random moments, including while it writes a checkpoint: the
// checkpoint on disk is always the previous one or the new one, complete and loadable, and
// resuming from it (again and again if killed again) ends at the same model file, byte for
// byte, as a run that was never interrupted.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "simdnn/model_file.h"
#include "simdnn/idx.h"
#include "simdnn/model.h"
#include "simdnn/random.h"
#include "simdnn/safetensors.h"
#include "tests/io_test_support.h"
#include "tests/fault/fault_util.h"

#ifdef SIMDNN_TRAIN_EXE

namespace {

using namespace simdnn::fault;
using Clock = std::chrono::steady_clock;

// A small MNIST-format set (8x8 images, 10 classes) on which a run takes a fraction of a second.
void write_small_dataset(const fs::path& dir) {
  simdnn::Rng rng(5);
  for (auto [split, count] : {std::pair{"train", size_t{320}}, std::pair{"t10k", size_t{80}}}) {
    simdnn::ImageSet images{.count = count, .rows = 8, .cols = 8, .pixels = {}};
    simdnn::LabelSet labels;
    for (size_t i = 0; i < count; ++i) {
      const uint8_t label = static_cast<uint8_t>(rng.below(10));
      labels.labels.push_back(label);
      for (size_t p = 0; p < 64; ++p) {
        const bool ink = p % 10 == label || p / 8 == label % 8;
        images.pixels.push_back(static_cast<uint8_t>(ink ? 160 + rng.below(96) : rng.below(40)));
      }
    }
    simdnn::write_idx_images(dir / (std::string(split) + "-images-idx3-ubyte"), images);
    simdnn::write_idx_labels(dir / (std::string(split) + "-labels-idx1-ubyte"), labels);
  }
}

struct Run {
  fs::path data, out, checkpoint, log;
  std::vector<std::string> argv(bool resume) const {
    std::vector<std::string> a = {SIMDNN_TRAIN_EXE, "--data", data.string(), "--epochs", "6",
                                  "--hidden", "48", "--batch", "16", "--seed", "11",
                                  "--threads", "1", "--no-progress", "--out", out.string(),
                                  "--checkpoint", checkpoint.string()};
    if (resume) {
      a.push_back("--resume");
      a.push_back(checkpoint.string());
    }
    return a;
  }
};

// What the test saw after a kill.
struct KillStats {
  int runs = 0;
  int kills = 0;
  int kills_mid_checkpoint = 0;  // the checkpoint's temporary file was left behind
  int resumes = 0;
};

// A checkpoint left by a killed run must be a complete, valid one.
void check_checkpoint(const fs::path& path) {
  INFO("checkpoint " << path.string());
  simdnn::SafetensorsFile file;
  REQUIRE_NOTHROW(file = simdnn::load_safetensors(path));
  CHECK(file.metadata.count("training") == 1);
  REQUIRE_NOTHROW(simdnn::model_from_safetensors(file, path.string()));
}

// Runs the job to completion, killing it up to `max_kills` times: after a random delay in
// [0, horizon), and if `at_checkpoint`, then only once a checkpoint write has started. A run
// that finishes before its kill shortens the horizon by a quarter: the reference run that set
// it may have been slowed by a busy machine, and a horizon much longer than a run kills
// nothing (the test then checked too little and failed its kill count).
void run_with_kills(const Run& run, Clock::duration& horizon, bool at_checkpoint, int max_kills,
                    simdnn::Rng& rng, KillStats& stats) {
  for (int attempt = 0;; ++attempt) {
    const bool resume = fs::exists(run.checkpoint);
    stats.resumes += resume;
    const pid_t pid = spawn(run.argv(resume), run.log);
    REQUIRE(pid > 0);
    ++stats.runs;
    const bool kill_this_one = attempt < max_kills;
    const fs::path temp = run.checkpoint.string() + ".tmp." + std::to_string(pid);
    int status = 0;
    bool exited = false;
    if (kill_this_one) {
      const auto delay = std::chrono::duration_cast<std::chrono::microseconds>(
          horizon * rng.uniform_float());
      const auto deadline = Clock::now() + delay;
      while (!exited && Clock::now() < deadline) {
        exited = ::waitpid(pid, &status, WNOHANG) == pid;
        if (!exited) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      if (at_checkpoint) {
        // Spin until the checkpoint's temporary file exists: the write is under way.
        while (!exited && !fs::exists(temp)) exited = ::waitpid(pid, &status, WNOHANG) == pid;
      }
      if (!exited) {
        ::kill(pid, SIGKILL);
        ++stats.kills;
      } else {
        horizon = horizon * 3 / 4;
      }
    }
    if (!exited) REQUIRE(::waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return;  // finished
    INFO("attempt " << attempt << ": " << describe_status(status) << " (log " << run.log.string()
                    << ")");
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(WTERMSIG(status) == SIGKILL);
    if (fs::exists(temp)) {
      ++stats.kills_mid_checkpoint;
      fs::remove(temp);  // an orphan of the killed writer; the next run uses another name
    }
    if (fs::exists(run.checkpoint)) check_checkpoint(run.checkpoint);
    // The final model is written after the last checkpoint, atomically as well.
    if (fs::exists(run.out)) REQUIRE_NOTHROW(simdnn::load_model(run.out));
  }
}

// The model file's bytes without its provenance, which records the command line (a resumed
// run's has --resume) and the time: the weights and everything else must match bit for bit.
std::vector<uint8_t> weights_bytes(const fs::path& path) {
  simdnn::Model model = simdnn::load_model(path);
  model.info().provenance.clear();
  return simdnn::serialize_safetensors(simdnn::model_to_safetensors(model));
}

}  // namespace

TEST_CASE("train killed at random moments (also mid-checkpoint) resumes to the same model") {
  ScratchDir dir("kill-training");
  const fs::path data = dir / "data";
  fs::create_directories(data);
  write_small_dataset(data);

  // The uninterrupted reference run, timed to spread the kills over a whole run.
  Run ref{data, dir / "ref.safetensors", dir / "ref.ckpt", dir / "ref.log"};
  const auto t0 = Clock::now();
  KillStats ignored;
  simdnn::Rng unused(0);
  Clock::duration no_kills{};
  run_with_kills(ref, no_kills, false, 0, unused, ignored);
  Clock::duration horizon = Clock::now() - t0;
  const std::vector<uint8_t> expected = weights_bytes(ref.out);
  REQUIRE(!expected.empty());
  MESSAGE("uninterrupted run: " << std::chrono::duration<double>(horizon).count() << " s");

  simdnn::Rng rng(2024);
  KillStats stats;
  // Fewer under ASan/TSan, where each run is ~10x slower: the sanitizer's point there is memory
  // and races on the resume path, which 6 trials (over 6 kills) cover.
  const int trials = simdnn::test::kSanitized ? 6 : 16;
  for (int trial = 0; trial < trials; ++trial) {
    const std::string name = "trial" + std::to_string(trial);
    Run run{data, dir / (name + ".safetensors"), dir / (name + ".ckpt"), dir / (name + ".log")};
    // Half the trials kill at a random moment, half as soon as a checkpoint write has started.
    run_with_kills(run, horizon, trial % 2 == 1, 4, rng, stats);
    INFO(name << ": log " << run.log.string());
    REQUIRE(weights_bytes(run.out) == expected);
  }
  MESSAGE(stats.runs << " runs, " << stats.kills << " SIGKILLs (" << stats.kills_mid_checkpoint
                     << " while a checkpoint was being written), " << stats.resumes
                     << " resumed runs");
  CHECK(stats.kills > trials);
  CHECK(stats.resumes > 0);
}

#endif  // SIMDNN_TRAIN_EXE
