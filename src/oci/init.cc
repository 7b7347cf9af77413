// The container init, child side: namespaces, console, rlimits, user, capabilities, seccomp,
// exec. See init.h for the split with the parent and sync.h for the protocol. Everything here
// runs between clone() and exec(): syscalls on data the parent prepared, no allocation.
#include "oci/init.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "base/fd_passing.h"
#include "oci/init_internal.h"

namespace strata::oci {

using init_detail::die;

namespace init_detail {

// The parent sends the state JSON for startContainer hooks; kept here, not on the heap.
char g_state_json[65536];
size_t g_state_len = 0;

void die(const InitPlan& plan, const char* step, int err, const char* d1, const char* d2) {
  SyncMsg m;
  m.type = SyncType::kFailure;
  m.failure.err = err;
  buf_append(m.failure.step, sizeof m.failure.step, step);
  buf_append(m.failure.detail, sizeof m.failure.detail, d1);
  if (d2 != nullptr) {
    if (d1 != nullptr) buf_append(m.failure.detail, sizeof m.failure.detail, " ");
    buf_append(m.failure.detail, sizeof m.failure.detail, d2);
  }
  if (plan.sync_fd < 0 || !sync_send(plan.sync_fd, m)) {
    // Nobody to tell (after `start`, the runtime has gone): say it on the container's stderr.
    char line[512] = "strata-runtime: ";
    buf_append(line, sizeof line, step);
    if (m.failure.detail[0] != '\0') {
      buf_append(line, sizeof line, " ");
      buf_append(line, sizeof line, m.failure.detail);
    }
    if (err != 0) {
      buf_append(line, sizeof line, ": ");
      buf_append(line, sizeof line, strerrordesc_np(err) != nullptr ? strerrordesc_np(err) : "error");
    }
    buf_append(line, sizeof line, "\n");
    ssize_t w = ::write(2, line, ::strlen(line));
    (void)w;
  }
  ::_exit(127);
}

}  // namespace init_detail

namespace {

void wait_for(const InitPlan& plan, SyncType want) {
  SyncMsg m;
  int r = sync_recv(plan.sync_fd, &m);
  if (r <= 0 || m.type != want) ::_exit(126);  // the parent gave up: nothing to report to
}

// `own_console`: the init's terminal is also the container's /dev/console; an exec'd process
// (exec -t) gets a terminal but leaves /dev/console alone.
void set_console(const InitPlan& plan, bool own_console) {
  int master = ::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0) die(plan, "open /dev/ptmx", errno);
  int unlock = 0;
  if (::ioctl(master, TIOCSPTLCK, &unlock) != 0) die(plan, "unlock pty", errno);
  int slave = ::ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0) die(plan, "open pty peer", errno);
  unsigned int ptn = 0;
  if (::ioctl(master, TIOCGPTN, &ptn) != 0) die(plan, "get pty number", errno);
  char name[64] = "/dev/pts/";
  buf_append_u64(name, sizeof name, ptn);
  if (plan.console_rows != 0 || plan.console_cols != 0) {
    struct winsize ws {};
    ws.ws_row = plan.console_rows;
    ws.ws_col = plan.console_cols;
    if (::ioctl(master, TIOCSWINSZ, &ws) != 0) die(plan, "set console size", errno);
  }
  // Hand the master to whoever listens on --console-socket (runc's protocol: SCM_RIGHTS with
  // the terminal's name as the payload).
  if (int r = send_with_fd(plan.console_fd, name, ::strlen(name), master); r < 0) {
    die(plan, "send console to --console-socket", -r);
  }
  ::close(master);
  ::close(plan.console_fd);
  // /dev/console is the terminal too, as on a real system.
  struct stat st {};
  if (own_console && ::stat("/dev", &st) == 0) {
    int fd = ::open("/dev/console", O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) {
      ::close(fd);
      if (::mount(name, "/dev/console", nullptr, MS_BIND, nullptr) != 0)
        die(plan, "bind /dev/console", errno, name);
    }
  }
  if (::setsid() < 0) die(plan, "setsid", errno);
  if (::ioctl(slave, TIOCSCTTY, 0) != 0) die(plan, "set controlling terminal", errno);
  for (int fd = 0; fd < 3; ++fd) {
    if (::dup3(slave, fd, 0) < 0) die(plan, "dup terminal to stdio", errno);
  }
  ::close(slave);
}

