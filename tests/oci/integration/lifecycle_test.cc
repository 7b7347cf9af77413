// strata-runtime's lifecycle against the real binary (runtime-spec runtime.md, runc's CLI): create
// leaves the init waiting, state JSON and its transitions, start, kill by name and number, run's
// exit codes, --pid-file, --preserve-fds, --console-socket, exec and its options, ps, list,
// pause/resume, update, and concurrent creates on one --root. Facts come from /bin/probe inside.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <sstream>
#include <thread>

#include "runtime_fixture.h"

namespace strata::oci::it {
namespace {

class LifecycleTest : public RuntimeTest {};

std::string proc_link(pid_t pid, const std::string& what) {
  char buf[4096];
  ssize_t n = ::readlink(("/proc/" + std::to_string(pid) + "/" + what).c_str(), buf, sizeof buf - 1);
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

// Gone or a zombie (a detached container's processes are reparented to us, the subreaper).
bool process_gone(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  size_t rp = stat.rfind(')');
  return rp == std::string::npos || rp + 2 >= stat.size() || stat[rp + 2] == 'Z' || stat[rp + 2] == 'X';
}

bool has_env(const Json& facts, const std::string& kv) {
  for (const auto& e : facts["env"])
    if (e == kv) return true;
  return false;
}

TEST_F(LifecycleTest, CreateWaitsThenStartRunsAndStateFollows) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "signals"};
  write_config(cfg);
  std::string cid = id("life");
  AsyncRun create = rt_async({"create", "-b", bundle_, cid});
  RunResult cr = create.wait();
  ASSERT_EQ(cr.code, 0) << cr.err;

  Json st = state(cid);
  ASSERT_FALSE(st.is_null());
  EXPECT_EQ(st["ociVersion"], "1.1.0");
  EXPECT_EQ(st["id"], cid);
  EXPECT_EQ(st["status"], "created");
  EXPECT_EQ(st["bundle"], bundle_);
  EXPECT_EQ(st["rootfs"], kRootfs);
  EXPECT_FALSE(st["created"].get<std::string>().empty());
  pid_t pid = st["pid"].get<pid_t>();
  ASSERT_GT(pid, 0);
  // Waiting: still the runtime's image (its command line), not the probe, which printed nothing.
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(state(cid)["status"], "created");
  EXPECT_EQ(create.out(), "");
  EXPECT_EQ(read_file("/proc/" + std::to_string(pid) + "/cmdline").rfind(kRuntime, 0), 0u);

  RunResult sr = rt({"start", cid});
  ASSERT_EQ(sr.code, 0) << sr.err;
  EXPECT_TRUE(wait_status(cid, "running"));
  ASSERT_TRUE(create.wait_out("ready")) << create.out();
  st = state(cid);
  EXPECT_EQ(st["status"], "running");
  EXPECT_EQ(st["pid"], pid);
  EXPECT_EQ(read_file("/proc/" + std::to_string(pid) + "/cmdline").rfind("/bin/probe", 0), 0u);

  RunResult again = rt({"start", cid});
  EXPECT_NE(again.code, 0);
  EXPECT_NE(again.err.find("cannot start container \"" + cid + "\": it is running"), std::string::npos)
      << again.err;

  ASSERT_EQ(rt({"kill", cid, "SIGUSR1"}).code, 0);
  EXPECT_TRUE(wait_status(cid, "stopped"));
  EXPECT_EQ(last_json(create.out())["signal"], 10) << create.out();
  st = state(cid);
  EXPECT_EQ(st["pid"], 0);

