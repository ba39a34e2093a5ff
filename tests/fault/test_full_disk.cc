// A full disk while saving: RLIMIT_FSIZE in a forked child makes write() fail with EFBIG
// part-way through the file (SIGXFSZ ignored), as a full file system would with ENOSPC. The
// save must throw IoError naming the file and the reason, and leave the previous file intact
// and no temporary file behind.
#include <doctest/doctest.h>
#include <sys/resource.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <string>

#include "simdnn/model_file.h"
#include "simdnn/idx.h"
#include "simdnn/io_error.h"
#include "simdnn/model.h"
#include "simdnn/random.h"
#include "simdnn/safetensors.h"
#include "tests/fault/fault_util.h"

namespace {

using namespace simdnn::fault;

// Child exit codes.
enum : int { kThrewIoError = 0, kNoThrow = 10, kBadMessage = 11, kOtherException = 12 };

// Runs save() in a child limited to `limit_bytes` per file; returns the child's exit code.
int save_with_file_size_limit(rlim_t limit_bytes, const fs::path& path,
                              const std::function<void()>& save, const fs::path& message_file) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    // Soft limit only, so that the message can be written out after the save.
    rlimit limit{};
    if (::getrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(99);
    const rlim_t hard = limit.rlim_max;
    limit.rlim_cur = limit_bytes;
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(99);
    int code = kNoThrow;
    std::string message;
    try {
      save();
    } catch (const simdnn::IoError& e) {
      message = e.what();
      // Clear: names the file and what went wrong.
      code = message.find(path.filename().string()) != std::string::npos &&
                     message.find(std::strerror(EFBIG)) != std::string::npos
                 ? kThrewIoError
                 : kBadMessage;
    } catch (const std::exception& e) {
      message = e.what();
      code = kOtherException;
    }
    {
      // The message for the parent's report.
      limit.rlim_cur = hard;
      ::setrlimit(RLIMIT_FSIZE, &limit);
      std::FILE* f = std::fopen(message_file.c_str(), "w");
      if (f) {
        std::fputs(message.c_str(), f);
        std::fclose(f);
      }
    }
    ::_exit(code);
  }
  int status = 0;
  REQUIRE(pid > 0);
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  return WEXITSTATUS(status);
}

void check_failed_save_keeps_old_file(const ScratchDir& dir, const fs::path& path,
                                      rlim_t limit, const std::function<void()>& save) {
  const std::vector<uint8_t> before = read_bytes(path);
  REQUIRE(!before.empty());
  const fs::path message_file = dir / "message.txt";
  const int code = save_with_file_size_limit(limit, path, save, message_file);
  const std::vector<uint8_t> msg = read_bytes(message_file);
  INFO("error message: " << std::string(msg.begin(), msg.end()));
  CHECK(code == kThrewIoError);
  CHECK(read_bytes(path) == before);
  CHECK(files_starting_with(dir.path(), path.filename().string() + ".tmp").empty());
  MESSAGE(path.filename().string() << ": " << std::string(msg.begin(), msg.end()));
}

simdnn::Model make_model(size_t hidden, uint64_t seed) {
  simdnn::Rng rng(seed);
  simdnn::ModelInfo info;
  info.class_names = simdnn::digit_class_names();
  return simdnn::Model::mlp(info, {hidden}, simdnn::Activation::kRelu, 10, rng);
}

}  // namespace

TEST_CASE("save_model on a full disk fails clearly and keeps the previous model file") {
  ScratchDir dir("full-disk-model");
  const fs::path path = dir / "model.safetensors";
  simdnn::Model old_model = make_model(16, 1);
  simdnn::save_model(path, old_model);
  // The new model is ~400 KB; the limit lets part of it be written before write() fails.
  check_failed_save_keeps_old_file(dir, path, 64 * 1024, [&] {
    simdnn::Model bigger = make_model(128, 2);
    simdnn::save_model(path, bigger);
  });
  // Also when not even the header fits.
  check_failed_save_keeps_old_file(dir, path, 16, [&] {
    simdnn::Model other = make_model(16, 3);
    simdnn::save_model(path, other);
  });
  // The old file still loads.
  CHECK_NOTHROW(simdnn::load_model(path));
}

TEST_CASE("save_safetensors and write_idx_images on a full disk keep the previous file") {
  ScratchDir dir("full-disk-io");
  const fs::path st = dir / "tensors.safetensors";
  simdnn::SafetensorsFile small;
  small.tensors.emplace_back("w", simdnn::Tensor({4}));
  simdnn::save_safetensors(st, small);
  check_failed_save_keeps_old_file(dir, st, 32 * 1024, [&] {
    simdnn::SafetensorsFile big;
    big.tensors.emplace_back("w", simdnn::Tensor({256, 256}));
    simdnn::save_safetensors(st, big);
  });

  for (const char* name : {"images-idx3-ubyte", "images-idx3-ubyte.gz"}) {
    const fs::path idx = dir / name;
    simdnn::ImageSet old_set{.count = 1, .rows = 2, .cols = 2, .pixels = {1, 2, 3, 4}};
    simdnn::write_idx_images(idx, old_set);
    check_failed_save_keeps_old_file(dir, idx, 4096, [&] {
      simdnn::ImageSet big{.count = 64, .rows = 28, .cols = 28, .pixels = {}};
      simdnn::Rng rng(9);  // incompressible, so the .gz is large too
      for (size_t i = 0; i < 64 * 28 * 28; ++i) big.pixels.push_back(static_cast<uint8_t>(rng.below(256)));
      simdnn::write_idx_images(idx, big);
    });
  }
}
