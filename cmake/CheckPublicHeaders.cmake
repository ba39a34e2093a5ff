# ctest public_headers_clean: the public headers (<module>/include/simdnn/*.h) must not pull in
# Highway or change compiler settings, and the simdnn target must export no compile options or
# definitions other than OpenMP's. Run as: cmake -DSOURCE_DIR=... -DFLAGS_FILE=... -P CheckPublicHeaders.cmake
file(GLOB headers ${SOURCE_DIR}/core/include/simdnn/*.h ${SOURCE_DIR}/kernels/include/simdnn/*.h ${SOURCE_DIR}/nn/include/simdnn/*.h
     ${SOURCE_DIR}/optim/include/simdnn/*.h ${SOURCE_DIR}/io/include/simdnn/*.h)
list(LENGTH headers count)
if(count LESS 10)
  message(FATAL_ERROR "found only ${count} public headers under ${SOURCE_DIR}")
endif()
set(bad "")
foreach(header ${headers})
  file(STRINGS ${header} lines)
  set(n 0)
  foreach(line IN LISTS lines)
    math(EXPR n "${n} + 1")
    # Highway headers or macros, target/optimize pragmas and attributes, OpenMP pragmas.
    if(line MATCHES "^[ \t]*#[ \t]*include[ \t]*[<\"]hwy/"
       OR line MATCHES "HWY_"
       OR line MATCHES "^[ \t]*#[ \t]*pragma[ \t]+(GCC|clang|omp)"
       OR line MATCHES "__attribute__[ \t]*\\(\\([ \t]*(target|optimize)")
      string(APPEND bad "  ${header}:${n}: ${line}\n")
    endif()
  endforeach()
endforeach()
if(bad)
  message(FATAL_ERROR "public headers must not include Highway or set compiler flags:\n${bad}")
endif()
# Line 1: what simdnn::simdnn gives a consumer (transitively); line 2: what OpenMP::OpenMP_CXX
# alone gives. They must be the same.
file(STRINGS ${FLAGS_FILE} flags)
list(GET flags 0 simdnn_flags)
list(LENGTH flags n)
set(openmp_flags "|")
if(n GREATER 1)
  list(GET flags 1 openmp_flags)
endif()
if(NOT simdnn_flags STREQUAL openmp_flags)
  message(FATAL_ERROR "simdnn exports compile options|definitions beyond OpenMP's "
                      "('${openmp_flags}'): '${simdnn_flags}'")
endif()
message(STATUS "${count} public headers clean; no exported compile flags")
