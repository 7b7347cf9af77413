// Cgroup managers without privileges: a tmpdir stands in for the cgroup root, filled with the
// files the kernel would make, and a recording CgroupOps shows the exact writes and their order.
// Also the pure parts: cgroupsPath resolution, the /proc parsers and the v1->v2 unit conversions.
// Device rules (v1 lines, the v2 BPF program) are in cgroup_devices_test.cc.
#include "oci/cgroup.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "base/fs.h"
#include "oci/cgroup_internal.h"

namespace strata::oci {
namespace {

using namespace std::chrono_literals;
using cgroup_internal::CgroupOps;
using cgroup_internal::CgroupWrite;

constexpr int64_t kMiB = 1024 * 1024;

void put(const std::string& path, const std::string& content) {
  ASSERT_TRUE(fs::mkdir_p(fs::clean(fs::join(path, ".."))).ok());
  // No fsync: a test's fake files need not survive a crash.
  std::ofstream(path, std::ios::trunc) << content;
  ASSERT_TRUE(fs::exists(path)) << path;
}

std::string get(const std::string& path) {
  auto r = fs::read_file(path);
  return r.ok() ? *r : "<missing>";
}

// Records every write, kill and attach (paths shown relative to the fake root); simulates the
// kernel where a tmpdir cannot (cgroup.events follows cgroup.freeze; rmdir of a cgroup removes
// its interface files).
class FakeOps : public CgroupOps {
 public:
  explicit FakeOps(std::string root) : root_(std::move(root)) {}

  Status write(const std::string& path, std::string_view data) override {
    log.push_back("write " + rel(path) + " " + std::string(data));
    Status st = CgroupOps::write(path, data);
    if (st.ok() && path.ends_with("/cgroup.freeze") && !stuck) {
      std::string events = fs::join(fs::clean(fs::join(path, "..")), "cgroup.events");
      std::ofstream(events, std::ios::trunc) << "populated 1\nfrozen " << data << "\n";
    }
    return st;
  }
  Result<std::string> read(const std::string& path) override {
    if (path == "/proc/self/cgroup") return proc_cgroup;
    if (path == "/proc/self/mountinfo") return mountinfo;
    if (stuck && path.ends_with("/freezer.state")) return std::string("FREEZING\n");
    return CgroupOps::read(path);
  }
  Status mkdir_p(const std::string& path) override {
    if (mkdir_errno != 0) return Error::sys("mkdir " + path, mkdir_errno);
    return CgroupOps::mkdir_p(path);
  }
  Status rmdir(const std::string& path) override {
    log.push_back("rmdir " + rel(path));
    if (busy_rmdirs > 0) {
      --busy_rmdirs;
      return Error::sys("rmdir " + path, EBUSY);
    }
    for (const auto& f : fs::list_dir(path)) {
      if (!fs::is_dir(fs::join(path, f))) ::unlink(fs::join(path, f).c_str());
    }
    return CgroupOps::rmdir(path);
  }
  Status kill(pid_t pid, int sig) override {
    log.push_back("kill " + std::to_string(pid) + " " + std::to_string(sig));
    return ok();
  }
  Status attach_device_program(const std::string& dir, const std::vector<bpf_insn>& prog) override {
    log.push_back("attach " + rel(dir));
    programs.push_back(prog);
    return ok();
  }
  void sleep(std::chrono::milliseconds d) override { slept += d; }

  std::vector<std::string> writes() const {
    std::vector<std::string> out;
    for (const auto& l : log) {
      if (l.starts_with("write ")) out.push_back(l.substr(6));
    }
    return out;
  }
  std::string rel(const std::string& p) const { return p.starts_with(root_) ? p.substr(root_.size()) : p; }

  std::vector<std::string> log;
  std::vector<std::vector<bpf_insn>> programs;
  std::string proc_cgroup = "9:name=systemd:/\n4:memory:/\n3:cpuset:/\n1:cpu,cpuacct:/\n0::/\n";
  std::string mountinfo;  // nothing under the tmpdir: its controller directories stand for mounts
  int mkdir_errno = 0;
  int busy_rmdirs = 0;
  bool stuck = false;
  std::chrono::milliseconds slept{0};

 private:
  std::string root_;
};

class CgroupTestBase : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-cgroup-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ops_ = std::make_shared<FakeOps>(root_);
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(root_).ok()); }

  std::unique_ptr<CgroupManager> make(CgroupVersion v, const std::string& cgroups_path = "/strata/c1",
                                      bool rootless = false) {
    CgroupConfig cfg;
    cfg.root = root_;
    cfg.cgroups_path = cgroups_path;
    cfg.id = "c1";
    cfg.rootless = rootless;
    cfg.force_version = v;
    auto m = cgroup_internal::make_cgroup_manager(cfg, ops_);
    EXPECT_TRUE(m.ok()) << m.error().to_string();
    return m.ok() ? std::move(*m) : nullptr;
  }

  std::string root_;
  std::shared_ptr<FakeOps> ops_;
};

