// strata-monitor: the small per-container process of `strata run` (what conmon is to podman).
// It is exec'd by the process that created the container, so the container's init is its
// child: it holds the exit status, copies the container's stdout/stderr into the log file (and,
// for a foreground run, to the CLI's terminal), writes the exit file, then execs the cleanup
// command. It outlives the CLI, so `strata ps` and `strata logs` keep working after the CLI is
// gone or killed.
//
// Deliberately tiny: plain syscalls, no allocation in the loop, no logging library, linked
// statically, so that one monitor per container costs well under 1 MiB of RSS.
//
// Usage (internal; the arguments are written by src/sandbox/launch.cc):
//   strata-monitor --pid PID --log FILE --exit-file FILE [--stdout-fd N] [--stderr-fd N]
//                  [--tee-stdout-fd N] [--tee-stderr-fd N] [--exit-fd N] [--console-fd N]
//                  [--stdin-fd N [--stdin-pipe-fd N]] [--health-interval-ms N --health-arg WORD...]
//                  [-- CLEANUP-ARGV...]
// With a health interval the monitor runs the health command (the --health-arg words: `strata
// healthcheck run ID`) every interval while the container runs, one at a time, as podman's
// systemd timer does; the check itself (exec into the container, timeout, state) is that
// command's business, so the monitor stays a poll loop.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

namespace {

struct Options {
  pid_t pid = 0;
  const char* log = nullptr;
  const char* exit_file = nullptr;
  int stdout_fd = -1;
  int stderr_fd = -1;
  int tee_stdout_fd = -1;
  int tee_stderr_fd = -1;
  int exit_fd = -1;
  int console_fd = -1;       // --tty: the pty master (output in, forwarded stdin out)
  int stdin_fd = -1;         // -i: the CLI's stdin, copied into the terminal or the stdin pipe
  int stdin_pipe_fd = -1;    // -i without -t: the write end of the container's stdin pipe
  char** cleanup = nullptr;  // argv of the exit command, or null
  long health_interval_ms = 0;
  static constexpr int kMaxHealthArgs = 15;
  char* health_argv[kMaxHealthArgs + 1] = {};
  int health_argc = 0;
};

void die(const char* what) {
  // stderr is the log of whoever started us (or /dev/null): best effort.
  dprintf(2, "strata-monitor: %s: %s\n", what, strerror(errno));
  _exit(125);
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// RFC 3339 with nanoseconds in UTC, as podman's k8s-file log driver writes it.
size_t format_time(char* out, size_t cap) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
  n += static_cast<size_t>(snprintf(out + n, cap - n, ".%09ldZ", ts.tv_nsec));
  return n;
}

// One stream of the container: bytes from `fd` become k8s-file lines
//   <time> stdout F <line>     (a complete line)
//   <time> stdout P <partial>  (a chunk that did not end in a newline; the next chunk goes on)
struct Stream {
  const char* name;
  int fd;
  int tee;
};

int g_log = -1;

void log_chunk(const Stream& s, const char* buf, size_t n) {
  char head[96];
  size_t off = 0;
  while (off < n) {
    const char* nl = static_cast<const char*>(memchr(buf + off, '\n', n - off));
    size_t len = nl ? static_cast<size_t>(nl - (buf + off)) : n - off;
    size_t h = format_time(head, sizeof head);
    h += static_cast<size_t>(snprintf(head + h, sizeof head - h, " %s %c ", s.name, nl ? 'F' : 'P'));
    struct iovec iov[3] = {{head, h}, {const_cast<char*>(buf + off), len}, {const_cast<char*>("\n"), 1}};
    // One writev per line keeps lines whole for a concurrent `strata logs -f` reader.
    ssize_t want = static_cast<ssize_t>(h + len + 1);
    if (::writev(g_log, iov, 3) != want) {
      // Disk full or similar: the container must not block on a full pipe because of it.
    }
    off += len + (nl ? 1 : 0);
  }
}

bool pump(Stream& s) {
  char buf[65536];
  ssize_t n = ::read(s.fd, buf, sizeof buf);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
  if (n <= 0) return false;
  log_chunk(s, buf, static_cast<size_t>(n));
  if (s.tee >= 0 && !write_all(s.tee, buf, static_cast<size_t>(n))) {
    ::close(s.tee);  // the CLI went away: keep logging
    s.tee = -1;
  }
  return true;
}

int parse_fd(const char* s) {
  char* end = nullptr;
  long v = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || v < 0 || v > 1 << 20) {
    dprintf(2, "strata-monitor: bad fd \"%s\"\n", s);
    _exit(125);
  }
  return static_cast<int>(v);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (strcmp(a, "--") == 0) {
      if (i + 1 < argc) o.cleanup = argv + i + 1;
      break;
    }
    if (i + 1 >= argc) {
      dprintf(2, "strata-monitor: %s needs a value\n", a);
      _exit(125);
    }
    const char* v = argv[++i];
    if (strcmp(a, "--pid") == 0)
      o.pid = parse_fd(v);
    else if (strcmp(a, "--log") == 0)
      o.log = v;
    else if (strcmp(a, "--exit-file") == 0)
      o.exit_file = v;
    else if (strcmp(a, "--stdout-fd") == 0)
      o.stdout_fd = parse_fd(v);
    else if (strcmp(a, "--stderr-fd") == 0)
      o.stderr_fd = parse_fd(v);
    else if (strcmp(a, "--tee-stdout-fd") == 0)
      o.tee_stdout_fd = parse_fd(v);
    else if (strcmp(a, "--tee-stderr-fd") == 0)
      o.tee_stderr_fd = parse_fd(v);
    else if (strcmp(a, "--exit-fd") == 0)
      o.exit_fd = parse_fd(v);
    else if (strcmp(a, "--console-fd") == 0)
      o.console_fd = parse_fd(v);
    else if (strcmp(a, "--stdin-fd") == 0)
      o.stdin_fd = parse_fd(v);
    else if (strcmp(a, "--stdin-pipe-fd") == 0)
      o.stdin_pipe_fd = parse_fd(v);
    else if (strcmp(a, "--health-interval-ms") == 0)
      o.health_interval_ms = parse_fd(v);
    else if (strcmp(a, "--health-arg") == 0) {
      if (o.health_argc == Options::kMaxHealthArgs) {
        dprintf(2, "strata-monitor: more than %d --health-arg words\n", Options::kMaxHealthArgs);
        _exit(125);
      }
      o.health_argv[o.health_argc++] = const_cast<char*>(v);
    } else {
      dprintf(2, "strata-monitor: unknown option %s\n", a);
      _exit(125);
    }
  }
  if (o.pid <= 0 || o.log == nullptr || o.exit_file == nullptr) {
    dprintf(2, "strata-monitor: --pid, --log and --exit-file are required\n");
    _exit(125);
  }
  if ((o.health_interval_ms > 0) != (o.health_argc > 0)) {
    dprintf(2, "strata-monitor: --health-interval-ms and --health-arg go together\n");
    _exit(125);
  }
  return o;
}

