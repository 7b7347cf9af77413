// The container's filesystem and namespaces, observed from inside by /bin/probe: bind and rbind
// mounts (ro, rro), tmpfs with options, proc/sysfs/mqueue/devpts/cgroup mounts (the container's own
// memory limit read through /sys/fs/cgroup/memory), linux.devices with mode and owner, the
// default devices, new namespaces, joining a network namespace by path, the time namespace,
// and sysctl written in the container's namespaces only.
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <tuple>

#include "base/cleanup.h"
#include "runtime_fixture.h"

namespace strata::oci::it {
namespace {

class MountsTest : public RuntimeTest {};

struct MountLine {
  std::string point, fstype, options, super_options;
};

// Mount point -> its line of the probe's mountinfo (the last mount wins, as path lookup does).
std::map<std::string, MountLine> mounts_of(const Json& facts) {
  std::map<std::string, MountLine> out;
  std::istringstream in(facts["mountinfo"].get<std::string>());
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::vector<std::string> w;
    for (std::string x; f >> x;) w.push_back(x);
    auto sep = std::find(w.begin(), w.end(), "-");
    if (w.size() < 6 || sep == w.end() || w.end() - sep < 4) continue;
    out[w[4]] = MountLine{w[4], sep[1], w[5], sep[3]};
  }
  return out;
}

std::string ns_link(const std::string& path) {
  char buf[128] = {};
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf - 1);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

TEST_F(MountsTest, BindMountsAreReadOnlyAndRecursiveAsAsked) {
  std::string data = tmp_ + "/data";
  make_dir(data + "/sub");
  write_file(data + "/hello", "from-host");
  ASSERT_EQ(::mount("tmpfs", (data + "/sub").c_str(), "tmpfs", 0, "size=1m"), 0);
  Cleanup unmount([&] { ::umount2((data + "/sub").c_str(), MNT_DETACH); });
  write_file(data + "/sub/deep", "deep-file");
  Json cfg = base_config();
  cfg["mounts"].push_back(
      {{"destination", "/data-ro"}, {"type", "bind"}, {"source", data}, {"options", {"bind", "ro"}}});
  cfg["mounts"].push_back(
      {{"destination", "/data-rbind"}, {"type", "bind"}, {"source", data}, {"options", {"rbind"}}});
  cfg["mounts"].push_back(
      {{"destination", "/data-rro"}, {"type", "bind"}, {"source", data}, {"options", {"rbind", "rro"}}});
  Json f = probe(cfg, {"/bin/probe", "read", "/data-ro/hello", "/data-ro/sub/deep", "/data-rbind/sub/deep"});
  EXPECT_EQ(f["/data-ro/hello"]["data"], "from-host");
  EXPECT_EQ(f["/data-ro/sub/deep"]["errno"], ENOENT);  // bind: the submount stays behind
  EXPECT_EQ(f["/data-rbind/sub/deep"]["data"], "deep-file");
  f = probe(cfg, {"/bin/probe", "write", "/data-ro/new", "/data-rbind/sub/new", "/data-rro/sub/new2"});
  EXPECT_EQ(f["/data-ro/new"]["errno"], EROFS);
  EXPECT_EQ(f["/data-rbind/sub/new"]["errno"], 0);
  EXPECT_EQ(f["/data-rro/sub/new2"]["errno"], EROFS);
  EXPECT_EQ(read_file(data + "/sub/new"), "x");
  EXPECT_FALSE(std::filesystem::exists(data + "/new"));
}

TEST_F(MountsTest, TmpfsTakesItsOptions) {
  Json cfg = base_config();
  cfg["mounts"].push_back(
      {{"destination", "/scratch"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "nodev", "noexec", "mode=1770", "size=2m", "uid=1000", "gid=1001"}}});
  Json f = probe(cfg, {"/bin/probe", "stat", "/scratch"});
  EXPECT_EQ(f["/scratch"]["type"], "d");
  EXPECT_EQ(f["/scratch"]["mode"], 01770);
  EXPECT_EQ(f["/scratch"]["uid"], 1000);
  EXPECT_EQ(f["/scratch"]["gid"], 1001);
  auto m = mounts_of(probe(cfg));
  ASSERT_TRUE(m.count("/scratch"));
  EXPECT_EQ(m["/scratch"].fstype, "tmpfs");
  EXPECT_NE(m["/scratch"].super_options.find("size=2048k"), std::string::npos) << m["/scratch"].super_options;
  for (const char* o : {"nosuid", "nodev", "noexec"})
    EXPECT_NE(m["/scratch"].options.find(o), std::string::npos) << o << " in " << m["/scratch"].options;
  f = probe(cfg, {"/bin/probe", "write", "/scratch/f"});
  EXPECT_EQ(f["/scratch/f"]["errno"], 0);
}

