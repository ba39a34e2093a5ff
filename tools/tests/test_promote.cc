// tools/promote: the exact McNemar test against known values, and the gate end to end on a
// model repository: a better candidate becomes the next version byte for byte, a worse one and
// one below --min-accuracy are refused with the repository unchanged, mismatched models are
// bad data.
//
// The labelled set needs no training: its labels are what a reference model (make_test_model,
// seed 7) predicts on fixed images, so that model is 100 % right on it and a model with other
// random weights (seed 8) is right about one time in ten.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "simdnn/idx.h"
#include "simdnn/model_comparison.h"
#include "simdnn/model_file.h"
#include "tools/tests/tools_test_support.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_promote {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using simdnn::test::TempDir;

// The normal approximation with continuity correction, two-sided.
double mcnemar_normal_p(double b, double c) {
  const double z = (std::abs(b - c) - 1.0) / std::sqrt(b + c);
  return std::erfc(z / std::sqrt(2.0));
}

// `count` images (a mix of strokes and noise) labelled by `reference`'s predictions, written
// as DIR/t10k-{images,labels}.
void write_labelled_set(const fs::path& dir, const simdnn::Model& reference, size_t count) {
  fs::create_directories(dir);
  simdnn::ImageSet images{count, 28, 28, {}};
  for (size_t i = 0; i < count; ++i) {
    const simdnn::GrayImage img = i % 2 ? simdnn::test::make_stroke_image(static_cast<int>(i))
                                        : simdnn::test::make_noise_image(28, static_cast<uint32_t>(i + 1));
    images.pixels.insert(images.pixels.end(), img.pixels.begin(), img.pixels.end());
  }
  const std::vector<int32_t> predicted = simdnn::predict_classes(
      reference.network(), images.pixels, 784, reference.info().pixel_scale);
  simdnn::LabelSet labels;
  for (int32_t p : predicted) labels.labels.push_back(static_cast<uint8_t>(p));
  simdnn::write_idx_images(dir / "t10k-images-idx3-ubyte", images);
  simdnn::write_idx_labels(dir / "t10k-labels-idx1-ubyte", labels);
}

struct Setup {
  TempDir dir{"promote"};
  fs::path repo = dir / "repo";
  fs::path data = dir / "data";
  fs::path good = dir / "good.safetensors";  // seed 7: the labels' own model
  fs::path bad = dir / "bad.safetensors";    // seed 8: other random weights
  Setup() {
    const simdnn::Model reference = simdnn::test::make_test_model(7, "good");
    write_labelled_set(data, reference, 400);
    simdnn::save_model(good, reference);
    simdnn::save_model(bad, simdnn::test::make_test_model(8, "bad"));
    fs::create_directories(repo / "digits");
  }
  void put_live(int version, const fs::path& model) {
    fs::create_directories(repo / "digits" / std::to_string(version));
    fs::copy_file(model, repo / "digits" / std::to_string(version) / "model.safetensors");
  }
  simdnn::test::CommandResult promote(const fs::path& candidate, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"--candidate", candidate.string(), "--repository",
                                     repo.string(), "--name", "digits", "--data", data.string(),
                                     "--json"};
    args.insert(args.end(), extra.begin(), extra.end());
    return simdnn::test::run_tool(SIMDNN_PROMOTE_BIN, args, dir.path());
  }
};

}  // namespace

