// The known runtime escapes, attempted from inside the container:
//  - CVE-2019-5736 (/proc/self/exe): an entrypoint "#!/proc/self/exe update" makes the kernel run
//    strata-runtime itself inside the container, and a container process then holds its exe and
//    tries to write it once no runtime runs; also the init of a created container (still the
//    runtime's image) must not be reachable through /proc/1/exe;
//  - CVE-2024-21626 (leaked fds and cwd): fds the runtime inherited never reach the container, and
//    a cwd through /proc/self/fd/N cannot land outside the root;
//  - symlinks in the rootfs never send a mount or a device node outside it.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <sstream>

#include "runtime_fixture.h"

namespace strata::oci::it {
namespace {

class SecurityTest : public RuntimeTest {
 protected:
  // A private copy of the shared rootfs, which this test may change.
  std::string copy_rootfs() {
    std::string copy = tmp_ + "/rootfs";
    RunResult r = run_cmd({"/bin/cp", "-a", kRootfs, copy});
    EXPECT_EQ(r.code, 0) << r.err;
    return copy;
  }
};

// The shared libraries `ldd` names for a binary (absolute paths).
std::vector<std::string> shared_libraries(const std::string& ldd_output) {
  std::vector<std::string> out;
  std::istringstream in(ldd_output);
  for (std::string word; in >> word;)
    if (word[0] == '/' && std::filesystem::exists(word)) out.push_back(word);
  return out;
}

TEST_F(SecurityTest, RuntimeBinaryCannotBeOverwrittenFromInside) {
  // The attack writes into the binary it reaches: give it a copy of the runtime to aim at.
  std::string bin = tmp_ + "/bin";
  make_dir(bin);
  runtime_ = bin + "/strata-runtime";
  ASSERT_EQ(run_cmd({"/bin/cp", kRuntime, runtime_}).code, 0);
  const std::string original = read_file(runtime_);
  ASSERT_GT(original.size(), 0u);

  // The container gets what the runtime binary needs to start inside it.
  std::string rootfs = copy_rootfs();
  RunResult ldd = run_cmd({"/usr/bin/ldd", runtime_});
  // A static runtime (the normal build) needs nothing more; ldd says so with exit status 1.
  bool is_static = (ldd.out + ldd.err).find("not a dynamic executable") != std::string::npos;
  ASSERT_TRUE(ldd.code == 0 || is_static) << ldd.err;
  for (const auto& lib : shared_libraries(ldd.out)) {
    std::filesystem::create_directories(rootfs + std::filesystem::path(lib).parent_path().string());
    std::filesystem::copy_file(lib, rootfs + lib, std::filesystem::copy_options::overwrite_existing);
  }
  write_file(rootfs + "/bin/upd", "#!/proc/self/exe update\n", 0755);

  Json cfg = base_config();
  cfg["root"]["path"] = rootfs;
  cfg["mounts"].push_back({{"destination", "/tmp"}, {"type", "tmpfs"}, {"source", "tmpfs"}});
  cfg["process"]["args"] = {"/bin/probe", "hold-exe", "upd", "/tmp/fifo", "2"};
  std::string cid = id("exe");
  AsyncRun run = run_detached(cfg, cid);
  // `exec` runs /bin/upd: the kernel executes /proc/self/exe of the exec child, i.e. the runtime,
  // as `strata-runtime update /bin/upd -r /tmp/fifo`, which waits on the fifo inside.
  RunResult e = rt({"exec", "-d", cid, "/bin/upd", "-r", "/tmp/fifo"});
  EXPECT_EQ(e.code, 0) << e.err;
  ASSERT_TRUE(run.wait_out("written", 15s)) << run.out() << run.err();
  Json f = last_json(run.out());
  EXPECT_GT(f["pid"].get<int>(), 0) << "the runtime never ran inside the container: " << f.dump();
  EXPECT_EQ(f["open_errno"], 0) << "premise: the container holds the runtime's exe: " << f.dump();
  EXPECT_EQ(f["written"], false) << f.dump();
  EXPECT_TRUE(f["write_open_errno"] != 0 || f["write_errno"] != 0) << f.dump();
  EXPECT_TRUE(read_file(runtime_) == original) << "the runtime binary was modified from inside the container";
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

TEST_F(SecurityTest, InitWaitingForStartIsNotReachableThroughProc) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  write_config(cfg);
  std::string cid = id("created");
  ASSERT_EQ(rt({"create", "-b", bundle_, cid}).code, 0);
  // pid 1 is the init, still the runtime's image until `start`.
  RunResult r = rt({"exec", cid, "/bin/probe", "read", "/proc/1/exe", "/proc/1/environ"});
  ASSERT_EQ(r.code, 0) << r.err;
  Json f = last_json(r.out);
  EXPECT_EQ(f["/proc/1/exe"]["open_errno"], EACCES);
  EXPECT_EQ(f["/proc/1/environ"]["open_errno"], EACCES);
  r = rt({"exec", cid, "/bin/probe", "write", "/proc/1/exe"});
  EXPECT_EQ(last_json(r.out)["/proc/1/exe"]["errno"], EACCES);
  // Even a process allowed to trace (CAP_SYS_PTRACE) cannot open it for writing.
  r = rt({"exec", "--cap", "CAP_SYS_PTRACE", cid, "/bin/probe", "write", "/proc/1/exe"});
  int err = last_json(r.out)["/proc/1/exe"]["errno"];
  EXPECT_TRUE(err == EROFS || err == ETXTBSY) << r.out;
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

TEST_F(SecurityTest, NoHostFdOrCwdLeaksIntoTheContainer) {
  std::string secret = tmp_ + "/secret";
  make_dir(secret, 0700);
  write_file(secret + "/file", "host-secret");
  int dir_fd = ::open(secret.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int file_fd = ::open((secret + "/file").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(dir_fd, 0);
  ASSERT_GE(file_fd, 0);
  RunOptions leak;
  leak.extra_fds = {dir_fd, file_fd};  // fds 3 and 4 of the runtime, not passed on with --preserve-fds

  Json cfg = base_config();
  write_config(cfg);
  RunResult r = rt({"run", "-b", bundle_, id("fds")}, leak);
  ASSERT_EQ(r.code, 0) << r.err;
  Json f = last_json(r.out);
  EXPECT_EQ(f["open_fds"], 3) << f["fds"].dump();
  EXPECT_EQ(f["cwd"], "/");
  for (const auto& [fd, target] : f["fds"].items()) {
    EXPECT_EQ(target.get<std::string>().find(secret), std::string::npos) << "fd " << fd << " -> " << target;
  }

  // The runc exploit: a cwd through a leaked fd.
  cfg["process"]["cwd"] = "/proc/self/fd/3";
  cfg["process"]["args"] = {"/bin/probe", "read", "file"};
  write_config(cfg);
  r = rt({"run", "-b", bundle_, id("cwd")}, leak);
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(r.out.find("host-secret"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("chdir to cwd /proc/self/fd/3 is outside the container's root"), std::string::npos)
      << r.err;

  // The same through exec.
  cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  std::string cid = id("execfds");
  run_detached(cfg, cid);
  r = rt({"exec", cid, "/bin/probe"}, leak);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(last_json(r.out)["open_fds"], 3) << r.out;
  for (const char* fd : {"3", "4", "5", "6", "7", "8"}) {
    r = rt({"exec", "--cwd", std::string("/proc/self/fd/") + fd, cid, "/bin/probe", "read", "file"}, leak);
    EXPECT_EQ(r.out.find("host-secret"), std::string::npos)
        << "exec --cwd /proc/self/fd/" << fd << ": " << r.out;
    EXPECT_NE(r.code, 0) << fd;
  }
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
  ::close(dir_fd);
  ::close(file_fd);
}

TEST_F(SecurityTest, MountsAndDevicesNeverFollowSymlinksOutOfTheRootfs) {
  std::string rootfs = copy_rootfs();
  std::string outside = tmp_ + "/outside";
  make_dir(outside);
  std::string data = tmp_ + "/data";
  make_dir(data);
  write_file(data + "/f", "bound");
  // The image's /dev is an absolute link to `outside` on the host, /evil-rel a link that climbs
  // there: followed from the host, every mount below and every device node would land in it.
  std::filesystem::remove_all(rootfs + "/dev");
  std::filesystem::create_symlink(outside, rootfs + "/dev");
  std::filesystem::create_symlink("../../../../../../../../.." + outside, rootfs + "/evil-rel");
  std::string marker = tmp_ + "/mounts-at-outside";
  // Where the links lead when resolved inside the rootfs (open_in_root does not create a missing
  // link target: see DanglingLinkInTheRootfsFailsCleanly).
  make_dir(rootfs + outside);

  Json cfg = base_config();
  cfg["root"]["path"] = rootfs;
  auto& mounts = cfg["mounts"];
  mounts.erase(
      std::remove_if(mounts.begin(), mounts.end(), [](const Json& m) { return m["destination"] == "/dev"; }),
      mounts.end());
  mounts.push_back({{"destination", "/dev/scratch"}, {"type", "tmpfs"}, {"source", "tmpfs"}});
  mounts.push_back(
      {{"destination", "/evil-rel/bound"}, {"type", "bind"}, {"source", data}, {"options", {"bind", "ro"}}});
  cfg["linux"]["devices"] = {{{"path", "/dev/custom-null"}, {"type", "c"}, {"major", 1}, {"minor", 3}}};
  // In the container's mount namespace before pivot_root, host paths still resolve: count the
  // mounts that landed under `outside` itself.
  cfg["hooks"]["createContainer"] = {
      {{"path", "/bin/sh"},
       {"args", {"sh", "-c", "grep -c ' " + outside + "' /proc/self/mountinfo > " + marker + "; true"}},
       {"env", {"PATH=/usr/bin:/bin", "STRATA_IT_TAG=" + tag_}}}};
  Json f = probe(cfg, {"/bin/probe", "read", "/evil-rel/bound/f", "/dev/custom-null", "/dev/null"});
  EXPECT_EQ(f["/evil-rel/bound/f"]["data"], "bound");
  EXPECT_EQ(f["/dev/custom-null"]["errno"], 0);
  EXPECT_EQ(f["/dev/null"]["errno"], 0);
  EXPECT_EQ(read_file(marker), "0\n") << "a mount landed on the host path the symlinks name";
  EXPECT_TRUE(std::filesystem::is_empty(outside)) << "something was created through a symlink on the host";
  // They landed inside the rootfs, where the links resolve when the rootfs is the root.
  for (const char* p : {"/pts", "/shm", "/mqueue", "/scratch", "/bound", "/custom-null", "/null"})
    EXPECT_TRUE(std::filesystem::exists(rootfs + outside + p)) << p;
  auto mi = probe(cfg)["mountinfo"].get<std::string>();
  EXPECT_NE(mi.find(" " + outside + "/scratch "), std::string::npos) << mi;
}

TEST_F(SecurityTest, DanglingLinkInTheRootfsFailsCleanly) {
  std::string rootfs = copy_rootfs();
  std::string outside = tmp_ + "/outside";
  make_dir(outside);
  std::filesystem::create_symlink(outside, rootfs + "/evil");  // no such path inside the rootfs
  Json cfg = base_config();
  cfg["root"]["path"] = rootfs;
  cfg["mounts"].push_back({{"destination", "/evil/mnt"}, {"type", "tmpfs"}, {"source", "tmpfs"}});
  write_config(cfg);
  std::string cid = id("dangling");
  RunResult r = rt({"run", "-b", bundle_, cid});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("open in rootfs evil/mnt: ENOENT"), std::string::npos) << r.err;
  EXPECT_TRUE(std::filesystem::is_empty(outside));
  expect_no_residue("after the failed run");
}

}  // namespace
}  // namespace strata::oci::it
