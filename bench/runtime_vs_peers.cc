// runtime_vs_peers: strata-runtime against crun and runc on one host, in one run (STYLE.md section 13).
//
// What it measures, for /bin/true in one busybox bundle (the config.json is generated once per
// scenario and is the same file for every runtime):
//   (a) `run`: wall time of one `RUNTIME run` from spawn to exit (create, start, wait, delete).
//   (b) create+start+delete with a network namespace and a 64 MiB memory limit: the sum of the
//       wall times of `create`, `start` and `delete`; the wait for /bin/true to exit between
//       start and delete is not counted (each phase is also reported on its own).
//   (c) throughput: K back-to-back `run`s, total wall time, reported as containers per second.
//   CPU: user+system time of each invocation's process tree, from the same wait4() rusage; it is
//   much less disturbed by other load on the host than wall time, so it separates "strata does
//   more work" from "strata waits longer".
//   Peak RSS: ru_maxrss from wait4() of each invocation, i.e. the largest resident set of any
//   process in the tree it reaped (the wrapper, the runtime, its helpers, and for `run` the
//   container's /bin/true); the wrapper-only rows show the floor that unshare/sh set.
//
// How: every invocation goes through one wrapper shape,
//   unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh RUNTIME --root DIR ...
// because crun refuses this host's hybrid cgroup layout otherwise (the machines' ENVIRONMENT.md),
// and a comparison is only fair if all pay the same wrapper. Each runtime has its own --root under
// one temporary directory in --state-parent (default /run, where runc and crun keep their state by
// default; its filesystem matters, see docs/benchmarks.md). After warm-ups the runtimes alternate
// within each iteration, in an order that cycles through every permutation (iteration_order()),
// so the noise of a shared machine and the state one runtime leaves for the next hit them alike.
// /dev/null is checked after every invocation (crun 1.8.1 has been seen to chown it) and restored
// to root:root 0666. The bench is a child subreaper so that a created container's init, orphaned
// when `create` exits, is reparented here and its exit can be waited for.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "base/fs.h"
#include "base/strings.h"

extern char** environ;

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;
using OJson = nlohmann::ordered_json;

constexpr const char* kWrapperScript = "umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$@\"";
constexpr int64_t kMemoryLimit = int64_t{64} << 20;
constexpr int kExitWaitMs = 10000;

volatile sig_atomic_t g_interrupted = 0;

struct Options {
  std::string rootfs;
  std::string strata;
  std::vector<std::string> runtimes = {"strata", "crun", "runc"};
  int iterations = 30;
  int warmup = 2;
  int burst = 20;  // (c): containers per round
  int rounds = 5;  // (c): rounds per runtime
  std::string markdown;
  std::string write_bundles;          // write the two bundles there and exit (to profile one runtime by hand)
  std::string state_parent = "/run";  // where the temporary directory with the --root dirs is made
  std::string command_line;
};

// One runtime under test and everything measured for it.
struct Runtime {
  std::string name;                               // "strata", "crun", "runc"
  std::string label;                              // "strata-runtime", "crun", "runc"
  std::string path;                               // absolute path of the binary
  std::string version;                            // first line of --version
  std::string root;                               // its --root state directory
  std::map<std::string, std::vector<double>> ms;  // samples by key: "a", "a.cpu", "b.create", "c" (a rate)...
  std::map<std::string, std::vector<long>> rss_kb;
  std::map<std::string, std::string> errors;  // scenario -> first error, exactly as printed
  std::vector<std::string> live_ids;          // containers that may still exist
  int devnull_fixes = 0;
  int stray_dirs_removed = 0;  // see remove_unified_leftovers()
  int seq = 0;
};

struct Invocation {
  double ms = 0;
  double cpu_ms = 0;  // user + system time of the reaped tree
  long maxrss_kb = 0;
  int status = 0;
  std::string output;  // stdout + stderr
  bool ok() const { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }
  std::string describe() const {
    std::string s = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                      : "killed by signal " + std::to_string(WTERMSIG(status));
    std::string out(str::trim(output));
    std::replace(out.begin(), out.end(), '\n', ' ');  // one line, for the table's failure list
    return out.empty() ? s : s + ": " + out;
  }
};

struct Stats {
  size_t n = 0;
  double median = 0, p10 = 0, p90 = 0, min = 0, max = 0;
};

// Linear-interpolated percentiles of a sample.
Stats stats_of(std::vector<double> v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    double idx = p * static_cast<double>(v.size() - 1);
    auto lo = static_cast<size_t>(std::floor(idx));
    size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (idx - static_cast<double>(lo));
  };
  s.median = pct(0.5);
  s.p10 = pct(0.1);
  s.p90 = pct(0.9);
  s.min = v.front();
  s.max = v.back();
  return s;
}

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

// ---- process helpers ------------------------------------------------------------------------

