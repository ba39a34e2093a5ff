// tools/train: trains a dense classifier on a labelled image data set (MNIST IDX, an image
// folder with one subfolder per class, or CSV; <simdnn/dataset.h>) and writes the model.
// Defaults reproduce the Keras example: 784 -> Dense 128 ReLU -> Dense 10 softmax, Adam,
// sparse categorical cross-entropy, batch 32, 5 epochs, on Fashion-MNIST.
//
// The loop itself is simdnn::fit (nn/include/simdnn/fit.h); this file is flags, data loading,
// output and exit codes.
//
// Exit codes (tools/exit_codes.h): 0 success, 1 bad flags or usage, 2 bad data (including a
// model that would not load back), 3 diverged (non-finite loss, or a loss far above its start;
// no model written), 4 I/O failure (e.g. --out's directory missing or not writable: checked
// before anything is loaded).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <span>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "simdnn/atomic_file.h"
#include "simdnn/checkpoint.h"
#include "simdnn/data_parallel.h"
#include "simdnn/dataset.h"
#include "simdnn/fit.h"
#include "simdnn/idx.h"
#include "simdnn/io_error.h"
#include "simdnn/lr_schedule.h"
#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/optimizer.h"
#include "simdnn/random.h"
#include "simdnn/reference_profile.h"
#include "simdnn/regularization.h"
#include "simdnn/safetensors.h"
#include "simdnn/simd_targets.h"
#include "simdnn/threading.h"
#include "tools/exit_codes.h"
#include "tools/file_hash.h"
#include "tools/training_plot.h"
#include "tool_version.h"

#if SIMDNN_WITH_MPI
#include "simdnn/distributed/mpi.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Options {
  std::string data = "/usr/share/datasets/fashion-mnist";
  std::string hidden = "128";
  std::string activation = "relu";
  int epochs = 5;
  int64_t batch = 32;
  double lr = -1;  // optimizer default
  std::string optimizer = "adam";
  double momentum = 0.0;
  double weight_decay = 0.004;
  uint64_t seed = 1;
  int threads = 0;
  double val_split = 0.0;
  std::string out = "model.safetensors";
  std::string checkpoint;  // default: <out>.ckpt
  std::string resume;
  std::string class_names = "auto";
  std::string image_size;  // HxW: image folders resized to it; CSV rows of that many pixels
  bool json = false;
  bool progress = true;
  std::string plot;  // SVG of the curves and the confusion matrix; empty: none
  double progress_interval = 10.0;  // seconds between in-epoch lines when stderr is no terminal
  // Keras-style training features.
  int early_stopping = 0;  // patience in epochs; 0: off
  bool restore_best = true;
  std::string lr_schedule = "constant";
  int lr_step_epochs = 10;
  double lr_step_factor = 0.5;
  int lr_plateau_patience = 2;
  double lr_plateau_factor = 0.5;
  double lr_min = 0.0;
  double divergence_factor = 3.0;
  double dropout = 0.0;
  double l2 = 0.0;
  std::string class_weights;  // "", "balanced" or "w0,w1,..."
  // Fine-tuning.
  std::string init_from;
  int freeze = 0;
  int64_t model_version = 0;  // 0: parent's + 1 with --init-from, else 1
  // Which flags the user gave (the rest are defaults), for --init-from's checks.
  bool hidden_given = false, activation_given = false;
  std::vector<std::string> command_line;
  // Data parallel (docs/distributed.md): --distributed under mpirun, --micro-shards K.
  bool distributed = false;
  int64_t micro_shards = 0;
};

// The processes this run trains with: one (the plain run), or an MPI job's. Process 0 (the
// lead) alone writes the checkpoints, the model, the plot and everything on stdout.
struct Job {
  int rank = 0;
  int size = 1;
  simdnn::Collective* collective = nullptr;  // set under --distributed
  bool lead() const { return rank == 0; }
};

using simdnn::tools::UsageError;

std::vector<size_t> parse_hidden(const std::string& s) {
  std::vector<size_t> sizes;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t pos = 0;
    long long v = -1;
    try {
      v = std::stoll(item, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos != item.size() || v <= 0 || v > (1 << 20)) {
      throw UsageError("--hidden: '" + item + "' is not a positive layer size (e.g. 128,64)");
    }
    sizes.push_back(static_cast<size_t>(v));
  }
  if (sizes.empty()) throw UsageError("--hidden: give at least one layer size");
  return sizes;
}

// The class names, which also fix the number of classes: a comma-separated list names them
// all; otherwise there are as many classes as the labels need, named after Fashion-MNIST's or
// the digits' ten when they fit in ten ("auto": Fashion-MNIST when the data's path says so),
// or "0", "1", ... beyond.
std::vector<std::string> resolve_class_names(const std::string& flag, const std::string& dir,
                                             size_t label_classes) {
  if (flag != "auto" && flag != "fashion" && flag != "digits") {
    std::vector<std::string> names;
    std::stringstream ss(flag);
    std::string item;
    while (std::getline(ss, item, ',')) names.push_back(item);
    if (names.size() < label_classes || names.size() < 2) {
      throw UsageError("--class-names: " + std::to_string(names.size()) +
                       " names, but the labels go up to " + std::to_string(label_classes - 1));
    }
    return names;
  }
  if (label_classes <= 10) {
    std::string lower = dir;
    std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
    if (flag == "fashion" || (flag == "auto" && lower.find("fashion") != std::string::npos)) {
      return simdnn::fashion_mnist_class_names();
    }
    return simdnn::digit_class_names();
  }
  std::vector<std::string> names;
  for (size_t c = 0; c < label_classes; ++c) names.push_back(std::to_string(c));
  return names;
}

