# The packages the qface libraries link (Debian packages, scripts/setup.sh):
# included by the build (cmake/deps.cmake) and by the installed
# qfaceConfig.cmake, so that a downstream project finds the same targets.
find_package(Threads REQUIRED)
# LibTorch (libtorch-dev). Debian installs the CMake package under the multiarch dir.
find_package(Torch REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
# Images (OpenCV; libjpeg-turbo's TurboJPEG API for fast JPEG decode);
# opencv_contrib's quality module (BRISQUE for `qface eval quality`; model files in opencv-data).
find_package(OpenCV REQUIRED COMPONENTS core imgproc imgcodecs dnn quality)
find_package(libjpeg-turbo REQUIRED)   # target libjpeg-turbo::turbojpeg
# Vector search, face detection/landmarks, ONNX protobuf classes.
find_package(OpenMP REQUIRED)          # faiss links OpenMP::OpenMP_CXX
find_package(faiss REQUIRED)           # target faiss
find_package(dlib REQUIRED)            # target dlib::dlib
find_package(ONNX REQUIRED)            # targets onnx_proto (Debian 12) or ONNX::onnx_proto (Debian 13)
if(TARGET ONNX::onnx_proto)
  set(QFACE_ONNX_PROTO ONNX::onnx_proto)
else()
  set(QFACE_ONNX_PROTO onnx_proto)
endif()
# Config files and the HTTP service.
find_package(tomlplusplus REQUIRED)    # target tomlplusplus::tomlplusplus
find_package(PkgConfig REQUIRED)
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)  # PkgConfig::HTTPLIB