std::string read_fd_all(int fd) {
  std::string out;
  char buf[4096];
  ::lseek(fd, 0, SEEK_SET);
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

// Spawns argv (PATH lookup) with stdin /dev/null and stdout+stderr captured, waits with wait4.
Invocation spawn_and_wait(const std::vector<std::string>& argv) {
  Invocation inv;
  UniqueFd out(::memfd_create("runtime_vs_peers-out", MFD_CLOEXEC));
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out.get(), 1);
  posix_spawn_file_actions_adddup2(&fa, out.get(), 2);
  std::vector<char*> av;
  av.reserve(argv.size() + 1);
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  pid_t pid = -1;
  auto t0 = Clock::now();
  int rc = ::posix_spawnp(&pid, av[0], &fa, nullptr, av.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    inv.status = 127 << 8;
    inv.output = std::string("spawn ") + argv[0] + ": " + errno_string(rc);
    return inv;
  }
  struct rusage ru {};
  while (::wait4(pid, &inv.status, 0, &ru) < 0 && errno == EINTR) {
  }
  inv.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  inv.maxrss_kb = ru.ru_maxrss;
  auto tv_ms = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) * 1e3 + static_cast<double>(tv.tv_usec) / 1e3;
  };
  inv.cpu_ms = tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime);
  inv.output = read_fd_all(out.get());
  return inv;
}

// Runs a command directly (no wrapper) and returns the first line of its output.
std::string first_line_of(const std::vector<std::string>& argv) {
  Invocation inv = spawn_and_wait(argv);
  std::string out = inv.output.substr(0, inv.output.find('\n'));
  return std::string(str::trim(out));
}

// Reaps orphans reparented to us (we are a subreaper) that nobody else waits for.
void reap_strays() {
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
}

