#!/usr/bin/env bash
# Builds qface against Debian 13's LibTorch 2.x in a debootstrap root and runs
# the whole test suite there (issue #38), without touching the host's
# packages. Not part of `make test` (a cold build and the suite take about an
# hour on 2 cores); run it before stopping whenever a change talks to LibTorch,
# and record the result in docs/training.md ("LibTorch versions").
#
#   scripts/check-libtorch2.sh [--cuda] [--setup-only] [--jobs N]
#
#   --cuda        also libtorch-cuda-dev, nvidia-cuda-toolkit and libnccl-dev
#                 (contrib, non-free): qface compiled and linked with CUDA,
#                 the CPU tests run (CUDA tests skip without a device)
#   --setup-only  make (or update) the root and stop
#
# The root is cached between runs in $QFACE_TRIXIE_ROOT (default
# /var/cache/qface/trixie, or trixie-cuda); its packages are those of
# scripts/setup.sh --list. The source tree is bind-mounted read-only at /src;
# the build and its logs go to build-trixie/ (build-trixie-cuda/) here.
# Needs root (debootstrap, chroot, mount) and Debian's archive.
set -euo pipefail

cuda=0 setup_only=0 jobs=$(nproc)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cuda) cuda=1 ;;
    --setup-only) setup_only=1 ;;
    --jobs) jobs="$2"; shift ;;
    *) echo "check-libtorch2: unknown option $1 (--cuda, --setup-only, --jobs N)" >&2; exit 2 ;;
  esac
  shift
done
[[ $(id -u) -eq 0 ]] || { echo "check-libtorch2: needs root (debootstrap, chroot, mount)" >&2; exit 1; }

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
suffix=$([[ $cuda -eq 1 ]] && echo -cuda || true)
root="${QFACE_TRIXIE_ROOT:-/var/cache/qface/trixie$suffix}"
out="$src/build-trixie$suffix"
mirror="${QFACE_DEBIAN_MIRROR:-$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)}"
mirror="${mirror:-http://deb.debian.org/debian}"
mkdir -p "$out"
log() { echo "check-libtorch2: $*" | tee -a "$out/check.log"; }

# 1. The root (once): a minimal Debian 13 with main, contrib and non-free.
if [[ ! -e "$root/.qface-bootstrapped" ]]; then
  command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
  log "debootstrap trixie into $root from $mirror"
  mkdir -p "$root"
  debootstrap --variant=minbase --components=main,contrib,non-free trixie "$root" "$mirror"
  touch "$root/.qface-bootstrapped"
fi

mounts=()
cleanup() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT
bind() {  # bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  mounts+=("$2")
  [[ "${3:-}" == ro ]] && mount -o remount,bind,ro "$2"
  return 0
}
bind /proc "$root/proc"
bind /dev "$root/dev"
bind /sys "$root/sys"
bind "$src" "$root/src" ro
bind "$out" "$root/build"
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

# 2. The packages (only what is missing), the same list as the host's set-up.
mapfile -t packages < <(bash "$src/scripts/setup.sh" --list)
if [[ $cuda -eq 1 ]]; then
  # Debian's CUDA LibTorch conflicts with the CPU one, and so do its Python
  # package and Gloo: the CUDA root takes the -cuda builds in their place.
  for i in "${!packages[@]}"; do
    case "${packages[i]}" in
      libtorch-dev) packages[i]=libtorch-cuda-dev ;;
      python3-torch) packages[i]=python3-torch-cuda ;;
      libgloo-dev) packages[i]=libgloo-cuda-dev ;;
    esac
  done
  packages+=(nvidia-cuda-toolkit libnccl-dev)
fi
missing=()
for p in "${packages[@]}"; do
  [[ "$(in_root dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)" == installed ]] || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  log "installing ${#missing[@]} packages: ${missing[*]}"
  in_root apt-get update -q
  if ! in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" 2>&1 |
    tee -a "$out/check.log" | tail -5; then
    # nvidia-cudnn (which libtorch-cuda-2.6 needs) is an installer: it
    # downloads cuDNN from NVIDIA's site, which a machine limited to Debian's
    # archive cannot reach (docs/training.md, "LibTorch versions").
    [[ "$(in_root dpkg-query -W -f='${db:Status-Status}' nvidia-cudnn 2>/dev/null || true)" == half-configured ]] &&
      log "nvidia-cudnn could not download cuDNN from developer.download.nvidia.com: the CUDA LibTorch cannot be linked here"
    log "package installation FAILED (see $out/check.log)"
    exit 1
  fi
fi
torch_pkg=$([[ $cuda -eq 1 ]] && echo libtorch-cuda-dev || echo libtorch-dev)
log "LibTorch in the root: $torch_pkg $(in_root dpkg-query -W -f='${Version}' "$torch_pkg")"
[[ $setup_only -eq 1 ]] && exit 0

# 3. Configure, build and test inside the root.
cuda_flag=$([[ $cuda -eq 1 ]] && echo -DQFACE_CUDA=ON || echo -DQFACE_CUDA=OFF)
log "building with $jobs jobs into $out"
in_root bash -c "cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release $cuda_flag && cmake --build /build -j $jobs" \
  >"$out/build.log" 2>&1 || { log "build FAILED (last lines of $out/build.log):"; tail -30 "$out/build.log"; exit 1; }
log "testing"
status=0
in_root bash -c "cd /build && ctest --output-on-failure -j $jobs" >"$out/ctest.log" 2>&1 || status=$?
grep -E "tests passed|tests failed" "$out/ctest.log" | tee -a "$out/check.log"
exit $status
