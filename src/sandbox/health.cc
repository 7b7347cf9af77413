#include "sandbox/health.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "base/rfc3339.h"
#include "oci/container.h"
#include "sandbox/container.h"

namespace strata::sandbox {

using Json = nlohmann::json;

namespace {

int64_t now_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// Go's time.Duration format for the values a health check uses ("30s", "1m30s", "1.5s", "250ms").
std::string go_duration(int64_t ns) {
  if (ns % 1000000000 != 0) {
    if (ns < 1000000000) return std::to_string(ns / 1000000) + "ms";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", static_cast<double>(ns) / 1e9);
    return std::string(buf) + "s";
  }
  int64_t s = ns / 1000000000;
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h";
  if (s >= 60) out += std::to_string(s / 60 % 60) + "m";
  return out + std::to_string(s % 60) + "s";
}

Result<int64_t> duration_flag(const char* flag, const std::string& text, int64_t min_ns) {
  auto ns = parse_duration_nanos(text);
  if (!ns) return Error(std::string(flag) + " " + text + ": expected a duration such as 30s, 1m30s or 500ms");
  if (*ns < min_ns) {
    return Error(std::string(flag) + " " + text + ": must be at least " + go_duration(min_ns) +
                 (min_ns > 0 ? "" : " (not negative)"));
  }
  return *ns;
}

// --health-cmd: "none", a JSON array (exec form; "CMD" is implied unless it starts with a test
// type), or a shell command.
Result<std::vector<std::string>> test_from_flag(const std::string& cmd) {
  if (cmd.empty()) return Error("--health-cmd: empty command");
  if (cmd == "none" || cmd == "NONE") return std::vector<std::string>{"NONE"};
  if (cmd.front() == '[') {
    Json j = Json::parse(cmd, nullptr, false);
    if (j.is_array() && std::all_of(j.begin(), j.end(), [](const Json& e) { return e.is_string(); })) {
      std::vector<std::string> test = j.get<std::vector<std::string>>();
      if (test.empty()) return Error("--health-cmd " + cmd + ": empty command");
      if (test[0] != "CMD" && test[0] != "CMD-SHELL" && test[0] != "NONE") test.insert(test.begin(), "CMD");
      return test;
    }
  }
  return std::vector<std::string>{"CMD-SHELL", cmd};
}

Status check_test(const std::vector<std::string>& test, const std::string& where) {
  const std::string& kind = test.front();
  if (kind == "CMD") {
    if (test.size() < 2 || test[1].empty()) return Error(where + ": CMD needs a program to run");
    return ok();
  }
  if (kind == "CMD-SHELL") {
    if (test.size() != 2 || test[1].empty())
      return Error(where + ": CMD-SHELL takes exactly one command string");
    return ok();
  }
  return Error(where + ": unknown test type \"" + kind + "\" (CMD, CMD-SHELL or NONE)");
}

// Runs the test in the container: its stdout and stderr go to a pipe (the first 4 KiB are
// kept), and it is killed after the timeout.
HealthResult probe(const ContainerStore& store, const ContainerRecord& rec) {
  const HealthConfig& h = *rec.config.health;
  HealthResult r;
  r.start = now_rfc3339_nanos();
  auto finish = [&](int code, std::string output) {
    r.exit_code = code;
    r.output = std::move(output);
    if (r.output.size() > kHealthOutputBytes) r.output.resize(kHealthOutputBytes);
    r.end = now_rfc3339_nanos();
    return r;
  };
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0)
    return finish(-1, Error::sys("pipe for the health check's output").to_string());
  UniqueFd out_r(p[0]), out_w(p[1]);
  UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  oci::ExecOptions eo;
  eo.id = rec.id;
  eo.args = health_argv(h);
  eo.new_session = true;
  eo.stdio[0] = null.get();
  eo.stdio[1] = out_w.get();
  eo.stdio[2] = out_w.get();
  auto started = oci::start_exec(runtime_context(store), eo);
  out_w.reset();
  if (!started) return finish(-1, started.error().to_string());
  pid_t pid = started->pid;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  ::fcntl(out_r.get(), F_SETFL, O_NONBLOCK);

