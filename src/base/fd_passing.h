// Passing a file descriptor over a unix socket (SCM_RIGHTS): the console socket protocol of
// runc (the container's pty master, with its name as the payload) and strata's own channels.
// No allocation: send_with_fd runs in a container's init between clone and exec.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace strata {

// Sends `len` bytes of `data`, with `fd` attached when fd >= 0. Returns 0 or -errno.
int send_with_fd(int sock, const void* data, size_t len, int fd);
// Receives up to `len` bytes; an fd that came along is stored in *fd (close-on-exec; further
// fds of the same message are closed), else *fd is -1. Returns the byte count (0 at EOF) or
// -errno.
ssize_t recv_with_fd(int sock, void* data, size_t len, int* fd);

}  // namespace strata
