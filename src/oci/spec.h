// The OCI runtime-spec 1.x configuration (config.json) for Linux, as typed values.
// parse_spec() turns untrusted JSON into a Spec with every field checked; a field strata does
// not support is refused by name (STYLE.md section 7). Later code only ever sees a Spec.
// Follows https://github.com/opencontainers/runtime-spec/blob/main/config.md and config-linux.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace strata::oci {

inline constexpr std::string_view kOciVersion = "1.1.0";

struct User {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::optional<uint32_t> umask;
  std::vector<uint32_t> additional_gids;
};

struct Rlimit {
  std::string type;  // "RLIMIT_NOFILE"
  int resource = 0;  // RLIMIT_NOFILE
  uint64_t hard = 0;
  uint64_t soft = 0;
};

// Capability numbers (CAP_SYS_ADMIN = 21, ...) per set.
struct Capabilities {
  std::vector<int> bounding, effective, inheritable, permitted, ambient;
};

struct ConsoleSize {
  uint32_t height = 0;
  uint32_t width = 0;
};

struct Process {
  bool terminal = false;
  std::optional<ConsoleSize> console_size;
  User user;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  std::optional<Capabilities> capabilities;  // absent: no capabilities at all
  std::vector<Rlimit> rlimits;
  bool no_new_privileges = false;
  std::optional<int> oom_score_adj;
  std::string apparmor_profile;  // accepted with a warning: no AppArmor here
  std::string selinux_label;     // accepted with a warning
};

struct Root {
  std::string path;  // as written; resolve against the bundle
  bool readonly = false;
};

struct Mount {
  std::string destination;
  std::string type;
  std::string source;
  std::vector<std::string> options;  // as written
  // Derived from options by parse_spec:
  unsigned long flags = 0;            // MS_RDONLY, MS_NOSUID, MS_BIND, MS_REC, ...
  unsigned long clear_flags = 0;      // flags explicitly cleared (rw, suid, dev, exec, ...)
  unsigned long propagation = 0;      // MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE (| MS_REC)
  std::string data;                   // filesystem-specific options joined with ','
  // Recursive options ("rro", "rnosuid", ...): MOUNT_ATTR_* for mount_setattr(AT_RECURSIVE)
  // after the mount. 0/0 when none were given.
  uint64_t rec_attr_set = 0;
  uint64_t rec_attr_clr = 0;
  // "tmpcopyup" (runc/crun extension, sent by podman for --tmpfs): copy what the image has at
  // the destination into the new tmpfs. Only accepted on tmpfs mounts.
  bool tmpcopyup = false;
  bool is_bind() const;  // type "bind" or a bind/rbind option
};

enum class NamespaceType { kPid, kNetwork, kMount, kIpc, kUts, kUser, kCgroup, kTime };

struct Namespace {
  NamespaceType type;
  std::string path;  // empty: create a new one
};

struct IdMapping {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t size = 0;
};

struct Device {
  char type = 'c';  // 'c', 'b', 'u', 'p'
  std::string path;
  int64_t major = 0;
  int64_t minor = 0;
  std::optional<uint32_t> file_mode;
  std::optional<uint32_t> uid;
  std::optional<uint32_t> gid;
};

struct DeviceRule {
  bool allow = false;
  char type = 'a';               // 'a', 'c', 'b'
  std::optional<int64_t> major;  // absent: any (*)
  std::optional<int64_t> minor;
  std::string access = "rwm";
};

struct MemoryResources {
  std::optional<int64_t> limit;
  std::optional<int64_t> reservation;
  std::optional<int64_t> swap;  // memory+swap, as in cgroup v1 memsw
  std::optional<int64_t> kernel;
  std::optional<uint64_t> swappiness;
  std::optional<bool> disable_oom_killer;
};

struct CpuResources {
  std::optional<uint64_t> shares;
  std::optional<int64_t> quota;
  std::optional<uint64_t> period;
  std::optional<int64_t> realtime_runtime;
  std::optional<uint64_t> realtime_period;
  std::string cpus;
  std::string mems;
  std::optional<int64_t> idle;
};