// A timerfd that fires every interval_ms, or -1.
int health_timer(long interval_ms) {
  if (interval_ms <= 0) return -1;
  int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (fd < 0) die("timerfd_create");
  struct itimerspec its {};
  its.it_interval.tv_sec = interval_ms / 1000;
  its.it_interval.tv_nsec = (interval_ms % 1000) * 1000000L;
  its.it_value = its.it_interval;
  if (::timerfd_settime(fd, 0, &its, nullptr) != 0) die("timerfd_settime");
  return fd;
}

// Starts the health command with stdio on /dev/null (ours already are) and no signal blocked.
// Our fds are close-on-exec but the foreground CLI's exit pipe, which must not be held open by
// a check (the CLI waits for its EOF).
pid_t spawn_health_check(const Options& o, const sigset_t& blocked) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (o.exit_fd >= 0) ::close(o.exit_fd);
    sigprocmask(SIG_UNBLOCK, &blocked, nullptr);
    ::execv(o.health_argv[0], o.health_argv);
    _exit(127);
  }
  return pid > 0 ? pid : 0;
}

// A check still running when the container has exited finishes first (its on-failure action may
// be waiting for the exit file we just wrote; the exec into a dead container fails at once), but
// never holds the cleanup for more than a few seconds.
void finish_health_check(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    if (::waitpid(pid, nullptr, WNOHANG) != 0) return;
    struct timespec ts = {0, 10 * 1000000L};
    ::nanosleep(&ts, nullptr);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

// The exit file, written atomically: "<exit code> <unix time ns>\n". The code is the
// process's status, or 128+N for death by signal N (as podman and runc report it).
void write_exit_file(const char* path, int code) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= static_cast<int>(sizeof tmp)) return;
  int fd = ::open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char line[64];
  int n = snprintf(line, sizeof line, "%d %lld\n", code,
                   static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec);
  write_all(fd, line, static_cast<size_t>(n));
  ::close(fd);
  ::rename(tmp, path);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);
  // Orphans of the container (after a second fork in the init) are reparented to us.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  g_log = ::open(o.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (g_log < 0) die("open log file");

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) die("signalfd");

  // With a terminal, everything the container writes comes through the master.
  Stream streams[2] = {{"stdout", o.console_fd >= 0 ? o.console_fd : o.stdout_fd, o.tee_stdout_fd},
                       {"stderr", o.stderr_fd, o.tee_stderr_fd}};
  if (o.console_fd >= 0 && o.stdout_fd >= 0) ::close(o.stdout_fd);
  for (auto& s : streams) {
    if (s.fd >= 0) ::fcntl(s.fd, F_SETFD, FD_CLOEXEC);
    if (s.tee >= 0) ::fcntl(s.tee, F_SETFD, FD_CLOEXEC);
  }
  // The caller's stdin goes into the terminal, or (-i without -t) into the container's stdin
  // pipe: the container never holds the caller's own file. The pipe is non-blocking and
  // written from a small buffer, so a container that does not read its stdin cannot stall the
  // log copying.
  int in_to = o.console_fd >= 0 ? o.console_fd : o.stdin_pipe_fd;
  int in_fd = in_to >= 0 ? o.stdin_fd : -1;
  if (in_fd >= 0) ::fcntl(in_fd, F_SETFD, FD_CLOEXEC);
  const bool in_pipe = in_to >= 0 && in_to == o.stdin_pipe_fd;
  if (in_pipe) {
    ::fcntl(in_to, F_SETFD, FD_CLOEXEC);
    ::fcntl(in_to, F_SETFL, O_NONBLOCK);
  }
  if (in_fd < 0 && o.stdin_pipe_fd >= 0) ::close(o.stdin_pipe_fd);
  char in_buf[4096];
  size_t in_len = 0, in_off = 0;

  int timer = health_timer(o.health_interval_ms);
  pid_t health_pid = 0;

  int status = 0;
  bool exited = false;
  // The init may already be gone (a container that exits at once): reap before polling.
  for (;;) {
    // Once the init is reaped, only a running health check is: finish_health_check() waits for
    // that one by pid.
    while (!exited || health_pid > 0) {
      int st = 0;
      pid_t p = ::waitpid(exited ? health_pid : -1, &st, WNOHANG);
      if (p <= 0) break;
      if (p == o.pid) {
        status = st;
        exited = true;
      } else if (p == health_pid) {
        health_pid = 0;
      }
    }
    if (exited && timer >= 0) {
      ::close(timer);
      timer = -1;
    }
    bool open_streams = streams[0].fd >= 0 || streams[1].fd >= 0;
    if (exited && !open_streams) break;

    struct pollfd pfd[6];
    int n = 0;
    pfd[n++] = {sfd, POLLIN, 0};
    int timer_idx = -1;
    if (timer >= 0) {
      timer_idx = n;
      pfd[n++] = {timer, POLLIN, 0};
    }
    int in_idx = -1;
    if (in_fd >= 0 && !exited) {
      in_idx = n;
      // With input still pending for the pipe, wait for room in the pipe instead.
      pfd[n++] = in_len > in_off ? pollfd{in_to, POLLOUT, 0} : pollfd{in_fd, POLLIN, 0};
    }
    int idx[2] = {-1, -1};
    for (int i = 0; i < 2; ++i) {
      if (streams[i].fd >= 0) {
        idx[i] = n;
        pfd[n++] = {streams[i].fd, POLLIN, 0};
      }
    }
    // After the init died, every process of its pid namespace is gone too; what is left in
    // the pipes is drained, but a pipe some escaped process keeps open must not hold us.
    int r = ::poll(pfd, static_cast<nfds_t>(n), exited ? 200 : -1);
    if (r < 0 && errno != EINTR) die("poll");
    if (r == 0 && exited) break;
    if (pfd[0].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (::read(sfd, &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
      }
    }
    if (timer_idx >= 0 && (pfd[timer_idx].revents & POLLIN)) {
      uint64_t ticks = 0;
      (void)!::read(timer, &ticks, sizeof ticks);
      // One check at a time: a tick while one runs (a test slower than the interval) is skipped.
      if (health_pid == 0) health_pid = spawn_health_check(o, mask);
    }
    if (in_idx >= 0 && pfd[in_idx].revents != 0) {
      if (in_len == in_off) {
        ssize_t got = ::read(in_fd, in_buf, sizeof in_buf);
        if (got > 0) {
          in_len = static_cast<size_t>(got);
          in_off = 0;
        } else if (got == 0 || errno != EINTR) {
          // The caller's input ended: a terminal stays open, a pipe is closed (EOF inside).
          ::close(in_fd);
          in_fd = -1;
          if (in_pipe) ::close(in_to);
        }
      }
      if (in_fd >= 0 && in_len > in_off) {
        if (!in_pipe) {
          write_all(in_to, in_buf + in_off, in_len - in_off);
          in_off = in_len;
        } else {
          ssize_t w = ::write(in_to, in_buf + in_off, in_len - in_off);
          if (w > 0) {
            in_off += static_cast<size_t>(w);
          } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
            ::close(in_fd);  // the container closed its stdin (EPIPE): stop reading ours
            in_fd = -1;
            ::close(in_to);
          }
        }
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (idx[i] < 0 || pfd[idx[i]].revents == 0) continue;
      if (!pump(streams[i])) {
        ::close(streams[i].fd);
        streams[i].fd = -1;
      }
    }
  }

  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  write_exit_file(o.exit_file, code);
  if (health_pid > 0) finish_health_check(health_pid);
  ::close(g_log);
  for (auto& s : streams) {
    if (s.tee >= 0) ::close(s.tee);
  }
  if (o.exit_fd >= 0) {
    // The foreground CLI reads the code here; the fd stays open through the cleanup command
    // (not close-on-exec), so its EOF tells the CLI that cleanup (and --rm) is done.
    write_all(o.exit_fd, reinterpret_cast<const char*>(&code), sizeof code);
  }
  if (o.cleanup != nullptr) {
    sigprocmask(SIG_UNBLOCK, &mask, nullptr);
    ::execv(o.cleanup[0], o.cleanup);
    die("exec cleanup command");
  }
  return 0;
}