  std::string output;
  auto drain = [&] {
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out_r.get(), buf, sizeof buf)) > 0) {
      size_t room = kHealthOutputBytes + 1 - std::min(output.size(), kHealthOutputBytes + 1);
      output.append(buf, std::min(static_cast<size_t>(n), room));
    }
    return n == 0;  // EOF
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(h.timeout_ns);
  bool exited = false;
  while (!exited) {
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    struct pollfd fds[2] = {{pidfd.get(), POLLIN, 0}, {out_r ? out_r.get() : -1, POLLIN, 0}};
    int n = ::poll(fds, 2, static_cast<int>(std::min<int64_t>(left.count() + 1, 1 << 30)));
    if (n < 0 && errno != EINTR) break;
    if (fds[1].revents != 0 && drain()) out_r.reset();
    if (fds[0].revents != 0) exited = true;
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return finish(-1, "Health check exceeded timeout (" + go_duration(h.timeout_ns) + ")");
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  // What the test wrote before it ended; a child it left behind holding the pipe does not hold
  // us (the read end is non-blocking).
  if (out_r) drain();
  return finish(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), std::move(output));
}

std::string state_path(const ContainerStore& store, const std::string& id) {
  return store.dir(id) + "/health.json";
}

}  // namespace

Result<std::optional<HealthConfig>> resolve_health(const std::optional<image::Healthcheck>& image,
                                                   const HealthFlags& f) {
  bool any_flag = f.cmd || f.interval || f.timeout || f.start_period || f.retries || f.on_failure;
  if (f.none) {
    if (any_flag) return Error("--no-healthcheck conflicts with the --health-* options");
    return std::optional<HealthConfig>{};
  }
  HealthConfig h;
  if (image) {
    h.test = image->test;
    h.interval_ns = image->interval_ns;
    h.timeout_ns = image->timeout_ns;
    h.start_period_ns = image->start_period_ns;
    h.retries = image->retries;
  }
  if (f.cmd) {
    ASSIGN_OR_RETURN(h.test, test_from_flag(*f.cmd));
  }
  if (h.test.empty() || h.test[0] == "NONE") {
    // No test: the other flags have nothing to apply to (docker ignores them; a typo should
    // not pass silently).
    if (!f.cmd && any_flag) return Error("--health-* options need a health check: give --health-cmd");
    return std::optional<HealthConfig>{};
  }
  TRY(check_test(h.test, f.cmd ? "--health-cmd " + *f.cmd : std::string("the image's Healthcheck.Test")));
  if (f.interval) {
    if (*f.interval == "disable") {
      h.interval_ns = -1;
    } else {
      ASSIGN_OR_RETURN(h.interval_ns, duration_flag("--health-interval", *f.interval, kMinHealthDurationNs));
    }
  }
  if (f.timeout) {
    ASSIGN_OR_RETURN(h.timeout_ns, duration_flag("--health-timeout", *f.timeout, kMinHealthDurationNs));
  }
  if (f.start_period) {
    ASSIGN_OR_RETURN(h.start_period_ns, duration_flag("--health-start-period", *f.start_period, 0));
  }
  if (f.retries) {
    if (*f.retries < 0)
      return Error("--health-retries " + std::to_string(*f.retries) + ": must not be negative");
    h.retries = *f.retries;
  }
  if (f.on_failure) {
    const std::string& a = *f.on_failure;
    if (a != "none" && a != "kill" && a != "restart" && a != "stop")
      return Error("--health-on-failure " + a + ": expected none, kill, restart or stop");
    h.on_failure = a;
  }
  // Zero means "the default" in an image config and in docker's flags.
  if (h.interval_ns == 0) h.interval_ns = kDefaultHealthIntervalNs;
  if (h.interval_ns < 0) h.interval_ns = 0;
  if (h.timeout_ns == 0) h.timeout_ns = kDefaultHealthTimeoutNs;
  if (h.retries == 0) h.retries = kDefaultHealthRetries;
  return std::optional<HealthConfig>{std::move(h)};
}

std::vector<std::string> health_argv(const HealthConfig& h) {
  if (!h.test.empty() && h.test[0] == "CMD-SHELL")
    return {"/bin/sh", "-c", h.test.size() > 1 ? h.test[1] : ""};
  if (!h.test.empty() && h.test[0] == "CMD") return {h.test.begin() + 1, h.test.end()};
  return h.test;
}