// --- cgroup v1 -------------------------------------------------------------------------------

// The files the kernel makes in every cgroup of each hierarchy (this host's set: bfq weight, no
// blkio.weight), with their initial content.
const std::map<std::string, std::map<std::string, std::string>>& v1_files() {
  static const std::map<std::string, std::map<std::string, std::string>> kFiles = {
      {"cpu",
       {{"cpu.shares", "1024"},
        {"cpu.cfs_period_us", "100000"},
        {"cpu.cfs_quota_us", "-1"},
        {"cpu.rt_period_us", "1000000"},
        {"cpu.rt_runtime_us", "0"},
        {"cpu.idle", "0"}}},
      {"cpuacct", {{"cpuacct.usage", "123456"}}},
      {"cpuset", {{"cpuset.cpus", ""}, {"cpuset.mems", ""}}},
      {"memory",
       {{"memory.limit_in_bytes", "9223372036854771712"},
        {"memory.memsw.limit_in_bytes", "9223372036854771712"},
        {"memory.soft_limit_in_bytes", "9223372036854771712"},
        {"memory.kmem.limit_in_bytes", "9223372036854771712"},
        {"memory.swappiness", "60"},
        {"memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n"},
        {"memory.usage_in_bytes", "4096"}}},
      {"devices", {{"devices.allow", ""}, {"devices.deny", ""}, {"devices.list", "a *:* rwm\n"}}},
      {"freezer", {{"freezer.state", "THAWED\n"}}},
      {"blkio", {{"blkio.bfq.weight", "100"}}},
      {"pids", {{"pids.max", "max"}, {"pids.current", "3"}}},
      {"hugetlb", {{"hugetlb.2MB.limit_in_bytes", "0"}}},
      {"systemd", {}},
  };
  return kFiles;
}

class CgroupV1Test : public CgroupTestBase {
 protected:
  void SetUp() override {
    CgroupTestBase::SetUp();
    for (const auto& [ctrl, files] : v1_files()) {
      for (const std::string level : {"", "/strata", "/strata/c1"}) {
        std::string d = root_ + "/" + ctrl + level;
        put(d + "/cgroup.procs", "");
        for (const auto& [f, content] : files) put(d + "/" + f, content);
      }
    }
    put(root_ + "/cpuset/cpuset.cpus", "0-3\n");
    put(root_ + "/cpuset/cpuset.mems", "0\n");
  }
  std::string leaf(const std::string& ctrl) { return root_ + "/" + ctrl + "/strata/c1"; }
};

Resources full_resources() {
  Resources r;
  r.devices = {{.allow = false, .type = 'a', .access = "rwm"},
               {.allow = true, .type = 'c', .major = 1, .minor = 3, .access = "rwm"},
               {.allow = true, .type = 'c', .major = 1, .minor = 5, .access = "wr"},
               {.allow = true, .type = 'c', .major = 136, .access = "rwm"}};
  r.memory = MemoryResources{.limit = 64 * kMiB,
                             .reservation = 32 * kMiB,
                             .swap = 128 * kMiB,
                             .kernel = 16 * kMiB,
                             .swappiness = 10,
                             .disable_oom_killer = true};
  r.cpu = CpuResources{.shares = 512,
                       .quota = 50000,
                       .period = 100000,
                       .realtime_runtime = 950,
                       .realtime_period = 1000,
                       .cpus = "0-1",
                       .mems = "0",
                       .idle = 0};
  r.pids_limit = 32;
  r.block_io = BlockIoResources{.weight = 500, .leaf_weight = 300};
  r.hugepage_limits = {{"2MB", 4194304}};
  return r;
}

TEST_F(CgroupV1Test, DiscoversControllerDirsAndDefaultPath) {
  auto m = make(CgroupVersion::kV1, "");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->version(), CgroupVersion::kV1);
  std::map<std::string, std::string> want;
  for (const auto& [ctrl, files] : v1_files()) {
    want[ctrl == "systemd" ? "name=systemd" : ctrl] = root_ + "/" + ctrl + "/strata/c1";
  }
  EXPECT_EQ(m->paths(), want);
  EXPECT_FALSE(m->skipped());
}

TEST_F(CgroupV1Test, CreateCopiesCpusetDownBeforeAnyTask) {
  auto m = make(CgroupVersion::kV1);
  ASSERT_TRUE(m->create().ok());
  EXPECT_EQ(ops_->writes(), (std::vector<std::string>{
                                "/cpuset/strata/cpuset.cpus 0-3", "/cpuset/strata/cpuset.mems 0",
                                "/cpuset/strata/c1/cpuset.cpus 0-3", "/cpuset/strata/c1/cpuset.mems 0"}));
  ASSERT_TRUE(m->add_process(4242).ok());
  for (const auto& [ctrl, files] : v1_files()) EXPECT_EQ(get(leaf(ctrl) + "/cgroup.procs"), "4242") << ctrl;
}

