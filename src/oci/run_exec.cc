// `run` (create + start + wait) and `exec` (a new process in a running container), with
// runc's foreground behaviour: signals forwarded to the process, its exit status (or 128+N
// for death by signal N) returned, and a terminal proxied when the process has one and no
// --console-socket was given.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/cleanup.h"
#include "base/fd_passing.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"
#include "oci/container.h"
#include "oci/exe_guard.h"
#include "oci/init.h"
#include "oci/lifecycle_internal.h"
#include "oci/names.h"
#include "oci/sync.h"

namespace strata::oci {
namespace detail {

Result<int> receive_pty_master(int sock) {
  char name[128];
  int fd = -1;
  ssize_t n = recv_with_fd(sock, name, sizeof name, &fd);
  if (n < 0) return Error::sys("receive the container's terminal", static_cast<int>(-n));
  if (fd < 0) return Error("receive the container's terminal: no fd sent");
  return fd;
}

namespace {

constexpr int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM};

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 255;
}

void copy_winsize(int from, int to) {
  struct winsize ws {};
  if (::ioctl(from, TIOCGWINSZ, &ws) == 0) ::ioctl(to, TIOCSWINSZ, &ws);
}

}  // namespace

namespace {

// Copies what `from` has now to `to`; false at EOF or an error (a closed reader).
bool pump(int from, int to) {
  char buf[8192];
  ssize_t k = ::read(from, buf, sizeof buf);
  if (k < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (k <= 0) return false;
  for (ssize_t off = 0; off < k;) {
    ssize_t w = ::write(to, buf + off, static_cast<size_t>(k - off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return true;  // our own output went away: keep draining the process
    off += w;
  }
  return true;
}

// What is left in a stream once the process is gone: read until EOF or until nothing came for
// 100 ms (a background process of the container may hold the pipe open for ever).
void drain(int fd, int to) {
  if (fd < 0) return;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) return;
    if (!pump(fd, to)) return;
  }
}

}  // namespace

}  // namespace detail

int wait_foreground(pid_t pid, const ForegroundIo& io) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  for (int s : detail::kForwarded) sigaddset(&set, s);
  // SIGPIPE is held too (not forwarded): a write into the stdin pipe of a process that closed
  // it must be an EPIPE here, not the end of the caller. It is consumed before returning.
  sigset_t blocked = set;
  sigaddset(&blocked, SIGPIPE);
  sigset_t old;
  ::sigprocmask(SIG_BLOCK, &blocked, &old);
  UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC));
  struct termios saved {};
  bool raw = false;
  const int master_fd = io.master;
  if (master_fd >= 0 && ::isatty(0) && ::tcgetattr(0, &saved) == 0) {
    struct termios t = saved;
    ::cfmakeraw(&t);
    raw = ::tcsetattr(0, TCSANOW, &t) == 0;
    detail::copy_winsize(0, master_fd);
  }
  // Where the caller's stdin goes: the terminal, or the process's stdin pipe.
  int in_to = master_fd >= 0 ? master_fd : io.stdin_w;
  bool stdin_open = in_to >= 0;
  int out_r = master_fd >= 0 ? master_fd : io.stdout_r;
  int err_r = master_fd >= 0 ? -1 : io.stderr_r;
  int status = 0;
  bool done = false;
  while (!done) {
    // Reap first: the process may have exited before we blocked SIGCHLD.
    pid_t r;
    while ((r = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (r == pid) done = true;
    }
    if (done) break;
    struct pollfd fds[4] = {
        {sfd.get(), POLLIN, 0}, {out_r, POLLIN, 0}, {err_r, POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0}};
    int n = ::poll(fds, 4, -1);
    if (n < 0 && errno != EINTR) break;
    if (fds[0].revents & POLLIN) {
      struct signalfd_siginfo si {};
      if (::read(sfd.get(), &si, sizeof si) == sizeof si && si.ssi_signo != SIGCHLD) {
        if (si.ssi_signo == SIGWINCH && master_fd >= 0) {
          detail::copy_winsize(0, master_fd);
        } else {
          ::kill(pid, static_cast<int>(si.ssi_signo));
        }
      }
    }
    // A pipe at EOF stops being polled (the process closed it, or it ended).
    if (out_r >= 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && !detail::pump(out_r, 1)) {
      if (master_fd < 0) out_r = -1;
    }
    if (err_r >= 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)) && !detail::pump(err_r, 2)) err_r = -1;
    if (stdin_open && (fds[3].revents & (POLLIN | POLLHUP | POLLERR))) {
      char buf[8192];
      ssize_t k = ::read(0, buf, sizeof buf);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        stdin_open = false;
        if (master_fd >= 0) {
          char eot = 4;  // end of input on a terminal
          (void)!::write(master_fd, &eot, 1);
        } else {
          ::close(io.stdin_w);  // the process sees EOF
        }
      } else if (::write(in_to, buf, static_cast<size_t>(k)) < 0 && errno == EPIPE && master_fd < 0) {
        stdin_open = false;  // the process closed its stdin
        ::close(io.stdin_w);
      }
    }
  }
  if (master_fd >= 0) {
    // Drain what the process wrote last.
    ::fcntl(master_fd, F_SETFL, O_NONBLOCK);
    while (detail::pump(master_fd, 1)) {
      struct pollfd p = {master_fd, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0) break;
    }
  }
  detail::drain(out_r, 1);
  detail::drain(err_r, 2);
  if (stdin_open && master_fd < 0 && io.stdin_w >= 0) ::close(io.stdin_w);
  if (raw) ::tcsetattr(0, TCSANOW, &saved);
  if (!sigismember(&old, SIGPIPE)) {
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    struct timespec now {};
    while (::sigtimedwait(&pipe_only, nullptr, &now) > 0) {
    }
  }
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  return detail::exit_code(status);
}