// --image-size HxW and an explicit --class-names list, as the data loader takes them.
simdnn::DatasetOptions dataset_options(const Options& o) {
  simdnn::DatasetOptions d;
  if (!o.image_size.empty()) {
    unsigned long h = 0, w = 0;
    char x = 0, extra = 0;
    if (std::sscanf(o.image_size.c_str(), "%lu%c%lu%c", &h, &x, &w, &extra) != 3 ||
        (x != 'x' && x != 'X') || h == 0 || w == 0 || h > simdnn::kMaxInputSide ||
        w > simdnn::kMaxInputSide) {
      throw UsageError("--image-size: expected HEIGHTxWIDTH with sides 1.." +
                       std::to_string(simdnn::kMaxInputSide) + ", e.g. 28x28, got '" +
                       o.image_size + "'");
    }
    d.height = h;
    d.width = w;
  }
  if (o.class_names != "auto" && o.class_names != "fashion" && o.class_names != "digits") {
    d.class_names = resolve_class_names(o.class_names, o.data, 0);
  }
  return d;
}

// Classes the labels need: the largest label + 1.
size_t label_classes(const simdnn::LabelSet& labels) {
  const auto it = std::max_element(labels.labels.begin(), labels.labels.end());
  return it == labels.labels.end() ? 0 : size_t{*it} + 1;
}

std::unique_ptr<simdnn::Optimizer> make_optimizer(const Options& o) {
  if (o.optimizer == "adam" || o.optimizer == "adamw") {
    simdnn::AdamOptions a;
    if (o.lr > 0) a.learning_rate = static_cast<float>(o.lr);
    if (o.optimizer == "adamw") {
      a.weight_decay = static_cast<float>(o.weight_decay);
      return simdnn::make_adamw(a);
    }
    return std::make_unique<simdnn::Adam>(a);
  }
  if (o.optimizer == "sgd") {
    simdnn::SgdOptions s;
    if (o.lr > 0) s.learning_rate = static_cast<float>(o.lr);
    s.momentum = static_cast<float>(o.momentum);
    return std::make_unique<simdnn::Sgd>(s);
  }
  throw UsageError("--optimizer: unknown '" + o.optimizer + "' (adam, adamw or sgd)");
}

// The settings a resumed run must share with the run that wrote the checkpoint.
json run_config(const Options& o, const std::vector<size_t>& hidden) {
  return {{"hidden", hidden}, {"activation", o.activation}, {"batch", o.batch},
          {"lr", o.lr},       {"optimizer", o.optimizer},   {"momentum", o.momentum},
          {"weight_decay", o.weight_decay}, {"seed", o.seed}, {"val_split", o.val_split}};
}

void print_progress(int epoch, int epochs, size_t done, size_t total, double loss,
                    double acc, double seconds) {
  const int width = 30;
  const int filled = total ? static_cast<int>(width * done / total) : width;
  const double rate = seconds > 0 ? done / seconds : 0;
  const double eta = rate > 0 ? (total - done) / rate : 0;
  std::fprintf(stderr, "\repoch %d/%d [%.*s%*s] %zu/%zu loss %.4f acc %.4f %.0f samples/s ETA %.1fs ",
               epoch, epochs, filled, "==============================", width - filled, "",
               done, total, loss, acc, rate, eta);
  std::fflush(stderr);
}

// Progress when stderr is not a terminal (a pipe, a file, the journal), like Keras' verbose=2:
// plain lines, no carriage returns. Within an epoch, at most one line per 10% of it and only
// once --progress-interval seconds have passed since the last line, so a short epoch logs
// nothing until its end and a long one logs no more than ten lines.
class ProgressLog {
 public:
  ProgressLog(int epochs, double interval) : epochs_(epochs), interval_(interval) {}

  void on_batch(const simdnn::BatchProgress& p) {
    if (p.epoch != epoch_) {
      epoch_ = p.epoch;
      next_tenth_ = 1;
      last_line_seconds_ = 0.0;
    }
    if (p.total == 0 || p.done >= p.total) return;  // the epoch's end has its own line
    const size_t tenth = p.done * 10 / p.total;
    if (tenth < next_tenth_) return;
    next_tenth_ = tenth + 1;
    if (p.seconds - last_line_seconds_ < interval_) return;
    last_line_seconds_ = p.seconds;
    const double rate = p.seconds > 0 ? static_cast<double>(p.done) / p.seconds : 0.0;
    const double eta = rate > 0 ? static_cast<double>(p.total - p.done) / rate : 0.0;
    std::fprintf(stderr, "epoch %d/%d - %zu%% %zu/%zu - %.1fs - loss %.4f - acc %.4f - ETA %.1fs\n",
                 p.epoch, epochs_, tenth * 10, p.done, p.total, p.seconds, p.loss, p.accuracy,
                 eta);
    std::fflush(stderr);
  }

