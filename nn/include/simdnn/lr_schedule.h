// Learning-rate schedules over epochs, as Keras' LearningRateScheduler and ReduceLROnPlateau:
// constant, step decay, cosine decay and reduce-on-plateau. fit() asks the schedule for each
// epoch's rate before the epoch and tells it each epoch's monitored loss after it.
#pragma once

#include <limits>
#include <string>

namespace simdnn {

enum class LrScheduleKind { kConstant, kStep, kCosine, kPlateau };

// "constant", "step", "cosine" or "plateau"; throws std::invalid_argument naming the others.
LrScheduleKind parse_lr_schedule(const std::string& name);

struct LrScheduleOptions {
  LrScheduleKind kind = LrScheduleKind::kConstant;
  // kStep: the rate is multiplied by step_factor every step_epochs epochs.
  int step_epochs = 10;
  double step_factor = 0.5;
  // kPlateau: after `plateau_patience` epochs without a new lowest monitored loss, the rate
  // is multiplied by plateau_factor and the count restarts (Keras ReduceLROnPlateau, no
  // cooldown, min_delta 0).
  int plateau_patience = 2;
  double plateau_factor = 0.5;
  // The floor of every schedule (kCosine decays to it at the last epoch).
  double min_lr = 0.0;
};

class LrSchedule {
 public:
  // base_lr: the optimizer's rate at epoch 1; epochs: the last epoch (cosine's length).
  // Throws std::invalid_argument for a non-positive base rate or epochs, a factor outside
  // (0, 1], step_epochs or plateau_patience < 1, or min_lr outside [0, base_lr].
  LrSchedule(const LrScheduleOptions& options, double base_lr, int epochs);

  // The rate for epoch `epoch` (1-based):
  //   constant: base
  //   step:     max(min, base * step_factor ^ floor((epoch - 1) / step_epochs))
  //   cosine:   min + (base - min) * (1 + cos(pi * (epoch - 1) / epochs)) / 2
  //             (base at epoch 1, falling towards min, which the epoch after the last reaches)
  //   plateau:  the current rate, lowered by on_epoch_end()
  double rate(int epoch) const;
  // After an epoch: `monitored` is its validation loss (training loss without validation).
  // Only kPlateau uses it. Returns true when it lowered the rate.
  bool on_epoch_end(double monitored);

 private:
  LrScheduleOptions options_;
  double base_;
  int epochs_;
  double plateau_rate_;
  double best_ = std::numeric_limits<double>::infinity();
  int wait_ = 0;
};

}  // namespace simdnn
