#include "simdnn/fit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "simdnn/autograd.h"
#include "simdnn/checkpoint.h"
#include "simdnn/gathered_rows.h"

namespace simdnn {
namespace {

using Clock = std::chrono::steady_clock;

void check(const Model& model, const LabelledSamples& data, const char* what) {
  if (data.features != model.info().input_size()) {
    throw std::invalid_argument(std::string("fit: ") + what + " samples have " +
                                std::to_string(data.features) + " values, the model takes " +
                                std::to_string(model.info().input_size()));
  }
  if (data.pixels.size() != data.count() * data.features) {
    throw std::invalid_argument(std::string("fit: ") + what + " has " +
                                std::to_string(data.pixels.size()) + " pixel values for " +
                                std::to_string(data.count()) + " labels");
  }
  const size_t classes = model.num_classes();
  for (size_t i = 0; i < data.count(); ++i) {
    if (data.labels[i] >= classes) {
      throw std::invalid_argument(std::string("fit: ") + what + " label " +
                                  std::to_string(data.labels[i]) + " of sample " +
                                  std::to_string(i) + " is not below the model's " +
                                  std::to_string(classes) + " classes");
    }
  }
}

}  // namespace

History fit(Model& model, Optimizer& optimizer, Rng& rng, const LabelledSamples& train,
            const LabelledSamples& validation, const FitOptions& options,
            const FitCallbacks& callbacks) {
  if (options.batch == 0) throw std::invalid_argument("fit: batch size 0");
  if (options.threads < 0) throw std::invalid_argument("fit: negative thread count");
  if (train.count() == 0) throw std::invalid_argument("fit: no training samples");
  if (train.count() > UINT32_MAX) throw std::invalid_argument("fit: over 2^32 samples");
  check(model, train, "training");
  if (validation.count()) check(model, validation, "validation");
  if (options.early_stopping_patience < 0) {
    throw std::invalid_argument("fit: negative early-stopping patience");
  }
  if (options.early_stopping_patience > 0 && validation.count() == 0) {
    throw std::invalid_argument("fit: early stopping watches the validation loss, and there is "
                                "no validation data");
  }
  if (!(options.divergence_factor >= 0)) throw std::invalid_argument("fit: negative divergence factor");
  std::optional<LrSchedule> schedule;
  if (options.lr_schedule) {
    schedule.emplace(*options.lr_schedule, optimizer.learning_rate(), options.epochs);
  }
  const auto& weights = options.regularization.class_weights;
  if (!weights.empty() && weights.size() != model.num_classes()) {
    throw std::invalid_argument("fit: " + std::to_string(weights.size()) +
                                " class weights for a model of " +
                                std::to_string(model.num_classes()) + " classes");
  }

  const float scale = model.info().pixel_scale;
  Tape tape(options.threads);
  optimizer.set_threads(options.threads);
  std::vector<uint32_t> order(train.count());
  std::vector<int32_t> labels;
  History history;
  // Divergence: the baseline (first steps of this run) and the last steps' losses.
  const double chance_loss = std::log(static_cast<double>(model.num_classes()));
  double baseline = 0.0;
  std::vector<double> window(std::max<size_t>(options.divergence_window, 1), 0.0);
  size_t steps = 0;
  double window_sum = 0.0;
  // Early stopping: the best validation loss, its epoch and (to restore) its weights.
  double best_loss = std::numeric_limits<double>::infinity();
  int wait = 0;
  std::vector<Tensor> best_weights;
  const std::vector<Parameter*>& params = model.parameters();
  std::optional<DataParallelStep> parallel;
  if (options.data_parallel) {
    parallel.emplace(*options.data_parallel, params);
    const auto state = rng.state();
    size_t parameter_count = 0;
    for (const Parameter* p : params) parameter_count += p->value.size();
    const uint64_t values[] = {train.count(),
                               train.features,
                               validation.count(),
                               parameter_count,
                               options.batch,
                               parallel->plan().pieces,
                               static_cast<uint64_t>(options.first_epoch),
                               static_cast<uint64_t>(options.epochs),
                               state[0] ^ state[1] ^ state[2] ^ state[3]};
    const char* const names[] = {"the training sample count", "the sample size",
                                 "the validation sample count", "the parameter count",
                                 "the batch size", "the pieces per batch", "the first epoch",
                                 "the last epoch", "the random state (seed, resumed checkpoint)"};
    parallel->check_agreement(values, names);
  }
  for (int epoch = options.first_epoch; epoch <= options.epochs; ++epoch) {
    if (schedule) optimizer.set_learning_rate(static_cast<float>(schedule->rate(epoch)));
    std::iota(order.begin(), order.end(), 0u);
    rng.shuffle(order);
    // Same batches, rows grouped by class: their blank backgrounds line up, and the first
    // layer's GEMMs skip more all-zero pixel groups (see group_batches_by_label).
    group_batches_by_label(order, options.batch, train.labels);
    const auto t0 = Clock::now();
    double loss_sum = 0;
    size_t correct = 0, seen = 0;
    for (size_t start = 0; start < order.size(); start += options.batch) {
      const size_t n = std::min(options.batch, order.size() - start);
      std::span<const uint32_t> idx(order.data() + start, n);
      StepResult r;
      try {
        if (parallel) {
          r = parallel->step(model.network(), tape, optimizer, train, idx, scale,
                             options.regularization, rng);
        } else {
          // The batch stays uint8: the first layer's GEMMs convert the pixels as they pack them.
          const GatheredRows x{train.pixels, train.features, idx, scale};
          gather_labels(train.labels, idx, labels);
          r = train_step(model.network(), tape, optimizer, x, labels, options.regularization,
                         rng);
        }
      } catch (const NonFiniteLoss& e) {
        throw TrainingDiverged(std::string(e.what()) + " at epoch " + std::to_string(epoch) +
                                   ", sample " + std::to_string(start),
                               epoch, start);
      }
      if (options.divergence_factor > 0) {
        if (steps == 0) baseline = r.loss;  // the first step's loss is the starting model's
        const size_t slot = steps % window.size();
        window_sum += r.loss - window[slot];
        window[slot] = r.loss;
        ++steps;
        if (steps >= window.size()) {
          const double mean = window_sum / static_cast<double>(window.size());
          const double limit = std::max(options.divergence_factor * baseline, chance_loss);
          if (mean > limit) {
            char what[256];
            std::snprintf(what, sizeof what,
                          "the training loss diverged: the mean of the last %zu steps is %.4g, "
                          "over %.4g (%.3gx the first step's %.4g, at least a uniform guess's "
                          "%.4g) at epoch %d, sample %zu",
                          window.size(), mean, limit, options.divergence_factor, baseline,
                          chance_loss, epoch, start);
            throw TrainingDiverged(what, epoch, start);
          }
        }
      }
      loss_sum += r.loss * static_cast<double>(n);
      correct += r.correct;
      seen += n;
      if (callbacks.on_batch) {
        callbacks.on_batch({epoch, seen, order.size(), loss_sum / static_cast<double>(seen),
                            static_cast<double>(correct) / static_cast<double>(seen),
                            std::chrono::duration<double>(Clock::now() - t0).count()});
      }
    }
    EpochResult result;
    result.epoch = epoch;
    result.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    result.samples = seen;
    result.loss = loss_sum / static_cast<double>(seen);
    result.accuracy = static_cast<double>(correct) / static_cast<double>(seen);
    result.learning_rate = optimizer.learning_rate();
    history.train_seconds += result.seconds;
    // Each process stepped its slice of the optimizer's state only; the checkpoint (and any
    // later reader) needs all of it.
    if (parallel) parallel->gather_optimizer_state(optimizer);
    if (validation.count()) {
      result.validation = evaluate(model.network(), validation, model.num_classes(), scale,
                                   options.evaluation_batch, options.threads);
    }
    if (!options.checkpoint.empty()) {
      save_checkpoint(options.checkpoint, model, optimizer, rng, epoch,
                      options.checkpoint_settings);
    }
    history.epochs.push_back(result);
    if (schedule) schedule->on_epoch_end(result.validation ? result.validation->loss : result.loss);
    bool stop = false;
    if (options.early_stopping_patience > 0) {
      if (result.validation->loss < best_loss) {
        best_loss = result.validation->loss;
        history.best_epoch = epoch;
        wait = 0;
        if (options.restore_best_weights) {
          best_weights.resize(params.size());
          for (size_t i = 0; i < params.size(); ++i) {
            best_weights[i].resize(params[i]->value.shape());
            std::copy_n(params[i]->value.data(), params[i]->value.size(), best_weights[i].data());
          }
        }
      } else if (++wait >= options.early_stopping_patience) {
        stop = epoch < options.epochs;
        history.stopped_early = stop;
      }
    }
    if (callbacks.on_epoch_end && !callbacks.on_epoch_end(history.epochs.back())) break;
    if (stop) break;
  }
  if (!best_weights.empty() && history.best_epoch != history.epochs.back().epoch) {
    for (size_t i = 0; i < params.size(); ++i) {
      std::copy_n(best_weights[i].data(), best_weights[i].size(), params[i]->value.data());
    }
    history.restored_best = true;
  }
  return history;
}

}  // namespace simdnn
