// train --plot: the per-epoch loss and accuracy curves and a confusion matrix as one SVG,
// written directly (no plotting library): a user looks instead of reading columns.
#pragma once

#include <string>
#include <vector>

#include "simdnn/fit.h"

namespace simdnn::tools {

struct TrainingPlot {
  std::string title;
  // One point per epoch run in this process (a resumed run starts at its first epoch).
  std::vector<EpochResult> epochs;
  // confusion[true][predicted], and what it was computed on, e.g. "validation set (6000
  // images), final model": the label is drawn with the matrix.
  std::vector<std::vector<size_t>> confusion;
  std::string confusion_label;
  std::vector<std::string> class_names;
};

// The SVG document: a loss panel and an accuracy panel, each with a "train" curve and, when
// the epochs have validation results, a "validation" curve (every curve a <polyline
// class="series" data-series="...">), and the confusion matrix as a grid of cells shaded by
// their share of the true class's row, with the counts written in.
std::string training_plot_svg(const TrainingPlot& plot);

}  // namespace simdnn::tools
