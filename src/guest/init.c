/* strata-init: the static PID 1 inside a strata micro-VM.
 *
 *   1. mounts devtmpfs on /dev (and makes /dev/console its stdio), proc on /proc, sysfs on /sys;
 *   2. reads its instructions from /proc/cmdline (the contract: spec.h);
 *   3. with strata.root: waits for the device, mounts it on /newroot, moves /dev /proc /sys into
 *      it and makes it the root (the switch_root way: MS_MOVE onto / and chroot, because
 *      pivot_root(2) refuses the initial rootfs);
 *   4. mounts devpts on /dev/pts, tmpfs on /dev/shm and /run, cgroup2 on /sys/fs/cgroup;
 *   5. sets the hostname, brings lo up, gives strata.iface its address, brings it up and adds
 *      the default route (ioctls);
 *   6. starts the workload (args, env, cwd, uid, gid, groups) in a session of its own with the
 *      console as its controlling terminal; reaps every orphan (it is PID 1) and forwards
 *      SIGTERM, SIGINT and SIGHUP to the workload;
 *   7. when the workload ends: SIGTERM then SIGKILL to what is left, the exit line on the console
 *      and over vsock (protocol.h), sync, reboot(RB_POWER_OFF), or RB_AUTOBOOT when the kernel
 *      has no ACPI to power off with (strata.shutdown, spec.h).
 * Any failure prints "strata-init: STEP ON WHAT: ERRNO", then "strata-init: error E STEP" and
 * ends the VM the same way. Should reboot(2) itself fail, init exits: the kernel panics and,
 * with panic=-1 (this kernel's default, CONFIG_PANIC_TIMEOUT), resets at once.
 *
 * `strata-init --check-cmdline 'LINE' [-- ARGS]` parses a command line on the host and prints
 * the plan (exit 0) or the error (exit 2): for tests and for the monitor's developers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <net/route.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"
#include "spec.h"

#define P STRATA_INIT_CONSOLE_PREFIX

static int g_shutdown; /* strata.shutdown: 0 auto, 1 reboot, 2 poweroff */

/* ---- output ---------------------------------------------------------------------------- */
static void say(const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  /* One write per line: the line is not split by the workload's output. */
  ssize_t off = 0;
  while (off < n) {
    ssize_t w = write(2, buf + off, (size_t)(n - off));
    if (w <= 0) break;
    off += w;
  }
}

/* errno's name ("ENOENT"): what the project's messages carry. */
static const char* errname(int e) {
  switch (e) {
#define E(x) \
  case x: return #x;
    E(EPERM) E(ENOENT) E(ESRCH) E(EINTR) E(EIO) E(ENXIO) E(E2BIG) E(ENOEXEC) E(EBADF) E(ECHILD) E(EAGAIN)
    E(ENOMEM) E(EACCES) E(EFAULT) E(ENOTBLK) E(EBUSY) E(EEXIST) E(EXDEV) E(ENODEV) E(ENOTDIR) E(EISDIR)
    E(EINVAL) E(ENFILE) E(EMFILE) E(ENOTTY) E(ETXTBSY) E(EFBIG) E(ENOSPC) E(ESPIPE) E(EROFS) E(EMLINK)
    E(EPIPE) E(ERANGE) E(ENAMETOOLONG) E(ENOSYS) E(ENOTEMPTY) E(ELOOP) E(ENODATA) E(ETIME) E(EPROTO)
    E(EOVERFLOW) E(EAFNOSUPPORT) E(EADDRINUSE) E(EADDRNOTAVAIL) E(ENETDOWN) E(ENETUNREACH) E(ECONNRESET)
    E(ENOBUFS) E(EISCONN) E(ENOTCONN) E(ETIMEDOUT) E(ECONNREFUSED) E(EHOSTUNREACH) E(EALREADY)
    E(EINPROGRESS) E(EUCLEAN) E(EOPNOTSUPP) E(EPROTONOSUPPORT) E(ESOCKTNOSUPPORT) E(ENOMEDIUM)
#undef E
    default: {
      static char buf[16];
      snprintf(buf, sizeof buf, "errno %d", e);
      return buf;
    }
  }
}

