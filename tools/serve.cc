// tools/serve: an HTTP prediction service for a trained model. The service itself is
// simdnn::serving::PredictionServer (serving/); this is its command line.
//
//   serve (--model model.safetensors | --model-repository DIR [--version-policy NAME=latest:2]
//          [--canary NAME:VERSION:PERCENT]) [--poll-seconds 5] [--host 127.0.0.1] [--port 8080]
//         [--threads 0 (= cores)] [--tls-cert cert.pem --tls-key key.pem] [limits: see --help]
//
// Endpoints (formats in docs/serving.md): POST /predict (JSON pixels or an image body), the
// Open Inference Protocol under /v2 (with Triton's repository API), GET /metrics (Prometheus
// text), GET /healthz, GET /readyz.
// Signals: SIGTERM or SIGINT drain (stop accepting, /readyz 503, idle connections closed,
// in-flight requests finish, anything left is cut after --drain-seconds, or at once on a second
// SIGTERM/SIGINT) and exit 0. SIGHUP reloads the models now (new versions are validated beside
// the live ones, then swapped). Other signals: the default action.
// Exit codes (tools/exit_codes.h): 0 clean shutdown; 1 bad flags; 2 a model file whose contents
// cannot be used (no model loads); 4 a model file or repository that cannot be read, an address
// that cannot be bound, an unusable --store file.
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <exception>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "simdnn/serving/serve_config.h"
#include "simdnn/serving/server.h"
#include "simdnn/threading.h"
#include "exit_codes.h"
#include "tool_version.h"

namespace {

// Waits for SIGTERM/SIGINT/SIGHUP (blocked in every thread, so only sigtimedwait sees them) and
// acts from this ordinary thread: PredictionServer::stop() is not async-signal-safe.
class SignalWatcher {
 public:
  explicit SignalWatcher(simdnn::serving::PredictionServer& server)
      : thread_([this, &server] { watch(server); }) {}
  ~SignalWatcher() {
    done_ = true;
    thread_.join();
  }

