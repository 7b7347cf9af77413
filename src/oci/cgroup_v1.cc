// The cgroup v1 backend: the container has one directory in each mounted controller hierarchy
// (cpu, cpuacct, cpuset, memory, devices, freezer, blkio, pids, hugetlb, name=systemd) and
// resources are the per-controller files. Follows the kernel's
// Documentation/admin-guide/cgroup-v1/: cgroups.rst (sections 1.4, 2), cpusets.rst (1.7, 2.1),
// memory.rst (2.7, 5), freezer-subsystem.rst, devices.rst (2), pids.rst, blkio-controller.rst,
// hugetlb.rst; and runtime-spec config-linux.md "Control groups", with runc's v1 behaviour where
// the spec leaves room (0 means "not set" for memory, cpu and blkio numbers).
#include <signal.h>

#include <algorithm>

#include "base/fs.h"
#include "base/strings.h"
#include "oci/cgroup_internal.h"

namespace strata::oci::cgroup_internal {
namespace {

using namespace std::chrono_literals;

constexpr auto kFreezeTimeout = 1000ms;
constexpr auto kRemoveTimeout = 1000ms;

bool is_permission_error(int err) { return err == EACCES || err == EPERM || err == EROFS; }

// Spec numbers where 0 is runc's "not set": writing 0 to a limit would be destructive.
template <class T>
std::optional<T> nonzero(const std::optional<T>& v) {
  return v && *v != 0 ? v : std::nullopt;
}

class V1Manager final : public CgroupManager {
 public:
  V1Manager(std::map<std::string, std::string> dirs, bool rootless, bool skipped,
            std::shared_ptr<CgroupOps> ops)
      : dirs_(std::move(dirs)), rootless_(rootless), skipped_(skipped), ops_(std::move(ops)) {}

  // CgroupManager
  CgroupVersion version() const override { return CgroupVersion::kV1; }
  Status create() override;
  Status apply(const Resources& res) override;
  Status add_process(pid_t pid) override;
  Status freeze() override { return skipped_ ? ok() : set_freezer("FROZEN"); }
  Status thaw() override { return skipped_ ? ok() : set_freezer("THAWED"); }
  Result<bool> frozen() override;
  Result<std::vector<pid_t>> pids() override;
  Status kill_all(int sig) override;
  Status destroy() override;
  Result<CgroupStats> stats() override;
  std::map<std::string, std::string> paths() const override { return dirs_; }
  bool skipped() const override { return skipped_; }

 private:
  // The container's directory in a controller's hierarchy, or an error saying that `what` needs
  // a controller that is not mounted.
  Result<std::string> dir_for(const std::string& controller, std::string_view what) const;
  // Directories without repeats (co-mounted controllers such as cpu,cpuacct share one).
  std::vector<std::string> unique_dirs() const;
  Status ensure_cpuset(const std::string& dir, int depth = 0);
  Status set_freezer(const std::string& state);

  Result<std::vector<CgroupWrite>> plan(const Resources& res);
  Status plan_memory(const MemoryResources& m, std::vector<CgroupWrite>& out);
  Status plan_cpu(const CpuResources& c, std::vector<CgroupWrite>& out);
  Status plan_devices(const std::vector<DeviceRule>& rules, std::vector<CgroupWrite>& out);
  Status plan_blkio(const BlockIoResources& b, std::vector<CgroupWrite>& out);