void apply_rlimits(const InitPlan& plan) {
  for (const auto& r : plan.rlimits) {
    struct rlimit rl {};
    rl.rlim_cur = r.soft;
    rl.rlim_max = r.hard;
    if (::setrlimit(r.resource, &rl) != 0) {
      int e = errno;
      char d[160] = {};
      buf_append(d, sizeof d, r.type.c_str());
      buf_append(d, sizeof d, " (soft ");
      buf_append_u64(d, sizeof d, r.soft);
      buf_append(d, sizeof d, ", hard ");
      buf_append_u64(d, sizeof d, r.hard);
      struct rlimit cur {};
      if (::getrlimit(r.resource, &cur) == 0 && r.hard > cur.rlim_max) {
        buf_append(d, sizeof d, " above the hard limit ");
        buf_append_u64(d, sizeof d, cur.rlim_max);
        buf_append(d, sizeof d, " that cannot be raised without CAP_SYS_RESOURCE");
      }
      buf_append(d, sizeof d, ")");
      die(plan, "set rlimit", e, d);
    }
  }
}

// Finds args[0] on PATH inside the container, into `out`. Done before `start` so that a
// missing executable fails `create`, as in runc.
void resolve_exe(const InitPlan& plan, char* out, size_t size) {
  const char* a0 = plan.args[0].c_str();
  if (::strchr(a0, '/') != nullptr) {
    // A relative path ("./app") is relative to process.cwd, where execve will run it.
    out[0] = '\0';
    if (a0[0] != '/') {
      buf_append(out, size, plan.cwd.c_str());
      buf_append(out, size, "/");
    }
    buf_append(out, size, a0);
  } else {
    const char* p = plan.path_env.c_str();
    bool found = false;
    while (*p != '\0' && !found) {
      const char* end = ::strchr(p, ':');
      size_t len = end != nullptr ? static_cast<size_t>(end - p) : ::strlen(p);
      out[0] = '\0';
      if (len + 2 + ::strlen(a0) < size) {
        ::memcpy(out, p, len);
        out[len] = '\0';
        if (len == 0) buf_append(out, size, ".");
        buf_append(out, size, "/");
        buf_append(out, size, a0);
        struct stat st {};
        if (::stat(out, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111)) found = true;
      }
      if (end == nullptr) break;
      p = end + 1;
    }
    if (!found) die(plan, "find executable", ENOENT, a0, "in $PATH");
  }
  struct stat st {};
  if (::stat(out, &st) != 0) die(plan, "find executable", errno, out);
  if (!S_ISREG(st.st_mode)) die(plan, "find executable", EACCES, out, "is not a regular file");
}

// args[0] resolved, the parent is told that the process is ready (create returns then); both
// the init and an exec'd process do this last before their own wait or exec.
void resolve_and_report_ready(const InitPlan& plan, char* exe, size_t size) {
  resolve_exe(plan, exe, size);
  SyncMsg m;
  m.type = SyncType::kReady;
  if (!sync_send(plan.sync_fd, m)) ::_exit(126);
}

