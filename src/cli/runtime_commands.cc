// The subcommands of strata-runtime: runc's names, flags, output formats and exit codes.
#include "cli/runtime_commands.h"

#include <spdlog/spdlog.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "base/fs.h"
#include "base/log.h"
#include "base/strings.h"
#include "oci/container.h"
#include "oci/exe_guard.h"
#include "oci/names.h"
#include "oci/spec.h"

namespace strata::cli {
namespace {

constexpr const char* kVersion = "0.1.0";
bool g_log_to_file = false;

int fail(const Error& e) {
  std::string msg = e.to_string();
  // In the --log file for conmon/containerd (which read its JSON form), and always on stderr
  // so that a person at a terminal sees it.
  if (g_log_to_file) log::get("runtime")->error("{}", msg);
  std::fprintf(stderr, "strata-runtime: %s\n", msg.c_str());
  return 1;
}

std::string ps_table_filter(const std::vector<pid_t>& pids, const std::vector<std::string>& ps_args) {
  // Run ps(1) with the caller's options and keep the header plus the container's lines, as runc.
  std::vector<std::string> args = {"ps"};
  if (ps_args.empty()) {
    args.push_back("-ef");
  } else {
    args.insert(args.end(), ps_args.begin(), ps_args.end());
  }
  int p[2];
  if (::pipe(p) != 0) return "";
  pid_t child = ::fork();
  if (child == 0) {
    ::dup2(p[1], 1);
    ::close(p[0]);
    std::vector<char*> av;
    for (auto& a : args) av.push_back(a.data());
    av.push_back(nullptr);
    ::execvp("ps", av.data());
    ::_exit(127);
  }
  ::close(p[1]);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(p[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(p[0]);
  ::waitpid(child, nullptr, 0);
  auto lines = str::split(out, '\n');
  if (lines.empty()) return "";
  std::string result = lines[0] + "\n";
  auto header = str::split(lines[0], ' ');
  std::vector<std::string> cols;
  for (auto& h : header)
    if (!h.empty()) cols.push_back(h);
  auto pid_col = std::find(cols.begin(), cols.end(), "PID");
  if (pid_col == cols.end()) return out;
  size_t idx = static_cast<size_t>(pid_col - cols.begin());
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> f;
    for (auto& w : str::split(lines[i], ' '))
      if (!w.empty()) f.push_back(w);
    if (f.size() <= idx) continue;
    auto pid = str::parse_int(f[idx]);
    if (pid && std::find(pids.begin(), pids.end(), static_cast<pid_t>(*pid)) != pids.end())
      result += lines[i] + "\n";
  }
  return result;
}

}  // namespace

size_t subcommand_index(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--root" || a == "--log" || a == "--log-format" || a == "--criu") {
      ++i;
    } else if (a.empty() || a[0] != '-') {
      return i;
    }
  }
  return args.size();
}