  RunResult dr = rt({"delete", cid});
  EXPECT_EQ(dr.code, 0) << dr.err;
  RunResult gone = rt({"state", cid});
  EXPECT_NE(gone.code, 0);
  EXPECT_NE(gone.err.find("container \"" + cid + "\" does not exist"), std::string::npos) << gone.err;
}

TEST_F(LifecycleTest, KillByNameAndByNumber) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "signals"};
  struct Case {
    std::vector<std::string> signal;  // kill's trailing argument (none: the default SIGTERM)
    int number;
  };
  const Case cases[] = {{{"SIGUSR2"}, 12}, {{"USR1"}, 10}, {{"1"}, 1}, {{}, 15}};
  std::vector<std::pair<std::string, AsyncRun>> runs;
  for (size_t i = 0; i < std::size(cases); ++i) {
    std::string cid = id("kill" + std::to_string(i));
    runs.emplace_back(cid, run_detached(cfg, cid));
  }
  for (size_t i = 0; i < std::size(cases); ++i) {
    auto& [cid, run] = runs[i];
    ASSERT_TRUE(run.wait_out("ready")) << run.out() << run.err();
    std::vector<std::string> args = {"kill", cid};
    args.insert(args.end(), cases[i].signal.begin(), cases[i].signal.end());
    RunResult k = rt(args);
    EXPECT_EQ(k.code, 0) << k.err;
    EXPECT_TRUE(wait_status(cid, "stopped"));
    EXPECT_EQ(last_json(run.out())["signal"], cases[i].number) << "kill " << cid << ": " << run.out();
    EXPECT_EQ(rt({"delete", cid}).code, 0);
  }
  RunResult bad = rt({"kill", runs[0].first, "SIGNOPE"});
  EXPECT_NE(bad.code, 0);
}

TEST_F(LifecycleTest, KillAllReachesEveryProcess) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/sh", "-c", "/bin/probe sleep 60 & /bin/probe sleep 60 & wait"};
  std::string cid = id("killall");
  run_detached(cfg, cid);
  std::vector<pid_t> pids;
  for (int i = 0; i < 200 && pids.size() < 3; ++i) {
    pids = Json::parse(rt({"ps", "--format", "json", cid}).out, nullptr, false).get<std::vector<pid_t>>();
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(pids.size(), 3u);
  ASSERT_EQ(rt({"kill", "--all", cid, "KILL"}).code, 0);
  EXPECT_TRUE(wait_status(cid, "stopped"));
  for (pid_t p : pids) {
    for (int i = 0; i < 1000 && !process_gone(p); ++i) std::this_thread::sleep_for(5ms);
    EXPECT_TRUE(process_gone(p)) << "pid " << p << " survived kill --all";
  }
  EXPECT_EQ(rt({"delete", cid}).code, 0);
}

TEST_F(LifecycleTest, RunPropagatesExitCodes) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "exit", "7"};
  write_config(cfg);
  RunResult r = rt({"run", "-b", bundle_, id("exit7")});
  EXPECT_EQ(r.code, 7) << r.err;

  // Death by a signal: 128+N. An init of a pid namespace ignores its own SIGTERM, so this one
  // shares ours.
  Json nopid = base_config();
  auto& ns = nopid["linux"]["namespaces"];
  ns.erase(std::remove_if(ns.begin(), ns.end(), [](const Json& n) { return n["type"] == "pid"; }), ns.end());
  nopid["process"]["args"] = {"/bin/probe", "raise", "15"};
  write_config(nopid);
  r = rt({"run", "-b", bundle_, id("raise15")});
  EXPECT_EQ(r.code, 128 + 15) << r.err;

  // A foreground run whose container is killed from outside.
  cfg["process"]["args"] = {"/bin/probe", "signals"};
  write_config(cfg);
  std::string cid = id("killed");
  AsyncRun run = rt_async({"run", "-b", bundle_, cid});
  ASSERT_TRUE(wait_status(cid, "running"));
  ASSERT_TRUE(run.wait_out("ready"));
  EXPECT_EQ(rt({"kill", cid, "KILL"}).code, 0);
  r = run.wait();
  EXPECT_EQ(r.code, 128 + 9) << r.err;
  // run deleted it.
  EXPECT_TRUE(state(cid).is_null());
}

TEST_F(LifecycleTest, RunKeepLeavesTheStoppedContainer) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "exit", "3"};
  write_config(cfg);
  std::string cid = id("keep");
  RunResult r = rt({"run", "--keep", "-b", bundle_, cid});
  EXPECT_EQ(r.code, 3) << r.err;
  Json st = state(cid);
  ASSERT_FALSE(st.is_null()) << "run --keep deleted the container";
  EXPECT_EQ(st["status"], "stopped");
  EXPECT_EQ(rt({"delete", cid}).code, 0);
}

