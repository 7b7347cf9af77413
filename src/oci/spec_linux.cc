// The "linux" object of config.json (runtime-spec config-linux.md): namespaces, id mappings,
// devices, cgroup resources, sysctl, seccomp, propagation, masked and read-only paths, time
// offsets. Part of parse_spec() (spec.cc); same rules: typed, checked, unsupported fields
// refused by name.
#include <sys/mount.h>

#include <nlohmann/json.hpp>
#include <set>

#include "oci/json_reader.h"
#include "oci/spec_internal.h"

namespace strata::oci::spec_internal {
namespace {

using json_reader::describe;
using json_reader::element_path;
using json_reader::Json;
using json_reader::ObjectReader;

// Since Linux 4.15 a uid_map/gid_map may hold 340 lines.
constexpr size_t kMaxIdMappings = 340;

std::string quote(std::string_view s) { return describe(Json(std::string(s))); }

template <class Names>
bool one_of(std::string_view s, const Names& names) {
  for (std::string_view n : names)
    if (n == s) return true;
  return false;
}

// ---- namespaces and id mappings ---------------------------------------------------------

struct NamespaceName {
  std::string_view name;
  NamespaceType type;
};

constexpr NamespaceName kNamespaceNames[] = {
    {"pid", NamespaceType::kPid},       {"network", NamespaceType::kNetwork},
    {"mount", NamespaceType::kMount},   {"ipc", NamespaceType::kIpc},
    {"uts", NamespaceType::kUts},       {"user", NamespaceType::kUser},
    {"cgroup", NamespaceType::kCgroup}, {"time", NamespaceType::kTime},
};

Status parse_namespaces(const Json& v, const std::string& path, std::vector<Namespace>& out) {
  TRY(json_reader::check_array(v, path));
  for (size_t i = 0; i < v.size(); ++i) {
    ASSIGN_OR_RETURN(auto r, ObjectReader::open(v[i], element_path(path, i)));
    std::string type;
    Namespace ns{};
    TRY(r.read_required("type", type));
    TRY(r.read("path", ns.path));
    TRY(r.finish());
    const NamespaceName* known = nullptr;
    for (const auto& n : kNamespaceNames)
      if (n.name == type) known = &n;
    if (known == nullptr) return Error(r.path_of("type") + ": unknown namespace type " + quote(type));
    ns.type = known->type;
    for (const auto& other : out)
      if (other.type == ns.type) return Error(r.path_of("type") + ": duplicate namespace " + quote(type));
    if (!ns.path.empty() && !is_absolute(ns.path))
      return Error(r.path_of("path") + ": must be an absolute path, got " + quote(ns.path));
    out.push_back(std::move(ns));
  }
  return ok();
}

bool ranges_overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

Status parse_id_mappings(const Json& v, const std::string& path, std::vector<IdMapping>& out) {
  TRY(json_reader::check_array(v, path));
  if (v.size() > kMaxIdMappings)
    return Error(path + ": " + std::to_string(v.size()) + " entries, the kernel takes at most " +
                 std::to_string(kMaxIdMappings));
  for (size_t i = 0; i < v.size(); ++i) {
    std::string p = element_path(path, i);
    ASSIGN_OR_RETURN(auto r, ObjectReader::open(v[i], p));
    IdMapping m;
    TRY(r.read_required("containerID", m.container_id));
    TRY(r.read_required("hostID", m.host_id));
    TRY(r.read_required("size", m.size));
    TRY(r.finish());
    if (m.size == 0) return Error(r.path_of("size") + ": must be greater than zero");
    // The first ids are ids like any other (0 to kMaxId, as runc); a range may run past that
    // (a whole-space mapping), but never onto 4294967295, which is (uid_t)-1 and no id at all
    // (the kernel refuses it with a bare EINVAL).
    TRY(check_id(m.container_id, r.path_of("containerID")));
    TRY(check_id(m.host_id, r.path_of("hostID")));
    constexpr uint64_t kIdSpace = (uint64_t{1} << 32) - 1;
    if (uint64_t{m.container_id} + m.size > kIdSpace || uint64_t{m.host_id} + m.size > kIdSpace)
      return Error(p + ": range runs onto id 4294967295 ((uid_t)-1, not an id)");
    // The kernel refuses overlapping lines in uid_map with a bare EINVAL; say which.
    for (size_t j = 0; j < out.size(); ++j) {
      if (ranges_overlap(m.container_id, m.size, out[j].container_id, out[j].size))
        return Error(p + ": container ids overlap " + element_path(path, j));
      if (ranges_overlap(m.host_id, m.size, out[j].host_id, out[j].size))
        return Error(p + ": host ids overlap " + element_path(path, j));
    }
    out.push_back(m);
  }
  return ok();
}

// ---- devices ----------------------------------------------------------------------------

Status check_dev_path(const std::string& p, const std::string& path) {
  if (!p.starts_with("/dev/") || p.size() == 5 || has_dotdot(p))
    return Error(path + ": must be an absolute path under /dev, got " + quote(p));
  return ok();
}

Status parse_devices(const Json& v, const std::string& path, std::vector<Device>& out) {
  TRY(json_reader::check_array(v, path));
  std::set<std::string> seen;
  for (size_t i = 0; i < v.size(); ++i) {
    ASSIGN_OR_RETURN(auto r, ObjectReader::open(v[i], element_path(path, i)));
    Device d;
    std::string type;
    TRY(r.read_required("type", type));
    TRY(r.read_required("path", d.path));
    std::optional<int64_t> major, minor;
    TRY(r.read("major", major));
    TRY(r.read("minor", minor));
    TRY(r.read("fileMode", d.file_mode));
    TRY(r.read("uid", d.uid));
    TRY(r.read("gid", d.gid));
    TRY(r.finish());
    if (d.uid) TRY(check_id(*d.uid, r.path_of("uid")));
    if (d.gid) TRY(check_id(*d.gid, r.path_of("gid")));
    if (type.size() != 1 || std::string_view("cbup").find(type[0]) == std::string_view::npos)
      return Error(r.path_of("type") + ": unknown device type " + quote(type) + " (expected c, b, u or p)");
    d.type = type[0];
    TRY(check_dev_path(d.path, r.path_of("path")));
    if (!seen.insert(d.path).second) return Error(r.path_of("path") + ": duplicate device " + quote(d.path));
    if (d.type != 'p') {
      if (!major) return Error(r.path_of("major") + ": required for a device of type " + type);
      if (!minor) return Error(r.path_of("minor") + ": required for a device of type " + type);
    }
    d.major = major.value_or(0);
    d.minor = minor.value_or(0);
    if (d.major < 0 || d.major > 0xfff)
      return Error(r.path_of("major") + ": " + std::to_string(d.major) + " is not a major number (0..4095)");
    if (d.minor < 0 || d.minor > 0xfffff)
      return Error(r.path_of("minor") + ": " + std::to_string(d.minor) +
                   " is not a minor number (0..1048575)");
    if (d.file_mode && *d.file_mode > 07777)
      return Error(r.path_of("fileMode") + ": " + std::to_string(*d.file_mode) +
                   " has bits outside the permission bits (07777)");
    out.push_back(std::move(d));
  }
  return ok();
}

// ---- resources --------------------------------------------------------------------------

Status parse_device_rules(const Json& v, const std::string& path, std::vector<DeviceRule>& out) {
  TRY(json_reader::check_array(v, path));
  for (size_t i = 0; i < v.size(); ++i) {
    ASSIGN_OR_RETURN(auto r, ObjectReader::open(v[i], element_path(path, i)));
    DeviceRule rule;
    std::string type = "a";
    TRY(r.read_required("allow", rule.allow));
    TRY(r.read("type", type));
    TRY(r.read("major", rule.major));
    TRY(r.read("minor", rule.minor));
    TRY(r.read("access", rule.access));
    TRY(r.finish());
    if (type.size() != 1 || std::string_view("acb").find(type[0]) == std::string_view::npos)
      return Error(r.path_of("type") + ": unknown device rule type " + quote(type) + " (expected a, c or b)");
    rule.type = type[0];
    if (rule.major && *rule.major < 0) return Error(r.path_of("major") + ": must not be negative");
    if (rule.minor && *rule.minor < 0) return Error(r.path_of("minor") + ": must not be negative");
    std::string seen;
    for (char c : rule.access) {
      if (std::string_view("rwm").find(c) == std::string_view::npos || seen.find(c) != std::string::npos)
        return Error(r.path_of("access") + ": " + quote(rule.access) + " is not a combination of r, w and m");
      seen += c;
    }
    out.push_back(rule);
  }
  return ok();
}

// Memory values: bytes, or -1 for unlimited (runtime-spec int64).
Status read_memory_value(ObjectReader& r, std::string_view key, std::optional<int64_t>& out) {
  TRY(r.read(key, out));
  if (out && *out < -1)
    return Error(r.path_of(key) + ": " + std::to_string(*out) +
                 " is neither a byte count nor -1 (unlimited)");
  return ok();
}

Status parse_memory(const Json& v, const std::string& path, MemoryResources& out) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  TRY(read_memory_value(r, "limit", out.limit));
  TRY(read_memory_value(r, "reservation", out.reservation));
  TRY(read_memory_value(r, "swap", out.swap));
  TRY(read_memory_value(r, "kernel", out.kernel));
  // Docker-era clients write swappiness -1 (or its uint64 form) for "leave it alone".
  if (const Json* s = r.find("swappiness")) {
    const auto* i = s->get_ptr<const Json::number_integer_t*>();
    const auto* u = s->get_ptr<const Json::number_unsigned_t*>();
    bool unset = (i != nullptr && *i == -1 && u == nullptr) || (u != nullptr && *u == UINT64_MAX);
    if (!unset) {
      uint64_t value = 0;
      TRY(json_reader::get(*s, r.path_of("swappiness"), value));
      if (value > 100)
        return Error(r.path_of("swappiness") + ": " + std::to_string(value) + " is out of range (0..100)");
      out.swappiness = value;
    }
  }
  TRY(r.read("disableOOMKiller", out.disable_oom_killer));
  // kernelTCP limits are deprecated by the kernel and not applied by strata: a limit given
  // here would silently not hold.
  TRY(r.refuse("kernelTCP", "not supported (kernel TCP memory limits are deprecated)"));
  // useHierarchy=true is what every kernel we run on does anyway; false cannot be honoured.
  if (const Json* h = r.find("useHierarchy")) {
    bool b = true;
    TRY(json_reader::get(*h, r.path_of("useHierarchy"), b));
    if (!b)
      return Error(r.path_of("useHierarchy") +
                   ": false is not supported (memory accounting is always hierarchical)");
  }
  // checkBeforeUpdate=true asks `update` to refuse a limit below current usage; we do not
  // check, so only false is honest.
  if (const Json* c = r.find("checkBeforeUpdate")) {
    bool b = false;
    TRY(json_reader::get(*c, r.path_of("checkBeforeUpdate"), b));
    if (b) return Error(r.path_of("checkBeforeUpdate") + ": true is not supported");
  }
  return r.finish();
}

Status check_cpu_list(const std::string& s, const std::string& path) {
  // "0-3,7": checked here so that garbage is refused before it reaches cpuset.cpus.
  for (char c : s)
    if ((c < '0' || c > '9') && c != ',' && c != '-')
      return Error(path + ": " + quote(s) + " is not a list of ranges like \"0-3,7\"");
  return ok();
}

Status parse_cpu(const Json& v, const std::string& path, CpuResources& out) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  TRY(r.read("shares", out.shares));
  TRY(r.read("quota", out.quota));
  TRY(r.read("period", out.period));
  TRY(r.read("realtimeRuntime", out.realtime_runtime));
  TRY(r.read("realtimePeriod", out.realtime_period));
  TRY(r.read("cpus", out.cpus));
  TRY(check_cpu_list(out.cpus, r.path_of("cpus")));
  TRY(r.read("mems", out.mems));
  TRY(check_cpu_list(out.mems, r.path_of("mems")));
  TRY(r.read("idle", out.idle));
  if (out.idle && *out.idle != 0 && *out.idle != 1)
    return Error(r.path_of("idle") + ": " + std::to_string(*out.idle) + " is not 0 or 1");
  TRY(r.refuse("burst"));
  return r.finish();
}

