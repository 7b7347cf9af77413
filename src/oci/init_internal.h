// Pieces of the container init shared between init.cc (namespaces, process) and
// init_rootfs.cc (mounts, devices, pivot_root). Everything here runs between clone() and
// exec(): syscalls only, fixed buffers, no allocation.
#pragma once

#include "oci/init.h"
#include "oci/sync.h"

namespace strata::oci::init_detail {

// Reports a failure to the parent (and to stderr once the parent may be gone) and _exit()s.
[[noreturn]] void die(const InitPlan& plan, const char* step, int err, const char* d1 = nullptr,
                      const char* d2 = nullptr);

// Makes the container's mount tree under plan.rootfs (before pivot_root).
void setup_rootfs(const InitPlan& plan);
// pivot_root (or MS_MOVE+chroot), sysctl, then masked/readonly paths and the read-only root.
void finish_rootfs(const InitPlan& plan);
// Opens `path` (absolute, inside the container) relative to rootfd without leaving it,
// creating missing directories (and the last component as a file when `file`).
int open_in_root(int rootfd, const char* path, bool create, bool file, const InitPlan& plan);

}  // namespace strata::oci::init_detail
