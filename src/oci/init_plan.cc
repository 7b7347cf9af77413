// Parent side of the container init: a validated Spec becomes an InitPlan (init.h) that the
// child can execute without allocating. Host paths are checked here so that a bad bundle
// fails before anything is cloned.
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base/fs.h"
#include "oci/init.h"

namespace strata::oci {
namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

struct DefaultDevice {
  const char* path;
  unsigned major, minor;
};
constexpr DefaultDevice kDefaultDevices[] = {
    {"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
    {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

Result<MountStep> plan_mount(const Mount& m, size_t index, const Spec& spec, const InitOptions& opts) {
  MountStep s;
  s.dest = fs::clean(m.destination);
  s.fstype = m.type;
  s.data = m.data;
  s.flags = m.flags;
  s.clear_flags = m.clear_flags;
  s.propagation = m.propagation;
  s.rec_attr_set = m.rec_attr_set;
  s.rec_attr_clr = m.rec_attr_clr;
  std::string field = "mounts[" + std::to_string(index) + "] (" + m.destination + ")";
  if (m.tmpcopyup) return Error(field + ": the tmpcopyup option is not supported yet");
  if (m.is_bind()) {
    s.kind = MountStep::Kind::kBind;
    s.recursive = (m.flags & MS_REC) != 0;
    s.flags &= ~(MS_BIND | MS_REC);
    s.source = m.source.empty() || m.source[0] == '/' ? m.source : fs::join(opts.bundle, m.source);
    struct stat st {};
    if (::stat(s.source.c_str(), &st) != 0) return Error::sys(field + ": bind source " + s.source);
    s.source_is_file = !S_ISDIR(st.st_mode);
    return s;
  }
  s.source = m.source.empty() ? m.type : m.source;
  if (m.type == "cgroup" || m.type == "cgroup2") {
    bool cgroupns = spec.linux.has_namespace(NamespaceType::kCgroup);
    if (opts.cgroup_version == CgroupVersion::kV2) {
      if (cgroupns) {
        s.kind = MountStep::Kind::kCgroupV2;
      } else {
        // Without a cgroup namespace, cgroup2 would show the host's whole tree: bind the
        // container's own directory instead.
        s.kind = MountStep::Kind::kBind;
        s.recursive = true;
        auto it = opts.cgroup_paths.find("");
        s.source = it != opts.cgroup_paths.end() ? it->second : "/sys/fs/cgroup";
        s.flags |= MS_NOSUID | MS_NODEV | MS_NOEXEC;
      }
    } else {
      s.kind = MountStep::Kind::kCgroupV1;
      for (const auto& [controller, host] : opts.cgroup_paths) {
        std::string name = controller;
        if (name.rfind("name=", 0) == 0) name = name.substr(5);
        if (name.empty() || name.find('/') != std::string::npos) continue;
        s.cgroup_binds.emplace_back(name, host);
      }
    }
    return s;
  }
  s.kind = MountStep::Kind::kMount;
  return s;
}

}  // namespace

Status plan_process(const Process& proc, const std::optional<Seccomp>& seccomp, InitPlan& plan,
                    const std::string& seccomp_cache_dir) {
  plan.args = proc.args;
  plan.env = proc.env;
  plan.path_env = kDefaultPath;
  for (const auto& e : proc.env) {
    if (e.rfind("PATH=", 0) == 0) plan.path_env = e.substr(5);
  }
  plan.cwd = proc.cwd;
  plan.uid = proc.user.uid;
  plan.gid = proc.user.gid;
  plan.additional_gids.assign(proc.user.additional_gids.begin(), proc.user.additional_gids.end());
  if (proc.user.umask) plan.umask = static_cast<mode_t>(*proc.user.umask);
  plan.rlimits = proc.rlimits;
  plan.caps = plan_capabilities(proc.capabilities);
  plan.no_new_privs = proc.no_new_privileges;
  if (seccomp) {
    auto prog = compile_seccomp_cached(*seccomp, seccomp_cache_dir);
    if (!prog) return std::move(prog).error().context("linux.seccomp");
    plan.seccomp = std::move(*prog);
  }
  plan.terminal = proc.terminal;
  if (proc.console_size) {
    plan.console_rows = static_cast<unsigned short>(proc.console_size->height);
    plan.console_cols = static_cast<unsigned short>(proc.console_size->width);
  }
  return ok();
}

HookPlan make_hook_plan(const Hook& h) {
  HookPlan p;
  p.path = h.path;
  p.args = h.args.empty() ? std::vector<std::string>{h.path} : h.args;
  p.env = h.env;
  p.timeout_s = h.timeout_s.value_or(0);
  return p;
}

void finalize_plan(InitPlan& plan) {
  // A NULL-terminated array of pointers into strings that stay put from here on.
  auto pointers = [](std::vector<std::string>& strings, std::vector<char*>& out) {
    out.clear();
    for (auto& s : strings) out.push_back(s.data());
    out.push_back(nullptr);
  };
  pointers(plan.args, plan.argv);
  pointers(plan.env, plan.envp);
  plan.stub_argv.clear();
  if (plan.exec_stub_fd >= 0) {
    plan.stub_fds = (plan.sync_fd >= 0 ? std::to_string(plan.sync_fd) : std::string("-")) +
                    (plan.fifo_fd >= 0 ? "," + std::to_string(plan.fifo_fd) : std::string());
    plan.stub_argv.push_back(plan.stub_fds.data());
    plan.stub_argv.push_back(nullptr);  // the path, known to the child only
    plan.stub_argv.insert(plan.stub_argv.end(), plan.argv.begin(), plan.argv.end());
  }
  for (auto* hooks : {&plan.create_container_hooks, &plan.start_container_hooks}) {
    for (auto& h : *hooks) {
      pointers(h.args, h.argv);
      pointers(h.env, h.envp);
    }
  }
}

Result<InitPlan> build_init_plan(const Spec& spec, const InitOptions& opts) {
  InitPlan plan;
  if (!spec.process) return Error("process: a container needs a process to run");
  const Process& proc = *spec.process;

  // Namespaces. A joined user namespace must own every new namespace, so clone3 cannot create
  // them (they would belong to the runtime's user namespace): the child unshares them instead.
  const Namespace* userns = spec.linux.find_namespace(NamespaceType::kUser);
  bool join_user = userns != nullptr && !userns->path.empty();
  plan.new_userns = userns != nullptr && userns->path.empty();
  plan.in_userns = userns != nullptr;
  for (const auto& ns : spec.linux.namespaces) {
    int flag = namespace_clone_flag(ns.type);
    if (!ns.path.empty()) {
      int fd = ::open(ns.path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        return Error::sys("linux.namespaces: open " + std::string(namespace_name(ns.type)) + " namespace " +
                          ns.path);
      }
      if (ns.type == NamespaceType::kUser) {
        plan.join.insert(plan.join.begin(), {fd, flag});  // first: it owns the others
      } else {
        plan.join.emplace_back(fd, flag);
      }
      continue;
    }
    if (ns.type == NamespaceType::kCgroup) {
      // Unshared by the child after the parent moved it into its cgroup, so the namespace's
      // root is the container's cgroup rather than the runtime's.
      plan.unshare_flags |= flag;
    } else if (join_user && ns.type != NamespaceType::kUser) {
      plan.unshare_flags |= flag;
    } else {
      plan.clone_flags |= flag;
    }
  }
  if (plan.new_userns) {
    for (const auto& [fd, type] : plan.join) {
      if (type != CLONE_NEWPID && type != CLONE_NEWTIME) plan.late_userns = true;
    }
  }
  if (plan.late_userns) {
    // clone3 would make the user namespace first and setns() into the joined ones (owned by
    // the host's) would then fail with EPERM.
    plan.unshare_flags |= plan.clone_flags & ~CLONE_NEWUSER;
    plan.clone_flags = 0;
  }
  if (!spec.linux.time_offsets.empty()) {
    // linux.timeOffsets can only be written before any process is in the time namespace, and
    // clone3 would put the child there at once: the child unshares it, writes the offsets and
    // forks the real init into it. A pid namespace moves along, or the short-lived child would
    // be its init.
    plan.clone_flags &= ~(CLONE_NEWTIME | CLONE_NEWPID);
    plan.unshare_flags |= CLONE_NEWTIME;
    if (spec.linux.find_namespace(NamespaceType::kPid) != nullptr &&
        spec.linux.find_namespace(NamespaceType::kPid)->path.empty())
      plan.unshare_flags |= CLONE_NEWPID;
    for (const auto& [clock, secs] : spec.linux.time_offsets)
      plan.time_offsets += clock + " " + std::to_string(secs) + " 0\n";
  }
  if ((plan.unshare_flags & (CLONE_NEWPID | CLONE_NEWTIME)) != 0) plan.second_fork = true;
  plan.new_mountns = spec.linux.has_namespace(NamespaceType::kMount);
  if (!plan.new_mountns) return Error("linux.namespaces: a mount namespace is required");
  if (const Namespace* m = spec.linux.find_namespace(NamespaceType::kMount);
      m != nullptr && !m->path.empty()) {
    return Error("linux.namespaces: joining an existing mount namespace (" + m->path +
                 ") is not supported: the container's root would be mounted in it");
  }

  // Root filesystem.
  plan.rootfs = spec.root.path[0] == '/' ? spec.root.path : fs::join(opts.bundle, spec.root.path);
  plan.rootfs = fs::clean(plan.rootfs);
  struct stat st {};
  if (::stat(plan.rootfs.c_str(), &st) != 0) return Error::sys("root.path: rootfs " + plan.rootfs);
  if (!S_ISDIR(st.st_mode)) return Error("root.path: rootfs " + plan.rootfs + " is not a directory", ENOTDIR);
  plan.rootfs_propagation = spec.linux.rootfs_propagation;
  plan.no_pivot = opts.no_pivot;
  plan.readonly_root = spec.root.readonly;
  bool dev_bound = false;
  for (size_t i = 0; i < spec.mounts.size(); ++i) {
    ASSIGN_OR_RETURN(MountStep s, plan_mount(spec.mounts[i], i, spec, opts));
    if (s.dest == "/dev" && s.kind == MountStep::Kind::kBind) dev_bound = true;
    plan.mounts.push_back(std::move(s));
  }
  plan.default_devices = !dev_bound;
  bool cgroup2_in_cgroupns = false;
  for (const auto& m : plan.mounts) cgroup2_in_cgroupns |= m.kind == MountStep::Kind::kCgroupV2;
  plan.overlap_cgroup_join = !plan.second_fork && !cgroup2_in_cgroupns;
  plan.defer_cgroupns = plan.overlap_cgroup_join && (plan.unshare_flags & CLONE_NEWCGROUP) != 0;
  plan.bind_devices = plan.in_userns;
  if (plan.default_devices) {
    for (const auto& d : kDefaultDevices) {
      plan.devices.push_back(DeviceStep{d.path, S_IFCHR | 0666, makedev(d.major, d.minor), 0, 0});
    }
  }
  for (const auto& d : spec.linux.devices) {
    DeviceStep s;
    s.dest = fs::clean(d.path);
    mode_t type = d.type == 'b' ? S_IFBLK : d.type == 'p' ? S_IFIFO : S_IFCHR;
    s.mode = type | (d.file_mode.value_or(0666) & 07777);
    s.dev = makedev(static_cast<unsigned>(d.major), static_cast<unsigned>(d.minor));
    s.uid = d.uid.value_or(0);
    s.gid = d.gid.value_or(0);
    // Replace a default device of the same path rather than creating it twice.
    std::erase_if(plan.devices, [&](const DeviceStep& o) { return o.dest == s.dest; });
    plan.devices.push_back(std::move(s));
  }
  plan.masked_paths = spec.linux.masked_paths;
  plan.readonly_paths = spec.linux.readonly_paths;
  plan.hostname = spec.hostname;
  plan.set_hostname = !spec.hostname.empty();
  plan.domainname = spec.domainname;
  plan.set_domainname = !spec.domainname.empty();
  for (const auto& [key, value] : spec.linux.sysctl) {
    std::string path = "/proc/sys/" + key;
    for (size_t i = 10; i < path.size(); ++i)
      if (path[i] == '.') path[i] = '/';
    plan.sysctl.emplace_back(path, value);
  }

  // Process.
  TRY(plan_process(proc, spec.linux.seccomp, plan, opts.seccomp_cache_dir));
  // An unprivileged runtime must deny setgroups(2) in a new user namespace before it may
  // write gid_map; the process then keeps no supplementary groups.
  plan.setgroups_allowed = !(plan.new_userns && ::geteuid() != 0);
  if (!plan.setgroups_allowed && !plan.additional_gids.empty()) {
    return Error(
        "process.user.additionalGids: cannot be set by an unprivileged runtime in a new user namespace");
  }
  plan.console_fd = opts.console_fd;
  plan.preserve_fds = opts.preserve_fds;
  for (const auto& h : spec.hooks.create_container) plan.create_container_hooks.push_back(make_hook_plan(h));
  for (const auto& h : spec.hooks.start_container) plan.start_container_hooks.push_back(make_hook_plan(h));
  return plan;
}

}  // namespace strata::oci
