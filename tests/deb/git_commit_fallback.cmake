# ctest version_commit_fallback: cmake/SimdnnGitCommit.cmake reports the commit of a git
# checkout, and "unknown" for sources that are not one, including sources unpacked inside some
# other repository (which must not report that repository's commit).
#   cmake -DSOURCE_DIR=<checkout> -DWORK_DIR=<scratch inside the checkout's build tree> -P this
function(commit_of dir out)
  set(PROJECT_SOURCE_DIR ${dir})
  include(${SOURCE_DIR}/cmake/SimdnnGitCommit.cmake)
  set(${out} "${SIMDNN_GIT_COMMIT}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR}/tarball)
commit_of(${WORK_DIR}/tarball nested)
if(NOT nested STREQUAL "unknown")
  message(FATAL_ERROR "a directory inside another checkout reported commit '${nested}'")
endif()
string(RANDOM LENGTH 12 suffix)
set(nogit /tmp/simdnn-commit-fallback-${suffix})  # /tmp: not in any checkout
file(MAKE_DIRECTORY ${nogit})
commit_of(${nogit} outside)
file(REMOVE_RECURSE ${nogit})
if(NOT outside STREQUAL "unknown")
  message(FATAL_ERROR "a directory outside git reported commit '${outside}'")
endif()

find_package(Git QUIET)
if(GIT_FOUND AND EXISTS ${SOURCE_DIR}/.git)
  commit_of(${SOURCE_DIR} own)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
                  OUTPUT_VARIABLE head OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(NOT own MATCHES "${head}")
    message(FATAL_ERROR "the checkout reported '${own}', HEAD is ${head}")
  endif()
  message(STATUS "checkout: ${own}")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
message(STATUS "PASS: unknown outside a checkout of its own")
