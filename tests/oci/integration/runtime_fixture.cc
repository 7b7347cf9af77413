// The integration fixture (runtime_fixture.h): subprocesses, bundles and the residue check.
#include "runtime_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace strata::oci::it {

namespace stdfs = std::filesystem;

const std::string RuntimeTest::kRuntime = STRATA_RUNTIME_BIN;
const std::string RuntimeTest::kRootfs = STRATA_ROOTFS_DIR;

namespace {

std::atomic<int> g_output_counter{0};

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Forks and execs argv with stdout/stderr in files and the options applied. Returns the pid.
pid_t spawn(const std::vector<std::string>& argv, const RunOptions& opts, const std::string& tag,
            const std::string& stdin_path, const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> env = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                  "STRATA_IT_TAG=" + tag};
  env.insert(env.end(), opts.env.begin(), opts.env.end());
  std::vector<char*> av, ev;
  for (const auto& a : argv) av.push_back(const_cast<char*>(a.c_str()));
  av.push_back(nullptr);
  for (const auto& e : env) ev.push_back(const_cast<char*>(e.c_str()));
  ev.push_back(nullptr);
  int high[16];
  size_t n_high = std::min(opts.extra_fds.size(), std::size(high));
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls from here. The extra fds move out of the way first.
  for (size_t i = 0; i < n_high; ++i) high[i] = ::fcntl(opts.extra_fds[i], F_DUPFD, 100);
  int in = ::open(stdin_path.c_str(), O_RDONLY);
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0666);
  int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0666);
  if (in < 0 || out < 0 || err < 0) ::_exit(200);
  ::dup2(in, 0);
  ::dup2(out, 1);
  ::dup2(err, 2);
  for (size_t i = 0; i < n_high; ++i) ::dup2(high[i], 3 + static_cast<int>(i));
  ::syscall(SYS_close_range, 3 + n_high, ~0U, 0);
  ::setsid();
  if (opts.gid) {
    ::setgroups(0, nullptr);
    if (::setresgid(*opts.gid, *opts.gid, *opts.gid) != 0) ::_exit(201);
  }
  if (opts.uid && ::setresuid(*opts.uid, *opts.uid, *opts.uid) != 0) ::_exit(202);
  if (!opts.cwd.empty() && ::chdir(opts.cwd.c_str()) != 0) ::_exit(203);
  ::execve(av[0], av.data(), ev.data());
  ::_exit(204);
}

bool pid_alive(pid_t pid) { return ::waitpid(pid, nullptr, WNOHANG) == 0; }

}  // namespace

AsyncRun& AsyncRun::operator=(AsyncRun&& o) noexcept {
  if (this != &o) {
    pid_ = o.pid_;
    out_path_ = std::move(o.out_path_);
    err_path_ = std::move(o.err_path_);
    timeout_ = o.timeout_;
    o.pid_ = -1;
  }
  return *this;
}

AsyncRun::~AsyncRun() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

RunResult AsyncRun::wait() {
  RunResult r;
  if (pid_ <= 0) return r;
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  struct pollfd p {
    pidfd, POLLIN, 0
  };
  int n;
  do {
    n = ::poll(&p, 1, static_cast<int>(timeout_.count()));
  } while (n < 0 && errno == EINTR);
  ::close(pidfd);
  int status = 0;
  if (n == 0) {
    r.timed_out = true;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, &status, 0);
  } else {
    ::waitpid(pid_, &status, 0);
    r.code = exit_code(status);
  }
  pid_ = -1;
  r.out = read_file(out_path_);
  r.err = read_file(err_path_);
  return r;
}

bool AsyncRun::running() const { return pid_ > 0 && pid_alive(pid_); }
std::string AsyncRun::out() const { return read_file(out_path_); }
std::string AsyncRun::err() const { return read_file(err_path_); }
bool AsyncRun::wait_out(const std::string& needle, std::chrono::milliseconds timeout) const {
  return wait_file_contains(out_path_, needle, timeout);
}

void RuntimeTest::SetUp() {
  // Detached containers outlive the runtime that started them: as their subreaper we reap them
  // (this host's pid 1 does not), so no zombie outlives a test.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  static int seq = 0;
  tag_ = "sit" + std::to_string(::getpid()) + "x" + std::to_string(seq++);
  tmp_ = "/tmp/strata-it-" + tag_;
  stdfs::remove_all(tmp_);
  make_dir(tmp_, 0755);
  root_ = tmp_ + "/root";
  bundle_ = tmp_ + "/bundle";
  make_dir(bundle_, 0755);
  make_dir(tmp_ + "/io", 0777);
}