  std::map<std::string, std::string> dirs_;
  bool rootless_;
  bool skipped_;
  std::shared_ptr<CgroupOps> ops_;
};

Result<std::string> V1Manager::dir_for(const std::string& controller, std::string_view what) const {
  auto it = dirs_.find(controller);
  if (it == dirs_.end()) {
    return Error(std::string(what) + ": the cgroup v1 " + controller + " controller is not mounted");
  }
  return it->second;
}

std::vector<std::string> V1Manager::unique_dirs() const {
  std::vector<std::string> out;
  for (const auto& [c, d] : dirs_) {
    if (std::find(out.begin(), out.end(), d) == out.end()) out.push_back(d);
  }
  return out;
}

Status V1Manager::create() {
  if (skipped_) return ok();
  std::vector<std::string> made;
  auto undo = [&] {
    for (auto it = made.rbegin(); it != made.rend(); ++it) (void)ops_->rmdir(*it);
  };
  for (const auto& dir : unique_dirs()) {
    bool existed = ops_->exists(dir);
    Status st = ops_->mkdir_p(dir);
    if (!st.ok()) {
      undo();
      if (rootless_ && is_permission_error(st.error().err())) {
        // An unprivileged user without a delegated hierarchy: run without a cgroup, as runc does.
        skipped_ = true;
        return ok();
      }
      return std::move(st).error().context("create cgroup");
    }
    if (!existed) made.push_back(dir);
  }
  if (auto it = dirs_.find("cpuset"); it != dirs_.end()) {
    Status st = ensure_cpuset(it->second);
    if (!st.ok()) {
      undo();
      return std::move(st).error().context("create cgroup");
    }
  }
  return ok();
}

// A new cpuset cgroup starts with empty cpuset.cpus and cpuset.mems, and adding a task to it then
// fails with ENOSPC (cpusets.rst 2.1): each level gets its parent's values, from the top down.
Status V1Manager::ensure_cpuset(const std::string& dir, int depth) {
  ASSIGN_OR_RETURN(std::string cpus, ops_->read(fs::join(dir, "cpuset.cpus")));
  ASSIGN_OR_RETURN(std::string mems, ops_->read(fs::join(dir, "cpuset.mems")));
  std::string_view c = str::trim(cpus), m = str::trim(mems);
  if (!c.empty() && !m.empty()) return ok();
  std::string parent = fs::clean(fs::join(dir, ".."));
  if (parent == dir || depth > 64 || !ops_->exists(fs::join(parent, "cpuset.cpus"))) {
    return Error("cpuset of " + dir + ": no ancestor has cpuset.cpus and cpuset.mems set");
  }
  TRY(ensure_cpuset(parent, depth + 1));
  ASSIGN_OR_RETURN(std::string pcpus, ops_->read(fs::join(parent, "cpuset.cpus")));
  ASSIGN_OR_RETURN(std::string pmems, ops_->read(fs::join(parent, "cpuset.mems")));
  if (c.empty()) TRY(ops_->write(fs::join(dir, "cpuset.cpus"), str::trim(pcpus)));
  if (m.empty()) TRY(ops_->write(fs::join(dir, "cpuset.mems"), str::trim(pmems)));
  return ok();
}

Status V1Manager::apply(const Resources& res) {
  if (skipped_) {
    if (!resources_empty(res)) warn("rootless container without a cgroup: linux.resources ignored");
    return ok();
  }
  ASSIGN_OR_RETURN(std::vector<CgroupWrite> writes, plan(res));
  for (const auto& w : writes) TRY(ops_->write(w.path, w.value));
  return ok();
}

Result<std::vector<CgroupWrite>> V1Manager::plan(const Resources& res) {
  if (!res.unified.empty()) return Error("linux.resources.unified requires cgroup v2");
  std::vector<CgroupWrite> out;
  // cpuset first (as runc): later controllers never depend on it, but a process may be added
  // between apply() calls and should not see a stale cpu set.
  if (res.cpu && (!res.cpu->cpus.empty() || !res.cpu->mems.empty())) {
    ASSIGN_OR_RETURN(std::string d, dir_for("cpuset", "linux.resources.cpu.cpus/mems"));
    if (!res.cpu->cpus.empty()) out.push_back({fs::join(d, "cpuset.cpus"), res.cpu->cpus});
    if (!res.cpu->mems.empty()) out.push_back({fs::join(d, "cpuset.mems"), res.cpu->mems});
  }
  if (!res.devices.empty()) TRY(plan_devices(res.devices, out));
  if (res.memory) TRY(plan_memory(*res.memory, out));
  if (res.cpu) TRY(plan_cpu(*res.cpu, out));
  if (res.pids_limit) {
    ASSIGN_OR_RETURN(std::string d, dir_for("pids", "linux.resources.pids"));
    // runtime-spec 1.1: "default is no limit"; crun and podman read 0 and -1 as unlimited.
    out.push_back({fs::join(d, "pids.max"), *res.pids_limit > 0 ? std::to_string(*res.pids_limit) : "max"});
  }
  if (res.block_io) TRY(plan_blkio(*res.block_io, out));
  for (const auto& h : res.hugepage_limits) {
    if (!valid_hugepage_size(h.page_size)) {
      return Error("linux.resources.hugepageLimits: bad page size \"" + h.page_size + "\"");
    }
    ASSIGN_OR_RETURN(std::string d, dir_for("hugetlb", "linux.resources.hugepageLimits"));
    out.push_back({fs::join(d, "hugetlb." + h.page_size + ".limit_in_bytes"), std::to_string(h.limit)});
  }
  return out;
}

Status V1Manager::plan_devices(const std::vector<DeviceRule>& rules, std::vector<CgroupWrite>& out) {
  ASSIGN_OR_RETURN(std::string d, dir_for("devices", "linux.resources.devices"));
  // As runc: deny everything, then replay the rules in order. The kernel keeps a default
  // behaviour plus exceptions, so a deny only removes an exactly matching earlier allow.
  out.push_back({fs::join(d, "devices.deny"), "a"});
  for (const auto& r : rules) {
    ASSIGN_OR_RETURN(auto lines, v1_device_lines(r));
    for (auto& l : lines)
      out.push_back({fs::join(d, r.allow ? "devices.allow" : "devices.deny"), std::move(l)});
  }
  return ok();
}

Status V1Manager::plan_memory(const MemoryResources& m, std::vector<CgroupWrite>& out) {
  auto limit = nonzero(m.limit), swap = nonzero(m.swap), reservation = nonzero(m.reservation),
       kernel = nonzero(m.kernel);
  if (!limit && !swap && !reservation && !kernel && !m.swappiness && !m.disable_oom_killer) return ok();
  ASSIGN_OR_RETURN(std::string d, dir_for("memory", "linux.resources.memory"));
  for (const auto& [name, v] :
       {std::pair{"limit", limit}, {"swap", swap}, {"reservation", reservation}, {"kernel", kernel}}) {
    if (v && *v < -1) {
      return Error("linux.resources.memory." + std::string(name) + ": " + std::to_string(*v) +
                   " is not a size (-1 means unlimited)");
    }
  }
  if (m.swappiness && *m.swappiness > 100) {
    return Error("linux.resources.memory.swappiness: " + std::to_string(*m.swappiness) + " is above 100");
  }
  std::string limit_file = fs::join(d, "memory.limit_in_bytes");
  std::string memsw_file = fs::join(d, "memory.memsw.limit_in_bytes");
  bool have_memsw = ops_->exists(memsw_file);
  // Lifting the memory limit alone would fail while memsw is still limited (memsw >= limit).
  if (limit == -1 && !swap && have_memsw) swap = -1;
  if (swap && *swap > 0 && limit && (*limit == -1 || *swap < *limit)) {
    return Error("linux.resources.memory.swap (memory+swap, " + std::to_string(*swap) +
                 ") must not be below linux.resources.memory.limit (" + std::to_string(*limit) + ")");
  }
  if (swap && !have_memsw) {
    warn("linux.resources.memory.swap ignored: swap accounting is off (no memory.memsw.limit_in_bytes in " +
         d + ")");
    swap.reset();
  }
  if (limit && swap) {
    // The kernel keeps memsw >= limit after every write: when the new memsw is at least the
    // current limit it goes first (raising), otherwise the limit goes first (lowering).
    ASSIGN_OR_RETURN(uint64_t current, read_u64_or_zero(*ops_, limit_file));
    if (*swap == -1 || static_cast<uint64_t>(*swap) >= current) {
      out.push_back({memsw_file, std::to_string(*swap)});
      out.push_back({limit_file, std::to_string(*limit)});
    } else {
      out.push_back({limit_file, std::to_string(*limit)});
      out.push_back({memsw_file, std::to_string(*swap)});
    }
  } else if (limit) {
    out.push_back({limit_file, std::to_string(*limit)});
  } else if (swap) {
    out.push_back({memsw_file, std::to_string(*swap)});
  }
  if (reservation) out.push_back({fs::join(d, "memory.soft_limit_in_bytes"), std::to_string(*reservation)});
  if (kernel) {
    std::string kmem = fs::join(d, "memory.kmem.limit_in_bytes");
    if (ops_->exists(kmem)) {
      out.push_back({kmem, std::to_string(*kernel)});
    } else {
      warn("linux.resources.memory.kernel ignored: this kernel has no memory.kmem.limit_in_bytes");
    }
  }
  if (m.swappiness) out.push_back({fs::join(d, "memory.swappiness"), std::to_string(*m.swappiness)});
  if (m.disable_oom_killer)
    out.push_back({fs::join(d, "memory.oom_control"), *m.disable_oom_killer ? "1" : "0"});
  return ok();
}

Status V1Manager::plan_cpu(const CpuResources& c, std::vector<CgroupWrite>& out) {
  auto shares = nonzero(c.shares), period = nonzero(c.period), rt_period = nonzero(c.realtime_period);
  auto quota = nonzero(c.quota), rt_runtime = nonzero(c.realtime_runtime);
  if (!shares && !period && !quota && !rt_period && !rt_runtime && !c.idle) return ok();
  ASSIGN_OR_RETURN(std::string d, dir_for("cpu", "linux.resources.cpu"));
  if (shares) out.push_back({fs::join(d, "cpu.shares"), std::to_string(*shares)});
  // Period before quota, as runc: the quota is read against the period in force.
  if (period) out.push_back({fs::join(d, "cpu.cfs_period_us"), std::to_string(*period)});
  if (quota) out.push_back({fs::join(d, "cpu.cfs_quota_us"), *quota > 0 ? std::to_string(*quota) : "-1"});
  // Same for the realtime budget: runtime must fit in the period when written.
  if (rt_period) out.push_back({fs::join(d, "cpu.rt_period_us"), std::to_string(*rt_period)});
  if (rt_runtime) out.push_back({fs::join(d, "cpu.rt_runtime_us"), std::to_string(*rt_runtime)});
  if (c.idle) {
    std::string idle = fs::join(d, "cpu.idle");
    if (ops_->exists(idle)) {
      out.push_back({idle, std::to_string(*c.idle)});
    } else if (*c.idle != 0) {
      return Error("linux.resources.cpu.idle: this kernel has no cpu.idle (Linux 5.15 or later needed)");
    }
  }
  return ok();
}

Status V1Manager::plan_blkio(const BlockIoResources& b, std::vector<CgroupWrite>& out) {
  auto weight = nonzero(b.weight), leaf = nonzero(b.leaf_weight);
  if (!weight && !leaf) return ok();
  ASSIGN_OR_RETURN(std::string d, dir_for("blkio", "linux.resources.blockIO"));
  if (weight) {
    // CFQ's blkio.weight went with CFQ (Linux 5.0); BFQ's file takes the same 1..1000 scale.
    std::string f = fs::join(d, "blkio.weight");
    if (!ops_->exists(f)) f = fs::join(d, "blkio.bfq.weight");
    if (!ops_->exists(f)) {
      return Error("linux.resources.blockIO.weight: neither blkio.weight nor blkio.bfq.weight exists in " +
                   d + " (no proportional I/O scheduler)");
    }
    out.push_back({f, std::to_string(*weight)});
  }
  if (leaf) {
    std::string f = fs::join(d, "blkio.leaf_weight");
    if (ops_->exists(f)) {
      out.push_back({f, std::to_string(*leaf)});
    } else {
      warn("linux.resources.blockIO.leafWeight ignored: no blkio.leaf_weight in " + d);
    }
  }
  return ok();
}

Status V1Manager::add_process(pid_t pid) {
  if (skipped_) return ok();
  for (const auto& d : unique_dirs()) TRY(ops_->write(fs::join(d, "cgroup.procs"), std::to_string(pid)));
  return ok();
}

Status V1Manager::set_freezer(const std::string& state) {
  ASSIGN_OR_RETURN(std::string d, dir_for("freezer", state == "FROZEN" ? "freeze" : "thaw"));
  std::string file = fs::join(d, "freezer.state");
  TRY(ops_->write(file, state));
  std::string now;
  bool done = poll_until(*ops_, kFreezeTimeout, [&] {
    auto r = ops_->read(file);
    now = r.ok() ? std::string(str::trim(*r)) : "unreadable";
    if (now == state) return true;
    // Tasks that could not be frozen at once (in a syscall, vfork) keep the state at FREEZING;
    // writing FROZEN again retries them (freezer-subsystem.rst).
    if (state == "FROZEN" && now == "FREEZING") (void)ops_->write(file, state);
    return false;
  });
  if (!done) {
    if (state == "FROZEN") (void)ops_->write(file, "THAWED");
    return Error("set " + file + " to " + state + ": still " + now + " after " +
                     std::to_string(kFreezeTimeout.count()) + " ms",
                 EBUSY);
  }
  return ok();
}

Result<bool> V1Manager::frozen() {
  if (skipped_ || !dirs_.count("freezer")) return false;
  ASSIGN_OR_RETURN(std::string s, ops_->read(fs::join(dirs_.at("freezer"), "freezer.state")));
  return str::trim(s) == "FROZEN";
}

Result<std::vector<pid_t>> V1Manager::pids() {
  if (skipped_ || dirs_.empty()) return std::vector<pid_t>{};
  // The freezer hierarchy is the one kill_all freezes, so it is the one to list.
  for (const char* c : {"freezer", "pids", "memory"}) {
    if (dirs_.count(c)) return read_pids_recursive(*ops_, dirs_.at(c));
  }
  return read_pids_recursive(*ops_, dirs_.begin()->second);
}

Status V1Manager::kill_all(int sig) {
  if (skipped_) return ok();
  // Frozen, no process can fork a child we would not see in cgroup.procs.
  bool freezer = dirs_.count("freezer") > 0;
  if (freezer) {
    Status st = freeze();
    if (!st.ok()) {
      // Signal anyway: for SIGKILL (delete --force) a stuck freezer must not save the processes.
      warn("kill the processes of the cgroup unfrozen: " + st.error().to_string());
      freezer = false;
    }
  }
  Status result = signal_all(*ops_, this->pids(), sig);
  if (freezer) {
    Status st = thaw();
    if (!st.ok() && result.ok()) result = std::move(st);
  }
  return result;
}

Status V1Manager::destroy() {
  if (skipped_) return ok();
  Status result;
  for (const auto& d : unique_dirs()) {
    Status st = remove_cgroup_dir(*ops_, d, kRemoveTimeout);
    if (!st.ok() && result.ok()) result = std::move(st);
  }
  return result;
}

Result<CgroupStats> V1Manager::stats() {
  CgroupStats s;
  if (skipped_) return s;
  if (auto it = dirs_.find("memory"); it != dirs_.end()) {
    ASSIGN_OR_RETURN(s.memory_usage, read_u64_or_zero(*ops_, fs::join(it->second, "memory.usage_in_bytes")));
    ASSIGN_OR_RETURN(s.memory_limit, read_u64_or_zero(*ops_, fs::join(it->second, "memory.limit_in_bytes")));
  }
  if (auto it = dirs_.find("cpuacct"); it != dirs_.end()) {
    ASSIGN_OR_RETURN(s.cpu_usage_ns, read_u64_or_zero(*ops_, fs::join(it->second, "cpuacct.usage")));
  }
  if (auto it = dirs_.find("pids"); it != dirs_.end()) {
    ASSIGN_OR_RETURN(s.pids_current, read_u64_or_zero(*ops_, fs::join(it->second, "pids.current")));
    ASSIGN_OR_RETURN(s.pids_limit, read_u64_or_zero(*ops_, fs::join(it->second, "pids.max")));
  }
  return s;
}

}  // namespace

Result<std::vector<std::string>> v1_device_lines(const DeviceRule& r) {
  ASSIGN_OR_RETURN(unsigned bits, device_rule_access(r));
  auto num = [](const std::optional<int64_t>& v) { return v && *v >= 0 ? std::to_string(*v) : "*"; };
  std::string access;
  if (bits & BPF_DEVCG_ACC_READ) access += 'r';
  if (bits & BPF_DEVCG_ACC_WRITE) access += 'w';
  if (bits & BPF_DEVCG_ACC_MKNOD) access += 'm';
  std::string numbers = num(r.major) + ":" + num(r.minor);
  if (r.type != 'a') return std::vector<std::string>{std::string(1, r.type) + " " + numbers + " " + access};
  if (numbers == "*:*" && access == "rwm") return std::vector<std::string>{"a *:* rwm"};
  return std::vector<std::string>{"c " + numbers + " " + access, "b " + numbers + " " + access};
}

std::unique_ptr<CgroupManager> make_v1_manager(std::map<std::string, std::string> dirs, bool rootless,
                                               bool skipped, std::shared_ptr<CgroupOps> ops) {
  return std::make_unique<V1Manager>(std::move(dirs), rootless, skipped, std::move(ops));
}

}  // namespace strata::oci::cgroup_internal
