#include "simdnn/fit.h"

#include <algorithm>
#include <chrono>
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

  const float scale = model.info().pixel_scale;
  Tape tape(options.threads);
  optimizer.set_threads(options.threads);
  std::vector<uint32_t> order(train.count());
  std::vector<int32_t> labels;
  History history;
  for (int epoch = options.first_epoch; epoch <= options.epochs; ++epoch) {
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
      // The batch stays uint8: the first layer's GEMMs convert the pixels as they pack them.
      const GatheredRows x{train.pixels, train.features, idx, scale};
      gather_labels(train.labels, idx, labels);
      StepResult r;
      try {
        r = train_step(model.network(), tape, optimizer, x, labels);
      } catch (const NonFiniteLoss& e) {
        throw TrainingDiverged(std::string(e.what()) + " at epoch " + std::to_string(epoch) +
                                   ", sample " + std::to_string(start),
                               epoch, start);
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
    history.train_seconds += result.seconds;
    if (validation.count()) {
      result.validation = evaluate(model.network(), validation, model.num_classes(), scale,
                                   options.evaluation_batch, options.threads);
    }
    if (!options.checkpoint.empty()) {
      save_checkpoint(options.checkpoint, model, optimizer, rng, epoch,
                      options.checkpoint_settings);
    }
    history.epochs.push_back(result);
    if (callbacks.on_epoch_end && !callbacks.on_epoch_end(history.epochs.back())) break;
  }
  return history;
}

}  // namespace simdnn
