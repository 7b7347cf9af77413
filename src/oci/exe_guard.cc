#include "oci/exe_guard.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "base/fd.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif

namespace strata::oci {

// exec_stub_blob.cc, generated from exec_stub.c at build time.
extern const unsigned char kExecStub[];
extern const unsigned long kExecStub_size;

namespace {

constexpr int kSeals = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

bool same_file(int a, int b) {
  struct stat sa {
  }, sb{};
  return ::fstat(a, &sa) == 0 && ::fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

int new_memfd(const char* name) {
  int fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
  if (fd < 0 && errno == EINVAL) fd = ::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);  // before 6.3
  return fd;
}

// F_SEAL_WRITE fails with EBUSY while the kernel still holds a transient write reference to a
// page just written (seen about once in 200 runs right after sendfile): retry briefly.
bool seal(int fd) {
  for (int attempt = 0; attempt < 50; ++attempt) {
    if (::fcntl(fd, F_ADD_SEALS, kSeals) == 0) return true;
    if (errno != EBUSY) return false;
    ::usleep(200);
  }
  return false;
}

int make_stub_fd() {
  UniqueFd fd(new_memfd("strata-exec-stub"));
  if (!fd) return -1;
  for (unsigned long done = 0; done < kExecStub_size;) {
    ssize_t n = ::write(fd.get(), kExecStub + done, kExecStub_size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    done += static_cast<unsigned long>(n);
  }
  if (!seal(fd.get())) return -1;
  return fd.release();
}

// The running binary through a new detached read-only bind mount of its directory; -1 if that
// cannot be had (no CAP_SYS_ADMIN, the binary replaced since it started, ...).
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

Result<int> sealed_memfd_copy(int exe) {
  UniqueFd mfd(new_memfd("strata-self"));
  if (!mfd) return Error::sys("memfd_create");
  struct stat st {};
  if (::fstat(exe, &st) != 0) return Error::sys("stat /proc/self/exe");
  for (off_t done = 0; done < st.st_size;) {
    ssize_t k = ::sendfile(mfd.get(), exe, nullptr, static_cast<size_t>(st.st_size - done));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return Error::sys("copy /proc/self/exe to a memfd");
    if (k == 0) return Error("copy /proc/self/exe to a memfd: short copy");
    done += k;
  }
  if (!seal(mfd.get())) return Error::sys("seal the memfd copy");
  return mfd.release();
}

bool has_ptrace(const Capabilities& c) {
  for (const auto* set : {&c.bounding, &c.effective, &c.permitted, &c.inheritable, &c.ambient})
    if (std::find(set->begin(), set->end(), CAP_SYS_PTRACE) != set->end()) return true;
  return false;
}

}  // namespace

int exec_stub_fd() {
  static const int fd = make_stub_fd();
  return fd;
}

bool self_is_unwritable() {
  UniqueFd exe(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (!exe) return false;
  struct statvfs sv {};
  int seals = ::fcntl(exe.get(), F_GET_SEALS);
  return (seals >= 0 && (seals & kSeals) == kSeals) ||
         (::fstatvfs(exe.get(), &sv) == 0 && (sv.f_flag & ST_RDONLY) != 0) ||
         (::geteuid() != 0 && ::faccessat(exe.get(), "", W_OK, AT_EMPTY_PATH | AT_EACCESS) != 0);
}

bool reaches_runtime_exe(const Spec& spec, const std::optional<Capabilities>& caps) {
  return !spec.linux.has_namespace(NamespaceType::kUser) && caps && has_ptrace(*caps);
}

bool must_run_unwritable(bool reaches) { return (reaches || exec_stub_fd() < 0) && !self_is_unwritable(); }

Error reexec_unwritable(char** argv) {
  UniqueFd exe(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
  if (!exe) return Error::sys("open /proc/self/exe");
  int fd = open_through_readonly_mount(exe.get());
  if (fd < 0) {
    auto copy = sealed_memfd_copy(exe.get());
    if (!copy) return std::move(copy).error();
    fd = *copy;
  }
  ::fexecve(fd, argv, environ);
  Error e = Error::sys("re-execute from an unwritable copy of this program");
  ::close(fd);
  return e;
}

}  // namespace strata::oci