Status parse_block_io(const Json& v, const std::string& path, BlockIoResources& out) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  TRY(r.read("weight", out.weight));
  TRY(r.read("leafWeight", out.leaf_weight));
  for (const auto* w : {&out.weight, &out.leaf_weight}) {
    if (*w && **w != 0 && (**w < 10 || **w > 1000))
      return Error(r.path_of(w == &out.weight ? "weight" : "leafWeight") + ": " + std::to_string(**w) +
                   " is out of range (10..1000)");
  }
  for (std::string_view key : {"weightDevice", "throttleReadBpsDevice", "throttleWriteBpsDevice",
                               "throttleReadIOPSDevice", "throttleWriteIOPSDevice"})
    TRY(r.refuse(key));
  return r.finish();
}

Status parse_hugepage_limits(const Json& v, const std::string& path, std::vector<HugepageLimit>& out) {
  TRY(json_reader::check_array(v, path));
  for (size_t i = 0; i < v.size(); ++i) {
    ASSIGN_OR_RETURN(auto r, ObjectReader::open(v[i], element_path(path, i)));
    HugepageLimit h;
    TRY(r.read_required("pageSize", h.page_size));
    TRY(r.read_required("limit", h.limit));
    TRY(r.finish());
    // "2MB", "1GB", "64KB": the suffix of hugetlb.<size>.limit_in_bytes.
    std::string_view s = h.page_size;
    size_t digits = 0;
    while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
    std::string_view unit = s.substr(digits);
    if (digits == 0 || (unit != "KB" && unit != "MB" && unit != "GB"))
      return Error(r.path_of("pageSize") + ": " + quote(h.page_size) + " is not a page size like \"2MB\"");
    out.push_back(std::move(h));
  }
  return ok();
}

