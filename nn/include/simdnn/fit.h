// The training loop: epochs of shuffled mini-batches, validation, checkpoints and callbacks,
// Keras' fit(). An embedder trains a model in a few lines:
//
//   simdnn::Rng rng(1);
//   simdnn::Model model = simdnn::Model::mlp(info, {128}, simdnn::Activation::kRelu, 10, rng);
//   simdnn::Adam adam;
//   simdnn::LabelledSamples train{data.images.pixels, data.labels.labels, info.input_size()};
//   simdnn::fit(model, adam, rng, train, {}, {.epochs = 5, .batch = 32});
#pragma once

#include <cstddef>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "simdnn/batches.h"
#include "simdnn/data_parallel.h"
#include "simdnn/evaluation.h"
#include "simdnn/lr_schedule.h"
#include "simdnn/model.h"
#include "simdnn/optimizer.h"
#include "simdnn/random.h"
#include "simdnn/training.h"

namespace simdnn {

struct FitOptions {
  int epochs = 5;     // the last epoch to run (counting from 1)
  size_t batch = 32;  // samples per step; the last batch of an epoch may be smaller
  int threads = 0;    // for the kernels and the optimizer; 0 = all cores
  // Resume: the first epoch to run, restore_checkpoint()'s epochs done + 1.
  int first_epoch = 1;
  // When set, a checkpoint (<simdnn/checkpoint.h>) is written atomically after every epoch,
  // with checkpoint_settings as the run's settings.
  std::filesystem::path checkpoint;
  std::string checkpoint_settings = "{}";
  // Batch size of the validation pass (memory, not results).
  size_t evaluation_batch = 1000;
  // Dropout, L2 and class weights for every step (<simdnn/training.h>).
  Regularization regularization;
  // Early stopping (Keras EarlyStopping(monitor="val_loss", patience, min_delta=0)): stop once
  // `early_stopping_patience` epochs in a row have not lowered the best validation loss.
  // 0 = off; anything else needs validation data.
  int early_stopping_patience = 0;
  // With early stopping: keep a copy of the weights of the epoch with the lowest validation
  // loss and put them back when training ends (Keras restore_best_weights), whether it stopped
  // early or ran every epoch.
  bool restore_best_weights = true;
  // The optimizer's rate per epoch; none: left as the optimizer has it. Reduce-on-plateau
  // watches the validation loss (the training loss without validation data).
  std::optional<LrScheduleOptions> lr_schedule;
  // Divergence beyond NaN. The baseline is the loss of this run's first step, taken before
  // any update (the starting model's loss); after every step, once `divergence_window` steps
  // have been taken, the mean loss of the last `divergence_window` steps is compared with
  // max(divergence_factor * baseline, ln(classes)) and above it the run throws
  // TrainingDiverged. Why: a run that diverges without overflowing (SGD at a huge rate) sits at
  // a loss many times its start, worse than guessing, and would otherwise end "fine" and
  // overwrite a good model. The first step, not the first few: at such a rate the second step
  // has already exploded, and a baseline that includes it hides the divergence. A window mean,
  // not one batch, so that a single hard batch does not trip it; ln(classes) (a uniform
  // guess's loss) as a floor, so that a fine-tuned model that starts very low may wander
  // without being called diverged. 0 = only NaN/infinity.
  double divergence_factor = 3.0;
  size_t divergence_window = 20;
  // Data-parallel training (<simdnn/data_parallel.h>): this process trains on its pieces of
  // every batch and combines the gradients with the other processes'; every process must call
  // fit() with the same data, model, options and rng state (checked once at the start). Each
  // process evaluates the validation set itself (the same result everywhere, so early stopping
  // and the schedule decide alike); give a checkpoint path to one process only. Not set: the
  // plain single-process loop.
  std::optional<DataParallelOptions> data_parallel;
};

// After every step.
struct BatchProgress {
  int epoch = 0;
  size_t done = 0;   // samples of this epoch trained on so far
  size_t total = 0;  // samples per epoch
  double loss = 0.0;      // mean over the epoch so far
  double accuracy = 0.0;  // fraction correct over the epoch so far
  double seconds = 0.0;   // since the epoch started
};

struct EpochResult {
  int epoch = 0;
  double loss = 0.0;      // mean training loss over the epoch
  double accuracy = 0.0;  // training accuracy over the epoch
  size_t samples = 0;
  double seconds = 0.0;   // training time, validation excluded
  double learning_rate = 0.0;  // the optimizer's rate during this epoch
  std::optional<Evaluation> validation;  // when validation data was given
};

struct FitCallbacks {
  std::function<void(const BatchProgress&)> on_batch;
  // After each epoch, once its checkpoint is written. Returning false stops training (early
  // stopping); the callback may change the model (e.g. restore the best weights).
  std::function<bool(const EpochResult&)> on_epoch_end;
};

struct History {
  std::vector<EpochResult> epochs;
  double train_seconds = 0.0;  // training steps only
  bool stopped_early = false;  // early stopping ended the run before options.epochs
  // With early stopping: the epoch with the lowest validation loss, and whether its weights
  // were put back at the end (restore_best_weights; false when it was the last epoch run, whose
  // weights the model holds anyway).
  int best_epoch = 0;
  bool restored_best = false;
};

// Thrown by fit() when the loss became NaN or infinite, or rose far above its start (see
// FitOptions::divergence_factor): the model holds the weights from before that step (NaN) or
// after it (rise), and the last checkpoint (if any) the state after the previous epoch.
class TrainingDiverged : public NonFiniteLoss {
 public:
  TrainingDiverged(const std::string& what, int epoch, size_t sample)
      : NonFiniteLoss(what), epoch(epoch), sample(sample) {}
  int epoch;      // the epoch it happened in
  size_t sample;  // the first sample of the batch whose loss was not finite
};

// Trains a softmax classifier with sparse categorical cross-entropy. Each epoch shuffles the
// training samples with `rng` and cuts them into batches; the batches stay uint8 (the first
// layer's GEMMs convert the pixels while packing them) and each batch's rows are grouped by
// label, which makes more blank pixel groups shared by a whole batch and skipped. Same seed,
// same data and same thread count or not: the same model, bit for bit (the kernels never
// split a reduction across threads). The validation set (empty: none) is evaluated after
// every epoch. Regularisation, early stopping, the learning-rate schedule and the divergence
// rule are FitOptions'. Throws std::invalid_argument for bad options or samples of the wrong size,
// TrainingDiverged, and IoError when a checkpoint cannot be written.
History fit(Model& model, Optimizer& optimizer, Rng& rng, const LabelledSamples& train,
            const LabelledSamples& validation, const FitOptions& options,
            const FitCallbacks& callbacks = {});

}  // namespace simdnn