namespace detail {}  // namespace detail

Result<int> run_container(const RuntimeContext& ctx, const CreateOptions& in, bool detach, bool keep) {
  CreateOptions opts = in;
  // A foreground run with a terminal and no --console-socket: we are the console socket and
  // copy between our stdio and the container's terminal, as runc does.
  opts.proxy_terminal = !detach && opts.console_socket.empty();
  auto c = detail::create_impl(ctx, opts);
  if (!c) return std::move(c).error();
  StateStore store(ctx.root);
  const ContainerState& st = c->state;
  const Spec& spec = c->spec;
  UniqueFd master;
  if (c->proxy) {
    auto m = detail::receive_pty_master(c->proxy.get());
    if (!m) {
      (void)detail::destroy_impl(store, st, &spec);
      return std::move(m).error();
    }
    master.reset(*m);
  }
  Status started = detail::start_impl(store, st, spec);
  if (!started.ok()) {
    (void)detail::destroy_impl(store, st, &spec);
    return std::move(started).error();
  }
  Status pf = detail::write_pid_file(opts.pid_file, c->pid);
  if (!pf.ok()) {
    (void)detail::destroy_impl(store, st, &spec);
    return std::move(pf).error().context("--pid-file");
  }
  if (detach) return 0;
  auto t0 = std::chrono::steady_clock::now();
  int code = wait_foreground(c->pid, ForegroundIo{master.get()});
  auto t1 = std::chrono::steady_clock::now();
  if (keep) return code;
  Status d = detail::destroy_impl(store, st, &spec);
  auto t2 = std::chrono::steady_clock::now();
  log::get("runtime")->debug("container {}: ran {}us, deleted in {}us", opts.id,
                             std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count(),
                             std::chrono::duration_cast<std::chrono::microseconds>(t2 - t1).count());
  if (!d.ok()) log::get("runtime")->warn("container {}: {}", opts.id, d.error().to_string());
  return code;
}

namespace {

// "UID[:GID]", each 0 to str::kMaxId: (uid_t)-1 would mean "unchanged" to setresuid.
Result<std::pair<uid_t, gid_t>> parse_user(const std::string& u) {
  auto parts = str::split(u, ':');
  auto bad = [&] {
    return Error("--user " + u.substr(0, 64) + ": expected UID[:GID], numbers from 0 to " +
                 std::to_string(str::kMaxId));
  };
  auto uid = str::parse_id(parts[0]);
  if (!uid || parts.size() > 2) return bad();
  gid_t gid = 0;
  if (parts.size() == 2) {
    auto g = str::parse_id(parts[1]);
    if (!g) return bad();
    gid = *g;
  }
  return std::pair<uid_t, gid_t>{*uid, gid};
}

// Namespaces of `pid` that differ from ours, as CLONE_NEW* flags.
int differing_namespaces(pid_t pid, const Spec& spec) {
  int flags = 0;
  for (const auto& ns : spec.linux.namespaces) {
    std::string name(namespace_proc_name(ns.type));
    struct stat a {
    }, b{};
    if (::stat(("/proc/" + std::to_string(pid) + "/ns/" + name).c_str(), &a) != 0) continue;
    if (::stat(("/proc/self/ns/" + name).c_str(), &b) != 0) continue;
    if (a.st_ino != b.st_ino || a.st_dev != b.st_dev) flags |= namespace_clone_flag(ns.type);
  }
  return flags;
}

}  // namespace

