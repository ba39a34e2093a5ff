# Header, packaging and fault tests (issue 5). Included from the end of tests/CMakeLists.txt,
# so it runs in the tests/ directory scope with SIMDNN_BUILD_TESTS on.

# ---- Public headers compile on their own --------------------------------------------------
# One generated translation unit per public header, including only that header (twice, for the
# include guard), built as part of the normal build: a header that needs something it does not
# include breaks the build right away.
# Not in the sanitizer and fuzzing builds: whether a header compiles on its own does not depend
# on the flags, and the Release build (scripts/test.sh) checks it.
if(NOT SIMDNN_SANITIZE AND NOT SIMDNN_FUZZ)
  file(GLOB SIMDNN_PUBLIC_HEADERS CONFIGURE_DEPENDS
       ${PROJECT_SOURCE_DIR}/core/include/simdnn/*.h ${PROJECT_SOURCE_DIR}/kernels/include/simdnn/*.h
       ${PROJECT_SOURCE_DIR}/nn/include/simdnn/*.h
       ${PROJECT_SOURCE_DIR}/optim/include/simdnn/*.h ${PROJECT_SOURCE_DIR}/io/include/simdnn/*.h)
  set(_header_tus)
  foreach(header ${SIMDNN_PUBLIC_HEADERS})
    get_filename_component(name ${header} NAME_WE)
    set(tu ${CMAKE_CURRENT_BINARY_DIR}/header_check/${name}.cc)
    file(CONFIGURE OUTPUT ${tu} CONTENT
         "// Generated: <simdnn/${name}.h> must compile on its own.\n#include <simdnn/${name}.h>\n#include <simdnn/${name}.h>\n")
    list(APPEND _header_tus ${tu})
  endforeach()
  add_library(simdnn_header_check OBJECT ${_header_tus})
  # Only what a consumer gets: simdnn::simdnn's interface (include directories, OpenMP).
  target_link_libraries(simdnn_header_check PRIVATE simdnn::simdnn)
  target_compile_options(simdnn_header_check PRIVATE -Wall -Wextra)
  unset(_header_tus)
endif()

# ...and include no Highway header, and set no compiler flags (pragmas, or interface
# compile options/definitions on the exported target beyond OpenMP's -fopenmp).
file(GENERATE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/simdnn_interface_flags.txt
     CONTENT "$<TARGET_PROPERTY:simdnn,INTERFACE_COMPILE_OPTIONS>|$<TARGET_PROPERTY:simdnn,INTERFACE_COMPILE_DEFINITIONS>\n$<TARGET_PROPERTY:OpenMP::OpenMP_CXX,INTERFACE_COMPILE_OPTIONS>|$<TARGET_PROPERTY:OpenMP::OpenMP_CXX,INTERFACE_COMPILE_DEFINITIONS>")
add_test(NAME public_headers_clean
         COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
                 -DFLAGS_FILE=${CMAKE_CURRENT_BINARY_DIR}/simdnn_interface_flags.txt
                 -P ${PROJECT_SOURCE_DIR}/cmake/CheckPublicHeaders.cmake)

# ---- Module layering (docs/architecture.md) ---------------------------------------------------
# No module includes a header of a module above it, and no public header include cycle exists.
find_package(Python3 COMPONENTS Interpreter REQUIRED)
add_test(NAME module_layering
         COMMAND Python3::Interpreter ${PROJECT_SOURCE_DIR}/scripts/check_layering.py
                 ${PROJECT_SOURCE_DIR})

# ---- Packaging: install + find_package, and add_subdirectory -------------------------------
# Both configure, build and run examples/consumer as a separate project. They are slow-ish
# (the add_subdirectory one compiles the library again, in Debug to keep it around a minute on
# two cores), hence the label: `ctest -LE packaging` skips them. Not registered for sanitizer
# or fuzzing builds, whose libsimdnn.a would need the same -fsanitize flags in the consumer.
if(NOT SIMDNN_SANITIZE AND NOT SIMDNN_FUZZ)
  set(_consumer_args
      -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
      -DMAIN_BUILD_DIR=${PROJECT_BINARY_DIR}
      -DCXX_COMPILER=${CMAKE_CXX_COMPILER}
      -DGENERATOR=${CMAKE_GENERATOR}
      -DCONFIG=$<CONFIG>)
  if(SIMDNN_INSTALL)
    add_test(NAME packaging_install_find_package
             COMMAND ${CMAKE_COMMAND} ${_consumer_args} -DMODE=install
                     -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/packaging/install
                     -P ${PROJECT_SOURCE_DIR}/cmake/RunConsumerTest.cmake)
    set_tests_properties(packaging_install_find_package PROPERTIES
                         LABELS packaging TIMEOUT 600)
  endif()
  add_test(NAME packaging_add_subdirectory
           COMMAND ${CMAKE_COMMAND} ${_consumer_args} -DMODE=subdir
                   -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/packaging/subdir
                   -P ${PROJECT_SOURCE_DIR}/cmake/RunConsumerTest.cmake)
  # It builds with -j2: reserve two of ctest's -j slots for it.
  set_tests_properties(packaging_add_subdirectory PROPERTIES
                       LABELS packaging TIMEOUT 900 PROCESSORS 2)
  unset(_consumer_args)
endif()

# ---- Fault tests (tests/fault) ---------------------------------------------------------------
if(EXISTS ${PROJECT_SOURCE_DIR}/tests/fault/CMakeLists.txt)
  add_subdirectory(${PROJECT_SOURCE_DIR}/tests/fault ${CMAKE_CURRENT_BINARY_DIR}/fault)
endif()