TEST_F(CgroupV1Test, CreateMakesMissingDirs) {
  // Without the cpuset hierarchy: the fake one would lack the files the kernel makes in new dirs.
  ASSERT_TRUE(fs::remove_tree(root_ + "/cpuset").ok());
  auto m = make(CgroupVersion::kV1, "/other/c2");
  ASSERT_TRUE(m->create().ok());
  EXPECT_TRUE(fs::is_dir(root_ + "/memory/other/c2"));
  EXPECT_TRUE(fs::is_dir(root_ + "/systemd/other/c2"));
  EXPECT_FALSE(m->paths().count("cpuset"));
}

TEST_F(CgroupV1Test, ApplyFullResourcesWritesExactFilesInOrder) {
  auto m = make(CgroupVersion::kV1);
  ASSERT_TRUE(m->apply(full_resources()).ok());
  EXPECT_EQ(ops_->writes(), (std::vector<std::string>{
                                "/cpuset/strata/c1/cpuset.cpus 0-1",
                                "/cpuset/strata/c1/cpuset.mems 0",
                                "/devices/strata/c1/devices.deny a",
                                "/devices/strata/c1/devices.deny a *:* rwm",
                                "/devices/strata/c1/devices.allow c 1:3 rwm",
                                "/devices/strata/c1/devices.allow c 1:5 rw",
                                "/devices/strata/c1/devices.allow c 136:* rwm",
                                // Lowering from unlimited: the limit goes before memsw.
                                "/memory/strata/c1/memory.limit_in_bytes 67108864",
                                "/memory/strata/c1/memory.memsw.limit_in_bytes 134217728",
                                "/memory/strata/c1/memory.soft_limit_in_bytes 33554432",
                                "/memory/strata/c1/memory.kmem.limit_in_bytes 16777216",
                                "/memory/strata/c1/memory.swappiness 10",
                                "/memory/strata/c1/memory.oom_control 1",
                                "/cpu/strata/c1/cpu.shares 512",
                                "/cpu/strata/c1/cpu.cfs_period_us 100000",
                                "/cpu/strata/c1/cpu.cfs_quota_us 50000",
                                "/cpu/strata/c1/cpu.rt_period_us 1000",
                                "/cpu/strata/c1/cpu.rt_runtime_us 950",
                                "/cpu/strata/c1/cpu.idle 0",
                                "/pids/strata/c1/pids.max 32",
                                "/blkio/strata/c1/blkio.bfq.weight 500",
                                "/hugetlb/strata/c1/hugetlb.2MB.limit_in_bytes 4194304",
                            }));
}

TEST_F(CgroupV1Test, MemswOrderRaisingAndLowering) {
  auto m = make(CgroupVersion::kV1);
  put(leaf("memory") + "/memory.limit_in_bytes", "67108864\n");
  Resources up;
  up.memory = MemoryResources{.limit = 256 * kMiB, .swap = 512 * kMiB};
  ASSERT_TRUE(m->apply(up).ok());
  EXPECT_EQ(ops_->writes(),
            (std::vector<std::string>{"/memory/strata/c1/memory.memsw.limit_in_bytes 536870912",
                                      "/memory/strata/c1/memory.limit_in_bytes 268435456"}));
  ops_->log.clear();
  Resources down;
  down.memory = MemoryResources{.limit = 32 * kMiB, .swap = 64 * kMiB};
  ASSERT_TRUE(m->apply(down).ok());
  EXPECT_EQ(ops_->writes(),
            (std::vector<std::string>{"/memory/strata/c1/memory.limit_in_bytes 33554432",
                                      "/memory/strata/c1/memory.memsw.limit_in_bytes 67108864"}));
  ops_->log.clear();
  // Lifting the limit lifts memsw too, first.
  Resources lift;
  lift.memory = MemoryResources{.limit = -1};
  ASSERT_TRUE(m->apply(lift).ok());
  EXPECT_EQ(ops_->writes(), (std::vector<std::string>{"/memory/strata/c1/memory.memsw.limit_in_bytes -1",
                                                      "/memory/strata/c1/memory.limit_in_bytes -1"}));
}

TEST_F(CgroupV1Test, SwapIgnoredWithoutMemswAndKmemWithoutFile) {
  ::unlink((leaf("memory") + "/memory.memsw.limit_in_bytes").c_str());
  ::unlink((leaf("memory") + "/memory.kmem.limit_in_bytes").c_str());
  auto m = make(CgroupVersion::kV1);
  Resources r;
  r.memory = MemoryResources{.limit = 64 * kMiB, .swap = 128 * kMiB, .kernel = kMiB};
  ASSERT_TRUE(m->apply(r).ok());
  EXPECT_EQ(ops_->writes(), (std::vector<std::string>{"/memory/strata/c1/memory.limit_in_bytes 67108864"}));
}

