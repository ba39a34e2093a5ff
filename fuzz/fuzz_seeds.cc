// Writes the seed corpora of the fuzz targets, generated with simdnn's own writers (and
// libjpeg-turbo's compressor) so that no binary blobs live in the repository:
// fuzz_seeds <dir>  ->  <dir>/{idx,csv,safetensors,image,request,http}/<name>. Each corpus has valid
// inputs and edge cases around them.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "simdnn/gzip.h"
#include "simdnn/idx.h"
#include "simdnn/image.h"
#include "simdnn/model.h"
#include "simdnn/model_file.h"
#include "simdnn/random.h"
#include "simdnn/read_file.h"
#include "simdnn/safetensors.h"
#include "tests/jpeg_writer.h"
#include "tests/support/image_encode.h"

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

fs::path g_root;

void put(const std::string& corpus, const std::string& name, const Bytes& bytes) {
  const fs::path dir = g_root / corpus;
  fs::create_directories(dir);
  std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + (dir / name).string());
}
void put(const std::string& corpus, const std::string& name, const std::string& text) {
  put(corpus, name, Bytes(text.begin(), text.end()));
}
Bytes truncated(const Bytes& b, size_t n) { return Bytes(b.begin(), b.begin() + std::min(n, b.size())); }
Bytes with_byte(Bytes b, size_t at, uint8_t v) {
  if (at < b.size()) b[at] = v;
  return b;
}
Bytes be32(std::initializer_list<uint32_t> words) {
  Bytes out;
  for (uint32_t w : words) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(w >> s));
  }
  return out;
}

// The writers only take paths: write to a scratch file and read it back.
template <typename Write>
Bytes via_file(const std::string& name, Write write) {
  const fs::path path = g_root / (".scratch-" + name);
  write(path);
  Bytes bytes = simdnn::read_file_bytes(path, size_t{1} << 30);
  fs::remove(path);
  return bytes;
}

void idx_seeds() {
  simdnn::ImageSet images{.count = 3, .rows = 2, .cols = 3, .pixels = {}};
  for (size_t i = 0; i < 18; ++i) images.pixels.push_back(static_cast<uint8_t>(i * 14));
  simdnn::LabelSet labels{.labels = {0, 9, 4}};
  const Bytes img = via_file("img.idx", [&](const fs::path& p) { simdnn::write_idx_images(p, images); });
  const Bytes img_gz = via_file("img.idx.gz", [&](const fs::path& p) { simdnn::write_idx_images(p, images); });
  const Bytes lab = via_file("lab.idx", [&](const fs::path& p) { simdnn::write_idx_labels(p, labels); });
  const Bytes lab_gz = via_file("lab.idx.gz", [&](const fs::path& p) { simdnn::write_idx_labels(p, labels); });
  put("idx", "images", img);
  put("idx", "images.gz", img_gz);
  put("idx", "labels", lab);
  put("idx", "labels.gz", lab_gz);
  put("idx", "empty", Bytes{});
  put("idx", "images-header-only", truncated(img, 16));
  put("idx", "images-short-data", truncated(img, img.size() - 1));
  Bytes trailing = img;
  trailing.push_back(0);
  put("idx", "images-trailing-byte", trailing);
  put("idx", "images-zero-count", be32({simdnn::kIdxImagesMagic, 0, 28, 28}));
  put("idx", "images-zero-rows", be32({simdnn::kIdxImagesMagic, 1, 0, 28}));
  put("idx", "images-huge-count", be32({simdnn::kIdxImagesMagic, 0xffffffff, 0xffff, 0xffff}));
  put("idx", "images-bad-magic", with_byte(img, 3, 0x01));
  put("idx", "labels-out-of-range", with_byte(lab, 8, 200));
  put("idx", "images.gz-truncated", truncated(img_gz, img_gz.size() / 2));
  put("idx", "gzip-of-garbage", simdnn::gzip_compress(Bytes{1, 2, 3, 4, 5}));
}

