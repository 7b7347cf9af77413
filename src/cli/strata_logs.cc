#include "cli/strata_logs.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/fs.h"
#include "base/rfc3339.h"
#include "cli/strata_commands.h"
#include "oci/cgroup.h"
#include "oci/state.h"

namespace strata::cli {

namespace {

// One k8s-file line: "<time> <stdout|stderr> <F|P> <text>".
struct LogLine {
  std::string_view time, stream, text;
  bool partial = false;
};

bool parse_line(std::string_view l, LogLine& out) {
  auto a = l.find(' ');
  if (a == std::string_view::npos) return false;
  auto b = l.find(' ', a + 1);
  if (b == std::string_view::npos || b + 2 > l.size()) return false;
  out.time = l.substr(0, a);
  out.stream = l.substr(a + 1, b - a - 1);
  out.partial = l[b + 1] == 'P';
  out.text = b + 3 <= l.size() ? l.substr(b + 3) : std::string_view{};
  return true;
}

void emit(const LogLine& l, const LogOptions& o) {
  FILE* f = l.stream == "stderr" ? stderr : stdout;
  if (o.timestamps) std::fprintf(f, "%.*s ", static_cast<int>(l.time.size()), l.time.data());
  std::fwrite(l.text.data(), 1, l.text.size(), f);
  if (!l.partial) std::fputc('\n', f);
}

}  // namespace

Status print_logs(const sandbox::ContainerStore& store, const std::string& id, const LogOptions& opts) {
  std::string path = store.dir(id) + "/ctr.log";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd && errno != ENOENT) return Error::sys("open " + path);
  std::string pending;
  std::deque<std::string> tail;
  auto in_window = [&](std::string_view line) {
    if (!opts.since_ns && !opts.until_ns) return true;
    auto t = parse_rfc3339_nanos(line.substr(0, line.find(' ')));
    if (!t) return false;
    return (!opts.since_ns || *t >= *opts.since_ns) && (!opts.until_ns || *t <= *opts.until_ns);
  };
  bool first_pass = true;
  auto drain = [&]() -> Status {
    if (!fd) return ok();
    char buf[65536];
    for (;;) {
      ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Error::sys("read " + path);
      if (n == 0) break;
      pending.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string line = pending.substr(start, nl - start);
        if (!in_window(line)) continue;
        if (first_pass && opts.tail >= 0) {
          tail.push_back(std::move(line));
          if (static_cast<int64_t>(tail.size()) > opts.tail) tail.pop_front();
          continue;
        }
        LogLine l;
        if (parse_line(line, l)) emit(l, opts);
      }
      pending.erase(0, start);
    }
    if (first_pass) {
      for (const auto& line : tail) {
        LogLine l;
        if (parse_line(line, l)) emit(l, opts);
      }
      tail.clear();
      first_pass = false;
    }
    std::fflush(stdout);
    std::fflush(stderr);
    return ok();
  };
  TRY(drain());
  if (!opts.follow) return ok();
  for (;;) {
    auto rec = store.load(id);
    bool done = !rec || store.state(*rec) != sandbox::RunState::kRunning;
    if (!fd) fd.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    TRY(drain());
    if (done) return ok();
    // --until in the past of the clock: nothing later can be shown.
    if (opts.until_ns) {
      struct timespec now {};
      ::clock_gettime(CLOCK_REALTIME, &now);
      if (static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec > *opts.until_ns) return ok();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int print_stats(const std::string& root, const std::vector<std::string>& keys, const StatsOptions& opts) {
  auto store = sandbox::ContainerStore::open(root);
  if (!store) return fail(store.error());
  std::vector<std::string> named;
  for (const auto& k : keys) {
    auto id = store->resolve(k);
    if (!id) return fail(id.error());
    named.push_back(*id);
  }
  bool tty = ::isatty(1) == 1;
  // CPU % over the last interval once there is one; the first sample (and --no-stream) is the
  // average since the container started.
  std::map<std::string, std::pair<uint64_t, int64_t>> prev;  // id -> (cpu ns, wall ns)
  for (int round = 0;; ++round) {
    std::vector<std::string> ids = named;
    if (keys.empty()) {  // all running containers, re-listed each round as podman does
      for (const auto& id : store->list_ids()) {
        auto r = store->load(id);
        if (r && store->state(*r) == sandbox::RunState::kRunning) ids.push_back(id);
      }
    }
    nlohmann::json out = nlohmann::json::array();
    std::string table;
    char line[512];
    if (opts.format != "json") {
      std::snprintf(line, sizeof line, "%-14s %-28s %-8s %-22s %-8s %s\n", "ID", "NAME", "CPU %",
                    "MEM USAGE / LIMIT", "MEM %", "PIDS");
      table += line;
    }
    size_t running = 0;
    for (const auto& id : ids) {
      auto rec = store->load(id);
      if (!rec) return fail(rec.error());
      if (store->state(*rec) != sandbox::RunState::kRunning) {
        if (round == 0) return fail(Error("container " + rec->name + " is not running"));
        continue;  // it stopped while streaming: it leaves the table
      }
      auto st = oci::StateStore(store->oci_root()).load(id);
      if (!st) continue;  // gone between the two reads
      auto cg = oci::open_cgroup_manager(st->cgroup_version, st->cgroup_paths, st->cgroup_skipped);
      auto s = cg->stats();
      if (!s) {
        if (round == 0) return fail(s.error().context("stats of container " + rec->name));
        continue;
      }
      ++running;
      struct timespec ts {};
      ::clock_gettime(CLOCK_REALTIME, &ts);
      int64_t now_ns = static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
      double cpu;
      if (auto p = prev.find(id); p != prev.end() && now_ns > p->second.second) {
        cpu = static_cast<double>(s->cpu_usage_ns - std::min(s->cpu_usage_ns, p->second.first)) /
              static_cast<double>(now_ns - p->second.second) * 100.0;
      } else {
        int64_t now = ts.tv_sec;
        double up = std::max(1.0, static_cast<double>(now - parse_rfc3339(rec->started).value_or(now)));
        cpu = static_cast<double>(s->cpu_usage_ns) / 1e9 / up * 100.0;
      }
      prev[id] = {s->cpu_usage_ns, now_ns};
      // cgroup v1 reports "no limit" as a huge page-aligned number.
      bool limited = s->memory_limit > 0 && s->memory_limit < (1ULL << 62);
      double mem_pct =
          limited ? 100.0 * static_cast<double>(s->memory_usage) / static_cast<double>(s->memory_limit) : 0;
      if (opts.format == "json") {
        out.push_back({{"id", id},
                       {"name", rec->name},
                       {"cpu_percent", cpu},
                       {"mem_usage", s->memory_usage},
                       {"mem_limit", limited ? s->memory_limit : 0},
                       {"mem_percent", mem_pct},
                       {"pids", s->pids_current}});
        continue;
      }
      auto mib = [](uint64_t b) { return std::to_string(b / (1024 * 1024)) + "MiB"; };
      std::string mem = mib(s->memory_usage) + " / " + (limited ? mib(s->memory_limit) : std::string("unlimited"));
      std::snprintf(line, sizeof line, "%-14s %-28s %-8.2f %-22s %-8.2f %llu\n", id.substr(0, 12).c_str(),
                    rec->name.c_str(), cpu, mem.c_str(), mem_pct, static_cast<unsigned long long>(s->pids_current));
      table += line;
    }
    // Named containers that all stopped end the stream; with none named, it goes on (podman).
    if (round > 0 && !keys.empty() && running == 0) return 0;
    if (opts.stream && tty) std::fputs("\033[2J\033[H", stdout);  // a fresh screen each round
    if (opts.format == "json") {
      std::printf("%s\n", out.dump(4).c_str());
    } else {
      std::fputs(table.c_str(), stdout);
    }
    std::fflush(stdout);
    if (!opts.stream) return 0;
    std::this_thread::sleep_for(std::chrono::milliseconds(opts.interval_ms));
  }
}

}  // namespace strata::cli
