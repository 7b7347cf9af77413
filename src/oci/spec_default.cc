// default_spec_json(): the config.json `strata-runtime spec` writes. It is runc's template
// (libcontainer/specconv Example and ToRootless) with the OCI default capability set in place
// of runc's three, so that what `spec` prints is what podman would run. Keys are written in
// runc's order so the two outputs diff cleanly.
#include <nlohmann/json.hpp>

#include "oci/names.h"
#include "oci/spec.h"

namespace strata::oci {
namespace {

using OJson = nlohmann::ordered_json;

OJson mount(std::string_view destination, std::string_view type, std::string_view source,
            std::vector<std::string> options) {
  OJson m = {{"destination", destination}, {"type", type}, {"source", source}};
  if (!options.empty()) m["options"] = std::move(options);
  return m;
}

}  // namespace

std::string default_spec_json(bool rootless, uid_t uid, gid_t gid) {
  std::vector<std::string> caps = default_capability_names();
  OJson process = {
      {"terminal", true},
      {"user", {{"uid", 0}, {"gid", 0}}},
      {"args", {"sh"}},
      {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}},
      {"cwd", "/"},
      {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      {"rlimits", OJson::array({{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}})},
      {"noNewPrivileges", true},
  };

  OJson mounts = OJson::array();
  mounts.push_back(mount("/proc", "proc", "proc", {}));
  mounts.push_back(mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}));
  // Rootless: gid 5 (tty) is not mapped into the user namespace, so devpts would refuse it.
  std::vector<std::string> devpts = {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"};
  if (!rootless) devpts.push_back("gid=5");
  mounts.push_back(mount("/dev/pts", "devpts", "devpts", devpts));
  mounts.push_back(
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}));
  mounts.push_back(mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}));
  if (rootless) {
    // sysfs can only be mounted by the owner of the network namespace; a rootless container
    // shares the host's, so it gets the host's /sys bound read-only instead, and no cgroup
    // mount (it has no cgroup of its own to show).
    mounts.push_back(mount("/sys", "none", "/sys", {"rbind", "nosuid", "noexec", "nodev", "ro"}));
  } else {
    mounts.push_back(mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}));
    mounts.push_back(
        mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}));
  }

  OJson namespaces = OJson::array();
  for (std::string_view ns : {"pid", "network", "ipc", "uts", "mount", "cgroup"}) {
    if (rootless && (ns == "network" || ns == "cgroup")) continue;
    namespaces.push_back({{"type", ns}});
  }

  OJson linux;
  if (rootless) {
    namespaces.push_back({{"type", "user"}});
    linux["uidMappings"] = OJson::array({{{"containerID", 0}, {"hostID", uid}, {"size", 1}}});
    linux["gidMappings"] = OJson::array({{{"containerID", 0}, {"hostID", gid}, {"size", 1}}});
  } else {
    // Deny every device; the runtime allows the default set (null, zero, tty, ...) itself.
    linux["resources"] = {{"devices", OJson::array({{{"allow", false}, {"access", "rwm"}}})}};
  }
  linux["namespaces"] = std::move(namespaces);
  linux["maskedPaths"] = {"/proc/acpi",          "/proc/asound",     "/proc/kcore",       "/proc/keys",
                          "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                          "/sys/firmware",       "/proc/scsi"};
  linux["readonlyPaths"] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};

  OJson spec = {
      {"ociVersion", kOciVersion},
      {"process", std::move(process)},
      {"root", {{"path", "rootfs"}, {"readonly", true}}},
      {"hostname", "strata"},
      {"mounts", std::move(mounts)},
      {"linux", std::move(linux)},
  };
  return spec.dump(2) + "\n";
}

}  // namespace strata::oci