TEST_CASE("mcnemar_exact_p: known values, symmetry, and large counts against the normal "
          "approximation") {
  // n = 10: P(X <= 1) = 11/1024, two-sided 22/1024.
  CHECK(simdnn::mcnemar_exact_p(1, 9) == doctest::Approx(22.0 / 1024).epsilon(1e-12));
  CHECK(simdnn::mcnemar_exact_p(9, 1) == simdnn::mcnemar_exact_p(1, 9));
  CHECK(simdnn::mcnemar_exact_p(0, 5) == doctest::Approx(2.0 / 32).epsilon(1e-12));
  // n = 30, k = 10: sum_{i<=10} C(30, i) / 2^30 = 53009102 / 1073741824.
  CHECK(simdnn::mcnemar_exact_p(10, 20) ==
        doctest::Approx(2.0 * 53009102.0 / 1073741824.0).epsilon(1e-10));
  CHECK(simdnn::mcnemar_exact_p(7, 7) == 1.0);
  CHECK(simdnn::mcnemar_exact_p(0, 0) == 1.0);
  CHECK(simdnn::mcnemar_exact_p(4, 5) == 1.0);  // 2 * P(X <= 4 | n = 9) = 1 exactly
  CHECK(simdnn::mcnemar_exact_p(0, 1) == 1.0);
  // Large counts: binomial coefficients of n = 8300 overflow a double; the log-space sum must
  // agree with the normal approximation, which is good at this size.
  const double exact = simdnn::mcnemar_exact_p(4000, 4300);
  const double normal = mcnemar_normal_p(4000, 4300);
  CHECK(normal > 5e-4);
  CHECK(normal < 2e-3);
  CHECK(exact == doctest::Approx(normal).epsilon(0.03));
  // A million discordant pairs: finite, tiny for a 1 % split, and monotone in the imbalance.
  const double huge = simdnn::mcnemar_exact_p(495'000, 505'000);
  CHECK(std::isfinite(huge));
  CHECK(huge > 0.0);
  CHECK(huge == doctest::Approx(mcnemar_normal_p(495'000, 505'000)).epsilon(0.03));
  CHECK(simdnn::mcnemar_exact_p(499'000, 501'000) > huge);
  CHECK(simdnn::mcnemar_exact_p(0, 2'000'000) == 0.0);  // underflows to 0, not NaN
}

TEST_CASE("promote: a better candidate becomes the next version, byte for byte") {
  Setup s;
  s.put_live(1, s.bad);
  s.put_live(3, s.bad);
  fs::create_directories(s.repo / "digits" / "4");  // an empty version directory: taken
  const auto r = s.promote(s.good);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const json report = json::parse(r.out);
  CHECK(report.at("decision") == "promoted");
  CHECK(report.at("version") == 5);
  CHECK(report.at("live_version") == 3);
  CHECK(report.at("candidate_metrics").at("accuracy") == 1.0);
  CHECK(report.at("live_metrics").at("accuracy").get<double>() < 0.5);
  CHECK(report.at("b") == 0);
  CHECK(report.at("c").get<int>() > 200);
  CHECK(report.at("p_value").get<double>() < 1e-6);
  CHECK(report.at("candidate_metrics").at("per_class_accuracy").size() == 10);
  const fs::path installed = s.repo / "digits" / "5" / "model.safetensors";
  REQUIRE(fs::exists(installed));
  CHECK(simdnn::test::read_text(installed) == simdnn::test::read_text(s.good));
  // Nothing but the new version was added: no temporary folder left behind.
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(s.repo / "digits")) entries.push_back(e.path().filename());
  std::sort(entries.begin(), entries.end());
  CHECK(entries == std::vector<std::string>{"1", "3", "4", "5"});
  CHECK(simdnn::test::directory_snapshot(s.repo / "digits" / "5").size() == 1);

  // The same model again is not worse than itself (b = c = 0, p = 1): version 6.
  const auto again = s.promote(s.good);
  REQUIRE_MESSAGE(again.exit_code == 0, again.err);
  CHECK(json::parse(again.out).at("p_value") == 1.0);
  CHECK(fs::exists(s.repo / "digits" / "6" / "model.safetensors"));
}

