// The cgroup v2 backend: one directory in the unified hierarchy, controllers enabled through
// cgroup.subtree_control of every ancestor, resources mapped from the spec's v1 units as runc and
// crun map them, devices through a BPF program (cgroup_v2_devices.cc), freezing through
// cgroup.freeze and killing through cgroup.kill. Follows the kernel's
// Documentation/admin-guide/cgroup-v2.rst: 2.4 (controlling controllers, no internal process
// constraint), 4.1 (format of interface files), 5.1-5.7 (cpu, memory, io, pids, cpuset, device,
// hugetlb), and "Core Interface Files" (cgroup.freeze, cgroup.kill, cgroup.events).
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

// Enabled in each ancestor's subtree_control when the parent offers them (cgroup.controllers).
constexpr const char* kWantedControllers[] = {"cpu", "memory", "pids", "io", "cpuset", "hugetlb"};

bool is_permission_error(int err) { return err == EACCES || err == EPERM || err == EROFS; }

template <class T>
std::optional<T> nonzero(const std::optional<T>& v) {
  return v && *v != 0 ? v : std::nullopt;
}

std::string limit_text(int64_t v) { return v < 0 ? "max" : std::to_string(v); }

// "frozen 1" in cgroup.events (a "key value" per line, cgroup-v2.rst 4.1).
std::optional<std::string> events_field(const std::string& text, std::string_view key) {
  for (const auto& line : str::split(text, '\n')) {
    auto kv = str::split(line, ' ');
    if (kv.size() == 2 && kv[0] == key) return kv[1];
  }
  return std::nullopt;
}

class V2Manager final : public CgroupManager {
 public:
  V2Manager(std::string root, std::string dir, bool rootless, bool skipped, std::shared_ptr<CgroupOps> ops)
      : root_(std::move(root)),
        dir_(std::move(dir)),
        rootless_(rootless),
        skipped_(skipped),
        ops_(std::move(ops)) {}

  // CgroupManager
  CgroupVersion version() const override { return CgroupVersion::kV2; }
  Status create() override;
  Status apply(const Resources& res) override;
  Status add_process(pid_t pid) override;
  Status freeze() override { return skipped_ ? ok() : set_frozen(true); }
  Status thaw() override { return skipped_ ? ok() : set_frozen(false); }
  Result<bool> frozen() override;
  Result<std::vector<pid_t>> pids() override;
  Status kill_all(int sig) override;
  Status destroy() override;
  Result<CgroupStats> stats() override;
  std::map<std::string, std::string> paths() const override { return {{"", dir_}}; }
  bool skipped() const override { return skipped_; }

 private:
  std::string file(std::string_view name) const { return fs::join(dir_, name); }
  void enable_controllers();
  Status set_frozen(bool frozen);
  Result<std::vector<CgroupWrite>> plan(const Resources& res);
  Status plan_memory(const MemoryResources& m, std::vector<CgroupWrite>& out);
  Status plan_cpu(const CpuResources& c, std::vector<CgroupWrite>& out);

  std::string root_;  // the cgroup2 mount; empty for a reopened manager
  std::string dir_;
  bool rootless_;
  bool skipped_;
  std::shared_ptr<CgroupOps> ops_;
};

Status V2Manager::create() {
  if (skipped_) return ok();
  Status st = ops_->mkdir_p(dir_);
  if (!st.ok()) {
    if (rootless_ && is_permission_error(st.error().err())) {
      // No delegated subtree for this user: run without a cgroup, as runc and crun do.
      skipped_ = true;
      return ok();
    }
    return std::move(st).error().context("create cgroup");
  }
  if (!root_.empty()) enable_controllers();
  return ok();
}

