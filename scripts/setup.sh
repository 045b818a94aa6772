#!/usr/bin/env bash
# Installs every Debian package qface needs. Idempotent: a no-op when all are present.
# Extra packages given as arguments are installed the same way (scripts/setup-dev.sh).
# --list prints the Debian packages (one per line) and installs nothing
# (scripts/check-libtorch2.sh installs the same ones in a Debian 13 root).
set -euo pipefail
list_only=0
if [[ "${1:-}" == "--list" ]]; then
  list_only=1
  shift
fi

PACKAGES=(
  # toolchain
  cmake ninja-build ccache g++ make pkg-config
  # tensor engine and fast BLAS (Debian's default BLAS is the slow reference one)
  libtorch-dev libopenblas0-openmp libgloo-dev libdnnl-dev
  # malloc for tensor work (src/qface/core/allocator.h)
  libjemalloc-dev
  # images, search, detection, export
  libopencv-dev libopencv-contrib-dev opencv-data libturbojpeg0-dev libfaiss-dev libdlib-dev libdlib-data libonnx-dev
  # config, CLI, logging, JSON, HTTP
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libtomlplusplus-dev libcpp-httplib-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  # headless browser that checks the HTML report draws and drives the serve page (tests)
  chromium
  # Python side-by-side reference (benchmarks and cross-check tests only, never the product path)
  python3-torch python3-numpy
  # the Python module (python/): pybind11, the headers, pytest; cv2.dnn reads the ONNX export in a test
  pybind11-dev python3-dev python3-pytest
  python3-opencv
  "$@"
)

if [[ $list_only -eq 1 ]]; then
  printf '%s\n' "${PACKAGES[@]}" nodejs npm
  exit 0
fi

# Node.js for the serve page's browser test (tests/web; playwright-core is
# installed below): any node >= 18 (Debian 12 has 18.20) and npm on PATH will do, so
# Debian's are installed only when there are none.
command -v node >/dev/null || PACKAGES+=(nodejs)
command -v npm >/dev/null || PACKAGES+=(npm)

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
else
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
    SUDO=sudo
  fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm folders, each installed from its committed lockfile (`npm ci`, no install
# scripts, nothing fetched at run time), again only when the lockfile changed:
#   models/                  face-api's SSD face detector weights (qface reads them; MIT)
#   tests/web/               playwright-core, the driver for the serve page's browser test
#                            (it downloads no browser: Debian's chromium is used)
#   tests/deploy/ssd_reference/  face-api's JavaScript detector on TensorFlow.js, the
#                            reference the SSD detector's test compares with
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for dir in models tests/web tests/deploy/ssd_reference; do
  d="$root/$dir"
  stamp="$d/node_modules/.qface-lock.json"
  if ! cmp -s "$d/package-lock.json" "$stamp"; then
    echo "setup: npm ci in $dir"
    (cd "$d" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
    cp "$d/package-lock.json" "$stamp"
  else
    echo "setup: $dir/node_modules up to date"
  fi
done
