# Install rules and the CMake package (included at the end of the root CMakeLists.txt when
# SIMDNN_INSTALL is on, the default for a top-level build).
#
#   cmake --install build --prefix /opt/simdnn
#   # consumer:  find_package(simdnn REQUIRED)  target_link_libraries(app PRIVATE simdnn::simdnn)
#
# Installs <prefix>/include/simdnn/*.h (the public headers of every library module),
# <prefix>/lib/libsimdnn_<module>.a (or .so with BUILD_SHARED_LIBS) and
# <prefix>/lib/cmake/simdnn/{simdnnConfig,simdnnConfigVersion,simdnnTargets*}.cmake.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(SIMDNN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/simdnn"
    CACHE STRING "Where simdnnConfig.cmake is installed, relative to the prefix")

# The umbrella simdnn::simdnn and the modules it links (simdnn::core, simdnn::kernels, ...).
get_property(_simdnn_modules GLOBAL PROPERTY SIMDNN_MODULE_TARGETS)
list(REMOVE_ITEM _simdnn_modules simdnn_serving simdnn_store)
install(TARGETS simdnn ${_simdnn_modules}
  EXPORT simdnnTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# The public headers: <module>/include/simdnn/*.h -> include/simdnn/*.h. Only *.h files under
# include/ are public; the *-inl.h kernel sources next to them are not installed.
foreach(module core kernels optim io nn)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${module}/include/simdnn
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
          FILES_MATCHING PATTERN "*.h")
endforeach()

install(EXPORT simdnnTargets
  NAMESPACE simdnn::
  FILE simdnnTargets.cmake
  DESTINATION ${SIMDNN_INSTALL_CMAKEDIR})

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
  DESTINATION ${SIMDNN_INSTALL_CMAKEDIR})
