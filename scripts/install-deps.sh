#!/usr/bin/env bash
# Installs what building, testing and benchmarking strata needs on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped, so a second run costs a dpkg query.
set -euo pipefail

BUILD_PKGS=(
  cmake ninja-build g++ clang libclang-rt-14-dev ccache pkg-config
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libseccomp-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
TEST_PKGS=(
  busybox-static runc crun podman netavark aardvark-dns qemu-system-x86 cpio jq iproute2 procps
  hyperfine linux-perf strace uidmap
)

missing=()
for p in "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
