// tools/predict: classifies image files with a trained model, or evaluates it on a labelled
// data set (MNIST IDX, image folder or CSV; <simdnn/dataset.h>).
//
//   predict --model model.safetensors digit.png shirt.jpg ...
//   predict --model model.safetensors --data /usr/share/datasets/fashion-mnist
//   predict --model model.safetensors --explain explanations/ shirt.png
//
// Results go to stdout, errors to stderr. Exit codes (tools/exit_codes.h): 0 every input
// predicted; 1 bad flags; 2 bad data: a model file or --data set whose contents cannot be used,
// or some image files that could not be used (the others are still predicted); 4 a model file or
// --data set that cannot be read.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <cstdint>
#include <filesystem>
#include <set>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "simdnn/attribution.h"
#include "simdnn/attribution_picture.h"
#include "simdnn/batches.h"
#include "simdnn/dataset.h"
#include "simdnn/evaluation.h"
#include "simdnn/idx.h"
#include "simdnn/image.h"
#include "simdnn/image_ops.h"
#include "simdnn/io_error.h"
#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/png_encode.h"
#include "simdnn/serving/predictions.h"
#include "simdnn/tensor.h"
#include "simdnn/threading.h"
#include "simdnn/training.h"
#include "tool_version.h"
#include "exit_codes.h"

namespace {

using json = nlohmann::json;
using simdnn::serving::label_of;

// Some image files could not be used; the others were predicted (the "bad data" code).
constexpr int kExitSomeInputsFailed = simdnn::tools::kExitBadData;

constexpr const char* kFooter = R"(
Output, images (one line per image, highest probability first):
  FILE: LABEL [CLASS] P, LABEL [CLASS] P, ...
With --json, one JSON object per line (JSON Lines), in the order of the arguments:
  {"file": "...", "class": 3, "label": "Dress", "probabilities": [...10 floats...],
   "top_k": [{"class": 3, "label": "Dress", "probability": 0.91}, ...]}
With --explain DIR, each image also gets DIR/<name>.png (the input file's name without its
extension; -2, -3... when two inputs share a name): the input as the model sees it, the
integrated-gradients attribution of the predicted class's probability (red: evidence for it,
blue: against, white: none; scale symmetric about 0), and the two overlaid. With --json, each
line then has "explanation": {"png", "method": "integrated_gradients", "steps", "baseline":
"black", "target": "probability", "output", "baseline_output", "delta" (output -
baseline_output), "sum" (of the attributions; equals delta within ~1% at 128 steps; more
--explain-steps close the gap), "regions": the 3
cells of 7x7 pixels with the largest attribution sums [{"top", "left", "height", "width",
"sum"}]}.
Output, --data: accuracy, per-class accuracy and the confusion matrix (rows: true class,
columns: predicted). With --json, one JSON object:
  {"count", "accuracy", "loss", "per_class": [{"class", "label", "count", "correct",
   "accuracy"}], "confusion": [[...]]}
Files that cannot be used are reported on stderr, one line each ("predict: " and a message
naming the file); the others are still predicted, and the exit code is 2.
Exit codes: 0 ok; 1 bad flags; 2 bad data (a model or --data set whose contents cannot be used,
or some unusable image files); 4 a model or --data set that cannot be read.)";

struct Options {
  std::string model;
  std::vector<std::string> images;
  std::string data;
  std::string split = "t10k";
  size_t top_k = 3;
  bool json = false;
  std::string invert = "auto";
  size_t max_pixels = simdnn::kDefaultMaxImagePixels;
  int threads = 0;
  std::string explain;  // directory for explanation PNGs; empty: none
  size_t explain_steps = 128;
  size_t explain_zoom = 4;
};

// DIR/<stem>.png, made unique among this run's outputs by -2, -3, ...
std::filesystem::path explanation_path(const std::filesystem::path& dir, const std::string& file,
                                       std::set<std::string>& used) {
  std::string stem = std::filesystem::path(file).stem().string();
  if (stem.empty()) stem = "image";
  std::string name = stem;
  for (int n = 2; !used.insert(name).second; ++n) name = stem + "-" + std::to_string(n);
  return dir / (name + ".png");
}

// Writes the explanation picture of one image and returns predict --json's "explanation".
json explain_image(simdnn::Explainer& explainer, std::span<const uint8_t> pixels,
                   std::span<const float> x, size_t predicted, const std::filesystem::path& png,
                   const Options& o) {
  const simdnn::ModelInfo& info = explainer.model().info();
  const simdnn::Attribution a = explainer.integrated_gradients(x, predicted, o.explain_steps);
  simdnn::write_png(png, simdnn::explanation_picture(pixels, a.values, info.input_width,
                                                     info.input_height, o.explain_zoom));
  json regions = json::array();
  for (const simdnn::AttributionRegion& r :
       simdnn::strongest_regions(a.values, info.input_width, info.input_height, 7, 3)) {
    regions.push_back({{"top", r.top}, {"left", r.left}, {"height", r.height},
                       {"width", r.width}, {"sum", r.sum}});
  }
  return {{"png", png.string()},
          {"method", "integrated_gradients"},
          {"steps", o.explain_steps},
          {"baseline", "black"},
          {"target", "probability"},
          {"output", a.output},
          {"baseline_output", a.baseline_output},
          {"delta", a.output - a.baseline_output},
          {"sum", a.sum()},
          {"regions", std::move(regions)}};
}