void safetensors_seeds() {
  simdnn::Rng rng(7);
  simdnn::ModelInfo info{.input_height = 2, .input_width = 2, .class_names = {"a", "b", "c"},
                         .version = "seed"};
  simdnn::Model model(info, {{4, simdnn::Activation::kRelu}, {3, simdnn::Activation::kSoftmax}}, rng);
  simdnn::SafetensorsFile file = simdnn::model_to_safetensors(model);
  const Bytes model_bytes = simdnn::serialize_safetensors(file);
  put("safetensors", "model", model_bytes);

  simdnn::SafetensorsFile ckpt = simdnn::model_to_safetensors(model);
  ckpt.tensors.emplace_back("training.dense_0.weight.m", simdnn::Tensor({4, 4}));
  ckpt.metadata["training"] = R"({"epochs_done":1})";
  put("safetensors", "checkpoint", simdnn::serialize_safetensors(ckpt));

  simdnn::SafetensorsFile plain;
  plain.metadata["k"] = "v";
  simdnn::Tensor t({2, 3, 1, 2});
  for (size_t i = 0; i < t.size(); ++i) t[i] = static_cast<float>(i) - 3.5f;
  plain.tensors.emplace_back("t", std::move(t));
  plain.tensors.emplace_back("u", simdnn::Tensor({1}));
  put("safetensors", "two-tensors", simdnn::serialize_safetensors(plain));

  put("safetensors", "empty", Bytes{});
  put("safetensors", "short-length", Bytes{8, 0, 0});
  put("safetensors", "model-truncated", truncated(model_bytes, model_bytes.size() - 4));
  put("safetensors", "model-header-only", truncated(model_bytes, 64));
  const std::string header = R"({"__metadata__":{"format":"simdnn-mlp"}})";
  Bytes only_meta = {static_cast<uint8_t>(header.size()), 0, 0, 0, 0, 0, 0, 0};
  only_meta.insert(only_meta.end(), header.begin(), header.end());
  put("safetensors", "metadata-only", only_meta);
  // Huge header length, and a header that is not JSON.
  put("safetensors", "huge-header-length", Bytes{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f});
  put("safetensors", "not-json", Bytes{4, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a', ':'});
}

// JPEG variants that stb_image_write (encode_image) does not write, from libjpeg-turbo's
// compressor: progressive, arithmetic-coded, restart markers, CMYK/YCCK, optimized Huffman
// tables. libjpeg's default error handler exits, which is fine for a generator.
using JpegSeed = simdnn::test::JpegWriteSpec;

// A width x height file of a fixed pattern at quality 75 (the spec's size and quality are
// overridden).
Bytes libjpeg_compress(int width, int height, JpegSeed seed) {
  seed.width = width;
  seed.height = height;
  seed.quality = 75;
  const size_t stride = static_cast<size_t>(width) * simdnn::test::jpeg_components(seed.input);
  Bytes pixels(stride * static_cast<size_t>(height));
  for (size_t y = 0; y < static_cast<size_t>(height); ++y) {
    for (size_t i = 0; i < stride; ++i) {
      pixels[y * stride + i] = static_cast<uint8_t>(i * 23 + y * 41);
    }
  }
  return simdnn::test::write_jpeg(pixels, seed);
}

void jpeg_seeds() {
  const Bytes progressive = libjpeg_compress(16, 16, {.progressive = true});
  put("image", "jpeg-progressive-gray", progressive);
  put("image", "jpeg-progressive-ycc",
      libjpeg_compress(16, 16, {.input = JCS_RGB, .stored = JCS_YCbCr, .progressive = true}));
  put("image", "jpeg-arithmetic", libjpeg_compress(16, 8, {.arithmetic = true}));
  put("image", "jpeg-arithmetic-progressive",
      libjpeg_compress(16, 16, {.input = JCS_RGB, .stored = JCS_YCbCr, .progressive = true,
                                .arithmetic = true}));
  put("image", "jpeg-restart", libjpeg_compress(24, 16, {.restart_interval = 1}));
  put("image", "jpeg-optimized",
      libjpeg_compress(16, 16, {.input = JCS_RGB, .stored = JCS_YCbCr, .optimize = true}));
  put("image", "jpeg-rgb", libjpeg_compress(8, 8, {.input = JCS_RGB, .stored = JCS_RGB}));
  put("image", "jpeg-cmyk", libjpeg_compress(8, 8, {.input = JCS_CMYK, .stored = JCS_CMYK}));
  put("image", "jpeg-ycck", libjpeg_compress(8, 8, {.input = JCS_CMYK, .stored = JCS_YCCK}));
  put("image", "jpeg-progressive-truncated", truncated(progressive, progressive.size() * 2 / 3));
  Bytes filled = libjpeg_compress(8, 8, {});
  filled.insert(filled.begin(), 0xFF);  // FF FF D8: a JPEG to stb, not to libjpeg
  put("image", "jpeg-fill-byte", filled);
}

void image_seeds() {
  for (int channels : {1, 2, 3, 4}) {
    std::vector<uint8_t> px(5 * 4 * channels);
    for (size_t i = 0; i < px.size(); ++i) px[i] = static_cast<uint8_t>(i * 37);
    const std::string c = std::to_string(channels);
    put("image", "png-c" + c, simdnn::encode_image(px, 5, 4, channels, simdnn::ImageFormat::kPng));
    put("image", "bmp-c" + c, simdnn::encode_image(px, 5, 4, channels, simdnn::ImageFormat::kBmp));
    if (channels != 2) {
      put("image", "jpeg-c" + c,
          simdnn::encode_image(px, 5, 4, channels, simdnn::ImageFormat::kJpeg, 75));
    }
  }
  std::vector<uint8_t> one = {200};
  put("image", "png-1x1", simdnn::encode_image(one, 1, 1, 1, simdnn::ImageFormat::kPng));
  const Bytes png = simdnn::encode_image(std::vector<uint8_t>(28 * 28, 30), 28, 28, 1,
                                         simdnn::ImageFormat::kPng);
  put("image", "png-28x28", png);
  put("image", "png-truncated", truncated(png, png.size() / 2));
  put("image", "pgm-binary", std::string("P5\n3 2\n255\n") + std::string("\x00\x40\x80\xc0\xff\x10", 6));
  put("image", "pgm-ascii", std::string("P2\n2 2\n15\n0 5\n10 15\n"));
  put("image", "ppm-binary", std::string("P6\n1 2\n255\n") + std::string("\xff\x00\x00\x00\xff\x00", 6));
  put("image", "pgm-huge-declared", std::string("P5\n100000 100000\n255\n"));
  put("image", "gif-header", std::string("GIF89a\x01\x00\x01\x00\x00\x00\x00", 13));
  put("image", "empty", Bytes{});
  jpeg_seeds();
}

void request_seeds() {
  // The first byte picks the input size in fuzz_request: 0 -> 1, 1 -> 4, 2 -> 784.
  const auto req = [](uint8_t size_selector, const std::string& body) {
    return std::string(1, static_cast<char>(size_selector)) + body;
  };
  put("request", "pixels-4", req(1, R"({"pixels": [0, 12.5, 255, 3]})"));
  put("request", "instances-4", req(1, R"({"instances": [[0, 1, 2, 3], [255, 254, 253, 0.5]]})"));
  put("request", "pixels-1", req(0, R"({"pixels":[7]})"));
  std::string big = R"({"pixels": [)";
  for (int i = 0; i < 784; ++i) big += (i ? "," : "") + std::to_string(i % 256);
  put("request", "pixels-784", req(2, big + "]}"));
  put("request", "empty-body", req(1, ""));
  put("request", "empty-object", req(1, "{}"));
  put("request", "empty-instances", req(1, R"({"instances": []})"));
  put("request", "wrong-length", req(1, R"({"pixels": [1, 2, 3]})"));
  put("request", "out-of-range", req(1, R"({"pixels": [1, 2, 3, 256]})"));
  put("request", "negative", req(1, R"({"pixels": [-1, 2, 3, 4]})"));
  put("request", "exponent", req(1, R"({"pixels": [1e2, 2E-3, 0.0e0, 1e999]})"));
  put("request", "both-fields", req(1, R"({"pixels": [1,2,3,4], "instances": [[1,2,3,4]]})"));
  put("request", "unknown-field", req(1, R"({"image": [1,2,3,4]})"));
  put("request", "nested", req(1, R"({"instances": [[[1,2,3,4]]]})"));
  put("request", "strings", req(1, R"({"pixels": ["1", null, true, {}]})"));
  put("request", "too-many", req(0, R"({"instances": [[1],[2],[3],[4],[5],[6],[7],[8],[9]]})"));
  put("request", "whitespace", req(1, " \t\n{ \"pixels\" :\n[ 1 ,2, 3,4 ] }\n "));
  put("request", "trailing-garbage", req(1, R"({"pixels": [1,2,3,4]} x)"));
  put("request", "unterminated", req(1, R"({"pixels": [1,2,)"));
  put("request", "escaped-key", req(1, R"({"pi\u0078els": [1,2,3,4]})"));
}

// fuzz_http: "METHOD TARGET\nName: value\n...\n\nbody" (see fuzz_http.cc).
void http_seeds() {
  const auto req = [](const std::string& start, const std::vector<std::string>& headers,
                      const std::string& body) {
    std::string out = start + "\n";
    for (const std::string& h : headers) out += h + "\n";
    return out + "\n" + body;
  };
  std::string pixels = R"({"pixels": [)";
  for (int i = 0; i < 784; ++i) pixels += (i ? "," : "") + std::to_string((i * 37) % 256);
  pixels += "]}";
  const std::string json = "Content-Type: application/json";
  put("http", "predict-json", req("POST /predict", {json}, pixels));
  put("http", "predict-json-top-k", req("POST /predict?top_k=10", {json, "X-Request-Id: abc-123"}, pixels));
  put("http", "predict-batch", req("POST /predict", {json}, R"({"instances": [[1, 2], [3]]})"));
  put("http", "predict-bad-top-k", req("POST /predict?top_k=0&x=1", {json}, pixels));
  put("http", "predict-no-type", req("POST /predict", {}, pixels));
  put("http", "predict-get", req("GET /predict", {}, ""));
  put("http", "predict-bad-utf8-key", req("POST /predict", {json}, "{\"pix\xff\": [1]}"));
  const Bytes png = simdnn::encode_image(std::vector<uint8_t>(28 * 28, 200), 28, 28, 1,
                                       simdnn::ImageFormat::kPng, 95);
  const std::string png_text(png.begin(), png.end());
  put("http", "predict-png", req("POST /predict", {"Content-Type: image/png"}, png_text));
  const std::string boundary = "XyZ0123";
  const std::string multipart = "--" + boundary +
                                "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                                "Content-Type: image/png\r\n\r\n" + png_text + "\r\n--" + boundary + "--\r\n";
  put("http", "predict-multipart",
      req("POST /predict", {"Content-Type: multipart/form-data; boundary=" + boundary}, multipart));
  put("http", "predict-multipart-quoted",
      req("POST /predict", {"Content-Type: multipart/form-data; boundary=\"" + boundary + "\""},
          multipart.substr(0, multipart.size() / 2)));
  std::string oip_data;
  for (int i = 0; i < 784; ++i) oip_data += (i ? "," : "") + std::to_string((i % 256) / 255.0).substr(0, 5);
  put("http", "oip-infer-fp32",
      req("POST /v2/models/model/infer", {json},
          R"({"id": "r1", "inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [)" +
              oip_data + "]}]}"));
  put("http", "oip-infer-uint8-outputs",
      req("POST /v2/models/model/infer", {json},
          R"({"inputs": [{"name": "input", "shape": [1, 28, 28], "datatype": "UINT8", "data": [[0, 1, 2]]}],)"
          R"( "outputs": [{"name": "class"}], "parameters": {"top_k": 2}})"));
  put("http", "oip-infer-shape-mismatch",
      req("POST /v2/models/model/infer", {json},
          R"({"inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32", "data": [0.5]}]})"));
  for (const char* path : {"/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/model",
                           "/v2/models/model/ready", "/v2/models/other", "/v2/models/model/versions/1"}) {
    put("http", std::string("oip-get") + std::to_string(std::string(path).size()), req(std::string("GET ") + path, {}, ""));
  }
  put("http", "metrics", req("GET /metrics", {"Authorization: Bearer secret"}, ""));
  put("http", "metrics-basic-auth", req("GET /metrics", {"Authorization: Basic Zm9vOmJhcg=="}, ""));
  put("http", "healthz", req("GET /healthz", {}, ""));
  put("http", "readyz", req("GET /readyz", {}, ""));
  put("http", "unknown", req("DELETE /nope?x", {"X-Request-Id: \x01\x02"}, "x"));
  put("http", "raw-http11",
      "POST /predict HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
      "Content-Length: 20\r\n\r\n{\"pixels\": [1, 2, 3]}");
  put("http", "empty", std::string());
}

}  // namespace

// CSV data sets: with and without a header, CRLF, and the edge cases the reader names.
void csv_seeds() {
  put("csv", "header", "label,pixel0,pixel1,pixel2,pixel3\n3,0,10,20,255\n1,1,2,3,4\n");
  put("csv", "plain_crlf", "0,1,2,3,4\r\n1,5,6,7,8\r\n\r\n");
  put("csv", "bad_cell", "1,0,0,0,0\n2,0,0,256,0\n");
  put("csv", "ragged", "1,0,0,0,0\n2,0,0\n");
  put("csv", "not_square", "1,0,0,0\n");
  put("csv", "spaces", " 1 , 0 ,\t0, 0 ,0\n");
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds <output dir>\n");
    return 2;
  }
  g_root = argv[1];
  try {
    fs::create_directories(g_root);
    idx_seeds();
    csv_seeds();
    safetensors_seeds();
    image_seeds();
    request_seeds();
    http_seeds();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
