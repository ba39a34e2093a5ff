# Debian packages with CPack (included from the root CMakeLists.txt after the install rules):
#
#   cmake --build build && (cd build && cpack -G DEB)
#   -> simdnn_<version>_<arch>.deb         the tools, their docs, deploy/ and the systemd unit
#      libsimdnn-dev_<version>_<arch>.deb  headers, static libraries, the CMake package
#
# One package per install component (cmake/SimdnnInstall.cmake: "tools" and "dev").
# Dependencies come from dpkg-shlibdeps on the binaries (Debian package dpkg-dev), so the
# package asks for the libraries the tools were really linked against; libsimdnn-dev lists the
# -dev packages a consumer's find_package(simdnn) needs by hand, since a static library has no
# shared-library dependencies to compute. docs/deploy.md tells the whole story.

# cpack (and `make install`) pack the build as it is instead of building every target first
# (the tests and benchmarks too), which a packaging step run after the build, or from ctest
# while the build tree is in use, must not do. Build, then pack.
set(CMAKE_SKIP_INSTALL_ALL_DEPENDENCY ON)

set(SIMDNN_PACKAGE_MAINTAINER "simdnn maintainers <simdnn@example.org>"
    CACHE STRING "Maintainer field of the Debian packages (Name <email>)")
set(SIMDNN_PACKAGE_HOMEPAGE "https://example.org/simdnn"
    CACHE STRING "Homepage field of the Debian packages")

set(CPACK_PACKAGE_NAME simdnn)
set(CPACK_PACKAGE_VENDOR simdnn)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_DESCRIPTION}")
set(CPACK_PACKAGE_CONTACT "${SIMDNN_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_HOMEPAGE_URL "${SIMDNN_PACKAGE_HOMEPAGE}")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# Debian policy: directories 0755 whatever the umask of the machine that builds the package.
set(CPACK_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
# Binaries without debugging symbols (`cmake --install --strip`).
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR "")

set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL tools dev)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SIMDNN_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "${SIMDNN_PACKAGE_HOMEPAGE}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)

set(CPACK_DEBIAN_TOOLS_PACKAGE_NAME simdnn)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SECTION science)
set(CPACK_DEBIAN_TOOLS_PACKAGE_SHLIBDEPS ON)
set(CPACK_COMPONENT_TOOLS_DESCRIPTION
    "train, predict and serve small neural networks on CPU with SIMD kernels
simdnn-train trains a dense classifier (by default the Keras MNIST example,
784-128-10, on Fashion-MNIST) with its own SIMD kernels, picked at run time
for the CPU (AVX-512, AVX2, SSE4 or scalar). simdnn-predict classifies
images with a trained model; simdnn-serve serves it over HTTP (Open
Inference Protocol v2, Prometheus metrics). A sandboxed systemd unit,
simdnn-serve.service, runs the service.")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libsimdnn-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# What simdnnConfig.cmake finds again for a static libsimdnn (cmake/simdnnConfig.cmake.in).
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libhwy-dev (>= 1.0.3), zlib1g-dev, libjpeg-dev, nlohmann-json3-dev (>= 3.10), libstb-dev, pkg-config")
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "C++20 library to train and run small neural networks on CPU (development files)
simdnn's tensors, SIMD kernels (Highway, dispatched at run time), optimizers,
model files and training loop as static libraries, with their headers
(<simdnn/...>) and a CMake package: find_package(simdnn) and link
simdnn::simdnn.")

# Debian revision 1: a non-native package, whose changelog is changelog.Debian.gz.
set(CPACK_DEBIAN_PACKAGE_RELEASE 1)

# Every Debian package carries /usr/share/doc/<package>/copyright and changelog.Debian.gz
# (gzip -n: no time stamp, so the same sources give the same bytes). The date honours
# SOURCE_DATE_EPOCH, for reproducible packages.
set(SIMDNN_DEB_VERSION "${PROJECT_VERSION}-${CPACK_DEBIAN_PACKAGE_RELEASE}")
set(SIMDNN_DEB_SOURCE simdnn)
string(TIMESTAMP SIMDNN_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
configure_file(${PROJECT_SOURCE_DIR}/packaging/deb/changelog.in
               ${PROJECT_BINARY_DIR}/packaging/changelog.Debian @ONLY)
execute_process(COMMAND gzip -9nf ${PROJECT_BINARY_DIR}/packaging/changelog.Debian
                RESULT_VARIABLE _gzip_rc)
if(NOT _gzip_rc EQUAL 0)
  message(FATAL_ERROR "gzip ${PROJECT_BINARY_DIR}/packaging/changelog.Debian failed: ${_gzip_rc}")
endif()
unset(_gzip_rc)
foreach(_component_package tools:simdnn dev:libsimdnn-dev)
  string(REPLACE ":" ";" _component_package ${_component_package})
  list(GET _component_package 0 _component)
  list(GET _component_package 1 _package)
  install(FILES ${PROJECT_SOURCE_DIR}/packaging/deb/copyright
                ${PROJECT_BINARY_DIR}/packaging/changelog.Debian.gz
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${_package} COMPONENT ${_component})
endforeach()
unset(_component_package)
unset(_component)
unset(_package)

include(CPack)