TEST_F(CgroupV1Test, PidsUnlimitedZeroAndNegative) {
  auto m = make(CgroupVersion::kV1);
  for (int64_t v : {int64_t{-1}, int64_t{0}}) {
    Resources r;
    r.pids_limit = v;
    ASSERT_TRUE(m->apply(r).ok());
  }
  EXPECT_EQ(ops_->writes(),
            (std::vector<std::string>{"/pids/strata/c1/pids.max max", "/pids/strata/c1/pids.max max"}));
}

TEST_F(CgroupV1Test, BadValuesChangeNothing) {
  auto m = make(CgroupVersion::kV1);
  Resources r = full_resources();
  r.unified["memory.high"] = "1G";
  auto st = m->apply(r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().to_string(), "linux.resources.unified requires cgroup v2");

  r = full_resources();
  r.memory->swappiness = 101;
  st = m->apply(r);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("swappiness"), std::string::npos);

  r = full_resources();
  r.memory->swap = 32 * kMiB;  // below the 64 MiB limit
  st = m->apply(r);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("must not be below"), std::string::npos);

  r = full_resources();
  r.devices.push_back({.allow = true, .type = 'c', .access = "rwx"});
  EXPECT_FALSE(m->apply(r).ok());
  r = full_resources();
  r.hugepage_limits = {{"../2MB", 1}};
  EXPECT_FALSE(m->apply(r).ok());
  EXPECT_TRUE(ops_->writes().empty());
}

TEST_F(CgroupV1Test, WriteErrorNamesValueFileAndErrno) {
  ::unlink((leaf("pids") + "/pids.max").c_str());
  auto m = make(CgroupVersion::kV1);
  Resources r;
  r.pids_limit = 32;
  auto st = m->apply(r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().to_string(),
            "write \"32\" to " + leaf("pids") + "/pids.max: ENOENT (No such file or directory)");
}

TEST_F(CgroupV1Test, MissingControllerIsNamed) {
  ASSERT_TRUE(fs::remove_tree(root_ + "/hugetlb").ok());
  auto m = make(CgroupVersion::kV1);
  Resources r;
  r.hugepage_limits = {{"2MB", 4194304}};
  auto st = m->apply(r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(),
            "linux.resources.hugepageLimits: the cgroup v1 hugetlb controller is not mounted");
}

TEST_F(CgroupV1Test, CpuIdleAbsentIsAnErrorOnlyWhenSet) {
  ::unlink((leaf("cpu") + "/cpu.idle").c_str());
  auto m = make(CgroupVersion::kV1);
  Resources r;
  r.cpu = CpuResources{.idle = 0};
  EXPECT_TRUE(m->apply(r).ok());
  r.cpu = CpuResources{.idle = 1};
  EXPECT_FALSE(m->apply(r).ok());
  EXPECT_TRUE(ops_->writes().empty());
}

TEST_F(CgroupV1Test, BlkioPrefersWeightThenBfq) {
  put(leaf("blkio") + "/blkio.weight", "500");
  put(leaf("blkio") + "/blkio.leaf_weight", "500");
  auto m = make(CgroupVersion::kV1);
  Resources r;
  r.block_io = BlockIoResources{.weight = 200, .leaf_weight = 300};
  ASSERT_TRUE(m->apply(r).ok());
  EXPECT_EQ(ops_->writes(), (std::vector<std::string>{"/blkio/strata/c1/blkio.weight 200",
                                                      "/blkio/strata/c1/blkio.leaf_weight 300"}));
}

TEST_F(CgroupV1Test, FreezeThawAndKillAll) {
  auto m = make(CgroupVersion::kV1);
  put(leaf("freezer") + "/cgroup.procs", "101\n102\n");
  put(leaf("freezer") + "/sub/cgroup.procs", "103\n");
  ASSERT_TRUE(m->freeze().ok());
  EXPECT_TRUE(*m->frozen());
  ASSERT_TRUE(m->thaw().ok());
  EXPECT_FALSE(*m->frozen());
  EXPECT_EQ(*m->pids(), (std::vector<pid_t>{101, 102, 103}));
  ops_->log.clear();
  ASSERT_TRUE(m->kill_all(SIGTERM).ok());
  EXPECT_EQ(ops_->log, (std::vector<std::string>{"write /freezer/strata/c1/freezer.state FROZEN",
                                                 "kill 101 15", "kill 102 15", "kill 103 15",
                                                 "write /freezer/strata/c1/freezer.state THAWED"}));
}

TEST_F(CgroupV1Test, FreezeTimesOutAndThaws) {
  auto m = make(CgroupVersion::kV1);
  ops_->stuck = true;
  auto st = m->freeze();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err(), EBUSY);
  EXPECT_NE(st.error().message().find("still FREEZING"), std::string::npos) << st.error().message();
  EXPECT_EQ(ops_->log.back(), "write /freezer/strata/c1/freezer.state THAWED");
  EXPECT_GE(ops_->slept, 1000ms);
  EXPECT_LE(ops_->slept, 1100ms);
}