/* ---- the end ---------------------------------------------------------------------------- */
static void report_vsock(const char* line) {
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    say(P "vsock report: socket(AF_VSOCK): %s (the console line stands)", errname(errno));
    return;
  }
  struct sockaddr_vm addr = {.svm_family = AF_VSOCK, .svm_cid = STRATA_INIT_VSOCK_CID, .svm_port = STRATA_INIT_VSOCK_PORT};
  int r = connect(fd, (struct sockaddr*)&addr, sizeof addr);
  if (r < 0 && errno == EINPROGRESS) {
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&pfd, 1, 2000) <= 0) err = ETIMEDOUT;
    else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
    r = err ? -1 : 0;
    errno = err;
  }
  if (r < 0) {
    say(P "vsock report: connect to %u:%u: %s (the console line stands)", STRATA_INIT_VSOCK_CID,
        STRATA_INIT_VSOCK_PORT, errname(errno));
  } else {
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    struct timeval tv = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    size_t n = strlen(line);
    if (write(fd, line, n) != (ssize_t)n) say(P "vsock report: write: %s", errname(errno));
  }
  close(fd);
}

static void kill_the_rest(void) {
  /* Whatever the workload left behind: TERM, up to 1 s to go, then KILL. */
  if (kill(-1, SIGTERM) < 0) return; /* ESRCH: nobody left */
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    pid_t p = waitpid(-1, NULL, WNOHANG);
    if (p < 0 && errno == ECHILD) return;
    if (p > 0) continue;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000 > 1000) break;
    usleep(10000);
  }
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
  }
}

static _Noreturn void shutdown_vm(const char* line) {
  kill_the_rest();
  /* The console first: it is the line that always arrives. */
  say(P "%.*s", (int)strcspn(line, "\n"), line);
  report_vsock(line);
  sync();
  /* Without ACPI the kernel cannot power off: RB_POWER_OFF would halt the CPUs for good. */
  int off = g_shutdown == 2 || (g_shutdown == 0 && access("/sys/firmware/acpi", F_OK) == 0);
  reboot(off ? RB_POWER_OFF : RB_AUTOBOOT);
  say(P "reboot(%s): %s", off ? "RB_POWER_OFF" : "RB_AUTOBOOT", errname(errno));
  _exit(1); /* PID 1 exiting makes the kernel panic, and panic=-1 resets */
}

static _Noreturn void die(int code, const char* fmt, ...) {
  char buf[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  say(P "%s", buf);
  char line[STRATA_INIT_LINE_MAX];
  snprintf(line, sizeof line, "error %d %s\n", code, strata_init_error_step(code));
  shutdown_vm(line);
}

/* ---- mounts ------------------------------------------------------------------------------ */
static int mkdir_p(const char* path, mode_t mode) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf) return errno = ENAMETOOLONG, -1;
  for (char* p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, mode) < 0 && errno != EEXIST) return -1;
  return 0;
}

static void mount_or_die(int code, const char* src, const char* target, const char* type, unsigned long flags,
                         const char* data) {
  if (mkdir_p(target, 0755) < 0) die(code, "mkdir %s: %s", target, errname(errno));
  if (mount(src, target, type, flags, data) < 0) die(code, "mount %s on %s: %s", type, target, errname(errno));
}

