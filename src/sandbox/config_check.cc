#include "sandbox/config_check.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "base/fs.h"
#include "base/strings.h"
#include "oci/names.h"

namespace strata::sandbox {

namespace {

std::string show(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

long host_cpus() {
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? n : 1;
}

Status check_path(const std::string& p, const std::string& what) {
  if (p.empty() || p.front() != '/')
    return Error(what + " \"" + p.substr(0, 256) + "\": must be an absolute path");
  if (p.find('\0') != std::string::npos) return Error(what + ": contains a NUL byte");
  if (p.size() >= 4096) return Error(what + ": longer than 4095 bytes");
  return ok();
}

Status check_health(const HealthConfig& h) {
  constexpr int64_t kMs = 1000000;
  // 0 means "no timer" here (resolve_health turned docker's 0 into the default already).
  if (h.interval_ns != 0 && h.interval_ns < kMs)
    return Error("health check interval " + std::to_string(h.interval_ns) + "ns: must be at least 1ms");
  if (h.timeout_ns < kMs)
    return Error("health check timeout " + std::to_string(h.timeout_ns) + "ns: must be at least 1ms");
  if (h.start_period_ns < 0) return Error("health check start period: must not be negative");
  if (h.retries < 0)
    return Error("health check retries " + std::to_string(h.retries) + ": must not be negative");
  if (h.test.empty()) return Error("health check: no test");
  if (h.on_failure != "none" && h.on_failure != "kill" && h.on_failure != "restart" && h.on_failure != "stop")
    return Error("health check on-failure action \"" + h.on_failure.substr(0, 32) +
                 "\": expected none, kill, restart or stop");
  return ok();
}

}  // namespace

Status check_cpus(double cpus) {
  long n = host_cpus();
  if (!std::isfinite(cpus) || cpus < kMinCpus || cpus > static_cast<double>(n)) {
    return Error("--cpus " + show(cpus) + ": the range of CPUs is from 0.01 to " + std::to_string(n) +
                 ".00, as there are only " + std::to_string(n) + " CPUs available");
  }
  return ok();
}

Status check_hostname(std::string_view name) {
  auto bad = [&](const std::string& why) {
    return Error("--hostname \"" + std::string(name.substr(0, 80)) + "\": " + why);
  };
  if (name.empty()) return bad("empty");
  if (name.size() > 64) return bad("longer than 64 bytes");
  for (const auto& label : str::split(name, '.')) {
    if (label.empty() || label.size() > 63)
      return bad("each dot-separated label must have 1 to 63 characters");
    if (label.front() == '-' || label.back() == '-') return bad("a label must not start or end with '-'");
    for (char ch : label) {
      bool okc =
          (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-';
      if (!okc) return bad("not a valid host name (RFC 1123: letters, digits, '-' and '.')");
    }
  }
  return ok();
}

Status check_config(const ContainerConfig& c) {
  if (c.cpus) TRY(check_cpus(*c.cpus));
  if (c.memory && *c.memory < kMinMemoryBytes) {
    return Error("--memory " + std::to_string(*c.memory) +
                 " bytes: the minimum memory limit allowed is 6MB (" + std::to_string(kMinMemoryBytes) +
                 " bytes)");
  }
  if (c.pids_limit && *c.pids_limit <= 0)
    return Error("--pids-limit " + std::to_string(*c.pids_limit) + ": must be positive (or -1 for no limit)");
  if (c.stop_timeout_s < 0)
    return Error("--stop-timeout " + std::to_string(c.stop_timeout_s) + ": must not be negative");
  if (!c.hostname.empty()) TRY(check_hostname(c.hostname));
  TRY(check_path(c.cwd, "working directory"));
  if (c.args.empty()) return Error("no command to run");
  for (const auto& e : c.env) {
    size_t eq = e.find('=');
    if (eq == std::string::npos || eq == 0)
      return Error("environment entry \"" + e.substr(0, 64) + "\": expected NAME=VALUE");
  }
  for (const auto& p : c.ports) {
    if (p.proto != "tcp" && p.proto != "udp")
      return Error("published port protocol \"" + p.proto.substr(0, 16) + "\": expected tcp or udp");
    if (p.container_port == 0) return Error("published port: container port 0");
  }
  for (const auto& v : c.volumes) {
    std::string what = v.anonymous ? "the image's VOLUME " + v.destination.substr(0, 256)
                                   : "volume destination " + v.destination.substr(0, 256);
    TRY(check_path(v.destination, what));
    // The runtime makes these itself (the root, /dev with its nodes and ptys, proc and sysfs);
    // a volume over one hides what the container's set-up needs, and would fail later with an
    // error about something else ("mount /dev/null on /proc/keys: ENOENT").
    std::string d = fs::clean(v.destination);
    auto under = [&](std::string_view top) { return d == top || d.rfind(std::string(top) + "/", 0) == 0; };
    if (d == "/" || d == "/dev" || d == "/dev/pts" || under("/proc") || under("/sys"))
      return Error(what + ": the runtime mounts " + d + " itself; a volume cannot replace it");
  }
  if (c.restart != "no" && c.restart != "always" && c.restart != "unless-stopped" &&
      c.restart != "on-failure") {
    auto n = c.restart.rfind("on-failure:", 0) == 0 ? str::parse_uint(c.restart.substr(11)) : std::nullopt;
    if (!n || *n > 2147483647u)
      return Error("--restart " + c.restart.substr(0, 64) +
                   ": expected no, on-failure[:N], always or unless-stopped");
  }
  if (!oci::signal_from_name(c.stop_signal))
    return Error("stop signal \"" + c.stop_signal.substr(0, 32) + "\" is not a signal");
  if (c.health) TRY(check_health(*c.health));
  return ok();
}

}  // namespace strata::sandbox
