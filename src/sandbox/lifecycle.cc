// After start: cleanup when the container exits (restart policy, --rm), stop, kill, rm.
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

#include "base/fs.h"
#include "base/strings.h"
#include "oci/container.h"
#include "oci/names.h"
#include "oci/state.h"
#include "sandbox/container.h"

namespace strata::sandbox {

namespace {

// Set by stop/rm so that the exit they cause does not trigger the restart policy.
std::string stop_marker(const ContainerStore& store, const std::string& id) {
  return store.dir(id) + "/stopped-by-user";
}
// Set by restart (and a health check's restart action): the exit it causes starts the container
// again whatever the restart policy.
std::string restart_marker(const ContainerStore& store, const std::string& id) {
  return store.dir(id) + "/restart-requested";
}

bool should_restart(const ContainerRecord& rec, int code) {
  const std::string& policy = rec.config.restart;
  if (policy == "always" || policy == "unless-stopped") return true;
  if (policy.rfind("on-failure", 0) == 0) {
    if (code == 0) return false;
    auto colon = policy.find(':');
    if (colon == std::string::npos) return true;
    auto max = str::parse_int(policy.substr(colon + 1));
    return max && rec.restart_count < *max;
  }
  return false;
}

// Waits until the monitor process (and so the cleanup it execs) has exited.
void wait_monitor_gone(const ContainerRecord& rec, std::chrono::milliseconds limit) {
  if (rec.monitor_pid <= 0) return;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, rec.monitor_pid, 0));
  if (pidfd < 0) return;
  UniqueFd fd(pidfd);
  if (oci::process_start_time(rec.monitor_pid) != rec.monitor_start_time) return;
  struct pollfd p = {fd.get(), POLLIN, 0};
  (void)::poll(&p, 1, static_cast<int>(limit.count()));
}

// Starts an exited container again; the caller holds its lock. What its last run left (the
// exit file, a stop marker) goes, so that `ps` and the restart policy see a running container.
Status relaunch(const ContainerStore& store, ContainerRecord& rec, const LaunchOptions& opts) {
  ::unlink((store.dir(rec.id) + "/exit").c_str());
  ::unlink(stop_marker(store, rec.id).c_str());
  rec.monitor_pid = 0;
  TRY(store.save(rec));
  LaunchOptions again = opts;
  again.restart = true;
  again.attach = false;
  auto l = launch(store, rec, again);
  if (!l) return std::move(l).error();
  return ok();
}

}  // namespace

Status cleanup_after_exit(const ContainerStore& store, const std::string& id, const LaunchOptions& opts) {
  if (!fs::exists(store.dir(id) + "/container.json")) return ok();
  ASSIGN_OR_RETURN(UniqueFd lock, store.lock(id));
  auto loaded = store.load(id);
  if (!loaded) {
    // Removed while we waited for the lock (strata rm -f): leave no lock file behind.
    if (!fs::exists(store.dir(id))) ::unlink((store.root() + "/containers/" + id + ".lock").c_str());
    return ok();
  }
  ContainerRecord rec = std::move(*loaded);
  TRY_CTX(teardown(store, rec), "clean up container " + rec.name);
  auto exit = store.exit_info(id);
  int code = exit ? exit->code : -1;
  if (::unlink(restart_marker(store, id).c_str()) == 0) {
    // `strata restart` or a health check's restart action (also of a --rm container, as
    // docker): at once, not counted as a restart of the policy's (as docker's RestartCount).
    TRY_CTX(relaunch(store, rec, opts), "restart container " + rec.name);
    return ok();
  }
  if (rec.config.remove) {
    TRY(store.remove(rec));
    return ok();
  }
  if (!fs::exists(stop_marker(store, id)) && should_restart(rec, code)) {
    // Exponential back-off as docker does (100 ms doubling, at most 10 s), so a crash loop
    // does not spin.
    int64_t delay_ms = std::min<int64_t>(10000, 100LL << std::min(rec.restart_count, 7));
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    rec.restart_count++;
    TRY_CTX(relaunch(store, rec, opts), "restart container " + rec.name);
  }
  return ok();
}

Status kill(const ContainerStore& store, const std::string& id, int sig) {
  ASSIGN_OR_RETURN(ContainerRecord rec, store.load(id));
  if (store.state(rec) != RunState::kRunning) {
    return Error("cannot kill container " + rec.name + ": it is " +
                 std::string(state_name(store.state(rec))));
  }
  return oci::kill_container(runtime_context(store), id, sig, false);
}