TEST_F(MountsTest, KernelFilesystemsAndTheContainersOwnCgroup) {
  Json cfg = base_config();
  cfg["linux"]["resources"]["memory"] = {{"limit", 80 << 20}};
  auto m = mounts_of(probe(cfg));
  const std::pair<const char*, const char*> expected[] = {{"/proc", "proc"},
                                                          {"/sys", "sysfs"},
                                                          {"/dev", "tmpfs"},
                                                          {"/dev/pts", "devpts"},
                                                          {"/dev/shm", "tmpfs"},
                                                          {"/dev/mqueue", "mqueue"},
                                                          {"/sys/fs/cgroup", "tmpfs"},
                                                          {"/sys/fs/cgroup/memory", "cgroup"},
                                                          {"/sys/fs/cgroup/pids", "cgroup"}};
  for (const auto& [point, type] : expected) {
    ASSERT_TRUE(m.count(point)) << point;
    EXPECT_EQ(m[point].fstype, type) << point;
  }
  EXPECT_EQ(m["/sys"].options.rfind("ro,", 0), 0u) << m["/sys"].options;
  EXPECT_EQ(m["/sys/fs/cgroup/memory"].options.rfind("ro,", 0), 0u);
  EXPECT_NE(m["/dev/pts"].super_options.find("ptmxmode=666"), std::string::npos);
  const std::string limit = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
  Json f = probe(cfg, {"/bin/probe", "read", limit});
  EXPECT_EQ(f[limit]["data"], std::to_string(80 << 20) + "\n");
}

TEST_F(MountsTest, LinuxDevicesGetTheirModeAndOwner) {
  Json cfg = base_config();
  cfg["linux"]["devices"] = {{{"path", "/dev/fuse"},
                              {"type", "c"},
                              {"major", 10},
                              {"minor", 229},
                              {"fileMode", 0640},
                              {"uid", 1000},
                              {"gid", 1001}},
                             {{"path", "/dev/custom/null2"},
                              {"type", "c"},
                              {"major", 1},
                              {"minor", 3},
                              {"fileMode", 0600},
                              {"uid", 5},
                              {"gid", 6}}};
  // The device cgroup must let the node be made (m); reading and writing stay denied.
  cfg["linux"]["resources"]["devices"].push_back(
      {{"allow", true}, {"type", "c"}, {"major", 10}, {"minor", 229}, {"access", "m"}});
  Json f = probe(cfg, {"/bin/probe", "stat", "/dev/fuse", "/dev/custom/null2"});
  EXPECT_EQ(f["/dev/fuse"], Json({{"errno", 0},
                                  {"type", "c"},
                                  {"mode", 0640},
                                  {"uid", 1000},
                                  {"gid", 1001},
                                  {"major", 10},
                                  {"minor", 229}}));
  EXPECT_EQ(
      f["/dev/custom/null2"],
      Json(
          {{"errno", 0}, {"type", "c"}, {"mode", 0600}, {"uid", 5}, {"gid", 6}, {"major", 1}, {"minor", 3}}));
  // The default config denies all but the standard devices (1:3 among them).
  f = probe(cfg, {"/bin/probe", "read", "/dev/fuse", "/dev/custom/null2"});
  EXPECT_EQ(f["/dev/fuse"]["open_errno"], EPERM);
  EXPECT_EQ(f["/dev/custom/null2"]["errno"], 0);
  cfg["linux"]["resources"]["devices"].push_back(
      {{"allow", true}, {"type", "c"}, {"major", 10}, {"minor", 229}, {"access", "rw"}});
  f = probe(cfg, {"/bin/probe", "read", "/dev/fuse"});
  EXPECT_EQ(f["/dev/fuse"]["open_errno"], 0);  // (reading an unmounted fuse device fails in the driver)
}

