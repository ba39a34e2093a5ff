# ctest packaging_*: configures, builds and runs examples/consumer as a separate project.
#   MODE=install  cmake --install MAIN_BUILD_DIR into WORK_DIR/prefix, then find_package it
#                 (CMAKE_PREFIX_PATH=WORK_DIR/prefix, package registry off)
#   MODE=subdir   add_subdirectory(SOURCE_DIR) from the consumer (SIMDNN_SOURCE_DIR); the
#                 library is compiled again, in Debug to keep the compile short
# Other inputs: SOURCE_DIR, MAIN_BUILD_DIR, WORK_DIR, CXX_COMPILER, GENERATOR, CONFIG, and
# optionally JOBS (default 2).
foreach(var MODE SOURCE_DIR WORK_DIR CXX_COMPILER GENERATOR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "RunConsumerTest.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT JOBS)
  set(JOBS 2)
endif()

function(run)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "+ ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${shown}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(consumer_build ${WORK_DIR}/consumer-build)
set(common -S ${SOURCE_DIR}/examples/consumer -B ${consumer_build} -G ${GENERATOR}
           -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
           -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)

if(MODE STREQUAL "install")
  if(NOT CONFIG)
    set(CONFIG Release)
  endif()
  set(prefix ${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install ${MAIN_BUILD_DIR} --prefix ${prefix} --config ${CONFIG})
  foreach(f include/simdnn/tensor.h include/simdnn/model.h include/simdnn/optimizer.h
            include/simdnn/idx.h lib/cmake/simdnn/simdnnConfig.cmake
            lib/cmake/simdnn/simdnnConfigVersion.cmake lib/cmake/simdnn/simdnnTargets.cmake)
    if(NOT EXISTS ${prefix}/${f})
      message(FATAL_ERROR "cmake --install did not install ${f}")
    endif()
  endforeach()
  # With the tools built: the tools under their installed names, the docs and deploy/.
  if(EXISTS ${MAIN_BUILD_DIR}/tools/simdnn-train)
    foreach(f bin/simdnn-train bin/simdnn-predict bin/simdnn-serve share/doc/simdnn/README.md
              share/simdnn/systemd/simdnn-serve.service lib/systemd/system/simdnn-serve.service
              share/simdnn/rolling-update.sh share/simdnn/haproxy/render.sh)
      if(NOT EXISTS ${prefix}/${f})
        message(FATAL_ERROR "cmake --install did not install ${f}")
      endif()
    endforeach()
    # The deploy/ scripts stay executable (cmake/SimdnnInstall.cmake).
    foreach(f share/simdnn/rolling-update.sh share/simdnn/haproxy/render.sh)
      execute_process(COMMAND test -x ${prefix}/${f} RESULT_VARIABLE not_executable)
      if(NOT not_executable EQUAL 0)
        message(FATAL_ERROR "cmake --install installed ${f} without execute permission")
      endif()
    endforeach()
    foreach(f bin/train bin/predict bin/serve)
      if(EXISTS ${prefix}/${f})
        message(FATAL_ERROR "cmake --install installed ${f}, a name that clashes on a PATH")
      endif()
    endforeach()
    run(${prefix}/bin/simdnn-train --version)
  endif()
  file(GLOB private_headers ${prefix}/include/simdnn/*-inl.h ${prefix}/include/hwy
       ${prefix}/include/simdnn/testing)
  if(private_headers)
    message(FATAL_ERROR "private files installed: ${private_headers}")
  endif()
  # The consumer sets no C++ standard and compiles every installed public header on its own.
  run(${CMAKE_COMMAND} ${common} -DCMAKE_BUILD_TYPE=${CONFIG} -DCMAKE_PREFIX_PATH=${prefix}
      -DSIMDNN_HEADERS_DIR=${prefix}/include)
  run(${CMAKE_COMMAND} --build ${consumer_build} --config ${CONFIG} -j ${JOBS})
elseif(MODE STREQUAL "subdir")
  # Only the portable baseline SIMD target: this test is about the CMake integration, and each
  # Highway target is another compile of every kernel (most of this test's time). The option
  # also shows a subproject can pass its cache variables down.
  run(${CMAKE_COMMAND} ${common} -DCMAKE_BUILD_TYPE=Debug -DSIMDNN_SOURCE_DIR=${SOURCE_DIR}
      -DSIMDNN_SKIP_SIMD_TARGETS=AVX3_DL,AVX3,AVX2,SSE4,SSSE3)
  run(${CMAKE_COMMAND} --build ${consumer_build} --config Debug -j ${JOBS})
  # A subproject must default to no tests, benchmarks, tools or install rules.
  file(STRINGS ${consumer_build}/CMakeCache.txt options REGEX "^SIMDNN_(BUILD_[A-Z]+|INSTALL):")
  foreach(option IN LISTS options)
    if(NOT option MATCHES "=OFF$")
      message(FATAL_ERROR "add_subdirectory: expected OFF by default: ${option}")
    endif()
  endforeach()
  list(LENGTH options n)
  if(NOT n EQUAL 4)
    message(FATAL_ERROR "add_subdirectory: expected 4 SIMDNN_BUILD_*/INSTALL options, got ${options}")
  endif()
else()
  message(FATAL_ERROR "MODE must be install or subdir, got '${MODE}'")
endif()

file(GLOB_RECURSE exe LIST_DIRECTORIES false ${consumer_build}/consumer ${consumer_build}/*/consumer)
if(NOT exe)
  message(FATAL_ERROR "no consumer executable in ${consumer_build}")
endif()
list(GET exe 0 exe)
run(${exe})
# Success: drop the build (the install prefix and the Debug library are tens of MB).
file(REMOVE_RECURSE ${WORK_DIR})