Status parse_resources(const Json& v, const std::string& path, Resources& out) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  if (const Json* d = r.find("devices")) TRY(parse_device_rules(*d, r.path_of("devices"), out.devices));
  if (const Json* m = r.find("memory")) {
    MemoryResources mem;
    TRY(parse_memory(*m, r.path_of("memory"), mem));
    out.memory = mem;
  }
  if (const Json* c = r.find("cpu")) {
    CpuResources cpu;
    TRY(parse_cpu(*c, r.path_of("cpu"), cpu));
    out.cpu = std::move(cpu);
  }
  if (const Json* p = r.find("pids")) {
    ASSIGN_OR_RETURN(auto pr, ObjectReader::open(*p, r.path_of("pids")));
    int64_t limit = 0;
    TRY(pr.read_required("limit", limit));
    TRY(pr.finish());
    if (limit < -1)
      return Error(pr.path_of("limit") + ": " + std::to_string(limit) +
                   " is neither a count nor -1 (unlimited)");
    out.pids_limit = limit;
  }
  if (const Json* b = r.find("blockIO")) {
    BlockIoResources bio;
    TRY(parse_block_io(*b, r.path_of("blockIO"), bio));
    out.block_io = bio;
  }
  if (const Json* h = r.find("hugepageLimits"))
    TRY(parse_hugepage_limits(*h, r.path_of("hugepageLimits"), out.hugepage_limits));
  TRY(r.read("unified", out.unified));
  for (const auto& [key, value] : out.unified) {
    // Each key names a file in the container's cgroup directory: nothing that leaves it.
    if (key.empty() || key.front() == '.' || key.find('/') != std::string::npos)
      return Error(r.path_of("unified") + ": " + quote(key) + " is not a cgroup file name");
  }
  TRY(r.refuse("network"));
  TRY(r.refuse("rdma"));
  return r.finish();
}