static void early_mounts(void) {
  /* /dev first: the console lives there. EBUSY: the kernel mounted it (CONFIG_DEVTMPFS_MOUNT). */
  mkdir("/dev", 0755);
  if (mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755") < 0 && errno != EBUSY) {
    int e = errno;
    /* No console to print on unless the kernel gave us one. */
    say(P "mount devtmpfs on /dev: %s", errname(e));
    die(STRATA_INIT_E_EARLY, "no /dev");
  }
  int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) {
    for (int i = 0; i < 3; i++) dup2(fd, i); /* dup2 clears O_CLOEXEC on the copies */
    if (fd > 2) close(fd);
  }
  mount_or_die(STRATA_INIT_E_EARLY, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount_or_die(STRATA_INIT_E_EARLY, "sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
}

static void switch_root(const struct strata_spec* s) {
  /* The device: built-in drivers have probed before init runs; a monitor may still be slow. */
  struct stat st;
  int waited = 0;
  while (stat(s->root, &st) < 0) {
    if (waited >= s->rootwait_ms)
      die(STRATA_INIT_E_ROOT, "root device %s: %s (waited %d ms; is the disk attached?)", s->root, errname(errno), waited);
    usleep(10000);
    waited += 10;
  }
  if (!S_ISBLK(st.st_mode)) die(STRATA_INIT_E_ROOT, "root device %s: not a block device", s->root);
  if (mkdir_p("/newroot", 0755) < 0) die(STRATA_INIT_E_ROOT, "mkdir /newroot: %s", errname(errno));
  if (mount(s->root, "/newroot", s->rootfstype, s->rootflags, s->rootdata) < 0)
    die(STRATA_INIT_E_ROOT, "mount %s on /newroot (%s%s%s): %s", s->root, s->rootfstype, s->rootdata ? ", " : "",
        s->rootdata ? s->rootdata : "", errname(errno));
  static const char* moved[] = {"/dev", "/proc", "/sys"};
  for (size_t i = 0; i < sizeof moved / sizeof *moved; i++) {
    char target[64];
    snprintf(target, sizeof target, "/newroot%s", moved[i]);
    if (mkdir(target, 0755) < 0 && errno != EEXIST)
      die(STRATA_INIT_E_SWITCH, "mkdir %s: %s (a read-only root needs the directory)", target, errname(errno));
    if (mount(moved[i], target, NULL, MS_MOVE, NULL) < 0)
      die(STRATA_INIT_E_SWITCH, "move %s to %s: %s", moved[i], target, errname(errno));
  }
  if (chdir("/newroot") < 0) die(STRATA_INIT_E_SWITCH, "chdir /newroot: %s", errname(errno));
  if (mount(".", "/", NULL, MS_MOVE, NULL) < 0) die(STRATA_INIT_E_SWITCH, "move /newroot to /: %s", errname(errno));
  if (chroot(".") < 0) die(STRATA_INIT_E_SWITCH, "chroot /newroot: %s", errname(errno));
  if (chdir("/") < 0) die(STRATA_INIT_E_SWITCH, "chdir /: %s", errname(errno));
  /* The initramfs stays behind, unreachable; it holds only this program. */
}

static void late_mounts(void) {
  mount_or_die(STRATA_INIT_E_MOUNTS, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
               "newinstance,ptmxmode=0666,mode=0620,gid=5");
  if (symlink("pts/ptmx", "/dev/ptmx") < 0 && errno != EEXIST) {
    /* devtmpfs made a ptmx node; the pts one is what the new instance wants. */
  }
  mount_or_die(STRATA_INIT_E_MOUNTS, "shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_or_die(STRATA_INIT_E_MOUNTS, "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  mount_or_die(STRATA_INIT_E_MOUNTS, "cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
               "nsdelegate");
}

/* ---- network ----------------------------------------------------------------------------- */
static void set_up(int fd, const char* name) {
  struct ifreq ifr = {0};
  snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) die(STRATA_INIT_E_NET, "interface %s: %s", name, errname(errno));
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0) die(STRATA_INIT_E_NET, "bring %s up: %s", name, errname(errno));
}