TEST_F(LifecycleTest, PidFileNamesTheInit) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  write_config(cfg);
  std::string cid = id("pidfile");
  std::string pid_file = tmp_ + "/init.pid";
  ASSERT_EQ(rt({"create", "-b", bundle_, "--pid-file", pid_file, cid}).code, 0);
  EXPECT_EQ(read_file(pid_file), std::to_string(state(cid)["pid"].get<int>()));
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);

  std::string cid2 = id("pidfile-run");
  std::string pid_file2 = tmp_ + "/run.pid";
  ASSERT_EQ(rt({"run", "-d", "-b", bundle_, "--pid-file", pid_file2, cid2}).code, 0);
  EXPECT_EQ(read_file(pid_file2), std::to_string(state(cid2)["pid"].get<int>()));
  EXPECT_EQ(rt({"delete", "--force", cid2}).code, 0);
}

TEST_F(LifecycleTest, PreserveFdsPassesExactlyTheNamedFds) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  struct stat pst {};
  ::fstat(p[1], &pst);
  std::string pipe_name = "pipe:[" + std::to_string(pst.st_ino) + "]";
  RunOptions o;
  o.extra_fds = {p[1]};

  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/sh", "-c", "/bin/probe; echo through-fd-3 >&3"};
  write_config(cfg);
  RunResult r = rt({"run", "--preserve-fds", "1", "-b", bundle_, id("preserve")}, o);
  ::close(p[1]);
  EXPECT_EQ(r.code, 0) << r.err;
  Json facts = last_json(r.out);
  ASSERT_TRUE(facts["fds"].contains("3")) << facts["fds"].dump();
  EXPECT_EQ(facts["fds"]["3"], pipe_name);
  char buf[64] = {};
  ssize_t n = ::read(p[0], buf, sizeof buf - 1);
  ::close(p[0]);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "through-fd-3\n");

  // Without --preserve-fds the same fd stays outside.
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  o.extra_fds = {p[1]};
  write_config(base_config());
  r = rt({"run", "-b", bundle_, id("nopreserve")}, o);
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(r.code, 0) << r.err;
  facts = last_json(r.out);
  EXPECT_EQ(facts["open_fds"], 3) << facts["fds"].dump();
}

// A --console-socket receiver: accepts one connection and takes the pty master from SCM_RIGHTS.
struct ConsoleReceiver {
  int listen_fd = -1;
  explicit ConsoleReceiver(const std::string& path) {
    listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a {};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::bind(listen_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd, 1) != 0) {
      ::close(listen_fd);
      listen_fd = -1;
    }
  }
  ~ConsoleReceiver() {
    if (listen_fd >= 0) ::close(listen_fd);
  }
  // Returns the master fd (or -1) and the terminal's name sent with it.
  int receive(std::string* name) {
    struct pollfd pf {
      listen_fd, POLLIN, 0
    };
    if (::poll(&pf, 1, 10000) != 1) return -1;
    int conn = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) return -1;
    char payload[256] = {};
    struct iovec iov {
      payload, sizeof payload - 1
    };
    alignas(struct cmsghdr) char cbuf[CMSG_SPACE(sizeof(int))] = {};
    struct msghdr msg {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof cbuf;
    ssize_t n = ::recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
    ::close(conn);
    struct cmsghdr* c = n > 0 ? CMSG_FIRSTHDR(&msg) : nullptr;
    if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
    *name = std::string(payload, static_cast<size_t>(n));
    return fd;
  }
};