// Controllers reach a cgroup only when every ancestor lists them in cgroup.subtree_control
// (cgroup-v2.rst 2.4). Failures are not errors here: a controller the host cannot give (not
// offered, or a non-root ancestor with processes: the no internal process constraint) shows up
// later as a missing interface file, named in the error of the write that needs it.
void V2Manager::enable_controllers() {
  if (!str::starts_with(dir_, root_)) return;
  std::vector<std::string> levels{root_};
  std::string cur = root_;
  std::vector<std::string> parts = str::split(dir_.substr(root_.size()), '/');
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (parts[i].empty()) continue;
    cur = fs::join(cur, parts[i]);
    levels.push_back(cur);
  }
  for (const auto& level : levels) {
    auto offered = ops_->read(fs::join(level, "cgroup.controllers"));
    auto enabled = ops_->read(fs::join(level, "cgroup.subtree_control"));
    if (!offered.ok()) continue;
    std::vector<std::string> have = str::split(str::trim(*offered), ' ');
    std::vector<std::string> on =
        enabled.ok() ? str::split(str::trim(*enabled), ' ') : std::vector<std::string>{};
    for (const char* c : kWantedControllers) {
      if (std::find(have.begin(), have.end(), c) == have.end()) continue;
      if (std::find(on.begin(), on.end(), c) != on.end()) continue;
      // One controller per write: a refused one must not stop the others.
      (void)ops_->write(fs::join(level, "cgroup.subtree_control"), std::string("+") + c);
    }
  }
}

Status V2Manager::apply(const Resources& res) {
  if (skipped_) {
    if (!resources_empty(res)) warn("rootless container without a cgroup: linux.resources ignored");
    return ok();
  }
  // Everything is computed and checked before the first write, so a bad value changes nothing.
  ASSIGN_OR_RETURN(std::vector<CgroupWrite> writes, plan(res));
  std::vector<bpf_insn> prog;
  if (!res.devices.empty()) {
    ASSIGN_OR_RETURN(prog, device_filter_program(res.devices));
  }
  for (const auto& w : writes) TRY(ops_->write(w.path, w.value));
  if (!res.devices.empty()) TRY_CTX(ops_->attach_device_program(dir_, prog), "apply linux.resources.devices");
  // linux.resources.unified last: its raw values override the mapped ones.
  for (const auto& [key, value] : res.unified) TRY(ops_->write(file(key), value));
  return ok();
}

Result<std::vector<CgroupWrite>> V2Manager::plan(const Resources& res) {
  std::vector<CgroupWrite> out;
  if (res.cpu && !res.cpu->cpus.empty()) out.push_back({file("cpuset.cpus"), res.cpu->cpus});
  if (res.cpu && !res.cpu->mems.empty()) out.push_back({file("cpuset.mems"), res.cpu->mems});
  if (res.memory) TRY(plan_memory(*res.memory, out));
  if (res.cpu) TRY(plan_cpu(*res.cpu, out));
  if (res.pids_limit) {
    // runtime-spec 1.1: "default is no limit"; crun and podman read 0 and -1 as unlimited.
    out.push_back({file("pids.max"), *res.pids_limit > 0 ? std::to_string(*res.pids_limit) : "max"});
  }
  if (res.block_io) {
    if (auto w = nonzero(res.block_io->weight)) {
      // BFQ keeps the v1 scale (1..1000) in io.bfq.weight; io.weight is 1..10000.
      if (ops_->exists(file("io.bfq.weight"))) {
        out.push_back({file("io.bfq.weight"), std::to_string(*w)});
      } else {
        out.push_back({file("io.weight"), std::to_string(blkio_weight_to_io_weight(*w))});
      }
    }
    if (nonzero(res.block_io->leaf_weight))
      warn("linux.resources.blockIO.leafWeight ignored: cgroup v2 has none");
  }
  for (const auto& h : res.hugepage_limits) {
    if (!valid_hugepage_size(h.page_size)) {
      return Error("linux.resources.hugepageLimits: bad page size \"" + h.page_size + "\"");
    }
    out.push_back({file("hugetlb." + h.page_size + ".max"), std::to_string(h.limit)});
  }
  for (const auto& [key, value] : res.unified) {
    // The keys are file names in the container's own cgroup, nothing else.
    if (key.empty() || key.find('/') != std::string::npos || key == "." || key == ".." ||
        key.find('\0') != std::string::npos) {
      return Error("linux.resources.unified: \"" + key + "\" is not a cgroup file name");
    }
  }
  return out;
}

