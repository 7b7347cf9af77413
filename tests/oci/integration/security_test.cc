// The known runtime escapes, attempted from inside the container:
//  - CVE-2019-5736 (/proc/self/exe): an entrypoint "#!/proc/self/exe update" would make the kernel
//    run strata-runtime itself inside the container, where a container process could hold its exe
//    and write it once no runtime runs. The init and exec children exec the program through the
//    sealed exec stub (exe_guard.h), so /proc/self/exe is the stub then; the init of a created
//    container (still the runtime's image) must not be reachable through /proc/1/exe, and a
//    container whose processes may hold CAP_SYS_PTRACE gets a runtime re-executed from an
//    unwritable copy;
//  - CVE-2024-21626 (leaked fds and cwd): fds the runtime inherited never reach the container, and
//    a cwd through /proc/self/fd/N cannot land outside the root;
//  - symlinks in the rootfs never send a mount or a device node outside it.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
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

// Points the PT_INTERP of a dynamically linked ELF64 image at `path` (in place: the old path is
// longer); false when it has none or no room.
bool set_interpreter(std::string& elf, const std::string& path) {
  auto u64 = [&](size_t off) {
    uint64_t v = 0;
    std::memcpy(&v, elf.data() + off, 8);
    return v;
  };
  auto u16 = [&](size_t off) {
    uint16_t v = 0;
    std::memcpy(&v, elf.data() + off, 2);
    return v;
  };
  if (elf.size() < 64 ||
      elf.compare(0, 4,
                  "\x7f"
                  "ELF") != 0 ||
      elf[4] != 2)
    return false;
  uint64_t phoff = u64(32);
  uint16_t phentsize = u16(54), phnum = u16(56);
  for (uint16_t i = 0; i < phnum; ++i) {
    size_t ph = phoff + static_cast<size_t>(i) * phentsize;
    if (ph + 56 > elf.size()) return false;
    uint32_t type = 0;
    std::memcpy(&type, elf.data() + ph, 4);
    if (type != 3 /* PT_INTERP */) continue;
    uint64_t off = u64(ph + 8), filesz = u64(ph + 32);
    if (filesz < path.size() + 1 || off + filesz > elf.size()) return false;
    std::memset(elf.data() + off, 0, filesz);
    std::memcpy(elf.data() + off, path.data(), path.size());
    return true;
  }
  return false;
}

