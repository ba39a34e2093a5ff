// libFuzzer target: the CSV data-set reader behind load_dataset (<simdnn/dataset.h>). It takes
// a path, so each input is written to a per-process .csv file in /dev/shm (RAM) first.
// Contract checked: IoError (DataError) for anything invalid, and a consistent set otherwise.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "simdnn/dataset.h"
#include "simdnn/io_error.h"
#include "fuzz_temp_file.h"

namespace {

const simdnn::fuzz::FuzzTempFile input_file("csv", ".csv");

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  input_file.write(data, size);
  simdnn::DatasetOptions options;
  options.num_classes = size > 0 ? 1 + data[size - 1] % 10 : 10;
  if (size > 1 && data[size - 2] % 2) options.height = options.width = 2;  // a given size, too
  try {
    const auto loaded = simdnn::load_dataset(input_file.path(), "train", options);
    const simdnn::ImageSet& images = loaded->data.images;
    bool ok = images.count > 0 && images.rows > 0 && images.cols > 0 &&
              images.rows <= simdnn::kMaxInputSide && images.cols <= simdnn::kMaxInputSide &&
              images.pixels.size() == images.count * images.rows * images.cols &&
              loaded->data.labels.count() == images.count &&
              (!options.height || (images.rows == 2 && images.cols == 2));
    for (uint8_t label : loaded->data.labels.labels) ok = ok && label < options.num_classes;
    if (!ok) {
      std::fprintf(stderr, "inconsistent CSV set: %zu x %zu x %zu, %zu pixels, %zu labels\n",
                   images.count, images.rows, images.cols, images.pixels.size(),
                   loaded->data.labels.count());
      std::abort();
    }
  } catch (const simdnn::IoError&) {
  }
  return 0;
}