Status V2Manager::plan_memory(const MemoryResources& m, std::vector<CgroupWrite>& out) {
  for (const auto& [name, v] :
       {std::pair{"limit", m.limit}, {"swap", m.swap}, {"reservation", m.reservation}}) {
    if (v && *v < -1) {
      return Error("linux.resources.memory." + std::string(name) + ": " + std::to_string(*v) +
                   " is not a size (-1 means unlimited)");
    }
  }
  ASSIGN_OR_RETURN(std::optional<std::string> swap, swap_to_v2(m));
  if (auto limit = nonzero(m.limit)) out.push_back({file("memory.max"), limit_text(*limit)});
  if (swap) {
    if (ops_->exists(file("memory.swap.max"))) {
      out.push_back({file("memory.swap.max"), *swap});
    } else if (nonzero(m.swap)) {
      warn("linux.resources.memory.swap ignored: swap accounting is off (no memory.swap.max in " + dir_ +
           ")");
    }
  }
  if (auto r = nonzero(m.reservation)) out.push_back({file("memory.low"), limit_text(*r)});
  if (nonzero(m.kernel)) warn("linux.resources.memory.kernel ignored: cgroup v2 has no kernel memory limit");
  if (m.swappiness) warn("linux.resources.memory.swappiness ignored: cgroup v2 has no per-cgroup swappiness");
  if (m.disable_oom_killer && *m.disable_oom_killer) {
    warn("linux.resources.memory.disableOOMKiller ignored: cgroup v2 cannot disable the OOM killer");
  }
  return ok();
}

Status V2Manager::plan_cpu(const CpuResources& c, std::vector<CgroupWrite>& out) {
  if (nonzero(c.realtime_runtime) || nonzero(c.realtime_period)) {
    return Error("linux.resources.cpu.realtimeRuntime/realtimePeriod: not supported on cgroup v2");
  }
  if (auto shares = nonzero(c.shares))
    out.push_back({file("cpu.weight"), std::to_string(cpu_shares_to_weight(*shares))});
  auto quota = nonzero(c.quota);
  auto period = nonzero(c.period);
  if (quota || period) {
    // cpu.max is "$MAX $PERIOD"; a period alone keeps the quota in force.
    std::string max;
    if (quota) {
      max = *quota > 0 ? std::to_string(*quota) : "max";
    } else {
      auto cur = ops_->read(file("cpu.max"));
      max = cur.ok() ? str::split(str::trim(*cur), ' ')[0] : "max";
    }
    out.push_back({file("cpu.max"), period ? max + " " + std::to_string(*period) : max});
  }
  if (c.idle) {
    if (ops_->exists(file("cpu.idle"))) {
      out.push_back({file("cpu.idle"), std::to_string(*c.idle)});
    } else if (*c.idle != 0) {
      return Error("linux.resources.cpu.idle: this kernel has no cpu.idle (Linux 5.15 or later needed)");
    }
  }
  return ok();
}

Status V2Manager::add_process(pid_t pid) {
  if (skipped_) return ok();
  return ops_->write(file("cgroup.procs"), std::to_string(pid));
}

Status V2Manager::set_frozen(bool frozen) {
  const char* want = frozen ? "1" : "0";
  TRY(ops_->write(file("cgroup.freeze"), want));
  std::string now = "?";
  bool done = poll_until(*ops_, kFreezeTimeout, [&] {
    auto ev = ops_->read(file("cgroup.events"));
    if (!ev.ok()) return false;
    now = events_field(*ev, "frozen").value_or("?");
    return now == want;
  });
  if (!done) {
    if (frozen) (void)ops_->write(file("cgroup.freeze"), "0");
    return Error("write \"" + std::string(want) + "\" to " + file("cgroup.freeze") +
                     ": cgroup.events still says frozen " + now + " after " +
                     std::to_string(kFreezeTimeout.count()) + " ms",
                 EBUSY);
  }
  return ok();
}

