// The container lifecycle of `strata run`, daemonless like podman: the CLI sets up the rootfs
// (an overlay of the image's layers), creates and starts the container in-process through
// src/oci, attaches its network (src/net), then the forked child becomes strata-monitor, which
// holds the exit status, writes the log and runs `strata container cleanup` when the container
// ends. Every step is recorded in the ContainerRecord before it is taken, so teardown() can undo
// whatever a crashed or killed process left, and is safe to run twice.
#pragma once

#include <chrono>
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
  bool restart = false;     // the restart policy starting an existing container again
};

struct Launched {
  std::string id;
  pid_t pid = 0;
  UniqueFd exit_fd;  // attach only
  UniqueFd master;   // --tty: the container's terminal (the monitor holds it too)
};

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

// `strata stop`: stop signal, then SIGKILL after `timeout`, then waits for cleanup.
Status stop(const ContainerStore& store, const std::string& id, std::chrono::seconds timeout);
// `strata kill`
Status kill(const ContainerStore& store, const std::string& id, int sig);
// `strata rm`: refuses a running container unless force (which kills it first).
Status remove(const ContainerStore& store, const std::string& id, bool force);

}  // namespace strata::sandbox
