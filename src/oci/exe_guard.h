// Keeping the binary that makes containers (strata-runtime, or strata itself, which calls this
// library in-process) out of the containers' reach: CVE-2019-5736. Until a container process
// execs the user's program it is an image of that binary, so /proc/PID/exe of it is a way to
// the host's file, and a program whose interpreter is /proc/self/exe makes the kernel run the
// host's binary inside the container. Three defences, cheapest first:
//  - the init and exec children are non-dumpable until their exec (init.cc), so /proc/PID/exe
//    of them is closed to container processes without CAP_SYS_PTRACE over the host's user
//    namespace;
//  - they exec the user's program through the exec stub (exec_stub.c) from a sealed memfd, so
//    /proc/self/exe at that moment is the stub, not the host's binary;
//  - a container whose processes may hold CAP_SYS_PTRACE over the host (no user namespace, the
//    capability in any set) could still open /proc/PID/exe of a runtime process before its
//    exec: for those the runtime must itself run from an unwritable view of its binary
//    (reexec_unwritable: runc 1.1 and crun do that for every container).
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "oci/spec.h"

namespace strata::oci {

// The sealed memfd that holds the exec stub, made on first use and kept (close-on-exec) for the
// life of the process; -1 when the kernel refuses an executable memfd (vm.memfd_noexec=2).
int exec_stub_fd();

// Whether /proc/self/exe cannot be written by anyone: a sealed memfd, a file on a read-only
// mount, or (not root) a file this user may not write.
bool self_is_unwritable();

// Whether a process with these capabilities in a container with this spec could reach the
// runtime's processes through /proc/PID/exe: CAP_SYS_PTRACE in any capability set (the bounding
// set is enough: a setuid program can raise it) and no user namespace (CAP_SYS_PTRACE inside a
// user namespace does not reach processes made in the host's).
bool reaches_runtime_exe(const Spec& spec, const std::optional<Capabilities>& caps);

// Whether this process must run from an unwritable binary before it makes processes of a
// container: when they may reach it (`reaches`, see above) or there is no exec stub, and it does
// not already.
bool must_run_unwritable(bool reaches);

// Re-executes this process, same argv and environment, from an unwritable view of its binary:
// as root, through a detached read-only bind mount of its directory (no copy; the mount goes
// away with the last process executing it; runc 1.2's exeseal does the same with an overlay);
// otherwise from a sealed memfd copy. Returns only on failure.
Error reexec_unwritable(char** argv);

}  // namespace strata::oci
