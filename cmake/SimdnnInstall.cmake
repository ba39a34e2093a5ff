# Install rules and the CMake package (included at the end of the root CMakeLists.txt when
# SIMDNN_INSTALL is on, the default for a top-level build).
#
#   cmake --install build --prefix /opt/simdnn
#   # consumer:  find_package(simdnn REQUIRED)  target_link_libraries(app PRIVATE simdnn::simdnn)
#
# Installs <prefix>/include/simdnn/*.h (the public headers of every library module),
# <prefix>/lib/libsimdnn_<module>.a (or .so with BUILD_SHARED_LIBS) and
# <prefix>/lib/cmake/simdnn/{simdnnConfig,simdnnConfigVersion,simdnnTargets*}.cmake
# (component "dev"); the tools as bin/simdnn-{train,predict,serve} (tools/CMakeLists.txt,
# component "tools"), the docs under share/doc/simdnn, deploy/ under share/simdnn and the systemd
# unit (component "tools"). The components become the Debian packages libsimdnn-dev and simdnn
# (cmake/SimdnnPackaging.cmake).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SIMDNN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/simdnn"
    CACHE STRING "Where simdnnConfig.cmake is installed, relative to the prefix")

# The umbrella simdnn::simdnn and the modules it links (simdnn::core, simdnn::kernels, ...).
get_property(_simdnn_modules GLOBAL PROPERTY SIMDNN_MODULE_TARGETS)
list(REMOVE_ITEM _simdnn_modules simdnn_serving simdnn_store simdnn_distributed)
install(TARGETS simdnn ${_simdnn_modules}
  EXPORT simdnnTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT dev
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT dev
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The public headers: <module>/include/simdnn/*.h -> include/simdnn/*.h. Only *.h files under
# include/ are public; the *-inl.h kernel sources next to them are not installed.
foreach(module core kernels optim io nn)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${module}/include/simdnn
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          COMPONENT dev
          FILES_MATCHING PATTERN "*.h")
endforeach()

install(EXPORT simdnnTargets
  NAMESPACE simdnn::
  FILE simdnnTargets.cmake
  DESTINATION ${SIMDNN_INSTALL_CMAKEDIR}
  COMPONENT dev)

# A static libsimdnn.a carries its private dependencies into the consumer's link line
# ($<LINK_ONLY:hwy::hwy> etc. in INTERFACE_LINK_LIBRARIES), so the config file must find them
# again; a shared library needs only OpenMP.
get_target_property(_simdnn_type simdnn_core TYPE)
if(_simdnn_type STREQUAL "STATIC_LIBRARY")
  set(SIMDNN_CONFIG_STATIC ON)
else()
  set(SIMDNN_CONFIG_STATIC OFF)
endif()
unset(_simdnn_type)
unset(_simdnn_modules)

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/simdnnConfig.cmake.in
  ${PROJECT_BINARY_DIR}/simdnnConfig.cmake
  INSTALL_DESTINATION ${SIMDNN_INSTALL_CMAKEDIR}
  NO_SET_AND_CHECK_MACRO NO_CHECK_REQUIRED_COMPONENTS_MACRO)
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/simdnnConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  # 0.x: every minor release may break the API.
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/simdnnConfig.cmake
  ${PROJECT_BINARY_DIR}/simdnnConfigVersion.cmake
  DESTINATION ${SIMDNN_INSTALL_CMAKEDIR}
  COMPONENT dev)

# ---- Documentation, deployment files, the systemd unit (component "tools") --------------------
# The docs: README and docs/*.md, read next to the installed tools.
install(FILES ${PROJECT_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT tools)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT tools
        FILES_MATCHING PATTERN "*.md")
# Deployment files are for the tools (serve), so they come only with them.
if(SIMDNN_BUILD_TOOLS)
  # Whatever deploy/ holds (the systemd unit and its defaults file, monitoring configuration, ...)
  # goes to share/simdnn/ as examples to copy from; a file added to deploy/ later is picked up
  # without touching this.
  if(EXISTS ${PROJECT_SOURCE_DIR}/deploy)
    # The scripts (deploy/haproxy/render.sh, deploy/rolling-update.sh) stay executable.
    install(DIRECTORY ${PROJECT_SOURCE_DIR}/deploy/ DESTINATION ${CMAKE_INSTALL_DATADIR}/simdnn
            COMPONENT tools
            PATTERN "*.sh" PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ
                                       GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  endif()
  # The unit where systemd looks for packaged units (relative: <prefix>/lib/systemd/system, which
  # is /usr/lib/systemd/system in the .deb and /usr/local/lib/systemd/system for the default
  # prefix; both are on systemd's unit path). Its ExecStart names simdnn-serve without a directory,
  # which systemd resolves in /usr/local/bin, /usr/bin, ... (docs/deploy.md).
  set(SIMDNN_SYSTEMD_UNIT_DIR "lib/systemd/system"
      CACHE STRING "Where the systemd unit simdnn-serve.service is installed, relative to the prefix")
  install(FILES ${PROJECT_SOURCE_DIR}/deploy/systemd/simdnn-serve.service
          DESTINATION ${SIMDNN_SYSTEMD_UNIT_DIR} COMPONENT tools)
endif()
