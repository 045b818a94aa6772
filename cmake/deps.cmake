# Every external dependency comes from a Debian package (scripts/setup.sh).
find_package(Threads REQUIRED)

# LibTorch (libtorch-dev). Debian installs the CMake package under the multiarch dir.
find_package(Torch REQUIRED)

find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)

if(QFACE_BUILD_TESTS)
  find_package(GTest REQUIRED)
endif()