TEST_F(CgroupV1Test, DestroyRemovesLeavesRetryingEbusy) {
  auto m = make(CgroupVersion::kV1);
  ASSERT_TRUE(fs::mkdir_p(leaf("memory") + "/nested").ok());
  ops_->busy_rmdirs = 3;
  ASSERT_TRUE(m->destroy().ok());
  for (const auto& [ctrl, files] : v1_files()) {
    EXPECT_FALSE(fs::exists(leaf(ctrl))) << ctrl;
    EXPECT_TRUE(fs::is_dir(root_ + "/" + ctrl + "/strata")) << "the parent is not ours to remove";
  }
  EXPECT_EQ(ops_->log[0], "rmdir /blkio/strata/c1");
  // Destroying again is fine: the directories are gone already.
  EXPECT_TRUE(m->destroy().ok());
}

TEST_F(CgroupV1Test, DestroyGivesUpOnEbusyAfterTimeout) {
  auto m = make(CgroupVersion::kV1);
  ops_->busy_rmdirs = 1 << 20;
  auto st = m->destroy();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err(), EBUSY);
  EXPECT_NE(st.error().message().find("processes still in the cgroup"), std::string::npos);
}

TEST_F(CgroupV1Test, Stats) {
  auto m = make(CgroupVersion::kV1);
  auto s = m->stats();
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->memory_usage, 4096u);
  EXPECT_EQ(s->memory_limit, 9223372036854771712u);
  EXPECT_EQ(s->cpu_usage_ns, 123456u);
  EXPECT_EQ(s->pids_current, 3u);
  EXPECT_EQ(s->pids_limit, UINT64_MAX);
}

TEST_F(CgroupV1Test, RootlessSkipsWhenCreateIsRefused) {
  ops_->mkdir_errno = EACCES;
  auto m = make(CgroupVersion::kV1, "/strata/c1", /*rootless=*/true);
  ASSERT_TRUE(m->create().ok());
  EXPECT_TRUE(m->skipped());
  EXPECT_TRUE(m->apply(full_resources()).ok());
  EXPECT_TRUE(m->add_process(1).ok());
  EXPECT_TRUE(m->freeze().ok());
  EXPECT_TRUE(m->kill_all(SIGKILL).ok());
  EXPECT_TRUE(m->destroy().ok());
  EXPECT_TRUE(ops_->log.empty());

  auto strict = make(CgroupVersion::kV1);
  auto st = strict->create();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err(), EACCES);
  EXPECT_NE(st.error().to_string().find("create cgroup: mkdir "), std::string::npos)
      << st.error().to_string();
}

TEST_F(CgroupV1Test, RelativePathUnderOwnCgroupPerHierarchy) {
  ops_->proc_cgroup = "4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/\n";
  auto m = make(CgroupVersion::kV1, "pods/c1");
  auto p = m->paths();
  EXPECT_EQ(p["memory"], root_ + "/memory/process_api/abc/pods/c1");
  EXPECT_EQ(p["cpu"], root_ + "/cpu/pods/c1");
  EXPECT_EQ(p["pids"], root_ + "/pids/pods/c1") << "not in /proc/self/cgroup: the hierarchy root";
}

TEST_F(CgroupV1Test, MountinfoWinsOverDirectoryNames) {
  ops_->mountinfo = "35 31 0:32 / " + root_ + "/mem rw,relatime - cgroup cgroup rw,memory\n";
  auto m = make(CgroupVersion::kV1);
  EXPECT_EQ(m->paths(), (std::map<std::string, std::string>{{"memory", root_ + "/mem/strata/c1"}}));
}

TEST_F(CgroupV1Test, OpenFromSavedPaths) {
  auto made = make(CgroupVersion::kV1);
  auto opened = open_cgroup_manager(CgroupVersion::kV1, made->paths(), false);
  EXPECT_EQ(opened->paths(), made->paths());
  EXPECT_EQ(opened->version(), CgroupVersion::kV1);
  EXPECT_TRUE(open_cgroup_manager(CgroupVersion::kV1, made->paths(), true)->skipped());
}

// --- cgroup v2 -------------------------------------------------------------------------------