simdnn::Invert parse_invert(const std::string& s) {
  if (s == "yes") return simdnn::Invert::kYes;
  if (s == "no") return simdnn::Invert::kNo;
  return simdnn::Invert::kAuto;
}

int predict_images(simdnn::Model& model, const Options& o) {
  const simdnn::ModelInfo& info = model.info();
  const simdnn::Invert invert = parse_invert(o.invert);
  const size_t features = info.input_size();

  // Decode everything first so that one batched predict call does the work; files that fail
  // are reported and skipped.
  std::vector<size_t> ok;  // indices into o.images
  std::vector<uint8_t> pixels;
  for (size_t i = 0; i < o.images.size(); ++i) {
    try {
      const simdnn::GrayImage image = simdnn::load_image(o.images[i], o.max_pixels);
      const std::vector<uint8_t> input = simdnn::prepare_for_model(
          image, static_cast<int>(info.input_width), static_cast<int>(info.input_height), invert);
      pixels.insert(pixels.end(), input.begin(), input.end());
      ok.push_back(i);
    } catch (const simdnn::IoError& e) {
      std::fprintf(stderr, "predict: %s\n", e.what());  // IoError messages name the file
    } catch (const std::exception& e) {
      std::fprintf(stderr, "predict: %s: %s\n", o.images[i].c_str(), e.what());
    }
  }

  if (!ok.empty()) {
    std::vector<uint32_t> rows(ok.size());
    std::iota(rows.begin(), rows.end(), 0u);
    simdnn::Tensor x;
    simdnn::gather_batch(pixels, features, rows, info.pixel_scale, x);
    const simdnn::Tensor& probs = model.predict(x, o.threads);
    const size_t classes = probs.cols();
    const size_t k = std::min(o.top_k, classes);
    // The JSON is serve's prediction object plus "file", with floats in the form predict has
    // always printed (FloatStyle::kJsonLibrary: "1.0" where serve prints "1").
    std::optional<simdnn::serving::PredictionWriter> writer;
    if (o.json) writer.emplace(info, classes, simdnn::serving::FloatStyle::kJsonLibrary);
    std::vector<size_t> order;
    std::string line;
    std::optional<simdnn::Explainer> explainer;
    std::set<std::string> used_names;
    if (!o.explain.empty()) {
      explainer.emplace(model, simdnn::AttributionOptions{.threads = o.threads});
      std::filesystem::create_directories(o.explain);
    }
    for (size_t r = 0; r < ok.size(); ++r) {
      const std::span<const float> p = probs.row(r);
      simdnn::top_k_classes(p, k, order);
      const std::string& file = o.images[ok[r]];
      json explanation;
      if (explainer) {
        explanation = explain_image(*explainer,
                                    std::span(pixels).subspan(r * features, features), x.row(r),
                                    order[0], explanation_path(o.explain, file, used_names), o);
      }
      if (o.json) {
        line.clear();
        writer->append_prediction(line, p, order, k, file);
        if (explainer && !line.empty() && line.back() == '}') {
          // The prediction object's keys are in alphabetical order; "explanation" sorts
          // between "class" and "file", but JSON readers do not care: it goes last.
          line.pop_back();
          line += ",\"explanation\":" + explanation.dump() + "}";
        }
        std::printf("%s\n", line.c_str());
      } else {
        std::string text = file + ":";
        for (size_t j = 0; j < k; ++j) {
          char prob[32];
          std::snprintf(prob, sizeof prob, "%.4f", static_cast<double>(p[order[j]]));
          text += (j ? ", " : " ") + label_of(info, order[j]) + " [" +
                  std::to_string(order[j]) + "] " + prob;
        }
        std::printf("%s\n", text.c_str());
      }
    }
  }
  std::fflush(stdout);
  return ok.size() == o.images.size() ? 0 : kExitSomeInputsFailed;
}

