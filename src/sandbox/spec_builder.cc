#include "sandbox/spec_builder.h"

#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/strings.h"
#include "oci/capabilities.h"
#include "oci/names.h"
#include "oci/seccomp.h"
#include "oci/spec.h"

namespace strata::sandbox {

using Json = nlohmann::json;

namespace {

std::string cap_name(std::string_view s) {
  std::string up;
  for (char c : s) up += static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  if (up.rfind("CAP_", 0) != 0) up = "CAP_" + up;
  return up;
}

bool is_all(std::string_view s) {
  std::string up = cap_name(s);
  return up == "CAP_ALL";
}

Json seccomp_json(const oci::Seccomp& s) {
  Json syscalls = Json::array();
  for (const auto& sc : s.syscalls) {
    Json j = {{"names", sc.names}, {"action", sc.action}};
    if (sc.errno_ret) j["errnoRet"] = *sc.errno_ret;
    if (!sc.args.empty()) {
      Json args = Json::array();
      for (const auto& a : sc.args) {
        args.push_back({{"index", a.index}, {"value", a.value}, {"valueTwo", a.value_two}, {"op", a.op}});
      }
      j["args"] = std::move(args);
    }
    syscalls.push_back(std::move(j));
  }
  Json j = {{"defaultAction", s.default_action}, {"architectures", s.architectures}, {"syscalls", syscalls}};
  if (s.default_errno_ret) j["defaultErrnoRet"] = *s.default_errno_ret;
  if (!s.flags.empty()) j["flags"] = s.flags;
  return j;
}

Json bind_mount(const std::string& destination, const std::string& source, bool readonly) {
  Json opts = {"rbind", "rprivate"};
  if (readonly) opts.push_back("ro");
  return {{"destination", destination}, {"type", "bind"}, {"source", source}, {"options", opts}};
}

}  // namespace

Result<std::vector<std::string>> effective_capabilities(const std::vector<std::string>& add,
                                                        const std::vector<std::string>& drop) {
  std::vector<std::string> caps = oci::default_capability_names();
  auto check = [](const std::string& c, const char* flag) -> Status {
    if (is_all(c)) return ok();
    if (!oci::capability_from_name(cap_name(c))) {
      return Error(std::string(flag) + ": unknown capability \"" + c + "\"");
    }
    return ok();
  };
  for (const auto& c : drop) {
    TRY(check(c, "--cap-drop"));
    if (is_all(c)) {
      caps.clear();
    } else {
      caps.erase(std::remove(caps.begin(), caps.end(), cap_name(c)), caps.end());
    }
  }
  // strata makes containers without a user namespace: what it does not hold itself (its
  // bounding set; root here lacks CAP_SYS_RESOURCE, see ENVIRONMENT.md) no container can have.
  // ALL means all that it holds (as podman), a named one outside it is refused by name.
  for (const auto& c : add) {
    TRY(check(c, "--cap-add"));
    if (is_all(c)) {
      caps.clear();
      for (const auto& name : oci::all_capability_names()) {
        if (oci::in_bounding_set(*oci::capability_from_name(name))) caps.push_back(name);
      }
      break;
    }
    std::string name = cap_name(c);
    if (!oci::in_bounding_set(*oci::capability_from_name(name)))
      return Error("--cap-add " + c + ": " + name +
                   " is not in strata's own bounding set, so no container can have it");
    if (std::find(caps.begin(), caps.end(), name) == caps.end()) caps.push_back(name);
  }
  return caps;
}

Result<std::string> build_spec(const ContainerRecord& rec, const SpecPaths& paths) {
  const ContainerConfig& c = rec.config;
  Json spec;
  try {
    spec = Json::parse(oci::default_spec_json(false, 0, 0));
  } catch (const std::exception& e) {
    return Error(std::string("default spec: ") + e.what());
  }

  Json& proc = spec["process"];
  proc["terminal"] = c.tty;
  proc["args"] = c.args;
  proc["env"] = c.env;
  proc["cwd"] = c.cwd.empty() ? "/" : c.cwd;
  proc["user"] = {{"uid", paths.uid}, {"gid", paths.gid}};
  if (!paths.additional_gids.empty()) proc["user"]["additionalGids"] = paths.additional_gids;
  ASSIGN_OR_RETURN(std::vector<std::string> caps, effective_capabilities(c.cap_add, c.cap_drop));
  // A non-root user keeps only the bounding set, as with docker/podman: its effective and
  // permitted sets come from file capabilities and setuid binaries.
  Json granted = paths.uid == 0 ? Json(caps) : Json::array();
  proc["capabilities"] = {{"bounding", caps}, {"effective", granted}, {"permitted", granted}};
  // The caller's hard RLIMIT_NOFILE (it cannot be raised here: ENVIRONMENT.md), podman's
  // 1048576 where allowed.
  struct rlimit rl {};
  ::getrlimit(RLIMIT_NOFILE, &rl);
  uint64_t nofile = std::min<uint64_t>(rl.rlim_max, 1048576);
  proc["rlimits"] = Json::array({{{"type", "RLIMIT_NOFILE"}, {"hard", nofile}, {"soft", nofile}}});
  // setuid binaries (ping, su) work in docker/podman containers; the seccomp profile and the
  // capability set are the limits instead.
  proc["noNewPrivileges"] = false;

  spec["root"] = {{"path", "rootfs"}, {"readonly", c.read_only}};
  spec["hostname"] = c.hostname.empty() ? rec.id.substr(0, 12) : c.hostname;

  Json& mounts = spec["mounts"];
  mounts.push_back(bind_mount("/etc/hosts", paths.container_dir + "/hosts", false));
  mounts.push_back(bind_mount("/etc/resolv.conf", paths.container_dir + "/resolv.conf", false));
  mounts.push_back(bind_mount("/etc/hostname", paths.container_dir + "/hostname", false));
  for (const auto& v : c.volumes) mounts.push_back(bind_mount(v.destination, v.source, v.readonly));
  if (c.read_only) {
    // podman --read-only keeps the usual scratch places writable.
    for (const char* d : {"/tmp", "/var/tmp", "/run"}) {
      mounts.push_back({{"destination", d},
                        {"type", "tmpfs"},
                        {"source", "tmpfs"},
                        {"options", {"rw", "nosuid", "nodev", "mode=1777"}}});
    }
  }

  Json& linux = spec["linux"];
  Json namespaces = Json::array();
  for (const char* ns : {"pid", "ipc", "uts", "mount", "cgroup"}) namespaces.push_back({{"type", ns}});
  if (c.network != "host") namespaces.push_back({{"type", "network"}});
  linux["namespaces"] = namespaces;
  linux["cgroupsPath"] = "/strata/" + rec.id;
  Json resources = linux["resources"];
  if (c.memory) resources["memory"] = {{"limit", *c.memory}};
  if (c.cpus) {
    const uint64_t period = 100000;
    resources["cpu"] = {{"period", period}, {"quota", static_cast<int64_t>(std::llround(*c.cpus * period))}};
  }
  if (c.pids_limit) resources["pids"] = {{"limit", *c.pids_limit}};
  linux["resources"] = resources;
  linux["seccomp"] = seccomp_json(oci::default_seccomp_profile());

  Json annotations = {{"io.strata.container.name", rec.name}};
  if (!c.image.empty()) annotations["io.strata.image"] = c.image;
  for (const auto& [k, v] : c.labels) annotations["io.strata.label." + k] = v;
  spec["annotations"] = annotations;
  return spec.dump(1) + "\n";
}

}  // namespace strata::sandbox
