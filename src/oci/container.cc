// Container lifecycle (create, start, state, kill, delete, pause, resume, ps, update, list):
// the runtime side of runtime-spec runtime.md with runc's behaviour. Each step that acquires
// something arms a Cleanup, so a failure anywhere in create leaves no process, cgroup, state
// directory or mount (the mounts live in the container's own mount namespace).
#include "oci/container.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/cleanup.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "oci/exe_guard.h"
#include "oci/hooks.h"
#include "oci/init.h"
#include "oci/lifecycle_internal.h"
#include "oci/sync.h"

namespace strata::oci {
namespace detail {
namespace {

std::vector<DeviceRule> device_rules(const Spec& spec) {
  std::vector<DeviceRule> rules;
  if (!spec.linux.resources) return rules;
  rules = spec.linux.resources->devices;
  if (rules.empty()) return rules;
  // The devices every container gets are allowed whatever the config's list says, as runc does.
  auto allow = [&](char type, int64_t major, std::optional<int64_t> minor) {
    rules.push_back(DeviceRule{true, type, major, minor, "rwm"});
  };
  // mknod of any node is allowed (using it is still filtered), so that linux.devices entries
  // can be created, as runc's defaults do.
  rules.push_back(DeviceRule{true, 'c', std::nullopt, std::nullopt, "m"});
  rules.push_back(DeviceRule{true, 'b', std::nullopt, std::nullopt, "m"});
  allow('c', 1, 3);
  allow('c', 1, 5);
  allow('c', 1, 7);
  allow('c', 1, 8);
  allow('c', 1, 9);
  allow('c', 5, 0);
  allow('c', 5, 1);
  allow('c', 5, 2);
  allow('c', 136, std::nullopt);
  return rules;
}

Status write_id_maps(pid_t pid, const Spec& spec) {
  auto fmt = [](const std::vector<IdMapping>& maps) {
    std::string s;
    for (const auto& m : maps) {
      s += std::to_string(m.container_id) + " " + std::to_string(m.host_id) + " " + std::to_string(m.size) +
           "\n";
    }
    return s;
  };
  std::string proc = "/proc/" + std::to_string(pid);
  if (::geteuid() != 0) {
    // An unprivileged writer of gid_map must first give up setgroups(2) (user_namespaces(7)).
    TRY_CTX(fs::write_file(proc + "/setgroups", "deny"), "rootless user namespace");
  }
  TRY_CTX(fs::write_file(proc + "/uid_map", fmt(spec.linux.uid_mappings)), "linux.uidMappings");
  TRY_CTX(fs::write_file(proc + "/gid_map", fmt(spec.linux.gid_mappings)), "linux.gidMappings");
  return ok();
}

// Reads messages until `want`; the init may report a failure or die instead.
Result<SyncMsg> expect(int fd, SyncType want, Created& c) {
  for (;;) {
    SyncMsg m;
    int r = sync_recv(fd, &m);
    if (r < 0) return Error::sys("read from container init", -r);
    if (r == 0) return Error("container init exited before reporting (was it killed?)");
    if (m.type == SyncType::kFailure) return child_error(m);
    if (m.type == SyncType::kPid) {
      // After a second fork the real init is our grandchild (reparented to us as subreaper).
      if (c.is_child) ::waitpid(c.pid, nullptr, 0);
      c.pid = m.pid;
      c.pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, m.pid, 0)));
      continue;
    }
    if (m.type == want) return m;
    return Error("container init sent an unexpected message " + std::to_string(static_cast<int>(m.type)));
  }
}

}  // namespace

Error child_error(const SyncMsg& m) {
  std::string what = m.failure.step;
  if (m.failure.detail[0] != '\0') what += std::string(" ") + m.failure.detail;
  return Error(what, m.failure.err);
}

Status write_pid_file(const std::string& path, pid_t pid) {
  if (path.empty()) return ok();
  return fs::write_file_atomic(fs::absolute(path), std::to_string(pid), 0644);
}