TEST_F(MountsTest, DefaultDevicesAndLinks) {
  Json f = probe(base_config(), {"/bin/probe", "stat", "/dev/null", "/dev/zero", "/dev/full", "/dev/random",
                                 "/dev/urandom", "/dev/tty", "/dev/ptmx", "/dev/fd", "/dev/stdin",
                                 "/dev/stdout", "/dev/stderr", "/dev/pts", "/dev/shm", "/dev/sda"});
  const std::tuple<const char*, int, int> chars[] = {{"/dev/null", 1, 3},    {"/dev/zero", 1, 5},
                                                     {"/dev/full", 1, 7},    {"/dev/random", 1, 8},
                                                     {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0}};
  for (const auto& [path, major, minor] : chars) {
    EXPECT_EQ(f[path]["type"], "c") << path;
    EXPECT_EQ(f[path]["major"], major) << path;
    EXPECT_EQ(f[path]["minor"], minor) << path;
    EXPECT_EQ(f[path]["mode"], 0666) << path;
    EXPECT_EQ(f[path]["uid"], 0) << path;
  }
  for (const char* l : {"/dev/ptmx", "/dev/fd", "/dev/stdin", "/dev/stdout", "/dev/stderr"})
    EXPECT_EQ(f[l]["type"], "l") << l;
  EXPECT_EQ(f["/dev/pts"]["type"], "d");
  EXPECT_EQ(f["/dev/shm"]["type"], "d");
  EXPECT_EQ(f["/dev/sda"]["errno"], ENOENT);
  f = probe(base_config(), {"/bin/probe", "read", "/dev/zero", "/dev/urandom"});
  EXPECT_EQ(f["/dev/zero"]["errno"], 0);
  EXPECT_EQ(f["/dev/urandom"]["errno"], 0);
}

TEST_F(MountsTest, NewNamespacesDifferFromTheHosts) {
  Json f = probe(base_config());
  for (const char* ns : {"pid", "net", "ipc", "uts", "mnt", "cgroup"})
    EXPECT_NE(f["ns"][ns], ns_link(std::string("/proc/self/ns/") + ns)) << ns;
  for (const char* ns : {"user", "time"})
    EXPECT_EQ(f["ns"][ns], ns_link(std::string("/proc/self/ns/") + ns)) << ns;
  EXPECT_EQ(f["pid"], 1);
}

TEST_F(MountsTest, JoinsANetworkNamespaceByPath) {
  std::string name = tag_ + "-net";
  ASSERT_EQ(run_cmd({"/usr/sbin/ip", "netns", "add", name}).code, 0);
  Cleanup del([&] { (void)run_cmd({"/usr/sbin/ip", "netns", "del", name}); });
  std::string path = "/var/run/netns/" + name;
  ASSERT_EQ(run_cmd({"/usr/sbin/ip", "-n", name, "link", "add", "itveth0", "type", "veth", "peer", "name",
                     "itveth1"})
                .code,
            0);
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  Json cfg = base_config();
  for (auto& ns : cfg["linux"]["namespaces"])
    if (ns["type"] == "network") ns["path"] = path;
  Json f = probe(cfg, {"/bin/probe", "read", "/sys/class/net/itveth0/type"});
  EXPECT_EQ(f["/sys/class/net/itveth0/type"]["errno"], 0) << "the joined namespace's veth is not visible";
  f = probe(cfg);
  EXPECT_EQ(f["ns"]["net"], "net:[" + std::to_string(st.st_ino) + "]");
}

