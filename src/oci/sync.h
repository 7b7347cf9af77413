// The parent <-> container-init protocol over a SOCK_SEQPACKET socketpair (STYLE.md section 6).
// Each message is one fixed-size SyncMsg, so the child never allocates to send or receive one.
//
//   parent                         child (container init)
//   clone3 ------------------------> waits for kGo
//   uid/gid maps, cgroup, oom adj
//   kGo ---------------------------> joins namespaces, unshares the rest, (forks again if a pid
//                                    or time namespace must be entered by a child)
//        <------------------------- kPid (only after a second fork: the real init's pid)
//        <------------------------- kMountsReady (rootfs mounted, before pivot_root)
//   prestart, createRuntime and
//   createContainer hooks
//   kHooksDone + kStateJson -------> pivot_root, masked/readonly paths, hostname, sysctl,
//                                    console, rlimits, resolves the executable
//        <------------------------- kReady, then blocks on exec.fifo until `start`
//   any failure in the child:
//        <------------------------- kFailure{step, errno, detail}; the child _exit()s
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

namespace strata::oci {

// kUserns: the child made its user namespace late (after joining namespaces by path) and
// waits for a second kGo once the parent has written its id maps.
enum class SyncType : uint32_t { kGo = 1, kPid, kMountsReady, kHooksDone, kStateJson, kReady, kFailure, kUserns };

struct ChildFailure {
  int32_t err = 0;
  char step[64] = {};
  char detail[256] = {};
};

struct SyncMsg {
  SyncType type{};
  int32_t pid = 0;
  ChildFailure failure;
};

// Bounded C-string append into a fixed buffer; safe between clone() and exec().
inline void buf_append(char* buf, size_t size, const char* s) {
  size_t n = ::strnlen(buf, size);
  while (s != nullptr && *s != '\0' && n + 1 < size) buf[n++] = *s++;
  if (n < size) buf[n] = '\0';
}

inline void buf_append_u64(char* buf, size_t size, uint64_t v) {
  char tmp[24];
  int i = 0;
  do {
    tmp[i++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0 && i < 23);
  char out[24];
  int j = 0;
  while (i > 0) out[j++] = tmp[--i];
  out[j] = '\0';
  buf_append(buf, size, out);
}

inline bool sync_send(int fd, const SyncMsg& m) {
  ssize_t n;
  do {
    n = ::send(fd, &m, sizeof m, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof m);
}

// Returns 1 on a message, 0 on EOF, -errno on error.
inline int sync_recv(int fd, SyncMsg* m) {
  ssize_t n;
  do {
    n = ::recv(fd, m, sizeof *m, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return -errno;
  if (n == 0) return 0;
  if (n != static_cast<ssize_t>(sizeof *m)) return -EPROTO;
  return 1;
}

}  // namespace strata::oci
