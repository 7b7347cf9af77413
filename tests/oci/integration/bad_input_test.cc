// Bad input to strata-runtime: each case must fail with a clear message (asserted), a non-zero
// exit, and no residue: no mount under the test's paths, no cgroup named after the container, an
// empty --root and no process left (checked right after the failure and again at TearDown).
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>

#include "runtime_fixture.h"

namespace strata::oci::it {
namespace {

class BadInputTest : public RuntimeTest {
 protected:
  // create of the current bundle as a fresh id: must fail, say `message`, leave nothing.
  void expect_create_fails(const std::string& name, const std::string& message,
                           const std::vector<std::string>& extra_args = {}) {
    std::string cid = id(name);
    std::vector<std::string> args = extra_args;
    args.insert(args.end(), {"create", "-b", bundle_, cid});
    RunResult r = rt(args);
    EXPECT_NE(r.code, 0) << name << " was accepted";
    EXPECT_NE(r.err.find(message), std::string::npos)
        << name << ": expected \"" << message << "\" in: " << r.err;
    EXPECT_TRUE(state(cid).is_null()) << name;
    expect_no_residue("after " + name);
  }
};

TEST_F(BadInputTest, MalformedJson) {
  write_file(bundle_ + "/config.json", R"({"ociVersion": "1.1.0", "process": {)");
  expect_create_fails("malformed", "config.json: parse config.json: [json.exception.parse_error.101]");
  write_file(bundle_ + "/config.json", "[]");
  expect_create_fails("notobject", "config.json");
}

TEST_F(BadInputTest, UnknownNamespace) {
  Json cfg = base_config();
  cfg["linux"]["namespaces"].push_back({{"type", "foo"}});
  write_config(cfg);
  size_t n = cfg["linux"]["namespaces"].size() - 1;
  expect_create_fails("unknown-ns",
                      "linux.namespaces[" + std::to_string(n) + "].type: unknown namespace type \"foo\"");
}

TEST_F(BadInputTest, MissingRootfs) {
  Json cfg = base_config();
  cfg["root"]["path"] = tmp_ + "/no-such-rootfs";
  write_config(cfg);
  expect_create_fails("no-rootfs", "root.path: rootfs " + tmp_ + "/no-such-rootfs: ENOENT");
  cfg["root"]["path"] = bundle_ + "/config.json";
  write_config(cfg);
  expect_create_fails("file-rootfs", "is not a directory");
}

TEST_F(BadInputTest, IdsWithASlashOrDotDot) {
  write_config(base_config());
  // A lock or state file for "../x" would land beside --root: watch that directory too.
  std::string outside = tmp_ + "/x";
  for (const std::string bad : {"a/b", "..", "../x", ".", "/abs"}) {
    for (const std::vector<std::string>& args :
         std::vector<std::vector<std::string>>{{"create", "-b", bundle_, bad},
                                               {"run", "-b", bundle_, bad},
                                               {"start", bad},
                                               {"state", bad},
                                               {"kill", bad, "KILL"},
                                               {"delete", bad},
                                               {"delete", "--force", bad},
                                               {"pause", bad},
                                               {"update", "--pids-limit", "5", bad},
                                               {"exec", bad, "/bin/true"}}) {
      RunResult r = rt(args);
      EXPECT_NE(r.code, 0) << args[0] << " " << bad;
      EXPECT_NE(r.err.find("invalid container id"), std::string::npos)
          << args[0] << " " << bad << ": " << r.err;
    }
  }
  for (const auto& e : std::filesystem::directory_iterator(tmp_)) {
    std::string name = e.path().filename();
    EXPECT_TRUE(name == "bundle" || name == "io" || name == "root") << "created outside --root: " << e.path();
  }
  expect_no_residue("after bad ids");
}

TEST_F(BadInputTest, DuplicateId) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  write_config(cfg);
  std::string cid = id("dup");
  ASSERT_EQ(rt({"create", "-b", bundle_, cid}).code, 0);
  pid_t pid = state(cid)["pid"].get<pid_t>();
  RunResult r = rt({"create", "-b", bundle_, cid});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("container with id \"" + cid + "\" already exists"), std::string::npos) << r.err;
  r = rt({"run", "-b", bundle_, cid});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("already exists"), std::string::npos) << r.err;
  // The first one is untouched.
  Json st = state(cid);
  EXPECT_EQ(st["status"], "created");
  EXPECT_EQ(st["pid"], pid);
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

TEST_F(BadInputTest, StartOfAnUnknownOrAlreadyStartedContainer) {
  RunResult r = rt({"start", "no-such-container"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("container \"no-such-container\" does not exist"), std::string::npos) << r.err;
  expect_no_residue("after start of an unknown container");  // not even a lock file

  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  write_config(cfg);
  std::string cid = id("started");
  ASSERT_EQ(rt({"create", "-b", bundle_, cid}).code, 0);
  ASSERT_EQ(rt({"start", cid}).code, 0);
  r = rt({"start", cid});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("cannot start container \"" + cid + "\": it is running, not created"),
            std::string::npos)
      << r.err;
  ASSERT_EQ(rt({"kill", cid, "KILL"}).code, 0);
  ASSERT_TRUE(wait_status(cid, "stopped"));
  r = rt({"start", cid});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("it is stopped, not created"), std::string::npos) << r.err;
  EXPECT_EQ(rt({"delete", cid}).code, 0);
  for (const auto& cmd :
       std::vector<std::vector<std::string>>{{"delete", "no-such-container"},
                                             {"kill", "no-such-container"},
                                             {"state", "no-such-container"},
                                             {"update", "--pids-limit", "5", "no-such-container"},
                                             {"exec", "no-such-container", "/bin/true"}}) {
    r = rt(cmd);
    EXPECT_NE(r.code, 0) << cmd[0];
    EXPECT_NE(r.err.find("does not exist"), std::string::npos) << cmd[0] << ": " << r.err;
  }
  EXPECT_EQ(rt({"delete", "--force", "no-such-container"}).code, 0)
      << "runc: delete --force of nothing succeeds";
}

