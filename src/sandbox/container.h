// The container lifecycle of `strata run`, daemonless like podman: the CLI sets up the rootfs
// (an overlay of the image's layers), creates and starts the container in-process through
// src/oci, attaches its network (src/net), then the forked child becomes strata-monitor, which
// holds the exit status, writes the log and runs `strata container cleanup` when the container
// ends. Every step is recorded in the ContainerRecord before it is taken, so teardown() can undo
// whatever a crashed or killed process left, and is safe to run twice.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "oci/container.h"
#include "sandbox/record.h"

namespace strata::sandbox {

struct LaunchOptions {
  // Foreground run: the container's output is copied to these fds as well as to the log, and
  // exit_fd (returned in Launched) yields the exit code then EOF once cleanup is done.
  bool attach = false;
  int stdin_fd = -1;  // -i: the container reads this fd directly (else /dev/null)
  int stdout_fd = 1;
  int stderr_fd = 2;
  std::string strata_exe;   // the strata binary the monitor runs `container cleanup` with
  std::string monitor_exe;  // strata-monitor
  // An existing container started again (restart policy, `strata start|restart`, a health
  // check's restart): the caller holds its lock (ContainerStore::lock).
  bool restart = false;
};

struct Launched {
  std::string id;
  pid_t pid = 0;
  UniqueFd exit_fd;  // attach only
  UniqueFd master;   // --tty: the container's terminal (the monitor holds it too)
};

// Whether the process that makes this container's processes must first run from an unwritable
// copy of its binary (oci/exe_guard.h): its processes may hold CAP_SYS_PTRACE (--cap-add
// SYS_PTRACE or ALL; strata run makes no user namespaces) or there is no exec stub, and this
// process does not run from one already. The src/oci library refuses such a container otherwise.
bool needs_unwritable_self(const ContainerConfig& c);

// Creates and starts the container described by rec.config (rec.id and rec.name set by the
// caller). On failure nothing is left: no mount, cgroup, veth, rule, lease, process or files.
// The runtime library's context for this store's containers (its state under oci_root()).
oci::RuntimeContext runtime_context(const ContainerStore& store);

Result<Launched> launch(const ContainerStore& store, ContainerRecord rec, const LaunchOptions& opts);

// Waits for a foreground container: reads the exit code from exit_fd and waits for EOF
// (cleanup finished). Signals SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/2 are forwarded to the container.
Result<int> wait_attached(const ContainerStore& store, Launched& l);

// Undoes what the record says was set up (runtime container and cgroups, network, overlay
// mount); idempotent. Keeps the record and directory.
Status teardown(const ContainerStore& store, ContainerRecord& rec);

// Run by strata-monitor after the container exited: teardown, then restart (policy) or remove
// (--rm). Quietly does nothing when the container is already gone.
Status cleanup_after_exit(const ContainerStore& store, const std::string& id, const LaunchOptions& relaunch);

// What the monitor's cleanup does after an exit that a stop caused: leave the container
// stopped (the restart policy does not apply), or start it again whatever the policy says.
enum class AfterStop { kStay, kRestart };

// Sends the container's stop signal, then SIGKILL after `timeout`, and returns once its exit is
// recorded. The teardown is left to the monitor's cleanup (stop() waits for it), so this is
// safe to call from a process the monitor started (a health check's on-failure action).
Status signal_stop(const ContainerStore& store, const ContainerRecord& rec, std::chrono::seconds timeout,
                   AfterStop then);

// `strata stop`: stop signal, then SIGKILL after `timeout` (default: the container's
// --stop-timeout), then waits for cleanup.
Status stop(const ContainerStore& store, const std::string& id, std::optional<std::chrono::seconds> timeout);
// `strata start`: an exited container runs again (detached), with its name, writable layer,
// volumes and log.
Status start(const ContainerStore& store, const std::string& id, const LaunchOptions& opts);
// `strata restart`: a running container is stopped (as stop) and started again by its monitor's
// cleanup; an exited one is started. Returns once it runs again.
Status restart(const ContainerStore& store, const std::string& id,
               std::optional<std::chrono::seconds> timeout, const LaunchOptions& opts);
// `strata exec`: runs opts.args in the running container `id` and returns its exit code (0 at
// once with opts.detach). The process leads a session of its own; without a terminal it writes
// into pipes that this process copies to its fds 1 and 2, and reads the caller's fd 0 through a
// pipe only when `interactive` (else /dev/null): no fd of the caller reaches the container.
Result<int> exec(const ContainerStore& store, const std::string& id, oci::ExecOptions opts, bool interactive);
// `strata kill`
Status kill(const ContainerStore& store, const std::string& id, int sig);
// `strata rm`: refuses a running container unless force (which kills it first).
Status remove(const ContainerStore& store, const std::string& id, bool force);

}  // namespace strata::sandbox
