#include "sandbox/run_config.h"

#include <algorithm>

#include "base/fs.h"
#include "sandbox/config_check.h"

namespace strata::sandbox {

namespace {

constexpr const char* kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

void set_env(std::vector<std::string>& env, const std::string& kv) {
  std::string key = kv.substr(0, kv.find('=') + 1);
  std::erase_if(env, [&](const std::string& e) { return e.rfind(key, 0) == 0; });
  env.push_back(kv);
}

bool has_var(const std::vector<std::string>& env, std::string_view prefix) {
  return std::any_of(env.begin(), env.end(), [&](const std::string& e) { return e.rfind(prefix, 0) == 0; });
}

}  // namespace

Result<ContainerConfig> make_container_config(const image::ImageConfig* image, const RunRequest& req) {
  ContainerConfig c;
  image::ImageConfig none;
  const image::ImageConfig& img = image != nullptr ? *image : none;
  std::vector<std::string> entry = img.entrypoint;
  std::vector<std::string> cmd = req.command;
  if (req.entrypoint) {
    entry = req.entrypoint->empty() ? std::vector<std::string>{} : std::vector<std::string>{*req.entrypoint};
  } else if (cmd.empty()) {
    cmd = img.cmd;
  }
  c.args = entry;
  c.args.insert(c.args.end(), cmd.begin(), cmd.end());
  if (c.args.empty()) return Error("no command given and the image defines none");
  // The image's Env: each entry NAME=VALUE (an image may carry anything).
  for (const auto& e : img.env) {
    if (e.find('=') == std::string::npos || e.front() == '=')
      return Error("the image's Env entry \"" + e.substr(0, 64) + "\": expected NAME=VALUE");
    set_env(c.env, e);
  }
  if (!has_var(c.env, "PATH=")) c.env.insert(c.env.begin(), kDefaultPath);
  for (const auto& e : req.env) {
    if (e.find('=') == std::string::npos || e.front() == '=')
      return Error("-e " + e.substr(0, 64) + ": expected NAME=VALUE with a non-empty name");
    set_env(c.env, e);
  }
  if (req.tty && !has_var(c.env, "TERM=")) c.env.push_back("TERM=xterm");
  c.cwd = !req.workdir.empty() ? req.workdir : (!img.working_dir.empty() ? img.working_dir : "/");
  if (c.cwd.front() != '/') {
    return Error((req.workdir.empty() ? "the image's WorkingDir " : "--workdir ") + c.cwd.substr(0, 256) +
                 ": must be an absolute path");
  }
  c.user = !req.user.empty() ? req.user : img.user;
  c.hostname = req.hostname;
  c.tty = req.tty;
  c.interactive = req.interactive;
  c.read_only = req.read_only;
  c.cap_add = req.cap_add;
  c.cap_drop = req.cap_drop;
  c.memory = req.memory;
  c.cpus = req.cpus;
  c.pids_limit = req.pids_limit;
  c.network = req.network == "default" ? "bridge" : req.network;
  c.ports = req.ports;
  if (!c.ports.empty() && (c.network == "host" || c.network == "none"))
    return Error("-p cannot be used with --network " + c.network);
  c.volumes = req.volumes;
  // The image's VOLUMEs that no -v/--mount covers become anonymous volumes (as podman).
  for (const auto& path : img.volumes) {
    std::string dest = fs::clean(path);
    bool covered = std::any_of(c.volumes.begin(), c.volumes.end(),
                               [&](const VolumeMount& m) { return fs::clean(m.destination) == dest; });
    if (!covered) c.volumes.push_back({"", dest, false, true});
  }
  // Parents before children (as podman sorts mounts): an image VOLUME /data must not be mounted
  // over a -v at /data/sub given on the command line.
  auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
  std::stable_sort(c.volumes.begin(), c.volumes.end(), [&](const VolumeMount& a, const VolumeMount& b) {
    return depth(fs::clean(a.destination)) < depth(fs::clean(b.destination));
  });
  c.restart = req.restart;
  if (req.remove && req.restart != "no")
    return Error("--rm and --restart " + req.restart + " cannot be combined");
  c.remove = req.remove;
  c.stop_signal =
      !req.stop_signal.empty() ? req.stop_signal : (!img.stop_signal.empty() ? img.stop_signal : "SIGTERM");
  if (req.stop_timeout_s) c.stop_timeout_s = *req.stop_timeout_s;
  c.labels = img.labels;
  for (const auto& [k, v] : req.labels) c.labels[k] = v;
  ASSIGN_OR_RETURN(c.health, resolve_health(img.healthcheck, req.health));
  TRY(check_config(c));
  return c;
}

}  // namespace strata::sandbox
