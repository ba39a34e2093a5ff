// promote: the gate between a newly trained model and the serving repository. Evaluates the
// candidate and the live model (the highest version in DIR/NAME/<version>/model.safetensors,
// serve's repository layout) on the same labelled set, and copies the candidate in as the next
// version only when it is not significantly worse (exact McNemar test) and meets
// --min-accuracy.
//
//   promote --candidate MODEL --repository DIR --name NAME --data DATA
//           [--min-accuracy A] [--alpha 0.05] [--json]
//
// Decision: promote when accuracy >= A and NOT (b > c and p < alpha), b being the test samples
// the live model gets right and the candidate wrong, c the reverse, p the two-sided exact
// McNemar p-value. Without a live version only --min-accuracy applies (the candidate becomes
// version 1).
//
// The copy: DIR/NAME/.tmp-promote-<pid>/model.safetensors (the bytes that were validated,
// synced), then one rename of that folder to DIR/NAME/<max version + 1>, then a sync of
// DIR/NAME. serve's repository scan skips names that start with '.', so it never sees a
// half-written version; a rename that finds the version taken (another promote) fails and
// changes nothing.
//
// Exit codes (tools/exit_codes.h): 0 promoted; 1 bad flags; 2 refused by the gate (the report
// on stdout says why) or bad data (a model or data set that cannot be used, models with
// different class names or input sizes: a message on stderr and no report); 4 I/O failure.
// Nothing in the repository changes unless the exit code is 0.
#include <CLI/CLI.hpp>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "simdnn/atomic_file.h"
#include "simdnn/evaluation.h"
#include "simdnn/io_error.h"
#include "simdnn/model.h"
#include "simdnn/model_comparison.h"
#include "tools/directory_publish.h"
#include "tools/exit_codes.h"
#include "tools/tool_inputs.h"
#include "tools/tool_version.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using simdnn::tools::UsageError;

namespace {

constexpr const char* kTool = "promote";
constexpr const char* kModelFileName = "model.safetensors";
constexpr const char* kTempPrefix = ".tmp-promote-";

struct Options {
  std::string candidate;
  std::string repository;
  std::string name;
  std::string data;
  double min_accuracy = 0.0;
  double alpha = 0.05;
  bool json = false;
};

// serve's rules (serving/model_repository.cc): a model name is letters, digits, '_', '-', '.',
// not starting with '.', at most 128 characters; a version is a directory named by a positive
// integer written without leading zeros or sign.
bool valid_model_name(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  return std::all_of(name.begin(), name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-' || c == '.';
  });
}
std::optional<int64_t> version_number(const std::string& text) {
  int64_t v = 0;
  const auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || r.ec != std::errc() || r.ptr != text.data() + text.size() || v <= 0 ||
      std::to_string(v) != text) {
    return std::nullopt;
  }
  return v;
}

struct Scan {
  int64_t max_version = 0;   // the highest version directory, with or without a model in it
  int64_t live_version = 0;  // the highest version directory with a model file (0: none)
};
Scan scan_versions(const fs::path& model_dir) {
  Scan s;
  std::error_code ec;
  if (!fs::exists(model_dir, ec)) return s;
  for (const auto& e : fs::directory_iterator(model_dir, ec)) {
    const auto v = version_number(e.path().filename().string());
    std::error_code dec;
    if (!v || !e.is_directory(dec)) continue;
    s.max_version = std::max(s.max_version, *v);
    if (fs::exists(e.path() / kModelFileName, dec)) s.live_version = std::max(s.live_version, *v);
  }
  if (ec) throw simdnn::IoError(model_dir.string() + ": cannot list: " + ec.message());
  return s;
}

struct Scores {
  simdnn::Evaluation evaluation;
  std::vector<int32_t> predicted;
};
Scores score(const simdnn::Model& model, const simdnn::Dataset& data) {
  const size_t features = data.images.pixels_per_image();
  const float scale = model.info().pixel_scale;
  Scores s;
  s.evaluation = simdnn::evaluate(model.network(), data.images.pixels, features,
                                  data.labels.labels, model.num_classes(), scale);
  s.predicted = simdnn::predict_classes(model.network(), data.images.pixels, features, scale);
  return s;
}

std::vector<double> per_class_accuracy(const simdnn::Evaluation& e) {
  std::vector<double> out;
  for (const auto& row : e.confusion) {
    size_t total = 0;
    for (size_t n : row) total += n;
    const size_t c = out.size();
    out.push_back(total ? static_cast<double>(row[c]) / static_cast<double>(total) : std::nan(""));
  }
  return out;
}

json metrics_json(const Scores& s) {
  json per_class = json::array();
  for (double a : per_class_accuracy(s.evaluation)) per_class.push_back(std::isnan(a) ? json() : json(a));
  return {{"accuracy", s.evaluation.accuracy},
          {"loss", s.evaluation.loss},
          {"count", s.evaluation.count},
          {"per_class_accuracy", per_class}};
}