// crun 1.8.1 has been seen to chown the host's /dev/null. Puts it back to a root:root 0666 char
// device 1:3; returns true when it had to.
bool check_dev_null() {
  struct stat st {};
  bool bad = ::stat("/dev/null", &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(1, 3);
  if (bad) {
    std::fprintf(stderr, "runtime_vs_peers: /dev/null is not the 1:3 device any more; recreating it\n");
    ::unlink("/dev/null");
    if (::mknod("/dev/null", S_IFCHR | 0666, makedev(1, 3)) != 0) std::perror("mknod /dev/null");
    ::chmod("/dev/null", 0666);
    return true;
  }
  bool fixed = false;
  if (st.st_uid != 0 || st.st_gid != 0) {
    std::fprintf(stderr, "runtime_vs_peers: /dev/null owner was %u:%u; restoring root:root\n", st.st_uid,
                 st.st_gid);
    if (::chown("/dev/null", 0, 0) != 0) std::perror("chown /dev/null");
    fixed = true;
  }
  if ((st.st_mode & 07777) != 0666) {
    std::fprintf(stderr, "runtime_vs_peers: /dev/null mode was %04o; restoring 0666\n", st.st_mode & 07777);
    if (::chmod("/dev/null", 0666) != 0) std::perror("chmod /dev/null");
    fixed = true;
  }
  return fixed;
}

// `unshare -m sh -c SCRIPT sh`: the wrapper, to which the command is appended.
std::vector<std::string> wrapper_argv() { return {"unshare", "-m", "sh", "-c", kWrapperScript, "sh"}; }

// Every runtime invocation: the same wrapper, the runtime's own --root, then `args`.
Invocation invoke(Runtime& rt, const std::vector<std::string>& args) {
  std::vector<std::string> argv = wrapper_argv();
  argv.insert(argv.end(), {rt.path, "--root", rt.root});
  argv.insert(argv.end(), args.begin(), args.end());
  Invocation inv = spawn_and_wait(argv);
  if (check_dev_null()) ++rt.devnull_fixes;
  return inv;
}

std::string next_id(Runtime& rt, const std::string& scenario) {
  return "rvp" + std::to_string(::getpid()) + "-" + rt.name + "-" + scenario + "-" + std::to_string(rt.seq++);
}

void forget_id(Runtime& rt, const std::string& id) { std::erase(rt.live_ids, id); }

// ---- the bundle ----------------------------------------------------------------------------

// runc spec's template (libcontainer/specconv), with: /bin/true, no terminal, root.path at the
// shared busybox rootfs (read-only), no cgroup namespace or mount, and per scenario a network
// namespace and a memory limit.
std::string bundle_config(const std::string& rootfs, bool netns, bool memory_limit) {
  std::vector<std::string> caps = {"CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  auto mount = [](const char* dst, const char* type, const char* src, const std::vector<std::string>& opts) {
    OJson m = {{"destination", dst}, {"type", type}, {"source", src}};
    if (!opts.empty()) m["options"] = opts;
    return m;
  };
  OJson process = {
      {"terminal", false},
      {"user", {{"uid", 0}, {"gid", 0}}},
      {"args", {"/bin/true"}},
      {"env", {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"}},
      {"cwd", "/"},
      {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"ambient", caps}}},
      {"rlimits", OJson::array({{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}})},
      {"noNewPrivileges", true},
  };
  OJson mounts = OJson::array({
      mount("/proc", "proc", "proc", {}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
  });
  OJson namespaces = OJson::array();
  for (const char* ns : {"pid", "ipc", "uts", "mount"}) namespaces.push_back({{"type", ns}});
  if (netns) namespaces.push_back({{"type", "network"}});
  OJson resources = {{"devices", OJson::array({{{"allow", false}, {"access", "rwm"}}})}};
  if (memory_limit) resources["memory"] = {{"limit", kMemoryLimit}};
  OJson linux = {
      {"resources", std::move(resources)},
      {"namespaces", std::move(namespaces)},
      {"maskedPaths",
       {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
        "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}},
      {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
  OJson spec = {
      {"ociVersion", "1.0.2-dev"},
      {"process", std::move(process)},
      {"root", {{"path", rootfs}, {"readonly", true}}},
      {"hostname", "bench"},
      {"mounts", std::move(mounts)},
      {"linux", std::move(linux)},
  };
  return spec.dump(2) + "\n";
}

// Writes DIR/bundle-a (scenario a and c) and DIR/bundle-b (scenario b).
Status write_bundles(const std::string& dir, const std::string& rootfs) {
  for (const auto& [name, net_mem] : {std::pair{"bundle-a", false}, std::pair{"bundle-b", true}}) {
    std::string b = fs::join(dir, name);
    TRY(fs::mkdir_p(b));
    TRY(fs::write_file_atomic(fs::join(b, "config.json"), bundle_config(rootfs, net_mem, net_mem)));
  }
  return ok();
}

// ---- scenarios ----------------------------------------------------------------------------

// Records a runtime's first failure in a scenario; the runtime sits out the rest of it.
void fail(Runtime& rt, const std::string& scenario, const std::string& what) {
  if (rt.errors.count(scenario)) return;
  rt.errors[scenario] = what;
  std::fprintf(stderr, "runtime_vs_peers: %s failed in %s: %s\n", rt.label.c_str(), scenario.c_str(),
               what.c_str());
}

bool active(const Runtime& rt, const std::string& scenario) { return !rt.errors.count(scenario); }

// The order of iteration i: every runtime once, in the i-th permutation (lexicographic, cycling).
// Not a rotation: rotating a fixed cycle keeps each runtime behind the same predecessor, and what
// the predecessor leaves behind matters. On cgroup v1 the first cgroup.procs write waits for an RCU
// grace period unless another migration happened within about one grace period before, so a
// runtime that always follows a slow one waits more often (measured here: 0.7-0.9 of the creates
// of the runtime behind crun waited, 0.1-0.4 of crun's behind a quicker one; see docs/benchmarks.md).
// Cycling through all n! orders gives each runtime every predecessor and every position equally.
std::vector<Runtime*> iteration_order(std::vector<Runtime>& rts, int i) {
  std::vector<size_t> idx(rts.size());
  for (size_t k = 0; k < idx.size(); ++k) idx[k] = k;
  size_t perms = 1;
  for (size_t k = 2; k <= idx.size() && perms < 1000000; ++k) perms *= k;
  for (size_t step = static_cast<size_t>(i) % perms; step > 0; --step)
    std::next_permutation(idx.begin(), idx.end());
  std::vector<Runtime*> order;
  order.reserve(idx.size());
  for (size_t k : idx) order.push_back(&rts[k]);
  return order;
}

// (a): one `run`; returns false on failure.
bool run_once(Runtime& rt, const std::string& bundle, bool record) {
  std::string id = next_id(rt, "a");
  rt.live_ids.push_back(id);
  Invocation inv = invoke(rt, {"run", "--bundle", bundle, id});
  if (!inv.ok()) {
    fail(rt, "a", "`run`: " + inv.describe());
    return false;
  }
  forget_id(rt, id);
  if (record) {
    rt.ms["a"].push_back(inv.ms);
    rt.ms["a.cpu"].push_back(inv.cpu_ms);
    rt.rss_kb["a"].push_back(inv.maxrss_kb);
  }
  return true;
}

// Waits for a created-and-started container's init to exit; it is our child (we are a subreaper).
bool wait_exit(pid_t pid) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (pidfd) {
    pollfd p{pidfd.get(), POLLIN, 0};
    if (::poll(&p, 1, kExitWaitMs) != 1) return false;
  }
  ::waitpid(pid, nullptr, 0);
  return true;
}

// (b): create, start, wait for /bin/true to exit, delete.
bool lifecycle_once(Runtime& rt, const std::string& bundle, const std::string& tmp, bool record) {
  std::string id = next_id(rt, "b");
  std::string pid_file = fs::join(tmp, id + ".pid");
  rt.live_ids.push_back(id);
  Invocation c = invoke(rt, {"create", "--bundle", bundle, "--pid-file", pid_file, id});
  if (!c.ok()) {
    fail(rt, "b", "`create`: " + c.describe());
    return false;
  }
  auto text = fs::read_file(pid_file);
  std::optional<int64_t> pid = text ? str::parse_int(str::trim(*text)) : std::nullopt;
  ::unlink(pid_file.c_str());
  if (!pid || *pid <= 0) {
    fail(rt, "b", "`create --pid-file` wrote no pid");
    return false;
  }
  Invocation s = invoke(rt, {"start", id});
  if (!s.ok()) {
    fail(rt, "b", "`start`: " + s.describe());
    return false;
  }
  if (!wait_exit(static_cast<pid_t>(*pid))) {
    fail(rt, "b", "the container's /bin/true did not exit within " + std::to_string(kExitWaitMs) + " ms");
    return false;
  }
  Invocation d = invoke(rt, {"delete", id});
  if (!d.ok()) {
    fail(rt, "b", "`delete`: " + d.describe());
    return false;
  }
  forget_id(rt, id);
  if (record) {
    rt.ms["b"].push_back(c.ms + s.ms + d.ms);
    rt.ms["b.create"].push_back(c.ms);
    rt.ms["b.start"].push_back(s.ms);
    rt.ms["b.delete"].push_back(d.ms);
    rt.ms["b.cpu"].push_back(c.cpu_ms + s.cpu_ms + d.cpu_ms);
    rt.rss_kb["b"].push_back(std::max({c.maxrss_kb, s.maxrss_kb, d.maxrss_kb}));
  }
  return true;
}

// (c): `burst` back-to-back runs; records containers per second.
bool burst_once(Runtime& rt, const std::string& bundle, int burst) {
  auto t0 = Clock::now();
  for (int k = 0; k < burst; ++k) {
    std::string id = next_id(rt, "c");
    rt.live_ids.push_back(id);
    Invocation inv = invoke(rt, {"run", "--bundle", bundle, id});
    if (!inv.ok()) {
      fail(rt, "c", "`run`: " + inv.describe());
      return false;
    }
    forget_id(rt, id);
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  rt.ms["c"].push_back(static_cast<double>(burst) / s);  // a rate, not milliseconds
  return true;
}

// The wrapper alone, with /bin/true in place of a runtime: the floor every runtime pays.
struct Baseline {
  std::vector<double> ms;
  std::vector<double> cpu_ms;
  std::vector<long> rss_kb;
};

void baseline_once(Baseline& b) {
  std::vector<std::string> argv = wrapper_argv();
  argv.emplace_back("/bin/true");
  Invocation inv = spawn_and_wait(argv);
  if (inv.ok()) {
    b.ms.push_back(inv.ms);
    b.cpu_ms.push_back(inv.cpu_ms);
    b.rss_kb.push_back(inv.maxrss_kb);
  }
}

// crun 1.8.1, seeing /sys/fs/cgroup/unified as a plain directory once the wrapper has unmounted
// the cgroup2 hierarchy there, makes UNIFIED/<id>/cgroup.procs in the /sys/fs/cgroup tmpfs, which
// the host's mount then hides, and never removes it. Removes our own ids' entries (the ids of this
// run start with `prefix`), only when that directory really is tmpfs; returns how many it removed.
int remove_unified_leftovers(const std::string& prefix) {
  const std::string script =
      "umount /sys/fs/cgroup/unified 2>/dev/null || exit 0; "
      "[ \"$(stat -f -c %T /sys/fs/cgroup/unified)\" = tmpfs ] || exit 0; "
      "cd /sys/fs/cgroup/unified || exit 0; n=0; "
      "for d in \"$1\"*; do if [ -d \"$d\" ]; then rm -rf -- \"$d\" && n=$((n+1)); fi; done; echo $n";
  Invocation inv = spawn_and_wait({"unshare", "-m", "sh", "-c", script, "sh", prefix});
  auto n = str::parse_int(str::trim(inv.output));
  return inv.ok() && n ? static_cast<int>(*n) : 0;
}

// Deletes whatever a runtime may have left (failed runs, an interrupt), then its state directory.
void cleanup(Runtime& rt) {
  std::vector<std::string> ids = rt.live_ids;
  if (fs::is_dir(rt.root)) {
    for (const auto& e : fs::list_dir(rt.root)) {
      if (fs::is_dir(fs::join(rt.root, e)) && std::find(ids.begin(), ids.end(), e) == ids.end())
        ids.push_back(e);
    }
  }
  for (const auto& id : ids) {
    Invocation inv = invoke(rt, {"delete", "--force", id});
    if (!inv.ok() && inv.output.find("not exist") == std::string::npos &&
        inv.output.find("no such") == std::string::npos && inv.output.find("No such") == std::string::npos) {
      std::fprintf(stderr, "runtime_vs_peers: cleanup: %s delete --force %s: %s\n", rt.label.c_str(),
                   id.c_str(), inv.describe().c_str());
    }
  }
  rt.live_ids.clear();
  reap_strays();
  rt.stray_dirs_removed = remove_unified_leftovers("rvp" + std::to_string(::getpid()) + "-" + rt.name + "-");
}

// ---- environment ---------------------------------------------------------------------------

std::string exe_dir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

std::string find_on_path(const std::string& name) {
  const char* env = std::getenv("PATH");
  std::string path = env != nullptr ? env : "";
  path += ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& dir : str::split(path, ':')) {
    if (dir.empty()) continue;
    std::string p = fs::join(dir, name);
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

// The first existing candidate, made absolute; or the first one when none exists.
std::string first_existing(const std::vector<std::string>& candidates) {
  for (const auto& c : candidates) {
    if (fs::exists(c)) return fs::absolute(c);
  }
  return fs::absolute(candidates.front());
}

std::string machine_info() {
  struct utsname u {};
  ::uname(&u);
  std::string model;
  if (auto cpu = fs::read_file("/proc/cpuinfo")) {
    for (const auto& line : str::split(*cpu, '\n')) {
      if (str::starts_with(line, "model name")) {
        model = std::string(str::trim(line.substr(line.find(':') + 1)));
        break;
      }
    }
  }
  return std::string("Linux ") + u.release + " " + u.machine + ", " +
         std::to_string(::sysconf(_SC_NPROCESSORS_ONLN)) + " CPUs" +
         (model.empty() ? "" : " (" + model + ")");
}

// "ext4 (/dev/vda)" for the filesystem holding `path`, from /proc/self/mountinfo (longest mount point
// prefix).
std::string fs_type_of(const std::string& path) {
  std::string abs = fs::absolute(path), best, type, source;
  auto info = fs::read_file("/proc/self/mountinfo");
  if (!info) return "?";
  for (const auto& line : str::split(*info, '\n')) {
    auto f = str::split(line, ' ');
    auto dash = std::find(f.begin(), f.end(), "-");
    if (f.size() < 5 || dash == f.end() || dash + 2 >= f.end()) continue;
    const std::string& mp = f[4];
    bool under = abs == mp || mp == "/" || str::starts_with(abs, mp + "/");
    if (under && mp.size() >= best.size()) {
      best = mp;
      type = *(dash + 1);
      source = *(dash + 2);
    }
  }
  return type + " (" + source + ")";
}

std::string loadavg() {
  auto r = fs::read_file("/proc/loadavg");
  if (!r) return "?";
  auto parts = str::split(*r, ' ');
  return parts.size() >= 3 ? parts[0] + " " + parts[1] + " " + parts[2] : "?";
}

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return buf;
}

// ---- report --------------------------------------------------------------------------------

std::string cell_ms(const Runtime& rt, const std::string& key, const std::string& scenario) {
  if (!active(rt, scenario)) return "failed";
  auto it = rt.ms.find(key);
  if (it == rt.ms.end() || it->second.empty()) return "-";
  Stats s = stats_of(it->second);
  return fmt("%.1f", s.median) + " (" + fmt("%.1f", s.p10) + "–" + fmt("%.1f", s.p90) + ")";
}

std::optional<double> median_of(const Runtime* rt, const std::string& key, const std::string& scenario) {
  if (rt == nullptr || !active(*rt, scenario)) return std::nullopt;
  auto it = rt->ms.find(key);
  if (it == rt->ms.end() || it->second.empty()) return std::nullopt;
  return stats_of(it->second).median;
}

std::string ratio_cell(std::optional<double> a, std::optional<double> b) {
  if (!a || !b || *b == 0) return "-";
  return fmt("%.2f", *a / *b) + "x";
}

std::string kib_to_mib(double kb) { return fmt("%.1f", kb / 1024.0); }

// "| a | b | c |\n"
std::string table_row(const std::vector<std::string>& cells) {
  std::string row = "|";
  for (const auto& c : cells) row += " " + c + " |";
  return row + "\n";
}

std::string report(std::vector<Runtime>& rts, const Baseline& base, const Options& o,
                   const std::string& started, const std::string& load_start, const std::string& load_end) {
  Runtime* strata = nullptr;
  Runtime* crun = nullptr;
  Runtime* runc = nullptr;
  for (auto& rt : rts) {
    if (rt.name == "strata") strata = &rt;
    if (rt.name == "crun") crun = &rt;
    if (rt.name == "runc") runc = &rt;
  }
  std::string md;
  md += "### runtime_vs_peers, " + started + "\n\n";
  md += "- host: " + machine_info() + "; load average (1/5/15 min) " + load_start + " at start, " + load_end +
        " at end\n";
  md += "- runtimes:";
  for (const auto& rt : rts) md += " " + rt.label + " (`" + rt.path + "`, " + rt.version + ");";
  md.back() = '\n';
  md += "- command: `" + o.command_line + "`\n";
  md += "- " + std::to_string(o.iterations) + " measured iterations per runtime for (a) and (b) after " +
        std::to_string(o.warmup) + " warm-up(s); (c) " + std::to_string(o.rounds) + " rounds of " +
        std::to_string(o.burst) +
        " back-to-back runs. Runtimes alternate within every iteration and round, in an order that "
        "cycles through every permutation, so load from other work on the host, and what one runtime "
        "leaves for the next, fall on all of them alike.\n";
  md +=
      "- every invocation: `unshare -m sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec \"$@\"' sh "
      "RUNTIME --root " +
      o.state_parent + "/runtime_vs_peers.*/NAME ...` (" + fs_type_of(o.state_parent) +
      "); the container runs /bin/true from the busybox "
      "rootfs (read-only root; pid, ipc, uts, mount namespaces; proc, dev, devpts, shm, mqueue, sysfs "
      "mounts; "
      "devices cgroup deny-all plus the defaults).\n\n";

  std::vector<std::string> header = {"scenario", "what is measured"};
  for (const auto& rt : rts) header.push_back(rt.label);
  if (strata && crun) header.emplace_back("strata/crun");
  if (strata && runc) header.emplace_back("strata/runc");
  md += table_row(header);
  md += table_row(std::vector<std::string>(header.size(), "---"));
  struct Row {
    std::string key, scenario, name, what;
  };
  const Row rows[] = {
      {"a", "a", "(a) run", "wall time of one `run` (ms), spawn of the wrapper to its exit"},
      {"a.cpu", "a", "(a) run, CPU", "user+system CPU time of that process tree (ms)"},
      {"b", "b", "(b) create+start+delete",
       "`create` + `start` + `delete` wall times summed (ms); netns and 64 MiB memory limit; the wait for "
       "/bin/true to exit between start and delete is not counted"},
      {"b.create", "b", "(b) create", "`create` alone (ms)"},
      {"b.start", "b", "(b) start", "`start` alone (ms)"},
      {"b.delete", "b", "(b) delete", "`delete` of the stopped container alone (ms)"},
      {"b.cpu", "b", "(b) CPU", "user+system CPU time of the three process trees (ms)"},
      {"c", "c", "(c) back-to-back run",
       "containers per second over " + std::to_string(o.burst) + " sequential `run`s (higher is better)"},
  };
  for (const auto& r : rows) {
    std::vector<std::string> cells = {r.name, r.what};
    for (const auto& rt : rts) cells.push_back(cell_ms(rt, r.key, r.scenario));
    auto s = median_of(strata, r.key, r.scenario);
    if (strata && crun) cells.push_back(ratio_cell(s, median_of(crun, r.key, r.scenario)));
    if (strata && runc) cells.push_back(ratio_cell(s, median_of(runc, r.key, r.scenario)));
    md += table_row(cells);
  }
  auto wrapper_row = [&](const std::string& name, const std::string& what, const std::vector<double>& v) {
    if (v.empty()) return;
    Stats b = stats_of(v);
    std::vector<std::string> cells(header.size());
    cells[0] = name;
    cells[1] = what;
    // The same floor under every runtime's column: each of them pays it.
    for (size_t i = 0; i < rts.size(); ++i)
      cells[2 + i] = fmt("%.1f", b.median) + " (" + fmt("%.1f", b.p10) + "–" + fmt("%.1f", b.p90) + ")";
    md += table_row(cells);
  };
  wrapper_row(
      "wrapper alone",
      "`unshare -m sh -c ... /bin/true` with no runtime, run beside (a): the floor in every column (ms)",
      base.ms);
  wrapper_row("wrapper alone, CPU", "its user+system CPU time (ms)", base.cpu_ms);
  md +=
      "\nCells: median (p10–p90). Ratios are of medians; for (c) the ratio is of rates, so above 1 is "
      "faster. "
      "CPU time is what wait4 reports for the reaped tree; kernel work done elsewhere (kworkers tearing down "
      "namespaces, RCU) is not in it.\n\n";

  md += "Targets (strata-runtime median at most 0.8x crun's, same run):\n";
  for (const char* key : {"a", "b"}) {
    auto s = median_of(strata, key, key);
    auto c = median_of(crun, key, key);
    md += std::string("- (") + key + "): ";
    if (s && c) {
      double r = *s / *c;
      md += fmt("%.2f", r) + "x crun: " + (r <= 0.8 ? "**met**" : "**missed**") + "\n";
    } else {
      md += "not measured (a runtime failed or was not selected)\n";
    }
  }

  md +=
      "\nPeak RSS (ru_maxrss from wait4 of each invocation, MiB; median (max)). It is the largest resident "
      "set "
      "of any process the wrapper's tree reaped: unshare and sh (exec'd into the runtime, so their peak "
      "carries "
      "over; see the wrapper row), the runtime, its helpers (runc's `runc init`), and for `run` the "
      "container's "
      "/bin/true; for (b) the largest of create, start and delete.\n\n";
  md += table_row({"runtime", "(a) run", "(b) create/start/delete"});
  md += table_row({"---", "---", "---"});
  auto rss_cell = [](const std::vector<long>* kb) -> std::string {
    if (kb == nullptr || kb->empty()) return "-";
    Stats s = stats_of(std::vector<double>(kb->begin(), kb->end()));
    return kib_to_mib(s.median) + " (" + kib_to_mib(s.max) + ")";
  };
  for (const auto& rt : rts) {
    auto a = rt.rss_kb.find("a");
    auto b = rt.rss_kb.find("b");
    md += table_row({rt.label, rss_cell(a == rt.rss_kb.end() ? nullptr : &a->second),
                     rss_cell(b == rt.rss_kb.end() ? nullptr : &b->second)});
  }
  if (!base.rss_kb.empty()) md += table_row({"wrapper alone", rss_cell(&base.rss_kb), ""});

  md += "\n";
  for (const auto& rt : rts) {
    md += "- " + rt.label + ": /dev/null restored " + std::to_string(rt.devnull_fixes) + " time(s)";
    if (rt.stray_dirs_removed > 0) {
      md +=
          "; left " + std::to_string(rt.stray_dirs_removed) +
          " directories (DIR/cgroup.procs) in the tmpfs under the unmounted /sys/fs/cgroup/unified, removed "
          "afterwards";
    }
    if (rt.errors.empty()) {
      md += "; no failures\n";
    } else {
      md += "; failures:\n";
      for (const auto& [scenario, err] : rt.errors) {
        md += "  - (" + scenario + ") ";
        md += err;
        md += "\n";
      }
    }
  }
  return md;
}

void on_signal(int) { g_interrupted = 1; }

int usage(const char* argv0, int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: %s [--rootfs DIR] [--strata PATH] [--runtimes strata,crun,runc]\n"
               "    [--iterations N] [--warmup N] [--burst K] [--rounds R] [--state-parent DIR]\n"
               "    [--markdown FILE] [--write-bundles DIR]\n"
               "Runs /bin/true in one busybox bundle with each runtime, alternating, every invocation\n"
               "through the same `unshare -m` wrapper, and prints a markdown table of medians and ratios.\n"
               "Defaults: --strata and --rootfs from the build directory this program is in\n"
               "(BUILD/bin/strata-runtime, BUILD/rootfs), else build/... under the current directory;\n"
               "--iterations 30 --warmup 2 --burst 20 --rounds 5; --state-parent /run (where runc and\n"
               "crun keep their state by default; each --root is DIR/runtime_vs_peers.XXXXXX/NAME).\n"
               "--write-bundles writes bundle-a ((a), (c)) and bundle-b ((b)) to DIR and exits, to\n"
               "profile one runtime by hand. A --runtimes entry LABEL=PATH adds another build (A/B).\n"
               "Must run as root.\n",
               argv0);
  return code;
}

int main_impl(int argc, char** argv) {
  Options o;
  o.command_line = argv[0];
  for (int i = 1; i < argc; ++i) o.command_line += std::string(" ") + argv[i];
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) return std::nullopt;
      return std::string(argv[++i]);
    };
    auto int_value = [&](int& out) {
      auto v = value();
      auto n = v ? str::parse_int(*v) : std::nullopt;
      if (!n || *n < 0) return false;
      out = static_cast<int>(*n);
      return true;
    };
    bool good = true;
    if (a == "-h" || a == "--help") return usage(argv[0], 0);
    if (a == "--rootfs") {
      auto v = value();
      good = v.has_value();
      if (good) o.rootfs = *v;
    } else if (a == "--strata") {
      auto v = value();
      good = v.has_value();
      if (good) o.strata = *v;
    } else if (a == "--markdown") {
      auto v = value();
      good = v.has_value();
      if (good) o.markdown = *v;
    } else if (a == "--state-parent") {
      auto v = value();
      good = v.has_value();
      if (good) o.state_parent = *v;
    } else if (a == "--write-bundles") {
      auto v = value();
      good = v.has_value();
      if (good) o.write_bundles = *v;
    } else if (a == "--runtimes") {
      auto v = value();
      good = v.has_value();
      if (good) o.runtimes = str::split(*v, ',');
    } else if (a == "--iterations") {
      good = int_value(o.iterations) && o.iterations > 0;
    } else if (a == "--warmup") {
      good = int_value(o.warmup);
    } else if (a == "--burst") {
      good = int_value(o.burst) && o.burst > 0;
    } else if (a == "--rounds") {
      good = int_value(o.rounds);
    } else {
      good = false;
    }
    if (!good) {
      std::fprintf(stderr, "runtime_vs_peers: bad or incomplete option %s\n", a.c_str());
      return usage(argv[0], 2);
    }
  }
  if (::geteuid() != 0) {
    std::fprintf(stderr, "runtime_vs_peers: must run as root (the runtimes make namespaces and cgroups)\n");
    return 2;
  }

  // Defaults: this program lives in BUILD/bin; fall back to ./build for `make bench` from the repo root.
  std::string here = exe_dir();
  std::string build_dir = here.substr(0, here.rfind('/'));
  if (o.strata.empty())
    o.strata = first_existing({fs::join(here, "strata-runtime"), "build/bin/strata-runtime"});
  if (o.rootfs.empty()) o.rootfs = first_existing({fs::join(build_dir, "rootfs"), "build/rootfs"});
  o.strata = fs::absolute(o.strata);
  o.rootfs = fs::absolute(o.rootfs);
  if (!fs::exists(fs::join(o.rootfs, "bin/true"))) {
    std::fprintf(stderr,
                 "runtime_vs_peers: %s/bin/true missing: build the rootfs (`ninja -C build rootfs`)\n",
                 o.rootfs.c_str());
    return 2;
  }
  if (!o.write_bundles.empty()) {
    Status s = write_bundles(fs::absolute(o.write_bundles), o.rootfs);
    if (!s.ok())
      std::fprintf(stderr, "runtime_vs_peers: --write-bundles: %s\n", s.error().to_string().c_str());
    return s.ok() ? 0 : 1;
  }
  for (const char* tool : {"unshare", "sh"}) {
    if (find_on_path(tool).empty()) {
      std::fprintf(stderr, "runtime_vs_peers: %s not found on PATH\n", tool);
      return 2;
    }
  }

  std::string tmpl = fs::join(fs::absolute(o.state_parent), "runtime_vs_peers.XXXXXX");
  if (::mkdtemp(tmpl.data()) == nullptr) {
    std::fprintf(stderr, "runtime_vs_peers: mkdtemp %s: %s\n", tmpl.c_str(), errno_string(errno).c_str());
    return 2;
  }
  std::string tmp = tmpl;

  std::vector<Runtime> rts;
  for (const auto& name : o.runtimes) {
    Runtime rt;
    rt.name = name;
    if (name == "strata") {
      rt.label = "strata-runtime";
      rt.path = o.strata;
      if (::access(rt.path.c_str(), X_OK) != 0) {
        std::fprintf(stderr, "runtime_vs_peers: %s not executable: build it or pass --strata\n",
                     rt.path.c_str());
        (void)fs::remove_tree(tmp);
        return 2;
      }
    } else if (name == "crun" || name == "runc") {
      rt.label = name;
      rt.path = find_on_path(name);
      if (rt.path.empty()) {
        std::fprintf(stderr, "runtime_vs_peers: %s not on PATH; skipping it (scripts/install-deps.sh)\n",
                     name.c_str());
        continue;
      }
    } else if (auto eq = name.find('='); eq != std::string::npos && eq > 0) {
      // LABEL=PATH: another build (of strata-runtime, say) measured in the same run, A/B style.
      rt.name = rt.label = name.substr(0, eq);
      rt.path = fs::absolute(name.substr(eq + 1));
      bool label_ok = std::all_of(rt.name.begin(), rt.name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
      });
      if (!label_ok || rt.name == "strata" || rt.name == "crun" || rt.name == "runc" ||
          ::access(rt.path.c_str(), X_OK) != 0) {
        std::fprintf(stderr,
                     "runtime_vs_peers: --runtimes %s: want LABEL=PATH with a new [A-Za-z0-9_.-] label "
                     "and an executable PATH\n",
                     name.c_str());
        (void)fs::remove_tree(tmp);
        return 2;
      }
    } else {
      std::fprintf(stderr, "runtime_vs_peers: unknown runtime %s (strata, crun, runc, LABEL=PATH)\n",
                   name.c_str());
      (void)fs::remove_tree(tmp);
      return 2;
    }
    rt.version = first_line_of({rt.path, "--version"});
    rt.root = fs::join(tmp, name);
    if (Status s = fs::mkdir_p(rt.root, 0700); !s.ok()) {
      std::fprintf(stderr, "runtime_vs_peers: %s\n", s.error().to_string().c_str());
      (void)fs::remove_tree(tmp);
      return 2;
    }
    rts.push_back(std::move(rt));
  }
  if (rts.empty()) {
    (void)fs::remove_tree(tmp);
    return 2;
  }

  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  if (check_dev_null())
    std::fprintf(stderr, "runtime_vs_peers: /dev/null was already wrong before the run\n");

  std::string bundle_a = fs::join(tmp, "bundle-a"), bundle_b = fs::join(tmp, "bundle-b");
  if (Status s = write_bundles(tmp, o.rootfs); !s.ok()) {
    std::fprintf(stderr, "runtime_vs_peers: write bundles: %s\n", s.error().to_string().c_str());
    (void)fs::remove_tree(tmp);
    return 2;
  }

  std::string started = utc_now();
  std::string load_start = loadavg();
  Baseline base;
  auto progress = [&](const char* what, int i, int n) {
    std::fprintf(stderr, "\rruntime_vs_peers: %s %d/%d   ", what, i, n);
    if (i == n) std::fputc('\n', stderr);
  };

  // (a) run, end to end.
  for (int i = 0; i < o.warmup + o.iterations && !g_interrupted; ++i) {
    bool record = i >= o.warmup;
    for (Runtime* rt : iteration_order(rts, i)) {
      if (active(*rt, "a")) run_once(*rt, bundle_a, record);
    }
    if (record) baseline_once(base);
    progress("(a) run", i + 1, o.warmup + o.iterations);
  }
  // (b) create + start + delete, network namespace and memory limit.
  for (int i = 0; i < o.warmup + o.iterations && !g_interrupted; ++i) {
    bool record = i >= o.warmup;
    for (Runtime* rt : iteration_order(rts, i)) {
      if (active(*rt, "b")) lifecycle_once(*rt, bundle_b, tmp, record);
    }
    reap_strays();
    progress("(b) create+start+delete", i + 1, o.warmup + o.iterations);
  }
  // (c) back-to-back runs.
  for (int r = 0; r < o.rounds && !g_interrupted; ++r) {
    for (Runtime* rt : iteration_order(rts, r)) {
      if (active(*rt, "c")) burst_once(*rt, bundle_a, o.burst);
    }
    progress("(c) back-to-back", r + 1, o.rounds);
  }
  std::string load_end = loadavg();

  for (auto& rt : rts) cleanup(rt);
  if (Status s = fs::remove_tree(tmp); !s.ok()) {
    std::fprintf(stderr, "runtime_vs_peers: remove %s: %s\n", tmp.c_str(), s.error().to_string().c_str());
  }
  if (g_interrupted) {
    std::fprintf(stderr, "runtime_vs_peers: interrupted; cleaned up\n");
    return 130;
  }

  std::string md = report(rts, base, o, started, load_start, load_end);
  std::fputs(md.c_str(), stdout);
  if (!o.markdown.empty()) {
    if (Status s = fs::write_file_atomic(o.markdown, md); !s.ok()) {
      std::fprintf(stderr, "runtime_vs_peers: --markdown: %s\n", s.error().to_string().c_str());
      return 1;
    }
  }
  bool any_failed = std::any_of(rts.begin(), rts.end(), [](const Runtime& rt) { return !rt.errors.empty(); });
  return any_failed ? 1 : 0;
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) { return strata::bench::main_impl(argc, argv); }
