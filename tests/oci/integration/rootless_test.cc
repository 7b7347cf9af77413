// Rootless: strata-runtime run by an unprivileged user (nobody, 65534) with the config from
// `spec --rootless`: a user namespace mapping the caller's uid, cgroups skipped with a warning
// (they are not delegated to that user here), the lifecycle and exec working, and no residue.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "runtime_fixture.h"

namespace strata::oci::it {
namespace {

constexpr uid_t kNobody = 65534;

class RootlessTest : public RuntimeTest {
 protected:
  void SetUp() override {
    RuntimeTest::SetUp();
    owner_uid_ = kNobody;
    owner_gid_ = kNobody;
    make_dir(root_, 0700, kNobody, kNobody);
    make_dir(bundle_, 0755, kNobody, kNobody);
    as_nobody_.uid = kNobody;
    as_nobody_.gid = kNobody;
    as_nobody_.env = {"HOME=/nonexistent"};
  }
  // `spec --rootless` written by nobody, then pointed at the shared rootfs and the probe.
  Json rootless_config() {
    RunOptions o = as_nobody_;
    o.cwd = bundle_;
    RunResult r = rt({"spec", "--rootless"}, o);
    EXPECT_EQ(r.code, 0) << r.err;
    Json cfg = Json::parse(read_file(bundle_ + "/config.json"), nullptr, false);
    EXPECT_FALSE(cfg.is_discarded());
    std::filesystem::remove(bundle_ + "/config.json");
    if (cfg.is_discarded()) return Json::object();
    cfg["process"]["terminal"] = false;
    cfg["process"]["args"] = {"/bin/probe"};
    cfg["process"]["env"].push_back("STRATA_IT_TAG=" + tag_);
    cfg["root"]["path"] = kRootfs;
    cfg["root"]["readonly"] = true;
    return cfg;
  }
  RunOptions as_nobody_;
};

TEST_F(RootlessTest, SpecRootlessMapsTheCallersIds) {
  Json cfg = rootless_config();
  Json expected_map = {{{"containerID", 0}, {"hostID", kNobody}, {"size", 1}}};
  EXPECT_EQ(cfg["linux"]["uidMappings"], expected_map);
  EXPECT_EQ(cfg["linux"]["gidMappings"], expected_map);
  bool user = false, network = false;
  for (const auto& ns : cfg["linux"]["namespaces"]) {
    user |= ns["type"] == "user";
    network |= ns["type"] == "network";
  }
  EXPECT_TRUE(user);
  EXPECT_FALSE(network);
}

TEST_F(RootlessTest, RunsAsAnUnprivilegedUserWithCgroupsSkipped) {
  Json cfg = rootless_config();
  write_config(cfg);
  RunResult r = rt({"run", "-b", bundle_, id("rootless")}, as_nobody_);
  ASSERT_EQ(r.code, 0) << r.err;
  Json f = last_json(r.out);
  ASSERT_FALSE(f.is_null()) << r.out;
  EXPECT_EQ(f["uid"], 0);
  EXPECT_EQ(f["gid"], 0);
  std::istringstream map(f["uid_map"].get<std::string>());
  long inside = -1, outside = -1, size = -1;
  map >> inside >> outside >> size;
  EXPECT_EQ(inside, 0);
  EXPECT_EQ(outside, kNobody);
  EXPECT_EQ(size, 1);
  EXPECT_EQ(f["hostname"], cfg["hostname"]);
  EXPECT_EQ(f["pid"], 1);
  // The warning says what was skipped and why.
  EXPECT_NE(r.err.find("cgroup"), std::string::npos) << r.err;
  // Resources asked for cannot be applied: warned about, not fatal.
  cfg["linux"]["resources"] = {{"pids", {{"limit", 50}}}};
  write_config(cfg);
  r = rt({"run", "-b", bundle_, id("rootless-res")}, as_nobody_);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("linux.resources ignored"), std::string::npos) << r.err;
}

TEST_F(RootlessTest, LifecycleAndExecAsAnUnprivilegedUser) {
  Json cfg = rootless_config();
  cfg["process"]["args"] = {"/bin/probe", "signals"};
  write_config(cfg);
  std::string cid = id("life");
  AsyncRun create = rt_async({"create", "-b", bundle_, cid}, as_nobody_);
  RunResult cr = create.wait();
  ASSERT_EQ(cr.code, 0) << cr.err;
  RunResult s = rt({"state", cid}, as_nobody_);
  ASSERT_EQ(s.code, 0) << s.err;
  EXPECT_EQ(Json::parse(s.out)["status"], "created");
  ASSERT_EQ(rt({"start", cid}, as_nobody_).code, 0);
  ASSERT_TRUE(create.wait_out("ready")) << create.out() << create.err();

  RunResult e = rt({"exec", "--env", "IN_EXEC=1", cid, "/bin/probe"}, as_nobody_);
  ASSERT_EQ(e.code, 0) << e.err;
  Json f = last_json(e.out);
  EXPECT_EQ(f["uid"], 0);
  EXPECT_NE(std::find(f["env"].begin(), f["env"].end(), "IN_EXEC=1"), f["env"].end());
  pid_t init = Json::parse(rt({"state", cid}, as_nobody_).out)["pid"].get<pid_t>();
  char init_ns[64] = {};
  ::readlink(("/proc/" + std::to_string(init) + "/ns/user").c_str(), init_ns, sizeof init_ns - 1);
  EXPECT_EQ(f["ns"]["user"], std::string(init_ns));

  RunResult ps = rt({"ps", "--format", "json", cid}, as_nobody_);
  EXPECT_EQ(ps.code, 0) << ps.err;
  // No cgroup: pause cannot freeze anything, and says so.
  RunResult p = rt({"pause", cid}, as_nobody_);
  EXPECT_NE(p.code, 0);
  EXPECT_NE(p.err.find("has no cgroup"), std::string::npos) << p.err;

  ASSERT_EQ(rt({"kill", cid, "USR1"}, as_nobody_).code, 0);
  ASSERT_TRUE(wait_status(cid, "stopped"));
  EXPECT_EQ(last_json(create.out())["signal"], 10);
  RunResult d = rt({"delete", cid}, as_nobody_);
  EXPECT_EQ(d.code, 0) << d.err;
}

}  // namespace
}  // namespace strata::oci::it
