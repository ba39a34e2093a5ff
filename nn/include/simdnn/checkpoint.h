// Training checkpoints: everything needed to continue a run where it stopped and reach the
// same model, bit for bit, as an uninterrupted run.
#pragma once

#include <filesystem>
#include <string>

#include "simdnn/model.h"
#include "simdnn/optimizer.h"
#include "simdnn/random.h"

namespace simdnn {

// Writes, atomically (temporary file, then rename), the model file (<simdnn/model_file.h>)
// plus the optimizer's state tensors as "training.<slot>" and the loop's state in
// __metadata__["training"]: epochs done, the optimizer's name and step count, the RNG state,
// and `settings_json`, a JSON object of the run's settings that a resume must share.
// Throws IoError naming the path when writing fails, std::invalid_argument when
// settings_json is not JSON.
void save_checkpoint(const std::filesystem::path& path, const Model& model, Optimizer& optimizer,
                     const Rng& rng, int epochs_done, const std::string& settings_json);

// Restores what save_checkpoint wrote into a model of the same architecture, the same kind of
// optimizer and the RNG, and returns the number of epochs done. Throws IoError naming the path
// when the file is unreadable, not a checkpoint, or does not fit this run: other settings
// (the message says "different settings" and shows both), another optimizer, another input
// size or architecture.
int restore_checkpoint(const std::filesystem::path& path, Model& model, Optimizer& optimizer,
                       Rng& rng, const std::string& settings_json);

}  // namespace simdnn
