# Sanitizer and fuzzing builds. Included from the root CMakeLists.txt before any target is
# defined, so the flags reach every target of this project (library, tests, tools, bench,
# fuzz) and nothing outside it (add_compile_options is directory-scoped).
#
#   -DSIMDNN_SANITIZE=address,undefined   ASan + UBSan (scripts/test-sanitizers.sh)
#   -DSIMDNN_SANITIZE=thread              ThreadSanitizer (see scripts/test-sanitizers.sh)
#   -DSIMDNN_FUZZ=ON                      libFuzzer targets in fuzz/ (clang only); implies
#                                         address,undefined unless SIMDNN_SANITIZE says otherwise
set(SIMDNN_SANITIZE "" CACHE STRING
    "Comma-separated -fsanitize= list for every target (e.g. address,undefined or thread)")
option(SIMDNN_FUZZ "Build the libFuzzer targets in fuzz/ (needs clang)" OFF)

set(_simdnn_sanitize "${SIMDNN_SANITIZE}")
if(SIMDNN_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SIMDNN_FUZZ needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++")
  endif()
  if(NOT _simdnn_sanitize)
    set(_simdnn_sanitize address,undefined)
  endif()
endif()

if(_simdnn_sanitize)
  set(_simdnn_san_flags -fsanitize=${_simdnn_sanitize} -fno-omit-frame-pointer
                        -fno-sanitize-recover=all)
  if(SIMDNN_FUZZ)
    # Coverage instrumentation for everything; only the fuzz targets link libFuzzer's main.
    list(APPEND _simdnn_san_flags -fsanitize=fuzzer-no-link)
  endif()
  add_compile_options(${_simdnn_san_flags})
  add_link_options(-fsanitize=${_simdnn_sanitize})
  message(STATUS "simdnn: sanitizers ${_simdnn_sanitize}")
  unset(_simdnn_san_flags)
endif()
unset(_simdnn_sanitize)

# Optimisation flags for the modules that do the arithmetic (core, kernels, optim, nn, io),
# added after CMAKE_CXX_FLAGS_<CONFIG> so they win. The sanitizer build compiles everything else
# (serving, store, tools, tests, fuzz targets) at -O0 and these at -O1: clang with ASan spends
# about twice the CPU at -O1 on template-heavy code (Beast, nlohmann::json, CLI11, doctest:
# serving's http_session.cc 182 s against 67 s), while the tests' run time is in the kernels.
set(SIMDNN_COMPUTE_MODULE_FLAGS "" CACHE STRING
    "Extra compile flags for core, kernels, optim, nn and io (e.g. -O1 in an -O0 build)")
