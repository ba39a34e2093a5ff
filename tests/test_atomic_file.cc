#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "io_test_support.h"
#include "simdnn/atomic_file.h"
#include "simdnn/read_file.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_atomic_file {

using simdnn::test::contains;
using simdnn::test::io_error_message;
using simdnn::test::read_raw;
using simdnn::test::TempDir;

namespace {

std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }

// Names in `dir` that look like our temporaries.
int temp_files_in(const std::filesystem::path& dir) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (contains(entry.path().filename().string(), ".tmp.")) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("atomic file: writes, replaces, keeps permissions, leaves no temporary") {
  TempDir dir("atomic-write");
  const auto path = dir / "model.bin";
  simdnn::write_file_atomically(path, bytes_of("first version"));
  CHECK(read_raw(path) == bytes_of("first version"));

  ::chmod(path.c_str(), 0640);
  simdnn::write_file_atomically(path, bytes_of("second"));
  CHECK(read_raw(path) == bytes_of("second"));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);

  simdnn::write_file_atomically(path, {});
  CHECK(std::filesystem::file_size(path) == 0);
  CHECK(temp_files_in(dir.path()) == 0);

  // A relative path in the current directory (the directory fsync must open ".").
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir.path());
  simdnn::write_file_atomically("relative.bin", bytes_of("x"));
  std::filesystem::current_path(cwd);
  CHECK(read_raw(dir / "relative.bin") == bytes_of("x"));
}

TEST_CASE("atomic file: the streaming writer commits or leaves the old file alone") {
  TempDir dir("atomic-stream");
  const auto path = dir / "data.bin";
  simdnn::write_file_atomically(path, bytes_of("old"));
  {
    simdnn::AtomicFileWriter writer(path);
    writer.write(bytes_of("new "));
    writer.write(bytes_of("contents"));
    CHECK(std::filesystem::exists(writer.temp_path()));
    CHECK(writer.temp_path().parent_path() == path.parent_path());
    CHECK(read_raw(path) == bytes_of("old"));  // not visible before commit
    writer.commit();
    CHECK_THROWS_AS(writer.write(bytes_of("late")), std::logic_error);
  }
  CHECK(read_raw(path) == bytes_of("new contents"));
  {
    // Abandoned halfway, as when serialization throws: the destructor cleans up.
    simdnn::AtomicFileWriter writer(path);
    writer.write(bytes_of("partial"));
  }
  CHECK(read_raw(path) == bytes_of("new contents"));
  CHECK(temp_files_in(dir.path()) == 0);
}

TEST_CASE("atomic file: failures throw naming the path and leave the previous file intact") {
  TempDir dir("atomic-fail");
  SUBCASE("directory does not exist") {
    const auto path = dir / "missing-dir" / "model.bin";
    const std::string m = io_error_message([&] { simdnn::write_file_atomically(path, bytes_of("x")); });
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "No such file or directory"));
    CHECK_FALSE(std::filesystem::exists(dir / "missing-dir"));
  }
  SUBCASE("the target is a directory, so the final rename fails") {
    const auto path = dir / "occupied";
    std::filesystem::create_directories(path / "child");
    const std::string m = io_error_message([&] { simdnn::write_file_atomically(path, bytes_of("x")); });
    CHECK(contains(m, path.string()));
    CHECK(contains(m, "rename"));
    CHECK(std::filesystem::is_directory(path / "child"));
    CHECK(temp_files_in(dir.path()) == 0);
  }
  SUBCASE("read-only directory") {
    const auto path = dir / "model.bin";
    simdnn::write_file_atomically(path, bytes_of("previous"));
    ::chmod(dir.path().c_str(), 0555);
    if (::access(dir.path().c_str(), W_OK) == 0) {
      MESSAGE("skipped the read-only directory check: running as root, permissions do not apply");
    } else {
      const std::string m =
          io_error_message([&] { simdnn::write_file_atomically(path, bytes_of("new")); });
      CHECK(contains(m, path.string()));
      CHECK(contains(m, "Permission denied"));
      CHECK(read_raw(path) == bytes_of("previous"));
    }
    ::chmod(dir.path().c_str(), 0755);
    CHECK(read_raw(path) == bytes_of("previous"));
  }
}

TEST_CASE("read_file_bytes: reads whole files, bounds the size, names the path") {
  TempDir dir("read-file");
  simdnn::write_file_atomically(dir / "f", bytes_of("0123456789"));
  CHECK(simdnn::read_file_bytes(dir / "f", 10) == bytes_of("0123456789"));
  const std::string big = io_error_message([&] { simdnn::read_file_bytes(dir / "f", 9); });
  CHECK(contains(big, (dir / "f").string()));
  CHECK(contains(big, "too large"));
  CHECK(contains(io_error_message([&] { simdnn::read_file_bytes(dir.path(), 100); }),
                 "not a regular file"));
  CHECK(contains(io_error_message([&] { simdnn::read_file_bytes(dir / "nope", 100); }), "nope"));
}

TEST_CASE("atomic file: temporary files of dead writers are removed, live ones kept") {
  simdnn::test::TempDir dir("atomic-stale");
  const auto target = dir / "model.st";
  simdnn::test::write_raw(target, {1, 2, 3});
  // pid 999999999 is above Linux's pid_max (4194304), so no process has it.
  simdnn::test::write_raw(dir / "model.st.tmp.999999999", {9});
  const auto live = dir / ("model.st.tmp." + std::to_string(::getppid()));
  simdnn::test::write_raw(live, {8});
  simdnn::test::write_raw(dir / "model.st.tmp.notapid", {7});
  simdnn::test::write_raw(dir / "other.st.tmp.999999999", {6});
  CHECK(simdnn::remove_stale_temp_files(target) == 1);
  CHECK_FALSE(std::filesystem::exists(dir / "model.st.tmp.999999999"));
  CHECK(std::filesystem::exists(live));
  CHECK(std::filesystem::exists(dir / "model.st.tmp.notapid"));
  CHECK(std::filesystem::exists(dir / "other.st.tmp.999999999"));
  CHECK(simdnn::test::read_raw(target) == std::vector<uint8_t>{1, 2, 3});
}

}  // namespace test_atomic_file
