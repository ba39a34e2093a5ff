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
  target_link_libraries(${target} PUBLIC ${M_PUBLIC_DEPS} PRIVATE ${M_PRIVATE_DEPS})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  set_property(GLOBAL APPEND PROPERTY SIMDNN_MODULE_TARGETS ${target})
endfunction()