  void on_epoch_end(const simdnn::EpochResult& r) const {
    std::fprintf(stderr, "epoch %d/%d - %zu/%zu - %.1fs - %.0f samples/s - loss %.4f - acc %.4f",
                 r.epoch, epochs_, r.samples, r.samples, r.seconds,
                 r.seconds > 0 ? static_cast<double>(r.samples) / r.seconds : 0.0, r.loss,
                 r.accuracy);
    if (r.validation) {
      std::fprintf(stderr, " - val_loss %.4f - val_acc %.4f", r.validation->loss,
                   r.validation->accuracy);
    }
    std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

 private:
  int epochs_;
  double interval_;
  int epoch_ = 0;
  size_t next_tenth_ = 1;
  double last_line_seconds_ = 0.0;
};

// Per-epoch lines on stdout: text, or JSON lines with --json.
// Training and validation only: the test set is measured once, at the end, so that nobody picks
// an epoch or a setting by it (which would make it a validation set).
void print_epoch(const Options& o, const simdnn::EpochResult& r) {
  if (o.json) {
    json line = {{"event", "epoch"},         {"epoch", r.epoch},
                 {"epochs", o.epochs},       {"train_loss", r.loss},
                 {"train_accuracy", r.accuracy}, {"learning_rate", r.learning_rate},
                 {"seconds", r.seconds},
                 {"samples_per_second", r.samples / r.seconds}};
    if (r.validation) {
      line["val_loss"] = r.validation->loss;
      line["val_accuracy"] = r.validation->accuracy;
    }
    std::cout << line << std::endl;
  } else {
    std::printf("epoch %d/%d  loss %.4f  acc %.4f", r.epoch, o.epochs, r.loss, r.accuracy);
    if (r.validation) {
      std::printf("  val_loss %.4f  val_acc %.4f", r.validation->loss, r.validation->accuracy);
    }
    if (o.lr_schedule != "constant") std::printf("  lr %.3g", r.learning_rate);
    std::printf("  %.2fs (%.0f samples/s)\n", r.seconds, r.samples / r.seconds);
    std::fflush(stdout);
  }
}

// --plot: the curves of this run's epochs and one confusion matrix. The matrix is the
// validation set's when there is one (after the last epoch); else the test set's, labelled as
// a final report, since choosing settings by the test set would make it a validation set.
void write_plot(const Options& o, const simdnn::ModelInfo& info, const simdnn::History& history,
                size_t val_count, const simdnn::Evaluation& test_eval, size_t test_count) {
  simdnn::tools::TrainingPlot plot;
  plot.title = "simdnn train: " + o.data + " (hidden " + o.hidden + ", " + o.optimizer +
               ", batch " + std::to_string(o.batch) + ", seed " + std::to_string(o.seed) + ")";
  plot.epochs = history.epochs;
  plot.class_names = info.class_names;
  if (val_count > 0 && !history.epochs.empty() && history.epochs.back().validation) {
    plot.confusion = history.epochs.back().validation->confusion;
    plot.confusion_label = "validation set (" + std::to_string(val_count) +
                           " images), after epoch " + std::to_string(history.epochs.back().epoch);
  } else {
    plot.confusion = test_eval.confusion;
    plot.confusion_label = "test set (" + std::to_string(test_count) +
                           " images), final model: a report, not for choosing settings";
  }
  const std::string svg = simdnn::tools::training_plot_svg(plot);
  simdnn::write_file_atomically(
      o.plot, std::span(reinterpret_cast<const uint8_t*>(svg.data()), svg.size()));
}

// The final report: test metrics, per-class accuracy and the confusion matrix.
void print_summary(const Options& o, const std::filesystem::path& out, const simdnn::Model& model,
                   const simdnn::Evaluation& test_eval, double train_seconds, const json& run) {
  const auto& names = model.info().class_names;
  const size_t num_classes = test_eval.confusion.size() == model.num_classes() ? model.num_classes() : 0;
  std::vector<double> per_class(num_classes, 0.0);
  for (size_t c = 0; c < num_classes; ++c) {
    size_t row = std::accumulate(test_eval.confusion[c].begin(), test_eval.confusion[c].end(),
                                 size_t{0});
    per_class[c] = row ? static_cast<double>(test_eval.confusion[c][c]) / row : 0.0;
  }
  if (o.json) {
    std::cout << json{{"event", "done"},
                      {"model", out.string()},
                      {"test_loss", num_classes ? json(test_eval.loss) : json(nullptr)},
                      {"test_accuracy", num_classes ? json(test_eval.accuracy) : json(nullptr)},
                      {"train_seconds", train_seconds},
                      {"class_names", names},
                      {"per_class_accuracy", per_class},
                      {"confusion", test_eval.confusion},
                      {"version", model.info().version},
                      {"epochs_run", run.at("epochs_run")},
                      {"best_epoch", run.at("best_epoch")},
                      {"stopped_early", run.at("stopped_early")},
                      {"restored_best", run.at("restored_best")}}
              << std::endl;
    return;
  }
  if (run.at("stopped_early").get<bool>()) {
    std::printf("early stopping after epoch %d", run.at("epochs_run").get<int>());
  } else {
    std::printf("ran %d epochs", run.at("epochs_run").get<int>());
  }
  if (run.at("restored_best").get<bool>()) {
    std::printf("; restored the weights of epoch %d (lowest val_loss)", run.at("best_epoch").get<int>());
  }
  std::printf("\n");
  if (num_classes == 0) {
    std::printf("\nno test set to report; training time %.2fs\n", train_seconds);
    std::printf("model version %s written to %s\n", model.info().version.c_str(), out.c_str());
    return;
  }
  std::printf("\ntest accuracy %.4f, loss %.4f; training time %.2fs\n", test_eval.accuracy,
              test_eval.loss, train_seconds);
  std::printf("confusion matrix (rows: true class, columns: predicted)\n%14s", "");
  for (size_t c = 0; c < num_classes; ++c) std::printf(" %5zu", c);
  std::printf("   accuracy\n");
  for (size_t r = 0; r < num_classes; ++r) {
    std::printf("%2zu %-11.11s", r, names[r].c_str());
    for (size_t c = 0; c < num_classes; ++c) std::printf(" %5zu", test_eval.confusion[r][c]);
    std::printf("   %.3f\n", per_class[r]);
  }
  std::printf("model version %s written to %s\n", model.info().version.c_str(), out.c_str());
}

// Fails at once (exit 4), before any data is read or an epoch is spent, when --out cannot be
// written: its directory is missing, is not a directory or is not writable, or --out itself
// is a directory.
void check_out_writable(const std::filesystem::path& out) {
  namespace fs = std::filesystem;
  const fs::path dir = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    throw simdnn::IoError("--out " + out.string() + ": the directory " + dir.string() +
                          " does not exist");
  }
  if (!fs::is_directory(dir, ec)) {
    throw simdnn::IoError("--out " + out.string() + ": " + dir.string() + " is not a directory");
  }
  if (access(dir.c_str(), W_OK | X_OK) != 0) {
    throw simdnn::IoError("--out " + out.string() + ": the directory " + dir.string() +
                          " is not writable: " + std::strerror(errno));
  }
  if (fs::is_directory(out, ec)) {
    throw simdnn::IoError("--out " + out.string() + " is a directory, not a model file");
  }
}