int evaluate_data(simdnn::Model& model, const Options& o) {
  const simdnn::ModelInfo& info = model.info();
  const size_t classes = model.num_classes();
  // Any format load_dataset knows; the images must be the model's size (an image folder's are
  // resized to it) and an image folder's classes are matched to the model's by name.
  simdnn::DatasetOptions options;
  options.num_classes = classes;
  options.height = info.input_height;
  options.width = info.input_width;
  options.max_pixels = o.max_pixels;
  options.class_names = info.class_names;
  const std::optional<simdnn::LoadedDataset> loaded = simdnn::load_dataset(o.data, o.split, options);
  if (!loaded) {
    throw simdnn::DataError("the data set '" + o.data + "' has no " + o.split +
                            " split (an image folder without train/ and test/, or a lone CSV "
                            "file): use --split train");
  }
  const simdnn::Dataset& data = loaded->data;
  const simdnn::Evaluation ev =
      simdnn::evaluate(model.network(), data.images.pixels, info.input_size(),
                       data.labels.labels, classes, info.pixel_scale, 1000, o.threads);

  std::vector<size_t> count(classes, 0), correct(classes, 0);
  for (size_t t = 0; t < classes; ++t) {
    for (size_t p = 0; p < classes; ++p) count[t] += ev.confusion[t][p];
    correct[t] = ev.confusion[t][t];
  }
  const auto fraction = [](size_t a, size_t b) {
    return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0;
  };

  if (o.json) {
    json per_class = json::array();
    for (size_t c = 0; c < classes; ++c) {
      per_class.push_back({{"class", c},
                           {"label", label_of(info, c)},
                           {"count", count[c]},
                           {"correct", correct[c]},
                           {"accuracy", fraction(correct[c], count[c])}});
    }
    const json doc = {{"count", ev.count},
                      {"accuracy", ev.accuracy},
                      {"loss", ev.loss},
                      {"per_class", std::move(per_class)},
                      {"confusion", ev.confusion}};
    std::printf("%s\n", doc.dump().c_str());
    return 0;
  }

  std::printf("%zu images, accuracy %.4f, loss %.4f\n\n", ev.count, ev.accuracy, ev.loss);
  size_t width = 5;
  for (size_t c = 0; c < classes; ++c) width = std::max(width, label_of(info, c).size());
  std::printf("%-3s %-*s %7s %8s\n", "", static_cast<int>(width), "class", "images",
              "accuracy");
  for (size_t c = 0; c < classes; ++c) {
    std::printf("%-3zu %-*s %7zu %8.4f\n", c, static_cast<int>(width), label_of(info, c).c_str(),
                count[c], fraction(correct[c], count[c]));
  }
  std::printf("\nconfusion matrix (rows: true class, columns: predicted)\n    ");
  for (size_t p = 0; p < classes; ++p) std::printf(" %5zu", p);
  std::printf("\n");
  for (size_t t = 0; t < classes; ++t) {
    std::printf("%3zu ", t);
    for (size_t p = 0; p < classes; ++p) std::printf(" %5zu", ev.confusion[t][p]);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Classifies images with a simdnn model, or evaluates it on a labelled data set"};
  app.footer(kFooter);
  Options o;
  app.set_version_flag("--version", [] { return simdnn::tools::version_text("predict"); },
                       "Print the version, the commit and the SIMD target, then exit");
  app.add_option("--model", o.model, "Model file (safetensors, from tools/train)")->required();
  auto* images = app.add_option("images", o.images,
                                "Image files: PNG, JPEG, BMP, GIF, PGM/PPM, TGA, PSD, HDR");
  auto* data = app.add_option("--data", o.data,
                              "Labelled data set to evaluate on: an MNIST IDX directory "
                              "(<split>-images-idx3-ubyte, ... optionally .gz), an image folder "
                              "(one subfolder per class, or train/ and test/ holding them) or a "
                              "CSV (label,pixel0,...; a file, or a directory with train.csv and "
                              "test.csv)");
  data->excludes(images);
  app.add_option("--split", o.split, "Which split of --data: t10k (= test) or train")
      ->capture_default_str()
      ->check(CLI::IsMember({"t10k", "test", "train"}))
      ->needs(data);
  app.add_option("--top-k", o.top_k, "Classes listed per image")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_flag("--json", o.json, "Machine-readable output (see below)");
  app.add_option("--invert", o.invert,
                 "yes: dark ink on light paper; no: light ink on dark (MNIST); auto: invert "
                 "when the border is light")
      ->capture_default_str()
      ->check(CLI::IsMember({"yes", "no", "auto"}));
  app.add_option("--max-pixels", o.max_pixels,
                 "Refuse images whose header declares more pixels (width*height)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  auto* explain = app.add_option(
      "--explain", o.explain,
      "Directory (created if missing) for one explanation PNG per image (see below)");
  explain->excludes(data);
  app.add_option("--explain-steps", o.explain_steps,
                 "Integrated-gradients steps (points on the path from black to the image)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{4096}))
      ->needs(explain);
  app.add_option("--explain-zoom", o.explain_zoom,
                 "Screen pixels per input pixel in the explanation PNGs")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{64}))
      ->needs(explain);
  app.add_option("--threads", o.threads, "Threads for inference (0: all cores)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  try {
    app.parse(argc, argv);
    if (o.images.empty() && o.data.empty()) {
      throw CLI::ValidationError("give image files, or --data DIR");
    }
  } catch (const CLI::ParseError& e) {
    return simdnn::tools::exit_code_for_parse(app, e);
  }

  return simdnn::tools::run_tool("predict", [&] {
    simdnn::set_num_threads(o.threads);
    simdnn::Model model = [&] {
      // The same exception type (bad data: 2, unreadable: 4), with what was being done.
      try {
        return simdnn::load_model(o.model);
      } catch (const simdnn::DataError& e) {
        throw simdnn::DataError(std::string("cannot load model: ") + e.what());
      } catch (const simdnn::IoError& e) {
        throw simdnn::IoError(std::string("cannot load model: ") + e.what());
      }
    }();
    return o.data.empty() ? predict_images(model, o) : evaluate_data(model, o);
  });
}