TEST_F(SecurityTest, ProcSelfExeInterpreterRunsTheSealedStubNotTheRuntime) {
  // The attack writes into the binary it reaches: give it a copy of the runtime to aim at.
  std::string bin = tmp_ + "/bin";
  make_dir(bin);
  runtime_ = bin + "/strata-runtime";
  ASSERT_EQ(run_cmd({"/bin/cp", kRuntime, runtime_}).code, 0);
  const std::string original = read_file(runtime_);
  ASSERT_GT(original.size(), 0u);
  std::string rootfs = copy_rootfs();
  // A script and an ELF program whose interpreter is /proc/self/exe: what the kernel runs for
  // them is whatever /proc/self/exe is at the moment of the exec.
  write_file(rootfs + "/bin/upd", "#!/proc/self/exe update\n", 0755);
  // A dynamically linked program of the host's (the rootfs has only static ones).
  std::string elf = read_file("/bin/true");
  ASSERT_TRUE(set_interpreter(elf, "/proc/self/exe")) << "/bin/true has no PT_INTERP to point elsewhere";
  write_file(rootfs + "/bin/elfupd", elf, 0755);

  Json cfg = base_config();
  cfg["root"]["path"] = rootfs;
  // The init's own exec (run) ...
  for (const char* prog : {"/bin/upd", "/bin/elfupd"}) {
    cfg["process"]["args"] = {prog, "-r", "/tmp/x"};
    write_config(cfg);
    RunResult r = rt({"run", "-b", bundle_, id("init")});
    EXPECT_EQ(r.code, 127) << prog << ": " << r.out << r.err;
    EXPECT_NE(r.err.find("strata exec stub: not a program to run"), std::string::npos)
        << prog << ": " << r.err;
    EXPECT_EQ(r.err.find("strata-runtime: unknown"), std::string::npos) << "the runtime ran: " << r.err;
  }
  // ... and an exec child's.
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  std::string cid = id("exe");
  AsyncRun run = run_detached(cfg, cid);
  ASSERT_TRUE(wait_status(cid, "running")) << run.err();
  for (const char* prog : {"/bin/upd", "/bin/elfupd"}) {
    RunResult e = rt({"exec", cid, prog, "-r", "/tmp/x"});
    EXPECT_EQ(e.code, 127) << prog << ": " << e.out << e.err;
    EXPECT_NE(e.err.find("strata exec stub: not a program to run"), std::string::npos)
        << prog << ": " << e.err;
  }
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
  EXPECT_TRUE(read_file(runtime_) == original) << "the runtime binary was modified from inside the container";
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
  // A process allowed to trace (CAP_SYS_PTRACE) could open it: such an exec is refused until the
  // container runs its own program.
  r = rt({"exec", "--cap", "CAP_SYS_PTRACE", cid, "/bin/probe", "write", "/proc/1/exe"});
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("a process with CAP_SYS_PTRACE could reach the runtime's binary through its init"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);

  // A container whose own process may have CAP_SYS_PTRACE: the runtime re-executes itself from an
  // unwritable copy before making it, so what its init's /proc/1/exe reaches cannot be written.
  cfg["process"]["capabilities"]["bounding"].push_back("CAP_SYS_PTRACE");
  write_config(cfg);
  cid = id("ptraced");
  RunResult c = rt({"create", "-b", bundle_, cid});
  ASSERT_EQ(c.code, 0) << c.err;
  r = rt({"exec", "--cap", "CAP_SYS_PTRACE", cid, "/bin/probe", "write", "/proc/1/exe"});
  ASSERT_EQ(r.code, 0) << r.err;
  // Busy while the init executes it; on a read-only mount for when nothing does any more.
  int err = last_json(r.out)["/proc/1/exe"]["errno"];
  EXPECT_TRUE(err == EROFS || err == ETXTBSY) << r.out;
  Json st = state(cid);
  ASSERT_TRUE(st.is_object());
  int exe = ::open(("/proc/" + std::to_string(st["pid"].get<int>()) + "/exe").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(exe, 0);
  struct statvfs sv {};
  EXPECT_EQ(::fstatvfs(exe, &sv), 0);
  ::close(exe);
  EXPECT_NE(sv.f_flag & ST_RDONLY, 0u) << "the init's image is a read-only view of the runtime";
  EXPECT_EQ(rt({"delete", "--force", cid}).code, 0);
}

TEST_F(SecurityTest, AnExecWithPtraceMarksTheContainerForLaterExecs) {
  Json cfg = base_config();
  cfg["process"]["args"] = {"/bin/probe", "sleep", "60"};
  std::string cid = id("marked");
  AsyncRun run = run_detached(cfg, cid);
  ASSERT_TRUE(wait_status(cid, "running")) << run.err();
  std::string marker = root_ + "/" + cid + "/ptrace-exec";
  ASSERT_EQ(rt({"exec", cid, "/bin/probe", "read", "/proc/1/status"}).code, 0);
  EXPECT_FALSE(std::filesystem::exists(marker)) << "a plain exec marks nothing";
  RunResult r = rt({"exec", "--cap", "CAP_SYS_PTRACE", cid, "/bin/probe", "read", "/proc/1/status"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(std::filesystem::exists(marker)) << "later execs run from an unwritable runtime";
  EXPECT_EQ(rt({"exec", cid, "/bin/probe", "read", "/proc/1/status"}).code, 0);
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
