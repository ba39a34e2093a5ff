// Labelled image data sets in the forms people have, behind one call that detects the format:
//
//   MNIST IDX   DIR/train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], and t10k-... for
//               the test split (<simdnn/idx.h>).
//   image folder  DIR/<class>/<image> (Keras' image_dataset_from_directory layout): one
//               subfolder per class, PNG/JPEG/BMP/GIF files directly inside, decoded to grayscale
//               and used as stored (no inversion). Class names are the subfolder names, sorted;
//               a label is an index into them. With DIR/train/<class>/ and DIR/test/<class>/,
//               those are the two splits; otherwise the whole DIR is the training split and
//               there is no test split.
//   CSV         `label,pixel0,...,pixelN` per line (Kaggle's Fashion-MNIST CSV), with an optional
//               header line (recognised by a first field that is not a number); pixels are
//               integers 0..255. DIR/train.csv and DIR/test.csv are the splits; a single .csv
//               file is the training split and there is no test split.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "simdnn/idx.h"
#include "simdnn/image.h"

namespace simdnn {

// The largest input height or width a model file may declare (nn/model_file.cc reads this
// same constant, and predict and serve load models through it): a data set whose images have
// a longer side is refused before training, instead of training a model nobody can load.
inline constexpr size_t kMaxInputSide = 4096;

// Upper bound on a CSV file's size, checked before reading it (Fashion-MNIST's training CSV
// is 133 MB).
inline constexpr size_t kMaxCsvBytes = size_t{2} << 30;

enum class DatasetFormat { kIdx, kImageFolder, kCsv };

// "MNIST IDX", "image folder" or "CSV", for messages.
const char* dataset_format_name(DatasetFormat format);

struct DatasetOptions {
  // Labels of IDX and CSV sets must be below this (at most 256: labels are bytes).
  size_t num_classes = 256;
  // The image size, or 0 x 0 to take it from the data. Image folder: every image is resized to
  // it (resize_gray); without it all images must have the first image's size. CSV: a row's
  // pixel count must equal height * width; without it the count must be a square. IDX: the
  // files' own size must equal it.
  size_t height = 0;
  size_t width = 0;
  // Image folder: refuse an image whose header declares more pixels, before decoding it.
  size_t max_pixels = kDefaultMaxImagePixels;
  // Image folder: the class names to label by (a folder's label is the index of its name in
  // this list, and a folder whose name is not in it is refused), e.g. a model's classes when
  // evaluating it. Empty: the sorted subfolder names of the training split.
  std::vector<std::string> class_names;
};

struct LoadedDataset {
  Dataset data;                          // images rows x cols, uint8, 0 = black; labels
  std::vector<std::string> class_names;  // image folder: one per class; IDX and CSV: empty
  DatasetFormat format = DatasetFormat::kIdx;
  std::vector<std::filesystem::path> files;  // the files read (IDX, CSV); image folder: its split directory
};

// Loads `split` ("train", or "test"; "t10k" is accepted for "test") of the data set at `path`:
// a directory (IDX files, train.csv, or class subfolders, tried in that order) or a .csv file.
// Returns nullopt only for a test split that the layout does not have (an image folder without
// train/ and test/, a lone .csv file, a directory without test.csv); a missing IDX t10k file is
// an error, as a half-copied MNIST directory is more likely than one without a test set.
//
// Deterministic: IDX and CSV keep the file's order; an image folder's files are sorted by name
// within each class and the classes interleaved evenly (each class spread over the whole
// sequence), so that a validation split taken from the end holds every class in proportion.
//
// Throws IoError (naming the path and the system's reason) when the path or a file is missing
// or cannot be read, and DataError naming the file, and the line and column of a CSV, when the
// contents cannot be used: a malformed file, a label >= num_classes, an undecodable image,
// images of different sizes (naming the first odd one), an image side above kMaxInputSide, an
// empty split, or more than kDefaultMaxIdxBytes of pixels in all; std::invalid_argument for
// another split name.
std::optional<LoadedDataset> load_dataset(const std::filesystem::path& path,
                                          std::string_view split,
                                          const DatasetOptions& options = {});

}  // namespace simdnn