// ---- seccomp ----------------------------------------------------------------------------

constexpr std::string_view kSeccompActions[] = {
    "SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE",        "SCMP_ACT_ALLOW",       "SCMP_ACT_LOG",
};

constexpr std::string_view kSeccompOps[] = {
    "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",        "SCMP_CMP_EQ",
    "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
};

// config-linux.md's list of architectures.
constexpr std::string_view kSeccompArchitectures[] = {
    "SCMP_ARCH_X86",     "SCMP_ARCH_X86_64",   "SCMP_ARCH_X32",         "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",      "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",   "SCMP_ARCH_PPC64LE",  "SCMP_ARCH_S390",        "SCMP_ARCH_S390X",
    "SCMP_ARCH_PARISC",  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",     "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",    "SCMP_ARCH_SH",       "SCMP_ARCH_SHEB",
};

constexpr std::string_view kSeccompFlags[] = {
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
};

Status check_action(const std::string& action, const std::string& path) {
  if (action == "SCMP_ACT_NOTIFY")
    return Error(path + ": SCMP_ACT_NOTIFY is not supported (no seccomp notify agent support)");
  if (!one_of(action, kSeccompActions)) return Error(path + ": unknown seccomp action " + quote(action));
  return ok();
}

// errnoRet only means something to the actions that return an errno.
Status check_errno_ret(const std::string& action, const std::optional<uint32_t>& errno_ret,
                       const std::string& path) {
  if (errno_ret && action != "SCMP_ACT_ERRNO" && action != "SCMP_ACT_TRACE")
    return Error(path + ": only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not " + action);
  return ok();
}