TEST_F(LifecycleTest, ConsoleSocketReceivesThePtyAndItCarriesTheOutput) {
  std::string sock = tmp_ + "/console.sock";
  ConsoleReceiver receiver(sock);
  ASSERT_GE(receiver.listen_fd, 0);
  Json cfg = base_config();
  cfg["process"]["terminal"] = true;
  cfg["process"]["consoleSize"] = {{"height", 33}, {"width", 101}};
  cfg["process"]["args"] = {"/bin/sh", "-c", "/bin/probe; stty size; echo console-done"};
  write_config(cfg);
  std::string cid = id("console");
  AsyncRun create = rt_async({"create", "--console-socket", sock, "-b", bundle_, cid});
  std::string name;
  int master = receiver.receive(&name);
  RunResult cr = create.wait();
  ASSERT_EQ(cr.code, 0) << cr.err;
  ASSERT_GE(master, 0) << "no pty master on the console socket";
  EXPECT_EQ(name.rfind("/dev/pts/", 0), 0u) << name;
  ASSERT_EQ(rt({"start", cid}).code, 0);
  std::string out;
  for (;;) {
    struct pollfd pf {
      master, POLLIN, 0
    };
    if (::poll(&pf, 1, 10000) != 1) break;
    char buf[4096];
    ssize_t n = ::read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO once the container has gone
    out.append(buf, static_cast<size_t>(n));
    if (out.find("console-done") != std::string::npos) break;
  }
  ::close(master);
  EXPECT_NE(out.find("console-done"), std::string::npos) << out;
  EXPECT_NE(out.find("33 101"), std::string::npos) << "consoleSize not applied: " << out;
  Json facts = last_json(out.substr(0, out.find("33 101")));
  ASSERT_FALSE(facts.is_null()) << out;
  EXPECT_EQ(facts["tty"], "/dev/pts/0");
  for (const char* fd : {"0", "1", "2"}) EXPECT_EQ(facts["fds"][fd], "/dev/pts/0") << fd;
  EXPECT_TRUE(wait_status(cid, "stopped"));
  EXPECT_EQ(rt({"delete", cid}).code, 0);
  // Nothing of the container's output reached the runtime's own stdout.
  EXPECT_EQ(create.out(), "");
}

TEST_F(LifecycleTest, ExecHonoursItsOptions) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  std::string cid = id("exec");
  run_detached(cfg, cid);
  pid_t init = state(cid)["pid"].get<pid_t>();

  RunResult r = rt({"exec", "--env", "FOO=bar", "--cwd", "/tmp", "--user", "1000:1001", cid, "/bin/probe"});
  ASSERT_EQ(r.code, 0) << r.err;
  Json f = last_json(r.out);
  EXPECT_TRUE(has_env(f, "FOO=bar")) << f["env"].dump();
  EXPECT_EQ(f["cwd"], "/tmp");
  EXPECT_EQ(f["uid"], 1000);
  EXPECT_EQ(f["gid"], 1001);
  EXPECT_NE(f["pid"], 1);
  for (const char* ns : {"pid", "mnt", "net", "ipc", "uts", "cgroup"}) {
    EXPECT_EQ(f["ns"][ns], proc_link(init, std::string("ns/") + ns)) << ns;
  }

  EXPECT_EQ(rt({"exec", cid, "/bin/probe", "exit", "5"}).code, 5);

  std::string pid_file = tmp_ + "/exec.pid";
  r = rt({"exec", "-d", "--pid-file", pid_file, cid, "/bin/probe", "sleep", "30"});
  ASSERT_EQ(r.code, 0) << r.err;
  pid_t exec_pid = std::atoi(read_file(pid_file).c_str());
  ASSERT_GT(exec_pid, 0);
  EXPECT_EQ(proc_link(exec_pid, "ns/pid"), proc_link(init, "ns/pid"));
  EXPECT_NE(read_file("/proc/" + std::to_string(exec_pid) + "/cgroup").find("/strata/" + cid),
            std::string::npos);
  auto pids = Json::parse(rt({"ps", "--format", "json", cid}).out, nullptr, false);
  EXPECT_NE(std::find(pids.begin(), pids.end(), exec_pid), pids.end()) << pids.dump();

  Json process = {{"terminal", false},
                  {"args", {"/bin/probe"}},
                  {"env", {"PATH=/bin", "FROM_PROCESS=1", "STRATA_IT_TAG=" + tag_}},
                  {"cwd", "/dev"},
                  {"user", {{"uid", 5}, {"gid", 6}, {"additionalGids", {7, 8}}}}};
  write_file(tmp_ + "/process.json", process.dump());
  r = rt({"exec", "--process", tmp_ + "/process.json", cid});
  ASSERT_EQ(r.code, 0) << r.err;
  f = last_json(r.out);
  EXPECT_EQ(f["uid"], 5);
  EXPECT_EQ(f["gid"], 6);
  EXPECT_EQ(f["groups"], Json({7, 8}));
  EXPECT_EQ(f["cwd"], "/dev");
  EXPECT_TRUE(has_env(f, "FROM_PROCESS=1"));

  RunResult bad = rt({"exec", "--cwd", "/nonexistent", cid, "/bin/probe"});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("/nonexistent"), std::string::npos) << bad.err;
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