TEST_F(BadInputTest, DeleteOfARunningContainerWithoutForce) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  std::string cid = id("running");
  run_detached(cfg, cid);
  RunResult r = rt({"delete", cid});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("cannot delete container \"" + cid + "\" that is not stopped: running (use --force)"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(state(cid)["status"], "running");
  EXPECT_FALSE(cgroup_dir(cid, "memory").empty());
  EXPECT_TRUE(std::filesystem::is_directory(cgroup_dir(cid, "memory")));
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

TEST_F(BadInputTest, FailingHooks) {
  Json fail = {{"path", "/bin/sh"}, {"args", {"sh", "-c", "exit 3"}}, {"env", {"STRATA_IT_TAG=" + tag_}}};
  for (const char* kind : {"prestart", "createRuntime"}) {
    Json cfg = base_config();
    cfg["hooks"][kind] = {fail};
    write_config(cfg);
    expect_create_fails(std::string("fail-") + kind,
                        std::string(kind) + " hook 0 (/bin/sh): exited with status 3");
  }
  Json cfg = base_config();
  cfg["hooks"]["createContainer"] = {fail};
  write_config(cfg);
  expect_create_fails("fail-createContainer", "createContainer hook /bin/sh exited with status 3");

  // startContainer runs after `start`: the container's process fails instead, and says why.
  cfg = base_config();
  cfg["hooks"]["startContainer"] = {fail};
  write_config(cfg);
  RunResult r = rt({"run", "-b", bundle_, id("fail-startContainer")});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("startContainer hook /bin/sh exited with status 3"), std::string::npos) << r.err;
  EXPECT_EQ(last_json(r.out), Json()) << "the process ran despite the failed hook";
}

TEST_F(BadInputTest, HooksThatTimeOut) {
  Json slow = {
      {"path", "/bin/sleep"}, {"args", {"sleep", "30"}}, {"env", {"STRATA_IT_TAG=" + tag_}}, {"timeout", 1}};
  for (const char* kind : {"prestart", "createRuntime", "createContainer"}) {
    Json cfg = base_config();
    cfg["hooks"][kind] = {slow};
    write_config(cfg);
    auto t0 = std::chrono::steady_clock::now();
    expect_create_fails(std::string("slow-") + kind, "timed out");
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << kind;
  }
}

TEST_F(BadInputTest, RlimitAboveTheHardLimit) {
  Json cfg = base_config();
  cfg["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 30000}, {"hard", 30000}}};
  write_config(cfg);
  expect_create_fails("rlimit",
                      "set rlimit RLIMIT_NOFILE (soft 30000, hard 30000 above the hard limit 20000");
  cfg["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 200}, {"hard", 100}}};
  write_config(cfg);
  expect_create_fails("soft-above-hard", "soft limit 200 is above the hard limit 100");
}

TEST_F(BadInputTest, OtherRefusals) {
  struct Case {
    const char* name;
    std::function<void(Json&)> edit;
    std::string message;
  };
  const Case cases[] = {
      {"terminal", [](Json& c) { c["process"]["terminal"] = true; },
       "process.terminal is true but no --console-socket was given"},
      {"no-exe", [](Json& c) { c["process"]["args"] = {"/bin/nonexistent"}; },
       "find executable /bin/nonexistent: ENOENT"},
      {"host-sysctl",
       [](Json& c) {
         c["linux"]["sysctl"] = {{"vm.swappiness", "10"}};
       },
       "linux.sysctl: \"vm.swappiness\" is not namespaced"},
      {"bad-cap", [](Json& c) { c["process"]["capabilities"]["bounding"].push_back("CAP_FOO"); },
       "unknown capability \"CAP_FOO\""},
      {"bind-source",
       [](Json& c) {
         c["mounts"].push_back({{"destination", "/x"}, {"type", "bind"}, {"source", "/nonexistent"}});
       },
       "bind source /nonexistent: ENOENT"},
      {"oom", [](Json& c) { c["process"]["oomScoreAdj"] = -5; }, "process.oomScoreAdj"},
      {"cwd", [](Json& c) { c["process"]["cwd"] = "relative"; }, "process.cwd"},
  };
  for (const auto& c : cases) {
    Json cfg = base_config();
    c.edit(cfg);
    write_config(cfg);
    expect_create_fails(c.name, c.message);
  }
  write_config(base_config());
  expect_create_fails("systemd", "--systemd-cgroup: systemd is not running on this host",
                      {"--systemd-cgroup"});
}

}  // namespace
}  // namespace strata::oci::it