TEST_CASE("promote: a worse candidate and one below --min-accuracy are refused, the repository "
          "unchanged") {
  Setup s;
  s.put_live(1, s.good);
  const auto before = simdnn::test::directory_snapshot(s.repo);

  const auto worse = s.promote(s.bad);
  CHECK(worse.exit_code == 2);
  const json report = json::parse(worse.out);
  CHECK(report.at("decision") == "refused");
  CHECK(report.at("reason").get<std::string>().find("significantly worse") != std::string::npos);
  CHECK(report.at("b").get<int>() > report.at("c").get<int>());
  CHECK(report.at("p_value").get<double>() < 0.05);
  CHECK(report.at("version").is_null());
  CHECK(simdnn::test::directory_snapshot(s.repo) == before);

  // Both rules refuse it here; --min-accuracy is checked first and named.
  const auto floor = s.promote(s.bad, {"--alpha", "1e-12", "--min-accuracy", "0.9"});
  CHECK(floor.exit_code == 2);
  CHECK(json::parse(floor.out).at("reason").get<std::string>().find("--min-accuracy") !=
        std::string::npos);
  CHECK(simdnn::test::directory_snapshot(s.repo) == before);

  // Text output names the decision too.
  const auto text = simdnn::test::run_tool(
      SIMDNN_PROMOTE_BIN,
      {"--candidate", s.bad.string(), "--repository", s.repo.string(), "--name", "digits",
       "--data", s.data.string()},
      s.dir.path());
  CHECK(text.exit_code == 2);
  CHECK(text.out.find("refused: ") != std::string::npos);
  CHECK(text.out.find("b=") != std::string::npos);
  CHECK(simdnn::test::directory_snapshot(s.repo) == before);
}

TEST_CASE("promote: with no live version the candidate becomes version 1 if it meets "
          "--min-accuracy") {
  Setup s;
  const auto low = s.promote(s.bad, {"--min-accuracy", "0.5"});
  CHECK(low.exit_code == 2);
  CHECK(fs::is_empty(s.repo / "digits"));
  const auto ok = s.promote(s.good, {"--min-accuracy", "0.99"});
  REQUIRE_MESSAGE(ok.exit_code == 0, ok.err);
  CHECK(json::parse(ok.out).at("live_version").is_null());
  CHECK(json::parse(ok.out).at("version") == 1);
  CHECK(fs::exists(s.repo / "digits" / "1" / "model.safetensors"));
}

TEST_CASE("promote: mismatched class names, a corrupt candidate and bad flags change nothing") {
  Setup s;
  s.put_live(1, s.good);
  const auto before = simdnn::test::directory_snapshot(s.repo);

  simdnn::Model fashion = simdnn::test::make_test_model(7);
  fashion.info().class_names = simdnn::fashion_mnist_class_names();
  simdnn::save_model(s.dir / "fashion.safetensors", fashion);
  const auto names = s.promote(s.dir / "fashion.safetensors");
  CHECK(names.exit_code == 2);
  CHECK(names.out.empty());  // bad data: no report, a message
  CHECK(names.err.find("class names") != std::string::npos);

  simdnn::test::write_raw(s.dir / "corrupt.safetensors", {1, 2, 3, 4, 5, 6, 7, 8, 9});
  const auto corrupt = s.promote(s.dir / "corrupt.safetensors");
  CHECK(corrupt.exit_code == 2);
  CHECK(corrupt.err.find("corrupt.safetensors") != std::string::npos);

  CHECK(s.promote(s.dir / "missing.safetensors").exit_code == 4);
  // The live version (the highest) does not load: nothing to compare with, bad data.
  {
    const auto live2 = s.repo / "digits" / "2";
    fs::create_directories(live2);
    simdnn::test::write_raw(live2 / "model.safetensors", {9, 9, 9});
    const auto broken = s.promote(s.good);
    CHECK(broken.exit_code == 2);
    CHECK(broken.err.find("2/model.safetensors") != std::string::npos);
    fs::remove_all(live2);
  }
  CHECK(s.promote(s.good, {"--alpha", "2"}).exit_code == 1);
  CHECK(simdnn::test::run_tool(SIMDNN_PROMOTE_BIN,
                               {"--candidate", s.good.string(), "--repository", s.repo.string(),
                                "--name", ".hidden", "--data", s.data.string()},
                               s.dir.path())
            .exit_code == 1);
  CHECK(simdnn::test::directory_snapshot(s.repo) == before);
}

}  // namespace test_promote
