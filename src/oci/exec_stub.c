/* strata's exec stub: the last step between a container's init (or an `exec`ed process) and
 * the user's program. It exists for CVE-2019-5736: until that last execve, the process is an
 * image of the runtime, so a program whose interpreter is /proc/self/exe ("#!/proc/self/exe",
 * or an ELF whose PT_INTERP is that path) would make the kernel run the runtime's own binary
 * inside the container, where a container process could hold it (/proc/PID/exe) and overwrite
 * it once no runtime runs. The init instead execs this stub from a sealed memfd (execveat), and
 * the stub execs the program: /proc/self/exe is then the sealed stub, which nobody can write and
 * which does nothing useful when run that way. Doing it here costs one exec of a few KiB; the
 * alternative (runc 1.1, crun) re-executes the whole runtime from a sealed copy first.
 *
 * Freestanding: no libc, raw x86-64 syscalls, built with -nostdlib -static into a few KiB and
 * embedded in strata_oci (exec_stub_blob.cc). The contract with init.cc (finish_process):
 *   argv[0]  "FD[,FD...]" the fds to close when the program is executed (the sync socket first,
 *            "-" when there is none, then e.g. exec.fifo); the runtime cleared their
 *            close-on-exec flag so that they survive this stub's own exec
 *   argv[1]  the program's resolved path
 *   argv[2+] the program's argv; envp is the program's
 * If execve fails, the failure goes to the sync socket as the runtime's own SyncMsg kFailure
 * (step "exec", the path as detail), or, with nobody to tell, to stderr; the exit status is 127,
 * as when the runtime's own execve fails. */

typedef unsigned long u64;
typedef long i64;

#define SYS_write 1
#define SYS_sendto 44
#define SYS_execve 59
#define SYS_exit 60
#define SYS_fcntl 72
#define F_SETFD 2
#define FD_CLOEXEC 1
#define MSG_NOSIGNAL 0x4000

static i64 sys3(i64 n, i64 a, i64 b, i64 c) {
  i64 r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}

static i64 sys6(i64 n, i64 a, i64 b, i64 c, i64 d, i64 e, i64 f) {
  i64 r;
  register i64 r10 __asm__("r10") = d;
  register i64 r8 __asm__("r8") = e;
  register i64 r9 __asm__("r9") = f;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return r;
}

/* The runtime's SyncMsg (src/oci/sync.h), byte for byte; exec_stub_test checks the layout. */
struct sync_msg {
  unsigned int type; /* SyncType::kFailure = 7 */
  int pid;
  int err;
  char step[64];
  char detail[256];
};

/* GCC may turn loops and initializers into these calls even freestanding. */
void* memset(void* d, int c, u64 n) {
  unsigned char* p = (unsigned char*)d;
  while (n--) *p++ = (unsigned char)c;
  return d;
}
void* memcpy(void* d, const void* s, u64 n) {
  unsigned char* p = (unsigned char*)d;
  const unsigned char* q = (const unsigned char*)s;
  while (n--) *p++ = *q++;
  return d;
}

static u64 len(const char* s) {
  u64 n = 0;
  while (s[n]) n++;
  return n;
}

static void append(char* buf, u64 size, const char* s) {
  u64 n = len(buf);
  while (*s && n + 1 < size) buf[n++] = *s++;
  buf[n] = 0;
}

static const char* errno_text(int e) {
  switch (e) {
    case 1: return "Operation not permitted";
    case 2: return "No such file or directory";
    case 7: return "Argument list too long";
    case 8: return "Exec format error";
    case 12: return "Cannot allocate memory";
    case 13: return "Permission denied";
    case 20: return "Not a directory";
    case 21: return "Is a directory";
    case 26: return "Text file busy";
    case 40: return "Too many levels of symbolic links";
    default: return "error";
  }
}

static void say(const char* s) { sys3(SYS_write, 2, (i64)s, (i64)len(s)); }

/* Parses one decimal fd at *p (advancing past it and one separator); -1 for "-" or garbage. */
static int next_fd(const char** p) {
  const char* s = *p;
  int v = -1;
  if (*s == '-') {
    s++;
  } else if (*s >= '0' && *s <= '9') {
    v = 0;
    while (*s >= '0' && *s <= '9' && v < (1 << 20)) v = v * 10 + (*s++ - '0');
  } else {
    return -2; /* not ours */
  }
  if (*s == ',') s++;
  else if (*s != 0) return -2;
  *p = s;
  return v;
}

__attribute__((used, noreturn)) void stub_main(i64* sp) {
  i64 argc = sp[0];
  char** argv = (char**)(sp + 1);
  char** envp = argv + argc + 1;
  if (argc < 3) {
    /* Run any other way (say, as a script's interpreter through /proc/self/exe): refuse. */
    say("strata exec stub: not a program to run\n");
    sys3(SYS_exit, 127, 0, 0);
  }
  const char* p = argv[0];
  int report = next_fd(&p);
  if (report == -2) {
    say("strata exec stub: not a program to run\n");
    sys3(SYS_exit, 127, 0, 0);
  }
  if (report >= 0) sys3(SYS_fcntl, report, F_SETFD, FD_CLOEXEC);
  while (*p) {
    int fd = next_fd(&p);
    if (fd == -2) break;
    if (fd >= 0) sys3(SYS_fcntl, fd, F_SETFD, FD_CLOEXEC);
  }
  i64 r = sys3(SYS_execve, (i64)argv[1], (i64)(argv + 2), (i64)envp);
  int err = (int)-r;
  struct sync_msg m;
  char* b = (char*)&m;
  for (u64 i = 0; i < sizeof m; i++) b[i] = 0;
  m.type = 7;
  m.err = err;
  append(m.step, sizeof m.step, "exec");
  append(m.detail, sizeof m.detail, argv[1]);
  if (report < 0 || sys6(SYS_sendto, report, (i64)&m, sizeof m, MSG_NOSIGNAL, 0, 0) != (i64)sizeof m) {
    char line[512] = "strata-runtime: exec ";
    append(line, sizeof line, argv[1]);
    append(line, sizeof line, ": ");
    append(line, sizeof line, errno_text(err));
    append(line, sizeof line, "\n");
    say(line);
  }
  sys3(SYS_exit, 127, 0, 0);
  __builtin_unreachable();
}

/* The kernel starts us with argc at (%rsp); the ABI wants a 16-byte aligned stack at a call. */
__asm__(".text\n"
        ".global _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call stub_main\n"
        "  hlt\n");
