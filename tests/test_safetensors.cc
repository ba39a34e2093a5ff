#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "io_test_support.h"
#include "simdnn/safetensors.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_safetensors {

using simdnn::SafetensorsFile;
using simdnn::Tensor;
using simdnn::test::contains;
using simdnn::test::io_error_message;
using simdnn::test::TempDir;

namespace {

// A safetensors image from a header text and a data section, with no padding added.
std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& data,
                               uint64_t declared_length = UINT64_MAX) {
  const uint64_t length = declared_length == UINT64_MAX ? header.size() : declared_length;
  std::vector<uint8_t> out;
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(length >> (8 * i)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

std::vector<uint8_t> le_floats(std::initializer_list<float> values) {
  std::vector<uint8_t> out;
  for (float v : values) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  }
  return out;
}

Tensor iota_tensor(std::initializer_list<size_t> dims, float start) {
  Tensor t(dims);
  for (size_t i = 0; i < t.size(); ++i) t[i] = start + 0.25f * static_cast<float>(i);
  return t;
}

bool bit_identical(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() &&
         (a.size() == 0 || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  return io_error_message([&] { simdnn::parse_safetensors(bytes, "model-under-test.safetensors"); });
}

}  // namespace

TEST_CASE("safetensors: save/load round trip is bit-identical and keeps order and metadata") {
  TempDir dir("safetensors-roundtrip");
  SafetensorsFile file;
  file.metadata = {{"format", "simdnn-mlp"}, {"layers", "784,128,10"}, {"empty", ""}};
  file.tensors.emplace_back("dense_0.weight", iota_tensor({3, 4}, -1.0f));
  file.tensors.emplace_back("dense_0.bias", iota_tensor({4}, 2.0f));
  file.tensors.emplace_back("conv.kernel", iota_tensor({1, 2, 1, 3}, 0.5f));
  file.tensors.emplace_back("empty", Tensor({0}));
  Tensor special({6});
  special[0] = -0.0f;
  special[1] = std::numeric_limits<float>::infinity();
  special[2] = std::numeric_limits<float>::denorm_min();
  special[3] = std::numeric_limits<float>::max();
  special[4] = std::nanf("0x123");  // payload must survive
  special[5] = 1.0f / 3.0f;
  file.tensors.emplace_back("special", std::move(special));

  const auto path = dir / "model.safetensors";
  simdnn::save_safetensors(path, file);
  const SafetensorsFile loaded = simdnn::load_safetensors(path);
  CHECK(loaded.metadata == file.metadata);
  REQUIRE(loaded.tensors.size() == file.tensors.size());
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    CAPTURE(file.tensors[i].first);
    CHECK(loaded.tensors[i].first == file.tensors[i].first);
    CHECK(bit_identical(loaded.tensors[i].second, file.tensors[i].second));
  }
  REQUIRE(loaded.find("dense_0.bias") != nullptr);
  CHECK(loaded.find("dense_0.bias")->size() == 4);
  CHECK(loaded.find("missing") == nullptr);
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()),
                      std::filesystem::directory_iterator()) == 1);
}

TEST_CASE("safetensors: byte layout matches the reference implementation") {
  // What Python's safetensors.numpy.save_file({"a": zeros((1, 1)), "b": [1, 2]},
  // metadata={"k": "v"}) writes: compact JSON, __metadata__ first, offsets relative to the data
  // section, header padded with spaces to a multiple of 8.
  std::string header =
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::vector<uint8_t> reference = make_file(header, le_floats({0.0f, 1.0f, 2.0f}));

  const SafetensorsFile parsed = simdnn::parse_safetensors(reference, "reference");
  CHECK(parsed.metadata.at("k") == "v");
  REQUIRE(parsed.tensors.size() == 2);
  CHECK(parsed.tensors[0].first == "a");
  CHECK(parsed.tensors[0].second.shape() == simdnn::Shape{1, 1});
  CHECK(parsed.tensors[1].first == "b");
  CHECK(parsed.tensors[1].second[1] == 2.0f);

  SafetensorsFile file;
  file.metadata = {{"k", "v"}};
  file.tensors.emplace_back("a", Tensor({1, 1}));
  file.tensors.emplace_back("b", Tensor({2}));
  file.tensors.back().second[0] = 1.0f;
  file.tensors.back().second[1] = 2.0f;
  const std::vector<uint8_t> ours = simdnn::serialize_safetensors(file);
  CHECK(ours == reference);
  CHECK((ours.size() - 8) % 8 == 4);  // 8 + header is a multiple of 8; 12 data bytes follow

  // No metadata: the key is left out, as the reference does for metadata=None.
  SafetensorsFile bare;
  bare.tensors.emplace_back("w", Tensor({1}));
  const std::vector<uint8_t> bytes = simdnn::serialize_safetensors(bare);
  const std::string text(bytes.begin() + 8, bytes.end() - 4);
  CHECK(text.rfind(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 0) == 0);
  CHECK(text.size() % 8 == 0);
  // __metadata__: null is accepted.
  CHECK(simdnn::parse_safetensors(
            make_file(R"({"__metadata__":null,"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                      le_floats({7.0f})),
            "null-metadata")
            .tensors[0]
            .second[0] == 7.0f);
}

