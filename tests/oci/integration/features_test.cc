// The process a config describes, observed from inside by /bin/probe: capabilities (CapEff and
// friends in /proc/self/status, ambient ones for a non-root user), user namespace maps, the cgroup
// limit files, a seccomp-blocked syscall's errno, masked and read-only paths, the read-only root,
// hostname and domainname, rlimits, oomScoreAdj, umask, additionalGids, noNewPrivileges; and the
// `features` document.
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "runtime_fixture.h"

namespace strata::oci::it {
namespace {

class FeaturesTest : public RuntimeTest {};

std::string caps_hex(std::initializer_list<int> caps) {
  uint64_t v = 0;
  for (int c : caps) v |= 1ULL << c;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

constexpr int kCapChown = 0, kCapKill = 5, kCapNetBindService = 10;

TEST_F(FeaturesTest, FeaturesDocumentNamesWhatIsSupported) {
  RunResult r = rt({"features"});
  ASSERT_EQ(r.code, 0) << r.err;
  Json f = Json::parse(r.out, nullptr, false);
  ASSERT_FALSE(f.is_discarded()) << r.out;
  EXPECT_EQ(f["ociVersionMin"], "1.0.0");
  EXPECT_EQ(f["ociVersionMax"], "1.1.0");
  EXPECT_EQ(f["hooks"], Json({"prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                              "poststop"}));
  for (const char* ns : {"cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"}) {
    auto& list = f["linux"]["namespaces"];
    EXPECT_NE(std::find(list.begin(), list.end(), ns), list.end()) << ns;
  }
  auto& caps = f["linux"]["capabilities"];
  EXPECT_NE(std::find(caps.begin(), caps.end(), "CAP_SYS_ADMIN"), caps.end());
  EXPECT_EQ(f["linux"]["seccomp"]["enabled"], true);
  auto& actions = f["linux"]["seccomp"]["actions"];
  EXPECT_NE(std::find(actions.begin(), actions.end(), "SCMP_ACT_ERRNO"), actions.end());
  auto& opts = f["mountOptions"];
  for (const char* o : {"rbind", "ro", "nosuid", "rprivate"})
    EXPECT_NE(std::find(opts.begin(), opts.end(), o), opts.end()) << o;
  EXPECT_EQ(f["linux"]["cgroup"]["v1"], true);
}

TEST_F(FeaturesTest, DefaultConfigGivesTheOciDefaultCapabilities) {
  Json f = probe(base_config());
  // CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP NET_BIND_SERVICE
  // SYS_CHROOT KILL AUDIT_WRITE.
  EXPECT_EQ(f["cap_eff"], "00000000a80425fb");
  EXPECT_EQ(f["cap_bnd"], "00000000a80425fb");
  EXPECT_EQ(f["cap_prm"], "00000000a80425fb");
  EXPECT_EQ(f["cap_inh"], "0000000000000000");
  EXPECT_EQ(f["cap_amb"], "0000000000000000");
}

TEST_F(FeaturesTest, CapabilitiesAreExactlyTheConfiguredSets) {
  Json cfg = base_config();
  // For uid 0, execve(2) makes permitted and effective the bounding set (capabilities(7)); the
  // inheritable set is kept as configured.
  Json set = {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"};
  cfg["process"]["capabilities"] = {
      {"bounding", set}, {"effective", set}, {"permitted", set}, {"inheritable", {"CAP_KILL"}}};
  Json f = probe(cfg);
  EXPECT_EQ(f["cap_bnd"], caps_hex({kCapChown, kCapKill, kCapNetBindService}));
  EXPECT_EQ(f["cap_prm"], caps_hex({kCapChown, kCapKill, kCapNetBindService}));
  EXPECT_EQ(f["cap_eff"], caps_hex({kCapChown, kCapKill, kCapNetBindService}));
  EXPECT_EQ(f["cap_inh"], caps_hex({kCapKill}));
  EXPECT_EQ(f["cap_amb"], caps_hex({}));

  cfg["process"].erase("capabilities");  // absent: none at all
  f = probe(cfg);
  EXPECT_EQ(f["cap_eff"], caps_hex({}));
  EXPECT_EQ(f["cap_bnd"], caps_hex({}));
}

TEST_F(FeaturesTest, AmbientCapabilitiesReachANonRootUser) {
  Json cfg = base_config();
  cfg["process"]["user"] = {{"uid", 1000}, {"gid", 1000}};
  Json one = {"CAP_NET_BIND_SERVICE"};
  cfg["process"]["capabilities"] = {
      {"bounding", one}, {"effective", one}, {"permitted", one}, {"inheritable", one}, {"ambient", one}};
  Json f = probe(cfg);
  EXPECT_EQ(f["uid"], 1000);
  EXPECT_EQ(f["euid"], 1000);
  EXPECT_EQ(f["cap_amb"], caps_hex({kCapNetBindService}));
  EXPECT_EQ(f["cap_eff"], caps_hex({kCapNetBindService}));
  EXPECT_EQ(f["cap_prm"], caps_hex({kCapNetBindService}));

  // Without ambient, exec as a non-root user leaves nothing effective.
  cfg["process"]["capabilities"].erase("ambient");
  f = probe(cfg);
  EXPECT_EQ(f["cap_amb"], caps_hex({}));
  EXPECT_EQ(f["cap_eff"], caps_hex({}));
}

TEST_F(FeaturesTest, UserNamespaceMapsTheConfiguredIds) {
  Json cfg = base_config();
  cfg["linux"]["namespaces"].push_back({{"type", "user"}});
  cfg["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 200000}, {"size", 65536}}};
  cfg["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 300000}, {"size", 65536}}};
  cfg["process"]["args"] = {"/bin/probe"};
  Json f = probe(cfg);
  ASSERT_FALSE(f.is_null());
  auto fields = [](const std::string& s) {
    std::istringstream in(s);
    std::vector<long> v;
    for (long x; in >> x;) v.push_back(x);
    return v;
  };
  EXPECT_EQ(fields(f["uid_map"]), std::vector<long>({0, 200000, 65536})) << f["uid_map"];
  EXPECT_EQ(fields(f["gid_map"]), std::vector<long>({0, 300000, 65536})) << f["gid_map"];
  EXPECT_EQ(f["uid"], 0);
  char self_user[64] = {};
  ::readlink("/proc/self/ns/user", self_user, sizeof self_user - 1);
  EXPECT_NE(f["ns"]["user"], std::string(self_user));
  // The container's root is root in its namespace: its capabilities are the configured ones.
  EXPECT_EQ(f["cap_eff"], "00000000a80425fb");
}

TEST_F(FeaturesTest, CgroupLimitsAreTheFilesInside) {
  Json cfg = base_config();
  cfg["linux"]["resources"]["memory"] = {{"limit", 96 << 20}};
  cfg["linux"]["resources"]["pids"] = {{"limit", 42}};
  cfg["linux"]["resources"]["cpu"] = {{"shares", 512}, {"quota", 50000}, {"period", 100000}};
  const std::string mem = "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    pids = "/sys/fs/cgroup/pids/pids.max", shares = "/sys/fs/cgroup/cpu/cpu.shares",
                    quota = "/sys/fs/cgroup/cpu/cpu.cfs_quota_us";
  Json f = probe(cfg, {"/bin/probe", "read", mem, pids, shares, quota, "/proc/self/cgroup"});
  EXPECT_EQ(f[mem]["data"], std::to_string(96 << 20) + "\n");
  EXPECT_EQ(f[pids]["data"], "42\n");
  EXPECT_EQ(f[shares]["data"], "512\n");
  EXPECT_EQ(f[quota]["data"], "50000\n");
  // In its own cgroup namespace the container sees itself at the root of every hierarchy.
  EXPECT_NE(f["/proc/self/cgroup"]["data"].get<std::string>().find(":memory:/\n"), std::string::npos)
      << f["/proc/self/cgroup"]["data"];
}

TEST_F(FeaturesTest, SeccompBlockedSyscallReturnsTheConfiguredErrno) {
  Json cfg = base_config();
  cfg["linux"]["seccomp"] = {
      {"defaultAction", "SCMP_ACT_ALLOW"},
      {"architectures", {"SCMP_ARCH_X86_64"}},
      {"syscalls",
       {{{"names", {"mkdir", "mkdirat"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 42}},
        {{"names", {"sethostname"}}, {"action", "SCMP_ACT_ERRNO"}}}}};
  Json f = probe(cfg, {"/bin/probe", "syscall", "mkdir"});
  EXPECT_EQ(f["ret"], -1);
  EXPECT_EQ(f["errno"], 42);  // not EROFS (30): the filter answered before the filesystem
  f = probe(cfg, {"/bin/probe", "syscall", "sethostname"});
  EXPECT_EQ(f["errno"], EPERM);
  f = probe(cfg, {"/bin/probe", "syscall", "getpid"});
  EXPECT_EQ(f["ret"], 1);
  f = probe(cfg);
  EXPECT_EQ(f["seccomp"], "2");  // filter mode
  // Without the filter mkdir reaches the read-only root.
  cfg["linux"].erase("seccomp");
  f = probe(cfg, {"/bin/probe", "syscall", "mkdir"});
  EXPECT_EQ(f["errno"], EROFS);
}

TEST_F(FeaturesTest, MaskedPathsAreUnreadable) {
  ASSERT_NE(read_file("/proc/timer_list"), "") << "host premise: /proc/timer_list has content";
  ASSERT_TRUE(std::filesystem::exists("/sys/firmware/memmap")) << "host premise";
  Json cfg = base_config();
  cfg["linux"]["maskedPaths"].push_back("/etc/passwd");
  Json f = probe(
      cfg, {"/bin/probe", "read", "/proc/timer_list", "/sys/firmware/memmap", "/etc/passwd", "/etc/group"});
  EXPECT_EQ(f["/proc/timer_list"]["errno"], 0);
  EXPECT_EQ(f["/proc/timer_list"]["data"], "");
  EXPECT_EQ(f["/sys/firmware/memmap"]["errno"], ENOENT);
  EXPECT_EQ(f["/etc/passwd"]["data"], "");
  EXPECT_NE(f["/etc/group"]["data"], "");  // the unmasked neighbour is read normally
}

TEST_F(FeaturesTest, ReadonlyPathsRejectWrites) {
  Json cfg = base_config();
  cfg["mounts"].push_back({{"destination", "/scratch"}, {"type", "tmpfs"}, {"source", "tmpfs"}});
  cfg["mounts"].push_back({{"destination", "/scratch2"}, {"type", "tmpfs"}, {"source", "tmpfs"}});
  cfg["linux"]["readonlyPaths"].push_back("/scratch");
  Json f = probe(cfg, {"/bin/probe", "write", "/proc/sys/kernel/domainname", "/scratch/f", "/scratch2/f"});
  EXPECT_EQ(f["/proc/sys/kernel/domainname"]["errno"], EROFS);
  EXPECT_EQ(f["/scratch/f"]["errno"], EROFS);
  EXPECT_EQ(f["/scratch2/f"]["errno"], 0);
}

TEST_F(FeaturesTest, ReadonlyRootRejectsWritesAndAWritableOneAccepts) {
  Json cfg = base_config();
  Json f = probe(cfg, {"/bin/probe", "write", "/newfile", "/dev/shm/f"});
  EXPECT_EQ(f["/newfile"]["errno"], EROFS);
  EXPECT_EQ(f["/dev/shm/f"]["errno"], 0);

  // A writable root on a copy of the rootfs: the write lands in the copy.
  std::string copy = tmp_ + "/rootfs";
  ASSERT_EQ(run_cmd({"/bin/cp", "-a", kRootfs, copy}).code, 0);
  cfg["root"] = {{"path", copy}, {"readonly", false}};
  f = probe(cfg, {"/bin/probe", "write", "/newfile"});
  EXPECT_EQ(f["/newfile"]["errno"], 0);
  EXPECT_EQ(read_file(copy + "/newfile"), "x");
}

TEST_F(FeaturesTest, HostnameAndDomainnameAreTheContainers) {
  char host_before[256] = {};
  ::gethostname(host_before, sizeof host_before);
  Json cfg = base_config();
  cfg["hostname"] = "it-host";
  cfg["domainname"] = "it.example";
  Json f = probe(cfg);
  EXPECT_EQ(f["hostname"], "it-host");
  EXPECT_EQ(f["domainname"], "it.example");
  char host_after[256] = {};
  ::gethostname(host_after, sizeof host_after);
  EXPECT_STREQ(host_before, host_after);
}

TEST_F(FeaturesTest, RlimitsAreSet) {
  Json cfg = base_config();
  cfg["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 100}, {"hard", 200}},
                               {{"type", "RLIMIT_NPROC"}, {"soft", 500}, {"hard", 600}}};
  Json f = probe(cfg);
  EXPECT_EQ(f["nofile_soft"], 100);
  EXPECT_EQ(f["nofile_hard"], 200);
  EXPECT_EQ(f["nproc_soft"], 500);
  EXPECT_EQ(f["nproc_hard"], 600);
}

TEST_F(FeaturesTest, OomScoreAdjUmaskGroupsAndNoNewPrivileges) {
  Json cfg = base_config();
  cfg["process"]["oomScoreAdj"] = 500;
  cfg["process"]["user"] = {{"uid", 0}, {"gid", 0}, {"umask", 63}, {"additionalGids", {10, 20}}};
  cfg["process"]["noNewPrivileges"] = true;
  Json f = probe(cfg);
  EXPECT_EQ(f["oom_score_adj"], "500\n");
  EXPECT_EQ(f["umask"], 63);
  EXPECT_EQ(f["groups"], Json({10, 20}));
  EXPECT_EQ(f["no_new_privs"], "1");

  // A negative oomScoreAdj needs CAP_SYS_RESOURCE, which root lacks on these machines
  // (bad_input_test checks the error).
  cfg["process"]["noNewPrivileges"] = false;
  cfg["process"]["oomScoreAdj"] = 0;
  cfg["process"]["user"] = {{"uid", 0}, {"gid", 0}, {"umask", 2}};
  f = probe(cfg);
  EXPECT_EQ(f["no_new_privs"], "0");
  EXPECT_EQ(f["oom_score_adj"], "0\n");
  EXPECT_EQ(f["umask"], 2);
  EXPECT_EQ(f["groups"], Json::array());
}

}  // namespace
}  // namespace strata::oci::it