void run_hooks_in_child(const InitPlan& plan, const std::vector<HookPlan>& hooks, const char* kind) {
  for (const auto& h : hooks) {
    // A socket, not a pipe: send(MSG_NOSIGNAL) to a hook that exited early must not kill us
    // with SIGPIPE (and ignoring SIGPIPE would leak into the container's process).
    int p[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) die(plan, kind, errno, "socketpair");
    pid_t pid = ::fork();
    if (pid < 0) die(plan, kind, errno, "fork");
    if (pid == 0) {
      ::dup2(p[0], 0);
      ::execve(h.path.c_str(), const_cast<char* const*>(h.argv.data()),
               const_cast<char* const*>(h.envp.data()));
      ::_exit(127);
    }
    ::close(p[0]);
    ::shutdown(p[1], SHUT_RD);
    ssize_t w = ::send(p[1], init_detail::g_state_json, init_detail::g_state_len, MSG_NOSIGNAL);
    (void)w;
    ::close(p[1]);
    int status = 0;
    // The timeout is wall-clock time, measured by poll() on a pidfd (a loop of short sleeps
    // stretches on a loaded machine).
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    if (pidfd >= 0 && h.timeout_s > 0) {
      struct pollfd pfd {
        pidfd, POLLIN, 0
      };
      int r;
      do {
        r = ::poll(&pfd, 1, h.timeout_s * 1000);
      } while (r < 0 && errno == EINTR);
      if (r == 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        die(plan, kind, ETIMEDOUT, h.path.c_str(), "timed out");
      }
    }
    if (pidfd >= 0) ::close(pidfd);
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      // Said like the runtime's own hooks (hooks.cc): how it ended, no errno.
      char how[48] = {};
      buf_append(how, sizeof how, WIFEXITED(status) ? "exited with status " : "killed by signal ");
      int code = WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status);
      buf_append_u64(how, sizeof how, static_cast<uint64_t>(code));
      die(plan, kind, 0, h.path.c_str(), how);
    }
  }
}