TEST_F(LifecycleTest, PsListsTheContainersProcesses) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/sh", "-c", "/bin/probe sleep 60 & /bin/probe sleep 60 & wait"};
  std::string cid = id("ps");
  run_detached(cfg, cid);
  pid_t init = state(cid)["pid"].get<pid_t>();
  std::vector<pid_t> pids;
  for (int i = 0; i < 200 && pids.size() < 3; ++i) {
    pids = Json::parse(rt({"ps", "--format", "json", cid}).out, nullptr, false).get<std::vector<pid_t>>();
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_EQ(pids.size(), 3u);
  EXPECT_NE(std::find(pids.begin(), pids.end(), init), pids.end());

  RunResult table = rt({"ps", cid});
  ASSERT_EQ(table.code, 0) << table.err;
  std::vector<std::string> lines;
  std::istringstream in(table.out);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 4u) << table.out;
  EXPECT_NE(lines[0].find("PID"), std::string::npos);
  for (pid_t p : pids) {
    bool found = false;
    for (size_t i = 1; i < lines.size(); ++i) {
      std::istringstream f(lines[i]);
      std::string user, pid;
      f >> user >> pid;
      if (pid == std::to_string(p)) found = true;
    }
    EXPECT_TRUE(found) << "pid " << p << " not in\n" << table.out;
  }
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

TEST_F(LifecycleTest, ListShowsEveryContainerInEachFormat) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  write_config(cfg);
  std::string a = id("list-a"), b = id("list-b");
  ASSERT_EQ(rt({"create", "-b", bundle_, a}).code, 0);
  ASSERT_EQ(rt({"run", "-d", "-b", bundle_, b}).code, 0);

  EXPECT_EQ(rt({"list", "-q"}).out, a + "\n" + b + "\n");
  Json arr = Json::parse(rt({"list", "--format", "json"}).out, nullptr, false);
  ASSERT_TRUE(arr.is_array()) << arr.dump();
  ASSERT_EQ(arr.size(), 2u);
  EXPECT_EQ(arr[0]["id"], a);
  EXPECT_EQ(arr[0]["status"], "created");
  EXPECT_EQ(arr[1]["id"], b);
  EXPECT_EQ(arr[1]["status"], "running");
  EXPECT_EQ(arr[1]["bundle"], bundle_);
  EXPECT_GT(arr[1]["pid"].get<int>(), 0);

  RunResult table = rt({"list"});
  std::istringstream in(table.out);
  std::string header, la, lb;
  std::getline(in, header);
  std::getline(in, la);
  std::getline(in, lb);
  EXPECT_EQ(header.rfind("ID", 0), 0u) << table.out;
  EXPECT_EQ(la.rfind(a, 0), 0u);
  EXPECT_NE(la.find("created"), std::string::npos);
  EXPECT_EQ(lb.rfind(b, 0), 0u);
  EXPECT_NE(lb.find("running"), std::string::npos);
  EXPECT_EQ(rt({"delete", "--force", a}).code, 0);
  EXPECT_EQ(rt({"delete", "--force", b}).code, 0);
  EXPECT_EQ(rt({"list", "-q"}).out, "");
}

TEST_F(LifecycleTest, PauseFreezesAndResumeThaws) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/sh", "-c", "while true; do echo tick; usleep 20000; done"};
  std::string cid = id("pause");
  AsyncRun run = run_detached(cfg, cid);
  auto out_lines = [&] {
    std::string o = run.out();
    return std::count(o.begin(), o.end(), '\n');
  };
  for (int i = 0; i < 200 && out_lines() < 2; ++i) std::this_thread::sleep_for(10ms);
  std::string freezer = cgroup_dir(cid, "freezer");
  ASSERT_FALSE(freezer.empty());

  ASSERT_EQ(rt({"pause", cid}).code, 0);
  EXPECT_EQ(state(cid)["status"], "paused");
  EXPECT_EQ(read_file(freezer + "/freezer.state"), "FROZEN\n");
  auto frozen_at = out_lines();
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(out_lines(), frozen_at) << "the container kept running while paused";
  RunResult twice = rt({"pause", cid});
  EXPECT_NE(twice.code, 0);
  EXPECT_NE(twice.err.find("paused"), std::string::npos) << twice.err;
  RunResult del = rt({"delete", cid});
  EXPECT_NE(del.code, 0) << "delete without --force of a paused container";

  ASSERT_EQ(rt({"resume", cid}).code, 0);
  EXPECT_EQ(state(cid)["status"], "running");
  EXPECT_EQ(read_file(freezer + "/freezer.state"), "THAWED\n");
  auto thawed_at = out_lines();
  for (int i = 0; i < 200 && out_lines() <= thawed_at + 2; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_GT(out_lines(), thawed_at + 2);
  EXPECT_EQ(rt({"resume", cid}).code, 1);

  ASSERT_EQ(rt({"pause", cid}).code, 0);
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0) << "delete --force of a paused container";
}