template <class Names>
Status check_names(const std::vector<std::string>& names, const Names& known, std::string_view what,
                   const std::string& path) {
  for (size_t i = 0; i < names.size(); ++i)
    if (!one_of(names[i], known))
      return Error(element_path(path, i) + ": unknown seccomp " + std::string(what) + " " + quote(names[i]));
  return ok();
}

Status parse_seccomp_args(const Json& v, const std::string& path, std::vector<SeccompArg>& out) {
  TRY(json_reader::check_array(v, path));
  for (size_t i = 0; i < v.size(); ++i) {
    ASSIGN_OR_RETURN(auto r, ObjectReader::open(v[i], element_path(path, i)));
    SeccompArg a;
    TRY(r.read_required("index", a.index));
    TRY(r.read_required("value", a.value));
    TRY(r.read("valueTwo", a.value_two));
    TRY(r.read_required("op", a.op));
    TRY(r.finish());
    if (a.index > 5)
      return Error(r.path_of("index") + ": " + std::to_string(a.index) + " is not a syscall argument (0..5)");
    if (!one_of(a.op, kSeccompOps))
      return Error(r.path_of("op") + ": unknown seccomp operator " + quote(a.op));
    out.push_back(std::move(a));
  }
  return ok();
}

Status parse_seccomp(const Json& v, const std::string& path, Seccomp& out) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  TRY(r.read_required("defaultAction", out.default_action));
  TRY(check_action(out.default_action, r.path_of("defaultAction")));
  TRY(r.read("defaultErrnoRet", out.default_errno_ret));
  TRY(check_errno_ret(out.default_action, out.default_errno_ret, r.path_of("defaultErrnoRet")));
  TRY(r.read("architectures", out.architectures));
  TRY(check_names(out.architectures, kSeccompArchitectures, "architecture", r.path_of("architectures")));
  TRY(r.read("flags", out.flags));
  TRY(check_names(out.flags, kSeccompFlags, "flag", r.path_of("flags")));
  TRY(r.refuse("listenerPath", "not supported (no seccomp notify agent support)"));
  TRY(r.refuse("listenerMetadata", "not supported (no seccomp notify agent support)"));
  if (const Json* list = r.find("syscalls")) {
    std::string lpath = r.path_of("syscalls");
    TRY(json_reader::check_array(*list, lpath));
    for (size_t i = 0; i < list->size(); ++i) {
      ASSIGN_OR_RETURN(auto s, ObjectReader::open((*list)[i], element_path(lpath, i)));
      SeccompSyscall sc;
      TRY(s.read_required("names", sc.names));
      if (sc.names.empty()) return Error(s.path_of("names") + ": must not be empty");
      for (size_t j = 0; j < sc.names.size(); ++j)
        if (sc.names[j].empty()) return Error(element_path(s.path_of("names"), j) + ": must not be empty");
      TRY(s.read_required("action", sc.action));
      TRY(check_action(sc.action, s.path_of("action")));
      TRY(s.read("errnoRet", sc.errno_ret));
      TRY(check_errno_ret(sc.action, sc.errno_ret, s.path_of("errnoRet")));
      if (const Json* args = s.find("args")) TRY(parse_seccomp_args(*args, s.path_of("args"), sc.args));
      TRY(s.finish());
      out.syscalls.push_back(std::move(sc));
    }
  }
  return r.finish();
}

