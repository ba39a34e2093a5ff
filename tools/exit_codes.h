// The exit codes of every simdnn tool, one scheme for all (documented in docs/api.md):
//
//   0  success
//   1  bad flags or usage (an unknown flag, a value out of range, contradictory options)
//   2  bad data: an input whose contents cannot be used (a malformed data set, image or model
//      file, data the model cannot take); the message names the file and what is wrong
//   3  training diverged (non-finite loss, or a loss far above where it started): no model
//      was written
//   4  I/O failure: a file or directory cannot be opened, read, written or renamed
//
// A tool's main parses with CLI11, then runs its work inside run_tool(), which maps the
// exception that escapes to its code and prints "<tool>: <message>" on stderr.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>

#include "simdnn/io_error.h"

namespace simdnn::tools {

enum ExitCode : int {
  kExitOk = 0,
  kExitUsage = 1,
  kExitBadData = 2,
  kExitDiverged = 3,
  kExitIoFailure = 4,
};

// A mistake in how the tool was called that CLI11 cannot see (e.g. two flags that exclude each
// other): exit 1.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Training diverged: exit 3. (simdnn::TrainingDiverged from <simdnn/fit.h> is mapped by the
// train tool itself, which knows what it did not write.)
struct DivergedError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The code for an exception that escaped a tool's work. std::invalid_argument and
// std::out_of_range come from the library's argument checks, i.e. from values the user gave.
inline int exit_code_for(const std::exception& e) {
  if (dynamic_cast<const UsageError*>(&e)) return kExitUsage;
  if (dynamic_cast<const DivergedError*>(&e)) return kExitDiverged;
  if (dynamic_cast<const simdnn::DataError*>(&e)) return kExitBadData;
  if (dynamic_cast<const simdnn::IoError*>(&e)) return kExitIoFailure;
  if (dynamic_cast<const std::invalid_argument*>(&e)) return kExitUsage;
  if (dynamic_cast<const std::out_of_range*>(&e)) return kExitUsage;
  return kExitIoFailure;  // anything else (bad_alloc, system_error): the environment failed
}

// CLI11's parse errors: --help and --version print and exit 0, everything else exits 1 (CLI11's
// own codes, 104 to 109, are not part of the scheme).
inline int exit_code_for_parse(const CLI::App& app, const CLI::ParseError& e) {
  return app.exit(e) == 0 ? kExitOk : kExitUsage;
}

// Runs `work` (returning the tool's exit code) and maps any exception to the scheme above,
// printing "<tool>: <message>" on stderr.
template <typename Work>
int run_tool(const char* tool, Work&& work) {
  try {
    return work();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", tool, e.what());
    return exit_code_for(e);
  }
}

}  // namespace simdnn::tools
