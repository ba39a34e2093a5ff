// Helpers for the predict/serve tests: a small deterministic model, MNIST-like test images,
// and running a tool binary with its stdout, stderr and exit code captured.
#pragma once

#include <doctest/doctest.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <thread>

#include <cctype>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "simdnn/image.h"
#include "simdnn/image_ops.h"
#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/random.h"
#include "tests/io_test_support.h"
#include "tests/support/image_encode.h"

namespace simdnn::test {

// 28x28 -> 32 ReLU -> 10 softmax with digit class names; the same seed gives the same weights,
// so a test can build the server's model and its own reference copy independently.
inline Model make_test_model(uint64_t seed = 7, const std::string& version = "test-v1") {
  ModelInfo info;
  info.class_names = digit_class_names();
  info.version = version;
  Rng rng(seed);
  return Model::mlp(info, {32}, Activation::kRelu, 10, rng);
}

// A light-on-dark 28x28 "stroke" image whose shape depends on `variant`, so that different
// variants get different predictions.
inline GrayImage make_stroke_image(int variant, int size = 28) {
  GrayImage img{size, size, std::vector<uint8_t>(static_cast<size_t>(size) * size, 0)};
  const int scale = size / 28;
  for (int y = 4 * scale; y < 24 * scale; ++y) {
    for (int x = 0; x < size; ++x) {
      const int center = (8 + (variant * 5) % 12 + (y / scale) * (variant % 3) / 4) * scale;
      const int d = x - center;
      if (d >= -2 * scale && d <= 2 * scale) {
        img.pixels[static_cast<size_t>(y) * size + x] = static_cast<uint8_t>(255 - 20 * std::abs(d / scale));
      }
    }
  }
  return img;
}

inline GrayImage inverted(const GrayImage& img) {
  GrayImage out = img;
  for (uint8_t& v : out.pixels) v = static_cast<uint8_t>(255 - v);
  return out;
}

inline std::vector<uint8_t> encode_gray(const GrayImage& img, ImageFormat format) {
  return encode_image(img.pixels, img.width, img.height, 1, format, 95);
}

// Noise (incompressible), for truncation tests: half a PNG of it is missing most pixel data.
inline GrayImage make_noise_image(int size, uint32_t seed = 12345) {
  GrayImage img{size, size, std::vector<uint8_t>(static_cast<size_t>(size) * size)};
  for (uint8_t& v : img.pixels) v = static_cast<uint8_t>((seed = seed * 1664525 + 1013904223) >> 24);
  return img;
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Every parameter's floats of a model file, in order: two files that differ only in their
// metadata (provenance names the command line) compare equal by these.
inline std::vector<float> model_weights(const std::filesystem::path& model_path) {
  Model model = load_model(model_path);
  std::vector<float> out;
  for (const Parameter* p : model.parameters()) {
    out.insert(out.end(), p->value.data(), p->value.data() + p->value.size());
  }
  return out;
}

inline bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every file under `root` (relative path -> contents), and every directory (-> "<dir>"): compare
// two snapshots to show that a refused operation changed nothing.
inline std::map<std::string, std::string> directory_snapshot(const std::filesystem::path& root) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    const std::string rel = std::filesystem::relative(e.path(), root).string();
    out[rel] = e.is_directory() ? "<dir>" : read_text(e.path());
  }
  return out;
}

// Runs `program args...` (no shell), stdout and stderr captured through files in `scratch`.
inline CommandResult run_tool(const std::string& program, const std::vector<std::string>& args,
                              const std::filesystem::path& scratch) {
  const auto out_path = scratch / "stdout.txt";
  const auto err_path = scratch / "stderr.txt";
  std::vector<std::string> argv_storage = {program};
  argv_storage.insert(argv_storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_storage) argv.push_back(a.data());
  argv.push_back(nullptr);

  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0 || err < 0) ::_exit(126);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = read_text(out_path);
  r.err = read_text(err_path);
  return r;
}

inline std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