class CgroupV2Test : public CgroupTestBase {
 protected:
  void SetUp() override {
    CgroupTestBase::SetUp();
    put(root_ + "/cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
    put(root_ + "/cgroup.subtree_control", "");
    put(root_ + "/strata/cgroup.controllers", "cpu memory pids\n");
    put(root_ + "/strata/cgroup.subtree_control", "memory\n");
    for (const auto& [f, content] : std::map<std::string, std::string>{
             {"cgroup.controllers", "cpu memory pids\n"},
             {"cgroup.subtree_control", ""},
             {"cgroup.procs", ""},
             {"cgroup.freeze", "0\n"},
             {"cgroup.events", "populated 0\nfrozen 0\n"},
             {"cgroup.kill", ""},
             {"memory.max", "max\n"},
             {"memory.swap.max", "max\n"},
             {"memory.low", "0\n"},
             {"memory.high", "max\n"},
             {"memory.current", "8192\n"},
             {"cpu.weight", "100\n"},
             {"cpu.max", "max 100000\n"},
             {"cpu.idle", "0\n"},
             {"cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"},
             {"cpuset.cpus", ""},
             {"cpuset.mems", ""},
             {"pids.max", "max\n"},
             {"pids.current", "2\n"},
             {"io.weight", "default 100\n"},
             {"hugetlb.2MB.max", "max\n"},
         }) {
      put(leaf() + "/" + f, content);
    }
  }
  std::string leaf() { return root_ + "/strata/c1"; }
};

TEST_F(CgroupV2Test, CreateEnablesOfferedControllersFromTheRootDown) {
  auto m = make(CgroupVersion::kV2);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->version(), CgroupVersion::kV2);
  EXPECT_EQ(m->paths(), (std::map<std::string, std::string>{{"", leaf()}}));
  ASSERT_TRUE(m->create().ok());
  EXPECT_EQ(ops_->writes(),
            (std::vector<std::string>{"/cgroup.subtree_control +cpu", "/cgroup.subtree_control +memory",
                                      "/cgroup.subtree_control +pids", "/cgroup.subtree_control +io",
                                      "/cgroup.subtree_control +cpuset", "/cgroup.subtree_control +hugetlb",
                                      // strata/ offers cpu, memory and pids, and has memory on already.
                                      "/strata/cgroup.subtree_control +cpu",
                                      "/strata/cgroup.subtree_control +pids"}));
}

TEST_F(CgroupV2Test, ApplyFullResourcesMapsToV2Files) {
  auto m = make(CgroupVersion::kV2);
  Resources r = full_resources();
  r.cpu->realtime_runtime.reset();
  r.cpu->realtime_period.reset();
  r.unified["memory.high"] = "50331648";
  ASSERT_TRUE(m->apply(r).ok());
  EXPECT_EQ(ops_->log, (std::vector<std::string>{
                           "write /strata/c1/cpuset.cpus 0-1",
                           "write /strata/c1/cpuset.mems 0",
                           "write /strata/c1/memory.max 67108864",
                           "write /strata/c1/memory.swap.max 67108864",  // 128 MiB memory+swap - 64 MiB
                           "write /strata/c1/memory.low 33554432",
                           "write /strata/c1/cpu.weight 20",
                           "write /strata/c1/cpu.max 50000 100000",
                           "write /strata/c1/cpu.idle 0",
                           "write /strata/c1/pids.max 32",
                           "write /strata/c1/io.weight 4950",
                           "write /strata/c1/hugetlb.2MB.max 4194304",
                           "attach /strata/c1",
                           "write /strata/c1/memory.high 50331648",
                       }));
  ASSERT_EQ(ops_->programs.size(), 1u);
}

TEST_F(CgroupV2Test, CpuMaxForms) {
  auto m = make(CgroupVersion::kV2);
  Resources r;
  r.cpu = CpuResources{.quota = -1, .period = 50000};
  ASSERT_TRUE(m->apply(r).ok());
  put(leaf() + "/cpu.max", "20000 100000\n");
  r.cpu = CpuResources{.period = 200000};  // the quota in force stays
  ASSERT_TRUE(m->apply(r).ok());
  r.cpu = CpuResources{.quota = 30000};
  ASSERT_TRUE(m->apply(r).ok());
  EXPECT_EQ(ops_->writes(),
            (std::vector<std::string>{"/strata/c1/cpu.max max 50000", "/strata/c1/cpu.max 20000 200000",
                                      "/strata/c1/cpu.max 30000"}));
}

TEST_F(CgroupV2Test, IoBfqWeightKeepsV1Scale) {
  put(leaf() + "/io.bfq.weight", "default 100\n");
  auto m = make(CgroupVersion::kV2);
  Resources r;
  r.block_io = BlockIoResources{.weight = 500};
  ASSERT_TRUE(m->apply(r).ok());
  EXPECT_EQ(ops_->writes(), (std::vector<std::string>{"/strata/c1/io.bfq.weight 500"}));
}

TEST_F(CgroupV2Test, RefusalsChangeNothing) {
  auto m = make(CgroupVersion::kV2);
  for (const std::string key : {"../cgroup.procs", "a/b", "..", ""}) {
    Resources r = full_resources();
    r.cpu->realtime_runtime.reset();
    r.cpu->realtime_period.reset();
    r.unified[key] = "1";
    auto st = m->apply(r);
    ASSERT_FALSE(st.ok()) << key;
    EXPECT_NE(st.error().message().find("is not a cgroup file name"), std::string::npos);
  }
  Resources rt = full_resources();
  auto st = m->apply(rt);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("not supported on cgroup v2"), std::string::npos);
  EXPECT_TRUE(ops_->log.empty());
}

