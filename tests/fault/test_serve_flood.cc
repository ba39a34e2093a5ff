// tools/serve under a bounded flood of malformed requests and oversized bodies: between them,
// valid requests keep getting the right prediction, the server never dies, and its resident
// memory stays bounded. Talks raw HTTP over sockets, so that it can send what no client
// library would (garbage, lying Content-Length, huge headers, half-sent bodies).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <doctest/doctest.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "simdnn/model_file.h"
#include "simdnn/model.h"
#include "simdnn/random.h"
#include "tests/fault/fault_util.h"
#include "tests/io_test_support.h"

#ifdef SIMDNN_SERVE_EXE

namespace {

using namespace simdnn::fault;
using json = nlohmann::json;

// True once `response` holds the headers and Content-Length bytes of body.
bool response_complete(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string headers = response.substr(0, end);
  for (char& c : headers) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t at = headers.find("\r\ncontent-length:");
  if (at == std::string::npos) return false;
  const size_t length = std::strtoul(headers.c_str() + at + 17, nullptr, 10);
  return response.size() >= end + 4 + length;
}

// Sends `request` on a new connection (ignoring a reset: the server may answer and close
// before reading everything) and returns whatever comes back until EOF or `timeout_ms`; then
// closes the connection (no half-close before: cpp-httplib does not answer a client that has
// shut down its sending side).
std::string exchange(int port, const std::string& request, int timeout_ms = 5000) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[4096];
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    response.append(buf, static_cast<size_t>(n));
    if (response_complete(response)) break;  // the server may keep the connection open
  }
  ::close(fd);
  return response;
}

int status_of(const std::string& response) {
  // "HTTP/1.1 200 OK"
  if (response.rfind("HTTP/1.", 0) != 0 || response.size() < 12) return 0;
  return std::atoi(response.c_str() + 9);
}

std::string body_of(const std::string& response) {
  const size_t at = response.find("\r\n\r\n");
  return at == std::string::npos ? "" : response.substr(at + 4);
}

std::string post(const std::string& content_type, const std::string& body) {
  return "POST /predict HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: " +
         content_type + "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

using simdnn::test::kSanitized;
using simdnn::test::rss_kb;


}  // namespace