// Become the process the config describes and exec it: shared by init and exec.
[[noreturn]] void finish_process(const InitPlan& plan, const char* exe) {
  // Without no_new_privs an unprivileged process may not install a filter: load it while we
  // still hold CAP_SYS_ADMIN (runc does the same).
  if (!plan.seccomp.empty() && !plan.no_new_privs) {
    int r = load_seccomp(plan.seccomp);
    if (r < 0) die(plan, "load seccomp filter", -r);
  }
  if (plan.setgroups_allowed) {
    if (::setgroups(plan.additional_gids.size(), plan.additional_gids.data()) != 0)
      die(plan, "setgroups", errno);
  }
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) die(plan, "keep capabilities", errno);
  if (::setresgid(plan.gid, plan.gid, plan.gid) != 0) die(plan, "setgid", errno);
  if (::setresuid(plan.uid, plan.uid, plan.uid) != 0) die(plan, "setuid", errno);
  // PR_SET_KEEPCAPS kept the permitted set across setuid; apply_capabilities raises effective
  // from it, drops the bounding set (which needs CAP_SETPCAP), then sets what the config asks.
  const char* step = "";
  const char* cap = nullptr;
  int r = apply_capabilities(plan.caps, &step, &cap);
  if (r < 0 && cap != nullptr) die(plan, step, -r, cap, "is not in the runtime's bounding set");
  if (r < 0) die(plan, step, -r);
  // runc's default when the config names none: never the caller's (conmon's, a shell's).
  ::umask(plan.umask ? *plan.umask : 022);
  if (::chdir(plan.cwd.c_str()) != 0) die(plan, "chdir to cwd", errno, plan.cwd.c_str());
  {
    // A cwd such as /proc/self/fd/N reaches whatever fd N is, even a host directory
    // (CVE-2024-21626): the kernel's getcwd names a directory outside our root "(unreachable)...".
    char wd[PATH_MAX];
    if (::syscall(SYS_getcwd, wd, sizeof wd) < 0 || wd[0] != '/')
      die(plan, "chdir to cwd", EPERM, plan.cwd.c_str(), "is outside the container's root");
  }
  if (plan.no_new_privs && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    die(plan, "set no_new_privs", errno);
  // --preserve-fds: 3..3+N-1 stay open across exec; nothing else of ours may leak in
  // (CVE-2024-21626: every other fd is close-on-exec from here on).
  for (int fd = 3; fd < 3 + plan.preserve_fds; ++fd) {
    int fl = ::fcntl(fd, F_GETFD);
    if (fl >= 0) ::fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
  }
  if (::syscall(SYS_close_range, 3 + plan.preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
    die(plan, "close_range", errno);
  if (!plan.seccomp.empty() && plan.no_new_privs) {
    r = load_seccomp(plan.seccomp);
    if (r < 0) die(plan, "load seccomp filter", -r);
  }
  if (plan.exec_stub_fd >= 0) {
    // Through the stub (exe_guard.h): /proc/self/exe is then the sealed stub when the kernel
    // looks for the program's interpreter. The sync socket and exec.fifo live through the
    // stub's exec (it closes them as it execs the program), so that the parent still sees EOF
    // only once the program runs, and the stub can report a failed exec. The argv array was
    // built by the parent; only its path slot is ours to fill. One difference from a direct
    // exec: the program's path is walked with the stub's credentials, i.e. the capabilities the
    // program itself gets (ambient), not the effective set held until now; it shows only for a
    // non-root user whose program lies behind a directory that only those could cross.
    const_cast<char**>(plan.stub_argv.data())[1] = const_cast<char*>(exe);
    for (int fd : {plan.sync_fd, plan.fifo_fd})
      if (fd >= 0) ::fcntl(fd, F_SETFD, 0);
    ::syscall(SYS_execveat, plan.exec_stub_fd, "", plan.stub_argv.data(), plan.envp.data(), AT_EMPTY_PATH);
    // Refused (a seccomp profile that allows execve but not execveat): the program directly.
    for (int fd : {plan.sync_fd, plan.fifo_fd})
      if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  ::execve(exe, const_cast<char* const*>(plan.argv.data()), const_cast<char* const*>(plan.envp.data()));
  die(plan, "exec", errno, exe);
}

}  // namespace

[[noreturn]] void run_init(InitPlan& plan) {
  // The state lock in particular: flock() belongs to the open file, which we share until exec.
  for (int fd : plan.close_fds) ::close(fd);
  // Whatever else the runtime inherited must not reach the container's hooks or process
  // (CVE-2024-21626); our own fds stay usable until exec.
  ::syscall(SYS_close_range, 3 + plan.preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
  wait_for(plan, SyncType::kGo);
  if (plan.late_userns) {
    for (const auto& [fd, type] : plan.join) {
      if (::setns(fd, type) != 0) die(plan, "join namespace", errno);
      ::close(fd);
    }
    if (::unshare(CLONE_NEWUSER) != 0) die(plan, "unshare user namespace", errno);
    SyncMsg m;
    m.type = SyncType::kUserns;
    if (!sync_send(plan.sync_fd, m)) ::_exit(126);
    wait_for(plan, SyncType::kGo);
  }
  // Until exec, /proc/<pid>/exe of this process is the runtime binary: non-dumpable keeps
  // processes in the container from opening it (the CVE-2019-5736 class). Not before the id
  // maps are written: a non-dumpable process's /proc files belong to root, and an
  // unprivileged runtime could no longer write them. No container process exists yet.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (plan.new_userns) {
    // The parent has written our id maps: become the namespace's root (if mapped).
    ::setresgid(0, 0, 0);
    ::setresuid(0, 0, 0);
  }
  if (!plan.late_userns) {
    for (const auto& [fd, type] : plan.join) {
      if (::setns(fd, type) != 0) die(plan, "join namespace", errno);
      ::close(fd);
    }
  }
  int unshare_now = plan.unshare_flags & ~(plan.defer_cgroupns ? CLONE_NEWCGROUP : 0);
  if (unshare_now != 0 && ::unshare(unshare_now) != 0) die(plan, "unshare namespaces", errno);
  if (!plan.time_offsets.empty()) {
    int fd = ::open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, plan.time_offsets.data(), plan.time_offsets.size()) < 0)
      die(plan, "write linux.timeOffsets to /proc/self/timens_offsets", errno);
    ::close(fd);
  }
  if (plan.second_fork) {
    // A pid or time namespace applies to children only: the real init is our child.
    pid_t pid = ::fork();
    if (pid < 0) die(plan, "fork into new pid namespace", errno);
    if (pid > 0) {
      SyncMsg m;
      m.type = SyncType::kPid;
      m.pid = pid;
      sync_send(plan.sync_fd, m);
      ::_exit(0);
    }
  }
  if (plan.new_mountns) init_detail::setup_rootfs(plan);
  {
    SyncMsg m;
    m.type = SyncType::kMountsReady;
    if (!sync_send(plan.sync_fd, m)) ::_exit(126);
  }
  wait_for(plan, SyncType::kHooksDone);
  {
    ssize_t n;
    do {
      n = ::recv(plan.sync_fd, init_detail::g_state_json, sizeof init_detail::g_state_json, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) die(plan, "receive state", errno);
    init_detail::g_state_len = static_cast<size_t>(n);
  }
  // kHooksDone comes after the parent moved us into our cgroup: a cgroup namespace made now
  // has the container's cgroup as its root.
  if (plan.defer_cgroupns && ::unshare(CLONE_NEWCGROUP) != 0) die(plan, "unshare cgroup namespace", errno);
  run_hooks_in_child(plan, plan.create_container_hooks, "createContainer hook");
  if (plan.new_mountns) init_detail::finish_rootfs(plan);
  if (plan.set_hostname && ::sethostname(plan.hostname.data(), plan.hostname.size()) != 0)
    die(plan, "sethostname", errno, plan.hostname.c_str());
  if (plan.set_domainname && ::setdomainname(plan.domainname.data(), plan.domainname.size()) != 0)
    die(plan, "setdomainname", errno, plan.domainname.c_str());
  if (plan.terminal && plan.console_fd >= 0) set_console(plan, true);
  apply_rlimits(plan);
  char exe[PATH_MAX];
  resolve_and_report_ready(plan, exe, sizeof exe);
  if (plan.fifo_fd >= 0) {
    // Blocks until `start` writes one byte. Opened O_RDWR, so no writer ever means EOF.
    char c;
    ssize_t n;
    do {
      n = ::read(plan.fifo_fd, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) die(plan, "wait for start", n < 0 ? errno : EPIPE);
    // fifo_fd stays open (close-on-exec) until the exec: `start` waits for it to go before it
    // runs the poststart hooks.
  }
  run_hooks_in_child(plan, plan.start_container_hooks, "startContainer hook");
  finish_process(plan, exe);
}

[[noreturn]] void run_exec_child(InitPlan& plan, int target_pidfd, int setns_flags) {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  for (int fd : plan.close_fds) ::close(fd);
  ::syscall(SYS_close_range, 3 + plan.preserve_fds, ~0U, CLOSE_RANGE_CLOEXEC);
  wait_for(plan, SyncType::kGo);
  // One setns() with a pidfd enters every namespace at once, user namespace first (the
  // kernel orders them), and moves our root and cwd into the container's mount namespace.
  if (setns_flags != 0 && ::setns(target_pidfd, setns_flags) != 0)
    die(plan, "enter container namespaces", errno);
  ::close(target_pidfd);
  if (plan.terminal && plan.console_fd >= 0) {
    set_console(plan, false);
  } else if (plan.new_session && ::setsid() < 0) {
    die(plan, "setsid", errno);
  }
  apply_rlimits(plan);
  char exe[PATH_MAX];
  resolve_and_report_ready(plan, exe, sizeof exe);
  finish_process(plan, exe);
}

}  // namespace strata::oci
