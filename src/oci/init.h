// The container's first process, in two halves (STYLE.md section 6):
//  - build_init_plan() runs in the runtime: it turns a validated Spec into an InitPlan where
//    every path is resolved, every string is a ready C string, every array is built, the
//    seccomp program is compiled and the capability masks are computed;
//  - run_init() runs in the cloned child and only executes that plan with syscalls: no
//    allocation, no exceptions, no logger. A failure is one SyncMsg to the parent, then _exit.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "oci/capabilities.h"
#include "oci/cgroup.h"
#include "oci/seccomp.h"
#include "oci/spec.h"

namespace strata::oci {

struct MountStep {
  enum class Kind { kMount, kBind, kCgroupV1, kCgroupV2 };
  Kind kind = Kind::kMount;
  std::string source;  // host path for binds; fs name otherwise
  std::string dest;    // absolute path inside the container
  std::string fstype;
  std::string data;
  unsigned long flags = 0;        // mount flags without MS_BIND/MS_REC/propagation
  unsigned long clear_flags = 0;  // flags the options cleared explicitly (rw, suid, ...)
  unsigned long propagation = 0;
  bool recursive = false;     // rbind
  uint64_t rec_attr_set = 0;  // MOUNT_ATTR_* applied to the whole subtree (rro, rnosuid, ...)
  uint64_t rec_attr_clr = 0;
  bool source_is_file = false;
  // Cgroup mounts on v1: one bind per hierarchy, "memory" -> host dir of the container cgroup.
  std::vector<std::pair<std::string, std::string>> cgroup_binds;
};

struct DeviceStep {
  std::string dest;  // "/dev/null"
  mode_t mode = 0;   // S_IFCHR | 0666
  dev_t dev = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct HookPlan {
  std::string path;
  std::vector<std::string> args, env;
  std::vector<char*> argv, envp;
  int timeout_s = 0;  // 0: none
};

struct InitPlan {
  // Namespaces.
  int clone_flags = 0;       // new namespaces created by clone3 (never CLONE_NEWCGROUP: see init.cc)
  int unshare_flags = 0;     // new namespaces the child unshares after kGo
  bool second_fork = false;  // a pid/time namespace had to be unshared by the child
  std::string time_offsets;  // /proc/self/timens_offsets content, written after the unshare
  std::vector<std::pair<int, int>> join;  // (fd, CLONE_NEW*) entered with setns by the child
  bool new_userns = false;
  // New user namespace plus namespaces joined by path (podman's netns with --uidmap): the
  // child joins first, as root of the host, then unshares the user namespace and the rest.
  bool late_userns = false;
  // The parent moves the init into its cgroup while the init mounts its rootfs: on cgroup v1
  // the first cgroup.procs write of a while waits for an RCU grace period (often 5-15 ms),
  // which this hides. Not when the init forks early (second_fork) or mounts a cgroup2 fs in a
  // cgroup namespace, both of which need the cgroup first.
  bool overlap_cgroup_join = false;
  bool defer_cgroupns = false;  // unshare CLONE_NEWCGROUP only after kHooksDone (joined by then)
  bool in_userns = false;       // new or joined user namespace

  // Root filesystem.
  bool new_mountns = false;
  std::string rootfs;  // absolute host path
  unsigned long rootfs_propagation = 0;
  bool no_pivot = false;
  bool readonly_root = false;
  std::vector<MountStep> mounts;
  bool default_devices = false;  // /dev is not bound from the host
  bool bind_devices = false;     // in a user namespace: bind host device nodes instead of mknod
  std::vector<DeviceStep> devices;
  std::vector<std::string> masked_paths, readonly_paths;
  std::string hostname, domainname;
  bool set_hostname = false, set_domainname = false;
  std::vector<std::pair<std::string, std::string>> sysctl;  // /proc/sys path, value

  // Process.
  std::vector<std::string> args, env;
  std::vector<char*> argv, envp;
  std::string path_env;  // PATH used to find args[0]
  std::string cwd = "/";
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> additional_gids;
  bool setgroups_allowed = true;
  std::optional<mode_t> umask;
  std::vector<Rlimit> rlimits;
  CapsPlan caps;
  bool no_new_privs = false;
  SeccompProgram seccomp;
  bool terminal = false;
  int console_fd = -1;  // connected --console-socket
  // An exec'd process without a terminal leads a session of its own: the caller's controlling
  // terminal (TIOCSTI, job control signals) stays out of its reach.
  bool new_session = false;
  unsigned short console_rows = 0, console_cols = 0;
  int preserve_fds = 0;
  std::vector<HookPlan> create_container_hooks;  // run by the child, before pivot_root
  std::vector<HookPlan> start_container_hooks;   // run by the child after `start`, before exec

  // Plumbing.
  std::vector<int> close_fds;  // the runtime's own fds (state lock, its socket end): closed first
  int sync_fd = -1;
  int fifo_fd = -1;  // exec.fifo opened O_RDWR: read blocks until `start` writes a byte
  // The exec stub (exe_guard.h, exec_stub.c) the program is executed through; -1: directly.
  // stub_argv is {stub_fds, <the resolved path, set by the child>, argv...} (finalize_plan).
  int exec_stub_fd = -1;
  std::string stub_fds;  // "SYNC,FIFO": the fds the stub closes as it execs ("-" for none)
  std::vector<char*> stub_argv;
};

struct InitOptions {
  std::string bundle;
  CgroupVersion cgroup_version = CgroupVersion::kV1;
  std::map<std::string, std::string> cgroup_paths;  // from the cgroup manager
  bool no_pivot = false;
  int preserve_fds = 0;
  int console_fd = -1;
  std::string seccomp_cache_dir;  // compiled seccomp programs (empty: compile every time)
};

Result<InitPlan> build_init_plan(const Spec& spec, const InitOptions& opts);
// The process half of a plan (args, env, user, rlimits, capabilities, seccomp, terminal), shared
// by the container's init and by `exec`.
Status plan_process(const Process& proc, const std::optional<Seccomp>& seccomp, InitPlan& plan,
                    const std::string& seccomp_cache_dir = {});
// argv/envp are left to finalize_plan.
HookPlan make_hook_plan(const Hook& h);
// Fills argv/envp pointer arrays from args/env; call after the plan stops moving.
void finalize_plan(InitPlan& plan);

// The child side. Never returns: execs the user's program or _exit()s after a kFailure.
[[noreturn]] void run_init(InitPlan& plan);

// Exec into a running container: the child enters the namespaces of `target_pidfd`, then
// executes `plan`'s process part. Shared with run_init's final steps.
[[noreturn]] void run_exec_child(InitPlan& plan, int target_pidfd, int setns_flags);

}  // namespace strata::oci
