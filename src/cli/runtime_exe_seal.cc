// CVE-2019-5736: a process in a container that gets hold of the runtime's binary, through
// /proc/<pid>/exe of an init that has not exec'd yet or with an entrypoint "#!/proc/self/exe"
// (the kernel then runs the runtime itself inside the container), could reopen it for writing
// once the runtime has exited and replace the host's strata-runtime. So the commands that start
// container processes re-exec first from a copy whose /proc/self/exe cannot be written:
//  - as root, the binary itself through a detached read-only bind mount of its directory
//    (open_tree + mount_setattr): no copy, a few microseconds; the mount is in no namespace and
//    goes away with the last process that executes it (runc 1.2's exeseal does the same with
//    an overlayfs);
//  - otherwise a sealed memfd copy (runc 1.1 and crun), unless the caller cannot write the
//    binary anyway (an unprivileged user and a root-owned binary: nothing to protect).
#include "cli/runtime_exe_seal.h"

#include "cli/runtime_commands.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

namespace strata::cli {
namespace {

constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

bool same_file(int a, int b) {
  struct stat sa {
  }, sb{};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// The running binary opened through a new detached read-only bind mount of its directory; -1 if
// that cannot be had (no CAP_SYS_ADMIN, binary replaced since it started, ...).
int open_through_readonly_mount(int exe) {
  char path[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return -1;
  path[n] = '\0';
  char* slash = ::strrchr(path, '/');
  if (path[0] != '/' || slash == nullptr) return -1;
  *slash = '\0';
  int tree = static_cast<int>(
      ::syscall(SYS_open_tree, AT_FDCWD, path[0] != '\0' ? path : "/", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC));
  if (tree < 0) return -1;
  struct mount_attr attr {};
  attr.attr_set = MOUNT_ATTR_RDONLY;
  int fd = -1;
  if (::syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) == 0) {
    fd = ::openat(tree, slash + 1, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  }
  ::close(tree);
  if (fd >= 0 && !same_file(fd, exe)) {
    ::close(fd);
    fd = -1;
  }
  return fd;
}

int sealed_memfd_copy(int exe, std::string* err) {
  int mfd = ::memfd_create("strata-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (mfd < 0 && errno == EINVAL) mfd = ::memfd_create("strata-runtime", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (mfd < 0) {
    *err = errno_text("memfd_create");
    return -1;
  }
  struct stat st {};
  if (::fstat(exe, &st) != 0) {
    *err = errno_text("stat /proc/self/exe");
    ::close(mfd);
    return -1;
  }
  for (off_t done = 0; done < st.st_size;) {
    ssize_t k = ::sendfile(mfd, exe, nullptr, static_cast<size_t>(st.st_size - done));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      *err =
          k < 0 ? errno_text("copy /proc/self/exe to a memfd") : "copy /proc/self/exe to a memfd: short copy";
      ::close(mfd);
      return -1;
    }
    done += k;
  }
  // F_SEAL_WRITE fails with EBUSY while the kernel still holds a transient write reference
  // to a page of the copy (seen about once in 200 runs right after sendfile): retry briefly.
  int sealed = -1;
  for (int attempt = 0; attempt < 50; ++attempt) {
    sealed = ::fcntl(mfd, F_ADD_SEALS, kSeals);
    if (sealed == 0 || errno != EBUSY) break;
    ::usleep(200);
  }
  if (sealed != 0) {
    *err = errno_text("seal the memfd copy");
    ::close(mfd);
    return -1;
  }
  return mfd;
}

}  // namespace

bool starts_container_processes(const std::vector<std::string>& args) {
  size_t i = subcommand_index(args);
  return i < args.size() && (args[i] == "create" || args[i] == "run" || args[i] == "exec");
}

std::string ensure_unwritable_self(char** argv) {
  int exe = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (exe < 0) return errno_text("open /proc/self/exe");
  struct statvfs sv {};
  int seals = ::fcntl(exe, F_GET_SEALS);
  bool done = (seals >= 0 && (seals & kSeals) == kSeals) ||
              (::fstatvfs(exe, &sv) == 0 && (sv.f_flag & ST_RDONLY) != 0) ||
              (::geteuid() != 0 && ::faccessat(exe, "", W_OK, AT_EMPTY_PATH | AT_EACCESS) != 0);
  if (done) {
    ::close(exe);
    return "";
  }
  int fd = open_through_readonly_mount(exe);
  std::string err;
  if (fd < 0) fd = sealed_memfd_copy(exe, &err);
  ::close(exe);
  if (fd < 0) return err;
  ::fexecve(fd, argv, environ);
  return errno_text("re-exec strata-runtime from its unwritable copy");
}

}  // namespace strata::cli