Result<UniqueFd> connect_console_socket(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Error::sys("socket");
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Error("--console-socket " + path + ": path too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Error::sys("connect to --console-socket " + path);
  return fd;
}

Result<Spec> load_saved_spec(const StateStore& store, const std::string& id) {
  ASSIGN_OR_RETURN(std::string text, store.load_config(id));
  return parse_spec(text);
}

// start and delete need the saved config only for its poststart/poststop hooks; a config with
// no "hooks" key at all (it was validated at create) skips the parse, a fifth of `start`.
Result<Spec> load_saved_hooks(const StateStore& store, const std::string& id) {
  ASSIGN_OR_RETURN(std::string text, store.load_config(id));
  if (text.find("\"hooks\"") == std::string::npos) return Spec{};
  return parse_spec(text);
}

// Per-phase timings of create, printed with --debug so that a slowdown names its step
// (STYLE.md section 13).
class PhaseTimer {
 public:
  void mark(const char* phase) {
    auto now = std::chrono::steady_clock::now();
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - last_).count();
    if (!text_.empty()) text_ += ", ";
    text_ += std::string(phase) + " " + std::to_string(us) + "us";
    last_ = now;
  }
  std::string summary() const {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(last_ - start_).count();
    return std::to_string(us) + "us (" + text_ + ")";
  }

 private:
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now(), last_ = start_;
  std::string text_;
};