Result<bool> V2Manager::frozen() {
  if (skipped_) return false;
  ASSIGN_OR_RETURN(std::string ev, ops_->read(file("cgroup.events")));
  return events_field(ev, "frozen") == "1";
}

Result<std::vector<pid_t>> V2Manager::pids() {
  if (skipped_) return std::vector<pid_t>{};
  return read_pids_recursive(*ops_, dir_);
}

Status V2Manager::kill_all(int sig) {
  if (skipped_) return ok();
  // cgroup.kill (Linux 5.14) kills the whole subtree at once, racing no fork.
  if (sig == SIGKILL && ops_->exists(file("cgroup.kill"))) return ops_->write(file("cgroup.kill"), "1");
  Status froze = freeze();
  if (!froze.ok()) {
    // Signal anyway: a cgroup that will not freeze must not keep its processes alive.
    warn("kill the processes of the cgroup unfrozen: " + froze.error().to_string());
  }
  Status result = signal_all(*ops_, this->pids(), sig);
  if (froze.ok()) {
    Status st = thaw();
    if (!st.ok() && result.ok()) result = std::move(st);
  }
  return result;
}

Status V2Manager::destroy() {
  if (skipped_ || dir_.empty()) return ok();
  return remove_cgroup_dir(*ops_, dir_, kRemoveTimeout);
}

Result<CgroupStats> V2Manager::stats() {
  CgroupStats s;
  if (skipped_) return s;
  ASSIGN_OR_RETURN(s.memory_usage, read_u64_or_zero(*ops_, file("memory.current")));
  ASSIGN_OR_RETURN(s.memory_limit, read_u64_or_zero(*ops_, file("memory.max")));
  ASSIGN_OR_RETURN(s.pids_current, read_u64_or_zero(*ops_, file("pids.current")));
  ASSIGN_OR_RETURN(s.pids_limit, read_u64_or_zero(*ops_, file("pids.max")));
  if (ops_->exists(file("cpu.stat"))) {
    ASSIGN_OR_RETURN(std::string text, ops_->read(file("cpu.stat")));
    if (auto usec = events_field(text, "usage_usec")) {
      s.cpu_usage_ns = str::parse_uint(*usec).value_or(0) * 1000;
    }
  }
  return s;
}

}  // namespace

uint64_t cpu_shares_to_weight(uint64_t shares) {
  shares = std::clamp<uint64_t>(shares, 2, 262144);
  return 1 + ((shares - 2) * 9999) / 262142;
}

uint64_t blkio_weight_to_io_weight(uint64_t w) {
  w = std::clamp<uint64_t>(w, 10, 1000);
  return 1 + (w - 10) * 9999 / 990;
}

Result<std::optional<std::string>> swap_to_v2(const MemoryResources& m) {
  auto limit = nonzero(m.limit);
  auto swap = nonzero(m.swap);
  // As on v1: lifting the memory limit without naming swap lifts swap too.
  if (!swap) return limit == -1 ? std::optional<std::string>("max") : std::nullopt;
  if (*swap == -1) return std::optional<std::string>("max");
  if (!limit || *limit == -1) {
    return Error("linux.resources.memory.swap: a memory+swap limit needs linux.resources.memory.limit");
  }
  if (*swap < *limit) {
    return Error("linux.resources.memory.swap (memory+swap, " + std::to_string(*swap) +
                 ") must not be below linux.resources.memory.limit (" + std::to_string(*limit) + ")");
  }
  // v1's memsw counts memory plus swap; v2's memory.swap.max counts swap alone.
  return std::optional<std::string>(std::to_string(*swap - *limit));
}

std::unique_ptr<CgroupManager> make_v2_manager(std::string root, std::string dir, bool rootless, bool skipped,
                                               std::shared_ptr<CgroupOps> ops) {
  return std::make_unique<V2Manager>(std::move(root), std::move(dir), rootless, skipped, std::move(ops));
}

}  // namespace strata::oci::cgroup_internal
