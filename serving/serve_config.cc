#include "simdnn/serving/serve_config.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace simdnn::serving {

std::string default_model_name(const std::string& model_path) {
  std::string stem = std::filesystem::path(model_path).stem().string();
  return stem.empty() ? "model" : stem;
}

std::string read_auth_token_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read auth token file " + path);
  std::string token((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!token.empty() && space(token.back())) token.pop_back();
  size_t start = 0;
  while (start < token.size() && space(token[start])) ++start;
  token.erase(0, start);
  if (token.empty()) throw std::runtime_error("auth token file " + path + " holds no token");
  return token;
}

}  // namespace simdnn::serving