Result<Created> create_impl(const RuntimeContext& ctx, const CreateOptions& opts) {
  auto log = log::get("runtime");
  PhaseTimer timer;
  TRY(validate_id(opts.id));
  if (ctx.systemd_cgroup && !fs::is_dir("/run/systemd/system")) {
    return Error(
        "--systemd-cgroup: systemd is not running on this host (no /run/systemd/system); use the "
        "cgroupfs driver (drop --systemd-cgroup)");
  }
  // The config first: a container it describes may need this process to run from an unwritable
  // copy of its binary (guard_runtime_exe may re-execute us), before anything of it exists.
  std::string bundle = fs::absolute(opts.bundle);
  auto config_text = fs::read_file(bundle + "/config.json");
  if (!config_text) return std::move(config_text).error().context("load bundle " + bundle);
  auto parsed = parse_spec(*config_text);
  if (!parsed) return std::move(parsed).error().context("bundle " + bundle + " config.json");
  Spec& spec = *parsed;
  TRY_CTX(guard_runtime_exe(
              ctx, reaches_runtime_exe(spec, spec.process ? spec.process->capabilities : std::nullopt)),
          "create container " + opts.id);

  StateStore store(ctx.root);
  TRY_CTX(store.ensure_root(), "create --root " + ctx.root);
  ASSIGN_OR_RETURN(UniqueFd lock, store.lock(opts.id));
  std::string dir = store.dir(opts.id);
  if (::mkdir(dir.c_str(), 0700) != 0) {
    if (errno == EEXIST) return Error("container with id \"" + opts.id + "\" already exists", EEXIST);
    return Error::sys("create state directory " + dir);
  }
  Cleanup remove_state([&] { (void)store.remove(opts.id); });
  for (const auto& w : spec.warnings) log->warn("container {}: {}", opts.id, w);
  timer.mark("config");
  bool rootless = ::geteuid() != 0;
  bool new_userns = false;
  if (const Namespace* u = spec.linux.find_namespace(NamespaceType::kUser); u && u->path.empty()) {
    new_userns = true;
    if (spec.linux.uid_mappings.empty() || spec.linux.gid_mappings.empty())
      return Error("linux.uidMappings/gidMappings: required with a new user namespace");
  }
  if (rootless && !new_userns && !spec.linux.has_namespace(NamespaceType::kUser)) {
    return Error(
        "running as an unprivileged user needs a user namespace in linux.namespaces (see `spec --rootless`)");
  }

  // Cgroup first: the init must be inside it before it can fork anything.
  CgroupConfig cgc;
  cgc.cgroups_path = spec.linux.cgroups_path;
  cgc.id = opts.id;
  cgc.rootless = rootless;
  ASSIGN_OR_RETURN(auto cgroup, make_cgroup_manager(cgc));
  // Record the container before anything else can outlive us: if this process is killed
  // from here on, `delete` finds the cgroup in this state (pid 0 reads as stopped).
  ContainerState st;
  st.id = opts.id;
  st.bundle = bundle;
  st.created = now_rfc3339_nanos();
  st.owner_uid = ::geteuid();
  st.cgroup_version = cgroup->version();
  st.cgroup_paths = cgroup->paths();
  st.rootless = rootless;
  st.annotations = spec.annotations;
  TRY(store.save(st));
  TRY_CTX(cgroup->create(), "create cgroup");
  if (cgroup->skipped()) {
    log->warn(
        "container {}: running without a cgroup: the cgroup hierarchy is not delegated to uid {} "
        "(resource limits, pause/resume and kill --all are unavailable)",
        opts.id, ::geteuid());
    st.cgroup_skipped = true;
    TRY(store.save(st));
  }
  Cleanup remove_cgroup([&] { (void)cgroup->destroy(); });
  if (spec.linux.resources) {
    Resources res = *spec.linux.resources;
    res.devices = device_rules(spec);
    TRY_CTX(cgroup->apply(res), "set cgroup limits");
  }
  timer.mark("cgroup");

  UniqueFd console;
  UniqueFd proxy;
  if (!opts.console_socket.empty()) {
    ASSIGN_OR_RETURN(console, connect_console_socket(opts.console_socket));
  } else if (spec.process && spec.process->terminal && opts.proxy_terminal) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0)
      return Error::sys("socketpair for the terminal");
    proxy.reset(sp[0]);
    console.reset(sp[1]);
  } else if (spec.process && spec.process->terminal) {
    return Error(
        "process.terminal is true but no --console-socket was given (use `run` in the foreground, or "
        "set terminal to false)");
  }

  InitOptions io;
  io.bundle = bundle;
  io.cgroup_version = cgroup->version();
  io.cgroup_paths = cgroup->paths();
  io.no_pivot = opts.no_pivot;
  io.preserve_fds = opts.preserve_fds;
  io.console_fd = console.get();
  io.seccomp_cache_dir = ctx.root + "/.seccomp-cache";
  ASSIGN_OR_RETURN(InitPlan plan, build_init_plan(spec, io));
  Cleanup close_join([&] {
    for (auto& [fd, t] : plan.join) ::close(fd);
  });

  std::string fifo = store.fifo_path(opts.id);
  if (::mkfifo(fifo.c_str(), 0600) != 0) return Error::sys("mkfifo " + fifo);
  UniqueFd fifo_fd(::open(fifo.c_str(), O_RDWR | O_CLOEXEC));
  if (!fifo_fd) return Error::sys("open " + fifo);
  plan.fifo_fd = fifo_fd.get();

  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) return Error::sys("socketpair");
  UniqueFd parent_sock(sp[0]), child_sock(sp[1]);
  plan.sync_fd = child_sock.get();
  plan.close_fds = {lock.get(), parent_sock.get()};
  plan.exec_stub_fd = exec_stub_fd();
  finalize_plan(plan);

  // Joining a pid or time namespace applies to our future children: do it here, and return
  // to our own right after clone3 so that our hooks (poststart, poststop) do not run in it.
  UniqueFd own_pidns, own_timens;
  for (const auto& [fd, type] : plan.join) {
    if (type == CLONE_NEWPID && !own_pidns)
      own_pidns.reset(::open("/proc/self/ns/pid_for_children", O_RDONLY | O_CLOEXEC));
    if (type == CLONE_NEWTIME && !own_timens)
      own_timens.reset(::open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC));
  }
  for (auto it = plan.join.begin(); it != plan.join.end();) {
    if (it->second == CLONE_NEWPID || it->second == CLONE_NEWTIME) {
      if (::setns(it->first, it->second) != 0) return Error::sys("linux.namespaces: join pid/time namespace");
      ::close(it->first);
      it = plan.join.erase(it);
    } else {
      ++it;
    }
  }
  if (plan.second_fork) ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  Created c;
  int pidfd = -1;
  struct clone_args ca {};
  ca.flags = static_cast<uint64_t>(plan.clone_flags) | CLONE_PIDFD;
  ca.pidfd = reinterpret_cast<uint64_t>(&pidfd);
  ca.exit_signal = SIGCHLD;
  // cgroup v2: the init is born in its cgroup (CLONE_INTO_CGROUP, Linux 5.7), so there is no
  // migration and no wait for the cgroup_threadgroup_rwsem's RCU grace period. Falls back to
  // a cgroup.procs write where the kernel refuses it.
  UniqueFd cgroup_dir;
  bool born_in_cgroup = false;
  if (cgroup->version() == CgroupVersion::kV2 && !cgroup->skipped()) {
    auto paths = cgroup->paths();
    if (auto it = paths.find(""); it != paths.end())
      cgroup_dir.reset(::open(it->second.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  }
  timer.mark("plan");
  long pid = -1;
  if (cgroup_dir) {
    struct clone_args into = ca;
    into.flags |= CLONE_INTO_CGROUP;
    into.cgroup = static_cast<uint64_t>(cgroup_dir.get());
    pid = ::syscall(SYS_clone3, &into, sizeof into);
    born_in_cgroup = pid >= 0;
  }
  if (pid < 0) pid = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (pid < 0)
    return Error::sys("clone3 the container init (namespaces " + std::to_string(plan.clone_flags) + ")");
  if (pid == 0) {
    run_init(plan);
  }
  if (own_pidns) (void)::setns(own_pidns.get(), CLONE_NEWPID);
  if (own_timens) (void)::setns(own_timens.get(), CLONE_NEWTIME);
  c.pid = static_cast<pid_t>(pid);
  c.pidfd.reset(pidfd);
  c.is_child = true;
  timer.mark("clone");
  child_sock.reset();
  fifo_fd.reset();
  console.reset();
  Cleanup kill_init([&] {
    if (c.pidfd) ::syscall(SYS_pidfd_send_signal, c.pidfd.get(), SIGKILL, nullptr, 0);
    if (!cgroup->skipped()) (void)cgroup->kill_all(SIGKILL);
    if (c.is_child) ::waitpid(c.pid, nullptr, 0);
  });

  if (plan.new_userns && !plan.late_userns) TRY_CTX(write_id_maps(c.pid, spec), "set up user namespace");
  if (born_in_cgroup) plan.overlap_cgroup_join = false;  // nothing left to join
  if (!plan.overlap_cgroup_join && !born_in_cgroup) {
    TRY_CTX(cgroup->add_process(c.pid), "add container init to its cgroup");
  }
  if (spec.process && spec.process->oom_score_adj) {
    TRY_CTX(fs::write_file("/proc/" + std::to_string(c.pid) + "/oom_score_adj",
                           std::to_string(*spec.process->oom_score_adj)),
            "process.oomScoreAdj");
  }

  st.rootfs = plan.rootfs;
  TRY(store.save_config(opts.id, *config_text));

  timer.mark("join-cgroup");
  SyncMsg go;
  go.type = SyncType::kGo;
  if (!sync_send(parent_sock.get(), go)) return Error::sys("signal container init");
  if (plan.overlap_cgroup_join) {
    // The init sets up its mounts meanwhile; it waits for kHooksDone before anything that
    // needs the cgroup (its cgroup namespace, hooks, fork, exec).
    Status joined = cgroup->add_process(c.pid);
    if (!joined.ok()) {
      // The init may have failed (and exited) meanwhile: its own report says why.
      struct pollfd pfd {
        parent_sock.get(), POLLIN, 0
      };
      SyncMsg m;
      if (::poll(&pfd, 1, 100) == 1 && sync_recv(parent_sock.get(), &m) == 1 && m.type == SyncType::kFailure)
        return child_error(m);
      return std::move(joined).error().context("add container init to its cgroup");
    }
  }
  if (plan.late_userns) {
    TRY(expect(parent_sock.get(), SyncType::kUserns, c));
    TRY_CTX(write_id_maps(c.pid, spec), "set up user namespace");
    if (!sync_send(parent_sock.get(), go)) return Error::sys("signal container init");
  }
  ASSIGN_OR_RETURN(SyncMsg mr, expect(parent_sock.get(), SyncType::kMountsReady, c));
  (void)mr;
  timer.mark("rootfs");
  st.pid = c.pid;
  st.pid_start_time = process_start_time(c.pid);
  TRY(store.save(st));
  std::string sj = state_json(st, ContainerStatus::kCreating, false);
  TRY(run_hooks(spec.hooks.prestart, "prestart", sj));
  TRY(run_hooks(spec.hooks.create_runtime, "createRuntime", sj));
  SyncMsg hd;
  hd.type = SyncType::kHooksDone;
  if (!sync_send(parent_sock.get(), hd)) return Error::sys("signal container init");
  std::string started = state_json(st, ContainerStatus::kRunning, false);
  if (started.size() > 65536) {
    return Error("the container's state JSON is " + std::to_string(started.size()) +
                 " bytes (annotations too large): hooks inside the container take at most 65536");
  }
  if (::send(parent_sock.get(), started.data(), started.size(), MSG_NOSIGNAL) < 0)
    return Error::sys("send state to container init");
  timer.mark("hooks");
  TRY(expect(parent_sock.get(), SyncType::kReady, c));
  timer.mark("pivot+process");

  kill_init.cancel();
  remove_cgroup.cancel();
  remove_state.cancel();
  log->debug("container {}: created, init pid {}{}, in {}", opts.id, c.pid,
             born_in_cgroup ? " (born in its cgroup)" : "", timer.summary());
  c.state = std::move(st);
  c.spec = std::move(spec);
  c.proxy = std::move(proxy);
  return c;
}

Status guard_runtime_exe(const RuntimeContext& ctx, bool reaches) {
  if (!must_run_unwritable(reaches)) return ok();
  std::string why = reaches
                        ? "its processes may hold CAP_SYS_PTRACE over the host (it has no user namespace), "
                          "so they could reach this program's binary through /proc/PID/exe"
                        : "the kernel refuses an executable memfd for the exec stub (vm.memfd_noexec)";
  if (ctx.reexec) return ctx.reexec().context(why);
  return Error("this program must run from an unwritable copy of its binary: " + why, EPERM);
}

Status start_impl(const StateStore& store, const ContainerState& st, const Spec& spec) {
  std::string fifo = store.fifo_path(st.id);
  UniqueFd fd(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ENXIO || errno == ENOENT)
      return Error("container \"" + st.id + "\" is not waiting to start");
    return Error::sys("open " + fifo);
  }
  char one = '0';
  if (::write(fd.get(), &one, 1) != 1) return Error::sys("write " + fifo);
  ::unlink(fifo.c_str());
  // runtime-spec: poststart hooks run after the user's process has been executed. The init holds
  // the only reading end of exec.fifo (close-on-exec) until its exec, or its death: then our
  // writing end sees POLLERR.
  struct pollfd pfd {
    fd.get(), 0, 0
  };
  while (::poll(&pfd, 1, -1) < 0 && errno == EINTR) {
  }
  fd.reset();
  Status hooks =
      run_hooks(spec.hooks.poststart, "poststart", state_json(st, ContainerStatus::kRunning, false));
  if (!hooks.ok()) {
    // runtime-spec: a failing poststart hook is logged and the lifecycle continues.
    log::get("runtime")->warn("container {}: {}", st.id, hooks.error().to_string());
  }
  return ok();
}

