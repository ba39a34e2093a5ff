# simdnn_add_module(NAME SOURCES ... [PUBLIC_DEPS ...] [PRIVATE_DEPS ...])
#
# One library per module (core, kernels, optim, io, nn, serving): target simdnn_<NAME>, alias
# simdnn::<NAME>, exported as simdnn::<NAME>. Its include path is its own <module>/include and
# nothing else but what its PUBLIC_DEPS export, so a module that includes a header of a module
# above it (or beside it, unless it depends on it) does not compile: the layering is enforced by
# the build itself. docs/architecture.md has the diagram.
function(simdnn_add_module name)
  cmake_parse_arguments(M "" "" "SOURCES;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  set(target simdnn_${name})
  add_library(${target} ${M_SOURCES})
  add_library(simdnn::${name} ALIAS ${target})
  target_include_directories(${target}
    PUBLIC
      $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
      $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE
      # The module's own sources: its internal headers, and the per-target Highway sources
      # (HWY_TARGET_INCLUDE "gemm.cc" is included from hwy/foreach_target.h).
      ${CMAKE_CURRENT_SOURCE_DIR})
  # The public headers use C++20 (std::span, concepts of <ranges>): a consumer that sets no
  # standard gets it from the target.
  target_compile_features(${target} PUBLIC cxx_std_20)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wno-psabi)
  if(SIMDNN_COMPUTE_MODULE_FLAGS AND name MATCHES "^(core|kernels|optim|nn|io)$")
    separate_arguments(_compute_flags UNIX_COMMAND "${SIMDNN_COMPUTE_MODULE_FLAGS}")
    target_compile_options(${target} PRIVATE ${_compute_flags})
  endif()
  # The fuzz targets parse (images, IDX, CSV, safetensors, JSON, HTTP): libFuzzer's coverage
  # guides them through io, nn and serving. The kernels' branches are shapes and SIMD tails,
  # which no fuzz input steers, and instrumenting them costs a fifth of their compile time in
  # the sanitizer build (gemm.cc: 113 s against 89 s of CPU).
  if(SIMDNN_FUZZ AND name STREQUAL "kernels")
    target_compile_options(${target} PRIVATE -fno-sanitize=fuzzer-no-link)
  endif()
  target_link_libraries(${target} PUBLIC ${M_PUBLIC_DEPS} PRIVATE ${M_PRIVATE_DEPS})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  set_property(GLOBAL APPEND PROPERTY SIMDNN_MODULE_TARGETS ${target})
endfunction()

# simdnn_test_program(TARGET [UNITY])
#
# For the test programs (simdnn_tests, tools_tests, the fault and MPI tests): in an optimised
# build they are compiled at -O1, not at the build type's -O3. Their code is assertions,
# doctest's macros, JSON and HTTP client code; what they exercise (the library, the tools) keeps
# its own flags. -O1 is about 30% less compile time per test file with gcc 12
# (test_serve_protocol.cc: 18.7 s against 26.8 s) and keeps the test-side reference loops fast.
#
# With UNITY (simdnn_tests, tools_tests) they are also unity builds, six test files to a translation unit: most of their compile time
# is the same headers (doctest, nlohmann::json, Beast, the simdnn headers) parsed and the same
# templates instantiated once per file. Each test file keeps its helpers in a namespace named
# after the file, so that names cannot collide or silently overload across the files of a batch.
# A file with its own compile flags (test_gemm.cc in the sanitizer build) stays out of the
# batches (CMake leaves out sources with COMPILE_OPTIONS). -DSIMDNN_UNITY_TESTS=OFF turns it off.
option(SIMDNN_UNITY_TESTS "Compile the test programs as unity builds (faster builds)" ON)
function(simdnn_test_program target)
  target_compile_options(${target} PRIVATE $<$<CONFIG:Release,RelWithDebInfo,MinSizeRel>:-O1>)
  if(SIMDNN_UNITY_TESTS AND "UNITY" IN_LIST ARGN)
    set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 6)
    # main.cc defines DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN before including doctest: on its own.
    get_target_property(sources ${target} SOURCES)
    foreach(source ${sources})
      if(source MATCHES "(^|/)main\\.cc$")
        set_source_files_properties(${source} TARGET_DIRECTORY ${target}
                                    PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
      endif()
    endforeach()
  endif()
endfunction()
