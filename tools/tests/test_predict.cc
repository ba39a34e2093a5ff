// tools/predict, run as a binary: image formats, auto-invert, refused files, --data, --json.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "simdnn/evaluation.h"
#include "simdnn/idx.h"
#include "simdnn/image.h"
#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/training.h"
#include "tools/tests/tools_test_support.h"

#include <stb_image.h>

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_predict {

namespace {

using json = nlohmann::json;
using simdnn::GrayImage;
using simdnn::ImageFormat;
using simdnn::Invert;
using simdnn::test::contains;
using simdnn::test::run_tool;
using simdnn::test::split_lines;
using simdnn::test::TempDir;
using simdnn::test::write_raw;

const std::string kPredict = SIMDNN_PREDICT_BIN;

// What predict should print for a file: the library's own load -> prepare -> predict.
std::vector<float> reference_probabilities(simdnn::Model& model, const std::filesystem::path& file,
                                           Invert invert) {
  const simdnn::ModelInfo& info = model.info();
  const GrayImage image = simdnn::load_image(file);
  const std::vector<uint8_t> px = simdnn::prepare_for_model(
      image, static_cast<int>(info.input_width), static_cast<int>(info.input_height), invert);
  simdnn::Tensor x(simdnn::Shape{1, info.input_size()});
  for (size_t i = 0; i < px.size(); ++i) x[i] = px[i] * info.pixel_scale;
  const simdnn::Tensor& p = model.predict(x, 1);
  return {p.data(), p.data() + p.size()};
}

std::vector<float> as_floats(const json& array) {
  std::vector<float> v;
  for (const json& e : array) v.push_back(e.get<float>());
  return v;
}

// One JSON object per stdout line, keyed by "file".
std::map<std::string, json> json_lines_by_file(const std::string& out) {
  std::map<std::string, json> by_file;
  for (const std::string& line : split_lines(out)) {
    const json j = json::parse(line);
    by_file[j.at("file").get<std::string>()] = j;
  }
  return by_file;
}

}  // namespace

TEST_CASE("predict: PNG JPEG and BMP files give the library's probabilities and top-k") {
  TempDir dir("predict-formats");
  simdnn::Model model = simdnn::test::make_test_model();
  const auto model_path = dir / "model.safetensors";
  simdnn::save_model(model_path, model);

  std::vector<std::string> files;
  const std::pair<ImageFormat, const char*> formats[] = {
      {ImageFormat::kPng, "png"}, {ImageFormat::kJpeg, "jpg"}, {ImageFormat::kBmp, "bmp"}};
  int variant = 0;
  for (const auto& [format, ext] : formats) {
    const auto path = dir / ("digit" + std::to_string(variant) + "." + ext);
    write_raw(path, simdnn::test::encode_gray(simdnn::test::make_stroke_image(variant), format));
    files.push_back(path.string());
    ++variant;
  }

  std::vector<std::string> args = {"--model", model_path.string(), "--json", "--top-k", "4"};
  args.insert(args.end(), files.begin(), files.end());
  const auto r = run_tool(kPredict, args, dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(r.err.empty());
  const auto lines = split_lines(r.out);
  REQUIRE(lines.size() == files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    CAPTURE(files[i]);
    const json j = json::parse(lines[i]);  // in argument order
    CHECK(j.at("file") == files[i]);
    const std::vector<float> expected = reference_probabilities(model, files[i], Invert::kAuto);
    const std::vector<float> got = as_floats(j.at("probabilities"));
    REQUIRE(got.size() == expected.size());
    for (size_t c = 0; c < got.size(); ++c) CHECK(got[c] == expected[c]);
    const size_t best = std::max_element(expected.begin(), expected.end()) - expected.begin();
    CHECK(j.at("class") == best);
    CHECK(j.at("label") == std::to_string(best));
    const json& top = j.at("top_k");
    REQUIRE(top.size() == 4);
    CHECK(top[0].at("class") == best);
    for (size_t k = 1; k < top.size(); ++k) {
      CHECK(top[k - 1].at("probability").get<float>() >= top[k].at("probability").get<float>());
    }
  }

  // Text output: one line per file, the file name first, top-k (default 3) entries.
  const auto text = run_tool(kPredict, {"--model", model_path.string(), files[0]}, dir.path());
  REQUIRE(text.exit_code == 0);
  const auto text_lines = split_lines(text.out);
  REQUIRE(text_lines.size() == 1);
  CHECK(text_lines[0].rfind(files[0] + ": ", 0) == 0);
  CHECK(std::count(text_lines[0].begin(), text_lines[0].end(), '[') == 3);
}

TEST_CASE("predict: a dark-on-light image auto-inverts to its light-on-dark twin's prediction") {
  TempDir dir("predict-invert");
  simdnn::Model model = simdnn::test::make_test_model();
  const auto model_path = dir / "model.safetensors";
  simdnn::save_model(model_path, model);

  // At the model's size the twins are exact inverses, and so are the inputs predict builds.
  const GrayImage light_on_dark = simdnn::test::make_stroke_image(4);
  const auto light = dir / "light_on_dark.png";
  const auto dark = dir / "dark_on_light.png";
  write_raw(light, simdnn::test::encode_gray(light_on_dark, ImageFormat::kPng));
  write_raw(dark, simdnn::test::encode_gray(simdnn::test::inverted(light_on_dark), ImageFormat::kPng));
  // At twice the size, predict resizes before inverting, so the twins' inputs may differ by
  // one grey level here and there: close probabilities, not identical ones.
  const GrayImage big_light_on_dark = simdnn::test::make_stroke_image(4, 56);
  const auto big_light = dir / "big_light_on_dark.png";
  const auto big_dark = dir / "big_dark_on_light.png";
  write_raw(big_light, simdnn::test::encode_gray(big_light_on_dark, ImageFormat::kPng));
  write_raw(big_dark, simdnn::test::encode_gray(simdnn::test::inverted(big_light_on_dark), ImageFormat::kPng));

  const auto r = run_tool(kPredict,
                          {"--model", model_path.string(), "--json", light.string(), dark.string(),
                           big_light.string(), big_dark.string()},
                          dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto by_file = json_lines_by_file(r.out);
  REQUIRE(by_file.size() == 4);
  CHECK(by_file[light.string()].at("probabilities") == by_file[dark.string()].at("probabilities"));
  CHECK(by_file[light.string()].at("class") == by_file[dark.string()].at("class"));
  const auto big_l = as_floats(by_file[big_light.string()].at("probabilities"));
  const auto big_d = as_floats(by_file[big_dark.string()].at("probabilities"));
  for (size_t c = 0; c < big_l.size(); ++c) CHECK(big_d[c] == doctest::Approx(big_l[c]).epsilon(0.01));

  // --invert no takes the dark-on-light file as it is: a different input, other probabilities.
  const auto raw = run_tool(kPredict, {"--model", model_path.string(), "--json", "--invert", "no", dark.string()},
                            dir.path());
  REQUIRE(raw.exit_code == 0);
  CHECK(json::parse(raw.out).at("probabilities") != by_file[light.string()].at("probabilities"));
  // --invert yes on the dark file is the same as auto.
  const auto yes = run_tool(kPredict, {"--model", model_path.string(), "--json", "--invert", "yes", dark.string()},
                            dir.path());
  REQUIRE(yes.exit_code == 0);
  CHECK(json::parse(yes.out).at("probabilities") == by_file[light.string()].at("probabilities"));
}

TEST_CASE("predict: bad files are named on stderr while the others are still predicted (exit 2)") {
  TempDir dir("predict-bad");
  simdnn::Model model = simdnn::test::make_test_model();
  const auto model_path = dir / "model.safetensors";
  simdnn::save_model(model_path, model);

  const auto good1 = dir / "good1.png";
  const auto good2 = dir / "good2.bmp";
  write_raw(good1, simdnn::test::encode_gray(simdnn::test::make_stroke_image(1), ImageFormat::kPng));
  write_raw(good2, simdnn::test::encode_gray(simdnn::test::make_stroke_image(2), ImageFormat::kBmp));

  const auto text = dir / "notes.png";  // the name lies; the content is text
  const std::string words = "this is not an image at all";
  write_raw(text, std::vector<uint8_t>(words.begin(), words.end()));

  std::vector<uint8_t> half = simdnn::test::encode_gray(simdnn::test::make_noise_image(64), ImageFormat::kPng);
  half.resize(half.size() / 2);
  const auto truncated = dir / "truncated.png";
  write_raw(truncated, half);

  // A JPEG without its last 100 bytes (of pixel data: noise does not compress), within
  // --max-pixels: libjpeg-turbo by itself would print "Premature end of JPEG file" and pad it.
  std::vector<uint8_t> cut_jpeg =
      simdnn::test::encode_gray(simdnn::test::make_noise_image(28), ImageFormat::kJpeg);
  cut_jpeg.resize(cut_jpeg.size() - 100);
  const auto truncated_jpeg = dir / "truncated.jpg";
  write_raw(truncated_jpeg, cut_jpeg);

  // 40x40 = 1600 pixels, over the --max-pixels 1000 given below (the good files have 784).
  const auto big = dir / "big.png";
  write_raw(big, simdnn::test::encode_gray(simdnn::test::make_noise_image(40), ImageFormat::kPng));
  const auto missing = dir / "missing.png";

  const auto r = run_tool(kPredict,
                          {"--model", model_path.string(), "--json", "--max-pixels", "1000", good1.string(),
                           text.string(), truncated.string(), truncated_jpeg.string(), big.string(), missing.string(),
                           good2.string()},
                          dir.path());
  CHECK(r.exit_code == 2);
  auto by_file = json_lines_by_file(r.out);
  CHECK(by_file.size() == 2);
  CHECK(by_file.count(good1.string()) == 1);
  CHECK(by_file.count(good2.string()) == 1);

  const auto err_lines = split_lines(r.err);
  CHECK(err_lines.size() == 5);  // one per bad file: nothing from the decoders themselves
  CAPTURE(r.err);
  CHECK(contains(r.err, text.string()));
  CHECK(contains(r.err, "not a supported image"));
  CHECK(contains(r.err, truncated.string()));
  CHECK(contains(r.err, truncated_jpeg.string()));
  CHECK(contains(r.err, "Premature end of JPEG file"));
  CHECK(contains(r.err, big.string()));
  CHECK(contains(r.err, "40x40"));
  CHECK(contains(r.err, missing.string()));
  for (const std::string& line : err_lines) CHECK(line.rfind("predict: ", 0) == 0);
}

TEST_CASE("predict: an unloadable model exits 2 or 4, no input 1, with a message") {
  TempDir dir("predict-model");
  const auto image = dir / "digit.png";
  write_raw(image, simdnn::test::encode_gray(simdnn::test::make_stroke_image(0), ImageFormat::kPng));
  const auto bogus = dir / "bogus.safetensors";
  const std::string junk = "not a safetensors file";
  write_raw(bogus, std::vector<uint8_t>(junk.begin(), junk.end()));

  const auto r = run_tool(kPredict, {"--model", bogus.string(), image.string()}, dir.path());
  CHECK(r.exit_code == 2);  // bad data
  CHECK(r.out.empty());
  CHECK(contains(r.err, bogus.string()));

  const auto missing = run_tool(kPredict, {"--model", (dir / "nope.safetensors").string(), image.string()},
                                dir.path());
  CHECK(missing.exit_code == 4);  // cannot be read
  CHECK(contains(missing.err, "nope.safetensors"));

  simdnn::Model model = simdnn::test::make_test_model();
  simdnn::save_model(dir / "model.safetensors", model);
  const auto no_input = run_tool(kPredict, {"--model", (dir / "model.safetensors").string()}, dir.path());
  CHECK(no_input.exit_code == 1);
  CHECK(contains(no_input.err, "--data"));
}

TEST_CASE("predict --data: accuracy and per-class accuracy and confusion match evaluate()") {
  TempDir dir("predict-data");
  simdnn::Model model = simdnn::test::make_test_model();
  const auto model_path = dir / "model.safetensors";
  simdnn::save_model(model_path, model);

  // 60 stroke images of 12 shapes, labelled by a rule the model does not know: the accuracy
  // is whatever it is, and must equal the library's.
  simdnn::ImageSet images{60, 28, 28, {}};
  simdnn::LabelSet labels;
  for (int i = 0; i < 60; ++i) {
    const GrayImage img = simdnn::test::make_stroke_image(i % 12);
    images.pixels.insert(images.pixels.end(), img.pixels.begin(), img.pixels.end());
    labels.labels.push_back(static_cast<uint8_t>((i * 7) % 10));
  }
  simdnn::write_idx_images(dir / "t10k-images-idx3-ubyte", images);
  simdnn::write_idx_labels(dir / "t10k-labels-idx1-ubyte.gz", labels);

  const simdnn::Evaluation ev = simdnn::evaluate(model.network(), images.pixels, 784, labels.labels,
                                                 10, model.info().pixel_scale);

  const auto r = run_tool(kPredict, {"--model", model_path.string(), "--data", dir.path().string(), "--json"},
                          dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const json doc = json::parse(r.out);
  CHECK(doc.at("count") == 60);
  CHECK(doc.at("accuracy").get<double>() == ev.accuracy);
  CHECK(doc.at("loss").get<double>() == doctest::Approx(ev.loss).epsilon(1e-12));
  CHECK(doc.at("confusion").get<std::vector<std::vector<size_t>>>() == ev.confusion);
  const json& per_class = doc.at("per_class");
  REQUIRE(per_class.size() == 10);
  for (size_t c = 0; c < 10; ++c) {
    size_t count = 0;
    for (size_t p = 0; p < 10; ++p) count += ev.confusion[c][p];
    CHECK(per_class[c].at("count") == count);
    CHECK(per_class[c].at("correct") == ev.confusion[c][c]);
  }

  const auto text = run_tool(kPredict, {"--model", model_path.string(), "--data", dir.path().string()},
                             dir.path());
  REQUIRE(text.exit_code == 0);
  char expected[64];
  std::snprintf(expected, sizeof expected, "60 images, accuracy %.4f", ev.accuracy);
  CHECK(contains(text.out, expected));
  CHECK(contains(text.out, "confusion matrix"));

  // A directory that does not exist: exit 4 (I/O), the directory named.
  const auto empty = run_tool(kPredict, {"--model", model_path.string(), "--data", (dir / "none").string()},
                              dir.path());
  CHECK(empty.exit_code == 4);
  CHECK(contains(empty.err, "none"));
}

TEST_CASE("predict: --explain writes a viewable PNG per image and --json adds the summary") {
  TempDir dir("predict-explain");
  simdnn::Model model = simdnn::test::make_test_model();
  const auto model_path = dir / "model.safetensors";
  simdnn::save_model(model_path, model);
  // Two inputs with the same name in different directories: the second PNG gets "-2".
  std::filesystem::create_directories(dir / "a");
  std::filesystem::create_directories(dir / "b");
  const std::vector<std::string> files = {(dir / "a" / "shirt.png").string(),
                                          (dir / "b" / "shirt.png").string()};
  for (size_t i = 0; i < files.size(); ++i) {
    write_raw(files[i], simdnn::test::encode_gray(simdnn::test::make_stroke_image(int(i) + 1),
                                                  ImageFormat::kPng));
  }
  const auto out_dir = dir / "explained";
  const auto r = run_tool(kPredict,
                          {"--model", model_path.string(), "--json", "--explain",
                           out_dir.string(), files[0], files[1]},
                          dir.path());
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const auto lines = split_lines(r.out);
  REQUIRE(lines.size() == 2);
  const std::string pngs[] = {(out_dir / "shirt.png").string(), (out_dir / "shirt-2.png").string()};
  for (size_t i = 0; i < 2; ++i) {
    CAPTURE(i);
    const json j = json::parse(lines[i]);
    CHECK(j.at("file") == files[i]);
    const json& e = j.at("explanation");
    CHECK(e.at("png") == pngs[i]);
    CHECK(e.at("method") == "integrated_gradients");
    CHECK(e.at("steps") == 128);
    const double delta = e.at("delta").get<double>();
    CHECK(delta == doctest::Approx(e.at("output").get<double>() -
                                   e.at("baseline_output").get<double>()));
    // Completeness, as the library guarantees it (tests/test_attribution.cc).
    CHECK(std::abs(e.at("sum").get<double>() - delta) <= 0.01 * std::abs(delta) + 1e-6);
    CHECK(e.at("output").get<double>() == doctest::Approx(as_floats(j.at("probabilities"))[j.at("class").get<size_t>()]));
    const json& regions = e.at("regions");
    REQUIRE(regions.size() == 3);
    for (size_t k = 1; k < 3; ++k) CHECK(regions[k - 1].at("sum") >= regions[k].at("sum"));
    CHECK(regions[0].at("width") == 7);

    // The PNG decodes: three 112x112 panels (zoom 4) with 4-pixel margins.
    const std::vector<uint8_t> bytes = simdnn::test::read_raw(pngs[i]);
    int w = 0, h = 0, channels = 0;
    uint8_t* rgb = stbi_load_from_memory(bytes.data(), static_cast<int>(bytes.size()), &w, &h,
                                         &channels, 3);
    REQUIRE(rgb != nullptr);
    const std::vector<uint8_t> px(rgb, rgb + static_cast<size_t>(w) * h * 3);
    stbi_image_free(rgb);
    CHECK(w == 3 * 112 + 4 * 4);
    CHECK(h == 112 + 2 * 4);
    // The heatmap panel (x in [120, 232)) is not blank: some of it is coloured (r != b).
    size_t coloured = 0;
    for (int y = 4; y < 116; ++y) {
      for (int x = 120; x < 232; ++x) {
        const uint8_t* p = &px[(static_cast<size_t>(y) * w + x) * 3];
        coloured += p[0] != p[2];
      }
    }
    CHECK(coloured > 100);
    // The input panel is the image as the model saw it (light-on-dark: its stroke is bright).
    size_t bright = 0;
    for (int y = 4; y < 116; ++y) {
      for (int x = 4; x < 116; ++x) bright += px[(static_cast<size_t>(y) * w + x) * 3] > 200;
    }
    CHECK(bright > 100);
  }

  // --explain goes with image files, not --data.
  const auto bad = run_tool(kPredict, {"--model", model_path.string(), "--data", dir.path().string(),
                                       "--explain", out_dir.string()},
                            dir.path());
  CHECK(bad.exit_code == 1);
}

}  // namespace test_predict
