// strata run: its flags become a ContainerConfig (the image's defaults merged as docker does),
// then the container is launched through src/sandbox, attached or detached.
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "base/cleanup.h"
#include "base/fs.h"
#include "base/strings.h"
#include "cli/strata_commands.h"
#include "net/ports.h"
#include "oci/names.h"
#include "sandbox/config_check.h"
#include "sandbox/container.h"
#include "sandbox/health.h"
#include "sandbox/record.h"
#include "sandbox/run_config.h"

namespace strata::cli {

namespace {

using sandbox::ContainerRecord;
using sandbox::ContainerStore;

struct RunFlags {
  bool detach = false, rm = false, interactive = false, tty = false, read_only = false;
  std::string name, user, workdir, network = "bridge", restart = "no", rootfs, hostname, pull = "missing";
  std::string memory, stop_signal;
  std::optional<int> stop_timeout;
  std::optional<std::string> entrypoint;
  std::optional<double> cpus;
  std::optional<int64_t> pids_limit;
  std::vector<std::string> env, env_files, publish, volumes, mounts, cap_add, cap_drop, labels;
  sandbox::HealthFlags health;
};

Result<std::vector<std::string>> read_env_file(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, fs::read_file(path));
  std::vector<std::string> out;
  for (auto line : str::split(text, '\n')) {
    std::string_view l = str::trim(line);
    if (l.empty() || l[0] == '#') continue;
    if (l.find('=') == std::string_view::npos) {
      // docker: a bare name takes the value from the caller's environment.
      std::string key(l);
      if (const char* v = std::getenv(key.c_str())) out.push_back(key + "=" + v);
      continue;
    }
    out.emplace_back(l);
  }
  return out;
}

Result<sandbox::VolumeMount> parse_volume(const std::string& v) {
  auto parts = str::split(v, ':');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
    return Error("-v " + v + ": expected HOST-DIR:CONTAINER-DIR[:ro|rw]");
  }
  sandbox::VolumeMount m;
  m.source = fs::absolute(parts[0]);
  m.destination = parts[1];
  if (m.destination[0] != '/') return Error("-v " + v + ": the container path must be absolute");
  if (parts.size() == 3) {
    for (const auto& o : str::split(parts[2], ',')) {
      if (o == "ro")
        m.readonly = true;
      else if (o == "rw" || o == "z" || o == "Z")
        continue;
      else
        return Error("-v " + v + ": unknown option \"" + o + "\" (ro, rw)");
    }
  }
  if (!fs::exists(m.source)) return Error("-v " + v + ": " + m.source + " does not exist", ENOENT);
  return m;
}

// --mount type=bind,source=/a,target=/b[,readonly]
Result<sandbox::VolumeMount> parse_mount(const std::string& v) {
  sandbox::VolumeMount m;
  std::string type = "bind";
  for (const auto& kv : str::split(v, ',')) {
    auto eq = kv.find('=');
    std::string k = kv.substr(0, eq), val = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (k == "type")
      type = val;
    else if (k == "source" || k == "src")
      m.source = fs::absolute(val);
    else if (k == "target" || k == "destination" || k == "dst")
      m.destination = val;
    else if (k == "readonly" || k == "ro")
      m.readonly = val.empty() || val == "true" || val == "1";
    else
      return Error("--mount " + v + ": unknown key \"" + k + "\"");
  }
  if (type != "bind") return Error("--mount " + v + ": only type=bind is supported");
  if (m.source.empty() || m.destination.empty() || m.destination[0] != '/') {
    return Error("--mount " + v + ": needs source= and an absolute target=");
  }
  if (!fs::exists(m.source)) return Error("--mount " + v + ": " + m.source + " does not exist", ENOENT);
  return m;
}

Status validate_restart(const std::string& r) {
  if (r == "no" || r == "always" || r == "unless-stopped" || r == "on-failure") return ok();
  if (r.rfind("on-failure:", 0) == 0 && str::parse_uint(r.substr(11))) return ok();
  return Error("--restart " + r + ": expected no, on-failure[:N], always or unless-stopped");
}

