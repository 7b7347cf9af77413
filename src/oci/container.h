// The container lifecycle of strata-runtime, runc's semantics (runtime-spec runtime.md):
// create leaves the init waiting before the user's program until start; state persists under
// --root; delete removes cgroups and state; a failed create leaves nothing behind.
// src/cli/runtime_*.cc are thin front ends over these functions.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "oci/spec.h"
#include "oci/state.h"

namespace strata::oci {

struct RuntimeContext {
  std::string root = "/run/strata-runtime";
  bool systemd_cgroup = false;
  // What to do when a container needs this process to run from an unwritable copy of its binary
  // and it does not (exe_guard.h: CAP_SYS_PTRACE without a user namespace, or no exec stub):
  // strata-runtime re-executes itself (oci::reexec_unwritable with its argv), which returns
  // only on failure. Unset: such a container is refused, with an error that says why.
  std::function<Error()> reexec;
};

struct CreateOptions {
  std::string id;
  std::string bundle = ".";
  std::string pid_file;
  std::string console_socket;
  int preserve_fds = 0;
  bool no_pivot = false;
  // Internal (foreground run): with process.terminal and no --console-socket, make our own
  // console socket and hand its other end back in Created::proxy.
  bool proxy_terminal = false;
};

Status create_container(const RuntimeContext& ctx, const CreateOptions& opts);
Status start_container(const RuntimeContext& ctx, const std::string& id);
// `run`: create + start, then (unless detach) wait, forward signals, delete (unless keep: the
// stopped container stays, as with runc's --keep); returns the exit code the way runc does (the
// process's status, 128+N for death by signal N).
Result<int> run_container(const RuntimeContext& ctx, const CreateOptions& opts, bool detach,
                          bool keep = false);
Result<std::string> container_state_json(const RuntimeContext& ctx, const std::string& id);
Status kill_container(const RuntimeContext& ctx, const std::string& id, int sig, bool all);
Status delete_container(const RuntimeContext& ctx, const std::string& id, bool force);
Status pause_container(const RuntimeContext& ctx, const std::string& id);
Status resume_container(const RuntimeContext& ctx, const std::string& id);
Result<std::vector<pid_t>> container_pids(const RuntimeContext& ctx, const std::string& id);
// Applies new limits and records them in the saved config.
Status update_container(const RuntimeContext& ctx, const std::string& id, const Resources& res);

struct ListEntry {
  ContainerState state;
  ContainerStatus status;
};
Result<std::vector<ListEntry>> list_containers(const RuntimeContext& ctx);

struct ExecOptions {
  std::string id;
  std::string process_json;  // contents of --process, or empty
  std::vector<std::string> args;
  bool tty = false;
  bool detach = false;
  std::string pid_file;
  std::string cwd;
  std::vector<std::string> env;
  std::string user;  // "uid[:gid]"
  std::vector<std::string> additional_gids;
  std::string console_socket;
  int preserve_fds = 0;
  std::vector<std::string> cap_add;
  bool no_new_privs = false;
  // The process's stdin, stdout and stderr; -1 inherits the caller's (runc's behaviour). A
  // caller that captures a process's output (a health check, `strata exec`) passes its own pipes.
  int stdio[3] = {-1, -1, -1};
  // Without a terminal, the process leads a new session instead of joining the caller's (and
  // its controlling terminal). runc's CLI keeps the caller's session; strata's does not.
  bool new_session = false;
};
// `exec`: starts the process, then waits for it (its exit code, 128+N for death by signal N)
// unless opts.detach.
Result<int> exec_container(const RuntimeContext& ctx, const ExecOptions& opts);

// The first half of exec_container: the process runs the user's program when this returns.
// The caller owns the child: it must wait for it (waitpid on pid).
struct ExecProcess {
  pid_t pid = 0;
  UniqueFd master;  // -t without --console-socket: the terminal's master side
};
Result<ExecProcess> start_exec(const RuntimeContext& ctx, const ExecOptions& opts);

// Waits for the foreground process `pid` (the caller's child), forwarding the usual signals to
// it, and relays its streams: with a terminal (master >= 0) the caller's stdin goes into it and
// its output to fd 1; with pipes, the caller's fd 0 goes into stdin_w (which this function owns
// and closes, at the caller's EOF or the process's) and stdout_r/stderr_r go to fds 1 and 2,
// drained once the process exits. Returns the exit status (128+N for death by signal N).
struct ForegroundIo {
  int master = -1;
  int stdin_w = -1;
  int stdout_r = -1;
  int stderr_r = -1;
};
int wait_foreground(pid_t pid, const ForegroundIo& io);

// `features`: what this runtime supports (runtime-spec features.md).
std::string features_json();
// Parses a runtime-spec LinuxResources JSON (update -r).
Result<Resources> parse_resources(std::string_view json_text);

}  // namespace strata::oci
