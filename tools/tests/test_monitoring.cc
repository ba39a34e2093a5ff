// deploy/ against the real thing: a real Prometheus server (Debian's prometheus, on loopback,
// in a temporary directory, scraping every second with deploy/prometheus/prometheus.yml's job
// and alerts.yml's rules) scrapes a real serve that made predictions and got feedback; then
// every PromQL expression of the Grafana dashboard (deploy/grafana/simdnn.json) and every
// alert rule's signal is evaluated through Prometheus' HTTP API and must return data, and every
// rule must evaluate without error. Skipped (with a message) only when the prometheus binary is
// missing; scripts/setup.sh installs it.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "simdnn/model_file.h"
#include "tools/tests/http_client.h"
#include "tools/tests/tools_test_support.h"

#ifndef SIMDNN_SOURCE_DIR
#error "tools_tests needs SIMDNN_SOURCE_DIR (tools/CMakeLists.txt)"
#endif

namespace simdnn::test {
namespace test_monitoring {  // one per file: the test programs are unity builds

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The alert rules' expressions, one line each (alerts.yml keeps that form), reduced to their
// signal: `<signal> <op> <threshold>` -> `<signal>`.
std::vector<std::string> alert_signals(const fs::path& rules) {
  std::ifstream in(rules);
  REQUIRE(in.good());
  const std::regex expr_line(R"(^\s*expr:\s*(.+?)\s*$)");
  const std::regex threshold(R"(^(.*\S)\s*(==|!=|>=|<=|>|<)\s*[0-9.eE+-]+$)");
  std::vector<std::string> out;
  std::string line;
  std::smatch m, t;
  while (std::getline(in, line)) {
    if (!std::regex_match(line, m, expr_line)) continue;
    const std::string expr = m[1];
    REQUIRE_MESSAGE(std::regex_match(expr, t, threshold),
                    "alert expression not of the form `signal op threshold`: " << expr);
    out.push_back(t[1]);
  }
  return out;
}

std::vector<std::string> dashboard_exprs(const fs::path& dashboard) {
  std::ifstream in(dashboard);
  REQUIRE(in.good());
  const nlohmann::json j = nlohmann::json::parse(in);
  std::vector<std::string> out;
  for (const auto& panel : j.at("panels")) {
    for (const auto& target : panel.value("targets", nlohmann::json::array())) {
      out.push_back(target.at("expr").get<std::string>());
    }
  }
  return out;
}

TEST_CASE("monitoring: a real Prometheus scrapes serve, every dashboard and alert expression "
          "returns data") {
  const std::string prometheus = find_program("prometheus");
  if (prometheus.empty()) {
    MESSAGE("SKIPPED: no prometheus binary (Debian package prometheus; scripts/setup.sh "
            "installs it)");
    return;
  }
  const fs::path source(SIMDNN_SOURCE_DIR);
  const auto signals = alert_signals(source / "deploy/prometheus/alerts.yml");
  const auto panels = dashboard_exprs(source / "deploy/grafana/simdnn.json");
  REQUIRE(signals.size() >= 6);
  REQUIRE(panels.size() >= 10);

  TempDir dir("monitoring");
  Model model = make_test_model(7, "1");
  {
    std::vector<uint8_t> pixels, labels;
    for (int i = 0; i < 40; ++i) {
      const GrayImage img = make_stroke_image(i);
      pixels.insert(pixels.end(), img.pixels.begin(), img.pixels.end());
      labels.push_back(static_cast<uint8_t>(i % 10));
    }
    model.info().reference_profile = reference_profile({pixels, labels, 784}, 10);
  }
  // A repository with a good version 1 and a broken version 2: version 2 never goes live and
  // is counted in model_load_failures_total; version 1 serves. (A serve without
  // --model-repository serves the file alone, and has no load-failure metric to check.)
  const bool has_repository =
      run_tool(SIMDNN_SERVE_BIN, {"--help"}, dir.path()).out.find("--model-repository") !=
      std::string::npos;
  std::vector<std::string> serve_args;
  if (has_repository) {
    fs::create_directories(dir / "models/digits/1");
    fs::create_directories(dir / "models/digits/2");
    save_model(dir / "models/digits/1/model.safetensors", model);
    std::ofstream broken(dir / "models/digits/2/model.safetensors");
    broken << "not a model";
    serve_args = {"--model-repository", (dir / "models").string(), "--poll-seconds", "0"};
  } else {
    save_model(dir / "digits.safetensors", model);
    serve_args = {"--model", (dir / "digits.safetensors").string()};
  }
  serve_args.insert(serve_args.end(), {"--store", (dir / "predictions.db").string(), "--host",
                                        "127.0.0.1", "--port", "0", "--threads", "2"});

  ServeProcess serve;
  INFO("serve's stderr: " << read_text(dir / "serve.err"));  // evaluated only on failure
  serve.start(SIMDNN_SERVE_BIN, serve_args, dir / "serve.err");

  // Predictions (ids of our own) and feedback, some right, some wrong, plus a 404 for the
  // error ratio's denominator to have more than one status.
  HttpClient client("127.0.0.1", serve.port, 10s);
  std::vector<std::pair<std::string, int>> predicted;  // id, class
  for (int i = 0; i < 120; ++i) {
    const GrayImage img = make_stroke_image(i % 17);
    std::string body = "{\"pixels\":[";
    for (size_t k = 0; k < img.pixels.size(); ++k) {
      body += (k ? "," : "") + std::to_string(img.pixels[k]);
    }
    body += "]}";
    const std::string id = "mon-" + std::to_string(i);
    auto r = client.post("/predict", body, "application/json", {{"X-Request-Id", id}});
    REQUIRE(r);
    REQUIRE_MESSAGE(r->status == 200, r->body);
    const auto j = nlohmann::json::parse(r->body);
    predicted.emplace_back(id, j.at("predictions").at(0).at("class").get<int>());
  }
  for (int i = 0; i < 20; ++i) {
    const auto& [id, cls] = predicted[static_cast<size_t>(i)];
    const int label = i % 4 == 0 ? (cls + 1) % 10 : cls;  // a quarter wrong
    auto r = client.post("/v2/models/digits/feedback",
                         "{\"request_id\":\"" + id + "\",\"label\":" + std::to_string(label) + "}",
                         "application/json");
    REQUIRE(r);
    CHECK_MESSAGE(r->status == 200, r->body);
  }
  REQUIRE(client.get("/no-such-path"));

  const int prom_port = free_port();
  {
    // deploy/prometheus/prometheus.yml with this serve as its target, a 1 s scrape and rule
    // interval, and the rules file by absolute path.
    std::ifstream in(source / "deploy/prometheus/prometheus.yml");
    std::stringstream ss;
    ss << in.rdbuf();
    std::string config = ss.str();
    auto replace = [&](const std::string& from, const std::string& to) {
      const size_t at = config.find(from);
      REQUIRE_MESSAGE(at != std::string::npos, "prometheus.yml has no " << from);
      config.replace(at, from.size(), to);
    };
    replace("targets: [\"127.0.0.1:8080\"]",
            "targets: [\"127.0.0.1:" + std::to_string(serve.port) + "\"]");
    replace("scrape_interval: 15s", "scrape_interval: 1s");
    replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    replace("- alerts.yml", "- " + (source / "deploy/prometheus/alerts.yml").string());
    std::ofstream out(dir / "prometheus.yml");
    out << config;
  }
  ChildProcess prom;
  REQUIRE(prom.start(prometheus,
             {"--config.file=" + (dir / "prometheus.yml").string(),
              "--storage.tsdb.path=" + (dir / "tsdb").string(),
              "--web.listen-address=127.0.0.1:" + std::to_string(prom_port),
              "--log.level=warn"},
             dir / "prometheus.log"));

  HttpClient api("127.0.0.1", prom_port, 5s);
  auto query = [&](const std::string& expr) -> nlohmann::json {
    auto r = api.get("/api/v1/query?query=" + url_encode(expr));
    if (!r || r->status != 200) return nlohmann::json();
    return nlohmann::json::parse(r->body, nullptr, false);
  };
  auto has_data = [&](const std::string& expr) {
    const nlohmann::json j = query(expr);
    return j.is_object() && j.value("status", "") == "success" &&
           !j["data"]["result"].empty();
  };

  // Bounded: the whole wait is well under the test's 120 s ctest timeout.
  const auto deadline = std::chrono::steady_clock::now() + (kSanitized ? 80s : 45s);
  // Three scrapes at least (rate() needs two samples), and the feedback counted.
  while (std::chrono::steady_clock::now() < deadline &&
         !has_data("count_over_time(up{job=\"simdnn-serve\"}[1m]) >= 3")) {
    std::this_thread::sleep_for(250ms);
  }
  std::vector<std::string> all;
  for (const auto* list : {&signals, &panels}) {
    for (const std::string& expr : *list) {
      if (!has_repository && expr.find("model_load_failures_total") != std::string::npos) {
        MESSAGE("not checked (this serve has no model repository): " << expr);
        continue;
      }
      all.push_back(expr);
    }
  }
  std::set<std::string> missing(all.begin(), all.end());
  while (!missing.empty() && std::chrono::steady_clock::now() < deadline) {
    for (auto it = missing.begin(); it != missing.end();) {
      it = has_data(*it) ? missing.erase(it) : std::next(it);
    }
    if (!missing.empty()) std::this_thread::sleep_for(500ms);
  }
  INFO("targets: " << [&] {
    auto t = api.get("/api/v1/targets");
    return t ? t->body : std::string("(no answer)");
  }());
  for (const std::string& expr : missing) {
    CAPTURE(read_text(dir / "prometheus.log"));
    FAIL_CHECK("no data for: " << expr);
  }
  CHECK(query("up{job=\"simdnn-serve\"}")["data"]["result"][0]["value"][1] == "1");

  // Every rule of alerts.yml is loaded and evaluates without error.
  auto rules = api.get("/api/v1/rules");
  REQUIRE(rules);
  const auto rj = nlohmann::json::parse(rules->body);
  size_t checked = 0;
  for (const auto& group : rj["data"]["groups"]) {
    for (const auto& rule : group["rules"]) {
      CHECK_MESSAGE(rule.value("health", "") != "err", rule.dump());
      ++checked;
    }
  }
  CHECK(checked == signals.size());
  // The live accuracy the service exports is what the feedback said: 15 of 20 right.
  const auto acc = query("model_live_accuracy{model=\"digits\",version=\"1\"}");
  REQUIRE(!acc["data"]["result"].empty());
  CHECK(std::stod(acc["data"]["result"][0]["value"][1].get<std::string>()) ==
        doctest::Approx(0.75));
}

}  // namespace test_monitoring
}  // namespace simdnn::test