// "2026-11-29T14:31:38Z".
// The model's creation time: now, or SOURCE_DATE_EPOCH (seconds since the Unix epoch) when the
// environment sets it, the reproducible-builds convention: then the same command, data, seed
// and thread count write the same file bit for bit, provenance included.
std::string utc_now_iso8601() {
  std::time_t now = std::time(nullptr);
  if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH"); epoch && *epoch) {
    const std::string text(epoch);
    if (text.size() > 12 || !std::all_of(text.begin(), text.end(), ::isdigit)) {
      throw simdnn::tools::UsageError("SOURCE_DATE_EPOCH: '" + text +
                                      "' is not a number of seconds since 1970-01-01");
    }
    now = static_cast<std::time_t>(std::stoll(text));
  }
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// A model version label as a positive integer, or 0 when it is not one ("seed1", "").
int64_t numeric_version(const std::string& v) {
  if (v.empty() || v.size() > 18 || !std::all_of(v.begin(), v.end(), ::isdigit)) return 0;
  return std::stoll(v);
}

std::string join(const std::vector<size_t>& v) {
  std::string s;
  for (size_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

// The end of a data-parallel run: every process waits here until the lead has written its
// files (one tiny exchange). Nothing to wait for alone.
void finish_together(const Job& job) {
  if (!job.collective || job.size == 1) return;
  const std::byte mine{1};
  std::vector<std::byte> all(static_cast<size_t>(job.size));
  const std::vector<size_t> counts(static_cast<size_t>(job.size), 1);
  job.collective->all_gather(std::span(&mine, 1), all, counts);
}

// --init-from: the parent model, and the checks that the run continues its architecture:
// input size (the data's), hidden sizes and activation (flags given), class names.
simdnn::Model load_parent(const Options& o) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_regular_file(o.init_from, ec)) {
    throw simdnn::IoError("--init-from " + o.init_from + ": no such model file");
  }
  try {
    return simdnn::load_model(o.init_from);
  } catch (const simdnn::DataError&) {
    throw;
  } catch (const simdnn::IoError& e) {
    // The file is there: what load_model refuses is its contents.
    throw simdnn::DataError(std::string("--init-from: ") + e.what());
  }
}

void check_parent_architecture(const Options& o, const simdnn::Model& parent,
                               const std::vector<size_t>& hidden, simdnn::Activation activation) {
  std::vector<size_t> parent_hidden;
  const auto& layers = parent.layers();
  for (size_t i = 0; i + 1 < layers.size(); ++i) parent_hidden.push_back(layers[i].units);
  if (o.hidden_given && parent_hidden != hidden) {
    throw UsageError("--init-from " + o.init_from + ": the model's hidden layers are " +
                     join(parent_hidden) + ", --hidden says " + join(hidden));
  }
  for (size_t i = 0; i + 1 < layers.size(); ++i) {
    if (o.activation_given && layers[i].activation != activation) {
      throw UsageError("--init-from " + o.init_from + ": the model's hidden activation is " +
                       simdnn::activation_name(layers[i].activation) + ", --activation says " +
                       o.activation);
    }
  }
}