static void network(const struct strata_spec* s) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die(STRATA_INIT_E_NET, "socket(AF_INET): %s", errname(errno));
  set_up(fd, "lo"); /* the kernel gives lo 127.0.0.1/8 when it goes up */
  if (s->ip) {
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", s->iface);
    struct sockaddr_in* sin = (struct sockaddr_in*)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, s->ip, &sin->sin_addr);
    if (ioctl(fd, SIOCSIFADDR, &ifr) < 0)
      die(STRATA_INIT_E_NET, "address %s on %s: %s", s->ip, s->iface, errname(errno));
    sin->sin_addr.s_addr = s->prefix ? htonl(0xffffffffu << (32 - s->prefix)) : 0;
    if (ioctl(fd, SIOCSIFNETMASK, &ifr) < 0)
      die(STRATA_INIT_E_NET, "netmask /%d on %s: %s", s->prefix, s->iface, errname(errno));
    set_up(fd, s->iface);
    if (s->gw) {
      struct rtentry rt = {0};
      struct sockaddr_in* dst = (struct sockaddr_in*)&rt.rt_dst;
      struct sockaddr_in* gw = (struct sockaddr_in*)&rt.rt_gateway;
      struct sockaddr_in* mask = (struct sockaddr_in*)&rt.rt_genmask;
      dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
      inet_pton(AF_INET, s->gw, &gw->sin_addr);
      rt.rt_flags = RTF_UP | RTF_GATEWAY;
      rt.rt_dev = (char*)s->iface;
      if (ioctl(fd, SIOCADDRT, &rt) < 0)
        die(STRATA_INIT_E_NET, "default route via %s dev %s: %s", s->gw, s->iface, errname(errno));
    }
  }
  close(fd);
}

/* ---- the workload ------------------------------------------------------------------------ */
/* What a failed child tells its parent through the pipe. */
struct child_error {
  int err;
  char what[200];
};

static _Noreturn void child_fail(int pipefd, int err, const char* fmt, const char* arg) {
  struct child_error ce = {.err = err};
  snprintf(ce.what, sizeof ce.what, fmt, arg);
  ssize_t w = write(pipefd, &ce, sizeof ce);
  (void)w;
  _exit(127);
}

/* execve with args[0] looked up in the PATH of the workload's own env. */
static void exec_in_path(char** args, char** env) {
  if (strchr(args[0], '/')) {
    execve(args[0], args, env);
    return;
  }
  const char* path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (char** e = env; *e; e++)
    if (!strncmp(*e, "PATH=", 5)) path = *e + 5;
  int saw_eacces = 0;
  char buf[4096];
  for (const char* p = path;; p++) {
    const char* colon = strchr(p, ':');
    size_t len = colon ? (size_t)(colon - p) : strlen(p);
    if (snprintf(buf, sizeof buf, "%.*s%s%s", (int)len, p, len ? "/" : "", args[0]) < (int)sizeof buf) {
      execve(buf, args, env);
      if (errno == EACCES) saw_eacces = 1;
      else if (errno != ENOENT && errno != ENOTDIR) return;
    }
    if (!colon) break;
    p = colon;
  }
  errno = saw_eacces ? EACCES : ENOENT;
}

static pid_t start_workload(const struct strata_spec* s, const sigset_t* oldmask) {
  int pfd[2];
  if (pipe2(pfd, O_CLOEXEC) < 0) die(STRATA_INIT_E_INTERNAL, "pipe: %s", errname(errno));
  pid_t pid = fork();
  if (pid < 0) die(STRATA_INIT_E_INTERNAL, "fork: %s", errname(errno));
  if (pid == 0) {
    close(pfd[0]);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, oldmask, NULL);
    setsid();
    ioctl(0, TIOCSCTTY, 0); /* the console as the controlling terminal, when it is one */
    if (setgroups(s->ngroups, (const gid_t*)s->groups) < 0) child_fail(pfd[1], errno, "setgroups%s", "");
    if (setgid(s->gid) < 0) child_fail(pfd[1], errno, "setgid %s", "");
    if (setuid(s->uid) < 0) child_fail(pfd[1], errno, "setuid %s", "");
    if (chdir(s->cwd) < 0) child_fail(pfd[1], errno, "chdir %s", s->cwd);
    exec_in_path(s->args, s->env);
    child_fail(pfd[1], errno, "exec %s", s->args[0]);
  }
  close(pfd[1]);
  struct child_error ce;
  ssize_t n;
  do n = read(pfd[0], &ce, sizeof ce);
  while (n < 0 && errno == EINTR);
  close(pfd[0]);
  if (n == (ssize_t)sizeof ce) {
    waitpid(pid, NULL, 0);
    ce.what[sizeof ce.what - 1] = 0;
    die(STRATA_INIT_E_EXEC, "%s: %s", ce.what, errname(ce.err));
  }
  return pid;
}

