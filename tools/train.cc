// tools/train: trains a dense classifier on an MNIST-format data set and writes the model.
// Defaults reproduce the Keras example: 784 -> Dense 128 ReLU -> Dense 10 softmax, Adam,
// sparse categorical cross-entropy, batch 32, 5 epochs, on Fashion-MNIST.
//
// Exit codes: 0 success, 1 bad input (flags, data, checkpoint), 3 non-finite loss.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "simdnn/atomic_file.h"
#include "simdnn/autograd.h"
#include "simdnn/idx.h"
#include "simdnn/io_error.h"
#include "simdnn/model.h"
#include "simdnn/optimizer.h"
#include "simdnn/random.h"
#include "simdnn/safetensors.h"
#include "simdnn/simd_targets.h"
#include "simdnn/threading.h"
#include "simdnn/training.h"

namespace {

using simdnn::Tensor;
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
  bool json = false;
  bool progress = true;
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

std::vector<std::string> resolve_class_names(const std::string& flag, const std::string& dir,
                                             size_t num_classes) {
  std::string lower = dir;
  std::transform(lower.begin(), lower.end(), lower.begin(), ::tolower);
  if (flag == "fashion" || (flag == "auto" && lower.find("fashion") != std::string::npos)) {
    return simdnn::fashion_mnist_class_names();
  }
  if (flag == "digits" || flag == "auto") return simdnn::digit_class_names();
  std::vector<std::string> names;
  std::stringstream ss(flag);
  std::string item;
  while (std::getline(ss, item, ',')) names.push_back(item);
  if (names.size() != num_classes) {
    throw UsageError("--class-names: " + std::to_string(names.size()) + " names for " +
                     std::to_string(num_classes) + " classes");
  }
  return names;
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

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

// The checkpoint: the model file plus optimizer state tensors ("training.<slot>") and the
// loop state in __metadata__["training"].
void write_checkpoint(const std::filesystem::path& path, simdnn::Model& model,
                      simdnn::Optimizer& opt, const simdnn::Rng& rng, int epochs_done,
                      const json& config) {
  simdnn::SafetensorsFile file = simdnn::model_to_safetensors(model);
  std::vector<simdnn::Parameter*> params = model.parameters();
  for (auto& [name, tensor] : opt.state(params)) {
    file.tensors.emplace_back("training." + name, tensor->clone());
  }
  json rng_state = json::array();
  for (uint64_t s : rng.state()) rng_state.push_back(hex64(s));
  file.metadata["training"] = json{{"epochs_done", epochs_done},
                                   {"optimizer", opt.name()},
                                   {"optimizer_steps", opt.steps()},
                                   {"rng", rng_state},
                                   {"config", config}}
                                  .dump();
  simdnn::save_safetensors(path, file);
}

struct Resumed {
  int epochs_done = 0;
};

Resumed restore_checkpoint(const std::filesystem::path& path, simdnn::Model& model,
                           simdnn::Optimizer& opt, simdnn::Rng& rng, const json& config) {
  simdnn::SafetensorsFile file = simdnn::load_safetensors(path);
  const std::string name = path.string();
  auto it = file.metadata.find("training");
  if (it == file.metadata.end()) {
    throw simdnn::IoError(name + ": not a checkpoint (no \"training\" metadata)");
  }
  json t;
  try {
    t = json::parse(it->second);
  } catch (const std::exception& e) {
    throw simdnn::IoError(name + ": checkpoint \"training\" metadata is not JSON: " + e.what());
  }
  Resumed r;
  try {
    if (t.at("config") != config) {
      throw UsageError("--resume " + name + ": the checkpoint was written with different settings " +
                       t.at("config").dump() + " than this run " + config.dump());
    }
    if (t.at("optimizer").get<std::string>() != opt.name()) {
      throw UsageError("--resume " + name + ": optimizer differs");
    }
    r.epochs_done = t.at("epochs_done").get<int>();
    opt.set_steps(t.at("optimizer_steps").get<int64_t>());
    std::array<uint64_t, 4> s{};
    for (size_t i = 0; i < 4; ++i) s[i] = std::stoull(t.at("rng").at(i).get<std::string>(), nullptr, 16);
    rng.set_state(s);
  } catch (const json::exception& e) {
    throw simdnn::IoError(name + ": bad checkpoint \"training\" metadata: " + e.what());
  }
  simdnn::Model restored = simdnn::model_from_safetensors(file, name);
  const simdnn::ModelInfo& saved = restored.info();
  if (saved.input_height != model.info().input_height ||
      saved.input_width != model.info().input_width) {
    throw UsageError("--resume " + name + ": the checkpoint's model takes " +
                     std::to_string(saved.input_height) + "x" + std::to_string(saved.input_width) +
                     " images, the data has " + std::to_string(model.info().input_height) + "x" +
                     std::to_string(model.info().input_width));
  }
  if (restored.layers().size() != model.layers().size()) {
    throw UsageError("--resume " + name + ": architecture differs from this run");
  }
  std::vector<simdnn::Parameter*> dst = model.parameters(), src = restored.parameters();
  for (size_t i = 0; i < dst.size(); ++i) {
    simdnn::require_same_shape(src[i]->value.shape(), dst[i]->value.shape(), "--resume");
    std::copy_n(src[i]->value.data(), src[i]->value.size(), dst[i]->value.data());
  }
  for (auto& [slot, tensor] : opt.state(dst)) {
    const Tensor* saved = file.find("training." + slot);
    if (!saved) throw simdnn::IoError(name + ": checkpoint lacks tensor \"training." + slot + "\"");
    simdnn::require_same_shape(saved->shape(), tensor->shape(), "checkpoint optimizer state");
    std::copy_n(saved->data(), saved->size(), tensor->data());
  }
  return r;
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

int run(const Options& o) {
  if (o.batch <= 0) throw UsageError("--batch must be at least 1, got " + std::to_string(o.batch));
  if (o.epochs <= 0) throw UsageError("--epochs must be at least 1, got " + std::to_string(o.epochs));
  if (o.val_split < 0 || o.val_split >= 1) throw UsageError("--val-split must be in [0, 1)");
  if (o.threads < 0) throw UsageError("--threads must be >= 0 (0 = all cores)");
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

  simdnn::Dataset train = simdnn::load_mnist_dir(o.data, "train");
  simdnn::Dataset test = simdnn::load_mnist_dir(o.data, "t10k");
  if (train.images.rows != test.images.rows || train.images.cols != test.images.cols) {
    throw simdnn::IoError(o.data + ": train images are " + std::to_string(train.images.rows) +
                          "x" + std::to_string(train.images.cols) + " but t10k images are " +
                          std::to_string(test.images.rows) + "x" + std::to_string(test.images.cols));
  }
  const size_t num_classes = 10;
  simdnn::ModelInfo info;
  info.input_height = train.images.rows;
  info.input_width = train.images.cols;
  info.class_names = resolve_class_names(o.class_names, o.data, num_classes);
  info.version = "seed" + std::to_string(o.seed);
  const size_t features = info.input_size();

  simdnn::Rng rng(o.seed);
  simdnn::Model model = simdnn::Model::mlp(info, hidden, activation, num_classes, rng);
  const json config = run_config(o, hidden);
  int first_epoch = 1;
  if (!o.resume.empty()) {
    Resumed r = restore_checkpoint(o.resume, model, *optimizer, rng, config);
    first_epoch = r.epochs_done + 1;
    if (!o.json) std::printf("resumed from %s after epoch %d\n", o.resume.c_str(), r.epochs_done);
  }

  // Keras' validation_split takes the last fraction of the training data, before shuffling.
  const size_t total = train.images.count;
  const size_t val_count = static_cast<size_t>(o.val_split * static_cast<double>(total));
  const size_t train_count = total - val_count;
  if (train_count == 0) throw UsageError("--val-split leaves no training data");
  std::span<const uint8_t> val_pixels(train.images.pixels.data() + train_count * features,
                                      val_count * features);
  std::span<const uint8_t> val_labels(train.labels.labels.data() + train_count, val_count);

  const bool show_progress = o.progress && isatty(STDERR_FILENO);
  if (o.json) {
    std::cout << json{{"event", "start"},
                      {"data", o.data},
                      {"train_samples", train_count},
                      {"val_samples", val_count},
                      {"test_samples", test.images.count},
                      {"parameters", model.parameter_count()},
                      {"threads", threads},
                      {"simd_target", simdnn::current_simd_target()},
                      {"config", config}}
              << std::endl;
  } else {
    std::printf("simdnn train: %zu train / %zu val / %zu test samples of %zux%zu, %zu parameters, "
                "%d threads, %s\n",
                train_count, val_count, test.images.count, info.input_height, info.input_width,
                model.parameter_count(), threads, simdnn::current_simd_target().c_str());
  }

  simdnn::Tape tape(o.threads);
  optimizer->set_threads(o.threads);
  std::vector<uint32_t> order(train_count);
  std::vector<int32_t> labels;
  const size_t batch = static_cast<size_t>(o.batch);
  double total_train_seconds = 0;
  simdnn::Evaluation test_eval;
  for (int epoch = first_epoch; epoch <= o.epochs; ++epoch) {
    std::iota(order.begin(), order.end(), 0u);
    rng.shuffle(order);
    // Same batches, rows grouped by class: their blank backgrounds line up, and the first
    // layer's GEMMs skip more all-zero pixel groups (see group_batches_by_label).
    simdnn::group_batches_by_label(order, batch, train.labels.labels);
    const auto t0 = Clock::now();
    auto last_print = t0;
    double loss_sum = 0;
    size_t correct = 0, seen = 0;
    for (size_t start = 0; start < train_count; start += batch) {
      const size_t n = std::min(batch, train_count - start);
      std::span<const uint32_t> idx(order.data() + start, n);
      // The batch stays uint8: the first layer's GEMMs convert the pixels as they pack them.
      const simdnn::GatheredRows x{train.images.pixels, features, idx, info.pixel_scale};
      simdnn::gather_labels(train.labels.labels, idx, labels);
      simdnn::StepResult r;
      try {
        r = simdnn::train_step(model.network(), tape, *optimizer, x, labels);
      } catch (const simdnn::NonFiniteLoss& e) {
        std::fprintf(stderr, "%strain: %s at epoch %d, sample %zu; stopping without writing %s",
                     show_progress ? "\n" : "", e.what(), epoch, start, out.c_str());
        if (std::filesystem::exists(checkpoint)) {
          std::fprintf(stderr, " (last good checkpoint: %s)", checkpoint.c_str());
        }
        std::fprintf(stderr, ". Try a lower --lr.\n");
        return 3;
      }
      loss_sum += r.loss * n;
      correct += r.correct;
      seen += n;
      if (show_progress) {
        const auto now = Clock::now();
        if (now - last_print > std::chrono::milliseconds(100) || seen == train_count) {
          last_print = now;
          print_progress(epoch, o.epochs, seen, train_count, loss_sum / seen,
                         static_cast<double>(correct) / seen,
                         std::chrono::duration<double>(now - t0).count());
        }
      }
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    total_train_seconds += seconds;
    if (show_progress) std::fprintf(stderr, "\n");

    simdnn::Evaluation val_eval;
    if (val_count) {
      val_eval = simdnn::evaluate(model.network(), val_pixels, features, val_labels, num_classes,
                                  info.pixel_scale, 1000, o.threads);
    }
    test_eval = simdnn::evaluate(model.network(), test.images.pixels, features,
                                 test.labels.labels, num_classes, info.pixel_scale, 1000,
                                 o.threads);
    write_checkpoint(checkpoint, model, *optimizer, rng, epoch, config);

    const double train_loss = loss_sum / seen, train_acc = static_cast<double>(correct) / seen;
    if (o.json) {
      json line = {{"event", "epoch"},         {"epoch", epoch},
                   {"epochs", o.epochs},       {"train_loss", train_loss},
                   {"train_accuracy", train_acc}, {"test_loss", test_eval.loss},
                   {"test_accuracy", test_eval.accuracy}, {"seconds", seconds},
                   {"samples_per_second", seen / seconds}};
      if (val_count) {
        line["val_loss"] = val_eval.loss;
        line["val_accuracy"] = val_eval.accuracy;
      }
      std::cout << line << std::endl;
    } else {
      std::printf("epoch %d/%d  loss %.4f  acc %.4f", epoch, o.epochs, train_loss, train_acc);
      if (val_count) std::printf("  val_loss %.4f  val_acc %.4f", val_eval.loss, val_eval.accuracy);
      std::printf("  test_loss %.4f  test_acc %.4f  %.2fs (%.0f samples/s)\n", test_eval.loss,
                  test_eval.accuracy, seconds, seen / seconds);
      std::fflush(stdout);
    }
  }

  if (first_epoch > o.epochs) {
    test_eval = simdnn::evaluate(model.network(), test.images.pixels, features,
                                 test.labels.labels, num_classes, info.pixel_scale, 1000,
                                 o.threads);
  }
  simdnn::save_model(out, model);

  const auto& names = model.info().class_names;
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
                      {"train_seconds", total_train_seconds},
                      {"class_names", names},
                      {"per_class_accuracy", per_class},
                      {"confusion", test_eval.confusion}}
              << std::endl;
  } else {
    std::printf("\ntest accuracy %.4f, loss %.4f; training time %.2fs\n", test_eval.accuracy,
                test_eval.loss, total_train_seconds);
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
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Train a dense classifier on MNIST-format data (default: the Keras MNIST example "
               "on Fashion-MNIST)"};
  app.add_option("--data", o.data, "MNIST-format directory (train/t10k IDX files, plain or .gz)")
      ->capture_default_str();
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
  app.add_flag("--json", o.json, "JSON lines on stdout");
  app.add_flag("!--no-progress", o.progress, "no progress bar on stderr");
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