void RuntimeTest::TearDown() {
  std::vector<std::string> left = residue();
  for (const auto& r : left) ADD_FAILURE() << "residue at the end of the test: " << r;
  force_cleanup();
  while (::waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  std::error_code ec;
  stdfs::remove_all(tmp_, ec);
}

std::string RuntimeTest::id(const std::string& name) {
  std::string cid = tag_ + "-" + name;
  ids_.push_back(cid);
  return cid;
}

Json RuntimeTest::base_config() const {
  static Json spec = [] {
    std::string dir = "/tmp/strata-it-spec-" + std::to_string(::getpid());
    stdfs::remove_all(dir);
    stdfs::create_directories(dir);
    std::string cmd = kRuntime + " spec -b " + dir;
    if (std::system(cmd.c_str()) != 0) return Json();
    Json j = Json::parse(read_file(dir + "/config.json"), nullptr, false);
    stdfs::remove_all(dir);
    return j;
  }();
  Json cfg = spec;
  if (cfg.is_discarded() || cfg.is_null()) {
    ADD_FAILURE() << "strata-runtime spec did not produce a config";
    return Json::object();
  }
  cfg["process"]["terminal"] = false;
  cfg["process"]["args"] = {"/bin/probe"};
  cfg["process"]["env"].push_back("STRATA_IT_TAG=" + tag_);
  cfg["root"]["path"] = kRootfs;
  cfg["root"]["readonly"] = true;
  return cfg;
}

void RuntimeTest::write_config(const Json& cfg, const std::string& bundle) {
  std::string b = bundle.empty() ? bundle_ : bundle;
  write_file(b + "/config.json", cfg.dump(2));
}

AsyncRun RuntimeTest::rt_async(const std::vector<std::string>& args, const RunOptions& opts) {
  std::vector<std::string> argv = {runtime_, "--root", root_};
  argv.insert(argv.end(), args.begin(), args.end());
  int n = g_output_counter++;
  std::string base = tmp_ + "/io/" + std::to_string(n);
  std::string in = "/dev/null";
  if (!opts.stdin_data.empty()) {
    in = base + ".in";
    write_file(in, opts.stdin_data);
  }
  write_file(base + ".out", "", 0666);
  write_file(base + ".err", "", 0666);
  if (opts.uid) {
    (void)::chown((base + ".out").c_str(), *opts.uid, opts.gid.value_or(0));
    (void)::chown((base + ".err").c_str(), *opts.uid, opts.gid.value_or(0));
  }
  pid_t pid = spawn(argv, opts, tag_, in, base + ".out", base + ".err");
  return AsyncRun(pid, base + ".out", base + ".err", opts.timeout);
}

RunResult RuntimeTest::rt(const std::vector<std::string>& args, const RunOptions& opts) {
  return rt_async(args, opts).wait();
}

RunResult RuntimeTest::run_cmd(const std::vector<std::string>& argv, const RunOptions& opts) {
  int n = g_output_counter++;
  std::string base = tmp_ + "/io/" + std::to_string(n);
  std::string in = "/dev/null";
  if (!opts.stdin_data.empty()) {
    in = base + ".in";
    write_file(in, opts.stdin_data);
  }
  pid_t pid = spawn(argv, opts, tag_, in, base + ".out", base + ".err");
  return AsyncRun(pid, base + ".out", base + ".err", opts.timeout).wait();
}

AsyncRun RuntimeTest::run_detached(const Json& cfg, const std::string& cid) {
  write_config(cfg);
  AsyncRun run = rt_async({"run", "-d", "-b", bundle_, cid});
  RunResult r = run.wait();
  EXPECT_EQ(r.code, 0) << "run -d " << cid << ": " << r.err;
  return run;
}

Json RuntimeTest::probe(Json cfg, const std::vector<std::string>& args) {
  cfg["process"]["args"] = args;
  write_config(cfg);
  std::string cid = id("probe" + std::to_string(counter_++));
  RunResult r = rt({"run", "-b", bundle_, cid});
  EXPECT_EQ(r.code, 0) << "run " << cid << " stderr: " << r.err << " stdout: " << r.out;
  Json j = last_json(r.out);
  EXPECT_FALSE(j.is_null()) << "no JSON from the probe; stdout: " << r.out << " stderr: " << r.err;
  return j;
}

Json RuntimeTest::state(const std::string& cid) {
  RunResult r = rt({"state", cid});
  if (r.code != 0) return Json();
  return Json::parse(r.out, nullptr, false);
}

bool RuntimeTest::wait_status(const std::string& cid, const std::string& status,
                              std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    Json s = state(cid);
    if (status.empty() ? s.is_null() : (!s.is_null() && s.value("status", "") == status)) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
}

bool wait_file_contains(const std::string& path, const std::string& needle,
                        std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (read_file(path).find(needle) != std::string::npos) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& data, mode_t mode) {
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << data;
  }
  ::chmod(path.c_str(), mode);
}

Json last_json(const std::string& text) {
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty() && line.find('{') != std::string::npos) last = line;
  }
  size_t brace = last.find('{');
  if (brace == std::string::npos) return Json();
  Json j = Json::parse(last.substr(brace), nullptr, false);
  return j.is_discarded() ? Json() : j;
}