TEST_CASE("serve keeps answering correctly with bounded memory under a flood of bad requests") {
  ScratchDir dir("serve-flood");
  simdnn::Rng rng(17);
  simdnn::ModelInfo info;
  info.class_names = simdnn::digit_class_names();
  info.version = "flood";
  simdnn::Model model = simdnn::Model::mlp(info, {32}, simdnn::Activation::kRelu, 10, rng);
  const fs::path model_path = dir / "model.safetensors";
  simdnn::save_model(model_path, model);

  // One valid request and its expected probabilities, computed in-process.
  std::vector<float> pixels(784);
  for (size_t i = 0; i < 784; ++i) pixels[i] = static_cast<float>((i * 37) % 256);
  simdnn::Tensor x({1, 784});
  for (size_t i = 0; i < 784; ++i) x[i] = pixels[i] * info.pixel_scale;
  const simdnn::Tensor& expected = model.predict(x, 1);
  const std::string valid = post("application/json", json{{"pixels", pixels}}.dump());

  const fs::path log = dir / "serve.log";
  const pid_t pid = spawn({SIMDNN_SERVE_EXE, "--model", model_path.string(), "--port", "0",
                           "--threads", "4", "--max-body-bytes", "65536", "--max-batch", "8"},
                          log);
  REQUIRE(pid > 0);
  int port = 0;
  for (int i = 0; i < 600 && port == 0; ++i) {
    std::ifstream in(log);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    const size_t at = text.find("listening on http://");
    if (at != std::string::npos) {
      const size_t colon = text.find(':', at + 20);
      port = std::atoi(text.c_str() + colon + 1);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  REQUIRE_MESSAGE(port > 0, "serve did not start; see " << log.string());

  size_t valid_ok = 0;
  const auto check_valid = [&] {
    const std::string r = exchange(port, valid);
    REQUIRE_MESSAGE(status_of(r) == 200, "valid request got: " << r.substr(0, 300));
    const json j = json::parse(body_of(r));
    const auto& probs = j.at("predictions").at(0).at("probabilities");
    REQUIRE(probs.size() == 10);
    for (size_t c = 0; c < 10; ++c) {
      REQUIRE(std::fabs(probs[c].get<double>() - expected[c]) < 1e-6);
    }
    ++valid_ok;
  };

  std::string nested(100000, '[');
  std::string big_header = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(200000, 'a') +
                           "\r\nConnection: close\r\n\r\n";
  std::string garbage(4096, '\0');
  std::vector<std::string> bad = {
      garbage,
      "GET\r\n\r\n",
      "POST /predict HTTP/1.1\r\nContent-Length: -5\r\nConnection: close\r\n\r\n",
      post("application/json", R"({"pixels": [1, 2, )"),
      post("application/json", R"({"pixels": [1e999]})"),
      post("application/json", R"({"instances": [[1], [2], [3], [4], [5], [6], [7], [8], [9]]})"),
      post("application/json", "{\"pixels\": " + nested),
      post("application/json", std::string(60000, ' ') + "{"),
      post("image/png", std::string("\x89PNG\r\n\x1a\n garbage", 17)),
      post("image/x-portable-graymap", "P5\n100000 100000\n255\n"),
      post("text/plain", "hello"),
      // Oversized: declared and actually sent.
      "POST /predict HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n"
      "Connection: close\r\n\r\n{\"pixels\": [",
      post("application/json", "{\"pixels\": [" + std::string(300000, '1') + "]}"),
      // Lying Content-Length: promises more than it sends, then closes.
      "POST /predict HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n"
      "Connection: close\r\n\r\n{\"pixels\": [1, 2",
      "POST /predict HTTP/1.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
      "Connection: close\r\n\r\nFFFFFFFFFFFF\r\nabc\r\n",
      big_header,
  };
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>(rng.below(256));
  bad[0] = garbage;

  check_valid();
  const int rounds = 8;
  size_t baseline_kb = 0;
  std::vector<size_t> rss_samples;
  int answered_4xx = 0, bad_sent = 0;
  for (int round = 0; round < rounds; ++round) {
    for (const std::string& request : bad) {
      // A request that promises more body than it sends (or declares an oversized or negative
      // Content-Length, or a huge chunk) is only answered when cpp-httplib's 5 s read timeout
      // expires: wait briefly, then close, which frees the worker at once.
      const std::string r = exchange(port, request, 300);
      ++bad_sent;
      const int status = status_of(r);
      // Either a 4xx answer or a closed connection; never a 2xx/5xx for these.
      INFO("request " << request.substr(0, 80) << " -> " << r.substr(0, 200));
      CHECK((status == 0 || (status >= 400 && status < 500)));
      answered_4xx += status >= 400 && status < 500;
      check_valid();
    }
    REQUIRE(::waitpid(pid, nullptr, WNOHANG) == 0);  // still running
    rss_samples.push_back(rss_kb(pid));
    if (round == 1) baseline_kb = rss_samples.back();  // after the first full round: warmed up
  }
  const size_t final_kb = rss_samples.back();
  std::string samples;
  for (size_t s : rss_samples) samples += std::to_string(s / 1024) + " ";
  MESSAGE(bad_sent << " malformed requests (" << answered_4xx << " answered 4xx, the rest closed), "
                   << valid_ok << " valid requests answered correctly; RSS MB per round: "
                   << samples);
  if (!kSanitized) {
    // Bounded: no growth beyond noise once warmed up (each round sends ~1 MB of bodies).
    CHECK(final_kb < baseline_kb + 16 * 1024);
    CHECK(final_kb < 256 * 1024);
  }

  ::kill(pid, SIGTERM);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK_MESSAGE((WIFEXITED(status) && WEXITSTATUS(status) == 0),
                "serve ended with " << describe_status(status) << "; log " << log.string());
}

#endif  // SIMDNN_SERVE_EXE
