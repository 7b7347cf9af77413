// strata vm run --bundle: an OCI bundle (config.json + rootfs) as the workload of a micro-VM,
// the way Kata and Firecracker-based runtimes do it:
//
//   - the rootfs becomes an ext4 image made by `mkfs.ext4 -d`, cached under
//     <cache>/rootfs/<key>.ext4 where <key> hashes every entry's path, type, mode, owner, size,
//     mtime and link target (an unchanged rootfs is never imaged twice); each VM boots a sparse
//     copy of it (root.readonly: the cached image itself, attached read-only);
//   - an initramfs holding only strata-init as /init (and /dev/console), cached per strata-init
//     binary;
//   - the guest kernel that guest/kernel/build.sh built (the newest complete one in its cache),
//     or --kernel;
//   - the workload (process.args, env, cwd, user) and the hostname go to strata-init on the
//     kernel command line (src/guest/spec.h); linux.resources.memory.limit sizes the VM.
// Namespaces, capabilities, seccomp, mounts and cgroups of config.json are not applied inside
// the VM: the VM boundary is the isolation.
#ifndef STRATA_SANDBOX_VM_BUNDLE_H
#define STRATA_SANDBOX_VM_BUNDLE_H

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "oci/spec.h"

namespace strata::sandbox {

struct BundleRequest {
  std::string bundle;      // the bundle directory
  std::string kernel;      // empty: the cached guest kernel
  std::string init_exe;    // strata-init
  std::string cache_dir;   // rootfs images and initramfs files
  std::string vm_dir;      // the VM's own directory (its root disk copy goes there)
  std::string extra_args;  // appended to the kernel command line (--cmdline)
};

struct BundleBoot {
  std::string kernel;
  std::string initrd;
  std::string root_image;
  bool root_readonly = false;
  std::string boot_args;
  std::optional<uint64_t> mem_mib;  // from linux.resources.memory.limit
};

// Everything a VM needs to run the bundle; progress (imaging the rootfs) on stderr.
Result<BundleBoot> prepare_bundle(const BundleRequest& req);

// The newest kernel guest/kernel/build.sh finished in ${STRATA_CACHE_DIR:-/var/cache/strata}/kernel
// (vmlinux, booted through its PVH entry).
Result<std::string> find_guest_kernel();

// What strata-init reported ("exit N" or "error E STEP", src/guest/protocol.h), as the exit
// code of `strata vm run`: N; 127 for an exec failure and 125 for the other init errors (as
// podman reports a workload that could not start). nullopt when the line is neither.
struct InitReport {
  int code = 0;
  std::string error_step;  // empty for "exit N"
};
std::optional<InitReport> parse_init_report(std::string_view line);

// The strata.* part of the kernel command line for the bundle's process and hostname
// (strata.root=/dev/vda, strata.rootflags=ro for a read-only root, strata.hostname=,
// strata.cmd=<base64 JSON>). Refuses a config with no process or no args.
Result<std::string> init_cmdline(const oci::Spec& spec);

// A newc cpio archive (the initramfs format) of `entries`, for tests too.
struct CpioEntry {
  std::string name;  // without a leading '/'
  uint32_t mode = 0; // S_IF* | permissions
  std::string data;  // regular files
  uint32_t rdev_major = 0, rdev_minor = 0;
};
std::string make_cpio(const std::vector<CpioEntry>& entries);

}  // namespace strata::sandbox

#endif
