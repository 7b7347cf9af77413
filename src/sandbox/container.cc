#include "sandbox/container.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

#include "base/cleanup.h"
#include "base/fd_passing.h"
#include "base/fs.h"
#include "base/rfc3339.h"
#include "base/strings.h"
#include "image/overlay.h"
#include "oci/container.h"
#include "oci/exe_guard.h"
#include "oci/names.h"
#include "oci/state.h"
#include "sandbox/config_check.h"
#include "sandbox/health.h"
#include "sandbox/network_setup.h"
#include "sandbox/spec_builder.h"
#include "sandbox/tool.h"

namespace strata::sandbox {

namespace {

// The image's VOLUMEs (anonymous volumes) get a directory of the container's own on the first
// start, seeded with what the image has there (cp -a, as podman's copy-up). The path is resolved
// inside the rootfs (a symlink in the image is followed as the container would follow it, never
// out of it); a path that is missing or not a directory starts empty.
Status make_anonymous_volumes(int root_fd, const std::string& dir, ContainerRecord& rec) {
  for (size_t i = 0; i < rec.config.volumes.size(); ++i) {
    VolumeMount& v = rec.config.volumes[i];
    if (!v.anonymous || !v.source.empty()) continue;
    std::string vdir = dir + "/volumes/" + std::to_string(i);
    TRY(fs::mkdir_p(vdir, 0755));
    if (auto src = fs::open_in_root(root_fd, v.destination, O_DIRECTORY)) {
      // cp reaches the very directory that was resolved through this process's fd (a magic
      // link that cp follows once, as root), then copies without following anything.
      std::string from = "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(src->get()) + "/.";
      TRY_CTX(run_tool({"cp", "-a", from, vdir}), "seed the volume " + v.destination);
    }
    v.source = vdir;
  }
  return ok();
}

Status mount_rootfs(const ContainerStore& store, ContainerRecord& rec) {
  std::string dir = store.dir(rec.id);
  for (const char* d : {"/bundle", "/bundle/rootfs", "/upper", "/work"}) {
    if (::mkdir((dir + d).c_str(), 0700) != 0 && errno != EEXIST)
      return Error::sys(std::string("mkdir ") + dir + d);
  }
  if (!rec.config.rootfs.empty() && !fs::is_dir(rec.config.rootfs)) {
    return Error("--rootfs " + rec.config.rootfs + ": not a directory", ENOTDIR);
  }
  if (rec.config.rootfs.empty() && rec.config.layers.empty()) return Error("image has no layers");
  // The overlay's root directory is the upper directory's inode: give it the image's root's mode
  // and owner (0755 root:root, usually), not the 0700 it was made with, or a non-root process
  // could not walk "/" (the program's own exec, through the exec stub, does so with its user's
  // credentials).
  {
    std::string top = !rec.config.rootfs.empty() ? rec.config.rootfs : rec.config.layers.back();
    std::string upper = dir + "/upper";
    struct stat st {};
    if (::stat(top.c_str(), &st) != 0) return Error::sys("stat the image's root " + top);
    if (::chown(upper.c_str(), st.st_uid, st.st_gid) != 0 || ::chmod(upper.c_str(), st.st_mode & 07777) != 0)
      return Error::sys("set the mode of " + upper);
  }
  // lowerdir takes the top layer first.
  std::vector<std::string> lowers;
  if (!rec.config.rootfs.empty()) {
    lowers.push_back(rec.config.rootfs);
  } else {
    lowers.assign(rec.config.layers.rbegin(), rec.config.layers.rend());
  }
  rec.rootfs_mounted = true;
  TRY(store.save(rec));
  std::string target = dir + "/bundle/rootfs";
  if (Status st = image::mount_overlay(lowers, dir + "/upper", dir + "/work", target); !st.ok()) {
    rec.rootfs_mounted = false;
    (void)store.save(rec);
    return st;
  }
  return ok();
}

void unmount_rootfs(const ContainerStore& store, ContainerRecord& rec) {
  if (!rec.rootfs_mounted) return;
  std::string target = store.dir(rec.id) + "/bundle/rootfs";
  if (::umount2(target.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) return;
  rec.rootfs_mounted = false;
}

// Moves fd to exactly `target` (no CLOEXEC), whatever the other fds are.
int move_fd(int fd, int target) {
  if (fd == target) {
    int flags = ::fcntl(fd, F_GETFD);
    return ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  return ::dup2(fd, target);
}

// Reads everything until EOF; the first fd that comes along is kept in `fd`.
void recv_all(int sock, std::string& data, UniqueFd& fd) {
  for (;;) {
    char buf[4096];
    int got = -1;
    ssize_t n = recv_with_fd(sock, buf, sizeof buf, &got);
    if (got >= 0) {
      if (fd)
        ::close(got);
      else
        fd.reset(got);
    }
    if (n <= 0) return;
    data.append(buf, static_cast<size_t>(n));
  }
}

// --tty: a console socket the runtime library hands the pty master to (runc's protocol), in
// /tmp because a sun_path is short.
Result<UniqueFd> listen_console(std::string& path) {
  path = "/tmp/strata-console-" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!sock) return Error::sys("console socket");
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::bind(sock.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(sock.get(), 1) != 0) {
    return Error::sys("listen on console socket " + path);
  }
  return sock;
}

// The child of launch(): creates and starts the container, reports on `sync`, then becomes
// strata-monitor. Never returns.
[[noreturn]] void child_main(const ContainerStore& store, ContainerRecord rec, const LaunchOptions& opts,
                             int sync, int out_r, int out_w, int err_r, int err_w, int exit_w) {
  auto fail = [&](const Error& e) {
    std::string msg = "E" + e.to_string();
    (void)!::write(sync, msg.data(), msg.size());
    _exit(1);
  };
  ::setsid();
  // The CLI's own stdout/stderr, for the monitor's copy of a foreground container's output:
  // kept above 10 before fds 0-2 become the container's.
  int tee_out = opts.attach ? ::fcntl(opts.stdout_fd, F_DUPFD_CLOEXEC, 10) : -1;
  int tee_err = opts.attach ? ::fcntl(opts.stderr_fd, F_DUPFD_CLOEXEC, 10) : -1;
  // -i: the monitor copies the CLI's stdin into the terminal (-t) or into a pipe that is the
  // container's stdin. The caller's own file never reaches the container: a process left
  // behind in it could read the caller's terminal after strata has gone.
  int stdin_fwd = opts.stdin_fd >= 0 ? ::fcntl(opts.stdin_fd, F_DUPFD_CLOEXEC, 10) : -1;
  int in_pipe[2] = {-1, -1};
  if (stdin_fwd >= 0 && !rec.config.tty && ::pipe2(in_pipe, O_CLOEXEC) != 0) fail(Error::sys("pipe"));
  // The container's stdio: the init inherits fds 0-2 of this process (with -t the runtime
  // replaces them with the terminal).
  int in = in_pipe[0] >= 0 ? in_pipe[0] : ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(out_w, 1) < 0 || ::dup2(err_w, 2) < 0)
    fail(Error::sys("set up container stdio"));
  if (in_pipe[0] >= 0) ::close(in_pipe[0]);

  oci::CreateOptions co;
  co.id = rec.id;
  co.bundle = store.dir(rec.id) + "/bundle";
  UniqueFd console_listener, master;
  std::string console_path;
  if (rec.config.tty) {
    auto l = listen_console(console_path);
    if (!l) fail(l.error());
    console_listener = std::move(*l);
    co.console_socket = console_path;
  }
  Status created = oci::create_container(runtime_context(store), co);
  if (!console_path.empty()) ::unlink(console_path.c_str());
  if (!created.ok()) fail(created.error());
  if (console_listener) {
    // The runtime connected and sent the master during create: it is waiting in the backlog.
    UniqueFd conn(::accept4(console_listener.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    std::string ignored;
    if (conn) recv_all(conn.get(), ignored, master);
    if (!master) {
      (void)oci::delete_container(runtime_context(store), rec.id, true);
      fail(Error("receive the container's terminal from the runtime: nothing arrived"));
    }
  }
  rec.oci_created = true;
  auto st = oci::StateStore(store.oci_root()).load(rec.id);
  if (!st) fail(st.error());
  rec.pid = st->pid;
  auto undo = [&](const Error& e) {
    (void)detach_network(store, rec);
    (void)oci::delete_container(runtime_context(store), rec.id, true);
    rec.oci_created = false;
    (void)store.save(rec);
    fail(e);
  };
  if (Status s = store.save(rec); !s.ok()) undo(s.error());
  if (Status s = attach_network(store, rec, rec.pid); !s.ok()) undo(s.error());
  rec.monitor_pid = ::getpid();
  rec.monitor_start_time = oci::process_start_time(rec.monitor_pid);
  rec.started = now_rfc3339_nanos();
  if (Status s = store.save(rec); !s.ok()) undo(s.error());
  if (Status s = oci::start_container(runtime_context(store), rec.id); !s.ok()) undo(s.error());

  // Become the monitor: pipes' read ends at 3 and 4, tees at 5 and 6, the exit pipe at 7, the
  // terminal at 8, the forwarded stdin at 9, the container's stdin pipe at 10. Duplicates
  // above 12 first so that no dup2 clobbers a source still needed.
  int fds[8] = {out_r, err_r, tee_out, tee_err, exit_w, master.get(), stdin_fwd, in_pipe[1]};
  for (int& fd : fds) {
    if (fd >= 0) fd = ::fcntl(fd, F_DUPFD_CLOEXEC, 12);
  }
  sync = ::fcntl(sync, F_DUPFD_CLOEXEC, 12);
  for (int i = 0; i < 8; ++i) {
    if (fds[i] >= 0 && move_fd(fds[i], 3 + i) < 0) undo(Error::sys("set up monitor fds"));
    // An unused slot must not carry anything in: a cleanup that restarts the container still
    // holds the old monitor's exit pipe at 7, which would keep a foreground CLI waiting.
    if (fds[i] < 0) ::close(3 + i);
  }
  // Nothing else of the CLI's reaches the monitor (it lives as long as the container).
  ::syscall(SYS_close_range, 11U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */);
  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    if (devnull > 2) ::close(devnull);
  }
  std::string dir = store.dir(rec.id);
  std::string pid = std::to_string(rec.pid), log = dir + "/ctr.log", exit_file = dir + "/exit";
  std::vector<std::string> args = {opts.monitor_exe, "--pid",       pid, "--log",       log, "--exit-file",
                                   exit_file,        "--stdout-fd", "3", "--stderr-fd", "4"};
  if (fds[2] >= 0) args.insert(args.end(), {"--tee-stdout-fd", "5"});
  if (fds[3] >= 0) args.insert(args.end(), {"--tee-stderr-fd", "6"});
  if (fds[4] >= 0) args.insert(args.end(), {"--exit-fd", "7"});
  if (fds[5] >= 0) args.insert(args.end(), {"--console-fd", "8"});
  if (fds[6] >= 0) args.insert(args.end(), {"--stdin-fd", "9"});
  if (fds[7] >= 0) args.insert(args.end(), {"--stdin-pipe-fd", "10"});
  if (rec.config.health && rec.config.health->interval_ns > 0) {
    // The monitor's timer runs the check as its own command, so that a slow or hung test never
    // holds up the monitor's log copying.
    int64_t ms = std::max<int64_t>(1, rec.config.health->interval_ns / 1000000);
    args.insert(args.end(), {"--health-interval-ms", std::to_string(ms)});
    for (const char* a :
         {opts.strata_exe.c_str(), "--root", store.root().c_str(), "healthcheck", "run", rec.id.c_str()})
      args.insert(args.end(), {"--health-arg", a});
  }
  args.insert(args.end(), {"--", opts.strata_exe, "--root", store.root(), "container", "cleanup", rec.id});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The foreground CLI gets the terminal too, to set its size.
  (void)send_with_fd(sync, "K", 1, fds[5] >= 0 ? 8 : -1);
  ::close(sync);
  ::execv(opts.monitor_exe.c_str(), argv.data());
  // The container runs but nothing will watch it: kill it rather than leave it unmonitored.
  (void)detach_network(store, rec);
  (void)oci::delete_container(runtime_context(store), rec.id, true);
  _exit(127);
}

}  // namespace

bool needs_unwritable_self(const ContainerConfig& c) {
  bool ptrace = false;
  if (auto caps = effective_capabilities(c.cap_add, c.cap_drop))
    ptrace = std::find(caps->begin(), caps->end(), "CAP_SYS_PTRACE") != caps->end();
  return oci::must_run_unwritable(ptrace);
}

oci::RuntimeContext runtime_context(const ContainerStore& store) {
  oci::RuntimeContext ctx;
  ctx.root = store.oci_root();
  return ctx;
}

Status teardown(const ContainerStore& store, ContainerRecord& rec) {
  Status first = ok();
  auto keep = [&](Status s) {
    if (!s.ok() && first.ok()) first = std::move(s);
  };
  if (rec.oci_created) {
    oci::StateStore oci_store(store.oci_root());
    if (oci_store.exists(rec.id)) keep(oci::delete_container(runtime_context(store), rec.id, true));
    if (!oci_store.exists(rec.id)) rec.oci_created = false;
  }
  keep(detach_network(store, rec));
  unmount_rootfs(store, rec);
  if (rec.rootfs_mounted) keep(Error::sys("unmount rootfs of container " + rec.id));
  // A damaged record stays as it is (rewritten, it would lose what could not be read and pass
  // for a sound one); rm removes it.
  if (rec.damaged.empty()) keep(store.save(rec));
  return first;
}

Result<Launched> launch(const ContainerStore& store, ContainerRecord rec, const LaunchOptions& opts) {
  std::string dir = store.dir(rec.id);
  TRY(validate_name(rec.name));
  if (!rec.damaged.empty())
    return Error("container " + rec.name + ": " + rec.damaged + "; remove it with strata rm -f");
  TRY_CTX(check_config(rec.config), "container " + rec.name);
  UniqueFd lock;
  if (!opts.restart) {
    // (A restart is the same container again, under its caller's lock: its name, directory,
    // log and writable layer stay, as with docker; only what the last run released is set up
    // again.)
    // The name first: a name in use is refused before anything (even a lock file) exists.
    TRY(store.reserve_name(rec.name, rec.id));
    auto locked = store.lock(rec.id);
    if (!locked || ::mkdir(dir.c_str(), 0700) != 0) {
      Error e = locked ? Error::sys("create container directory " + dir) : locked.error();
      store.release_name(rec.name, rec.id);
      ::unlink((store.root() + "/containers/" + rec.id + ".lock").c_str());
      return e;
    }
    lock = std::move(*locked);
  }
  // Anything below that fails unwinds all of it (a restart keeps its record, reported exited).
  bool committed = false;
  Cleanup undo([&] {
    if (committed) return;
    (void)teardown(store, rec);
    if (!opts.restart) (void)store.remove(rec);
  });
  if (!opts.restart) rec.created = now_rfc3339_nanos();
  TRY(store.save(rec));
  TRY(check_network(store, rec));
  TRY_CTX(mount_rootfs(store, rec), "container " + rec.name);

  // The rootfs is the container's: every path in it (its /etc/passwd, its working directory, an
  // image VOLUME) is reached from this fd and resolved inside it, never joined into a host path.
  // A container may have replaced any of them with a symlink, a FIFO or a device node before
  // this start.
  std::string rootfs = dir + "/bundle/rootfs";
  UniqueFd root_fd(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) return Error::sys("open the root of container " + rec.name);
  TRY_CTX(make_anonymous_volumes(root_fd.get(), dir, rec), "container " + rec.name);
  ASSIGN_OR_RETURN(ResolvedUser user, resolve_user(root_fd.get(), rec.config.user));
  if (std::none_of(rec.config.env.begin(), rec.config.env.end(),
                   [](const std::string& e) { return e.rfind("HOME=", 0) == 0; })) {
    rec.config.env.push_back("HOME=" + user.home);
  }
  if (!rec.config.cwd.empty() && rec.config.cwd != "/") {
    // podman creates a missing working directory in the container, owned by its user.
    TRY_CTX(fs::mkdir_in_root(root_fd.get(), rec.config.cwd, 0755, user.uid, user.gid),
            "working directory " + rec.config.cwd);
  }
  TRY(write_network_files(rec, dir));
  SpecPaths paths{dir, user.uid, user.gid, user.additional_gids};
  ASSIGN_OR_RETURN(std::string spec, build_spec(rec, paths));
  TRY(fs::write_file_atomic(dir + "/bundle/config.json", spec, 0600));
  if (rec.config.health) TRY(reset_health(store, rec.id));
  TRY(store.save(rec));

  int sync[2], out[2], err[2], ex[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync) != 0) return Error::sys("socketpair");
  UniqueFd sync_r(sync[0]), sync_w(sync[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return Error::sys("pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return Error::sys("pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);
  UniqueFd ex_r, ex_w;
  if (opts.attach) {
    if (::pipe2(ex, O_CLOEXEC) != 0) return Error::sys("pipe");
    ex_r.reset(ex[0]);
    ex_w.reset(ex[1]);
  }

  pid_t child = ::fork();
  if (child < 0) return Error::sys("fork container monitor");
  if (child == 0) {
    sync_r.reset();
    child_main(store, rec, opts, sync_w.get(), out_r.get(), out_w.get(), err_r.get(), err_w.get(),
               ex_w.get());
  }
  sync_w.reset();
  out_r.reset();
  out_w.reset();
  err_r.reset();
  err_w.reset();
  ex_w.reset();

  std::string msg;
  UniqueFd master;
  recv_all(sync_r.get(), msg, master);
  if (msg != "K") {
    ::waitpid(child, nullptr, 0);
    // The child wrote what it set up into the record; reload it for the unwinding.
    if (auto saved = store.load(rec.id)) rec = *saved;
    if (msg.size() > 1 && msg[0] == 'E') return Error(msg.substr(1)).context("start container " + rec.name);
    return Error("start container " + rec.name + ": the monitor process died during start-up");
  }
  committed = true;
  ASSIGN_OR_RETURN(rec, store.load(rec.id));
  Launched l;
  l.id = rec.id;
  l.pid = rec.pid;
  l.exit_fd = std::move(ex_r);
  l.master = std::move(master);
  return l;
}

Result<int> wait_attached(const ContainerStore& store, Launched& l) {
  // Forward the usual termination signals to the container, as podman's --sig-proxy does.
  sigset_t mask, old;
  sigemptyset(&mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH}) sigaddset(&mask, s);
  // A terminal follows the size of the caller's.
  auto copy_size = [&] {
    struct winsize ws {};
    if (l.master && ::ioctl(1, TIOCGWINSZ, &ws) == 0) ::ioctl(l.master.get(), TIOCSWINSZ, &ws);
  };
  copy_size();
  ::sigprocmask(SIG_BLOCK, &mask, &old);
  Cleanup restore([&] { ::sigprocmask(SIG_SETMASK, &old, nullptr); });
  UniqueFd sig(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
  int code = -1;
  size_t got = 0;
  char buf[sizeof(int)];
  for (;;) {
    struct pollfd p[2] = {{l.exit_fd.get(), POLLIN, 0}, {sig.get(), POLLIN, 0}};
    if (::poll(p, sig ? 2 : 1, -1) < 0) {
      if (errno == EINTR) continue;
      return Error::sys("wait for container");
    }
    if (sig && (p[1].revents & POLLIN)) {
      struct signalfd_siginfo si;
      while (::read(sig.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        if (si.ssi_signo == SIGWINCH) {
          copy_size();
          continue;
        }
        (void)oci::kill_container(runtime_context(store), l.id, static_cast<int>(si.ssi_signo), false);
      }
    }
    if (p[0].revents == 0) continue;
    ssize_t n = ::read(l.exit_fd.get(), buf + (got < sizeof buf ? got : 0),
                       got < sizeof buf ? sizeof buf - got : sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    if (got < sizeof buf) {
      got += static_cast<size_t>(n);
      if (got == sizeof buf) std::memcpy(&code, buf, sizeof code);
    }
  }
  if (got < sizeof buf) {
    // The monitor died before reporting: what the exit file says, if anything.
    if (auto e = store.exit_info(l.id)) return e->code;
    return Error("container " + l.id.substr(0, 12) + ": its monitor died before reporting an exit code");
  }
  return code;
}

}  // namespace strata::sandbox