 private:
  void watch(simdnn::serving::PredictionServer& server) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    const timespec poll{0, 100 * 1000 * 1000};
    bool stopping = false;
    while (!done_) {
      const int sig = sigtimedwait(&set, nullptr, &poll);
      if (sig == SIGHUP) {
        // The repository's poller does the work: this thread keeps watching.
        server.models().request_reload();
      } else if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
        std::fprintf(stderr, "serve: %s, draining (at most %d s; send it again to cut)\n",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT", server.options().drain_seconds);
        server.stop();
        stopping = true;
      } else if (sig == SIGTERM || sig == SIGINT) {
        // A second one: the operator does not want to wait for the drain (as nginx's
        // fast shutdown, or a second Ctrl-C).
        std::fprintf(stderr, "serve: second %s, closing every connection now\n",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
        server.stop(std::chrono::milliseconds(0));
      }
    }
  }

  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  // Before any thread exists, so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App app{"Serves a simdnn model over HTTP: POST /predict, GET /metrics, /healthz, /readyz"};
  simdnn::serving::ServeOptions options;
  std::string model_path;
  std::string auth_token_file;
  app.set_version_flag("--version", [] { return simdnn::tools::version_text("serve"); },
                       "Print the version, the commit and the SIMD target, then exit");
  simdnn::serving::RepositoryOptions models;
  std::vector<std::string> policies;
  std::string canary;
  auto* model_opt = app.add_option("--model", model_path,
                                   "Model file (safetensors, from tools/train), served as a "
                                   "one-model repository; reloaded when it changes");
  auto* repo_opt = app.add_option("--model-repository", models.repository,
                                  "Directory of models: DIR/<name>/<version>/model.safetensors "
                                  "(versions: positive integers)")
                       ->check(CLI::ExistingDirectory);
  model_opt->excludes(repo_opt);
  app.add_option("--version-policy", policies,
                 "NAME=latest:N, NAME=specific:V[,V...] or NAME=all: the live versions of a "
                 "model (default latest:1); repeatable");
  app.add_option("--canary", canary,
                 "NAME:VERSION:PERCENT: that share of NAME's unpinned requests goes to VERSION "
                 "(by a hash of the request id)");
  app.add_option("--poll-seconds", models.poll_seconds,
                 "Seconds between checks of the model files for changes (0: only on SIGHUP or "
                 "the load endpoint)")
      ->capture_default_str()
      ->check(CLI::Range(0, 86400));
  app.add_option("--host", options.host, "Address to listen on")->capture_default_str();
  app.add_option("--port", options.port, "TCP port (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--threads", options.threads,
                 "Event-loop threads, which also run inference inline (0: one per core); "
                 "connections do not need threads")
      ->capture_default_str()
      ->check(CLI::Range(0, 1024));
  app.add_option("--max-body-bytes", options.max_body_bytes,
                 "Largest request body, chunked or not; bigger ones get 413")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-batch", options.max_batch,
                 "Most instances in one request; more get 413")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--max-image-pixels", options.max_image_pixels,
                 "Largest image (width*height, from its header) accepted as a body")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-inflight-body-bytes", options.max_inflight_body_bytes,
                 "Request-body bytes received at once over all connections (a chunked body "
                 "counts --max-body-bytes); a body beyond it gets 503")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--max-image-aspect", options.max_image_aspect,
                 "Largest ratio of a decoded image's longer side to its shorter one; more get 400")
      ->capture_default_str()
      ->check(CLI::Range(1.0, 1e6));
  app.add_option("--max-concurrent-decodes", options.max_concurrent_decodes,
                 "Image decodes at once (each holds up to --max-image-pixels bytes); more get "
                 "503. 0: one per thread")
      ->capture_default_str();
  app.add_option("--top-k", options.default_top_k,
                 "Classes in each prediction's top_k list (a request's ?top_k= overrides)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--max-connections", options.max_connections,
                 "Open connections; beyond it a new one is accepted and closed at once")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--max-header-bytes", options.max_header_bytes,
                 "Largest request line + header; bigger gets 431")
      ->capture_default_str()
      ->check(CLI::Range(size_t{256}, size_t{1} << 20));
  app.add_option("--max-header-fields", options.max_header_fields,
                 "Most header fields in a request; more get 431")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{10000}));
  app.add_option("--header-timeout", options.header_timeout_seconds,
                 "Seconds from a request's first byte to the end of its header (slow clients "
                 "are disconnected)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--body-timeout", options.body_timeout_seconds,
                 "Seconds to receive a request's body once its header is in (also the write "
                 "deadline for a reply)")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--keep-alive-timeout", options.keep_alive_timeout_seconds,
                 "Seconds an idle keep-alive connection stays open")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  app.add_option("--drain-seconds", options.drain_seconds,
                 "On SIGTERM/SIGINT: how long in-flight requests get before every connection "
                 "is cut")
      ->capture_default_str()
      ->check(CLI::Range(0, 3600));
  app.add_flag("--reuse-port", options.reuse_port,
               "SO_REUSEPORT: let the next version bind the same port while this one drains "
               "(blue/green); without it a port in use is an error");
  app.add_option("--tls-cert", options.tls_cert, "TLS certificate chain (PEM); needs --tls-key")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", options.tls_key, "TLS private key (PEM); needs --tls-cert")
      ->check(CLI::ExistingFile);
  app.add_option("--model-name", options.model_name,
                 "Open Inference Protocol model name (default: the model file's stem)");
  app.add_option("--auth-token-file", auth_token_file,
                 "File holding a bearer token that requests must present")
      ->check(CLI::ExistingFile);
  app.add_flag("--auth-inference", options.auth_inference,
               "Require the token on inference endpoints too (needs --auth-token-file)");
  app.add_option("--access-log", options.access_log,
                 "JSON-lines access log: '-' for stdout, or a file (appended)");
  app.add_option("--log-sample", options.log_sample, "Fraction of requests logged, 0..1")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app.add_option("--store", options.store,
                 "Record every prediction (and its feedback) in this SQLite file; enables "
                 "POST /v2/models/{name}/feedback");
  app.add_flag("--store-inputs", options.store_inputs,
               "Also store each input's pixels (off by default: inputs may be private)");
  app.add_option("--store-max-age-hours", options.store_max_age_hours,
                 "Delete stored predictions older than this (0: keep)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--store-max-rows", options.store_max_rows,
                 "Keep at most this many stored predictions, the newest (0: no limit)")
      ->capture_default_str();
  app.add_option("--store-queue", options.store_queue,
                 "Predictions waiting for the store's writer; beyond, they are dropped and "
                 "counted (prediction_store_dropped_total)")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 24));
  app.add_option("--accuracy-window", options.accuracy_window,
                 "model_live_accuracy: over each version's last N feedbacks")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  app.add_option("--drift-window", options.drift_window,
                 "model_*_drift_psi: over each version's last N predictions")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{1} << 20));
  try {
    app.parse(argc, argv);
    if (options.tls_cert.empty() != options.tls_key.empty()) {
      throw CLI::ValidationError("--tls-cert and --tls-key go together");
    }
    if (options.store_inputs && options.store.empty()) {
      throw CLI::ValidationError("--store-inputs needs --store FILE");
    }
    if (model_path.empty() == models.repository.empty()) {
      throw CLI::ValidationError("give --model FILE or --model-repository DIR");
    }
    try {
      for (const std::string& p : policies) {
        const size_t eq = p.find('=');
        if (eq == std::string::npos || eq == 0) {
          throw std::invalid_argument("--version-policy \"" + p + "\": expected NAME=POLICY");
        }
        models.policies[p.substr(0, eq)] =
            simdnn::serving::parse_version_policy(std::string_view(p).substr(eq + 1));
      }
      if (!canary.empty()) models.canary = simdnn::serving::parse_canary(canary);
    } catch (const std::invalid_argument& e) {
      throw CLI::ValidationError(e.what());
    }
  } catch (const CLI::ParseError& e) {
    return simdnn::tools::exit_code_for_parse(app, e);  // CLI11's own codes (105, 109) are not ours
  }

  return simdnn::tools::run_tool("serve", [&] {
    simdnn::enable_flush_to_zero();
    if (!model_path.empty()) {
      if (options.model_name.empty()) {
        options.model_name = simdnn::serving::default_model_name(model_path);
      }
      models.model_file = model_path;
      models.model_file_name = options.model_name;
    }
    if (!auth_token_file.empty()) {
      options.auth_token = simdnn::serving::read_auth_token_file(auth_token_file);
    }
    const std::string source = model_path.empty() ? "repository " + models.repository.string()
                                                  : "model " + model_path;
    simdnn::serving::PredictionServer server(std::move(models), options);
    std::string live;
    for (const auto& [name, entry] : server.models().live()->models()) {
      live += (live.empty() ? "" : ", ") + name + " version \"" + entry.primary->version + "\"";
    }
    const int port = server.bind();
    // Scripts wait for this line (and for /readyz) before sending requests.
    std::printf("serve: listening on %s://%s:%d (%s: %s; %d threads)\n",
                options.tls_cert.empty() ? "http" : "https", options.host.c_str(), port,
                source.c_str(), live.c_str(), server.options().threads);
    std::fflush(stdout);
    {
      SignalWatcher watcher(server);
      server.run();
    }
    std::fprintf(stderr, "serve: stopped\n");
    return 0;
  });
}