Result<ExecProcess> start_exec(const RuntimeContext& ctx, const ExecOptions& opts) {
  StateStore store(ctx.root);
  ASSIGN_OR_RETURN(ContainerState st, store.load(opts.id));
  ContainerStatus status = current_status(store, st);
  if (status != ContainerStatus::kRunning && status != ContainerStatus::kCreated) {
    return Error("cannot exec in container \"" + opts.id + "\": it is " + std::string(status_name(status)));
  }
  ASSIGN_OR_RETURN(Spec spec, detail::load_saved_spec(store, opts.id));
  Process proc = spec.process ? *spec.process : Process{};
  if (!opts.process_json.empty()) {
    ASSIGN_OR_RETURN(proc, parse_process(opts.process_json));
  } else {
    if (opts.args.empty()) return Error("exec: no command given (pass arguments or --process)");
    proc.args = opts.args;
    proc.terminal = opts.tty;
    for (const auto& e : opts.env) {
      if (e.find('=') == std::string::npos) return Error("--env " + e + ": expected KEY=VALUE");
      std::string key = e.substr(0, e.find('=') + 1);
      std::erase_if(proc.env, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
      proc.env.push_back(e);
    }
    if (!opts.cwd.empty()) proc.cwd = opts.cwd;
    if (!opts.user.empty()) {
      ASSIGN_OR_RETURN(auto ug, parse_user(opts.user));
      proc.user.uid = ug.first;
      proc.user.gid = ug.second;
    }
    for (const auto& g : opts.additional_gids) {
      auto v = str::parse_id(g);
      if (!v)
        return Error("--additional-gids " + g.substr(0, 64) + ": expected a number from 0 to " +
                     std::to_string(str::kMaxId));
      proc.user.additional_gids.push_back(static_cast<uint32_t>(*v));
    }
    for (const auto& cap : opts.cap_add) {
      auto n = capability_from_name(cap);
      if (!n) return Error("--cap " + cap + ": unknown capability");
      if (!proc.capabilities) proc.capabilities = Capabilities{};
      for (auto* set : {&proc.capabilities->bounding, &proc.capabilities->effective,
                        &proc.capabilities->permitted, &proc.capabilities->inheritable}) {
        set->push_back(*n);
      }
    }
    if (opts.no_new_privs) proc.no_new_privileges = true;
  }
  if (proc.terminal && opts.console_socket.empty() && opts.detach) {
    return Error("exec: a terminal (-t) with --detach needs --console-socket");
  }
  {
    // exe_guard.h: this exec child is the runtime's image until it execs. It is out of reach
    // unless some process of the container may hold CAP_SYS_PTRACE over the host: the
    // container's own process (its config), this one, or an earlier exec that had it (marked).
    std::string marker = store.dir(opts.id) + "/ptrace-exec";
    bool container_reaches =
        reaches_runtime_exe(spec, spec.process ? spec.process->capabilities : std::nullopt);
    bool this_reaches = reaches_runtime_exe(spec, proc.capabilities);
    if (this_reaches && !container_reaches && status == ContainerStatus::kCreated) {
      // Its init waits for `start` as the runtime's image, made without that precaution.
      return Error("exec into container \"" + opts.id +
                       "\": a process with CAP_SYS_PTRACE could reach the runtime's binary through its init, "
                       "which waits for `start`: start the container first",
                   EPERM);
    }
    TRY(detail::guard_runtime_exe(ctx, container_reaches || this_reaches || fs::exists(marker)));
    if (this_reaches && !container_reaches) TRY(fs::write_file_atomic(marker, "", 0600));
  }

  // The init plan's process half; the rootfs part stays unused.
  InitPlan plan;
  {
    TRY(plan_process(proc, spec.linux.seccomp, plan, ctx.root + "/.seccomp-cache"));
    plan.preserve_fds = opts.preserve_fds;
    plan.new_session = opts.new_session && !proc.terminal;
    plan.in_userns = spec.linux.has_namespace(NamespaceType::kUser);
    // In a user namespace whose setgroups is denied (rootless), groups cannot be changed.
    auto sg = fs::read_file("/proc/" + std::to_string(st.pid) + "/setgroups");
    plan.setgroups_allowed = !(sg && str::trim(*sg) == "deny");
  }

  UniqueFd console;
  UniqueFd proxy;
  if (!opts.console_socket.empty()) {
    ASSIGN_OR_RETURN(console, detail::connect_console_socket(opts.console_socket));
  } else if (proc.terminal) {
    int sp[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) return Error::sys("socketpair");
    proxy.reset(sp[0]);
    console.reset(sp[1]);
  }
  plan.console_fd = console.get();

  UniqueFd target(static_cast<int>(::syscall(SYS_pidfd_open, st.pid, 0)));
  if (!target) return Error::sys("open container " + opts.id + " init " + std::to_string(st.pid));
  int ns_flags = differing_namespaces(st.pid, spec);
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) != 0) return Error::sys("socketpair");
  UniqueFd parent_sock(sp[0]), child_sock(sp[1]);
  plan.sync_fd = child_sock.get();
  plan.exec_stub_fd = exec_stub_fd();
  finalize_plan(plan);
  // pid and time namespaces take effect for children: enter them here, before forking.
  int for_children = ns_flags & (CLONE_NEWPID | CLONE_NEWTIME);
  // The kernel also wants CAP_SYS_ADMIN in our own user namespace for that, which an unprivileged
  // runtime only has once it is in the container's: it joins that one too (setns orders the user
  // namespace first), and the child has one namespace less to enter.
  if (for_children != 0 && ::geteuid() != 0 && (ns_flags & CLONE_NEWUSER) != 0) {
    for_children |= CLONE_NEWUSER;
  }
  if (for_children != 0 && ::setns(target.get(), for_children) != 0)
    return Error::sys("enter pid namespace of container " + opts.id);
  pid_t pid = ::fork();
  if (pid < 0) return Error::sys("fork");
  if (pid == 0) {
    ::close(parent_sock.get());
    if (proxy) ::close(proxy.get());
    for (int i = 0; i < 3; ++i) {
      if (opts.stdio[i] >= 0 && opts.stdio[i] != i && ::dup2(opts.stdio[i], i) < 0) _exit(127);
    }
    run_exec_child(plan, target.get(), ns_flags & ~for_children);
  }
  child_sock.reset();
  console.reset();
  Cleanup kill_child([&] {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
  });
  if (!st.cgroup_skipped) {
    auto cg = open_cgroup_manager(st.cgroup_version, st.cgroup_paths, st.cgroup_skipped);
    TRY_CTX(cg->add_process(pid), "add exec process to the cgroup of container " + opts.id);
  }
  SyncMsg go;
  go.type = SyncType::kGo;
  if (!sync_send(parent_sock.get(), go)) return Error::sys("signal exec process");
  UniqueFd master;
  if (proxy) {
    ASSIGN_OR_RETURN(int m, detail::receive_pty_master(proxy.get()));
    master.reset(m);
  }
  for (bool ready = false;;) {
    SyncMsg m;
    int r = sync_recv(parent_sock.get(), &m);
    if (r < 0) return Error::sys("read from exec process", -r);
    if (r == 0) {
      if (!ready) return Error("exec process exited before reporting");
      break;  // EOF after kReady: the socket closed on exec
    }
    if (m.type == SyncType::kFailure) return detail::child_error(m).context("exec in container " + opts.id);
    if (m.type == SyncType::kReady) ready = true;
  }
  kill_child.cancel();
  return ExecProcess{pid, std::move(master)};
}