// ---- the rest ---------------------------------------------------------------------------

struct PropagationName {
  std::string_view name;
  unsigned long flags;
};

constexpr PropagationName kRootfsPropagation[] = {
    {"shared", MS_SHARED},         {"rshared", MS_SHARED | MS_REC},
    {"slave", MS_SLAVE},           {"rslave", MS_SLAVE | MS_REC},
    {"private", MS_PRIVATE},       {"rprivate", MS_PRIVATE | MS_REC},
    {"unbindable", MS_UNBINDABLE}, {"runbindable", MS_UNBINDABLE | MS_REC},
};

// IPC sysctls the kernel scopes to the ipc namespace (ipc/ipc_sysctl.c).
constexpr std::string_view kIpcSysctls[] = {
    "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
    "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
};

// A sysctl is written under /proc/sys inside the container: only those the kernel scopes to a
// namespace the container owns can be set, or the write would change the host.
Status check_sysctl(const std::string& key, const Linux& linux, const std::string& path) {
  if (key.empty() || key.front() == '/' || key.front() == '.' || key.find("..") != std::string::npos)
    return Error(path + ": " + quote(key) + " is not a sysctl name");
  std::string name = key;
  for (char& c : name)
    if (c == '/') c = '.';
  auto needs = [&](NamespaceType t, std::string_view ns) -> Status {
    if (!linux.has_namespace(t))
      return Error(path + ": " + quote(key) + " needs " + std::string(ns) +
                   " namespace in linux.namespaces (it would otherwise change the host)");
    return ok();
  };
  if (one_of(name, kIpcSysctls) || name.starts_with("fs.mqueue."))
    return needs(NamespaceType::kIpc, "an ipc");
  if (name.starts_with("net.")) return needs(NamespaceType::kNetwork, "a network");
  if (name == "kernel.hostname" || name == "kernel.domainname") return needs(NamespaceType::kUts, "a uts");
  return Error(path + ": " + quote(key) + " is not namespaced; setting it would change the host");
}

Status parse_time_offsets(const Json& v, const std::string& path, std::map<std::string, int64_t>& out) {
  TRY(json_reader::check_object(v, path));
  for (const auto& [clock, value] : v.items()) {
    std::string p = json_reader::field_path(path, clock);
    if (clock != "monotonic" && clock != "boottime")
      return Error(p + ": unknown clock (expected monotonic or boottime)");
    ASSIGN_OR_RETURN(auto r, ObjectReader::open(value, p));
    int64_t secs = 0;
    uint32_t nanosecs = 0;
    TRY(r.read("secs", secs));
    TRY(r.read("nanosecs", nanosecs));
    TRY(r.finish());
    if (nanosecs != 0) return Error(r.path_of("nanosecs") + ": not supported (whole seconds only)");
    out[clock] = secs;
  }
  return ok();
}

Status check_paths(const std::vector<std::string>& paths, const std::string& path) {
  for (size_t i = 0; i < paths.size(); ++i)
    if (!is_absolute(paths[i]))
      return Error(element_path(path, i) + ": must be an absolute path, got " + quote(paths[i]));
  return ok();
}

