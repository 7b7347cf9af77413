// strata ps | logs | stop | start | restart | kill | rm | exec | inspect | stats, and the
// internal `container cleanup` that strata-monitor runs when a container exits.
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
#include "oci/exe_guard.h"
#include "oci/names.h"
#include "sandbox/container.h"
#include "sandbox/health.h"
#include "sandbox/record.h"

namespace strata::cli {

namespace {

using Json = nlohmann::json;
using sandbox::ContainerRecord;
using sandbox::ContainerStore;

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
  // A damaged record says so first: it can be stopped and removed, not started.
  if (!r.damaged.empty())
    return std::string("Damaged (") +
           (store.state(r) == sandbox::RunState::kRunning ? "running" : "stopped") +
           "; strata rm -f removes it)";
  auto state = store.state(r);
  if (state == sandbox::RunState::kRunning) {
    std::string up = "Up " + human_duration(static_cast<int64_t>(std::time(nullptr)) -
                                            parse_rfc3339(r.started).value_or(0));
    // podman's form: "Up 5 seconds (healthy)"
    if (r.config.health)
      up += " (" + sandbox::load_health(store, r.id).value_or(sandbox::HealthState{}).status + ")";
    if (!store.monitor_alive(r)) up += " (monitor gone)";
    return up;
  }
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
  Json health = nullptr, health_config = nullptr;
  if (r.config.health) {
    const auto& h = *r.config.health;
    // docker's State.Health (podman 4 called it State.Healthcheck; both are given).
    health = Json::parse(
        sandbox::health_state_json(sandbox::load_health(store, r.id).value_or(sandbox::HealthState{})));
    health_config = {{"Test", h.test},
                     {"Interval", h.interval_ns},
                     {"Timeout", h.timeout_ns},
                     {"StartPeriod", h.start_period_ns},
                     {"Retries", h.retries}};
  }
  Json out = {{"Id", r.id},
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
                {"StopSignal", r.config.stop_signal},
                {"StopTimeout", r.config.stop_timeout_s}}},
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
  if (!r.damaged.empty()) out["State"]["Error"] = r.damaged;
  if (r.config.health) {
    out["State"]["Health"] = health;
    out["State"]["Healthcheck"] = health;
    out["Config"]["Healthcheck"] = health_config;
    out["Config"]["HealthcheckOnFailureAction"] = r.config.health->on_failure;
  }
  return out;
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

std::optional<std::chrono::seconds> seconds_flag(const std::optional<int>& s) {
  if (!s) return std::nullopt;
  return std::chrono::seconds(std::max(0, *s));
}

}  // namespace

sandbox::LaunchOptions launch_options(const Globals& g) {
  sandbox::LaunchOptions o;
  o.strata_exe = g.self_exe;
  o.monitor_exe = g.monitor_exe;
  return o;
}

// The IMAGE/CONTAINER and COMMAND words after a prefix_command subcommand's own options (CLI11
// 2.1 hands them to the parent).
std::vector<std::string> command_words(CLI::App* sub) {
  auto words = sub->remaining();
  if (words.empty() && sub->get_parent() != nullptr) words = sub->get_parent()->remaining();
  return words;
}

Status guard_self(const Globals& g, const sandbox::ContainerConfig& c) {
  if (!sandbox::needs_unwritable_self(c)) return ok();
  if (g.debug) {
    std::fprintf(stderr,
                 "strata: debug: re-executing from an unwritable copy of %s (the container may hold "
                 "CAP_SYS_PTRACE, or there is no exec stub)\n",
                 g.self_exe.c_str());
  }
  ::setenv("STRATA_SELF_EXE", g.self_exe.c_str(), 1);
  return oci::reexec_unwritable(g.argv).context(
      "strata: a container with CAP_SYS_PTRACE (or without an exec stub)");
}

Status guard_self_for(const Globals& g, const std::vector<std::string>& keys) {
  auto store = ContainerStore::open(g.root);
  if (!store) return ok();
  for (const auto& key : keys) {
    auto id = store->resolve(key);
    auto rec = id ? store->load(*id) : Result<ContainerRecord>(Error("unresolved"));
    if (rec) TRY(guard_self(g, rec->config));
  }
  return ok();
}

void add_container_commands(CLI::App& app, Globals& g) {
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
    for (auto [flag, text, out] :
         {std::tuple{"--since", logs_since, &o.since_ns}, std::tuple{"--until", logs_until, &o.until_ns}}) {
      if (text->empty()) continue;
      *out = parse_time_arg(*text, now_ns);
      if (!*out) {
        g.exit_code =
            fail(Error(std::string(flag) + " " + *text +
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

  auto* stop_t = new std::optional<int>();
  auto* stop_ids = new std::vector<std::string>();
  CLI::App* stop = app.add_subcommand("stop", "Stop running containers (stop signal, then SIGKILL)");
  stop->add_option("-t,--time", *stop_t,
                   "Seconds to wait before SIGKILL (default: the container's --stop-timeout)");
  stop->add_option("containers", *stop_ids, "Container names or ids")->required();
  stop->callback([&g, stop_t, stop_ids] {
    for (const auto& key : *stop_ids) {
      int rc = with_container(g, key, [&](const ContainerStore& s, const std::string& id) {
        Status st = sandbox::stop(s, id, seconds_flag(*stop_t));
        if (!st.ok()) return fail(st.error());
        std::printf("%s\n", key.c_str());
        return 0;
      });
      if (rc != 0) g.exit_code = rc;
    }
  });

  // start / restart: an exited container runs again, detached (podman start without -a).
  for (bool is_restart : {false, true}) {
    auto* t = new std::optional<int>();
    auto* ids = new std::vector<std::string>();
    CLI::App* c = is_restart ? app.add_subcommand("restart", "Restart containers (stop, then start again)")
                             : app.add_subcommand("start", "Start stopped containers again");
    if (is_restart) c->add_option("-t,--time", *t, "Seconds to wait for the stop before SIGKILL");
    c->add_option("containers", *ids, "Container names or ids")->required();
    c->callback([&g, t, ids, is_restart] {
      if (Status st = guard_self_for(g, *ids); !st.ok()) {
        g.exit_code = fail(st.error());
        return;
      }
      for (const auto& key : *ids) {
        int rc = with_container(g, key, [&](const ContainerStore& s, const std::string& id) {
          Status st = is_restart ? sandbox::restart(s, id, seconds_flag(*t), launch_options(g))
                                 : sandbox::start(s, id, launch_options(g));
          if (!st.ok()) return fail(st.error());
          std::printf("%s\n", key.c_str());
          return 0;
        });
        if (rc != 0) g.exit_code = rc;
      }
    });
  }

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
  exec->callback([&g, ex, ex_interactive, ex_key, exec] {
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
      if (Status st = guard_self(g, rec->config); !st.ok()) return fail(st.error());
      ex->id = id;
      ex->args.assign(rest.begin() + 1, rest.end());
      auto code = sandbox::exec(s, id, *ex, *ex_interactive);
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
  CLI::App* stats =
      app.add_subcommand("stats", "Show containers' resource usage, updated every --interval seconds");
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
    g.exit_code = print_stats(g.root, *stats_ids,
                              StatsOptions{*stats_format, !*stats_no_stream, *stats_interval * 1000});
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
    // It may start the container again (restart policy).
    if (Status st = guard_self_for(g, {*cleanup_id}); !st.ok()) {
      g.exit_code = fail(st.error());
      return;
    }
    Status s = sandbox::cleanup_after_exit(*store, *cleanup_id, launch_options(g));
    if (!s.ok()) g.exit_code = fail(s.error());
  });
}

}  // namespace strata::cli