int run(const Options& o, const Job& job) {
  if (o.batch <= 0) throw UsageError("--batch must be at least 1, got " + std::to_string(o.batch));
  if (o.epochs <= 0) throw UsageError("--epochs must be at least 1, got " + std::to_string(o.epochs));
  if (o.val_split < 0 || o.val_split >= 1) throw UsageError("--val-split must be in [0, 1)");
  if (o.threads < 0) throw UsageError("--threads must be >= 0 (0 = all cores)");
  if (!o.plot.empty() && std::filesystem::path(o.plot).extension() != ".svg") {
    throw UsageError("--plot writes an SVG picture: give a file name ending in .svg, got '" +
                     o.plot + "'");
  }
  if (!(o.progress_interval >= 0)) throw UsageError("--progress-interval must be >= 0 seconds");
  if (o.early_stopping < 0) throw UsageError("--early-stopping must be >= 0 epochs (0 = off)");
  if (o.early_stopping > 0 && o.val_split <= 0) {
    throw UsageError("--early-stopping watches the validation loss: give --val-split > 0 too");
  }
  if (!(o.dropout >= 0 && o.dropout < 1)) throw UsageError("--dropout must be in [0, 1)");
  if (!(o.l2 >= 0) || !std::isfinite(o.l2)) throw UsageError("--l2 must be >= 0");
  if (!(o.divergence_factor >= 0)) throw UsageError("--divergence-factor must be >= 0 (0 = off)");
  if (o.freeze < 0) throw UsageError("--freeze must be >= 0 layers");
  if (o.model_version < 0) throw UsageError("--model-version must be a positive integer");
  if (!o.init_from.empty() && !o.resume.empty()) {
    throw UsageError("--init-from and --resume exclude each other (a checkpoint already holds "
                     "the weights to continue from)");
  }
  const std::vector<size_t> hidden = parse_hidden(o.hidden);
  const simdnn::Activation activation = simdnn::parse_activation(o.activation);
  std::unique_ptr<simdnn::Optimizer> optimizer = make_optimizer(o);
  std::optional<simdnn::LrScheduleOptions> schedule;
  if (o.lr_schedule != "constant") {
    simdnn::LrScheduleOptions s;
    s.kind = simdnn::parse_lr_schedule(o.lr_schedule);
    s.step_epochs = o.lr_step_epochs;
    s.step_factor = o.lr_step_factor;
    s.plateau_patience = o.lr_plateau_patience;
    s.plateau_factor = o.lr_plateau_factor;
    s.min_lr = o.lr_min;
    // The schedule checks its values; a mistake in them is the user's flags.
    try {
      const simdnn::LrSchedule validated(s, optimizer->learning_rate(), o.epochs);
      (void)validated;
    } catch (const std::invalid_argument& e) {
      throw UsageError(std::string("--lr-schedule ") + o.lr_schedule + ": " + e.what());
    }
    schedule = s;
  }
  if (o.micro_shards < 0) throw UsageError("--micro-shards must be >= 0 (0 = one per process)");
  if (o.micro_shards > 0 && o.micro_shards < job.size) {
    throw UsageError("--micro-shards " + std::to_string(o.micro_shards) + " is fewer than the " +
                     std::to_string(job.size) + " processes: each needs at least one");
  }
  const std::filesystem::path out = o.out;
  const std::filesystem::path checkpoint = o.checkpoint.empty() ? o.out + ".ckpt" : o.checkpoint;
  if (job.lead()) {
    check_out_writable(out);
    if (!o.checkpoint.empty()) check_out_writable(checkpoint);

    // Temporary files of earlier runs that were killed mid-write (their process is gone).
    simdnn::remove_stale_temp_files(out);
    simdnn::remove_stale_temp_files(checkpoint);
  }

  simdnn::set_num_threads(o.threads);
  const int threads = simdnn::resolve_threads(o.threads);

  std::optional<simdnn::Model> parent;
  if (!o.init_from.empty()) {
    parent.emplace(load_parent(o));
    check_parent_architecture(o, *parent, hidden, activation);
  }

  // Labels are checked against the class count once it is known (the train set's labels and
  // the names fix it), so the test set is loaded with that limit. An image folder's classes
  // are its folder names unless --class-names lists them (then folders are matched by name).
  simdnn::DatasetOptions data_options = dataset_options(o);
  // Fine-tuning: an image folder's subfolders are matched to the parent's classes by name (an
  // exported feedback set may lack a class, which must not shift the others' labels).
  if (parent && data_options.class_names.empty()) data_options.class_names = parent->info().class_names;
  simdnn::LoadedDataset loaded = *simdnn::load_dataset(o.data, "train", data_options);
  simdnn::Dataset train = std::move(loaded.data);
  simdnn::ModelInfo info;
  info.input_height = train.images.rows;
  info.input_width = train.images.cols;
  if (parent) {
    const simdnn::ModelInfo& p = parent->info();
    if (p.input_height != info.input_height || p.input_width != info.input_width) {
      throw simdnn::DataError(o.data + ": images are " + std::to_string(info.input_height) + "x" +
                              std::to_string(info.input_width) + ", the --init-from model " +
                              o.init_from + " takes " + std::to_string(p.input_height) + "x" +
                              std::to_string(p.input_width));
    }
    if (o.class_names != "auto") {
      const auto names = resolve_class_names(o.class_names, o.data, label_classes(train.labels));
      if (names != p.class_names) {
        throw UsageError("--class-names differ from the --init-from model's " +
                         json(p.class_names).dump());
      }
    }
    if (label_classes(train.labels) > p.class_names.size()) {
      throw simdnn::DataError(o.data + ": the train labels go up to " +
                              std::to_string(label_classes(train.labels) - 1) +
                              ", the --init-from model has " +
                              std::to_string(p.class_names.size()) + " classes");
    }
    info.class_names = p.class_names;
    info.pixel_scale = p.pixel_scale;
  } else {
    info.class_names = loaded.class_names.empty()
                           ? resolve_class_names(o.class_names, o.data, label_classes(train.labels))
                           : loaded.class_names;
  }
  const int64_t parent_version = parent ? numeric_version(parent->info().version) : 0;
  int64_t version = o.model_version;
  if (version == 0 && parent) {
    if (parent_version == 0) {
      throw UsageError("--init-from " + o.init_from + ": its version \"" +
                       parent->info().version +
                       "\" is not a number, so the next one cannot be derived: give "
                       "--model-version N");
    }
    version = parent_version + 1;
  }
  if (version == 0) version = 1;
  info.version = std::to_string(version);
  const size_t num_classes = info.class_names.size();
  data_options.num_classes = num_classes;
  if (data_options.class_names.empty()) data_options.class_names = loaded.class_names;
  data_options.height = info.input_height;  // the test images must match (folders: resized)
  data_options.width = info.input_width;
  // No test split (an image folder without train/ and test/, a lone CSV): no test metrics.
  std::optional<simdnn::LoadedDataset> test_loaded =
      simdnn::load_dataset(o.data, "test", data_options);
  const simdnn::Dataset test = test_loaded ? std::move(test_loaded->data) : simdnn::Dataset{};
  const size_t features = info.input_size();

  simdnn::Rng rng(o.seed);
  simdnn::Model model = simdnn::Model::mlp(info, hidden, activation, num_classes, rng);
  if (parent) {
    // The parent's layers and weights, this run's info (version, later the provenance).
    model = parent->clone();
    model.info() = info;
  }
  // --freeze N: the first N Dense layers keep their weights (fine-tuning the rest).
  {
    size_t dense_layers = model.layers().size();
    if (static_cast<size_t>(o.freeze) >= dense_layers && o.freeze > 0) {
      throw UsageError("--freeze " + std::to_string(o.freeze) + ": the model has " +
                       std::to_string(dense_layers) +
                       " dense layers and at least the last must train");
    }
    const auto& params = model.parameters();  // weight, bias per Dense layer, in order
    for (size_t i = 0; i < 2 * static_cast<size_t>(o.freeze) && i < params.size(); ++i) {
      params[i]->trainable = false;
    }
  }
  const std::string config = run_config(o, hidden).dump();
  int first_epoch = 1;
  if (!o.resume.empty()) {
    first_epoch = simdnn::restore_checkpoint(o.resume, model, *optimizer, rng, config) + 1;
    if (!o.json && job.lead()) std::printf("resumed from %s after epoch %d\n", o.resume.c_str(), first_epoch - 1);
  }

  // Keras' validation_split takes the last fraction of the training data, before shuffling.
  const simdnn::LabelledSamples all{train.images.pixels, train.labels.labels, features};
  const size_t val_count = static_cast<size_t>(o.val_split * static_cast<double>(all.count()));
  const size_t train_count = all.count() - val_count;
  if (train_count == 0) throw UsageError("--val-split leaves no training data");
  if (o.early_stopping > 0 && val_count == 0) {
    throw UsageError("--val-split " + std::to_string(o.val_split) + " of " +
                     std::to_string(all.count()) + " samples leaves no validation data for "
                     "--early-stopping");
  }
  const simdnn::LabelledSamples train_part = all.slice(0, train_count);
  const simdnn::LabelledSamples val_part = all.slice(train_count, val_count);
  const simdnn::LabelledSamples test_set{test.images.pixels, test.labels.labels, features};

  simdnn::Regularization regularization;
  regularization.dropout = static_cast<float>(o.dropout);
  regularization.l2 = static_cast<float>(o.l2);
  if (o.class_weights == "balanced") {
    regularization.class_weights = simdnn::balanced_class_weights(train_part.labels, num_classes);
  } else if (!o.class_weights.empty()) {
    std::stringstream ss(o.class_weights);
    for (std::string item; std::getline(ss, item, ',');) {
      size_t pos = 0;
      double w = -1;
      try {
        w = std::stod(item, &pos);
      } catch (const std::exception&) {
        pos = 0;
      }
      if (pos != item.size() || !(w >= 0) || !std::isfinite(w)) {
        throw UsageError("--class-weights: '" + item + "' is not a weight >= 0");
      }
      regularization.class_weights.push_back(static_cast<float>(w));
    }
    if (regularization.class_weights.size() != num_classes) {
      throw UsageError("--class-weights: " + std::to_string(regularization.class_weights.size()) +
                       " weights for " + std::to_string(num_classes) + " classes");
    }
  }

  // A terminal gets a progress bar redrawn in place; anything else gets plain lines.
  const bool stderr_is_terminal = isatty(STDERR_FILENO) != 0;
  const bool show_progress = o.progress && stderr_is_terminal && job.lead();
  std::optional<ProgressLog> progress_log;
  if (o.progress && !stderr_is_terminal && job.lead()) {
    progress_log.emplace(o.epochs, o.progress_interval);
  }
  if (!job.lead()) {
    // Only the lead reports.
  } else if (o.json) {
    std::cout << json{{"event", "start"},
                      {"data", o.data},
                      {"train_samples", train_count},
                      {"val_samples", val_count},
                      {"test_samples", test.images.count},
                      {"parameters", model.parameter_count()},
                      {"threads", threads},
                      {"simd_target", simdnn::current_simd_target()},
                      {"version", info.version},
                      {"processes", job.size},
                      {"config", json::parse(config)}}
              << std::endl;
  } else {
    std::printf("simdnn train: %zu train / %zu val / %zu test samples of %zux%zu, %zu parameters, "
                "%d threads, %s\n",
                train_count, val_count, test.images.count, info.input_height, info.input_width,
                model.parameter_count(), threads, simdnn::current_simd_target().c_str());
    if (job.size > 1 || o.micro_shards > 0) {
      std::printf("data parallel: %d processes, %lld pieces per batch of %lld\n", job.size,
                  static_cast<long long>(o.micro_shards ? o.micro_shards : job.size),
                  static_cast<long long>(o.batch));
    }
  }

  simdnn::FitOptions fit_options;
  fit_options.epochs = o.epochs;
  fit_options.batch = static_cast<size_t>(o.batch);
  fit_options.threads = o.threads;
  fit_options.first_epoch = first_epoch;
  if (job.lead()) fit_options.checkpoint = checkpoint;
  fit_options.checkpoint_settings = config;
  fit_options.regularization = regularization;
  fit_options.early_stopping_patience = o.early_stopping;
  fit_options.restore_best_weights = o.restore_best;
  fit_options.lr_schedule = schedule;
  fit_options.divergence_factor = o.divergence_factor;
  if (job.collective || o.micro_shards > 0) {
    fit_options.data_parallel =
        simdnn::DataParallelOptions{job.collective, static_cast<size_t>(o.micro_shards)};
  }
  simdnn::FitCallbacks callbacks;
  auto last_print = Clock::now();
  if (show_progress) {
    callbacks.on_batch = [&](const simdnn::BatchProgress& p) {
      const auto now = Clock::now();
      if (now - last_print > std::chrono::milliseconds(100) || p.done == p.total) {
        last_print = now;
        print_progress(p.epoch, o.epochs, p.done, p.total, p.loss, p.accuracy, p.seconds);
      }
    };
  } else if (progress_log) {
    callbacks.on_batch = [&](const simdnn::BatchProgress& p) { progress_log->on_batch(p); };
  }
  callbacks.on_epoch_end = [&](const simdnn::EpochResult& r) {
    if (show_progress) std::fprintf(stderr, "\n");
    if (progress_log) progress_log->on_epoch_end(r);
    if (job.lead()) print_epoch(o, r);
    return true;
  };
  simdnn::History history;
  try {
    history = simdnn::fit(model, *optimizer, rng, train_part, val_part, fit_options, callbacks);
  } catch (const simdnn::TrainingDiverged& e) {
    // Every process diverges at the same step (they share the loss): each ends with 3.
    if (!job.lead()) return simdnn::tools::kExitDiverged;
    std::fprintf(stderr, "%strain: %s; stopping without writing %s", show_progress ? "\n" : "",
                 e.what(), out.c_str());
    if (std::filesystem::exists(checkpoint)) {
      std::fprintf(stderr, " (last good checkpoint: %s)", checkpoint.c_str());
    }
    std::fprintf(stderr, ". Try a lower --lr.\n");
    return simdnn::tools::kExitDiverged;
  }
  if (!job.lead()) {
    // The lead writes; wait for it, so that a failure there (MPI_Abort) ends this process too
    // with its code instead of this one having already exited 0.
    finish_together(job);
    return simdnn::tools::kExitOk;
  }
  // The test set, once, on the final model (the restored best weights with early stopping).
  simdnn::Evaluation test_eval;
  if (test_set.count() > 0) {
    test_eval = simdnn::evaluate(model.network(), test_set, num_classes, info.pixel_scale, 1000,
                                 o.threads);
  }
  // The epoch whose weights the model holds: the best with restore, else the last.
  const simdnn::EpochResult* kept = history.epochs.empty() ? nullptr : &history.epochs.back();
  if (history.restored_best) {
    for (const auto& e : history.epochs) {
      if (e.epoch == history.best_epoch) kept = &e;
    }
  }
  // What the service compares live traffic with (drift): the training part's class
  // frequencies and input-intensity histogram.
  model.info().reference_profile = simdnn::reference_profile(train_part, num_classes);
  const int epochs_run = history.epochs.empty() ? first_epoch - 1 : history.epochs.back().epoch;
  const json run = {{"epochs_run", epochs_run},
                    {"best_epoch", history.best_epoch},
                    {"stopped_early", history.stopped_early},
                    {"restored_best", history.restored_best}};
  json metrics = json::object();
  if (kept) {
    metrics["epoch"] = kept->epoch;
    metrics["train_loss"] = kept->loss;
    metrics["train_accuracy"] = kept->accuracy;
    if (kept->validation) {
      metrics["val_loss"] = kept->validation->loss;
      metrics["val_accuracy"] = kept->validation->accuracy;
    }
  }
  if (test_set.count() > 0) {
    metrics["test_loss"] = test_eval.loss;
    metrics["test_accuracy"] = test_eval.accuracy;
  }
  json provenance = {
      {"version", info.version},
      {"parent_version", parent ? json(parent->info().version) : json(nullptr)},
      {"created_utc", utc_now_iso8601()},
      {"data", simdnn::tools::hash_data_path(o.data)},
      {"samples", {{"train", train_count}, {"val", val_count}, {"test", test_set.count()}}},
      {"epochs_run", epochs_run},
      {"best_epoch", history.best_epoch},
      {"stopped_early", history.stopped_early},
      {"metrics", metrics},
      {"seed", o.seed},
      {"threads", threads},
      {"command_line", o.command_line},
      {"config", json::parse(config)},
      {"simdnn_version", SIMDNN_VERSION_STRING},
      {"git_commit", SIMDNN_GIT_COMMIT},
      {"simd_target", simdnn::current_simd_target()},
  };
  if (fit_options.data_parallel) {
    provenance["data_parallel"] = {
        {"processes", job.size},
        {"pieces", o.micro_shards ? o.micro_shards : static_cast<int64_t>(job.size)}};
  }
  if (parent) {
    provenance["parent"] = {{"path", o.init_from},
                            {"sha256", simdnn::tools::sha256_file(o.init_from)},
                            {"frozen_dense_layers", o.freeze}};
  }
  model.info().provenance = provenance.dump();
  // Validated before it replaces --out: a model predict and serve would refuse is not written.
  simdnn::save_model_validated(out, model);
  if (!o.plot.empty()) write_plot(o, info, history, val_count, test_eval, test.images.count);
  print_summary(o, out, model, test_eval, history.train_seconds, run);
  finish_together(job);
  return simdnn::tools::kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  o.command_line.assign(argv, argv + argc);
  CLI::App app{"Train a dense classifier on MNIST-format data (default: the Keras MNIST example "
               "on Fashion-MNIST)"};
  app.add_option("--data", o.data,
                 "data set: an MNIST IDX directory (train/t10k files, plain or .gz), a directory "
                 "with one subfolder of PNG/JPEG images per class (or train/ and test/ holding "
                 "such subfolders), a CSV file of label,pixel0,... or a directory with "
                 "train.csv and test.csv")
      ->capture_default_str();
  app.add_option("--image-size", o.image_size,
                 "HEIGHTxWIDTH: resize image-folder images to it (default: all must share one "
                 "size); the pixels per CSV row (default: a square)");
  CLI::Option* hidden =
      app.add_option("--hidden", o.hidden, "hidden layer sizes, comma-separated")->capture_default_str();
  CLI::Option* activation = app.add_option("--activation", o.activation, "hidden activation")
      ->check(CLI::IsMember({"relu", "sigmoid", "tanh", "linear"}))
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "epochs (the most, with --early-stopping)")->capture_default_str();
  app.add_option("--batch", o.batch, "batch size")->capture_default_str();
  app.add_option("--lr", o.lr, "learning rate (default: 0.001 for adam/adamw, 0.01 for sgd)");
  app.add_option("--optimizer", o.optimizer, "adam, adamw or sgd")
      ->check(CLI::IsMember({"adam", "adamw", "sgd"}))
      ->capture_default_str();
  app.add_option("--momentum", o.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "random seed (initialisation, shuffling, dropout)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "threads (0 = all cores)")->capture_default_str();
  app.add_option("--val-split", o.val_split,
                 "fraction of the training data held out for validation (its last samples)")
      ->capture_default_str();
  app.add_option("--early-stopping", o.early_stopping,
                 "stop after this many epochs without a lower val_loss (needs --val-split; "
                 "0 = off)")
      ->capture_default_str();
  app.add_flag("--restore-best,!--no-restore-best", o.restore_best,
               "with --early-stopping: end with the weights of the epoch with the lowest "
               "val_loss (default on)");
  app.add_option("--lr-schedule", o.lr_schedule, "learning-rate schedule over epochs")
      ->check(CLI::IsMember({"constant", "step", "cosine", "plateau"}))
      ->capture_default_str();
  app.add_option("--lr-step-epochs", o.lr_step_epochs, "step: epochs between reductions")
      ->capture_default_str();
  app.add_option("--lr-step-factor", o.lr_step_factor, "step: factor per reduction")
      ->capture_default_str();
  app.add_option("--lr-plateau-patience", o.lr_plateau_patience,
                 "plateau: epochs without a lower val_loss (train loss without validation) "
                 "before a reduction")
      ->capture_default_str();
  app.add_option("--lr-plateau-factor", o.lr_plateau_factor, "plateau: factor per reduction")
      ->capture_default_str();
  app.add_option("--lr-min", o.lr_min, "floor of every schedule (cosine's end)")
      ->capture_default_str();
  app.add_option("--divergence-factor", o.divergence_factor,
                 "stop with exit 3 when the mean loss of the last 20 steps exceeds this many "
                 "times the first step's (and ln(classes)); 0 = only NaN/infinity")
      ->capture_default_str();
  app.add_option("--dropout", o.dropout, "dropout rate after each hidden layer (training only)")
      ->capture_default_str();
  app.add_option("--l2", o.l2, "L2 penalty lambda * sum(W^2) on the dense weights")
      ->capture_default_str();
  app.add_option("--class-weights", o.class_weights,
                 "loss weight per class: balanced, or w0,w1,... (one per class)");
  app.add_option("--init-from", o.init_from,
                 "fine-tune: start from this model's weights (same architecture, input size and "
                 "class names)");
  app.add_option("--freeze", o.freeze, "keep the first N dense layers' weights unchanged")
      ->capture_default_str();
  app.add_option("--model-version", o.model_version,
                 "the model's version (positive integer; default: the --init-from model's + 1, "
                 "else 1)")
      ->check(CLI::PositiveNumber);
  app.add_option("--out", o.out, "model file to write (safetensors)")->capture_default_str();
  app.add_option("--checkpoint", o.checkpoint, "checkpoint written every epoch (default <out>.ckpt)");
  app.add_option("--resume", o.resume, "continue from a checkpoint");
  app.add_option("--class-names", o.class_names, "auto, fashion, digits or a comma-separated list")
      ->capture_default_str();
  app.add_option("--plot", o.plot,
                 "SVG file (.svg) to write: per-epoch loss and accuracy curves (train, and "
                 "validation with --val-split) and the confusion matrix (validation set, or the "
                 "test set without --val-split)");
  app.add_flag("--json", o.json, "JSON lines on stdout");
  app.add_flag("--distributed", o.distributed,
               "data-parallel training across the processes of an MPI job (mpirun -np N "
               "train --distributed ...): each takes its share of every batch, rank 0 writes "
               "the files (docs/distributed.md)");
  app.add_option("--micro-shards", o.micro_shards,
                 "cut every batch into this many pieces whose gradients are summed in a fixed "
                 "tree: any number of processes up to it then writes the same model (0 = one "
                 "piece per process)")
      ->capture_default_str();
  app.set_version_flag("--version", [] { return simdnn::tools::version_text("train"); },
                       "Print the version, the commit and the SIMD target, then exit");
  app.add_flag("!--no-progress", o.progress,
               "no progress on stderr (a bar on a terminal, else one line per epoch)");
  app.add_option("--progress-interval", o.progress_interval,
                 "when stderr is not a terminal: seconds between lines within an epoch (at most "
                 "one per 10% of it; the end of every epoch is always logged)")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return simdnn::tools::exit_code_for_parse(app, e);
  }
  o.hidden_given = hidden->count() > 0;
  o.activation_given = activation->count() > 0;
  if (!o.distributed) return simdnn::tools::run_tool("train", [&] { return run(o, Job{}); });
#if SIMDNN_WITH_MPI
  std::optional<simdnn::distributed::MpiSession> session;
  try {
    session.emplace(&argc, &argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train: --distributed: %s\n", e.what());
    return simdnn::tools::kExitIoFailure;
  }
  const Job job{session->rank(), session->size(), &session->collective()};
  try {
    return run(o, job);
  } catch (const std::exception& e) {
    // The other processes would wait for this one in the next exchange for ever: end them all
    // with this process's code and message.
    std::fprintf(stderr, "train: rank %d of %d: %s\n", job.rank, job.size, e.what());
    std::fflush(stderr);
    const int code = simdnn::tools::exit_code_for(e);
    if (job.size > 1) session->abort(code);
    return code;
  }
#else
  std::fprintf(stderr,
               "train: --distributed: built without MPI (install libopenmpi-dev and configure "
               "with -DSIMDNN_MPI=ON)\n");
  return simdnn::tools::kExitUsage;
#endif
}