// The flags as typed values, then the image's defaults merged with them (src/sandbox's
// make_container_config, as docker merges them).
Result<sandbox::ContainerConfig> make_config(const Globals& g, const RunFlags& f,
                                             const std::vector<std::string>& rest) {
  sandbox::RunRequest req;
  RunImage img;
  if (!f.rootfs.empty()) {
    req.command = rest;
  } else {
    if (rest.empty()) return Error("run: an image is required (strata run [OPTIONS] IMAGE [COMMAND...])");
    ASSIGN_OR_RETURN(img, image_for_run(g, rest[0], f.pull));
    req.command.assign(rest.begin() + 1, rest.end());
  }
  req.entrypoint = f.entrypoint;
  for (const auto& file : f.env_files) {
    auto vars = read_env_file(file);
    if (!vars) return std::move(vars).error().context("--env-file " + file);
    req.env.insert(req.env.end(), vars->begin(), vars->end());
  }
  for (const auto& e : f.env) {
    if (e.find('=') == std::string::npos) {
      // docker: a bare name takes the value from the caller's environment (or nothing).
      if (const char* v = std::getenv(e.c_str())) req.env.push_back(e + "=" + v);
      continue;
    }
    if (e[0] == '=') return Error("-e " + e + ": empty variable name");
    req.env.push_back(e);
  }
  req.workdir = f.workdir;
  req.user = f.user;
  req.hostname = f.hostname;
  req.tty = f.tty;
  req.interactive = f.interactive;
  req.read_only = f.read_only;
  req.cap_add = f.cap_add;
  req.cap_drop = f.cap_drop;
  if (!f.memory.empty()) {
    auto m = str::parse_size(f.memory);
    if (!m || *m <= 0) return Error("--memory " + f.memory + ": expected a size such as 64m or 1g");
    req.memory = *m;
  }
  // (inf and nan parse as numbers: sandbox::check_config refuses them with the others.)
  req.cpus = f.cpus;
  if (f.pids_limit) {
    // docker: 0 and -1 mean no limit.
    if (*f.pids_limit < -1)
      return Error("--pids-limit " + std::to_string(*f.pids_limit) +
                   ": must be positive (or -1 for no limit)");
    if (*f.pids_limit > 0) req.pids_limit = *f.pids_limit;
  }
  req.network = f.network;
  for (const auto& p : f.publish) {
    auto mappings = net::parse_port_mapping(p);
    if (!mappings) return std::move(mappings).error().context("-p " + p);
    for (const auto& m : *mappings) {
      req.ports.push_back({m.host_ip == "0.0.0.0" ? "" : m.host_ip, m.host_port, m.container_port, m.proto});
    }
  }
  for (const auto& v : f.volumes) {
    ASSIGN_OR_RETURN(auto m, parse_volume(v));
    req.volumes.push_back(m);
  }
  for (const auto& v : f.mounts) {
    ASSIGN_OR_RETURN(auto m, parse_mount(v));
    req.volumes.push_back(m);
  }
  TRY(validate_restart(f.restart));
  req.restart = f.restart;
  req.remove = f.rm;
  req.stop_signal = f.stop_signal;
  if (f.stop_timeout && *f.stop_timeout < 0)
    return Error("--stop-timeout " + std::to_string(*f.stop_timeout) + ": must not be negative");
  req.stop_timeout_s = f.stop_timeout;
  for (const auto& l : f.labels) {
    auto eq = l.find('=');
    req.labels[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  req.health = f.health;
  ASSIGN_OR_RETURN(sandbox::ContainerConfig c,
                   sandbox::make_container_config(f.rootfs.empty() ? &img.config : nullptr, req));
  if (!f.rootfs.empty()) {
    c.rootfs = fs::absolute(f.rootfs);
  } else {
    c.image = img.name;
    c.image_digest = img.digest;
    c.layers = img.layers;
  }
  return c;
}

int cmd_run(Globals& g, const RunFlags& f, const std::vector<std::string>& rest) {
  auto store = ContainerStore::open(g.root);
  if (!store) return fail(store.error());
  auto config = make_config(g, f, rest);
  if (!config) return fail(config.error());
  if (Status st = guard_self(g, *config); !st.ok()) return fail(st.error());
  ContainerRecord rec;
  rec.id = sandbox::new_container_id();
  rec.name = f.name.empty() ? sandbox::random_name() : f.name;
  rec.config = std::move(*config);
  sandbox::LaunchOptions opts = launch_options(g);
  opts.attach = !f.detach;
  if (f.interactive && !f.detach) opts.stdin_fd = 0;
  // -it at a terminal: ours goes raw (keys, ^C included, reach the container's terminal) and
  // is restored however the run ends.
  struct termios saved {};
  bool raw = f.tty && f.interactive && !f.detach && ::isatty(0) && ::tcgetattr(0, &saved) == 0;
  Cleanup restore([&] {
    if (raw) ::tcsetattr(0, TCSADRAIN, &saved);
  });
  if (raw) {
    struct termios t = saved;
    ::cfmakeraw(&t);
    ::tcsetattr(0, TCSADRAIN, &t);
  }
  auto l = sandbox::launch(*store, rec, opts);
  if (!l) return fail(l.error());
  if (f.detach) {
    std::printf("%s\n", l->id.c_str());
    return 0;
  }
  auto code = sandbox::wait_attached(*store, *l);
  if (!code) return fail(code.error());
  return *code;
}

}  // namespace

void add_run_command(CLI::App& app, Globals& g) {
  auto* f = new RunFlags();  // lives as long as the app (the process)
  CLI::App* run = app.add_subcommand("run", "Run a command in a new container from an image");
  run->set_help_flag("--help");
  run->allow_extras();
  run->prefix_command();  // IMAGE and everything after it are the image and its command
  run->add_flag("-d,--detach", f->detach, "Run in the background and print the container id");
  run->add_flag("--rm", f->rm, "Remove the container when it exits");
  run->add_flag("-i,--interactive", f->interactive,
                "Keep stdin open: the container reads the caller's stdin");
  run->add_flag("-t,--tty", f->tty, "Allocate a pseudo-terminal");
  run->add_option("--name", f->name, "Name of the container");
  run->add_option("-e,--env", f->env, "Set an environment variable (KEY=VALUE, or KEY to copy it)")
      ->allow_extra_args(false);
  run->add_option("--env-file", f->env_files, "Read environment variables from a file")
      ->allow_extra_args(false);
  run->add_option("-p,--publish", f->publish, "Publish a port: [IP:][HOST:]CONTAINER[/tcp|udp]")
      ->allow_extra_args(false);
  run->add_option("-v,--volume", f->volumes, "Bind a host directory: HOST:CONTAINER[:ro]")
      ->allow_extra_args(false);
  run->add_option("--mount", f->mounts, "Mount: type=bind,source=HOST,target=CONTAINER[,readonly]")
      ->allow_extra_args(false);
  run->add_option("-m,--memory", f->memory, "Memory limit (e.g. 64m, 1g)");
  run->add_option("--cpus", f->cpus, "Number of CPUs (e.g. 0.5)");
  run->add_option("--pids-limit", f->pids_limit, "Maximum number of processes");
  run->add_option("-u,--user", f->user, "User: name|uid[:group|gid]");
  run->add_option("-w,--workdir", f->workdir, "Working directory inside the container");
  run->add_option("--entrypoint", f->entrypoint, "Override the image's entrypoint");
  run->add_option("--network,--net", f->network, "Network: bridge, host, none or a network name");
  run->add_option("--hostname", f->hostname, "Container host name");
  run->add_flag("--read-only", f->read_only, "Mount the container's root read-only");
  run->add_option("--cap-add", f->cap_add, "Add a capability")->allow_extra_args(false);
  run->add_option("--cap-drop", f->cap_drop, "Drop a capability")->allow_extra_args(false);
  run->add_option("--restart", f->restart, "Restart policy: no, on-failure[:N], always");
  run->add_option("--rootfs", f->rootfs, "Use a directory as the root instead of an image (podman --rootfs)");
  run->add_option("--pull", f->pull, "Pull policy: missing, always, never");
  run->add_option("-l,--label", f->labels, "Set a label KEY=VALUE")->allow_extra_args(false);
  run->add_option("--stop-signal", f->stop_signal, "Signal that stops the container");
  run->add_option("--stop-timeout", f->stop_timeout, "Seconds from the stop signal to SIGKILL (10)");
  // Health checks, with docker's and podman's flags: each one overrides the image's value.
  run->add_option("--health-cmd", f->health.cmd,
                  "Health check command: a shell command, a JSON array (exec form), or none");
  run->add_option("--health-interval", f->health.interval, "Time between health checks (30s), or disable");
  run->add_option("--health-timeout", f->health.timeout, "Time a health check may take (30s)");
  run->add_option("--health-start-period", f->health.start_period,
                  "Time to start before failed checks count (0s)");
  run->add_option("--health-retries", f->health.retries, "Failures in a row that make it unhealthy (3)");
  run->add_option("--health-on-failure", f->health.on_failure,
                  "Action when the container turns unhealthy: none, kill, restart, stop");
  run->add_flag("--no-healthcheck", f->health.none, "Disable any health check of the image");
  run->callback([&g, f, run] { g.exit_code = cmd_run(g, *f, command_words(run)); });
}

}  // namespace strata::cli