struct BlockIoResources {
  std::optional<uint16_t> weight;
  std::optional<uint16_t> leaf_weight;
};

struct HugepageLimit {
  std::string page_size;  // "2MB"
  uint64_t limit = 0;
};

struct Resources {
  std::vector<DeviceRule> devices;
  std::optional<MemoryResources> memory;
  std::optional<CpuResources> cpu;
  std::optional<int64_t> pids_limit;
  std::optional<BlockIoResources> block_io;
  std::vector<HugepageLimit> hugepage_limits;
  std::map<std::string, std::string> unified;  // cgroup v2 raw files
};

struct SeccompArg {
  uint32_t index = 0;
  uint64_t value = 0;
  uint64_t value_two = 0;
  std::string op;  // "SCMP_CMP_EQ", ...
};

struct SeccompSyscall {
  std::vector<std::string> names;
  std::string action;  // "SCMP_ACT_ERRNO", ...
  std::optional<uint32_t> errno_ret;
  std::vector<SeccompArg> args;
};

struct Seccomp {
  std::string default_action;
  std::optional<uint32_t> default_errno_ret;
  std::vector<std::string> architectures;  // "SCMP_ARCH_X86_64", ...
  std::vector<std::string> flags;          // "SECCOMP_FILTER_FLAG_LOG", ...
  std::vector<SeccompSyscall> syscalls;
  std::string listener_path;  // refused if set: no seccomp notify agent support yet
};

struct Hook {
  std::string path;
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::optional<int> timeout_s;
};

struct Hooks {
  std::vector<Hook> prestart, create_runtime, create_container, start_container, poststart, poststop;
};

struct Linux {
  std::vector<Namespace> namespaces;
  std::vector<IdMapping> uid_mappings;
  std::vector<IdMapping> gid_mappings;
  std::vector<Device> devices;
  std::optional<Resources> resources;
  std::string cgroups_path;
  std::map<std::string, std::string> sysctl;
  std::optional<Seccomp> seccomp;
  unsigned long rootfs_propagation = 0;  // 0: default (MS_REC|MS_SLAVE)
  std::vector<std::string> masked_paths;
  std::vector<std::string> readonly_paths;
  std::string mount_label;  // accepted with a warning
  std::map<std::string, int64_t> time_offsets;  // "monotonic"/"boottime" -> seconds (secs only)

  bool has_namespace(NamespaceType t) const;
  const Namespace* find_namespace(NamespaceType t) const;
};

struct Spec {
  std::string oci_version;
  std::optional<Process> process;
  Root root;
  std::string hostname;
  std::string domainname;
  std::vector<Mount> mounts;
  Hooks hooks;
  std::map<std::string, std::string> annotations;
  Linux linux;
  // Non-fatal findings of parse_spec (AppArmor/SELinux labels ignored, ...).
  std::vector<std::string> warnings;
};

// Parses and validates config.json text. Errors name the field: "linux.namespaces[2].type:
// unknown namespace type \"foo\"".
Result<Spec> parse_spec(std::string_view json_text);
// Reads <bundle>/config.json and parses it.
Result<Spec> load_spec(const std::string& bundle_dir);
// Validates a process JSON (exec --process).
Result<Process> parse_process(std::string_view json_text);

// The default config.json written by `strata-runtime spec` (runc's template: sh, a terminal, the
// default capabilities, masked and read-only paths). `rootless` adds a user namespace mapping
// the caller's uid/gid and drops what an unprivileged user cannot do.
std::string default_spec_json(bool rootless, uid_t uid, gid_t gid);

std::string_view namespace_name(NamespaceType t);  // "pid", "network", ...
int namespace_clone_flag(NamespaceType t);          // CLONE_NEWPID, ...
std::string_view namespace_proc_name(NamespaceType t);  // "pid", "net", "mnt", ... (/proc/PID/ns/X)

}  // namespace strata::oci
