// runtime-spec hooks (config.md "POSIX-platform Hooks") run by strata-runtime: all six kinds, each
// writing a marker file with the state JSON it got on stdin (id and pid checked), in the order the
// lifecycle defines, in the namespaces the spec names for them; args, env and timeout passed;
// failures of poststart and poststop logged without stopping the lifecycle.
#include <unistd.h>

#include <filesystem>
#include <sstream>

#include "runtime_fixture.h"

namespace strata::oci::it {
namespace {

class HooksTest : public RuntimeTest {
 protected:
  // A hook that saves its stdin as DIR/KIND.json, appends KIND to DIR/order and records its
  // mount and network namespaces in DIR/KIND.ns. `dir` is as the hook sees it.
  Json marker_hook(const std::string& dir, const std::string& kind) const {
    const char* script =
        "cat > \"$1/$2.json\"; echo \"$(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/net)\" > "
        "\"$1/$2.ns\";"
        " echo \"$2\" >> \"$1/order\"";
    return {{"path", "/bin/sh"},
            {"args", {"sh", "-c", script, "sh", dir, kind}},
            {"env", {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "STRATA_IT_TAG=" + tag_}}};
  }
  static std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
};

std::string self_ns(const char* ns) {
  char buf[128] = {};
  ssize_t n = ::readlink((std::string("/proc/self/ns/") + ns).c_str(), buf, sizeof buf - 1);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

TEST_F(HooksTest, AllSixKindsRunInOrderWithTheStateOnStdin) {
  std::string dir = tmp_ + "/hooks";
  make_dir(dir, 0777);
  Json cfg = base_config();
  for (const char* kind : {"prestart", "createRuntime", "createContainer", "poststart", "poststop"})
    cfg["hooks"][kind] = {marker_hook(dir, kind)};
  // startContainer runs in the container: its path and files are the container's.
  cfg["hooks"]["startContainer"] = {marker_hook("/hooks", "startContainer")};
  cfg["mounts"].push_back(
      {{"destination", "/hooks"}, {"type", "bind"}, {"source", dir}, {"options", {"rbind"}}});
  cfg["process"]["args"] = {
      "/bin/sh", "-c",
      "test -s /hooks/startContainer.json && echo hook-before-process; exec /bin/probe signals"};
  write_config(cfg);
  std::string cid = id("hooks");
  AsyncRun create = rt_async({"create", "-b", bundle_, cid});
  RunResult cr = create.wait();
  ASSERT_EQ(cr.code, 0) << cr.err;
  EXPECT_EQ(lines(read_file(dir + "/order")),
            std::vector<std::string>({"prestart", "createRuntime", "createContainer"}));
  pid_t pid = state(cid)["pid"].get<pid_t>();
  for (const char* kind : {"prestart", "createRuntime", "createContainer"}) {
    Json st = Json::parse(read_file(dir + "/" + kind + ".json"), nullptr, false);
    ASSERT_FALSE(st.is_discarded()) << kind << ": " << read_file(dir + "/" + kind + ".json");
    EXPECT_EQ(st["id"], cid) << kind;
    EXPECT_EQ(st["pid"], pid) << kind;
    EXPECT_EQ(st["bundle"], bundle_) << kind;
  }

  ASSERT_EQ(rt({"start", cid}).code, 0);
  // poststart has run when start returns, after the process was executed.
  EXPECT_TRUE(std::filesystem::exists(dir + "/poststart.json"));
  std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  EXPECT_TRUE(cmdline.rfind("/bin/sh", 0) == 0 || cmdline.rfind("/bin/probe", 0) == 0) << cmdline;
  ASSERT_TRUE(create.wait_out("ready")) << create.out() << create.err();
  EXPECT_NE(create.out().find("hook-before-process"), std::string::npos) << create.out();
  for (const char* kind : {"startContainer", "poststart"}) {
    Json st = Json::parse(read_file(dir + "/" + kind + ".json"), nullptr, false);
    ASSERT_FALSE(st.is_discarded()) << kind;
    EXPECT_EQ(st["id"], cid) << kind;
    EXPECT_EQ(st["pid"], pid) << kind;
  }
  ASSERT_EQ(rt({"kill", cid, "USR1"}).code, 0);
  ASSERT_TRUE(wait_status(cid, "stopped"));
  ASSERT_EQ(rt({"delete", cid}).code, 0);
  Json st = Json::parse(read_file(dir + "/poststop.json"), nullptr, false);
  ASSERT_FALSE(st.is_discarded());
  EXPECT_EQ(st["id"], cid);
  EXPECT_EQ(st["status"], "stopped");

  // poststart waits for the exec of the process, which follows startContainer.
  EXPECT_EQ(lines(read_file(dir + "/order")),
            std::vector<std::string>(
                {"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}));
}

TEST_F(HooksTest, EachKindRunsInTheNamespacesTheSpecNames) {
  std::string dir = tmp_ + "/hooks";
  make_dir(dir, 0777);
  Json cfg = base_config();
  for (const char* kind : {"prestart", "createRuntime", "createContainer", "poststart"})
    cfg["hooks"][kind] = {marker_hook(dir, kind)};
  cfg["hooks"]["startContainer"] = {marker_hook("/hooks", "startContainer")};
  cfg["mounts"].push_back(
      {{"destination", "/hooks"}, {"type", "bind"}, {"source", dir}, {"options", {"rbind"}}});
  cfg["process"]["args"] = {"/bin/probe"};
  write_config(cfg);
  RunResult r = rt({"run", "-b", bundle_, id("hookns")});
  ASSERT_EQ(r.code, 0) << r.err;
  Json f = last_json(r.out);
  std::string host = self_ns("mnt") + " " + self_ns("net");
  std::string container = f["ns"]["mnt"].get<std::string>() + " " + f["ns"]["net"].get<std::string>();
  ASSERT_NE(host, container);
  // Runtime namespace: prestart, createRuntime, poststart. Container namespace: createContainer,
  // startContainer.
  for (const char* kind : {"prestart", "createRuntime", "poststart"})
    EXPECT_EQ(read_file(dir + "/" + kind + ".ns"), host + "\n") << kind;
  for (const char* kind : {"createContainer", "startContainer"})
    EXPECT_EQ(read_file(dir + "/" + kind + ".ns"), container + "\n") << kind;
}

TEST_F(HooksTest, ArgsEnvAndTimeoutArePassed) {
  std::string out = tmp_ + "/args";
  Json cfg = base_config();
  cfg["hooks"]["prestart"] = {{{"path", "/bin/sh"},
                               {"args", {"sh", "-c", "echo \"$0 $1 $FOO\" > " + out, "zero", "one"}},
                               {"env", {"FOO=bar", "STRATA_IT_TAG=" + tag_}},
                               {"timeout", 5}}};
  write_config(cfg);
  RunResult r = rt({"run", "-b", bundle_, id("args")});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(read_file(out), "zero one bar\n");
}

TEST_F(HooksTest, FailingPoststartAndPoststopAreLoggedAndTheLifecycleGoesOn) {
  Json fail = {{"path", "/bin/sh"}, {"args", {"sh", "-c", "exit 4"}}, {"env", {"STRATA_IT_TAG=" + tag_}}};
  Json cfg = base_config();
  cfg["hooks"]["poststart"] = {fail};
  cfg["hooks"]["poststop"] = {fail};
  cfg["process"]["args"] = {"/bin/probe", "signals"};
  write_config(cfg);
  std::string cid = id("postfail");
  AsyncRun create = rt_async({"create", "-b", bundle_, cid});
  ASSERT_EQ(create.wait().code, 0);
  RunResult s = rt({"start", cid});
  EXPECT_EQ(s.code, 0) << s.err;
  EXPECT_NE(s.err.find("poststart hook 0 (/bin/sh): exited with status 4"), std::string::npos) << s.err;
  ASSERT_TRUE(create.wait_out("ready"));
  EXPECT_EQ(state(cid)["status"], "running");
  RunResult d = rt({"delete", "--force", cid});
  EXPECT_EQ(d.code, 0) << d.err;
  EXPECT_NE(d.err.find("poststop hook 0 (/bin/sh): exited with status 4"), std::string::npos) << d.err;
  EXPECT_TRUE(state(cid).is_null());
}

}  // namespace
}  // namespace strata::oci::it