TEST_CASE("safetensors: serialize refuses names and tensors it cannot write") {
  SafetensorsFile file;
  file.tensors.emplace_back("x", Tensor({1}));
  file.tensors.emplace_back("x", Tensor({1}));
  CHECK_THROWS_AS(simdnn::serialize_safetensors(file), std::invalid_argument);
  file.tensors.pop_back();
  file.tensors.emplace_back("__metadata__", Tensor({1}));
  CHECK_THROWS_AS(simdnn::serialize_safetensors(file), std::invalid_argument);
  file.tensors.pop_back();
  file.tensors.emplace_back("no-shape", Tensor());
  CHECK_THROWS_AS(simdnn::serialize_safetensors(file), std::invalid_argument);
}

TEST_CASE("safetensors: corrupt files are refused with the file, tensor and field named") {
  const std::vector<uint8_t> data8 = le_floats({1.0f, 2.0f});
  auto one_tensor = [](const std::string& info) { return R"({"w":)" + info + "}"; };

  SUBCASE("shorter than the length field") {
    const std::string m = parse_error({1, 2, 3});
    CHECK(contains(m, "model-under-test.safetensors"));
    CHECK(contains(m, "at least 8"));
  }
  SUBCASE("header length past the end of the file") {
    const std::string m = parse_error(make_file("{}", {}, 1000));
    CHECK(contains(m, "model-under-test.safetensors"));
    CHECK(contains(m, "header length 1000"));
    CHECK(contains(m, "past the end"));
  }
  SUBCASE("absurd header length") {
    const std::string m = parse_error(make_file("{}", {}, uint64_t{1} << 62));
    CHECK(contains(m, "header length"));
    CHECK(contains(m, "exceeds the limit"));
  }
  SUBCASE("invalid JSON") {
    const std::string m = parse_error(make_file(R"({"w": {"dtype": "F32",)", data8));
    CHECK(contains(m, "model-under-test.safetensors"));
    CHECK(contains(m, "not valid JSON"));
    // nlohmann reports a number beyond double range as out_of_range, not parse_error (found by
    // fuzzing).
    CHECK(contains(parse_error(make_file(R"({"__metadata__":{"k":1E999}})", {})), "not valid JSON"));
  }
  SUBCASE("JSON that is not an object") {
    CHECK(contains(parse_error(make_file("[1, 2]", {})), "expected a JSON object"));
  }
  SUBCASE("duplicate tensor names") {
    const std::string info = R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})";
    const std::string m = parse_error(make_file(R"({"w":)" + info + R"(,"w":)" + info + "}", data8));
    CHECK(contains(m, "'w'"));
    CHECK(contains(m, "more than once"));
  }
  SUBCASE("metadata values must be strings") {
    const std::string m = parse_error(make_file(R"({"__metadata__":{"epochs":3}})", {}));
    CHECK(contains(m, "__metadata__"));
    CHECK(contains(m, "'epochs'"));
    CHECK(contains(m, "string"));
  }
  SUBCASE("non-F32 dtype") {
    const std::string m = parse_error(
        make_file(one_tensor(R"({"dtype":"F16","shape":[4],"data_offsets":[0,8]})"), data8));
    CHECK(contains(m, "model-under-test.safetensors"));
    CHECK(contains(m, "tensor 'w'"));
    CHECK(contains(m, "dtype"));
    CHECK(contains(m, "found F16"));
    CHECK(contains(m, "only F32"));
    CHECK(contains(parse_error(make_file(
                       one_tensor(R"({"dtype":"Q4","shape":[2],"data_offsets":[0,8]})"), data8)),
                   "unknown dtype"));
  }
  SUBCASE("shape and offsets disagree on the size") {
    const std::string m = parse_error(
        make_file(one_tensor(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), data8));
    CHECK(contains(m, "tensor 'w'"));
    CHECK(contains(m, "data_offsets [0,8]"));
    CHECK(contains(m, "expected 12"));
  }
  SUBCASE("bad shapes") {
    CHECK(contains(parse_error(make_file(
                       one_tensor(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), data8)),
                   "non-negative integers"));
    CHECK(contains(parse_error(make_file(
                       one_tensor(R"({"dtype":"F32","shape":[2.0],"data_offsets":[0,8]})"), data8)),
                   "non-negative integers"));
    CHECK(contains(parse_error(make_file(
                       one_tensor(R"({"dtype":"F32","shape":[1,1,1,1,2],"data_offsets":[0,8]})"),
                       data8)),
                   "rank 5"));
    CHECK(contains(parse_error(make_file(
                       one_tensor(R"({"dtype":"F32","shape":[],"data_offsets":[0,4]})"), data8)),
                   "rank 0"));
    const std::string overflow = parse_error(make_file(
        one_tensor(
            R"({"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]})"),
        data8));
    CHECK(contains(overflow, "tensor 'w'"));
    CHECK(contains(overflow, "overflows"));
    CHECK(contains(parse_error(make_file(one_tensor(R"({"dtype":"F32","data_offsets":[0,8]})"), data8)),
                   "shape: missing"));
  }
  SUBCASE("bad data_offsets") {
    CHECK(contains(parse_error(make_file(
                       one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})"), data8)),
                   "data_offsets: expected [begin, end]"));
    CHECK(contains(parse_error(make_file(
                       one_tensor(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), data8)),
                   "begin > end"));
  }
  SUBCASE("offsets past the end of the data") {
    const std::string m = parse_error(
        make_file(one_tensor(R"({"dtype":"F32","shape":[2],"data_offsets":[4,12]})"), data8));
    CHECK(contains(m, "tensor 'w'"));
    CHECK(contains(m, "past the data section of 8 bytes"));
  }
  SUBCASE("overlapping tensors") {
    const std::string m = parse_error(make_file(
        R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
        le_floats({1, 2, 3})));
    CHECK(contains(m, "tensor 'b'"));
    CHECK(contains(m, "overlap tensor 'a'"));
  }
  SUBCASE("gap between tensors") {
    const std::string m = parse_error(make_file(
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
        le_floats({1, 2, 3})));
    CHECK(contains(m, "tensor 'b'"));
    CHECK(contains(m, "gap of 4 bytes after tensor 'a'"));
  }
  SUBCASE("data not covered by any tensor") {
    const std::string m = parse_error(make_file(
        one_tensor(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), data8));
    CHECK(contains(m, "data section"));
    CHECK(contains(m, "4 bytes after the last tensor"));
  }
}

TEST_CASE("safetensors: load names the path and bounds the file size") {
  TempDir dir("safetensors-load");
  const std::string missing =
      io_error_message([&] { simdnn::load_safetensors(dir / "absent.safetensors"); });
  CHECK(contains(missing, "absent.safetensors"));
  CHECK(contains(missing, "No such file"));

  SafetensorsFile file;
  file.tensors.emplace_back("w", iota_tensor({64}, 0.0f));
  simdnn::save_safetensors(dir / "w.safetensors", file);
  const std::string too_large =
      io_error_message([&] { simdnn::load_safetensors(dir / "w.safetensors", 100); });
  CHECK(contains(too_large, "w.safetensors"));
  CHECK(contains(too_large, "too large"));

  // Truncating the saved file by one byte is caught and names the file.
  std::vector<uint8_t> bytes = simdnn::test::read_raw(dir / "w.safetensors");
  bytes.pop_back();
  simdnn::test::write_raw(dir / "cut.safetensors", bytes);
  const std::string cut = io_error_message([&] { simdnn::load_safetensors(dir / "cut.safetensors"); });
  CHECK(contains(cut, "cut.safetensors"));
  CHECK(contains(cut, "tensor 'w'"));
}

}  // namespace test_safetensors