TEST_F(CgroupV2Test, FreezeKillAndPids) {
  auto m = make(CgroupVersion::kV2);
  put(leaf() + "/cgroup.procs", "7\n");
  put(leaf() + "/inner/cgroup.procs", "8\n");
  EXPECT_EQ(*m->pids(), (std::vector<pid_t>{7, 8}));
  ASSERT_TRUE(m->freeze().ok());
  EXPECT_TRUE(*m->frozen());
  ASSERT_TRUE(m->thaw().ok());
  EXPECT_FALSE(*m->frozen());
  ops_->log.clear();
  ASSERT_TRUE(m->kill_all(SIGKILL).ok());
  EXPECT_EQ(ops_->log, (std::vector<std::string>{"write /strata/c1/cgroup.kill 1"}));
  ops_->log.clear();
  ASSERT_TRUE(m->kill_all(SIGTERM).ok());
  EXPECT_EQ(ops_->log, (std::vector<std::string>{"write /strata/c1/cgroup.freeze 1", "kill 7 15", "kill 8 15",
                                                 "write /strata/c1/cgroup.freeze 0"}));
  ops_->stuck = true;
  auto st = m->freeze();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().err(), EBUSY);
  EXPECT_EQ(ops_->log.back(), "write /strata/c1/cgroup.freeze 0");
}

TEST_F(CgroupV2Test, StatsAndDestroy) {
  auto m = make(CgroupVersion::kV2);
  auto s = m->stats();
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->memory_usage, 8192u);
  EXPECT_EQ(s->memory_limit, UINT64_MAX);
  EXPECT_EQ(s->cpu_usage_ns, 1500000u);
  EXPECT_EQ(s->pids_current, 2u);
  EXPECT_EQ(s->pids_limit, UINT64_MAX);
  ASSERT_TRUE(m->destroy().ok());
  EXPECT_FALSE(fs::exists(leaf()));
  EXPECT_TRUE(fs::is_dir(root_ + "/strata"));
}

TEST_F(CgroupV2Test, RootlessSkip) {
  ops_->mkdir_errno = EROFS;
  auto m = make(CgroupVersion::kV2, "/strata/c1", true);
  ASSERT_TRUE(m->create().ok());
  EXPECT_TRUE(m->skipped());
  EXPECT_TRUE(m->apply(full_resources()).ok());
  EXPECT_TRUE(ops_->log.empty());
}

TEST_F(CgroupV2Test, RelativePathUnderOwnCgroup) {
  ops_->proc_cgroup = "0::/user.slice/session-1.scope\n";
  auto m = make(CgroupVersion::kV2, "c1");
  EXPECT_EQ(m->paths().at(""), root_ + "/user.slice/session-1.scope/c1");
}

// --- paths and parsers -----------------------------------------------------------------------

TEST(CgroupPathTest, Resolve) {
  using cgroup_internal::resolve_cgroup_path;
  EXPECT_EQ(*resolve_cgroup_path("/a/b", "c1", "/own"), "/a/b");
  EXPECT_EQ(*resolve_cgroup_path("/a//b/./c/", "c1", "/own"), "/a/b/c");
  EXPECT_EQ(*resolve_cgroup_path("x/y", "c1", "/own/p"), "/own/p/x/y");
  EXPECT_EQ(*resolve_cgroup_path("x", "c1", "/"), "/x");
  EXPECT_EQ(*resolve_cgroup_path("", "c1", "/own"), "/strata/c1");
  for (const char* bad : {"/a/../b", "../x", "/..", "a/.."}) {
    auto r = resolve_cgroup_path(bad, "c1", "/own");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().message(),
              "linux.cgroupsPath \"" + std::string(bad) + "\": \"..\" is not allowed in a cgroup path");
  }
  auto sd = resolve_cgroup_path("system.slice:strata:c1", "c1", "/");
  ASSERT_FALSE(sd.ok());
  EXPECT_NE(sd.error().message().find("systemd cgroup paths need the systemd cgroup driver"),
            std::string::npos);
  EXPECT_FALSE(resolve_cgroup_path(":strata:c1", "c1", "/").ok());
  EXPECT_FALSE(resolve_cgroup_path("/", "c1", "/").ok());
  EXPECT_FALSE(resolve_cgroup_path("", "", "/").ok());
  EXPECT_TRUE(resolve_cgroup_path("/a:b/c", "c1", "/").ok()) << "':' in a plain path is fine";
}

