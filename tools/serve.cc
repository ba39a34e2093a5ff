// tools/serve: an HTTP prediction service for a trained model. The service itself is
// simdnn::serving::PredictionServer (serving/); this is its command line.
//
//   serve --model model.safetensors [--host 127.0.0.1] [--port 8080] [--threads 16]
//
// Endpoints (formats in docs/serving.md): POST /predict (JSON pixels or an image body),
// GET /metrics (Prometheus text), GET /healthz, GET /readyz.
// SIGTERM or SIGINT: stop accepting, finish in-flight requests, exit 0.
// Exit codes: 0 clean shutdown, 1 bad flags, unloadable model or unusable address.
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

#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/serving/server.h"
#include "simdnn/threading.h"

namespace {

// Waits for SIGTERM/SIGINT (blocked in every thread, so only sigtimedwait sees them) and stops
// the server from this ordinary thread: httplib's stop() is not async-signal-safe.
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
    const timespec poll{0, 100 * 1000 * 1000};
    while (!done_) {
      const int sig = sigtimedwait(&set, nullptr, &poll);
      if (sig == SIGTERM || sig == SIGINT) {
        std::fprintf(stderr, "serve: %s, draining in-flight requests\n",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT");
        server.stop();
        return;
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
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  CLI::App app{"Serves a simdnn model over HTTP: POST /predict, GET /metrics, /healthz, /readyz"};
  simdnn::serving::ServeOptions options;
  std::string model_path;
  app.add_option("--model", model_path, "Model file (safetensors, from tools/train)")
      ->required();
  app.add_option("--host", options.host, "Address to listen on")->capture_default_str();
  app.add_option("--port", options.port, "TCP port (0: any free port, printed at start)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app.add_option("--threads", options.threads,
                 "HTTP worker threads, each with its own inference buffers; a keep-alive "
                 "connection holds a worker while open, so this bounds concurrent connections")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  app.add_option("--max-body-bytes", options.max_body_bytes,
                 "Largest request body; bigger ones get 413")
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
  app.add_option("--top-k", options.default_top_k,
                 "Classes in each prediction's top_k list (a request's ?top_k= overrides)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--read-timeout", options.read_timeout_seconds,
                 "Seconds a worker waits for the rest of a slow request before dropping it")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }

  try {
    simdnn::enable_flush_to_zero();
    simdnn::Model model = simdnn::load_model(model_path);
    const std::string version = model.info().version;
    simdnn::serving::PredictionServer server(std::move(model), options);
    const int port = server.bind();
    // Scripts wait for this line (and for /readyz) before sending requests.
    std::printf("serve: listening on http://%s:%d (model %s, version \"%s\", %d threads)\n",
                options.host.c_str(), port, model_path.c_str(), version.c_str(),
                options.threads);
    std::fflush(stdout);
    {
      SignalWatcher watcher(server);
      server.run();
    }
    std::fprintf(stderr, "serve: stopped\n");
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "serve: %s\n", e.what());
    return 1;
  }
}