TEST_F(MountsTest, JoinsANetworkNamespaceByPathWithANewUserNamespace) {
  // podman's rootful --uidmap: netavark's named netns (owned by the host's user namespace) plus
  // a new user namespace. The init must join before it creates the user namespace.
  std::string name = tag_ + "-unet";
  ASSERT_EQ(run_cmd({"/usr/sbin/ip", "netns", "add", name}).code, 0);
  Cleanup del([&] { (void)run_cmd({"/usr/sbin/ip", "netns", "del", name}); });
  std::string path = "/var/run/netns/" + name;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  Json cfg = base_config();
  for (auto& ns : cfg["linux"]["namespaces"])
    if (ns["type"] == "network") ns["path"] = path;
  cfg["linux"]["namespaces"].push_back({{"type", "user"}});
  cfg["linux"]["uidMappings"] = {{{"containerID", 0}, {"hostID", 200000}, {"size", 65536}}};
  cfg["linux"]["gidMappings"] = {{{"containerID", 0}, {"hostID", 200000}, {"size", 65536}}};
  // sysfs cannot be mounted from a user namespace into a network namespace it does not own.
  Json mounts = Json::array();
  for (const auto& m : cfg["mounts"])
    if (m["type"] != "sysfs" && m["type"] != "cgroup") mounts.push_back(m);
  cfg["mounts"] = mounts;
  Json f = probe(cfg);
  EXPECT_EQ(f["ns"]["net"], "net:[" + std::to_string(st.st_ino) + "]");
  EXPECT_NE(f["ns"]["user"], ns_link("/proc/self/ns/user"));
  EXPECT_NE(f["uid_map"].get<std::string>().find("200000"), std::string::npos) << f["uid_map"];
  EXPECT_EQ(f["uid"], 0);
}

TEST_F(MountsTest, TimeNamespaceWithOffsets) {
  Json cfg = base_config();
  cfg["linux"]["namespaces"].push_back({{"type", "time"}});
  Json f = probe(cfg);
  EXPECT_NE(f["ns"]["time"], ns_link("/proc/self/ns/time"));

  constexpr long kDay = 86400;
  cfg["linux"]["timeOffsets"] = {{"boottime", {{"secs", 365 * kDay}, {"nanosecs", 0}}},
                                 {"monotonic", {{"secs", 2 * kDay}, {"nanosecs", 0}}}};
  f = probe(cfg, {"/bin/probe", "read", "/proc/uptime", "/proc/self/timens_offsets"});
  double host_uptime = std::stod(read_file("/proc/uptime"));
  double uptime = std::stod(f["/proc/uptime"]["data"].get<std::string>());
  EXPECT_GT(uptime, host_uptime + 364 * kDay) << f["/proc/uptime"]["data"];
  std::istringstream offsets(f["/proc/self/timens_offsets"]["data"].get<std::string>());
  std::map<std::string, long> secs;
  for (std::string clock; offsets >> clock;) {
    long s = 0, ns = 0;
    offsets >> s >> ns;
    secs[clock] = s;
  }
  EXPECT_EQ(secs["monotonic"], 2 * kDay) << f["/proc/self/timens_offsets"]["data"];
  EXPECT_EQ(secs["boottime"], 365 * kDay);
  EXPECT_EQ(probe(cfg)["pid"], 1) << "the pid namespace moved with the time namespace";
  // exec enters the same clocks.
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  std::string cid = id("timens");
  run_detached(cfg, cid);
  RunResult r = rt({"exec", cid, "/bin/probe", "read", "/proc/uptime"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GT(std::stod(last_json(r.out)["/proc/uptime"]["data"].get<std::string>()), host_uptime + 364 * kDay);
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

TEST_F(MountsTest, SysctlIsSetInsideOnly) {
  std::string host_shm = read_file("/proc/sys/kernel/shm_rmid_forced");
  std::string host_somaxconn = read_file("/proc/sys/net/core/somaxconn");
  Json cfg = base_config();
  cfg["linux"]["sysctl"] = {
      {"net.ipv4.ip_forward", "1"}, {"kernel.shm_rmid_forced", "1"}, {"net.core.somaxconn", "1234"}};
  const std::string fwd = "/proc/sys/net/ipv4/ip_forward", shm = "/proc/sys/kernel/shm_rmid_forced",
                    som = "/proc/sys/net/core/somaxconn";
  Json f = probe(cfg, {"/bin/probe", "read", fwd, shm, som});
  EXPECT_EQ(f[fwd]["data"], "1\n");
  EXPECT_EQ(f[shm]["data"], "1\n");
  EXPECT_EQ(f[som]["data"], "1234\n");
  EXPECT_EQ(read_file("/proc/sys/kernel/shm_rmid_forced"), host_shm);
  EXPECT_EQ(read_file("/proc/sys/net/core/somaxconn"), host_somaxconn);
  // Still read-only afterwards.
  f = probe(cfg, {"/bin/probe", "write", shm});
  EXPECT_EQ(f[shm]["errno"], EROFS);
}

}  // namespace
}  // namespace strata::oci::it
