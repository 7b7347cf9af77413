// strata run | ps | logs | stop | kill | rm | exec | inspect | stats, and the internal
// `container cleanup` that strata-monitor runs when a container exits.
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <tuple>

#include "base/cleanup.h"
#include "base/fs.h"
#include "base/rfc3339.h"
#include "base/strings.h"
#include "cli/strata_commands.h"
#include "cli/strata_logs.h"
#include "net/ports.h"
#include "oci/container.h"
#include "oci/names.h"
#include "sandbox/container.h"
#include "sandbox/record.h"

namespace strata::cli {

namespace {

using Json = nlohmann::json;
using sandbox::ContainerRecord;
using sandbox::ContainerStore;

struct RunFlags {
  bool detach = false, rm = false, interactive = false, tty = false, read_only = false;
  std::string name, user, workdir, network = "bridge", restart = "no", rootfs, hostname, pull = "missing";
  std::string memory, stop_signal;
  std::optional<std::string> entrypoint;
  double cpus = 0;
  int64_t pids_limit = 0;
  std::vector<std::string> env, env_files, publish, volumes, mounts, cap_add, cap_drop, labels;
};

sandbox::LaunchOptions launch_options(const Globals& g) {
  sandbox::LaunchOptions o;
  o.strata_exe = g.self_exe;
  o.monitor_exe = g.monitor_exe;
  return o;
}

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
    bool covered = std::any_of(c.volumes.begin(), c.volumes.end(),
                               [&](const sandbox::VolumeMount& m) { return fs::clean(m.destination) == dest; });
    if (!covered) c.volumes.push_back({"", dest, false, true});
  }
  // Parents before children (as podman sorts mounts): an image VOLUME /data must not be mounted
  // over a -v at /data/sub given on the command line.
  auto depth = [](const std::string& p) { return std::count(p.begin(), p.end(), '/'); };
  std::stable_sort(c.volumes.begin(), c.volumes.end(), [&](const sandbox::VolumeMount& a, const sandbox::VolumeMount& b) {
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
  c.labels = img.labels;
  for (const auto& l : f.labels) {
    auto eq = l.find('=');
    c.labels[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  return c;
}

int cmd_run(Globals& g, const RunFlags& f, const std::vector<std::string>& rest) {
  auto store = ContainerStore::open(g.root);
  if (!store) return fail(store.error());
  auto config = make_config(g, f, rest);
  if (!config) return fail(config.error());
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

// "5 seconds ago" for a time in seconds since the epoch.
std::string ago(int64_t then_s) {
  return human_duration(static_cast<int64_t>(std::time(nullptr)) - then_s) + " ago";
}

std::string ports_str(const sandbox::ContainerConfig& c) {
  std::string out;
  for (const auto& p : c.ports) {
    if (!out.empty()) out += ", ";
    out += (p.host_ip.empty() ? "0.0.0.0" : p.host_ip) + ":" + std::to_string(p.host_port) + "->" +
           std::to_string(p.container_port) + "/" + p.proto;
  }
  return out;
}

std::string status_str(const ContainerStore& store, const ContainerRecord& r) {
  auto state = store.state(r);
  if (state == sandbox::RunState::kRunning)
    return "Up " +
           human_duration(static_cast<int64_t>(std::time(nullptr)) - parse_rfc3339(r.started).value_or(0));
  if (state == sandbox::RunState::kCreated) return "Created";
  auto e = store.exit_info(r.id);
  if (!e) return "Exited (unknown: its monitor was killed)";
  return "Exited (" + std::to_string(e->code) + ") " + ago(e->finished_ns / 1000000000);
}

Json inspect_json(const ContainerStore& store, const ContainerRecord& r) {
  auto state = store.state(r);
  auto e = store.exit_info(r.id);
  Json ports = Json::object();
  for (const auto& p : r.config.ports) {
    ports[std::to_string(p.container_port) + "/" + p.proto].push_back(
        {{"HostIp", p.host_ip}, {"HostPort", std::to_string(p.host_port)}});
  }
  std::string finished;
  if (e) {
    time_t t = static_cast<time_t>(e->finished_ns / 1000000000);
    char buf[64];
    struct tm tm;
    gmtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    finished = buf;
  }
  return {{"Id", r.id},
          {"Name", r.name},
          {"Created", r.created},
          {"Image", r.config.image},
          {"ImageDigest", r.config.image_digest},
          {"Path", r.config.args.empty() ? "" : r.config.args[0]},
          {"Args", r.config.args.size() > 1
                       ? std::vector<std::string>(r.config.args.begin() + 1, r.config.args.end())
                       : std::vector<std::string>{}},
          {"State",
           {{"Status", sandbox::state_name(state)},
            {"Running", state == sandbox::RunState::kRunning},
            {"Pid", state == sandbox::RunState::kRunning ? r.pid : 0},
            {"ConmonPid", state == sandbox::RunState::kRunning ? r.monitor_pid : 0},
            {"ExitCode", e ? e->code : 0},
            {"StartedAt", r.started},
            {"FinishedAt", finished},
            {"RestartCount", r.restart_count}}},
          {"Config",
           {{"Cmd", r.config.args},
            {"Env", r.config.env},
            {"WorkingDir", r.config.cwd},
            {"User", r.config.user},
            {"Tty", r.config.tty},
            {"Labels", r.config.labels},
            {"StopSignal", r.config.stop_signal}}},
          {"HostConfig",
           {{"NetworkMode", r.config.network},
            {"RestartPolicy", r.config.restart},
            {"AutoRemove", r.config.remove},
            {"ReadonlyRootfs", r.config.read_only},
            {"Memory", r.config.memory.value_or(0)},
            {"NanoCpus", static_cast<int64_t>(r.config.cpus.value_or(0) * 1e9)},
            {"PidsLimit", r.config.pids_limit.value_or(0)}}},
          {"NetworkSettings", {{"IPAddress", r.ip}, {"Network", r.network_attached}, {"Ports", ports}}},
          {"LogPath", store.dir(r.id) + "/ctr.log"}};
}

int cmd_ps(Globals& g, bool all, const std::string& format, bool quiet) {
  auto store = ContainerStore::open(g.root);
  if (!store) return fail(store.error());
  Json out = Json::array();
  std::vector<ContainerRecord> recs;
  for (const auto& id : store->list_ids()) {
    auto r = store->load(id);
    if (!r) continue;
    if (!all && store->state(*r) != sandbox::RunState::kRunning) continue;
    recs.push_back(std::move(*r));
  }
  if (format == "json") {
    for (const auto& r : recs) {
      out.push_back({{"Id", r.id},
                     {"Names", {r.name}},
                     {"Image", r.config.image.empty() ? r.config.rootfs : r.config.image},
                     {"Command", r.config.args},
                     {"Created", r.created},
                     {"State", sandbox::state_name(store->state(r))},
                     {"Status", status_str(*store, r)},
                     {"Pid", r.pid},
                     {"Ports", ports_str(r.config)},
                     {"ExitCode", store->exit_info(r.id) ? store->exit_info(r.id)->code : 0}});
    }
    std::printf("%s\n", out.dump(4).c_str());
    return 0;
  }
  if (!format.empty() && format != "table")
    return fail(Error("--format " + format + ": expected table or json"));
  if (quiet) {
    for (const auto& r : recs) std::printf("%s\n", r.id.substr(0, 12).c_str());
    return 0;
  }
  std::printf("%-14s %-32s %-22s %-16s %-28s %-24s %s\n", "CONTAINER ID", "IMAGE", "COMMAND", "CREATED",
              "STATUS", "PORTS", "NAMES");
  for (const auto& r : recs) {
    std::string cmd = str::join(r.config.args, " ");
    if (cmd.size() > 20) cmd = cmd.substr(0, 17) + "...";
    std::string image = r.config.image.empty() ? r.config.rootfs : r.config.image;
    std::printf("%-14s %-32s %-22s %-16s %-28s %-24s %s\n", r.id.substr(0, 12).c_str(), image.c_str(),
                ("\"" + cmd + "\"").c_str(), ago(parse_rfc3339(r.created).value_or(0)).c_str(),
                status_str(*store, r).c_str(), ports_str(r.config).c_str(), r.name.c_str());
  }
  return 0;
}

// The IMAGE/CONTAINER and COMMAND words after a prefix_command subcommand's own options (CLI11
// 2.1 hands them to the parent).
std::vector<std::string> command_words(CLI::App* sub) {
  auto words = sub->remaining();
  if (words.empty() && sub->get_parent() != nullptr) words = sub->get_parent()->remaining();
  return words;
}

template <class F>
int with_container(Globals& g, const std::string& key, F&& f) {
  auto store = ContainerStore::open(g.root);
  if (!store) return fail(store.error());
  auto id = store->resolve(key);
  if (!id) return fail(id.error());
  return f(*store, *id);
}

}  // namespace

void add_container_commands(CLI::App& app, Globals& g) {
  // run
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
  run->callback([&g, f, run] { g.exit_code = cmd_run(g, *f, command_words(run)); });

  auto* ps_all = new bool(false);
  auto* ps_quiet = new bool(false);
  auto* ps_format = new std::string();
  CLI::App* ps = app.add_subcommand("ps", "List containers");
  ps->alias("ls");
  ps->add_flag("-a,--all", *ps_all, "Show all containers, not only running ones");
  ps->add_flag("-q,--quiet", *ps_quiet, "Print only ids");
  ps->add_option("--format", *ps_format, "table or json");
  ps->callback(
      [&g, ps_all, ps_quiet, ps_format] { g.exit_code = cmd_ps(g, *ps_all, *ps_format, *ps_quiet); });

  auto* logs_follow = new bool(false);
  auto* logs_ts = new bool(false);
  auto* logs_tail = new int64_t(-1);
  auto* logs_id = new std::string();
  CLI::App* logs = app.add_subcommand("logs", "Print a container's output");
  logs->add_flag("-f,--follow", *logs_follow, "Follow the output until the container exits");
  logs->add_flag("-t,--timestamps", *logs_ts, "Show timestamps");
  logs->add_option("--tail", *logs_tail, "Number of lines from the end (-1: all)");
  auto* logs_since = new std::string();
  auto* logs_until = new std::string();
  logs->add_option("--since", *logs_since,
                   "Only lines since this time: RFC 3339, Unix seconds, or a duration before now (10m)");
  logs->add_option("--until", *logs_until, "Only lines until this time (same forms as --since)");
  logs->add_option("container", *logs_id, "Container name or id")->required();
  logs->callback([&g, logs_follow, logs_ts, logs_tail, logs_id, logs_since, logs_until] {
    LogOptions o{*logs_follow, *logs_ts, *logs_tail, std::nullopt, std::nullopt};
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ns = static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
    for (auto [flag, text, out] : {std::tuple{"--since", logs_since, &o.since_ns}, std::tuple{"--until", logs_until, &o.until_ns}}) {
      if (text->empty()) continue;
      *out = parse_time_arg(*text, now_ns);
      if (!*out) {
        g.exit_code = fail(Error(std::string(flag) + " " + *text +
                                 ": expected an RFC 3339 time (2026-11-23T09:08:00Z), Unix seconds, or a duration "
                                 "such as 90s, 10m or 1h30m"));
        return;
      }
    }
    g.exit_code = with_container(g, *logs_id, [&](const ContainerStore& s, const std::string& id) {
      Status st = print_logs(s, id, o);
      return st.ok() ? 0 : fail(st.error());
    });
  });

  auto* stop_t = new int(10);
  auto* stop_ids = new std::vector<std::string>();
  CLI::App* stop = app.add_subcommand("stop", "Stop running containers (stop signal, then SIGKILL)");
  stop->add_option("-t,--time", *stop_t, "Seconds to wait before SIGKILL");
  stop->add_option("containers", *stop_ids, "Container names or ids")->required();
  stop->callback([&g, stop_t, stop_ids] {
    for (const auto& key : *stop_ids) {
      int rc = with_container(g, key, [&](const ContainerStore& s, const std::string& id) {
        Status st = sandbox::stop(s, id, std::chrono::seconds(*stop_t));
        if (!st.ok()) return fail(st.error());
        std::printf("%s\n", key.c_str());
        return 0;
      });
      if (rc != 0) g.exit_code = rc;
    }
  });

  auto* kill_sig = new std::string("SIGKILL");
  auto* kill_ids = new std::vector<std::string>();
  CLI::App* killc = app.add_subcommand("kill", "Send a signal to running containers");
  killc->add_option("-s,--signal", *kill_sig, "Signal (name or number)");
  killc->add_option("containers", *kill_ids, "Container names or ids")->required();
  killc->callback([&g, kill_sig, kill_ids] {
    auto sig = oci::signal_from_name(*kill_sig);
    if (!sig) {
      g.exit_code = fail(Error("--signal " + *kill_sig + ": not a signal"));
      return;
    }
    for (const auto& key : *kill_ids) {
      int rc = with_container(g, key, [&](const ContainerStore& s, const std::string& id) {
        Status st = sandbox::kill(s, id, *sig);
        if (!st.ok()) return fail(st.error());
        std::printf("%s\n", key.c_str());
        return 0;
      });
      if (rc != 0) g.exit_code = rc;
    }
  });

  auto* rm_force = new bool(false);
  auto* rm_ids = new std::vector<std::string>();
  CLI::App* rm = app.add_subcommand("rm", "Remove containers");
  rm->add_flag("-f,--force", *rm_force, "Kill running containers first");
  rm->add_option("containers", *rm_ids, "Container names or ids")->required();
  rm->callback([&g, rm_force, rm_ids] {
    for (const auto& key : *rm_ids) {
      int rc = with_container(g, key, [&](const ContainerStore& s, const std::string& id) {
        Status st = sandbox::remove(s, id, *rm_force);
        if (!st.ok()) return fail(st.error());
        std::printf("%s\n", id.c_str());
        return 0;
      });
      if (rc != 0) g.exit_code = rc;
    }
  });

  auto* ex = new oci::ExecOptions();
  auto* ex_interactive = new bool(false);
  auto* ex_key = new std::string();
  CLI::App* exec = app.add_subcommand("exec", "Run a command in a running container");
  exec->allow_extras();
  exec->prefix_command();
  exec->add_flag("-i,--interactive", *ex_interactive, "Keep stdin open");
  exec->add_flag("-t,--tty", ex->tty, "Allocate a pseudo-terminal");
  exec->add_flag("-d,--detach", ex->detach, "Run in the background");
  exec->add_option("-e,--env", ex->env, "Set an environment variable")->allow_extra_args(false);
  exec->add_option("-u,--user", ex->user, "User: uid[:gid]");
  exec->add_option("-w,--workdir", ex->cwd, "Working directory");
  exec->callback([&g, ex, ex_key, exec] {
    auto rest = command_words(exec);
    if (rest.size() < 2) {
      g.exit_code = fail(Error("exec: usage: strata exec [OPTIONS] CONTAINER COMMAND [ARG...]"));
      return;
    }
    *ex_key = rest[0];
    g.exit_code = with_container(g, *ex_key, [&](const ContainerStore& s, const std::string& id) {
      auto rec = s.load(id);
      if (!rec) return fail(rec.error());
      if (s.state(*rec) != sandbox::RunState::kRunning)
        return fail(Error("container " + rec->name + " is not running"));
      ex->id = id;
      ex->args.assign(rest.begin() + 1, rest.end());
      auto code = oci::exec_container(sandbox::runtime_context(s), *ex);
      if (!code) return fail(code.error());
      return *code;
    });
  });

  auto* insp_ids = new std::vector<std::string>();
  CLI::App* insp = app.add_subcommand("inspect", "Show a container's configuration and state as JSON");
  insp->add_option("containers", *insp_ids, "Container names or ids")->required();
  insp->callback([&g, insp_ids] {
    Json out = Json::array();
    for (const auto& key : *insp_ids) {
      int rc = with_container(g, key, [&](const ContainerStore& s, const std::string& id) {
        auto rec = s.load(id);
        if (!rec) return fail(rec.error());
        out.push_back(inspect_json(s, *rec));
        return 0;
      });
      if (rc != 0) g.exit_code = rc;
    }
    std::printf("%s\n", out.dump(4).c_str());
  });

  auto* stats_ids = new std::vector<std::string>();
  auto* stats_format = new std::string();
  auto* stats_no_stream = new bool(false);
  auto* stats_interval = new int(1);
  CLI::App* stats = app.add_subcommand("stats", "Show containers' resource usage, updated every --interval seconds");
  stats->add_flag("--no-stream", *stats_no_stream, "Print one sample and exit");
  stats->add_option("-i,--interval", *stats_interval, "Seconds between samples")->capture_default_str();
  stats->add_option("--format", *stats_format, "table or json");
  stats->add_option("containers", *stats_ids, "Container names or ids (default: all running)");
  stats->callback([&g, stats_ids, stats_format, stats_no_stream, stats_interval] {
    if (*stats_format != "" && *stats_format != "table" && *stats_format != "json") {
      g.exit_code = fail(Error("--format " + *stats_format + ": expected table or json"));
      return;
    }
    if (*stats_interval < 1) {
      g.exit_code = fail(Error("--interval must be at least 1 second"));
      return;
    }
    g.exit_code = print_stats(g.root, *stats_ids, StatsOptions{*stats_format, !*stats_no_stream, *stats_interval * 1000});
  });

  // Internal: run by strata-monitor when the container has exited.
  CLI::App* ctr = app.add_subcommand("container", "Container maintenance");
  ctr->require_subcommand(1);
  auto* cleanup_id = new std::string();
  CLI::App* cleanup =
      ctr->add_subcommand("cleanup", "Release what an exited container holds (run by strata-monitor)");
  cleanup->add_option("id", *cleanup_id, "Container id")->required();
  cleanup->callback([&g, cleanup_id] {
    auto store = ContainerStore::open(g.root);
    if (!store) {
      g.exit_code = fail(store.error());
      return;
    }
    Status s = sandbox::cleanup_after_exit(*store, *cleanup_id, launch_options(g));
    if (!s.ok()) g.exit_code = fail(s.error());
  });
}

}  // namespace strata::cli