std::string RuntimeTest::cgroup_dir(const std::string& cid, const std::string& controller) {
  Json st = Json::parse(read_file(root_ + "/" + cid + "/state.json"), nullptr, false);
  if (st.is_discarded() || !st.contains("cgroupPaths")) return "";
  return st["cgroupPaths"].value(controller, "");
}

void RuntimeTest::make_dir(const std::string& dir, mode_t mode, uid_t uid, gid_t gid) {
  stdfs::create_directories(dir);
  ::chmod(dir.c_str(), mode);
  if (uid != 0 || gid != 0) (void)::chown(dir.c_str(), uid, gid);
}

std::vector<std::string> RuntimeTest::residue() {
  std::vector<std::string> out;
  // Mounts: none under the test's directory or the shared rootfs, in our (the host's) namespace.
  {
    std::istringstream mi(read_file("/proc/self/mountinfo"));
    std::string line;
    while (std::getline(mi, line)) {
      std::istringstream f(line);
      std::string a, b, c, d, point;
      f >> a >> b >> c >> d >> point;
      if (point.rfind(tmp_, 0) == 0 || point.rfind(kRootfs, 0) == 0) out.push_back("mount " + point);
    }
  }
  // Cgroups: no directory named after one of our ids in any hierarchy.
  if (!ids_.empty()) {
    std::error_code ec;
    for (auto it = stdfs::recursive_directory_iterator("/sys/fs/cgroup",
                                                       stdfs::directory_options::skip_permission_denied, ec);
         !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
      if (!it->is_directory(ec)) continue;
      std::string name = it->path().filename();
      for (const auto& cid : ids_) {
        if (name == cid) out.push_back("cgroup " + it->path().string());
      }
    }
  }
  // --root: nothing left (no state dir, no lock file). The compiled-seccomp cache is the
  // runtime's, not a container's: it stays by design, and holds only .bpf files.
  if (stdfs::exists(root_)) {
    for (const auto& e : stdfs::directory_iterator(root_)) {
      if (e.path().filename() == ".seccomp-cache") {
        for (const auto& f : stdfs::directory_iterator(e.path())) {
          if (f.path().extension() != ".bpf") out.push_back("seccomp cache entry " + f.path().string());
        }
        continue;
      }
      out.push_back("--root entry " + e.path().string());
    }
  }
  // Processes: none carrying our tag (the runtime, its children and every container process).
  std::string needle = "STRATA_IT_TAG=" + tag_;
  if (DIR* d = ::opendir("/proc")) {
    while (struct dirent* e = ::readdir(d)) {
      int pid = std::atoi(e->d_name);
      if (pid <= 0 || pid == ::getpid()) continue;
      std::string env = read_file("/proc/" + std::to_string(pid) + "/environ");
      bool match = false;
      for (size_t pos = 0; (pos = env.find(needle, pos)) != std::string::npos; pos += needle.size()) {
        size_t end = pos + needle.size();
        if ((pos == 0 || env[pos - 1] == '\0') && (end == env.size() || env[end] == '\0')) match = true;
      }
      if (match) {
        std::string comm = read_file("/proc/" + std::to_string(pid) + "/comm");
        if (!comm.empty() && comm.back() == '\n') comm.pop_back();
        out.push_back("process " + std::to_string(pid) + " (" + comm + ")");
      }
    }
    ::closedir(d);
  }
  return out;
}

void RuntimeTest::expect_no_residue(const std::string& when) {
  for (const auto& r : residue()) ADD_FAILURE() << "residue " << when << ": " << r;
}

void RuntimeTest::force_cleanup() {
  RunOptions o;
  o.uid = owner_uid_;
  o.gid = owner_gid_;
  o.timeout = 10s;
  for (const auto& cid : ids_) {
    if (stdfs::exists(root_ + "/" + cid)) (void)rt({"delete", "--force", cid}, o);
  }
  // Whatever still carries the tag.
  std::string needle = "STRATA_IT_TAG=" + tag_;
  for (int round = 0; round < 3; ++round) {
    bool any = false;
    for (const auto& r : residue()) {
      if (r.rfind("process ", 0) == 0) {
        ::kill(std::atoi(r.c_str() + 8), SIGKILL);
        any = true;
      }
    }
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    if (!any) break;
    std::this_thread::sleep_for(20ms);
  }
  for (const auto& cid : ids_) {
    for (const char* h : {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                          "systemd", "unified"}) {
      ::rmdir(("/sys/fs/cgroup/" + std::string(h) + "/strata/" + cid).c_str());
    }
  }
  // Unmount anything left under our directory, deepest first.
  std::vector<std::string> points;
  std::istringstream mi(read_file("/proc/self/mountinfo"));
  std::string line;
  while (std::getline(mi, line)) {
    std::istringstream f(line);
    std::string a, b, c, d, point;
    f >> a >> b >> c >> d >> point;
    if (point.rfind(tmp_, 0) == 0) points.push_back(point);
  }
  for (auto it = points.rbegin(); it != points.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
}

}  // namespace strata::oci::it
