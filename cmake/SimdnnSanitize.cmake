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