// A running serve binary (SIMDNN_SERVE_BIN or any path): stdout on a pipe, drained by a thread
// so that a chatty server (an access log) never blocks on it; stderr to a file when given.
// Killed (SIGKILL) and reaped on destruction if still running.
struct ServeProcess {
  pid_t pid = -1;
  int port = 0;

  ServeProcess() = default;
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;
  ~ServeProcess() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (drain_.joinable()) drain_.join();  // EOF once the process is gone
    if (stdout_fd_ >= 0) ::close(stdout_fd_);
  }

  // Starts `program args...` and waits (up to 10 s) for "serve: listening on http://HOST:PORT";
  // REQUIREs that line.
  void start(const std::string& program, const std::vector<std::string>& args,
             const std::filesystem::path& stderr_file = {}) {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    std::vector<std::string> storage = {program};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::dup2(fds[1], 1);
      if (!stderr_file.empty()) {
        const int err = ::open(stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (err >= 0) ::dup2(err, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    stdout_fd_ = fds[0];
    std::string text;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (text.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{stdout_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[512];
      const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
    }
    {
      std::lock_guard lock(mutex_);
      stdout_ = text;
    }
    drain_ = std::thread([this] {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(stdout_fd_, buf, sizeof buf);
        if (n <= 0) break;
        std::lock_guard lock(mutex_);
        if (stdout_.size() < (1u << 20)) stdout_.append(buf, static_cast<size_t>(n));
      }
    });
    CAPTURE(text);
    const size_t at = text.find("listening on http://");
    REQUIRE(at != std::string::npos);
    const size_t line_end = text.find_first_of(" \n", at + 20);
    const std::string authority = text.substr(at + 20, line_end - (at + 20));
    const size_t colon = authority.rfind(':');
    REQUIRE(colon != std::string::npos);
    port = std::stoi(authority.substr(colon + 1));
    REQUIRE(port > 0);
  }

  bool running() {
    if (pid <= 0) return false;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      return false;
    }
    return true;
  }

  // Exit code (128 + signal when killed) after waiting up to `seconds`, or -1 if it is still
  // running.
  int wait_exit(double seconds) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    do {
      if (!running()) return exit_code_;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    } while (std::chrono::steady_clock::now() < deadline);
    return running() ? -1 : exit_code_;
  }

  std::string stdout_text() {
    std::lock_guard lock(mutex_);
    return stdout_;
  }

 private:
  int stdout_fd_ = -1;
  int exit_code_ = -1;
  std::thread drain_;
  std::mutex mutex_;
  std::string stdout_;
};

// The full path of an installed program (prometheus, haproxy, ...), or "" when absent.
inline std::string find_program(const std::string& name) {
  for (const char* dir : {"/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"}) {
    const std::filesystem::path p = std::filesystem::path(dir) / name;
    if (::access(p.c_str(), X_OK) == 0) return p.string();
  }
  return {};
}

// Percent-encodes everything but RFC 3986's unreserved characters (a query parameter's value).
inline std::string url_encode(const std::string& s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

// A loopback port that was free a moment ago (bind to 0, read it, close). For programs that
// cannot be told to pick their own port and report it.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A program other than serve (prometheus, haproxy, ...) running in the background, stdout and
// stderr to `log`. Killed (SIGKILL) and reaped on destruction if still running. start() and
// exited() do not use doctest assertions, so a supervising thread may call them.
struct ChildProcess {
  pid_t pid = -1;

  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() { kill_and_reap(); }

  // false when fork fails (an exec failure shows as exit code 127).
  bool start(const std::string& program, const std::vector<std::string>& args,
             const std::filesystem::path& log) {
    std::vector<std::string> storage = {program};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return true;
  }

  // Reaps the process if it has ended (without waiting); true once it has.
  bool exited() {
    if (pid <= 0) return true;
    int status = 0;
    if (::waitpid(pid, &status, WNOHANG) != pid) return false;
    exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid = -1;
    return true;
  }

  void kill_and_reap() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
      pid = -1;
    }
  }

  int exit_code = -1;  // once exited()
};

}  // namespace simdnn::test
