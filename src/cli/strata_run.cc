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
#include "sandbox/container.h"
#include "sandbox/health.h"
#include "sandbox/record.h"

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
  double cpus = 0;
  int64_t pids_limit = 0;
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

void set_env(std::vector<std::string>& env, const std::string& kv) {
  std::string key = kv.substr(0, kv.find('=') + 1);
  std::erase_if(env, [&](const std::string& e) { return e.rfind(key, 0) == 0; });
  env.push_back(kv);
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

// Merges the image's defaults with the flags, as docker does: --entrypoint replaces the
// image's entrypoint (and drops its cmd), CMD... replaces the image's cmd.
Result<sandbox::ContainerConfig> make_config(const Globals& g, const RunFlags& f,
                                             const std::vector<std::string>& rest) {
  sandbox::ContainerConfig c;
  std::vector<std::string> cmd;
  RunImage img;
  if (!f.rootfs.empty()) {
    c.rootfs = fs::absolute(f.rootfs);
    cmd = rest;
    img.env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"};
  } else {
    if (rest.empty()) return Error("run: an image is required (strata run [OPTIONS] IMAGE [COMMAND...])");
    ASSIGN_OR_RETURN(img, image_for_run(g, rest[0], f.pull));
    cmd.assign(rest.begin() + 1, rest.end());
    c.image = img.name;
    c.image_digest = img.digest;
    c.layers = img.layers;
  }
  std::vector<std::string> entry = img.entrypoint;
  if (f.entrypoint) {
    entry = f.entrypoint->empty() ? std::vector<std::string>{} : std::vector<std::string>{*f.entrypoint};
  } else if (cmd.empty()) {
    cmd = img.cmd;
  }
  c.args = entry;
  c.args.insert(c.args.end(), cmd.begin(), cmd.end());
  if (c.args.empty()) return Error("run: no command given and the image defines none");
  c.env = img.env;
  if (std::none_of(c.env.begin(), c.env.end(),
                   [](const std::string& e) { return e.rfind("PATH=", 0) == 0; })) {
    c.env.insert(c.env.begin(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  }
  for (const auto& file : f.env_files) {
    auto vars = read_env_file(file);
    if (!vars) return std::move(vars).error().context("--env-file " + file);
    for (const auto& kv : *vars) set_env(c.env, kv);
  }
  for (const auto& e : f.env) {
    if (e.find('=') == std::string::npos) {
      if (const char* v = std::getenv(e.c_str())) set_env(c.env, e + "=" + v);
      continue;
    }
    if (e[0] == '=') return Error("-e " + e + ": empty variable name");
    set_env(c.env, e);
  }
  if (f.tty && std::none_of(c.env.begin(), c.env.end(),
                            [](const std::string& e) { return e.rfind("TERM=", 0) == 0; })) {
    c.env.push_back("TERM=xterm");
  }
  c.cwd = !f.workdir.empty() ? f.workdir : (!img.working_dir.empty() ? img.working_dir : "/");
  if (c.cwd[0] != '/') return Error("--workdir " + c.cwd + ": must be an absolute path");
  c.user = !f.user.empty() ? f.user : img.user;
  c.hostname = f.hostname;
  c.tty = f.tty;
  c.interactive = f.interactive;
  c.read_only = f.read_only;
  c.cap_add = f.cap_add;
  c.cap_drop = f.cap_drop;
  if (!f.memory.empty()) {
    auto m = str::parse_size(f.memory);
    if (!m || *m <= 0) return Error("--memory " + f.memory + ": expected a size such as 64m or 1g");
    c.memory = *m;
  }
  if (f.cpus < 0) return Error("--cpus must not be negative");
  if (f.cpus > 0) c.cpus = f.cpus;
  if (f.pids_limit != 0) c.pids_limit = f.pids_limit;
  c.network = f.network == "default" ? "bridge" : f.network;
  for (const auto& p : f.publish) {
    auto mappings = net::parse_port_mapping(p);
    if (!mappings) return std::move(mappings).error().context("-p " + p);
    for (const auto& m : *mappings) {
      c.ports.push_back({m.host_ip == "0.0.0.0" ? "" : m.host_ip, m.host_port, m.container_port, m.proto});
    }
  }
  if (!c.ports.empty() && (c.network == "host" || c.network == "none")) {
    return Error("-p cannot be used with --network " + c.network);
  }
  for (const auto& v : f.volumes) {
    ASSIGN_OR_RETURN(auto m, parse_volume(v));
    c.volumes.push_back(m);
  }
  for (const auto& v : f.mounts) {
    ASSIGN_OR_RETURN(auto m, parse_mount(v));
    c.volumes.push_back(m);
  }
  // The image's VOLUMEs that no -v/--mount covers become anonymous volumes (as podman).
  for (const auto& path : img.volumes) {
    std::string dest = fs::clean(path);
    bool covered = std::any_of(c.volumes.begin(), c.volumes.end(), [&](const sandbox::VolumeMount& m) {
      return fs::clean(m.destination) == dest;
    });
    if (!covered) c.volumes.push_back({"", dest, false, true});
  }
  // Parents before children (as podman sorts mounts): an image VOLUME /data must not be mounted
  // over a -v at /data/sub given on the command line.
  auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
  std::stable_sort(c.volumes.begin(), c.volumes.end(),
                   [&](const sandbox::VolumeMount& a, const sandbox::VolumeMount& b) {
                     return depth(fs::clean(a.destination)) < depth(fs::clean(b.destination));
                   });
  TRY(validate_restart(f.restart));
  c.restart = f.restart;
  if (f.rm && f.restart != "no") return Error("--rm and --restart " + f.restart + " cannot be combined");
  c.remove = f.rm;
  c.stop_signal =
      !f.stop_signal.empty() ? f.stop_signal : (!img.stop_signal.empty() ? img.stop_signal : "SIGTERM");
  if (!oci::signal_from_name(c.stop_signal))
    return Error("stop signal \"" + c.stop_signal + "\" is not a signal");
  if (f.stop_timeout) {
    if (*f.stop_timeout < 0)
      return Error("--stop-timeout " + std::to_string(*f.stop_timeout) + ": must not be negative");
    c.stop_timeout_s = *f.stop_timeout;
  }
  c.labels = img.labels;
  for (const auto& l : f.labels) {
    auto eq = l.find('=');
    c.labels[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  ASSIGN_OR_RETURN(c.health, sandbox::resolve_health(img.healthcheck, f.health));
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
