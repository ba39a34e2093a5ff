#include "tools/file_hash.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "simdnn/io_error.h"

namespace simdnn::tools {
namespace {

struct DigestContext {
  DigestContext() : ctx(EVP_MD_CTX_new()) {
    if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
      throw std::runtime_error("sha256: OpenSSL could not start a digest");
    }
  }
  ~DigestContext() { EVP_MD_CTX_free(ctx); }
  DigestContext(const DigestContext&) = delete;
  DigestContext& operator=(const DigestContext&) = delete;

  void update(const void* data, size_t n) { EVP_DigestUpdate(ctx, data, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    static const char* kDigits = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
      out += kDigits[md[i] >> 4];
      out += kDigits[md[i] & 15];
    }
    return out;
  }
  EVP_MD_CTX* ctx;
};

}  // namespace

std::string sha256_file(const std::filesystem::path& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) throw IoError(path.string() + ": cannot open for hashing: " + std::strerror(errno));
  DigestContext digest;
  std::vector<char> buffer(1 << 16);
  size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), f.get())) > 0) digest.update(buffer.data(), n);
  if (std::ferror(f.get())) throw IoError(path.string() + ": read error while hashing");
  return digest.hex();
}

std::string sha256_text(const std::string& text) {
  DigestContext digest;
  digest.update(text.data(), text.size());
  return digest.hex();
}

nlohmann::json hash_data_path(const std::filesystem::path& path, size_t max_listed) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    return {{"path", path.string()},
            {"sha256", sha256_file(path)},
            {"bytes", static_cast<uint64_t>(fs::file_size(path, ec))}};
  }
  std::vector<fs::path> files;
  for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) files.push_back(it->path());
  }
  if (ec) throw IoError(path.string() + ": cannot list for hashing: " + ec.message());
  std::sort(files.begin(), files.end());
  nlohmann::json listed = nlohmann::json::object();
  std::string lines;
  for (const fs::path& f : files) {
    const std::string rel = fs::relative(f, path).generic_string();
    const std::string sha = sha256_file(f);
    lines += rel + " " + sha + "\n";
    if (files.size() <= max_listed) listed[rel] = sha;
  }
  if (files.size() <= max_listed) return {{"path", path.string()}, {"files", listed}};
  return {{"path", path.string()},
          {"file_count", files.size()},
          {"tree_sha256", sha256_text(lines)}};
}

}  // namespace simdnn::tools