Status signal_stop(const ContainerStore& store, const ContainerRecord& rec, std::chrono::seconds timeout,
                   AfterStop then) {
  const std::string& id = rec.id;
  TRY(fs::write_file_atomic(then == AfterStop::kRestart ? restart_marker(store, id) : stop_marker(store, id),
                            "", 0600));
  if (store.state(rec) != RunState::kRunning) return ok();
  int sig = oci::signal_from_name(rec.config.stop_signal).value_or(SIGTERM);
  (void)oci::kill_container(runtime_context(store), id, sig, false);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (store.state(rec) == RunState::kRunning && !store.exit_info(id) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!store.exit_info(id)) (void)oci::kill_container(runtime_context(store), id, SIGKILL, true);
  // SIGKILL of the init ends it at once; the monitor writes the exit file right after.
  for (int i = 0; i < 200 && store.state(rec) == RunState::kRunning && !store.exit_info(id); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return ok();
}

Status stop(const ContainerStore& store, const std::string& id, std::optional<std::chrono::seconds> timeout) {
  ASSIGN_OR_RETURN(ContainerRecord rec, store.load(id));
  bool was_running = store.state(rec) == RunState::kRunning;
  TRY(signal_stop(store, rec, timeout.value_or(std::chrono::seconds(rec.config.stop_timeout_s)),
                  AfterStop::kStay));
  if (was_running) wait_monitor_gone(rec, std::chrono::seconds(10));
  // A monitor killed with -9 cannot clean: do it here.
  if (auto again = store.load(id)) {
    ASSIGN_OR_RETURN(UniqueFd lock, store.lock(id));
    TRY(teardown(store, *again));
    if (again->config.remove) TRY(store.remove(*again));
  }
  return ok();
}

Status remove(const ContainerStore& store, const std::string& id, bool force) {
  ASSIGN_OR_RETURN(ContainerRecord rec, store.load(id));
  if (store.state(rec) == RunState::kRunning) {
    if (!force) {
      return Error("cannot remove container " + rec.name + ": it is running (stop it first, or use rm -f)",
                   EBUSY);
    }
    TRY(fs::write_file_atomic(stop_marker(store, id), "", 0600));
    (void)oci::kill_container(runtime_context(store), id, SIGKILL, true);
    wait_monitor_gone(rec, std::chrono::seconds(10));
  }
  if (!fs::exists(store.dir(id) + "/container.json")) return ok();  // --rm cleanup got there first
  ASSIGN_OR_RETURN(UniqueFd lock, store.lock(id));
  auto again = store.load(id);
  if (!again) return ok();
  TRY_CTX(teardown(store, *again), "remove container " + rec.name);
  return store.remove(*again);
}

Status start(const ContainerStore& store, const std::string& id, const LaunchOptions& opts) {
  ASSIGN_OR_RETURN(ContainerRecord rec, store.load(id));
  if (store.state(rec) == RunState::kRunning) return ok();  // as podman: starting a running one is no error
  // Exited: its monitor may still be running the cleanup (or a policy restart); that goes first.
  wait_monitor_gone(rec, std::chrono::seconds(15));
  ASSIGN_OR_RETURN(UniqueFd lock, store.lock(id));
  ASSIGN_OR_RETURN(rec, store.load(id));
  if (store.state(rec) == RunState::kRunning) return ok();  // as podman: starting a running one is no error
  if (rec.config.remove)
    return Error("container " + rec.name + " was run with --rm: it cannot be started again");
  // What an earlier, killed cleanup left is released before the new start.
  TRY_CTX(teardown(store, rec), "start container " + rec.name);
  TRY_CTX(relaunch(store, rec, opts), "start container " + rec.name);
  return ok();
}

Status restart(const ContainerStore& store, const std::string& id,
               std::optional<std::chrono::seconds> timeout, const LaunchOptions& opts) {
  ASSIGN_OR_RETURN(ContainerRecord rec, store.load(id));
  if (store.state(rec) == RunState::kRunning) {
    TRY(signal_stop(store, rec, timeout.value_or(std::chrono::seconds(rec.config.stop_timeout_s)),
                    AfterStop::kRestart));
    // The monitor's cleanup starts it again, then ends.
    wait_monitor_gone(rec, std::chrono::seconds(15));
    ASSIGN_OR_RETURN(ContainerRecord now, store.load(id));
    if (store.state(now) == RunState::kRunning && now.monitor_pid != rec.monitor_pid) return ok();
    // Its monitor was gone (killed) and nobody restarted it: start it here.
    ::unlink(restart_marker(store, id).c_str());
  }
  return start(store, id, opts);
}

}  // namespace strata::sandbox