int run_runtime_cli(const std::vector<std::string>& in_args, const std::vector<std::string>& tail,
                    char** argv) {
  // Only the subcommand being run gets its options declared: building every CLI11 option of
  // every subcommand was a quarter of the runtime's start-up instructions (callgrind).
  size_t sub_at = subcommand_index(in_args);
  std::string sub = sub_at < in_args.size() ? in_args[sub_at] : "";
  if (sub == "ls") sub = "list";
  auto want = [&](const char* name) { return sub.empty() || sub == name; };
  static const std::set<std::string> kKnown = {"create",   "run",   "start",  "state", "kill",
                                               "delete",   "pause", "resume", "ps",    "list",
                                               "features", "spec",  "exec",   "update"};
  if (!kKnown.count(sub)) sub.clear();
  CLI::App app{"strata-runtime: an OCI container runtime (runc-compatible command line)", "strata-runtime"};
  app.require_subcommand(0, 1);
  app.fallthrough();
  oci::RuntimeContext ctx;
  ctx.reexec = [argv] { return oci::reexec_unwritable(argv); };
  std::string log_file, log_format = "text", criu;
  bool debug = false, version = false;
  app.add_option("--root", ctx.root, "root directory for container state")->capture_default_str();
  app.add_option("--log", log_file, "log file (default: stderr)");
  app.add_option("--log-format", log_format, "log format: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_flag("--debug", debug, "debug logging");
  app.add_flag("--systemd-cgroup", ctx.systemd_cgroup, "use the systemd cgroup driver (needs systemd)");
  app.add_option("--criu", criu, "ignored: checkpoint/restore is not supported");
  std::string rootless_value;
  app.add_option("--rootless", rootless_value,
                 "ignored (true|false|auto): rootless is detected from the effective uid")
      ->expected(0, 1);
  app.add_flag("-v,--version", version, "print the version");

  oci::CreateOptions copts;
  auto add_create_flags = [&](CLI::App* c) {
    c->add_option("-b,--bundle", copts.bundle, "bundle directory (default: current directory)");
    c->add_option("--console-socket", copts.console_socket, "unix socket that receives the pty master");
    c->add_option("--pid-file", copts.pid_file, "file to write the init's pid to");
    c->add_flag("--no-pivot", copts.no_pivot, "use MS_MOVE and chroot instead of pivot_root");
    c->add_flag("--no-new-keyring")->description("ignored: no session keyring is created");
    c->add_option("--preserve-fds", copts.preserve_fds, "pass N extra fds (3..3+N-1) to the container");
    c->add_option("id", copts.id, "container id")->required();
  };
  bool detach = false, keep = false, all = false, force = false, quiet = false, spec_rootless = false;
  std::string id, signal = "SIGTERM", format = "table", spec_bundle = ".";
  oci::ExecOptions eopts;
  std::string ignored, process_file;
  std::string res_file, memory, memory_res, memory_swap, cpuset_cpus, cpuset_mems;
  std::optional<int64_t> cpu_quota, pids_limit, cpu_rt_runtime;
  std::optional<uint64_t> cpu_shares, cpu_period, cpu_rt_period;
  std::optional<uint16_t> blkio_weight;
  CLI::App *create = nullptr, *run = nullptr, *start = nullptr, *state = nullptr, *kill = nullptr,
           *del = nullptr, *pause = nullptr, *resume = nullptr, *ps = nullptr, *list = nullptr,
           *features = nullptr, *spec = nullptr, *exec = nullptr, *update = nullptr;
  auto id_only = [&](const char* name, const char* what) {
    CLI::App* c = app.add_subcommand(name, what);
    c->add_option("id", id)->required();
    return c;
  };
  if (want("create")) {
    create = app.add_subcommand("create", "create a container (it waits for start)");
    add_create_flags(create);
  }
  if (want("run")) {
    run = app.add_subcommand("run", "create and start a container, wait for it");
    add_create_flags(run);
    run->add_flag("-d,--detach", detach, "do not wait for the container");
    run->add_flag("--keep", keep, "do not delete the container after it exits");
  }
  if (want("start")) start = id_only("start", "start a created container");
  if (want("state")) state = id_only("state", "print a container's state as JSON");
  if (want("kill")) {
    kill = app.add_subcommand("kill", "send a signal to a container's init (or all its processes)");
    kill->add_flag("-a,--all", all, "signal every process of the container");
    kill->add_option("id", id)->required();
    kill->add_option("signal", signal, "signal name or number (default SIGTERM)");
  }
  if (want("delete")) {
    del = id_only("delete", "delete a container");
    del->add_flag("-f,--force", force, "kill a running container first");
  }
  if (want("pause")) pause = id_only("pause", "freeze every process of a container");
  if (want("resume")) resume = id_only("resume", "thaw a paused container");
  if (want("ps")) {
    ps = id_only("ps", "list a container's processes");
    ps->add_option("-f,--format", format)->check(CLI::IsMember({"table", "json"}));
  }
  if (want("list")) {
    list = app.add_subcommand("list", "list containers");
    list->alias("ls");
    list->add_option("-f,--format", format)->check(CLI::IsMember({"table", "json"}));
    list->add_flag("-q,--quiet", quiet, "print ids only");
  }
  if (want("features")) features = app.add_subcommand("features", "print what this runtime supports (JSON)");
  if (want("spec")) {
    spec = app.add_subcommand("spec", "write a default config.json");
    spec->add_option("-b,--bundle", spec_bundle, "where to write config.json");
    spec->add_flag("--rootless", spec_rootless, "a config for an unprivileged user");
  }
  if (want("exec")) {
    exec = app.add_subcommand("exec", "run a new process in a container");
    exec->add_option("--console-socket", eopts.console_socket);
    exec->add_option("--cwd", eopts.cwd);
    exec->add_option("-e,--env", eopts.env);
    exec->add_flag("-t,--tty", eopts.tty);
    exec->add_option("-u,--user", eopts.user);
    exec->add_option("-g,--additional-gids", eopts.additional_gids);
    exec->add_option("-p,--process", process_file);
    exec->add_flag("-d,--detach", eopts.detach);
    exec->add_option("--pid-file", eopts.pid_file);
    exec->add_option("--process-label", ignored)->description("ignored: no SELinux");
    exec->add_option("--apparmor", ignored)->description("ignored: no AppArmor");
    exec->add_flag("--no-new-privs", eopts.no_new_privs);
    exec->add_option("-c,--cap", eopts.cap_add);
    exec->add_option("--preserve-fds", eopts.preserve_fds);
    exec->add_option("--cgroup", ignored)->description("ignored: the process joins the container's cgroup");
    exec->add_flag("--ignore-paused")->description("ignored");
    exec->add_option("id", eopts.id)->required();
  }
  if (want("update")) {
    update = id_only("update", "change a container's resource limits");
    update->add_option("-r,--resources", res_file, "LinuxResources JSON file ('-' for stdin)");
    update->add_option("--memory", memory);
    update->add_option("--memory-reservation", memory_res);
    update->add_option("--memory-swap", memory_swap);
    update->add_option("--cpu-share", cpu_shares);
    update->add_option("--cpu-quota", cpu_quota);
    update->add_option("--cpu-period", cpu_period);
    update->add_option("--cpu-rt-runtime", cpu_rt_runtime);
    update->add_option("--cpu-rt-period", cpu_rt_period);
    update->add_option("--cpuset-cpus", cpuset_cpus);
    update->add_option("--cpuset-mems", cpuset_mems);
    update->add_option("--pids-limit", pids_limit);
    update->add_option("--blkio-weight", blkio_weight);
  }

  std::vector<std::string> rev(in_args.rbegin(), in_args.rend());
  try {
    app.parse(rev);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  log::Options lo;
  lo.file = log_file;
  lo.format = log_format == "json" ? log::Format::kJson : log::Format::kText;
  lo.debug = debug;
  log::setup(lo);
  g_log_to_file = !log_file.empty();

  if (version) {
    std::printf("strata-runtime version %s\nspec: 1.1.0\n", kVersion);
    return 0;
  }
  try {
    if (create != nullptr && *create) {
      Status s = oci::create_container(ctx, copts);
      return s.ok() ? 0 : fail(s.error().context("create container " + copts.id));
    }
    if (run != nullptr && *run) {
      auto r = oci::run_container(ctx, copts, detach, keep);
      if (!r) return fail(r.error().context("run container " + copts.id));
      return *r;
    }
    if (start != nullptr && *start) {
      Status s = oci::start_container(ctx, id);
      return s.ok() ? 0 : fail(s.error());
    }
    if (state != nullptr && *state) {
      auto r = oci::container_state_json(ctx, id);
      if (!r) return fail(r.error());
      std::printf("%s\n", r->c_str());
      return 0;
    }
    if (kill != nullptr && *kill) {
      auto sig = oci::signal_from_name(signal);
      if (!sig) return fail(Error("kill: unknown signal \"" + signal + "\""));
      Status s = oci::kill_container(ctx, id, *sig, all);
      return s.ok() ? 0 : fail(s.error());
    }
    if (del != nullptr && *del) {
      Status s = oci::delete_container(ctx, id, force);
      return s.ok() ? 0 : fail(s.error());
    }
    if (pause != nullptr && *pause) {
      Status s = oci::pause_container(ctx, id);
      return s.ok() ? 0 : fail(s.error());
    }
    if (resume != nullptr && *resume) {
      Status s = oci::resume_container(ctx, id);
      return s.ok() ? 0 : fail(s.error());
    }
    if (ps != nullptr && *ps) {
      auto pids = oci::container_pids(ctx, id);
      if (!pids) return fail(pids.error());
      if (format == "json") {
        std::printf("%s\n", nlohmann::json(*pids).dump().c_str());
      } else {
        std::fputs(ps_table_filter(*pids, tail).c_str(), stdout);
      }
      return 0;
    }
    if (list != nullptr && *list) {
      auto entries = oci::list_containers(ctx);
      if (!entries) return fail(entries.error());
      if (quiet) {
        for (const auto& e : *entries) std::printf("%s\n", e.state.id.c_str());
      } else if (format == "json") {
        nlohmann::json arr = nlohmann::json::array();
        for (const auto& e : *entries) {
          arr.push_back(nlohmann::json::parse(oci::state_json(e.state, e.status, false)));
        }
        std::printf("%s\n", arr.dump().c_str());
      } else {
        std::printf("%-20s %-8s %-10s %-40s %-32s %s\n", "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
        for (const auto& e : *entries) {
          std::printf("%-20s %-8d %-10s %-40s %-32s %s\n", e.state.id.c_str(),
                      e.status == oci::ContainerStatus::kStopped ? 0 : e.state.pid,
                      std::string(oci::status_name(e.status)).c_str(), e.state.bundle.c_str(),
                      e.state.created.c_str(),
                      e.state.owner_uid == 0 ? "root" : std::to_string(e.state.owner_uid).c_str());
        }
      }
      return 0;
    }
    if (features != nullptr && *features) {
      std::printf("%s\n", oci::features_json().c_str());
      return 0;
    }
    if (spec != nullptr && *spec) {
      std::string path = fs::join(spec_bundle, "config.json");
      if (fs::exists(path)) return fail(Error("spec: " + path + " exists; remove it first"));
      Status s =
          fs::write_file_atomic(path, oci::default_spec_json(spec_rootless, ::getuid(), ::getgid()) + "\n");
      return s.ok() ? 0 : fail(s.error().context("spec"));
    }
    if (exec != nullptr && *exec) {
      if (!process_file.empty()) {
        auto text = process_file == "-"
                        ? Result<std::string>(std::string(std::istreambuf_iterator<char>(std::cin), {}))
                        : fs::read_file(process_file);
        if (!text) return fail(text.error().context("exec --process"));
        eopts.process_json = *text;
      }
      eopts.args = tail;
      auto r = oci::exec_container(ctx, eopts);
      if (!r) return fail(r.error());
      return *r;
    }
    if (update != nullptr && *update) {
      oci::Resources res;
      if (!res_file.empty()) {
        auto text = res_file == "-"
                        ? Result<std::string>(std::string(std::istreambuf_iterator<char>(std::cin), {}))
                        : fs::read_file(res_file);
        if (!text) return fail(text.error().context("update --resources"));
        auto parsed = oci::parse_resources(*text);
        if (!parsed) return fail(parsed.error().context("update --resources"));
        res = *parsed;
      }
      auto size_opt = [&](const std::string& v, const char* flag) -> Result<std::optional<int64_t>> {
        if (v.empty()) return std::optional<int64_t>{};
        auto s = str::parse_size(v);
        if (!s) return Error(std::string(flag) + ": invalid size \"" + v + "\"");
        return std::optional<int64_t>{*s};
      };
      auto mem = size_opt(memory, "--memory");
      auto memr = size_opt(memory_res, "--memory-reservation");
      auto mems = size_opt(memory_swap, "--memory-swap");
      for (auto* r : {&mem, &memr, &mems})
        if (!r->ok()) return fail(r->error());
      // *mem is the optional (given or not); **mem its value.
      if (*mem || *memr || *mems) {
        if (!res.memory) res.memory = oci::MemoryResources{};
        if (*mem) res.memory->limit = **mem;
        if (*memr) res.memory->reservation = **memr;
        if (*mems) res.memory->swap = **mems;
      }
      if (cpu_shares || cpu_quota || cpu_period || cpu_rt_runtime || cpu_rt_period || !cpuset_cpus.empty() ||
          !cpuset_mems.empty()) {
        if (!res.cpu) res.cpu = oci::CpuResources{};
        if (cpu_shares) res.cpu->shares = cpu_shares;
        if (cpu_quota) res.cpu->quota = cpu_quota;
        if (cpu_period) res.cpu->period = cpu_period;
        if (cpu_rt_runtime) res.cpu->realtime_runtime = cpu_rt_runtime;
        if (cpu_rt_period) res.cpu->realtime_period = cpu_rt_period;
        if (!cpuset_cpus.empty()) res.cpu->cpus = cpuset_cpus;
        if (!cpuset_mems.empty()) res.cpu->mems = cpuset_mems;
      }
      if (pids_limit) res.pids_limit = pids_limit;
      if (blkio_weight) res.block_io = oci::BlockIoResources{blkio_weight, std::nullopt};
      Status s = oci::update_container(ctx, id, res);
      return s.ok() ? 0 : fail(s.error());
    }
  } catch (const std::exception& e) {
    return fail(Error(std::string("internal error: ") + e.what()));
  }
  std::fputs(app.help().c_str(), stderr);
  return 2;
}

}  // namespace strata::cli
