// Cgroup managers against this host's real hierarchies (root only). The v1 backend on the hybrid
// layout's per-controller mounts under /sys/fs/cgroup; the v2 backend's mechanics (mkdir,
// subtree_control, cgroup.procs, the device BPF filter, cgroup.freeze, cgroup.kill, rmdir) on the
// cgroup2 mount at /sys/fs/cgroup/unified, where only hugetlb is attached. v2's cpu, memory, io
// and pids controllers cannot be had on this host; they are tested inside a QEMU guest.
// A forked child proves the limits from inside: it opens device nodes and ticks on a pipe, so a
// frozen cgroup is seen as silence. Each test ends by checking that no directory is left.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <random>
#include <string>

#include "base/cleanup.h"
#include "base/fd.h"
#include "base/fs.h"
#include "base/strings.h"
#include "oci/cgroup.h"

namespace strata::oci {
namespace {

using namespace std::chrono_literals;

constexpr int64_t kMiB = 1024 * 1024;
const char* const kV1Hierarchies[] = {"cpu",     "cpuacct", "cpuset", "memory", "devices",
                                      "freezer", "blkio",   "pids",   "systemd"};

std::string random_name() {
  std::random_device rd;
  return "t" + std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000);
}

std::string read_trimmed(const std::string& path) {
  auto r = fs::read_file(path);
  return r.ok() ? std::string(str::trim(*r)) : "<" + r.error().to_string() + ">";
}

// Bit per expectation; the child exits or reports with the set it observed.
enum DeviceProbe : unsigned char {
  kNullRw = 1,          // /dev/null (1:3) opens read-write
  kFullDenied = 2,      // /dev/full (1:7) fails with EPERM
  kUrandomRead = 4,     // /dev/urandom (1:9) opens read-only
  kUrandomNoWrite = 8,  // ... and not write-only (EPERM)
  kAllDeviceProbes = 15,
};

int open_errno(const char* path, int flags) {
  int fd = ::open(path, flags | O_CLOEXEC);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

unsigned char probe_devices() {
  unsigned char bits = 0;
  if (open_errno("/dev/null", O_RDWR) == 0) bits |= kNullRw;
  if (open_errno("/dev/full", O_RDWR) == EPERM) bits |= kFullDenied;
  if (open_errno("/dev/urandom", O_RDONLY) == 0) bits |= kUrandomRead;
  if (open_errno("/dev/urandom", O_WRONLY) == EPERM) bits |= kUrandomNoWrite;
  return bits;
}

// A child that waits until it is in the cgroup, reports probe_devices() as one byte, then writes
// a tick every 2 ms for as long as it runs.
class Child {
 public:
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() { reap(SIGKILL); }

  bool spawn() {
    int go[2], out[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return false;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(go[1]);
      ::close(out[0]);
      char c;
      if (::read(go[0], &c, 1) != 1) ::_exit(100);
      unsigned char bits = probe_devices();
      if (::write(out[1], &bits, 1) != 1) ::_exit(101);
      for (;;) {
        if (::write(out[1], "t", 1) != 1) ::_exit(102);
        ::usleep(2000);
      }
    }
    ::close(go[0]);
    ::close(out[1]);
    go_.reset(go[1]);
    out_.reset(out[0]);
    return pid_ > 0;
  }
  pid_t pid() const { return pid_; }

  // Lets the child run; returns its device probe bits, or -1.
  int start() {
    if (::write(go_.get(), "g", 1) != 1) return -1;
    if (!wait_readable(5000)) return -1;
    unsigned char bits;
    if (::read(out_.get(), &bits, 1) != 1) return -1;
    ::fcntl(out_.get(), F_SETFL, O_NONBLOCK);
    return bits;
  }
  bool wait_readable(int timeout_ms) {
    pollfd p{out_.get(), POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
  }
  // Reads every tick written so far; returns how many there were.
  size_t drain() {
    char buf[4096];
    size_t n = 0;
    for (;;) {
      ssize_t r = ::read(out_.get(), buf, sizeof buf);
      if (r <= 0) return n;
      n += static_cast<size_t>(r);
    }
  }
  // Waits for the exit; returns the wait status.
  int wait() {
    int status = 0;
    if (pid_ > 0 && ::waitpid(pid_, &status, 0) == pid_) pid_ = -1;
    return status;
  }
  void reap(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    wait();
  }

 private:
  pid_t pid_ = -1;
  UniqueFd go_, out_;
};

bool have_v1_layout() {
  return detect_cgroup_version("/sys/fs/cgroup") == CgroupVersion::kV1 &&
         fs::is_dir("/sys/fs/cgroup/memory") && fs::is_dir("/sys/fs/cgroup/freezer");
}

TEST(CgroupHostTest, V1LimitsFreezeKillDestroy) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (!have_v1_layout()) GTEST_SKIP() << "no cgroup v1 hierarchies under /sys/fs/cgroup";
  std::string name = random_name();
  CgroupConfig cfg;
  cfg.cgroups_path = "/strata-test/" + name;
  cfg.id = name;
  auto made = make_cgroup_manager(cfg);
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  std::unique_ptr<CgroupManager> m = std::move(*made);
  ASSERT_EQ(m->version(), CgroupVersion::kV1);
  Child child;
  Cleanup cleanup([&] {
    (void)m->thaw();  // a process frozen by v1's freezer takes no SIGKILL until thawed
    child.reap(SIGKILL);
    (void)m->destroy();
    for (const char* h : kV1Hierarchies)
      ::rmdir((std::string("/sys/fs/cgroup/") + h + "/strata-test").c_str());
  });

  auto st = m->create();
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  std::map<std::string, std::string> paths = m->paths();
  for (const char* c :
       {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "name=systemd"}) {
    ASSERT_TRUE(paths.count(c)) << c << " not discovered";
    EXPECT_TRUE(fs::is_dir(paths[c])) << paths[c];
  }
  EXPECT_EQ(paths["memory"], "/sys/fs/cgroup/memory/strata-test/" + name);
  EXPECT_EQ(paths["name=systemd"], "/sys/fs/cgroup/systemd/strata-test/" + name);
  // cpuset was copied down from the root at each new level.
  std::string root_cpus = read_trimmed("/sys/fs/cgroup/cpuset/cpuset.cpus");
  EXPECT_EQ(read_trimmed(paths["cpuset"] + "/cpuset.cpus"), root_cpus);
  EXPECT_EQ(read_trimmed("/sys/fs/cgroup/cpuset/strata-test/cpuset.mems"),
            read_trimmed("/sys/fs/cgroup/cpuset/cpuset.mems"));

  Resources r;
  r.memory = MemoryResources{.limit = 64 * kMiB};
  bool have_memsw = fs::exists(paths["memory"] + "/memory.memsw.limit_in_bytes");
  if (have_memsw) r.memory->swap = 128 * kMiB;
  r.pids_limit = 32;
  r.cpu = CpuResources{.shares = 512,
                       .quota = 50000,
                       .period = 100000,
                       .cpus = root_cpus,
                       .mems = read_trimmed("/sys/fs/cgroup/cpuset/cpuset.mems")};
  if (fs::exists(paths["cpu"] + "/cpu.idle")) r.cpu->idle = 0;
  // A proportional weight needs an I/O scheduler that has one (bfq; legacy cfq): with
  // mq-deadline or none there is no blkio.weight file, and asking for one is a clear error.
  bool have_weight =
      fs::exists(paths["blkio"] + "/blkio.weight") || fs::exists(paths["blkio"] + "/blkio.bfq.weight");
  if (have_weight) {
    r.block_io = BlockIoResources{.weight = 500};
  } else {
    Resources w;
    w.block_io = BlockIoResources{.weight = 500};
    Status ws = m->apply(w);
    ASSERT_FALSE(ws.ok());
    EXPECT_NE(ws.error().to_string().find(
                  "linux.resources.blockIO.weight: neither blkio.weight nor blkio.bfq.weight"),
              std::string::npos)
        << ws.error().to_string();
  }
  r.devices = {{.allow = false, .type = 'a', .access = "rwm"},
               {.allow = true, .type = 'c', .major = 1, .minor = 3, .access = "rwm"},
               {.allow = true, .type = 'c', .major = 1, .minor = 5, .access = "rwm"},
               {.allow = true, .type = 'c', .major = 1, .minor = 9, .access = "r"}};
  st = m->apply(r);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(read_trimmed(paths["memory"] + "/memory.limit_in_bytes"), "67108864");
  if (have_memsw) {
    EXPECT_EQ(read_trimmed(paths["memory"] + "/memory.memsw.limit_in_bytes"), "134217728");
  }
  EXPECT_EQ(read_trimmed(paths["pids"] + "/pids.max"), "32");
  EXPECT_EQ(read_trimmed(paths["cpu"] + "/cpu.shares"), "512");
  EXPECT_EQ(read_trimmed(paths["cpu"] + "/cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(read_trimmed(paths["cpu"] + "/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(read_trimmed(paths["cpuset"] + "/cpuset.cpus"), root_cpus);
  EXPECT_EQ(read_trimmed(paths["devices"] + "/devices.list"), "c 1:3 rwm\nc 1:5 rwm\nc 1:9 r");
  std::string weight_file =
      fs::exists(paths["blkio"] + "/blkio.weight") ? "/blkio.weight" : "/blkio.bfq.weight";
  if (have_weight) {
    EXPECT_NE(read_trimmed(paths["blkio"] + weight_file).find("500"), std::string::npos);
  }

  if (have_memsw) {
    // The write order keeps memsw >= limit at every step, both ways.
    Resources up;
    up.memory = MemoryResources{.limit = 256 * kMiB, .swap = 512 * kMiB};
    st = m->apply(up);
    ASSERT_TRUE(st.ok()) << "raising: " << st.error().to_string();
    EXPECT_EQ(read_trimmed(paths["memory"] + "/memory.memsw.limit_in_bytes"), "536870912");
    Resources down;
    down.memory = MemoryResources{.limit = 64 * kMiB, .swap = 96 * kMiB};
    st = m->apply(down);
    ASSERT_TRUE(st.ok()) << "lowering: " << st.error().to_string();
    EXPECT_EQ(read_trimmed(paths["memory"] + "/memory.limit_in_bytes"), "67108864");
    EXPECT_EQ(read_trimmed(paths["memory"] + "/memory.memsw.limit_in_bytes"), "100663296");
  }

  ASSERT_TRUE(child.spawn());
  st = m->add_process(child.pid());
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  for (const char* c : {"memory", "cpuset", "devices", "freezer", "pids", "name=systemd"}) {
    EXPECT_EQ(read_trimmed(paths[c] + "/cgroup.procs"), std::to_string(child.pid())) << c;
  }
  EXPECT_EQ(child.start(), kAllDeviceProbes) << "device rules as seen from inside the cgroup";
  ASSERT_TRUE(child.wait_readable(2000)) << "the child ticks";
  auto pids = m->pids();
  ASSERT_TRUE(pids.ok());
  EXPECT_EQ(*pids, std::vector<pid_t>{child.pid()});
  auto stats = m->stats();
  ASSERT_TRUE(stats.ok()) << stats.error().to_string();
  EXPECT_EQ(stats->memory_limit, uint64_t(64 * kMiB));
  EXPECT_GT(stats->memory_usage, 0u);
  EXPECT_EQ(stats->pids_current, 1u);
  EXPECT_EQ(stats->pids_limit, 32u);

  st = m->freeze();
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(read_trimmed(paths["freezer"] + "/freezer.state"), "FROZEN");
  EXPECT_TRUE(*m->frozen());
  child.drain();
  ::usleep(200 * 1000);
  EXPECT_EQ(child.drain(), 0u) << "a frozen child does not tick";
  st = m->thaw();
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_FALSE(*m->frozen());
  EXPECT_TRUE(child.wait_readable(2000)) << "ticking again after thaw";
  stats = m->stats();
  EXPECT_GT(stats->cpu_usage_ns, 0u);

  st = m->kill_all(SIGTERM);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << "status " << status;
  st = m->destroy();
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  for (const auto& [c, dir] : paths) EXPECT_FALSE(fs::exists(dir)) << dir << " left behind";
  for (const char* h : kV1Hierarchies) {
    EXPECT_FALSE(fs::exists(std::string("/sys/fs/cgroup/") + h + "/strata-test/" + name)) << h;
  }
}

TEST(CgroupHostTest, V1RootlessManagerStillWorksAsRoot) {
  // As root nothing refuses the mkdir, so a rootless manager is a normal one: skipped() false.
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (!have_v1_layout()) GTEST_SKIP() << "no cgroup v1 hierarchies under /sys/fs/cgroup";
  std::string name = random_name();
  CgroupConfig cfg;
  cfg.cgroups_path = "/strata-test/" + name;
  cfg.id = name;
  cfg.rootless = true;
  auto m = make_cgroup_manager(cfg);
  ASSERT_TRUE(m.ok());
  ASSERT_TRUE((*m)->create().ok());
  EXPECT_FALSE((*m)->skipped());
  ASSERT_TRUE((*m)->destroy().ok());
  for (const char* h : kV1Hierarchies) {
    ::rmdir((std::string("/sys/fs/cgroup/") + h + "/strata-test").c_str());
    EXPECT_FALSE(fs::exists(std::string("/sys/fs/cgroup/") + h + "/strata-test/" + name)) << h;
  }
}

TEST(CgroupHostTest, SystemdPathRefused) {
  CgroupConfig cfg;
  cfg.cgroups_path = "system.slice:strata:x";
  cfg.id = "x";
  auto m = make_cgroup_manager(cfg);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("systemd cgroup driver"), std::string::npos);
}

constexpr const char* kUnified = "/sys/fs/cgroup/unified";

TEST(CgroupHostTest, V2MechanicsOnTheUnifiedHierarchy) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  if (!fs::is_dir(kUnified) || detect_cgroup_version(kUnified) != CgroupVersion::kV2) {
    GTEST_SKIP() << "no cgroup2 mount at " << kUnified;
  }
  EXPECT_EQ(detect_cgroup_version("/sys/fs/cgroup"), CgroupVersion::kV1) << "hybrid: the root is a tmpfs";
  std::string name = random_name();
  std::string subtree_before = read_trimmed(std::string(kUnified) + "/cgroup.subtree_control");
  bool hugetlb =
      read_trimmed(std::string(kUnified) + "/cgroup.controllers").find("hugetlb") != std::string::npos;
  CgroupConfig cfg;
  cfg.root = kUnified;
  cfg.cgroups_path = "/strata-test/" + name;
  cfg.id = name;
  auto made = make_cgroup_manager(cfg);
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  std::unique_ptr<CgroupManager> m = std::move(*made);
  ASSERT_EQ(m->version(), CgroupVersion::kV2);
  std::string dir = std::string(kUnified) + "/strata-test/" + name;
  EXPECT_EQ(m->paths(), (std::map<std::string, std::string>{{"", dir}}));
  Child child;
  auto restore = [&] {
    child.reap(SIGKILL);
    (void)m->destroy();
    ::rmdir((std::string(kUnified) + "/strata-test").c_str());
    // Leave the root's subtree_control as found (busy if another test's cgroup needs it: fine).
    if (subtree_before.find("hugetlb") == std::string::npos) {
      (void)fs::write_file(std::string(kUnified) + "/cgroup.subtree_control", "-hugetlb");
    }
  };
  Cleanup cleanup(restore);

  auto st = m->create();
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  ASSERT_TRUE(fs::is_dir(dir));
  Resources r;
  if (hugetlb) {
    EXPECT_NE(read_trimmed(dir + "/cgroup.controllers").find("hugetlb"), std::string::npos)
        << "hugetlb enabled from the root down";
    r.hugepage_limits = {{"2MB", 4194304}};
  }
  // The v2 device filter runs for the process's cgroup2 cgroup even with v1's devices controller
  // mounted: this host proves the BPF program.
  r.devices = {{.allow = true, .type = 'a', .access = "rwm"},
               {.allow = false, .type = 'c', .major = 1, .minor = 7, .access = "rwm"},
               {.allow = false, .type = 'c', .major = 1, .minor = 9, .access = "w"}};
  st = m->apply(r);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  if (hugetlb) {
    EXPECT_EQ(read_trimmed(dir + "/hugetlb.2MB.max"), "4194304");
  }

  ASSERT_TRUE(child.spawn());
  st = m->add_process(child.pid());
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_EQ(read_trimmed(dir + "/cgroup.procs"), std::to_string(child.pid()));
  EXPECT_EQ(child.start(), kAllDeviceProbes) << "the BPF filter as seen from inside the cgroup";
  ASSERT_TRUE(child.wait_readable(2000));
  EXPECT_EQ(*m->pids(), std::vector<pid_t>{child.pid()});

  // A second apply replaces the filter rather than stacking on it (stacked programs all have to
  // allow): a new child may now open /dev/full.
  Resources open_all;
  open_all.devices = {{.allow = true, .type = 'a', .access = "rwm"}};
  st = m->apply(open_all);
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  {
    Child second;
    ASSERT_TRUE(second.spawn());
    ASSERT_TRUE(m->add_process(second.pid()).ok());
    int bits = second.start();
    EXPECT_EQ(bits & kFullDenied, 0) << "the old filter is gone";
    EXPECT_EQ(bits & kNullRw, kNullRw);
  }

  st = m->freeze();
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_NE(read_trimmed(dir + "/cgroup.events").find("frozen 1"), std::string::npos);
  EXPECT_TRUE(*m->frozen());
  child.drain();
  ::usleep(200 * 1000);
  EXPECT_EQ(child.drain(), 0u) << "a frozen child does not tick";
  st = m->thaw();
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_FALSE(*m->frozen());
  EXPECT_TRUE(child.wait_readable(2000)) << "ticking again after thaw";
  auto stats = m->stats();
  ASSERT_TRUE(stats.ok()) << stats.error().to_string();
  EXPECT_GT(stats->cpu_usage_ns, 0u) << "cpu.stat is a core file, there without the cpu controller";

  st = m->kill_all(SIGKILL);  // cgroup.kill
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  int status = child.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  st = m->destroy();
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  EXPECT_FALSE(fs::exists(dir)) << "left behind";
}

}  // namespace
}  // namespace strata::oci