TEST(CgroupPathTest, SystemdFormRefusedByTheManager) {
  CgroupConfig cfg;
  cfg.root = "/nonexistent-strata-root";
  cfg.cgroups_path = "machine.slice:libpod:abc";
  cfg.id = "abc";
  cfg.force_version = CgroupVersion::kV1;
  auto m = make_cgroup_manager(cfg);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("systemd cgroup driver"), std::string::npos);
}

TEST(CgroupPathTest, HierarchyDirStripsMountRoot) {
  cgroup_internal::V1Mount m{"/sys/fs/cgroup/memory", "/docker/abc"};
  EXPECT_EQ(*cgroup_internal::hierarchy_dir(m, "c1", "id", "/docker/abc/sub"),
            "/sys/fs/cgroup/memory/sub/c1");
  EXPECT_EQ(*cgroup_internal::hierarchy_dir(m, "/x/c1", "id", "/docker/abc/sub"),
            "/sys/fs/cgroup/memory/x/c1");
}

TEST(CgroupPathTest, ParseProcCgroup) {
  auto m = cgroup_internal::parse_proc_cgroup(
      "9:name=systemd:/\n4:memory:/process_api/06273e\n2:cpu,cpuacct:/a:b\n0::/u\n");
  EXPECT_EQ(m, (std::map<std::string, std::string>{{"name=systemd", "/"},
                                                   {"memory", "/process_api/06273e"},
                                                   {"cpu", "/a:b"},
                                                   {"cpuacct", "/a:b"},
                                                   {"", "/u"}}));
}

TEST(CgroupPathTest, ParseV1Mounts) {
  std::string mi =
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct\n"
      "35 31 0:32 /sub /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
      "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
      "50 23 0:32 / /mnt/other\\040mem rw,relatime - cgroup cgroup rw,memory\n"
      "51 23 0:39 / /sys/fs/cgroup/my\\040pids rw,relatime - cgroup cgroup rw,pids\n";
  auto m = cgroup_internal::parse_v1_mounts(mi, "/sys/fs/cgroup/");
  ASSERT_EQ(m.size(), 5u);
  EXPECT_EQ(m["cpu"].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(m["cpuacct"].mount_point, "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(m["memory"].mount_point, "/sys/fs/cgroup/memory");
  EXPECT_EQ(m["memory"].root, "/sub");
  EXPECT_EQ(m["name=systemd"].mount_point, "/sys/fs/cgroup/systemd");
  EXPECT_EQ(m["pids"].mount_point, "/sys/fs/cgroup/my pids");
}

TEST(CgroupPathTest, DetectTmpdirIsNotCgroup2) {
  EXPECT_EQ(detect_cgroup_version("/tmp"), CgroupVersion::kV1);
}

// --- conversions -----------------------------------------------------------------------------

TEST(CgroupConversionTest, SharesToWeight) {
  using cgroup_internal::cpu_shares_to_weight;
  EXPECT_EQ(cpu_shares_to_weight(2), 1u);
  EXPECT_EQ(cpu_shares_to_weight(1024), 39u);
  EXPECT_EQ(cpu_shares_to_weight(512), 20u);
  EXPECT_EQ(cpu_shares_to_weight(262144), 10000u);
  EXPECT_EQ(cpu_shares_to_weight(1), 1u) << "clamped";
  EXPECT_EQ(cpu_shares_to_weight(1000000), 10000u) << "clamped";
}

TEST(CgroupConversionTest, BlkioToIoWeight) {
  using cgroup_internal::blkio_weight_to_io_weight;
  EXPECT_EQ(blkio_weight_to_io_weight(10), 1u);
  EXPECT_EQ(blkio_weight_to_io_weight(500), 4950u);
  EXPECT_EQ(blkio_weight_to_io_weight(100), 910u);
  EXPECT_EQ(blkio_weight_to_io_weight(1000), 10000u);
}

TEST(CgroupConversionTest, SwapToV2) {
  using cgroup_internal::swap_to_v2;
  EXPECT_EQ(*swap_to_v2({.limit = 64 * kMiB, .swap = 128 * kMiB}), "67108864");
  EXPECT_EQ(*swap_to_v2({.limit = 64 * kMiB, .swap = 64 * kMiB}), "0");
  EXPECT_EQ(*swap_to_v2({.limit = 64 * kMiB, .swap = -1}), "max");
  EXPECT_EQ(*swap_to_v2({.limit = -1}), "max");
  EXPECT_EQ(*swap_to_v2({.limit = 64 * kMiB}), std::nullopt);
  EXPECT_EQ(*swap_to_v2({}), std::nullopt);
  EXPECT_FALSE(swap_to_v2({.limit = 64 * kMiB, .swap = 32 * kMiB}).ok());
  EXPECT_FALSE(swap_to_v2({.swap = 32 * kMiB}).ok());
  EXPECT_FALSE(swap_to_v2({.limit = -1, .swap = 32 * kMiB}).ok());
}

}  // namespace
}  // namespace strata::oci