static double uptime(void) {
  struct timespec t;
  clock_gettime(CLOCK_BOOTTIME, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void print_plan(const struct strata_spec* s) {
  printf("root: %s (%s, flags 0x%lx, data %s, wait %d ms)\n", s->root ? s->root : "(the initial root)", s->rootfstype,
         s->rootflags, s->rootdata ? s->rootdata : "-", s->rootwait_ms);
  printf("net: %s %s/%d gw %s\n", s->iface, s->ip ? s->ip : "-", s->ip ? s->prefix : 0, s->gw ? s->gw : "-");
  printf("hostname: %s\nshutdown: %s\n", s->hostname ? s->hostname : "-", s->shutdown == 1 ? "reboot" : s->shutdown == 2 ? "poweroff" : "auto");
  printf("uid: %u gid: %u groups:", s->uid, s->gid);
  for (size_t i = 0; i < s->ngroups; i++) printf(" %u", s->groups[i]);
  printf("\ncwd: %s\n", s->cwd);
  for (char** a = s->args; *a; a++) printf("arg: %s\n", *a);
  for (char** e = s->env; *e; e++) printf("env: %s\n", *e);
}

int main(int argc, char** argv) {
  if (argc >= 3 && !strcmp(argv[1], "--check-cmdline")) {
    struct strata_spec s;
    char err[512];
    /* argv[3] == "--": the rest plays init's argv. */
    int rest = argc > 3 && !strcmp(argv[3], "--") ? 3 : argc - 1;
    if (strata_spec_parse(argv[2], argc - rest, argv + rest, &s, err, sizeof err) < 0) {
      fprintf(stderr, "strata-init: %s\n", err);
      return 2;
    }
    print_plan(&s);
    return 0;
  }
  if (getpid() != 1) {
    fprintf(stderr, "strata-init: not PID 1: this is the init of a strata micro-VM (try --check-cmdline LINE)\n");
    return 2;
  }

  /* Signals are taken synchronously (sigtimedwait), so none interrupts a step. */
  sigset_t mask, oldmask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGQUIT);
  sigaddset(&mask, SIGUSR1);
  sigaddset(&mask, SIGUSR2);
  sigprocmask(SIG_BLOCK, &mask, &oldmask);
  reboot(RB_DISABLE_CAD); /* Ctrl-Alt-Del becomes a SIGINT to init, forwarded to the workload */

  early_mounts();
  char cmdline[4096] = "";
  int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
  if (fd < 0) die(STRATA_INIT_E_EARLY, "open /proc/cmdline: %s", errname(errno));
  ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
  if (n < 0) die(STRATA_INIT_E_EARLY, "read /proc/cmdline: %s", errname(errno));
  cmdline[n] = 0;
  close(fd);

  struct strata_spec s;
  char err[512];
  if (strata_spec_parse(cmdline, argc, argv, &s, err, sizeof err) < 0) die(STRATA_INIT_E_CMDLINE, "%s", err);
  g_shutdown = s.shutdown;

  if (s.root) switch_root(&s);
  late_mounts();
  if (s.hostname && sethostname(s.hostname, strlen(s.hostname)) < 0)
    die(STRATA_INIT_E_NET, "sethostname %s: %s", s.hostname, errname(errno));
  network(&s);

  say(P "starting %s at uptime %.3f s", s.args[0], uptime());
  pid_t child = start_workload(&s, &oldmask);

  int status = 0;
  for (;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&mask, &si);
    if (sig < 0) continue;
    if (sig != SIGCHLD) {
      kill(child, sig);
      continue;
    }
    pid_t p;
    int st, done = 0;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
      if (p == child) {
        status = st;
        done = 1;
      }
    }
    if (done) break;
  }

  int code;
  if (WIFEXITED(status)) {
    code = WEXITSTATUS(status);
  } else {
    code = 128 + WTERMSIG(status);
    say(P "%s killed by signal %d", s.args[0], WTERMSIG(status));
  }
  say(P "%s ended at uptime %.3f s", s.args[0], uptime());
  char line[STRATA_INIT_LINE_MAX];
  snprintf(line, sizeof line, "exit %d\n", code);
  shutdown_vm(line);
}