Result<int> exec_container(const RuntimeContext& ctx, const ExecOptions& opts) {
  ASSIGN_OR_RETURN(ExecProcess p, start_exec(ctx, opts));
  TRY(detail::write_pid_file(opts.pid_file, p.pid));
  if (opts.detach) return 0;
  return wait_foreground(p.pid, ForegroundIo{p.master.get()});
}

Result<Resources> parse_resources(std::string_view json_text) {
  std::string wrapped = R"({"ociVersion":"1.1.0","root":{"path":"rootfs"},"linux":{"resources":)" +
                        std::string(json_text) + "}}";
  auto spec = parse_spec(wrapped);
  if (!spec) return std::move(spec).error().context("resources");
  if (!spec->linux.resources) return Resources{};
  return *spec->linux.resources;
}

std::string features_json() {
  nlohmann::json j;
  j["ociVersionMin"] = "1.0.0";
  j["ociVersionMax"] = "1.1.0";
  j["hooks"] = {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"};
  j["mountOptions"] = {"acl",        "async",         "atime",       "bind",        "defaults",
                       "dev",        "diratime",      "dirsync",     "exec",        "mand",
                       "noatime",    "nodev",         "nodiratime",  "noexec",      "nomand",
                       "norelatime", "nostrictatime", "nosuid",      "nosymfollow", "private",
                       "rbind",      "relatime",      "remount",     "ro",          "rprivate",
                       "rshared",    "rslave",        "runbindable", "rw",          "shared",
                       "slave",      "strictatime",   "suid",        "symfollow",   "sync",
                       "unbindable"};
  nlohmann::json linux;
  linux["namespaces"] = {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"};
  linux["capabilities"] = all_capability_names();
  linux["cgroup"] = {{"v1", true}, {"v2", true}, {"systemd", false}, {"systemdUser", false}, {"rdma", false}};
  linux["seccomp"] = {
      {"enabled", true},
      {"actions",
       {"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"}},
      {"operators",
       {"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE"}},
      {"archs", {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"}},
      {"supportedFlags",
       {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"}}};
  linux["apparmor"] = {{"enabled", false}};
  linux["selinux"] = {{"enabled", false}};
  linux["intelRdt"] = {{"enabled", false}};
  j["linux"] = linux;
  j["annotations"] = {{"org.strata.runtime.version", "0.1.0"}};
  return j.dump(2);
}

}  // namespace strata::oci
