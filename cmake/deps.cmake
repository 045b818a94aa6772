# Every external dependency comes from a Debian package (scripts/setup.sh).
# What the libraries link is in qfaceDeps.cmake (installed with them); the
# rest is for the command, the tests and the benchmarks.
include(${CMAKE_CURRENT_LIST_DIR}/qfaceDeps.cmake)
find_package(CLI11 REQUIRED)
if(QFACE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
pkg_check_modules(JEMALLOC REQUIRED IMPORTED_TARGET jemalloc)  # PkgConfig::JEMALLOC: qface-full's malloc