TEST_F(LifecycleTest, UpdateChangesTheLimitsSeenInside) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  cfg["linux"]["resources"]["memory"] = {{"limit", 128 << 20}};
  cfg["linux"]["resources"]["pids"] = {{"limit", 100}};
  std::string cid = id("update");
  run_detached(cfg, cid);
  const std::string mem = "/sys/fs/cgroup/memory/memory.limit_in_bytes",
                    pids = "/sys/fs/cgroup/pids/pids.max";
  Json before = last_json(rt({"exec", cid, "/bin/probe", "read", mem, pids}).out);
  EXPECT_EQ(before[mem]["data"], std::to_string(128 << 20) + "\n");
  EXPECT_EQ(before[pids]["data"], "100\n");

  RunResult u = rt({"update", "--memory", "64M", "--pids-limit", "50", cid});
  ASSERT_EQ(u.code, 0) << u.err;
  EXPECT_EQ(read_file(cgroup_dir(cid, "memory") + "/memory.limit_in_bytes"), std::to_string(64 << 20) + "\n");
  EXPECT_EQ(read_file(cgroup_dir(cid, "pids") + "/pids.max"), "50\n");
  Json after = last_json(rt({"exec", cid, "/bin/probe", "read", mem, pids}).out);
  EXPECT_EQ(after[mem]["data"], std::to_string(64 << 20) + "\n");
  EXPECT_EQ(after[pids]["data"], "50\n");

  write_file(tmp_ + "/res.json", R"({"memory":{"limit":33554432},"pids":{"limit":20}})");
  u = rt({"update", "-r", tmp_ + "/res.json", cid});
  ASSERT_EQ(u.code, 0) << u.err;
  after = last_json(rt({"exec", cid, "/bin/probe", "read", mem, pids}).out);
  EXPECT_EQ(after[mem]["data"], "33554432\n");
  EXPECT_EQ(after[pids]["data"], "20\n");
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

TEST_F(LifecycleTest, ConcurrentCreatesOfDifferentIdsAllSucceed) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  write_config(cfg);
  std::vector<std::string> cids;
  std::vector<AsyncRun> runs;
  for (int i = 0; i < 4; ++i) {
    cids.push_back(id("conc" + std::to_string(i)));
    runs.push_back(rt_async({"create", "-b", bundle_, cids.back()}));
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    RunResult r = runs[i].wait();
    EXPECT_EQ(r.code, 0) << cids[i] << ": " << r.err;
  }
  std::string expected;
  for (const auto& c : cids) expected += c + "\n";
  EXPECT_EQ(rt({"list", "-q"}).out, expected);
  for (const auto& c : cids) {
    EXPECT_EQ(state(c)["status"], "created");
    EXPECT_EQ(rt({"delete", "--force", c}).code, 0);
  }
}

TEST_F(LifecycleTest, ConcurrentCreatesOfOneIdHaveOneWinner) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  write_config(cfg);
  std::string cid = id("same");
  std::vector<AsyncRun> runs;
  for (int i = 0; i < 4; ++i) runs.push_back(rt_async({"create", "-b", bundle_, cid}));
  int winners = 0;
  for (auto& run : runs) {
    RunResult r = run.wait();
    if (r.code == 0) {
      ++winners;
    } else {
      EXPECT_NE(r.err.find("container with id \"" + cid + "\" already exists"), std::string::npos) << r.err;
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(rt({"list", "-q"}).out, cid + "\n");
  EXPECT_EQ(state(cid)["status"], "created");
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

}  // namespace
}  // namespace strata::oci::it
