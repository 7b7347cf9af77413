// Choosing and building a cgroup manager: version detection (statfs magic of the cgroup root),
// the v1 hierarchies mounted there (/proc/self/mountinfo), linux.cgroupsPath resolution shared by
// both backends, and the host implementation of CgroupOps. Follows the kernel's
// Documentation/admin-guide/cgroup-v1/cgroups.rst (section 2, usage) and cgroup-v2.rst (section 2,
// basic operations), and config-linux.md "Control groups" of the runtime-spec.
#include "oci/cgroup.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <thread>

#include "base/fd.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"
#include "oci/cgroup_internal.h"

namespace strata::oci {
namespace cgroup_internal {

Status CgroupOps::write(const std::string& path, std::string_view data) {
  // O_TRUNC is meaningless to cgroupfs but keeps a fake file in a tmpdir equal to the last write.
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC));
  ssize_t n = -1;
  if (fd) {
    do {
      n = ::write(fd.get(), data.data(), data.size());
    } while (n < 0 && errno == EINTR);
  }
  if (n < 0) return Error::sys("write \"" + std::string(data.substr(0, 64)) + "\" to " + path);
  return ok();
}

Result<std::string> CgroupOps::read(const std::string& path) { return fs::read_file(path); }

bool CgroupOps::exists(const std::string& path) { return fs::exists(path); }

Status CgroupOps::mkdir_p(const std::string& path) { return fs::mkdir_p(path, 0755); }

Status CgroupOps::rmdir(const std::string& path) {
  if (::rmdir(path.c_str()) != 0) return Error::sys("rmdir " + path);
  return ok();
}

