// tools/train: trains a dense classifier on a labelled image data set (MNIST IDX, an image
// folder with one subfolder per class, or CSV; <simdnn/dataset.h>) and writes the model.
// Defaults reproduce the Keras example: 784 -> Dense 128 ReLU -> Dense 10 softmax, Adam,
// sparse categorical cross-entropy, batch 32, 5 epochs, on Fashion-MNIST.
//
// The loop itself is simdnn::fit (nn/include/simdnn/fit.h); this file is flags, data loading,
// output and exit codes.
//
// Exit codes: 0 success, 1 bad input (flags, data, checkpoint), 3 non-finite loss.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
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
#include "simdnn/dataset.h"
#include "simdnn/fit.h"
#include "simdnn/idx.h"
#include "simdnn/io_error.h"
#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/optimizer.h"
#include "simdnn/random.h"
#include "simdnn/reference_profile.h"
#include "simdnn/simd_targets.h"
#include "simdnn/threading.h"
#include "tools/training_plot.h"
#include "tool_version.h"

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
};

// A failure the user can fix: printed as "train: <message>", exit 1.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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
void print_epoch(const Options& o, const simdnn::EpochResult& r,
                 const simdnn::Evaluation& test_eval) {
  if (o.json) {
    json line = {{"event", "epoch"},         {"epoch", r.epoch},
                 {"epochs", o.epochs},       {"train_loss", r.loss},
                 {"train_accuracy", r.accuracy}, {"test_loss", test_eval.loss},
                 {"test_accuracy", test_eval.accuracy}, {"seconds", r.seconds},
                 {"samples_per_second", r.samples / r.seconds}};
    if (test_eval.count == 0) {  // no test set
      line.erase("test_loss");
      line.erase("test_accuracy");
    }
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
    if (test_eval.count > 0) {
      std::printf("  test_loss %.4f  test_acc %.4f", test_eval.loss, test_eval.accuracy);
    }
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
                   const simdnn::Evaluation& test_eval, double train_seconds) {
  const auto& names = model.info().class_names;
  if (test_eval.count == 0) {  // the data set has no test split
    if (o.json) {
      std::cout << json{{"event", "done"}, {"model", out.string()}, {"test_samples", 0},
                        {"train_seconds", train_seconds}, {"class_names", names}}
                << std::endl;
    } else {
      std::printf("\nno test set in the data: no test metrics; training time %.2fs\n"
                  "model written to %s\n", train_seconds, out.c_str());
    }
    return;
  }
  const size_t num_classes = model.num_classes();
  std::vector<double> per_class(num_classes, 0.0);
  for (size_t c = 0; c < num_classes; ++c) {
    size_t row = std::accumulate(test_eval.confusion[c].begin(), test_eval.confusion[c].end(),
                                 size_t{0});
    per_class[c] = row ? static_cast<double>(test_eval.confusion[c][c]) / row : 0.0;
  }
  if (o.json) {
    std::cout << json{{"event", "done"},
                      {"model", out.string()},
                      {"test_loss", test_eval.loss},
                      {"test_accuracy", test_eval.accuracy},
                      {"train_seconds", train_seconds},
                      {"class_names", names},
                      {"per_class_accuracy", per_class},
                      {"confusion", test_eval.confusion}}
              << std::endl;
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
  std::printf("model written to %s\n", out.c_str());
}

int run(const Options& o) {
  if (o.batch <= 0) throw UsageError("--batch must be at least 1, got " + std::to_string(o.batch));
  if (o.epochs <= 0) throw UsageError("--epochs must be at least 1, got " + std::to_string(o.epochs));
  if (o.val_split < 0 || o.val_split >= 1) throw UsageError("--val-split must be in [0, 1)");
  if (o.threads < 0) throw UsageError("--threads must be >= 0 (0 = all cores)");
  if (!o.plot.empty() && std::filesystem::path(o.plot).extension() != ".svg") {
    throw UsageError("--plot writes an SVG picture: give a file name ending in .svg, got '" +
                     o.plot + "'");
  }
  if (!(o.progress_interval >= 0)) throw UsageError("--progress-interval must be >= 0 seconds");
  const std::vector<size_t> hidden = parse_hidden(o.hidden);
  const simdnn::Activation activation = simdnn::parse_activation(o.activation);
  std::unique_ptr<simdnn::Optimizer> optimizer = make_optimizer(o);
  const std::filesystem::path out = o.out;
  const std::filesystem::path checkpoint = o.checkpoint.empty() ? o.out + ".ckpt" : o.checkpoint;

  // Temporary files of earlier runs that were killed mid-write (their process is gone).
  simdnn::remove_stale_temp_files(out);
  simdnn::remove_stale_temp_files(checkpoint);

  simdnn::set_num_threads(o.threads);
  const int threads = simdnn::resolve_threads(o.threads);

  // Labels are checked against the class count once it is known (the train set's labels and
  // the names fix it), so the test set is loaded with that limit. An image folder's classes
  // are its folder names unless --class-names lists them (then folders are matched by name).
  simdnn::DatasetOptions data_options = dataset_options(o);
  simdnn::LoadedDataset loaded = *simdnn::load_dataset(o.data, "train", data_options);
  simdnn::Dataset train = std::move(loaded.data);
  simdnn::ModelInfo info;
  info.input_height = train.images.rows;
  info.input_width = train.images.cols;
  info.class_names = loaded.class_names.empty()
                         ? resolve_class_names(o.class_names, o.data, label_classes(train.labels))
                         : loaded.class_names;
  info.version = "seed" + std::to_string(o.seed);
  const size_t num_classes = info.class_names.size();
  data_options.num_classes = num_classes;
  data_options.class_names = loaded.class_names;
  data_options.height = info.input_height;  // the test images must match (folders: resized)
  data_options.width = info.input_width;
  // No test split (an image folder without train/ and test/, a lone CSV): no test metrics.
  std::optional<simdnn::LoadedDataset> test_loaded = simdnn::load_dataset(o.data, "test", data_options);
  const simdnn::Dataset test = test_loaded ? std::move(test_loaded->data) : simdnn::Dataset{};
  const size_t features = info.input_size();

  simdnn::Rng rng(o.seed);
  simdnn::Model model = simdnn::Model::mlp(info, hidden, activation, num_classes, rng);
  const std::string config = run_config(o, hidden).dump();
  int first_epoch = 1;
  if (!o.resume.empty()) {
    first_epoch = simdnn::restore_checkpoint(o.resume, model, *optimizer, rng, config) + 1;
    if (!o.json) std::printf("resumed from %s after epoch %d\n", o.resume.c_str(), first_epoch - 1);
  }

  // Keras' validation_split takes the last fraction of the training data, before shuffling.
  const simdnn::LabelledSamples all{train.images.pixels, train.labels.labels, features};
  const size_t val_count = static_cast<size_t>(o.val_split * static_cast<double>(all.count()));
  const size_t train_count = all.count() - val_count;
  if (train_count == 0) throw UsageError("--val-split leaves no training data");
  const simdnn::LabelledSamples train_part = all.slice(0, train_count);
  const simdnn::LabelledSamples val_part = all.slice(train_count, val_count);
  const simdnn::LabelledSamples test_set{test.images.pixels, test.labels.labels, features};

  // A terminal gets a progress bar redrawn in place; anything else gets plain lines.
  const bool stderr_is_terminal = isatty(STDERR_FILENO) != 0;
  const bool show_progress = o.progress && stderr_is_terminal;
  std::optional<ProgressLog> progress_log;
  if (o.progress && !stderr_is_terminal) progress_log.emplace(o.epochs, o.progress_interval);
  if (o.json) {
    std::cout << json{{"event", "start"},
                      {"data", o.data},
                      {"train_samples", train_count},
                      {"val_samples", val_count},
                      {"test_samples", test.images.count},
                      {"parameters", model.parameter_count()},
                      {"threads", threads},
                      {"simd_target", simdnn::current_simd_target()},
                      {"config", json::parse(config)}}
              << std::endl;
  } else {
    std::printf("simdnn train: %zu train / %zu val / %zu test samples of %zux%zu, %zu parameters, "
                "%d threads, %s\n",
                train_count, val_count, test.images.count, info.input_height, info.input_width,
                model.parameter_count(), threads, simdnn::current_simd_target().c_str());
  }

  simdnn::FitOptions fit_options;
  fit_options.epochs = o.epochs;
  fit_options.batch = static_cast<size_t>(o.batch);
  fit_options.threads = o.threads;
  fit_options.first_epoch = first_epoch;
  fit_options.checkpoint = checkpoint;
  fit_options.checkpoint_settings = config;
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
  simdnn::Evaluation test_eval;
  const auto evaluate_test = [&] {
    if (test.images.count == 0) return;
    test_eval = simdnn::evaluate(model.network(), test_set, num_classes, info.pixel_scale, 1000,
                                 o.threads);
  };
  callbacks.on_epoch_end = [&](const simdnn::EpochResult& r) {
    if (show_progress) std::fprintf(stderr, "\n");
    if (progress_log) progress_log->on_epoch_end(r);
    evaluate_test();
    print_epoch(o, r, test_eval);
    return true;
  };
  simdnn::History history;
  try {
    history = simdnn::fit(model, *optimizer, rng, train_part, val_part, fit_options, callbacks);
  } catch (const simdnn::TrainingDiverged& e) {
    std::fprintf(stderr, "%strain: %s; stopping without writing %s", show_progress ? "\n" : "",
                 e.what(), out.c_str());
    if (std::filesystem::exists(checkpoint)) {
      std::fprintf(stderr, " (last good checkpoint: %s)", checkpoint.c_str());
    }
    std::fprintf(stderr, ". Try a lower --lr.\n");
    return 3;
  }
  if (history.epochs.empty()) evaluate_test();  // resumed after the last epoch
  // What the service compares live traffic with (drift): the training part's class
  // frequencies and input-intensity histogram.
  model.info().reference_profile = simdnn::reference_profile(train_part, num_classes);
  simdnn::save_model(out, model);
  if (!o.plot.empty()) write_plot(o, info, history, val_count, test_eval, test.images.count);
  print_summary(o, out, model, test_eval, history.train_seconds);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
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
  app.add_option("--hidden", o.hidden, "hidden layer sizes, comma-separated")->capture_default_str();
  app.add_option("--activation", o.activation, "hidden activation")
      ->check(CLI::IsMember({"relu", "sigmoid", "tanh", "linear"}))
      ->capture_default_str();
  app.add_option("--epochs", o.epochs, "epochs")->capture_default_str();
  app.add_option("--batch", o.batch, "batch size")->capture_default_str();
  app.add_option("--lr", o.lr, "learning rate (default: 0.001 for adam/adamw, 0.01 for sgd)");
  app.add_option("--optimizer", o.optimizer, "adam, adamw or sgd")
      ->check(CLI::IsMember({"adam", "adamw", "sgd"}))
      ->capture_default_str();
  app.add_option("--momentum", o.momentum, "SGD momentum")->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "random seed (initialisation and shuffling)")
      ->capture_default_str();
  app.add_option("--threads", o.threads, "threads (0 = all cores)")->capture_default_str();
  app.add_option("--val-split", o.val_split, "fraction of the training data held out")
      ->capture_default_str();
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
    return app.exit(e);
  }
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "train: %s\n", e.what());
    return 1;
  }
}
