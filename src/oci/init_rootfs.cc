// The container's mount tree, built in the init child before and after pivot_root.
// Every destination is resolved inside the rootfs with openat2(RESOLVE_IN_ROOT), so a symlink
// in the image cannot send a mount outside it (STYLE.md section 7), and mounted through
// /proc/self/fd/N of the resolved O_PATH fd. Runs between clone() and exec(): no allocation.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "oci/init_internal.h"

namespace strata::oci::init_detail {
namespace {

int sys_openat2(int dirfd, const char* path, int flags, unsigned long long resolve) {
  struct open_how how {};
  how.flags = static_cast<unsigned long long>(flags) | O_CLOEXEC;
  how.resolve = resolve;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

constexpr unsigned long long kInRoot = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

void fd_path(char* buf, size_t size, int fd) {
  buf[0] = '\0';
  buf_append(buf, size, "/proc/self/fd/");
  buf_append_u64(buf, size, static_cast<uint64_t>(fd));
}

// Flags of the mount at `path` that a remount inside a user namespace must keep (the kernel
// refuses to clear locked nosuid/nodev/noexec/atime flags).
unsigned long locked_flags(const char* path) {
  struct statvfs sv {};
  if (::statvfs(path, &sv) != 0) return 0;
  unsigned long keep = ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME | ST_NODIRATIME | ST_RELATIME;
  return sv.f_flag & keep;  // ST_* equal MS_* for these bits
}

void do_mount(const InitPlan& plan, const char* src, const char* target, const char* fstype, unsigned long flags,
              const char* data, const char* shown) {
  if (::mount(src, target, fstype, flags, data) != 0) {
    int e = errno;
    die(plan, "mount", e, fstype != nullptr ? fstype : src, shown);
  }
}

// Remounts a fresh bind mount with its flags; `dest` is the container path for messages.
void remount_bind(const InitPlan& plan, int rootfd, const char* dest, unsigned long flags, unsigned long clear) {
  int fd = open_in_root(rootfd, dest, false, false, plan);
  char p[64];
  fd_path(p, sizeof p, fd);
  unsigned long keep = plan.in_userns ? locked_flags(p) : 0;
  keep &= ~clear;
  do_mount(plan, nullptr, p, nullptr, MS_BIND | MS_REMOUNT | flags | keep, nullptr, dest);
  ::close(fd);
}

void mount_one(const InitPlan& plan, int rootfd, const MountStep& m) {
  const char* dest = m.dest.c_str();
  int fd = open_in_root(rootfd, dest, true, m.kind == MountStep::Kind::kBind && m.source_is_file, plan);
  char p[64];
  fd_path(p, sizeof p, fd);
  switch (m.kind) {
    case MountStep::Kind::kBind: {
      do_mount(plan, m.source.c_str(), p, nullptr, MS_BIND | (m.recursive ? MS_REC : 0), nullptr, dest);
      ::close(fd);
      if (m.flags != 0) remount_bind(plan, rootfd, dest, m.flags, m.clear_flags);
      break;
    }
    case MountStep::Kind::kMount: {
      int r = ::mount(m.source.c_str(), p, m.fstype.c_str(), m.flags, m.data.empty() ? nullptr : m.data.c_str());
      if (r != 0 && errno == EPERM && m.fstype == "sysfs" && plan.in_userns) {
        // Without a new network namespace a user namespace may not mount sysfs: bind the
        // host's read-only instead, as runc does for rootless containers.
        do_mount(plan, "/sys", p, nullptr, MS_BIND | MS_REC, nullptr, dest);
        ::close(fd);
        remount_bind(plan, rootfd, dest, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
        fd = -1;
      } else if (r != 0) {
        die(plan, "mount", errno, m.fstype.c_str(), dest);
      }
      if (fd >= 0) ::close(fd);
      break;
    }
    case MountStep::Kind::kCgroupV2: {
      int r = ::mount("cgroup2", p, "cgroup2", m.flags, nullptr);
      if (r != 0) die(plan, "mount", errno, "cgroup2", dest);
      ::close(fd);
      break;
    }
    case MountStep::Kind::kCgroupV1: {
      // A tmpfs holding one bind per hierarchy of the container's own cgroup directories.
      do_mount(plan, "tmpfs", p, "tmpfs", (m.flags & ~MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755",
               dest);
      ::close(fd);
      for (const auto& [name, host] : m.cgroup_binds) {
        char sub[PATH_MAX] = {};
        buf_append(sub, sizeof sub, dest);
        buf_append(sub, sizeof sub, "/");
        buf_append(sub, sizeof sub, name.c_str());
        int sfd = open_in_root(rootfd, sub, true, false, plan);
        char sp[64];
        fd_path(sp, sizeof sp, sfd);
        do_mount(plan, host.c_str(), sp, nullptr, MS_BIND | MS_REC, nullptr, sub);
        ::close(sfd);
        remount_bind(plan, rootfd, sub, (m.flags & MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
      }
      if (m.flags & MS_RDONLY) remount_bind(plan, rootfd, dest, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, 0);
      break;
    }
  }
  if (m.rec_attr_set != 0 || m.rec_attr_clr != 0) {
    // rro, rnosuid, ...: mount_setattr(2) with AT_RECURSIVE reaches every submount of an rbind,
    // which a MS_REMOUNT cannot.
    int afd = open_in_root(rootfd, dest, false, false, plan);
    struct mount_attr attr {};
    attr.attr_set = m.rec_attr_set;
    attr.attr_clr = m.rec_attr_clr;
    if (::syscall(SYS_mount_setattr, afd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof attr) != 0)
      die(plan, "mount_setattr (recursive options)", errno, dest);
    ::close(afd);
  }
  if (m.propagation != 0) {
    int pfd = open_in_root(rootfd, dest, false, false, plan);
    char pp[64];
    fd_path(pp, sizeof pp, pfd);
    do_mount(plan, nullptr, pp, nullptr, m.propagation, nullptr, dest);
    ::close(pfd);
  }
}

void make_device(const InitPlan& plan, int rootfd, const DeviceStep& d) {
  if (plan.bind_devices) {
    // A user namespace cannot mknod: bind the host's node over an empty file instead.
    int fd = open_in_root(rootfd, d.dest.c_str(), true, true, plan);
    char p[64];
    fd_path(p, sizeof p, fd);
    do_mount(plan, d.dest.c_str(), p, nullptr, MS_BIND, nullptr, d.dest.c_str());
    ::close(fd);
    return;
  }
  // Parent directory, then the node itself.
  const char* slash = ::strrchr(d.dest.c_str(), '/');
  char parent[PATH_MAX] = {};
  size_t plen = static_cast<size_t>(slash - d.dest.c_str());
  if (plen == 0) plen = 1;
  if (plen >= sizeof parent) die(plan, "create device", ENAMETOOLONG, d.dest.c_str());
  ::memcpy(parent, d.dest.c_str(), plen);
  int pfd = open_in_root(rootfd, parent, true, false, plan);
  if (::mknodat(pfd, slash + 1, d.mode, d.dev) != 0) {
    if (errno != EEXIST) die(plan, "mknod", errno, d.dest.c_str());
    ::unlinkat(pfd, slash + 1, 0);
    if (::mknodat(pfd, slash + 1, d.mode, d.dev) != 0) die(plan, "mknod", errno, d.dest.c_str());
  }
  // mknod applies the umask; set the mode the spec asked for.
  if (::fchmodat(pfd, slash + 1, d.mode & 07777, 0) != 0) die(plan, "chmod device", errno, d.dest.c_str());
  if (::fchownat(pfd, slash + 1, d.uid, d.gid, AT_SYMLINK_NOFOLLOW) != 0)
    die(plan, "chown device", errno, d.dest.c_str());
  ::close(pfd);
}

void dev_symlinks(const InitPlan& plan, int rootfd) {
  int devfd = open_in_root(rootfd, "/dev", true, false, plan);
  static const char* const kLinks[][2] = {
      {"/proc/self/fd", "fd"},     {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
      {"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
  };
  for (const auto& l : kLinks) {
    if (::symlinkat(l[0], devfd, l[1]) != 0 && errno != EEXIST) die(plan, "symlink in /dev", errno, l[1]);
  }
  if (plan.in_userns || true) {
    // /dev/ptmx may exist as a node in the image: the container must use its own devpts.
    struct stat st {};
    if (::fstatat(devfd, "ptmx", &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode)) {
      ::unlinkat(devfd, "ptmx", 0);
      if (::symlinkat("pts/ptmx", devfd, "ptmx") != 0) die(plan, "symlink in /dev", errno, "ptmx");
    }
  }
  ::close(devfd);
}

}  // namespace

int open_in_root(int rootfd, const char* path, bool create, bool file, const InitPlan& plan) {
  // Paths are absolute inside the container; openat2 wants them relative to rootfd.
  while (*path == '/') ++path;
  if (*path == '\0') {
    int fd = ::fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) die(plan, "dup rootfs fd", errno);
    return fd;
  }
  int fd = sys_openat2(rootfd, path, O_PATH, kInRoot);
  if (fd >= 0 || errno != ENOENT || !create) {
    if (fd < 0) die(plan, "open in rootfs", errno, path);
    return fd;
  }
  char prefix[PATH_MAX];
  size_t len = ::strnlen(path, PATH_MAX);
  if (len >= PATH_MAX) die(plan, "open in rootfs", ENAMETOOLONG, path);
  size_t start = 0;
  int parent = ::fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
  while (start < len) {
    size_t end = start;
    while (end < len && path[end] != '/') ++end;
    ::memcpy(prefix, path, end);
    prefix[end] = '\0';
    const char* name = prefix + start;
    bool last = end >= len;
    int next = sys_openat2(rootfd, prefix, O_PATH, kInRoot);
    if (next < 0 && errno == ENOENT && name[0] != '\0') {
      int r = (last && file) ? ::openat(parent, name, O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644)
                             : ::mkdirat(parent, name, 0755);
      if (r < 0 && errno != EEXIST) die(plan, last && file ? "create file in rootfs" : "mkdir in rootfs", errno, path);
      if (last && file && r >= 0) ::close(r);
      next = sys_openat2(rootfd, prefix, O_PATH, kInRoot);
    }
    if (next < 0) die(plan, "open in rootfs", errno, path);
    ::close(parent);
    parent = next;
    start = end + 1;
    while (start < len && path[start] == '/') ++start;
  }
  return parent;
}

void setup_rootfs(const InitPlan& plan) {
  // Nothing we mount may propagate back to the host.
  unsigned long prop = plan.rootfs_propagation != 0 ? plan.rootfs_propagation : (MS_SLAVE | MS_REC);
  do_mount(plan, nullptr, "/", nullptr, prop | MS_REC, nullptr, "/ (propagation)");
  // pivot_root needs the new root to be a mount point.
  do_mount(plan, plan.rootfs.c_str(), plan.rootfs.c_str(), nullptr, MS_BIND | MS_REC, nullptr, plan.rootfs.c_str());
  int rootfd = ::open(plan.rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) die(plan, "open rootfs", errno, plan.rootfs.c_str());
  for (const auto& m : plan.mounts) mount_one(plan, rootfd, m);
  if (plan.default_devices) {
    for (const auto& d : plan.devices) make_device(plan, rootfd, d);
    dev_symlinks(plan, rootfd);
  } else {
    for (const auto& d : plan.devices) make_device(plan, rootfd, d);
  }
  ::close(rootfd);
}

void finish_rootfs(const InitPlan& plan) {
  if (plan.no_pivot) {
    if (::chdir(plan.rootfs.c_str()) != 0) die(plan, "chdir to rootfs", errno, plan.rootfs.c_str());
    do_mount(plan, plan.rootfs.c_str(), "/", nullptr, MS_MOVE, nullptr, "/");
    if (::chroot(".") != 0) die(plan, "chroot", errno, plan.rootfs.c_str());
  } else {
    int oldroot = ::open("/", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    int newroot = ::open(plan.rootfs.c_str(), O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    if (oldroot < 0 || newroot < 0) die(plan, "open roots for pivot_root", errno, plan.rootfs.c_str());
    if (::fchdir(newroot) != 0) die(plan, "chdir to rootfs", errno, plan.rootfs.c_str());
    // pivot_root(".", ".") stacks the old root under the new one; detach it right away so the
    // host's tree is unreachable (the trick runc documents in its rootfs code).
    if (::syscall(SYS_pivot_root, ".", ".") != 0) die(plan, "pivot_root", errno, plan.rootfs.c_str());
    if (::fchdir(oldroot) != 0) die(plan, "chdir to old root", errno);
    do_mount(plan, nullptr, ".", nullptr, MS_SLAVE | MS_REC, nullptr, "old root");
    if (::umount2(".", MNT_DETACH) != 0) die(plan, "unmount old root", errno);
    ::close(oldroot);
    ::close(newroot);
  }
  if (::chdir("/") != 0) die(plan, "chdir /", errno);

  // Before the read-only and masked paths below: /proc/sys is usually one of them.
  for (const auto& [path, value] : plan.sysctl) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) die(plan, "open sysctl", errno, path.c_str());
    if (::write(fd, value.data(), value.size()) < 0) die(plan, "write sysctl", errno, path.c_str());
    ::close(fd);
  }
  for (const auto& p : plan.masked_paths) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
      if (errno == ENOENT) continue;
      die(plan, "stat masked path", errno, p.c_str());
    }
    if (S_ISDIR(st.st_mode)) {
      do_mount(plan, "tmpfs", p.c_str(), "tmpfs", MS_RDONLY, nullptr, p.c_str());
    } else {
      do_mount(plan, "/dev/null", p.c_str(), nullptr, MS_BIND, nullptr, p.c_str());
    }
  }
  for (const auto& p : plan.readonly_paths) {
    if (::mount(p.c_str(), p.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      if (errno == ENOENT) continue;
      die(plan, "bind readonly path", errno, p.c_str());
    }
    unsigned long keep = locked_flags(p.c_str());
    do_mount(plan, nullptr, p.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, nullptr, p.c_str());
  }
  if (plan.readonly_root) {
    unsigned long keep = locked_flags("/");
    do_mount(plan, nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | keep, nullptr, "/ (read-only root)");
  }
}

}  // namespace strata::oci::init_detail
