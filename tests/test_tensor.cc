#include <doctest/doctest.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "simdnn/testing/simd_target_control.h"
#include "simdnn/tensor.h"

// One namespace per file: the test programs are unity builds (CMake UNITY_BUILD).
namespace test_tensor {

using simdnn::Shape;
using simdnn::Tensor;

TEST_CASE("tensor: shape, zero fill, alignment") {
  Tensor t({3, 5});
  CHECK(t.rank() == 2);
  CHECK(t.rows() == 3);
  CHECK(t.cols() == 5);
  CHECK(t.size() == 15);
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % Tensor::kAlignment == 0);
  for (size_t i = 0; i < t.size(); ++i) CHECK(t[i] == 0.0f);
  Tensor r4({2, 3, 4, 5});
  CHECK(r4.rows() == 2);
  CHECK(r4.cols() == 60);
  CHECK_THROWS_AS(Tensor({1, 2, 3, 4, 5}), std::invalid_argument);
}

TEST_CASE("tensor: rows, clone is deep, move leaves source empty") {
  Tensor t({2, 3});
  for (size_t i = 0; i < 6; ++i) t[i] = static_cast<float>(i);
  CHECK(t.row(1)[0] == 3.0f);
  CHECK(t.row(1).size() == 3);
  CHECK_THROWS_AS(t.row(2), std::out_of_range);
  Tensor c = t.clone();
  c[0] = 42.0f;
  CHECK(t[0] == 0.0f);
  Tensor m = std::move(t);
  CHECK(m[5] == 5.0f);
  CHECK(t.data() == nullptr);  // NOLINT(bugprone-use-after-move): checking the moved-from state
}

TEST_CASE("tensor: reshape keeps data; mismatch names both shapes") {
  Tensor t({4, 6});
  t[7] = 1.5f;
  t.reshape(Shape{2, 12});
  CHECK(t.shape() == Shape{2, 12});
  CHECK(t[7] == 1.5f);
  try {
    t.reshape(Shape{5, 5});
    FAIL("expected a throw");
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    CHECK(msg.find("[5, 5]") != std::string::npos);
    CHECK(msg.find("[2, 12]") != std::string::npos);
  }
  try {
    simdnn::require_same_shape(Shape{3, 4}, Shape{4, 3}, "add");
    FAIL("expected a throw");
  } catch (const std::invalid_argument& e) {
    std::string msg = e.what();
    CHECK(msg.find("add") != std::string::npos);
    CHECK(msg.find("[3, 4]") != std::string::npos);
    CHECK(msg.find("[4, 3]") != std::string::npos);
  }
}

TEST_CASE("tensor: resize reuses capacity") {
  Tensor t({8, 8});
  const float* p = t.data();
  t.resize(Shape{4, 8});
  CHECK(t.data() == p);
  CHECK(t.size() == 32);
  t.resize(Shape{16, 8});
  CHECK(t.size() == 128);
}

TEST_CASE("simd targets: listed, forceable, restorable") {
  auto targets = simdnn::available_simd_targets();
  REQUIRE(!targets.empty());
  std::string automatic = simdnn::current_simd_target();
  CHECK(automatic == targets.front());
  for (const auto& name : targets) {
    simdnn::ScopedSimdTarget scope(name);
    CHECK(simdnn::current_simd_target() == name);
  }
  CHECK(simdnn::current_simd_target() == automatic);
  CHECK_THROWS_AS(simdnn::force_simd_target("NOT_A_TARGET"), std::invalid_argument);
  CHECK(simdnn::current_simd_target() == automatic);
}

TEST_CASE("Tensor::view reads and writes memory it does not own, and frees nothing") {
  std::vector<float> memory(12, 1.0f);
  {
    simdnn::Tensor v = simdnn::Tensor::view(memory.data() + 2, simdnn::Shape{2, 3});
    CHECK_FALSE(v.owns_data());
    CHECK(v.data() == memory.data() + 2);
    CHECK(v.size() == 6);
    v.fill(5.0f);
    v.row(1)[2] = 7.0f;
    const simdnn::Tensor copy = v.clone();  // a deep copy owns its storage
    CHECK(copy.owns_data());
    CHECK(copy[5] == 7.0f);
    simdnn::Tensor moved = std::move(v);  // the view moves, still not owning
    CHECK_FALSE(moved.owns_data());
    moved.resize(simdnn::Shape{100});  // beyond the view: storage of its own
    CHECK(moved.owns_data());
    CHECK(moved.data() != memory.data() + 2);
  }  // destroying the views must not free `memory` (the sanitizer build would say so)
  CHECK(memory[1] == 1.0f);
  CHECK(memory[2] == 5.0f);
  CHECK(memory[7] == 7.0f);
  CHECK(memory[8] == 1.0f);
  CHECK(simdnn::Tensor(simdnn::Shape{3}).owns_data());
}

}  // namespace test_tensor