std::vector<std::string> CgroupOps::subdirs(const std::string& path) {
  std::vector<std::string> out;
  for (auto& name : fs::list_dir(path)) {
    if (fs::is_dir(fs::join(path, name))) out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

Status CgroupOps::kill(pid_t pid, int sig) {
  if (::kill(pid, sig) != 0)
    return Error::sys("kill " + std::to_string(pid) + " with signal " + std::to_string(sig));
  return ok();
}

void CgroupOps::sleep(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

std::shared_ptr<CgroupOps> host_cgroup_ops() {
  static const auto ops = std::make_shared<CgroupOps>();
  return ops;
}

const std::vector<std::string>& v1_controllers() {
  // hugetlb is not in our machines' layout but other v1 hosts mount it; the list is what a
  // container joins and what apply() may need.
  static const std::vector<std::string> kControllers = {
      "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb", "name=systemd"};
  return kControllers;
}

Result<std::string> resolve_cgroup_path(std::string_view cgroups_path, std::string_view id,
                                        std::string_view own) {
  std::string shown = "linux.cgroupsPath \"" + std::string(cgroups_path) + "\"";
  // runc's systemd driver takes "slice:prefix:name"; the cgroupfs form is a path.
  if (cgroups_path.find('/') == std::string_view::npos &&
      std::count(cgroups_path.begin(), cgroups_path.end(), ':') == 2) {
    return Error(shown + ": systemd cgroup paths need the systemd cgroup driver, and there is none here");
  }
  std::string path;
  if (cgroups_path.empty()) {
    if (id.empty() || id.find('/') != std::string_view::npos) {
      return Error("cgroup of container \"" + std::string(id) + "\": an id without '/' is needed");
    }
    path = "/strata/" + std::string(id);
  } else if (cgroups_path.front() == '/') {
    path = std::string(cgroups_path);
  } else {
    path = fs::join(own.empty() ? "/" : own, cgroups_path);
  }
  for (const auto& part : str::split(path, '/')) {
    // Refused rather than cleaned: a path that climbs could leave the hierarchy or the subtree
    // delegated to us.
    if (part == "..") return Error(shown + ": \"..\" is not allowed in a cgroup path");
  }
  path = fs::clean(path);
  if (path == "/") return Error(shown + ": a container cannot use the root cgroup");
  return path;
}

std::map<std::string, std::string> parse_proc_cgroup(std::string_view text) {
  std::map<std::string, std::string> out;
  for (const auto& line : str::split(text, '\n')) {
    size_t a = line.find(':');
    if (a == std::string::npos) continue;
    size_t b = line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (controllers.empty()) {
      out[""] = path;
      continue;
    }
    for (const auto& c : str::split(controllers, ',')) out[c] = path;
  }
  return out;
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
static std::string unescape_mountinfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    auto octal = [&](size_t k) { return s[k] >= '0' && s[k] <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, V1Mount> parse_v1_mounts(std::string_view mountinfo, std::string_view under) {
  std::map<std::string, V1Mount> out;
  std::string prefix = fs::clean(under);
  if (prefix != "/") prefix += '/';
  for (const auto& line : str::split(mountinfo, '\n')) {
    std::vector<std::string> f = str::split(line, ' ');
    auto sep = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || sep == f.end() || f.end() - sep < 4) continue;
    if (sep[1] != "cgroup") continue;
    V1Mount m{unescape_mountinfo(f[4]), unescape_mountinfo(f[3])};
    if (!str::starts_with(m.mount_point, prefix)) continue;
    for (const auto& opt : str::split(sep[3], ',')) {
      const auto& known = v1_controllers();
      // The first mount of a hierarchy wins; bind mounts of it elsewhere under root are ignored.
      if (std::find(known.begin(), known.end(), opt) != known.end()) out.emplace(opt, m);
    }
  }
  return out;
}

Result<std::string> hierarchy_dir(const V1Mount& m, std::string_view cgroups_path, std::string_view id,
                                  std::string_view own) {
  // /proc/self/cgroup names the hierarchy path; the mount may show only a subtree of it.
  std::string base(own.empty() ? "/" : own);
  if (m.root != "/" && str::starts_with(base, m.root)) base = "/" + base.substr(m.root.size());
  ASSIGN_OR_RETURN(std::string path, resolve_cgroup_path(cgroups_path, id, base));
  return fs::join(m.mount_point, path);
}

bool poll_until(CgroupOps& ops, std::chrono::milliseconds timeout, const std::function<bool()>& done) {
  // The budget counts the sleeps, not the wall clock, so that a test's fake sleep is exact.
  std::chrono::milliseconds slept{0}, step{1};
  for (;;) {
    if (done()) return true;
    if (slept >= timeout) return false;
    ops.sleep(step);
    slept += step;
    step = std::min(step * 2, std::chrono::milliseconds(20));
  }
}

Status remove_cgroup_dir(CgroupOps& ops, const std::string& dir, std::chrono::milliseconds timeout) {
  // The common case (no children, no processes left) is one rmdir(2); listing the directory
  // first stat()ed every control file of every hierarchy (~136 calls per delete, 0.9 ms).
  Status first = ops.rmdir(dir);
  if (first.ok() || first.error().err() == ENOENT) return ok();
  // EBUSY: child cgroups or processes; ENOTEMPTY: the same on a plain directory tree.
  if (first.error().err() != EBUSY && first.error().err() != ENOTEMPTY) return first;
  // Child cgroups first: rmdir(2) of a cgroup with children fails with EBUSY.
  for (const auto& sub : ops.subdirs(dir)) TRY(remove_cgroup_dir(ops, fs::join(dir, sub), timeout));
  Status last;
  poll_until(ops, timeout, [&] {
    last = ops.rmdir(dir);
    // EBUSY: processes (or zombies not yet reaped) are still leaving; anything else is final.
    return last.ok() || last.error().err() != EBUSY;
  });
  if (!last.ok() && last.error().err() != ENOENT) {
    if (last.error().err() == EBUSY) {
      return std::move(last).error().context("processes still in the cgroup after " +
                                             std::to_string(timeout.count()) + " ms");
    }
    return last;
  }
  return ok();
}

Status signal_all(CgroupOps& ops, Result<std::vector<pid_t>> pids, int sig) {
  if (!pids.ok()) return std::move(pids).error();
  Status result;
  for (pid_t p : *pids) {
    Status st = ops.kill(p, sig);
    if (!st.ok() && st.error().err() != ESRCH && result.ok()) result = std::move(st);
  }
  return result;
}

Result<std::vector<pid_t>> read_pids_recursive(CgroupOps& ops, const std::string& dir) {
  std::vector<pid_t> out;
  auto text = ops.read(fs::join(dir, "cgroup.procs"));
  if (!text.ok()) {
    if (text.error().err() == ENOENT) return out;
    return std::move(text).error();
  }
  for (const auto& line : str::split(*text, '\n')) {
    auto v = str::parse_int(str::trim(line));
    if (v && *v > 0) out.push_back(static_cast<pid_t>(*v));
  }
  for (const auto& sub : ops.subdirs(dir)) {
    ASSIGN_OR_RETURN(auto more, read_pids_recursive(ops, fs::join(dir, sub)));
    out.insert(out.end(), more.begin(), more.end());
  }
  return out;
}

Result<uint64_t> read_u64_or_zero(CgroupOps& ops, const std::string& path) {
  if (!ops.exists(path)) return uint64_t{0};
  ASSIGN_OR_RETURN(std::string text, ops.read(path));
  std::string_view v = str::trim(text);
  if (v == "max") return UINT64_MAX;
  auto n = str::parse_uint(v);
  if (!n) return Error("parse " + path + ": not a number: \"" + std::string(v.substr(0, 32)) + "\"");
  return *n;
}

bool resources_empty(const Resources& res) {
  return res.devices.empty() && !res.memory && !res.cpu && !res.pids_limit && !res.block_io &&
         res.hugepage_limits.empty() && res.unified.empty();
}

static std::string describe(const DeviceRule& r) {
  auto num = [](const std::optional<int64_t>& v) { return v && *v >= 0 ? std::to_string(*v) : "*"; };
  return std::string(r.allow ? "allow " : "deny ") + r.type + " " + num(r.major) + ":" + num(r.minor) + " " +
         r.access;
}

Result<unsigned> device_rule_access(const DeviceRule& r) {
  std::string shown = "device rule \"" + describe(r) + "\"";
  if (r.type != 'a' && r.type != 'b' && r.type != 'c') return Error(shown + ": type must be a, b or c");
  for (const auto& n : {r.major, r.minor}) {
    // Majors and minors are 12 and 20 bits in the kernel; the BPF filter compares 32-bit
    // immediates, which must stay positive.
    if (n && *n > INT32_MAX) return Error(shown + ": device number out of range");
  }
  if (r.access.empty()) return unsigned{BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD};
  unsigned bits = 0;
  for (char c : r.access) {
    if (c == 'r') {
      bits |= BPF_DEVCG_ACC_READ;
    } else if (c == 'w') {
      bits |= BPF_DEVCG_ACC_WRITE;
    } else if (c == 'm') {
      bits |= BPF_DEVCG_ACC_MKNOD;
    } else {
      return Error(shown + ": access may only contain r, w and m");
    }
  }
  return bits;
}

bool valid_hugepage_size(std::string_view s) {
  if (s.size() < 3 || s.substr(s.size() - 1) != "B") return false;
  std::string_view unit = s.substr(s.size() - 2, 1);
  if (unit != "K" && unit != "M" && unit != "G") return false;
  std::string_view digits = s.substr(0, s.size() - 2);
  return std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; });
}

void warn(const std::string& msg) { strata::log::get("oci")->warn("{}", msg); }

Result<std::unique_ptr<CgroupManager>> make_cgroup_manager(const CgroupConfig& cfg,
                                                           std::shared_ptr<CgroupOps> ops) {
  CgroupVersion v = cfg.force_version ? *cfg.force_version : detect_cgroup_version(cfg.root);
  std::string root = fs::clean(cfg.root);
  // Errors in the path itself come first, whatever is mounted.
  TRY(resolve_cgroup_path(cfg.cgroups_path, cfg.id, "/"));
  ASSIGN_OR_RETURN(std::string self, ops->read("/proc/self/cgroup"));
  std::map<std::string, std::string> own = parse_proc_cgroup(self);

  if (v == CgroupVersion::kV2) {
    auto it = own.find("");
    ASSIGN_OR_RETURN(std::string path,
                     resolve_cgroup_path(cfg.cgroups_path, cfg.id, it == own.end() ? "/" : it->second));
    return make_v2_manager(root, fs::join(root, path), cfg.rootless, false, std::move(ops));
  }

  ASSIGN_OR_RETURN(std::string mountinfo, ops->read("/proc/self/mountinfo"));
  std::map<std::string, V1Mount> mounts = parse_v1_mounts(mountinfo, root);
  if (mounts.empty() && root != "/sys/fs/cgroup") {
    // A root that is no mount at all (a test's tmpdir): each directory named after a controller
    // stands for its hierarchy.
    for (const auto& c : v1_controllers()) {
      std::string d = fs::join(root, c == "name=systemd" ? "systemd" : c);
      if (fs::is_dir(d)) mounts.emplace(c, V1Mount{d, "/"});
    }
  }
  if (mounts.empty()) return Error("no cgroup v1 hierarchy is mounted under " + root);
  std::map<std::string, std::string> dirs;
  for (const auto& [controller, m] : mounts) {
    auto it = own.find(controller);
    ASSIGN_OR_RETURN(dirs[controller],
                     hierarchy_dir(m, cfg.cgroups_path, cfg.id, it == own.end() ? "/" : it->second));
  }
  return make_v1_manager(std::move(dirs), cfg.rootless, false, std::move(ops));
}

}  // namespace cgroup_internal

CgroupVersion detect_cgroup_version(const std::string& root) {
  struct statfs st {};
  if (::statfs(root.c_str(), &st) == 0 && st.f_type == CGROUP2_SUPER_MAGIC) return CgroupVersion::kV2;
  return CgroupVersion::kV1;
}

Result<std::unique_ptr<CgroupManager>> make_cgroup_manager(const CgroupConfig& cfg) {
  return cgroup_internal::make_cgroup_manager(cfg, cgroup_internal::host_cgroup_ops());
}

std::unique_ptr<CgroupManager> open_cgroup_manager(CgroupVersion v,
                                                   const std::map<std::string, std::string>& paths,
                                                   bool skipped) {
  if (v == CgroupVersion::kV2) {
    auto it = paths.find("");
    // No hierarchy root: an existing cgroup has its controllers enabled already.
    return cgroup_internal::make_v2_manager("", it == paths.end() ? "" : it->second, false, skipped,
                                            cgroup_internal::host_cgroup_ops());
  }
  return cgroup_internal::make_v1_manager(paths, false, skipped, cgroup_internal::host_cgroup_ops());
}

}  // namespace strata::oci