Status destroy_impl(const StateStore& store, const ContainerState& st, const Spec* spec) {
  auto cg = open_cgroup_manager(st.cgroup_version, st.cgroup_paths, st.cgroup_skipped);
  if (process_start_time(st.pid) == st.pid_start_time && st.pid > 0) {
    if (!st.cgroup_skipped) {
      (void)cg->thaw();
      (void)cg->kill_all(SIGKILL);
    }
    ::kill(st.pid, SIGKILL);
    for (int i = 0; i < 1000 && process_start_time(st.pid) == st.pid_start_time; ++i) {
      ::waitpid(st.pid, nullptr, WNOHANG);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  Status cgs = st.cgroup_skipped ? ok() : cg->destroy();
  if (spec != nullptr) {
    Status hooks =
        run_hooks(spec->hooks.poststop, "poststop", state_json(st, ContainerStatus::kStopped, false));
    if (!hooks.ok()) log::get("runtime")->warn("container {}: {}", st.id, hooks.error().to_string());
  }
  // A cgroup that would not go away keeps the state, so that a later delete can retry it.
  if (!cgs.ok()) return std::move(cgs).error().context("remove cgroup of container " + st.id);
  TRY(store.remove(st.id));
  return ok();
}

}  // namespace detail

using detail::load_saved_spec;

Status create_container(const RuntimeContext& ctx, const CreateOptions& opts) {
  auto c = detail::create_impl(ctx, opts);
  if (!c) return std::move(c).error();
  Status s = detail::write_pid_file(opts.pid_file, c->pid);
  if (!s.ok()) {
    StateStore store(ctx.root);
    auto st = store.load(opts.id);
    if (st) (void)detail::destroy_impl(store, *st, nullptr);
    return std::move(s).error().context("--pid-file");
  }
  return ok();
}

Status start_container(const RuntimeContext& ctx, const std::string& id) {
  StateStore store(ctx.root);
  ASSIGN_OR_RETURN(UniqueFd lock, store.lock_existing(id));
  ASSIGN_OR_RETURN(ContainerState st, store.load(id));
  ContainerStatus status = current_status(store, st);
  if (status != ContainerStatus::kCreated) {
    return Error("cannot start container \"" + id + "\": it is " + std::string(status_name(status)) +
                 ", not created");
  }
  ASSIGN_OR_RETURN(Spec spec, detail::load_saved_hooks(store, id));
  return detail::start_impl(store, st, spec);
}

Result<std::string> container_state_json(const RuntimeContext& ctx, const std::string& id) {
  StateStore store(ctx.root);
  ASSIGN_OR_RETURN(ContainerState st, store.load(id));
  return state_json(st, current_status(store, st), true);
}

Status kill_container(const RuntimeContext& ctx, const std::string& id, int sig, bool all) {
  StateStore store(ctx.root);
  ASSIGN_OR_RETURN(ContainerState st, store.load(id));
  ContainerStatus status = current_status(store, st);
  if (status == ContainerStatus::kStopped) return Error("container \"" + id + "\" is not running", ESRCH);
  if (all && !st.cgroup_skipped) {
    auto cg = open_cgroup_manager(st.cgroup_version, st.cgroup_paths, st.cgroup_skipped);
    TRY_CTX(cg->kill_all(sig), "kill --all container " + id);
    return ok();
  }
  if (::kill(st.pid, sig) != 0) return Error::sys("kill container " + id + " init " + std::to_string(st.pid));
  return ok();
}

Status delete_container(const RuntimeContext& ctx, const std::string& id, bool force) {
  StateStore store(ctx.root);
  auto lock = store.lock_existing(id);
  if (!lock) {
    if (force && lock.error().err() == ENOENT) return ok();  // runc: delete --force of nothing succeeds
    return std::move(lock).error();
  }
  auto st = store.load(id);
  if (!st) {
    if (st.error().err() == ENOENT && fs::is_dir(store.dir(id))) {
      // A create killed before its first state write: nothing but the directory exists yet.
      return store.remove(id);
    }
    if (force && st.error().err() == ENOENT) return ok();  // runc: delete --force of nothing succeeds
    return std::move(st).error();
  }
  ContainerStatus status = current_status(store, *st);
  if ((status == ContainerStatus::kRunning || status == ContainerStatus::kPaused) && !force) {
    return Error("cannot delete container \"" + id +
                 "\" that is not stopped: " + std::string(status_name(status)) + " (use --force)");
  }
  auto spec = detail::load_saved_hooks(store, id);
  return detail::destroy_impl(store, *st, spec ? &*spec : nullptr);
}

static Status set_frozen(const RuntimeContext& ctx, const std::string& id, bool freeze) {
  StateStore store(ctx.root);
  ASSIGN_OR_RETURN(ContainerState st, store.load(id));
  ContainerStatus status = current_status(store, st);
  ContainerStatus need = freeze ? ContainerStatus::kRunning : ContainerStatus::kPaused;
  if (status != need) {
    return Error(std::string(freeze ? "cannot pause" : "cannot resume") + " container \"" + id +
                 "\": it is " + std::string(status_name(status)));
  }
  if (st.cgroup_skipped) return Error("container \"" + id + "\" has no cgroup (rootless without delegation)");
  auto cg = open_cgroup_manager(st.cgroup_version, st.cgroup_paths, st.cgroup_skipped);
  return freeze ? cg->freeze() : cg->thaw();
}

Status pause_container(const RuntimeContext& ctx, const std::string& id) { return set_frozen(ctx, id, true); }
Status resume_container(const RuntimeContext& ctx, const std::string& id) {
  return set_frozen(ctx, id, false);
}

Result<std::vector<pid_t>> container_pids(const RuntimeContext& ctx, const std::string& id) {
  StateStore store(ctx.root);
  ASSIGN_OR_RETURN(ContainerState st, store.load(id));
  ContainerStatus status = current_status(store, st);
  if (status == ContainerStatus::kStopped) return std::vector<pid_t>{};
  if (st.cgroup_skipped) return std::vector<pid_t>{st.pid};
  auto cg = open_cgroup_manager(st.cgroup_version, st.cgroup_paths, st.cgroup_skipped);
  return cg->pids();
}

Status update_container(const RuntimeContext& ctx, const std::string& id, const Resources& res) {
  StateStore store(ctx.root);
  ASSIGN_OR_RETURN(UniqueFd lock, store.lock_existing(id));
  ASSIGN_OR_RETURN(ContainerState st, store.load(id));
  if (current_status(store, st) == ContainerStatus::kStopped)
    return Error("cannot update container \"" + id + "\": it is stopped");
  if (st.cgroup_skipped) return Error("cannot update container \"" + id + "\": it has no cgroup");
  auto cg = open_cgroup_manager(st.cgroup_version, st.cgroup_paths, st.cgroup_skipped);
  TRY_CTX(cg->apply(res), "update container " + id);
  return ok();
}

Result<std::vector<ListEntry>> list_containers(const RuntimeContext& ctx) {
  StateStore store(ctx.root);
  std::vector<ListEntry> out;
  for (const auto& id : store.list()) {
    auto st = store.load(id);
    if (!st) continue;  // being created or removed right now
    out.push_back(ListEntry{*st, current_status(store, *st)});
  }
  return out;
}

}  // namespace strata::oci
