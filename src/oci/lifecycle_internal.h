// Shared between container.cc (create/start/delete/...) and run_exec.cc (run, exec).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "base/fd.h"
#include "oci/cgroup.h"
#include "oci/container.h"
#include "oci/spec.h"
#include "oci/state.h"
#include "oci/sync.h"

namespace strata::oci::detail {

struct Created {
  pid_t pid = 0;
  UniqueFd pidfd;         // of the init when it is our child; invalid after a second fork
  bool is_child = false;  // waitpid() works on pid
  ContainerState state;   // as saved
  Spec spec;              // as validated: run needs it again for its hooks
  UniqueFd proxy;         // CreateOptions::proxy_terminal: receives the pty master
};

// create without the CLI's pid-file: used by create and run.
Result<Created> create_impl(const RuntimeContext& ctx, const CreateOptions& opts);
// Writes one byte to exec.fifo, removes it, runs poststart hooks.
Status start_impl(const StateStore& store, const ContainerState& st, const Spec& spec);
// Kills what is left, removes the cgroup, runs poststop hooks, removes the state.
Status destroy_impl(const StateStore& store, const ContainerState& st, const Spec* spec);
Result<Spec> load_saved_spec(const StateStore& store, const std::string& id);
Result<UniqueFd> connect_console_socket(const std::string& path);
// A socketpair whose one end is handed to the init as its console socket; the other end
// receives the pty master for a foreground run/exec with a terminal.
Result<int> receive_pty_master(int sock);
Status write_pid_file(const std::string& path, pid_t pid);
// The Error for a kFailure record sent by the init or an exec child.
Error child_error(const SyncMsg& m);
// Before any process of a container is made: makes sure this process runs from an unwritable
// binary when `reaches` (exe_guard.h's reaches_runtime_exe) or when there is no exec stub,
// through ctx.reexec (which does not return) or by refusing.
Status guard_runtime_exe(const RuntimeContext& ctx, bool reaches);

}  // namespace strata::oci::detail
