// What the two cgroup backends share, and the seams the unit tests use: the file and syscall
// operations behind an interface (STYLE.md section 3), cgroupsPath resolution, the parsers of
// /proc/self/cgroup and /proc/self/mountinfo, and the cgroup v2 device filter generator.
// Not part of the public interface: only src/oci/cgroup*.cc and tests include it.
#pragma once

#include <linux/bpf.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "oci/cgroup.h"
#include "oci/spec.h"

namespace strata::oci::cgroup_internal {

// Every filesystem access and syscall of the backends goes through here. The host
// implementation works on real paths (so a tmpdir with fake controller files works too); tests
// subclass it to record writes or to stand in for what a tmpdir cannot do (BPF, signals).
class CgroupOps {
 public:
  virtual ~CgroupOps() = default;
  // Writes to an existing file (cgroupfs files are made by the kernel: no O_CREAT). The error
  // reads: write "104857600" to /sys/fs/cgroup/memory/x/memory.limit_in_bytes: EINVAL (...).
  virtual Status write(const std::string& path, std::string_view data);
  virtual Result<std::string> read(const std::string& path);
  virtual bool exists(const std::string& path);
  virtual Status mkdir_p(const std::string& path);
  // One rmdir(2); the error keeps errno (EBUSY, ENOENT, ...) for the caller's retry logic.
  virtual Status rmdir(const std::string& path);
  // Names of the subdirectories of path (child cgroups); empty when path is missing.
  virtual std::vector<std::string> subdirs(const std::string& path);
  virtual Status kill(pid_t pid, int sig);
  // Loads prog as a BPF_PROG_TYPE_CGROUP_DEVICE program and attaches it to the cgroup dir,
  // replacing the programs this runtime attached there before (cgroup_v2_devices.cc).
  virtual Status attach_device_program(const std::string& dir, const std::vector<bpf_insn>& prog);
  virtual void sleep(std::chrono::milliseconds d);
};

std::shared_ptr<CgroupOps> host_cgroup_ops();

// The controllers (v1 hierarchies) a container joins; "name=systemd" is the named hierarchy
// that systemd-era tools expect every process to have a place in.
const std::vector<std::string>& v1_controllers();

// linux.cgroupsPath -> the container's cgroup path relative to a hierarchy root ("/a/b").
// own: the runtime's own cgroup in that hierarchy, used for relative paths (runc does so).
// Refuses "..", the systemd "slice:prefix:name" form and the root cgroup itself.
Result<std::string> resolve_cgroup_path(std::string_view cgroups_path, std::string_view id,
                                        std::string_view own);

// /proc/self/cgroup -> hierarchy key -> path. Every controller of a combined hierarchy gets its
// own key ("cpu,cpuacct" -> "cpu" and "cpuacct"); named ones keep "name=systemd"; the cgroup2
// line "0::/x" gets the key "".
std::map<std::string, std::string> parse_proc_cgroup(std::string_view text);

struct V1Mount {
  std::string mount_point;  // /sys/fs/cgroup/memory
  std::string root = "/";   // the subtree of the hierarchy mounted there (field 4 of mountinfo)
};
// v1 hierarchies mounted below `under` (a directory), by controller, from mountinfo text.
std::map<std::string, V1Mount> parse_v1_mounts(std::string_view mountinfo, std::string_view under);

// The directory of the container's cgroup in one hierarchy: absolute paths go under the mount
// point; relative ones under the runtime's own cgroup there (own is a hierarchy path, so the
// mount's root is stripped from it first).
Result<std::string> hierarchy_dir(const V1Mount& m, std::string_view cgroups_path, std::string_view id,
                                  std::string_view own);

// The backends. Managers take the directory of the container's cgroup per hierarchy (v1:
// controller -> dir) or the one dir (v2) plus, for v2, the hierarchy root (subtree_control is
// written from there down).
std::unique_ptr<CgroupManager> make_v1_manager(std::map<std::string, std::string> dirs, bool rootless,
                                               bool skipped, std::shared_ptr<CgroupOps> ops);
std::unique_ptr<CgroupManager> make_v2_manager(std::string root, std::string dir, bool rootless, bool skipped,
                                               std::shared_ptr<CgroupOps> ops);

// make_cgroup_manager with the operations injected (tests).
Result<std::unique_ptr<CgroupManager>> make_cgroup_manager(const CgroupConfig& cfg,
                                                           std::shared_ptr<CgroupOps> ops);

// Conversions from the runtime-spec's (cgroup v1) units to cgroup v2 ones, as runc and crun do.
uint64_t cpu_shares_to_weight(uint64_t shares);  // [2, 262144] -> [1, 10000]
uint64_t blkio_weight_to_io_weight(uint64_t w);  // [10, 1000] -> [1, 10000]
// memory.swap.max from the spec's memory+swap limit (v2 limits swap alone): swap - limit, "max"
// for unlimited, nullopt when nothing is to be written. Errors name the fields.
Result<std::optional<std::string>> swap_to_v2(const MemoryResources& m);

// True when res asks for nothing (a rootless manager that was skipped warns otherwise).
bool resources_empty(const Resources& res);

// One write of a resource plan; plans are built (and validated) whole before the first write, so
// a bad value changes nothing.
struct CgroupWrite {
  std::string path;
  std::string value;
  bool operator==(const CgroupWrite&) const = default;
};

// The access letters of a device rule as BPF_DEVCG_ACC_* bits; "" means "rwm". Validates the
// rule's type and numbers too: errors name the rule.
Result<unsigned> device_rule_access(const DeviceRule& r);

// v1 device cgroup lines ("c 1:3 rwm") for a rule; "*" for an absent (or negative) major/minor.
// A rule of type 'a' that is not about every device and every access becomes one line per
// device type, since the kernel reads a leading 'a' as "everything, rwm".
Result<std::vector<std::string>> v1_device_lines(const DeviceRule& r);

// "2MB", "1GB", "64KB": the <size> in hugetlb.<size>.limit_in_bytes and hugetlb.<size>.max.
bool valid_hugepage_size(std::string_view s);

// The BPF_PROG_TYPE_CGROUP_DEVICE program enforcing rules: for each requested access bit, the
// last rule that matches the device and names that bit decides; no matching rule denies.
Result<std::vector<bpf_insn>> device_filter_program(const std::vector<DeviceRule>& rules);

// Polls until done() or the deadline; returns whether done() became true.
bool poll_until(CgroupOps& ops, std::chrono::milliseconds timeout, const std::function<bool()>& done);

// Removes dir and, first, every cgroup below it; rmdir retried on EBUSY (exiting processes)
// for up to timeout. A missing dir is fine.
Status remove_cgroup_dir(CgroupOps& ops, const std::string& dir, std::chrono::milliseconds timeout);

// Pids listed in <dir>/cgroup.procs and in every cgroup below it.
Result<std::vector<pid_t>> read_pids_recursive(CgroupOps& ops, const std::string& dir);
// Sends sig to each pid; a pid already gone (ESRCH) is fine. The first other error (or the
// error listing the pids) is returned, after trying every pid.
Status signal_all(CgroupOps& ops, Result<std::vector<pid_t>> pids, int sig);

// A number from a cgroup file ("max" -> UINT64_MAX); 0 when the file is absent.
Result<uint64_t> read_u64_or_zero(CgroupOps& ops, const std::string& path);

// Logs "<what> ignored: <why>" on the "oci" logger (warn).
void warn(const std::string& msg);

}  // namespace strata::oci::cgroup_internal
