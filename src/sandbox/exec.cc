// `strata exec`: a new process in a running container, attached to the caller through pipes or
// a terminal of its own, never through the caller's own files. runc's CLI hands its stdio and
// session to the process (its callers, podman's conmon and containerd's shim, pass pipes they
// own); strata's caller is a person at a terminal, and a process in the container holding that
// terminal could read it after strata has gone, or push keystrokes into the shell with TIOCSTI.
#include <fcntl.h>
#include <unistd.h>

#include "sandbox/container.h"

namespace strata::sandbox {

Result<int> exec(const ContainerStore& store, const std::string& id, oci::ExecOptions opts,
                 bool interactive) {
  UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) return Error::sys("open /dev/null");
  opts.id = id;
  opts.new_session = true;
  if (opts.tty || opts.detach) {
    // A terminal is the runtime's own pty; a detached process gets nothing of ours.
    for (int& fd : opts.stdio) fd = null.get();
    ASSIGN_OR_RETURN(oci::ExecProcess p, oci::start_exec(runtime_context(store), opts));
    if (opts.detach) return 0;
    return oci::wait_foreground(p.pid, oci::ForegroundIo{p.master.get()});
  }
  int in[2] = {-1, -1}, out[2], err[2];
  if (interactive && ::pipe2(in, O_CLOEXEC) != 0) return Error::sys("pipe");
  UniqueFd in_r(in[0]), in_w(in[1]);
  if (::pipe2(out, O_CLOEXEC) != 0) return Error::sys("pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return Error::sys("pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);
  opts.stdio[0] = interactive ? in_r.get() : null.get();
  opts.stdio[1] = out_w.get();
  opts.stdio[2] = err_w.get();
  ASSIGN_OR_RETURN(oci::ExecProcess p, oci::start_exec(runtime_context(store), opts));
  // Only the process holds the other ends now: EOF comes when it (and whatever it left
  // behind) closes them.
  in_r.reset();
  out_w.reset();
  err_w.reset();
  oci::ForegroundIo io;
  io.stdin_w = interactive ? in_w.release() : -1;  // wait_foreground closes it at the caller's EOF
  io.stdout_r = out_r.get();
  io.stderr_r = err_r.get();
  return oci::wait_foreground(p.pid, io);
}

}  // namespace strata::sandbox
