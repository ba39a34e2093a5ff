// parse_predict_json: the fast path and the SAX fallback agree with a plain JSON parse on every
// valid body, and JSON's number grammar is enforced (leading zeros, '+', bare '.').
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "simdnn/serving/predict_request.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_serve_parse {

namespace {

using json = nlohmann::json;
using simdnn::serving::ParsedInstances;
using simdnn::serving::parse_predict_json;

constexpr size_t kInput = 6;

// The values nlohmann's DOM parser reads from the body, as floats, row after row.
std::vector<float> dom_values(const std::string& body) {
  const json j = json::parse(body);
  std::vector<float> v;
  auto add_row = [&](const json& row) {
    for (const json& e : row) v.push_back(static_cast<float>(e.get<double>()));
  };
  if (j.contains("pixels")) {
    add_row(j.at("pixels"));
  } else {
    for (const json& row : j.at("instances")) add_row(row);
  }
  return v;
}

}  // namespace

TEST_CASE("serve parse: valid bodies read the same values as a DOM parse") {
  const std::vector<std::string> bodies = {
      R"({"pixels":[0,1,2,254,255,7]})",
      "\n\t{ \"pixels\" :\r\n [ 0 , 1 ,\t2 , 3 , 4 , 5 ] }  \n",
      R"({"pixels":[12.5,1e2,2.55E+2,0.0,255.0,1.0000000000000001]})",
      R"({"pixels":[0.1,0.2,0.3,254.99999999,1E0,5e-1]})",
      R"({"pixels":[-0,0,-0.0,0,0,0]})",          // -0 is 0: the SAX path takes it
      R"({"pixels":[0,0,0,0,0,2.5e-400]})",       // underflows to 0 in both paths
      R"({"instances":[[1,2,3,4,5,6],[6,5,4,3,2,1],[0,0,0,0,0,255]]})",
      R"({"instances": [ [1,2,3,4,5,6] ] })",
      R"({"pix\u0065ls":[1,2,3,4,5,6]})",         // an escaped key is still "pixels"
  };
  ParsedInstances out;
  for (const std::string& body : bodies) {
    CAPTURE(body);
    const auto error = parse_predict_json(body, kInput, 8, out);
    REQUIRE_MESSAGE(!error, (error ? error->message : ""));
    const std::vector<float> expected = dom_values(body);
    CHECK(out.rows == expected.size() / kInput);
    CHECK(out.pixels == expected);
  }
}

TEST_CASE("serve parse: invalid numbers and shapes are refused with 400 or 413") {
  const std::vector<std::pair<std::string, int>> cases = {
      {R"({"pixels":[01,1,2,3,4,5]})", 400},
      {R"({"pixels":[+1,1,2,3,4,5]})", 400},
      {R"({"pixels":[1.,1,2,3,4,5]})", 400},
      {R"({"pixels":[.5,1,2,3,4,5]})", 400},
      {R"({"pixels":[1e,1,2,3,4,5]})", 400},
      {R"({"pixels":[0x1,1,2,3,4,5]})", 400},
      {R"({"pixels":[NaN,1,2,3,4,5]})", 400},
      {R"({"pixels":[Infinity,1,2,3,4,5]})", 400},
      {R"({"pixels":[1000,1,2,3,4,5]})", 400},
      {R"({"pixels":[255.00001,1,2,3,4,5]})", 400},
      {R"({"pixels":[1,2,3,4,5,6],})", 400},
      {R"({"pixels":[1,2,3,4,5,6,]})", 400},
      {R"({"pixels":[1,2,3,4,5,6]} {})", 400},
      {R"({"pixels":[1,2,3,4,5,6], "pixels":[1,2,3,4,5,6]})", 400},
      {R"({"instances":[[1,2,3,4,5,6],[1,2,3,4,5]]})", 400},
      {R"({"instances":[[1,2,3,4,5,6],[1,2,3,4,5,6],[1,2,3,4,5,6]]})", 413},  // max_batch 2
  };
  ParsedInstances out;
  for (const auto& c : cases) {
    // Plain references, not structured bindings: clang 14 cannot capture those (CAPTURE does).
    const auto& body = c.first;
    const auto& status = c.second;
    CAPTURE(body);
    const auto error = parse_predict_json(body, kInput, 2, out);
    REQUIRE(error);
    CHECK(error->status == status);
    CHECK(!error->message.empty());
  }
}

TEST_CASE("serve parse: prefixes and byte mutations never get past a JSON parser's verdict") {
  // Deterministic and bounded: every prefix, and 4000 single-byte mutations, of two bodies.
  const std::vector<std::string> seeds = {
      R"({"pixels": [0, 12.5, 255, 1e2, 7, 0.25]})",
      R"({"instances": [[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]]})",
  };
  const std::string alphabet = "{}[],:\" .-+eE0123456789aslnux\\\n";
  uint32_t state = 2024;
  auto next = [&] { return state = state * 1664525u + 1013904223u; };
  ParsedInstances out;
  size_t accepted = 0;
  auto check = [&](const std::string& body) {
    CAPTURE(body);
    const auto error = parse_predict_json(body, kInput, 8, out);
    const json dom = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (!error) {
      ++accepted;
      REQUIRE(!dom.is_discarded());  // never accepts what is not JSON
      CHECK(out.pixels == dom_values(body));
      CHECK(out.pixels.size() == out.rows * kInput);
    } else {
      // The SAX parser streams, so it may report a shape error met before a syntax error.
      CHECK((error->status == 400 || error->status == 413));
      CHECK(!error->message.empty());
    }
  };
  for (const std::string& seed : seeds) {
    for (size_t n = 0; n <= seed.size(); ++n) check(seed.substr(0, n));
    for (int i = 0; i < 2000; ++i) {
      std::string body = seed;
      body[next() % body.size()] = alphabet[next() % alphabet.size()];
      check(body);
    }
  }
  CHECK(accepted >= 2);  // at least the unmutated seeds
}

}  // namespace test_serve_parse
