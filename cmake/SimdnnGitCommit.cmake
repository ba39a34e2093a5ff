# SIMDNN_GIT_COMMIT: `git describe --always --dirty` of the sources at configure time, for
# --version (tools/tool_version.h) and the Debian changelog (cmake/SimdnnPackaging.cmake).
# Only when the source directory is itself the top of a git checkout: sources unpacked from a
# tarball inside some other repository would otherwise report that repository's commit.
# Outside git it is "unknown".
set(SIMDNN_GIT_COMMIT unknown)
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --show-toplevel --absolute-git-dir
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                  OUTPUT_VARIABLE _git_dirs RESULT_VARIABLE _git_rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_git_rc EQUAL 0)
    string(REPLACE "\n" ";" _git_dirs "${_git_dirs}")
    list(GET _git_dirs 0 _git_top)
    list(GET _git_dirs 1 _git_dir)
    file(REAL_PATH "${_git_top}" _git_top)
    file(REAL_PATH "${PROJECT_SOURCE_DIR}" _source_dir)
    if(_git_top STREQUAL _source_dir)
      execute_process(COMMAND ${GIT_EXECUTABLE} describe --always --dirty --abbrev=12
                      WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}
                      OUTPUT_VARIABLE _git_describe RESULT_VARIABLE _git_rc
                      OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(_git_rc EQUAL 0 AND _git_describe)
        set(SIMDNN_GIT_COMMIT "${_git_describe}")
      endif()
      # Configure again after a commit or checkout, so --version follows HEAD.
      if(EXISTS "${_git_dir}/logs/HEAD")
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_git_dir}/logs/HEAD")
      endif()
    endif()
  endif()
  unset(_git_dirs)
  unset(_git_rc)
  unset(_git_top)
  unset(_git_dir)
  unset(_git_describe)
  unset(_source_dir)
endif()
