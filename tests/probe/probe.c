/* probe: run as a container's (or guest's) process; prints what it sees as one JSON object so
 * tests compare facts instead of scraping tool output (STYLE.md section 11).
 * Static, no dependencies beyond libc. Usage: probe [facts|exit N|sleep S|syscall NAME] */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

static void json_str(const char *k, const char *v, int comma) {
  printf("\"%s\":\"", k);
  for (const char *p = v; p && *p; p++) {
    if (*p == '"' || *p == '\\') putchar('\\');
    if (*p == '\n') { fputs("\\n", stdout); continue; }
    if ((unsigned char)*p < 0x20) continue;
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

static int count_fds(void) {
  int n = 0;
  for (int fd = 0; fd < 1024; fd++)
    if (fcntl(fd, F_GETFD) >= 0) n++;
  return n;
}

int main(int argc, char **argv) {
  if (argc >= 3 && strcmp(argv[1], "exit") == 0) return atoi(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "sleep") == 0) { sleep((unsigned)atoi(argv[2])); return 0; }
  if (argc >= 3 && strcmp(argv[1], "syscall") == 0) {
    long r = -1;
    if (strcmp(argv[2], "getcwd") == 0) { char b[64]; r = syscall(SYS_getcwd, b, sizeof b); }
    else if (strcmp(argv[2], "mkdir") == 0) r = syscall(SYS_mkdir, "/tmp/probe-mkdir", 0755);
    else if (strcmp(argv[2], "getpid") == 0) r = syscall(SYS_getpid);
    else if (strcmp(argv[2], "uname") == 0) { struct utsname u; r = syscall(SYS_uname, &u); }
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
