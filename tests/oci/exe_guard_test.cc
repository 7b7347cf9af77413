// The exec stub and its protocol (exec_stub.c, init.cc), and when the runtime must run from an
// unwritable binary (exe_guard.h). No privileges: the stub is run directly from its memfd.
#include "oci/exe_guard.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "oci/init.h"
#include "oci/sync.h"

namespace strata::oci {
namespace {

struct StubRun {
  int status = -1;
  std::string out, err;
};

// Runs the stub with argv (and the fds in keep kept open across its exec).
StubRun run_stub(std::vector<std::string> args, const std::vector<int>& keep = {}) {
  int out[2], err[2];
  EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(::pipe2(err, O_CLOEXEC), 0);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  char* envp[] = {const_cast<char*>("STUB_TEST=1"), nullptr};
  int stub = exec_stub_fd();
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    for (int fd : keep) ::fcntl(fd, F_SETFD, 0);
    ::syscall(SYS_execveat, stub, "", argv.data(), envp, AT_EMPTY_PATH);
    ::_exit(99);
  }
  ::close(out[1]);
  ::close(err[1]);
  StubRun r;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(out[0], buf, sizeof buf)) > 0) r.out.append(buf, static_cast<size_t>(n));
  while ((n = ::read(err[0], buf, sizeof buf)) > 0) r.err.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  ::close(err[0]);
  ::waitpid(pid, &r.status, 0);
  return r;
}

TEST(ExecStub, IsASealedExecutableMemfd) {
  int fd = exec_stub_fd();
  ASSERT_GE(fd, 0) << "this kernel refuses executable memfds";
  EXPECT_EQ(fd, exec_stub_fd()) << "made once per process";
  int seals = ::fcntl(fd, F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE),
            F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
  EXPECT_NE(::fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  char magic[4] = {};
  EXPECT_EQ(::pread(fd, magic, 4, 0), 4);
  EXPECT_EQ(std::memcmp(magic,
                        "\x7f"
                        "ELF",
                        4),
            0);
  EXPECT_LT(::lseek(fd, 0, SEEK_END), 64 * 1024) << "a few KiB, not a copy of the runtime";
  EXPECT_EQ(::pwrite(fd, "x", 1, 0), -1) << "sealed against writes";
}

TEST(ExecStub, ExecsTheProgramWithItsArgvAndEnvironment) {
  StubRun r = run_stub({"-", "/bin/sh", "sh", "-c", "echo \"$0 $1 $STUB_TEST\"", "zero", "one"});
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0) << r.err;
  EXPECT_EQ(r.out, "zero one 1\n");
}

TEST(ExecStub, ClosesTheListedFdsAsItExecs) {
  int a = ::open("/dev/null", O_RDONLY | O_CLOEXEC), b = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int c = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::string list = std::to_string(a) + "," + std::to_string(b);
  std::string probe = "for f in " + std::to_string(a) + " " + std::to_string(b) + " " + std::to_string(c) +
                      "; do [ -e /proc/self/fd/$f ] && echo open $f; done; true";
  StubRun r = run_stub({list, "/bin/sh", "sh", "-c", probe}, {a, b, c});
  EXPECT_EQ(r.out, "open " + std::to_string(c) + "\n") << "the listed ones closed, the other kept";
  ::close(a);
  ::close(b);
  ::close(c);
}

TEST(ExecStub, ReportsAFailedExecOnTheSyncSocket) {
  int sp[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
  StubRun r = run_stub({std::to_string(sp[1]), "/nonexistent/program", "program"}, {sp[1]});
  ::close(sp[1]);
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 127);
  SyncMsg m;
  ASSERT_EQ(sync_recv(sp[0], &m), 1);
  EXPECT_EQ(m.type, SyncType::kFailure);
  EXPECT_EQ(m.failure.err, ENOENT);
  EXPECT_STREQ(m.failure.step, "exec");
  EXPECT_STREQ(m.failure.detail, "/nonexistent/program");
  EXPECT_EQ(sync_recv(sp[0], &m), 0) << "then EOF";
  ::close(sp[0]);
  EXPECT_EQ(r.err, "");
}

TEST(ExecStub, WithNobodyToTellItSaysSoOnStderr) {
  StubRun r = run_stub({"-", "/nonexistent/program", "program"});
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 127);
  EXPECT_EQ(r.err, "strata-runtime: exec /nonexistent/program: No such file or directory\n");
}

TEST(ExecStub, RefusesToRunAsAnythingElse) {
  // As a script's interpreter (#!/proc/self/exe), argv[0] is the interpreter's path.
  for (auto args : std::vector<std::vector<std::string>>{{"/proc/self/exe", "update", "/bin/upd"}, {"x"}}) {
    StubRun r = run_stub(args);
    EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 127);
    EXPECT_EQ(r.err, "strata exec stub: not a program to run\n");
    EXPECT_EQ(r.out, "");
  }
}

TEST(ExecStub, SyncMsgLayoutIsTheStubs) {
  // exec_stub.c writes this record with its own struct: type, pid, err, step[64], detail[256].
  EXPECT_EQ(sizeof(SyncMsg), 332u);
  EXPECT_EQ(offsetof(SyncMsg, failure) + offsetof(ChildFailure, err), 8u);
  EXPECT_EQ(offsetof(SyncMsg, failure) + offsetof(ChildFailure, step), 12u);
  EXPECT_EQ(offsetof(SyncMsg, failure) + offsetof(ChildFailure, detail), 76u);
  EXPECT_EQ(static_cast<uint32_t>(SyncType::kFailure), 7u);
}

TEST(ExecStub, PlanCarriesTheStubsArgv) {
  InitPlan plan;
  plan.args = {"/bin/app", "--flag"};
  plan.sync_fd = 7;
  plan.fifo_fd = 5;
  plan.exec_stub_fd = 9;
  finalize_plan(plan);
  ASSERT_EQ(plan.stub_argv.size(), 5u);
  EXPECT_STREQ(plan.stub_argv[0], "7,5");
  EXPECT_EQ(plan.stub_argv[1], nullptr) << "the resolved path, filled in by the child";
  EXPECT_STREQ(plan.stub_argv[2], "/bin/app");
  EXPECT_STREQ(plan.stub_argv[3], "--flag");
  EXPECT_EQ(plan.stub_argv[4], nullptr);
  plan.fifo_fd = -1;
  plan.sync_fd = -1;
  finalize_plan(plan);
  EXPECT_STREQ(plan.stub_argv[0], "-");
  plan.exec_stub_fd = -1;
  finalize_plan(plan);
  EXPECT_TRUE(plan.stub_argv.empty()) << "no stub: the program is executed directly";
}

TEST(ExeGuard, OnlyPtraceWithoutAUserNamespaceReachesTheRuntime) {
  Spec spec;
  Capabilities none;
  Capabilities bounding;
  bounding.bounding = {CAP_CHOWN, CAP_SYS_PTRACE};
  Capabilities ambient;
  ambient.ambient = {CAP_SYS_PTRACE};
  EXPECT_FALSE(reaches_runtime_exe(spec, std::nullopt));
  EXPECT_FALSE(reaches_runtime_exe(spec, none));
  EXPECT_TRUE(reaches_runtime_exe(spec, bounding)) << "a setuid program inside can raise the bounding set";
  EXPECT_TRUE(reaches_runtime_exe(spec, ambient));
  spec.linux.namespaces.push_back(Namespace{NamespaceType::kUser, ""});
  EXPECT_FALSE(reaches_runtime_exe(spec, bounding))
      << "CAP_SYS_PTRACE of a user namespace stops at its border";
}

}  // namespace
}  // namespace strata::oci
