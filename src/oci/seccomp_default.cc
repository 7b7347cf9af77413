// The default seccomp profile of `strata run`: a data table, kept apart from the compiler in
// seccomp.cc. Like the Docker/podman defaults it refuses with EPERM everything not listed, and
// lists what ordinary programs (shells, language runtimes, servers, package managers) need.
// Left out on purpose, so they fail with EPERM: mount/umount/pivot_root, unshare/setns and
// namespace flags to clone, kernel modules, kexec, reboot, swap, clock setting, quotactl,
// keyrings, bpf, perf_event_open, userfaultfd, io_uring, open_by_handle_at, fanotify, acct,
// syslog, and the NUMA policy setters. Syscall names libseccomp does not know are skipped at
// compile time, so listing newer ones is harmless.
#include <sched.h>

#include <cerrno>
#include <initializer_list>

#include "oci/seccomp.h"

namespace strata::oci {

namespace {

// Grouped by purpose, several names per line.
// clang-format off
constexpr const char* kAllowed[] = {
    // Files: I/O.
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "lseek", "_llseek", "open", "openat", "openat2", "creat", "close", "close_range",
    "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "fcntl64", "ioctl", "flock", "fsync",
    "fdatasync", "sync", "syncfs", "sync_file_range", "truncate", "truncate64", "ftruncate",
    "ftruncate64", "fallocate", "fadvise64", "fadvise64_64", "readahead", "sendfile", "sendfile64",
    "splice", "tee", "vmsplice", "copy_file_range", "cachestat",
    // Files: names and metadata.
    "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "newfstatat", "fstatat64", "statx",
    "statfs", "statfs64", "fstatfs", "fstatfs64", "access", "faccessat", "faccessat2", "readlink",
    "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "mkdir", "mkdirat",
    "rmdir", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "unlink",
    "unlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "chown32", "fchown",
    "fchown32", "fchownat", "lchown", "lchown32", "umask", "utime", "utimes", "utimensat",
    "utimensat_time64", "futimesat", "mknod", "mknodat", "chroot", "getxattr", "lgetxattr",
    "fgetxattr", "setxattr", "lsetxattr", "fsetxattr", "listxattr", "llistxattr", "flistxattr",
    "removexattr", "lremovexattr", "fremovexattr", "inotify_init", "inotify_init1",
    "inotify_add_watch", "inotify_rm_watch",
    // Waiting for events.
    "select", "_newselect", "pselect6", "pselect6_time64", "poll", "ppoll", "ppoll_time64",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait", "epoll_wait_old",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "timerfd_create",
    "timerfd_settime", "timerfd_settime64", "timerfd_gettime", "timerfd_gettime64", "io_setup",
    "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents", "io_pgetevents_time64",
    // Memory.
    "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mlock", "mlock2", "munlock",
    "mlockall", "munlockall", "mincore", "msync", "membarrier", "memfd_create", "remap_file_pages",
    "get_mempolicy", "pkey_alloc", "pkey_free", "pkey_mprotect", "mseal", "map_shadow_stack",
    // Processes and threads (clone is conditional, below).
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "waitpid",
    "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "getpid", "getppid", "gettid",
    "getpgid", "setpgid", "getpgrp", "getsid", "setsid", "getpriority", "setpriority",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam", "sched_setparam",
    "sched_getscheduler", "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_getattr", "sched_setattr",
    "prctl", "set_tid_address", "set_robust_list", "get_robust_list", "futex", "futex_time64",
    "futex_waitv", "rseq", "restart_syscall", "capget", "capset", "getrlimit", "ugetrlimit",
    "setrlimit", "prlimit64", "getrusage", "times", "uname", "sysinfo", "getrandom", "getcpu",
    "ioprio_get", "ioprio_set",
    // Debuggers and profilers inside the container: since 4.8 a tracer can no longer use ptrace
    // to slip past seccomp, and without CAP_SYS_PTRACE it reaches only processes of its own user.
    "ptrace", "process_vm_readv", "process_vm_writev",
    // Sandboxing of its own by the workload (browsers, systemd services).
    "seccomp", "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self",
    // Credentials: the default capabilities include CAP_SETUID/CAP_SETGID.
    "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid", "getegid32",
    "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups", "getgroups32", "setuid",
    "setuid32", "setgid", "setgid32", "setreuid", "setreuid32", "setregid", "setregid32",
    "setresuid", "setresuid32", "setresgid", "setresgid32", "setgroups", "setgroups32", "setfsuid",
    "setfsuid32", "setfsgid", "setfsgid32",
    // Signals.
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_sigqueueinfo", "rt_tgsigqueueinfo",
    "sigaction", "sigprocmask", "sigreturn", "sigpending", "sigsuspend", "signal", "sigaltstack",
    "pause", "alarm",
    // Time (reading it; setting the clock stays refused).
    "clock_gettime", "clock_gettime64", "clock_getres", "clock_getres_time64", "clock_nanosleep",
    "clock_nanosleep_time64", "nanosleep", "gettimeofday", "time", "getitimer", "setitimer",
    "timer_create", "timer_delete", "timer_settime", "timer_settime64", "timer_gettime",
    "timer_gettime64", "timer_getoverrun",
    // Sockets.
    "socket", "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname",
    "getpeername", "getsockopt", "setsockopt", "sendto", "recvfrom", "send", "recv", "sendmsg",
    "recvmsg", "sendmmsg", "recvmmsg", "recvmmsg_time64", "shutdown", "socketcall",
    // System V and POSIX IPC (within the container's IPC namespace).
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semtimedop_time64",
    "semctl", "msgget", "msgsnd", "msgrcv", "msgctl", "ipc", "mq_open", "mq_unlink", "mq_timedsend",
    "mq_timedsend_time64", "mq_timedreceive", "mq_timedreceive_time64", "mq_notify",
    "mq_getsetattr",
};
// clang-format on

#if defined(__x86_64__) || defined(__i386__)
constexpr const char* kArchitectures[] = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
// TLS setup of x86 programs (64-bit and 32-bit).
constexpr const char* kArchAllowed[] = {"arch_prctl", "set_thread_area", "get_thread_area"};
#elif defined(__aarch64__) || defined(__arm__)
constexpr const char* kArchitectures[] = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
// 32-bit ARM's private calls (TLS, cache flush for JITs) and its argument-order variants.
constexpr const char* kArchAllowed[] = {"set_tls",          "cacheflush",          "breakpoint",
                                        "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2"};
#else
// Elsewhere only the native architecture, which libseccomp always includes.
constexpr const char* kArchitectures[] = {""};
constexpr const char* kArchAllowed[] = {""};
#endif

// personality(2) values allowed: Linux, 32-bit Linux (setarch linux32), UNAME26 (old software
// that parses the kernel version), both, and the 0xffffffff query. Others (READ_IMPLIES_EXEC,
// ADDR_NO_RANDOMIZE) weaken the process's protections.
constexpr uint64_t kPersonalities[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};

// clone(2) flags that make namespaces: refused like unshare/setns. The flags are the first
// argument on x86 and arm (not on s390, which this profile does not list).
constexpr uint64_t kNamespaceCloneFlags =
    CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;

SeccompSyscall allow(std::vector<std::string> names) {
  SeccompSyscall sc;
  sc.names = std::move(names);
  sc.action = "SCMP_ACT_ALLOW";
  return sc;
}

template <size_t N>
std::vector<std::string> names_of(const char* const (&table)[N]) {
  std::vector<std::string> out;
  for (const char* name : table) {
    if (name[0] != '\0') out.emplace_back(name);
  }
  return out;
}

}  // namespace

Seccomp default_seccomp_profile() {
  Seccomp profile;
  profile.default_action = "SCMP_ACT_ERRNO";
  profile.default_errno_ret = EPERM;
  profile.architectures = names_of(kArchitectures);

  profile.syscalls.push_back(allow(names_of(kAllowed)));
  if (auto arch = names_of(kArchAllowed); !arch.empty()) profile.syscalls.push_back(allow(std::move(arch)));

  // One entry per value: comparisons within an entry are ANDed.
  for (uint64_t persona : kPersonalities) {
    SeccompSyscall sc = allow({"personality"});
    sc.args.push_back(SeccompArg{0, persona, 0, "SCMP_CMP_EQ"});
    profile.syscalls.push_back(std::move(sc));
  }

  SeccompSyscall clone = allow({"clone"});
  clone.args.push_back(SeccompArg{0, kNamespaceCloneFlags, 0, "SCMP_CMP_MASKED_EQ"});
  profile.syscalls.push_back(std::move(clone));

  // clone3 passes its flags in memory, out of seccomp's reach. ENOSYS rather than EPERM makes
  // glibc and other runtimes fall back to clone, whose flags the rule above checks.
  SeccompSyscall clone3;
  clone3.names = {"clone3"};
  clone3.action = "SCMP_ACT_ERRNO";
  clone3.errno_ret = ENOSYS;
  profile.syscalls.push_back(std::move(clone3));
  return profile;
}

}  // namespace strata::oci