// Rules between namespaces and mappings (config-linux.md "User namespace mappings").
Status check_user_namespace(const Linux& l, const std::string& path) {
  const Namespace* user = l.find_namespace(NamespaceType::kUser);
  bool mappings = !l.uid_mappings.empty() || !l.gid_mappings.empty();
  if (user == nullptr) {
    if (mappings)
      return Error(json_reader::field_path(path, l.uid_mappings.empty() ? "gidMappings" : "uidMappings") +
                   ": needs a user namespace in " + path + ".namespaces");
    return ok();
  }
  if (!user->path.empty()) {
    // Joining a user namespace takes the mappings it already has.
    if (mappings)
      return Error(json_reader::field_path(path, l.uid_mappings.empty() ? "gidMappings" : "uidMappings") +
                   ": cannot be applied to an existing user namespace (" + path + ".namespaces has a path)");
    return ok();
  }
  // A new user namespace without a map leaves every id unmapped (the process runs as the
  // overflow user and cannot setgroups); refuse rather than start something that cannot work.
  if (l.uid_mappings.empty())
    return Error(json_reader::field_path(path, "uidMappings") + ": required with a new user namespace");
  if (l.gid_mappings.empty())
    return Error(json_reader::field_path(path, "gidMappings") + ": required with a new user namespace");
  return ok();
}

}  // namespace

Status parse_linux(const Json& v, const std::string& path, Linux& out, std::vector<std::string>& warnings) {
  ASSIGN_OR_RETURN(auto r, ObjectReader::open(v, path));
  if (const Json* ns = r.find("namespaces"))
    TRY(parse_namespaces(*ns, r.path_of("namespaces"), out.namespaces));
  if (const Json* m = r.find("uidMappings"))
    TRY(parse_id_mappings(*m, r.path_of("uidMappings"), out.uid_mappings));
  if (const Json* m = r.find("gidMappings"))
    TRY(parse_id_mappings(*m, r.path_of("gidMappings"), out.gid_mappings));
  TRY(check_user_namespace(out, path));

  if (const Json* t = r.find("timeOffsets")) {
    TRY(parse_time_offsets(*t, r.path_of("timeOffsets"), out.time_offsets));
    const Namespace* time = out.find_namespace(NamespaceType::kTime);
    if (!out.time_offsets.empty() && (time == nullptr || !time->path.empty()))
      return Error(r.path_of("timeOffsets") + ": needs a new time namespace in " + r.path_of("namespaces"));
  }
  if (const Json* d = r.find("devices")) TRY(parse_devices(*d, r.path_of("devices"), out.devices));
  if (const Json* res = r.find("resources")) {
    Resources resources;
    TRY(parse_resources(*res, r.path_of("resources"), resources));
    out.resources = std::move(resources);
  }
  TRY(r.read("cgroupsPath", out.cgroups_path));
  // Relative or absolute, systemd "slice:prefix:name" or a path: never one that climbs out of
  // the cgroup root.
  if (has_dotdot(out.cgroups_path))
    return Error(r.path_of("cgroupsPath") + ": " + quote(out.cgroups_path) + " must not contain \"..\"");

  TRY(r.read("sysctl", out.sysctl));
  for (const auto& [key, value] : out.sysctl) TRY(check_sysctl(key, out, r.path_of("sysctl")));

  if (const Json* s = r.find("seccomp")) {
    Seccomp seccomp;
    TRY(parse_seccomp(*s, r.path_of("seccomp"), seccomp));
    out.seccomp = std::move(seccomp);
  }

  std::string propagation;
  TRY(r.read("rootfsPropagation", propagation));
  if (!propagation.empty()) {
    const PropagationName* found = nullptr;
    for (const auto& p : kRootfsPropagation)
      if (p.name == propagation) found = &p;
    if (found == nullptr)
      return Error(r.path_of("rootfsPropagation") + ": unknown propagation " + quote(propagation));
    out.rootfs_propagation = found->flags;
  }

  TRY(r.read("maskedPaths", out.masked_paths));
  TRY(check_paths(out.masked_paths, r.path_of("maskedPaths")));
  TRY(r.read("readonlyPaths", out.readonly_paths));
  TRY(check_paths(out.readonly_paths, r.path_of("readonlyPaths")));

  TRY(r.read("mountLabel", out.mount_label));
  if (!out.mount_label.empty())
    warnings.push_back(r.path_of("mountLabel") + ": ignored, strata does not apply SELinux labels (" +
                       quote(out.mount_label) + ")");

  TRY(r.refuse("intelRdt"));
  TRY(r.refuse("personality"));
  TRY(r.refuse("memoryPolicy"));
  TRY(r.refuse("netDevices"));
  return r.finish();
}

}  // namespace strata::oci::spec_internal
