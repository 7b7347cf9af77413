#!/usr/bin/env bash
# Installs what building, testing and benchmarking strata needs on a fresh Debian 12 machine.
# Idempotent: packages already present are skipped, so a second run costs a dpkg query.
set -euo pipefail

BUILD_PKGS=(
  cmake ninja-build g++ clang libclang-rt-14-dev ccache pkg-config
  nlohmann-json3-dev libcli11-dev libspdlog-dev libfmt-dev libseccomp-dev
  libssl-dev libarchive-dev libzstd-dev libboost1.81-dev libmnl-dev libnftables-dev
  libgtest-dev libgmock-dev libbenchmark-dev
)
TEST_PKGS=(
  busybox-static runc crun podman netavark aardvark-dns qemu-system-x86 cpio jq iproute2 procps
  # netavark 1.4 programs its firewall with iptables (the nft flavour): without it podman's
  # bridge networking fails with "netavark: No such file or directory"
  iptables
  hyperfine linux-perf strace uidmap
  nftables skopeo docker-registry apache2-utils curl
  # the token server of the registry e2e tests signs its JWTs with the openssl command
  openssl
  # the guest kernel (guest/kernel/build.sh) and its QEMU test's root disk
  linux-source-6.1 make bc bison flex libelf-dev libssl-dev xz-utils e2fsprogs
  # the vmm e2e tests' peers (vsock host side, AF_PACKET frame reader) and bench/vmm_vs_qemu.py
  python3 time
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
