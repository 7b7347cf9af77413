// The on-disk record of a `strata run` container, under <root>/containers/<id>/ (root default
// /var/lib/strata):
//   container.json   ContainerRecord: what was asked for and what was set up (written atomically)
//   bundle/          the OCI bundle: config.json and rootfs/ (the overlay mount point)
//   upper/ work/     the overlay's writable layer
//   hosts resolv.conf hostname   bind-mounted into the container
//   ctr.log          stdout/stderr in podman's k8s-file format (written by strata-monitor)
//   exit             "<code> <unix ns>" once the container has exited (written by strata-monitor)
// <root>/containers/<id>.lock serialises commands on one container; <root>/containers/names/<name>
// holds the id of the container of that name (created O_EXCL: names are unique).
// The record outlives every process, so that a command after a kill -9 of the CLI or of the
// monitor finds what was set up and can report and clean it (STYLE.md section 4).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace strata::sandbox {

struct PublishedPort {
  std::string host_ip;  // empty: all addresses
  uint16_t host_port = 0;
  uint16_t container_port = 0;
  std::string proto = "tcp";
};

struct VolumeMount {
  std::string source;  // host path; for an anonymous volume, set when the container first starts
  std::string destination;
  bool readonly = false;
  // One of the image's VOLUMEs that no -v/--mount covers: a directory of the container's own
  // (<container dir>/volumes/N), seeded with what the image has at the path, kept across
  // restarts and removed with the container.
  bool anonymous = false;
};

// A container's health check: the image config's Healthcheck merged with the --health-* flags
// (sandbox/health.h resolves them; docker's defaults are filled in).
struct HealthConfig {
  std::vector<std::string> test;  // {"CMD", program, args...} or {"CMD-SHELL", command}
  int64_t interval_ns = 0;        // 0: no timer (--health-interval disable); run by hand only
  int64_t timeout_ns = 0;
  int64_t start_period_ns = 0;
  int retries = 0;
  std::string on_failure = "none";  // none | kill | restart | stop (podman --health-on-failure)
};

// What the user asked for, resolved against the image (the process is final here).
struct ContainerConfig {
  std::string image;                // as given ("busybox", "127.0.0.1:5000/app:1"); empty with rootfs
  std::string image_digest;         // manifest digest
  std::vector<std::string> layers;  // unpacked layer directories, bottom first (overlay lowers)
  std::string rootfs;               // --rootfs DIR instead of an image
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string cwd = "/";
  std::string user;  // "uid[:gid]" or names resolved from the image's /etc/passwd
  std::string hostname;
  bool tty = false;
  bool interactive = false;
  bool read_only = false;
  std::vector<std::string> cap_add, cap_drop;
  std::optional<int64_t> memory;  // bytes
  std::optional<double> cpus;
  std::optional<int64_t> pids_limit;
  std::string network = "bridge";  // bridge | host | none | NAME
  std::vector<PublishedPort> ports;
  std::vector<VolumeMount> volumes;
  std::string restart = "no";  // no | on-failure[:N] | always
  bool remove = false;         // --rm
  std::string stop_signal = "SIGTERM";
  int stop_timeout_s = 10;  // stop signal to SIGKILL (docker --stop-timeout; stop -t overrides)
  std::map<std::string, std::string> labels;
  std::optional<HealthConfig> health;
};

struct ContainerRecord {
  std::string id;  // 64 hex
  std::string name;
  std::string created;  // RFC 3339
  ContainerConfig config;
  // Filled in as the container comes up; what cleanup undoes.
  bool rootfs_mounted = false;
  bool oci_created = false;
  std::string network_attached;  // network name, empty when none
  std::string ip;
  pid_t pid = 0;  // the container's init
  pid_t monitor_pid = 0;
  uint64_t monitor_start_time = 0;  // guards against pid reuse
  std::string started;              // RFC 3339, empty until started
  int restart_count = 0;
  // Not stored: set by load() when container.json could not be read whole ("its record is
  // damaged: config.cpus: ..."). What could be read is kept; what could not is assumed set up
  // (teardown tries it), so that ps -a shows the container and rm -f removes it, while start,
  // restart and a restart policy refuse it.
  std::string damaged;
};

enum class RunState { kCreated, kRunning, kExited };

struct ExitInfo {
  int code = 0;
  int64_t finished_ns = 0;
};

class ContainerStore {
 public:
  static Result<ContainerStore> open(const std::string& root);

  const std::string& root() const { return root_; }
  std::string dir(const std::string& id) const { return root_ + "/containers/" + id; }
  std::string oci_root() const { return oci_root_; }

  // Reserves `name` for `id` (EEXIST: "the name \"web\" is already in use by container <id>").
  Status reserve_name(const std::string& name, const std::string& id) const;
  void release_name(const std::string& name, const std::string& id) const;

  Result<UniqueFd> lock(const std::string& id) const;
  Status save(const ContainerRecord& rec) const;
  // ENOENT when there is no record; a record that exists but cannot be read whole comes back
  // with `damaged` set (see ContainerRecord), never as an error.
  Result<ContainerRecord> load(const std::string& id) const;
  std::vector<std::string> list_ids() const;
  // An id, a unique id prefix (at least 3 characters) or a name -> the id.
  Result<std::string> resolve(const std::string& id_or_name) const;
  // The name held for `id` under containers/names, or the id's first 12 characters.
  std::string name_of(const std::string& id) const;
  // Removes the container's directory, its lock file and its name.
  Status remove(const ContainerRecord& rec) const;

  std::optional<ExitInfo> exit_info(const std::string& id) const;
  // created: never started; running: no exit file, and the monitor or (a monitor killed with
  // -9) the container's init is alive; exited otherwise (with a monitor that died without an
  // exit file and no init left, the next stop/rm/start cleans what it left).
  RunState state(const ContainerRecord& rec) const;
  // The container's strata-monitor runs (false after a kill -9 of it: no log, no exit code,
  // no restart policy until the container is stopped and started again).
  bool monitor_alive(const ContainerRecord& rec) const;

 private:
  std::string root_;
  std::string oci_root_;
};

std::string_view state_name(RunState s);
// A fresh 64-hex container id from getrandom(2).
std::string new_container_id();
// A readable random name ("strata_<adjective>_<noun>") when none is given.
std::string random_name();
// Checks a user-chosen name: [a-zA-Z0-9][a-zA-Z0-9_.-]*, at most 128 characters (docker's rule).
Status validate_name(std::string_view name);

}  // namespace strata::sandbox
