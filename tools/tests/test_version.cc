// --version on every tool: version, commit and SIMD target, exit 0, even when the tool's
// required flags (--model) are missing.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "build_info.h"
#include "simdnn/simd_targets.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_version {

TEST_CASE("every tool: --version prints the version, the commit and the SIMD target") {
  simdnn::test::TempDir dir("tool-version");
  const std::pair<const char*, const char*> tools[] = {
      {"train", SIMDNN_TRAIN_BIN}, {"predict", SIMDNN_PREDICT_BIN}, {"serve", SIMDNN_SERVE_BIN},
      {"export-data", SIMDNN_EXPORT_DATA_BIN}, {"promote", SIMDNN_PROMOTE_BIN}};
  for (const auto& tool : tools) {
    const char* name = tool.first;  // not a structured binding: clang 14 cannot CAPTURE one
    const char* binary = tool.second;
    CAPTURE(name);
    const simdnn::test::CommandResult r = simdnn::test::run_tool(binary, {"--version"}, dir.path());
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
    const std::vector<std::string> lines = simdnn::test::split_lines(r.out);
    REQUIRE_MESSAGE(lines.size() == 3, r.out);
    CHECK(lines[0] == std::string("simdnn-") + name + " " + SIMDNN_VERSION_STRING);
    CHECK(lines[1] == std::string("commit: ") + SIMDNN_GIT_COMMIT);
    CHECK(lines[1].size() > std::string("commit: ").size());
    // The target the kernels dispatch to in this process is what the tool will use too.
    CHECK(lines[2].rfind("simd target: " + simdnn::current_simd_target() + " (available: ", 0) == 0);
  }
}

}  // namespace test_version