void record_health_result(HealthState& s, const HealthConfig& config, HealthResult result,
                          bool in_start_period) {
  if (result.exit_code == 0) {
    s.failing_streak = 0;
    s.status = "healthy";
  } else if (!(in_start_period && s.status == "starting")) {
    // docker: a failure while the container is still starting, within its start period, is
    // only logged.
    s.failing_streak++;
    if (s.failing_streak >= std::max(1, config.retries)) s.status = "unhealthy";
  }
  s.log.push_back(std::move(result));
  if (s.log.size() > kHealthLogEntries) s.log.erase(s.log.begin(), s.log.end() - kHealthLogEntries);
}

std::string health_state_json(const HealthState& s) {
  Json log = Json::array();
  for (const auto& r : s.log)
    log.push_back({{"Start", r.start}, {"End", r.end}, {"ExitCode", r.exit_code}, {"Output", r.output}});
  return Json{{"Status", s.status}, {"FailingStreak", s.failing_streak}, {"Log", log}}.dump(1) + "\n";
}

Result<HealthState> parse_health_state(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) return Error("health state is not a JSON object");
  try {
    HealthState s;
    s.status = j.value("Status", "starting");
    s.failing_streak = j.value("FailingStreak", 0);
    for (const auto& e : j.value("Log", Json::array())) {
      s.log.push_back(
          {e.value("Start", ""), e.value("End", ""), e.value("ExitCode", 0), e.value("Output", "")});
    }
    return s;
  } catch (const std::exception& e) {
    return Error(std::string("health state: ") + e.what());
  }
}

std::optional<HealthState> load_health(const ContainerStore& store, const std::string& id) {
  auto text = fs::read_file(state_path(store, id));
  if (!text) return std::nullopt;
  auto s = parse_health_state(*text);
  if (!s) return std::nullopt;
  return *s;
}

Status reset_health(const ContainerStore& store, const std::string& id) {
  return fs::write_file_atomic(state_path(store, id), health_state_json(HealthState{}), 0600);
}

Result<HealthState> run_health_check(const ContainerStore& store, const std::string& id) {
  ASSIGN_OR_RETURN(ContainerRecord rec, store.load(id));
  if (!rec.config.health) return Error("container " + rec.name + " has no health check defined");
  if (store.state(rec) != RunState::kRunning) return Error("container " + rec.name + " is not running");
  HealthResult result = probe(store, rec);

  // Another check (by hand, or the timer's) may finish at the same time: one at a time here.
  std::string lock_path = store.dir(id) + "/health.lock";
  UniqueFd lock(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!lock) return Error::sys("open " + lock_path);
  while (::flock(lock.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return Error::sys("lock " + lock_path);
  }
  // The container may have stopped (or been started again) while the test ran: a result about
  // a run that is over is not recorded.
  ASSIGN_OR_RETURN(ContainerRecord now, store.load(id));
  if (store.state(now) != RunState::kRunning || now.started != rec.started)
    return Error("container " + rec.name + " stopped while its health check ran");
  HealthState state = load_health(store, id).value_or(HealthState{});
  auto started_s = parse_rfc3339_nanos(rec.started);
  bool in_start_period = started_s && now_ns() - *started_s < rec.config.health->start_period_ns;
  record_health_result(state, *rec.config.health, std::move(result), in_start_period);
  TRY(fs::write_file_atomic(state_path(store, id), health_state_json(state), 0600));
  lock.reset();

  if (state.status == "unhealthy" && state.log.back().exit_code != 0) {
    const std::string& action = rec.config.health->on_failure;
    if (action == "kill") {
      (void)sandbox::kill(store, id, SIGKILL);
    } else if (action == "stop" || action == "restart") {
      TRY_CTX(signal_stop(store, rec, std::chrono::seconds(rec.config.stop_timeout_s),
                          action == "stop" ? AfterStop::kStay : AfterStop::kRestart),
              "--health-on-failure " + action + " of container " + rec.name);
    }
  }
  return state;
}

}  // namespace strata::sandbox