// Removes ".tmp-promote-<pid>" folders of promote runs that died before their rename (the pid
// is gone); a live run's folder is left alone.
void remove_stale_temp_dirs(const fs::path& model_dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(model_dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(kTempPrefix, 0) != 0) continue;
    const auto pid = version_number(n.substr(std::string_view(kTempPrefix).size()));
    if (!pid || (::kill(static_cast<pid_t>(*pid), 0) != 0 && errno == ESRCH)) {
      std::error_code rec;
      fs::remove_all(e.path(), rec);
    }
  }
}

// Copies `bytes` into model_dir/<version>/model.safetensors atomically (see the file comment).
void install_version(const fs::path& model_dir, int64_t version, const std::vector<uint8_t>& bytes) {
  std::error_code ec;
  fs::create_directories(model_dir, ec);
  if (ec) throw simdnn::IoError(model_dir.string() + ": cannot create: " + ec.message());
  remove_stale_temp_dirs(model_dir);
  const fs::path tmp = model_dir / (kTempPrefix + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  simdnn::tools::TempDirGuard guard(tmp);
  if (!fs::create_directory(tmp, ec)) {
    throw simdnn::IoError(tmp.string() + ": cannot create: " + ec.message());
  }
  // write_file_atomically fsyncs the file and its folder.
  simdnn::write_file_atomically(tmp / kModelFileName, bytes);
  simdnn::tools::publish_directory(tmp, model_dir / std::to_string(version));
  guard.release();
}

int run(const Options& o) {
  if (!valid_model_name(o.name)) {
    throw UsageError("--name \"" + o.name +
                     "\": model names use letters, digits, '_', '-' and '.', not starting "
                     "with '.', at most 128 characters (as serve requires)");
  }
  std::error_code ec;
  if (!fs::is_directory(o.repository, ec)) {
    throw simdnn::IoError("--repository " + o.repository + ": not a directory");
  }
  const fs::path model_dir = fs::path(o.repository) / o.name;

  simdnn::tools::LoadedModel candidate = simdnn::tools::load_model_file(o.candidate);
  const simdnn::ModelInfo& info = candidate.model.info();
  const Scan scan = scan_versions(model_dir);
  std::optional<simdnn::tools::LoadedModel> live;
  fs::path live_path;
  if (scan.live_version > 0) {
    live_path = model_dir / std::to_string(scan.live_version) / kModelFileName;
    live = simdnn::tools::load_model_file(live_path);
    const simdnn::ModelInfo& li = live->model.info();
    if (li.class_names != info.class_names) {
      throw simdnn::DataError(o.candidate + ": class names differ from the live model " +
                              live_path.string() + "'s (" + std::to_string(info.class_names.size()) +
                              " vs " + std::to_string(li.class_names.size()) +
                              " classes, or other names/order): not the same task");
    }
    if (li.input_height != info.input_height || li.input_width != info.input_width) {
      throw simdnn::DataError(o.candidate + ": input " + std::to_string(info.input_height) + "x" +
                              std::to_string(info.input_width) + " but the live model " +
                              live_path.string() + " takes " + std::to_string(li.input_height) +
                              "x" + std::to_string(li.input_width));
    }
  }

  const simdnn::Dataset data =
      simdnn::tools::load_labelled_data(o.data, "t10k", candidate.model.num_classes(),
                                        candidate.model.info().class_names);
  if (data.images.rows != info.input_height || data.images.cols != info.input_width) {
    throw simdnn::DataError(o.data + ": t10k images are " + std::to_string(data.images.rows) + "x" +
                            std::to_string(data.images.cols) + " but the models take " +
                            std::to_string(info.input_height) + "x" +
                            std::to_string(info.input_width));
  }
  if (data.images.count == 0) throw simdnn::DataError(o.data + ": the t10k set is empty");

  const Scores cand = score(candidate.model, data);
  std::optional<Scores> live_scores;
  simdnn::PairedCounts pairs;
  double p = 1.0;
  if (live) {
    live_scores = score(live->model, data);
    pairs = simdnn::paired_counts(live_scores->predicted, cand.predicted, data.labels.labels);
    p = simdnn::mcnemar_exact_p(pairs.first_only, pairs.second_only);
  }
  const size_t b = pairs.first_only, c = pairs.second_only;

  bool promote = true;
  std::string reason;
  char buf[256];
  if (cand.evaluation.accuracy < o.min_accuracy) {
    promote = false;
    std::snprintf(buf, sizeof buf, "candidate accuracy %.4f is below --min-accuracy %.4f",
                  cand.evaluation.accuracy, o.min_accuracy);
    reason = buf;
  } else if (live && b > c && p < o.alpha) {
    promote = false;
    std::snprintf(buf, sizeof buf,
                  "candidate is significantly worse than live version %lld (b=%zu > c=%zu, "
                  "McNemar p=%.3g < alpha %.3g)",
                  static_cast<long long>(scan.live_version), b, c, p, o.alpha);
    reason = buf;
  } else if (live) {
    std::snprintf(buf, sizeof buf,
                  "not significantly worse than live version %lld (b=%zu, c=%zu, McNemar "
                  "p=%.3g, alpha %.3g) and accuracy %.4f >= %.4f",
                  static_cast<long long>(scan.live_version), b, c, p, o.alpha,
                  cand.evaluation.accuracy, o.min_accuracy);
    reason = buf;
  } else {
    std::snprintf(buf, sizeof buf, "no live version; accuracy %.4f >= --min-accuracy %.4f",
                  cand.evaluation.accuracy, o.min_accuracy);
    reason = buf;
  }
  const int64_t new_version = scan.max_version + 1;
  if (promote) install_version(model_dir, new_version, candidate.bytes);

  json report;
  report["decision"] = promote ? "promoted" : "refused";
  report["reason"] = reason;
  report["model"] = o.name;
  report["candidate"] = o.candidate;
  report["data"] = o.data;
  report["samples"] = data.images.count;
  report["candidate_metrics"] = metrics_json(cand);
  report["live_version"] = live ? json(scan.live_version) : json();
  report["live_metrics"] = live_scores ? metrics_json(*live_scores) : json();
  report["b"] = b;
  report["c"] = c;
  report["p_value"] = p;
  report["alpha"] = o.alpha;
  report["min_accuracy"] = o.min_accuracy;
  report["version"] = promote ? json(new_version) : json();
  report["path"] = promote ? json((model_dir / std::to_string(new_version) / kModelFileName).string())
                           : json();
  if (o.json) {
    std::printf("%s\n", report.dump(-1, ' ', false, json::error_handler_t::replace).c_str());
  } else {
    const auto& names = info.class_names;
    if (live_scores) {
      std::printf("live version %lld: accuracy %.4f, loss %.4f\n",
                  static_cast<long long>(scan.live_version), live_scores->evaluation.accuracy,
                  live_scores->evaluation.loss);
    } else {
      std::printf("live version: none\n");
    }
    std::printf("candidate:  accuracy %.4f, loss %.4f (%zu samples of %s t10k)\n",
                cand.evaluation.accuracy, cand.evaluation.loss, data.images.count, o.data.c_str());
    if (live_scores) {
      std::printf("discordant: b=%zu (live right, candidate wrong), c=%zu (live wrong, "
                  "candidate right), exact McNemar p=%.4g\n",
                  b, c, p);
      const auto la = per_class_accuracy(live_scores->evaluation);
      const auto ca = per_class_accuracy(cand.evaluation);
      std::printf("\n%5s  %-20s %8s %9s %8s\n", "class", "name", "live", "candidate", "change");
      for (size_t k = 0; k < ca.size(); ++k) {
        std::printf("%5zu  %-20s %8.4f %9.4f %+8.4f\n", k, names[k].c_str(), la[k], ca[k],
                    ca[k] - la[k]);
      }
      std::printf("\n");
    }
    if (promote) {
      std::printf("promoted: %s as version %lld (%s)\n", o.candidate.c_str(),
                  static_cast<long long>(new_version), reason.c_str());
    } else {
      std::printf("refused: %s; the repository is unchanged\n", reason.c_str());
    }
  }
  return promote ? simdnn::tools::kExitOk : simdnn::tools::kExitBadData;
}

constexpr const char* kFooter = R"(
Evaluates --candidate and the live model (the highest version DIR/NAME/<n>/model.safetensors)
on the test split of --data (or all of it without one), and copies the candidate into DIR/NAME/<highest version + 1>/ only
when its accuracy is >= --min-accuracy and it is not significantly worse than the live model:
refused when b > c and the exact McNemar p-value < --alpha (b: samples the live model gets
right and the candidate wrong, c: the reverse). Without a live version only --min-accuracy
applies. Both models must have the same class names and input size.

The copy is written into DIR/NAME/.tmp-promote-<pid>/ (ignored by serve), synced, and renamed
to the version number; serve picks it up at its next poll.

Exit codes: 0 promoted, 1 bad flags, 2 refused by the gate (the report says why) or bad data (a
model or data set that cannot be used, mismatched models: message on stderr, no report),
4 I/O failure. The repository changes only on exit 0.
)";

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Promotes a candidate model into a serving repository if it passes the gate"};
  app.footer(kFooter);
  Options o;
  app.set_version_flag("--version", [] { return simdnn::tools::version_text(kTool); },
                       "Print the version, the commit and the SIMD target, then exit");
  app.add_option("--candidate", o.candidate, "The new model file (safetensors)")->required();
  app.add_option("--repository", o.repository, "Model repository directory (serve's layout)")
      ->required();
  app.add_option("--name", o.name, "Model name: the repository's subdirectory")->required();
  app.add_option("--data", o.data,
                 "labelled data set (MNIST IDX directory, image folder or CSV, as train reads): its test split is the evaluation set, or the whole set when it has no split")
      ->required();
  app.add_option("--min-accuracy", o.min_accuracy, "Refuse a candidate below this accuracy")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--alpha", o.alpha, "Significance level of the McNemar test")
      ->capture_default_str()
      ->check(CLI::Range(1e-12, 1.0));
  app.add_flag("--json", o.json, "Print the report as one JSON object");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return simdnn::tools::exit_code_for_parse(app, e);
  }
  return simdnn::tools::run_tool(kTool, [&] { return run(o); });
}
