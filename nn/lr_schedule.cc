#include "simdnn/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>

namespace simdnn {

LrScheduleKind parse_lr_schedule(const std::string& name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "step") return LrScheduleKind::kStep;
  if (name == "cosine") return LrScheduleKind::kCosine;
  if (name == "plateau") return LrScheduleKind::kPlateau;
  throw std::invalid_argument("unknown learning-rate schedule '" + name +
                              "' (constant, step, cosine or plateau)");
}

LrSchedule::LrSchedule(const LrScheduleOptions& options, double base_lr, int epochs)
    : options_(options), base_(base_lr), epochs_(epochs), plateau_rate_(base_lr) {
  if (!(base_lr > 0) || !std::isfinite(base_lr)) {
    throw std::invalid_argument("learning-rate schedule: the base rate must be positive");
  }
  if (epochs < 1) throw std::invalid_argument("learning-rate schedule: epochs must be >= 1");
  if (options.step_epochs < 1) {
    throw std::invalid_argument("learning-rate schedule: step epochs must be >= 1, got " +
                                std::to_string(options.step_epochs));
  }
  if (options.plateau_patience < 1) {
    throw std::invalid_argument("learning-rate schedule: plateau patience must be >= 1, got " +
                                std::to_string(options.plateau_patience));
  }
  for (double f : {options.step_factor, options.plateau_factor}) {
    if (!(f > 0 && f <= 1)) {
      throw std::invalid_argument("learning-rate schedule: a factor must be in (0, 1], got " +
                                  std::to_string(f));
    }
  }
  if (!(options.min_lr >= 0 && options.min_lr <= base_lr)) {
    throw std::invalid_argument("learning-rate schedule: the minimum rate " +
                                std::to_string(options.min_lr) + " must be in [0, " +
                                std::to_string(base_lr) + "]");
  }
}

double LrSchedule::rate(int epoch) const {
  const double e = static_cast<double>(std::max(epoch, 1) - 1);
  switch (options_.kind) {
    case LrScheduleKind::kConstant:
      return base_;
    case LrScheduleKind::kStep:
      return std::max(options_.min_lr,
                      base_ * std::pow(options_.step_factor,
                                       std::floor(e / static_cast<double>(options_.step_epochs))));
    case LrScheduleKind::kCosine: {
      const double t = std::min(e / static_cast<double>(epochs_), 1.0);
      return options_.min_lr +
             (base_ - options_.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * t));
    }
    case LrScheduleKind::kPlateau:
      return plateau_rate_;
  }
  return base_;
}

bool LrSchedule::on_epoch_end(double monitored) {
  if (options_.kind != LrScheduleKind::kPlateau) return false;
  if (monitored < best_) {
    best_ = monitored;
    wait_ = 0;
    return false;
  }
  if (++wait_ < options_.plateau_patience) return false;
  wait_ = 0;
  const double lowered = std::max(options_.min_lr, plateau_rate_ * options_.plateau_factor);
  const bool changed = lowered < plateau_rate_;
  plateau_rate_ = lowered;
  return changed;
}

}  // namespace simdnn
