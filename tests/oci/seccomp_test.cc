// Seccomp: compile_seccomp() refuses each bad name by its field, and compiled programs behave
// as the profile says once loaded in a forked child (no_new_privs makes loading unprivileged).
#include "oci/seccomp.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>

#include "base/fs.h"

namespace strata::oci {
namespace {

SeccompSyscall rule(std::vector<std::string> names, std::string action,
                    std::optional<uint32_t> errno_ret = std::nullopt, std::vector<SeccompArg> args = {}) {
  SeccompSyscall sc;
  sc.names = std::move(names);
  sc.action = std::move(action);
  sc.errno_ret = errno_ret;
  sc.args = std::move(args);
  return sc;
}

Seccomp allow_by_default(std::vector<SeccompSyscall> syscalls) {
  Seccomp s;
  s.default_action = "SCMP_ACT_ALLOW";
  s.syscalls = std::move(syscalls);
  return s;
}

std::string error_of(const Seccomp& s) {
  auto prog = compile_seccomp(s);
  if (prog.ok()) return "(compiled)";
  return prog.error().message();
}

// Forks; the child sets no_new_privs, loads `prog` and returns fn()'s value as its exit code.
// exit_group is called directly: the filter may refuse what libc's exit path would do.
template <class F>
int run_filtered(const SeccompProgram& prog, F fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    long code = 250;
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
      code = 251;
    else if (load_seccomp(prog) != 0)
      code = 252;
    else
      code = fn();
    ::syscall(SYS_exit_group, code);
  }
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  if (WIFSIGNALED(status)) return 1000 + WTERMSIG(status);
  return WEXITSTATUS(status);
}

TEST(SeccompTest, CompilesAProfile) {
  Seccomp s;
  s.default_action = "SCMP_ACT_ERRNO";
  s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64"};
  s.flags = {"SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"};
  s.syscalls = {rule({"read", "write", "exit_group"}, "SCMP_ACT_ALLOW"),
                rule({"personality"}, "SCMP_ACT_ALLOW", std::nullopt, {{0, 0xffffffff, 0, "SCMP_CMP_EQ"}}),
                rule({"kill"}, "SCMP_ACT_KILL_PROCESS"),
                rule({"tkill"}, "SCMP_ACT_KILL"),
                rule({"tgkill"}, "SCMP_ACT_KILL_THREAD"),
                rule({"ptrace"}, "SCMP_ACT_TRAP"),
                rule({"getpid"}, "SCMP_ACT_LOG"),
                rule({"getppid"}, "SCMP_ACT_TRACE", 7),
                rule({"mkdir"}, "SCMP_ACT_ERRNO", 42)};
  auto prog = compile_seccomp(s);
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  EXPECT_FALSE(prog->empty());
  EXPECT_EQ(prog->flags, unsigned{SECCOMP_FILTER_FLAG_LOG | SECCOMP_FILTER_FLAG_SPEC_ALLOW});
  // Every classic BPF seccomp program ends in a return.
  EXPECT_EQ(BPF_CLASS(prog->filter.back().code), BPF_RET);
}

TEST(SeccompTest, RefusesUnknownDefaultAction) {
  Seccomp s;
  s.default_action = "SCMP_ACT_FOO";
  EXPECT_EQ(error_of(s), "linux.seccomp.defaultAction: unknown action \"SCMP_ACT_FOO\"");
}

TEST(SeccompTest, RefusesUnknownRuleAction) {
  Seccomp s = allow_by_default({rule({"read"}, "SCMP_ACT_ERRNO"), rule({"mkdir"}, "SCMP_ACT_DENY")});
  EXPECT_EQ(error_of(s), "linux.seccomp.syscalls[1].action: unknown action \"SCMP_ACT_DENY\"");
}

TEST(SeccompTest, RefusesUnknownOperator) {
  Seccomp s = allow_by_default(
      {rule({"read"}, "SCMP_ACT_ERRNO"), rule({"personality"}, "SCMP_ACT_ERRNO", std::nullopt,
                                              {{0, 1, 0, "SCMP_CMP_EQ"}, {1, 1, 0, "SCMP_CMP_FOO"}})});
  EXPECT_EQ(error_of(s), "linux.seccomp.syscalls[1].args[1].op: unknown operator \"SCMP_CMP_FOO\"");
}

TEST(SeccompTest, RefusesArgumentIndexPastSix) {
  Seccomp s = allow_by_default({rule({"read"}, "SCMP_ACT_ERRNO", std::nullopt, {{6, 1, 0, "SCMP_CMP_EQ"}})});
  EXPECT_EQ(error_of(s), "linux.seccomp.syscalls[0].args[0].index: must be below 6");
}

TEST(SeccompTest, RefusesUnknownArchitecture) {
  Seccomp s = allow_by_default({});
  s.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"};
  EXPECT_EQ(error_of(s), "linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_VAX\"");
  s.architectures = {"x86_64"};  // libseccomp's own spelling is not the OCI one
  EXPECT_EQ(error_of(s), "linux.seccomp.architectures[0]: unknown architecture \"x86_64\"");
  s.architectures = {"SCMP_ARCH_"};
  EXPECT_EQ(error_of(s), "linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_\"");
}

TEST(SeccompTest, RefusesUnknownFlag) {
  Seccomp s = allow_by_default({});
  s.flags = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_NEW_LISTENER"};
  EXPECT_EQ(error_of(s), "linux.seccomp.flags[1]: unknown flag \"SECCOMP_FILTER_FLAG_NEW_LISTENER\"");
}

TEST(SeccompTest, RefusesNotify) {
  Seccomp s = allow_by_default({rule({"mkdir"}, "SCMP_ACT_NOTIFY")});
  EXPECT_EQ(error_of(s),
            "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY is not supported (no seccomp notify agent "
            "support)");
  s = allow_by_default({});
  s.listener_path = "/run/agent.sock";
  EXPECT_EQ(error_of(s), "linux.seccomp.listenerPath: not supported (no seccomp notify agent support)");
}

TEST(SeccompTest, RefusesMisplacedOrOversizedErrnoRet) {
  Seccomp s = allow_by_default({rule({"mkdir"}, "SCMP_ACT_KILL", 1)});
  EXPECT_EQ(error_of(s),
            "linux.seccomp.syscalls[0].errnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not "
            "SCMP_ACT_KILL");
  s = allow_by_default({rule({"mkdir"}, "SCMP_ACT_ERRNO", 70000)});
  EXPECT_EQ(error_of(s), "linux.seccomp.syscalls[0].errnoRet: out of range (at most 65535)");
  s = allow_by_default({});
  s.default_errno_ret = 1;
  EXPECT_EQ(error_of(s),
            "linux.seccomp.defaultErrnoRet: only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not "
            "SCMP_ACT_ALLOW");
}

TEST(SeccompTest, SkipsSyscallsLibseccompDoesNotKnow) {
  auto plain = compile_seccomp(allow_by_default({rule({"mkdir"}, "SCMP_ACT_ERRNO")}));
  auto with_unknown =
      compile_seccomp(allow_by_default({rule({"no_such_syscall_x", "mkdir"}, "SCMP_ACT_ERRNO"),
                                        rule({"another_unknown_one"}, "SCMP_ACT_KILL")}));
  ASSERT_TRUE(plain.ok()) << plain.error().to_string();
  ASSERT_TRUE(with_unknown.ok()) << with_unknown.error().to_string();
  ASSERT_EQ(plain->filter.size(), with_unknown->filter.size());
  EXPECT_EQ(std::memcmp(plain->filter.data(), with_unknown->filter.data(),
                        plain->filter.size() * sizeof(sock_filter)),
            0);
}

TEST(SeccompTest, SkipsRulesThatRepeatTheDefaultAction) {
  Seccomp s;
  s.default_action = "SCMP_ACT_ERRNO";  // EPERM
  s.syscalls = {rule({"mkdir"}, "SCMP_ACT_ERRNO", EPERM), rule({"rmdir"}, "SCMP_ACT_ERRNO")};
  auto prog = compile_seccomp(s);
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  s.syscalls.clear();
  auto bare = compile_seccomp(s);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(prog->filter.size(), bare->filter.size());
}

TEST(SeccompTest, LoadingAnEmptyProgramDoesNothing) { EXPECT_EQ(load_seccomp(SeccompProgram{}), 0); }

TEST(SeccompTest, ErrnoRetReachesTheCaller) {
  auto prog = compile_seccomp(allow_by_default({rule({"mkdir", "mkdirat"}, "SCMP_ACT_ERRNO", 42)}));
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  EXPECT_EQ(
      run_filtered(*prog, [] { return ::mkdir("/tmp/strata-seccomp-test-never", 0700) == 0 ? 0 : errno; }),
      42);
  EXPECT_EQ(
      run_filtered(
          *prog, [] { return ::mkdirat(AT_FDCWD, "/tmp/strata-seccomp-test-never", 0700) == 0 ? 0 : errno; }),
      42);
}

TEST(SeccompTest, ErrnoWithoutErrnoRetIsEperm) {
  auto prog = compile_seccomp(allow_by_default({rule({"mkdir", "mkdirat"}, "SCMP_ACT_ERRNO")}));
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  EXPECT_EQ(
      run_filtered(*prog, [] { return ::mkdir("/tmp/strata-seccomp-test-never", 0700) == 0 ? 0 : errno; }),
      EPERM);
}

// Only personality(0xffffffff) (the query) is allowed; every other call gets the default
// EACCES. The exit code carries bit 0: query worked, bit 1: personality(0) refused.
TEST(SeccompTest, ArgumentConditionEq) {
  Seccomp s;
  s.default_action = "SCMP_ACT_ERRNO";
  s.default_errno_ret = EACCES;
  s.syscalls = {rule({"exit_group", "exit"}, "SCMP_ACT_ALLOW"),
                rule({"personality"}, "SCMP_ACT_ALLOW", std::nullopt, {{0, 0xffffffff, 0, "SCMP_CMP_EQ"}})};
  auto prog = compile_seccomp(s);
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  EXPECT_EQ(run_filtered(*prog,
                         [] {
                           int code = 0;
                           if (::syscall(SYS_personality, 0xffffffffUL) >= 0) code |= 1;
                           if (::syscall(SYS_personality, 0UL) == -1 && errno == EACCES) code |= 2;
                           return code;
                         }),
            3);
}

// MASKED_EQ takes "value" as the mask and "valueTwo" as what the masked argument must equal.
TEST(SeccompTest, ArgumentConditionMaskedEq) {
  auto prog = compile_seccomp(
      allow_by_default({rule({"unshare"}, "SCMP_ACT_ERRNO", 77,
                             {{0, CLONE_NEWUSER | CLONE_NEWNET, CLONE_NEWNET, "SCMP_CMP_MASKED_EQ"}})}));
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  EXPECT_EQ(run_filtered(*prog,
                         [] {
                           int code = 0;
                           if (::unshare(CLONE_NEWNET | CLONE_NEWUTS) == -1 && errno == 77) code |= 1;
                           if (::unshare(0) == 0) code |= 2;  // masked value 0: not matched
                           if (::unshare(CLONE_NEWUSER | CLONE_NEWNET) == -1 && errno == 77)
                             code = 100;  // masked: both
                           return code;
                         }),
            3);
}

// Two comparisons on one argument: libseccomp cannot AND them, so (as runc) each becomes its
// own rule and either matches.
TEST(SeccompTest, RepeatedArgumentIndexMatchesEither) {
  auto prog = compile_seccomp(allow_by_default(
      {rule({"dup"}, "SCMP_ACT_ERRNO", 55, {{0, 1000, 0, "SCMP_CMP_EQ"}, {0, 2000, 0, "SCMP_CMP_EQ"}})}));
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  EXPECT_EQ(run_filtered(*prog,
                         [] {
                           int code = 0;
                           if (::syscall(SYS_dup, 1000) == -1 && errno == 55) code |= 1;
                           if (::syscall(SYS_dup, 2000) == -1 && errno == 55) code |= 2;
                           if (::syscall(SYS_dup, 1001) == -1 && errno == EBADF) code |= 4;
                           return code;
                         }),
            7);
}

TEST(SeccompTest, KillProcessAction) {
  auto prog = compile_seccomp(allow_by_default({rule({"getppid"}, "SCMP_ACT_KILL_PROCESS")}));
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  EXPECT_EQ(run_filtered(*prog, [] { return static_cast<int>(::syscall(SYS_getppid)) > 0 ? 0 : 1; }),
            1000 + SIGSYS);
}

TEST(SeccompTest, FlagsAreLoaded) {
  Seccomp s = allow_by_default({rule({"mkdir", "mkdirat"}, "SCMP_ACT_ERRNO", 9)});
  s.flags = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG"};
  auto prog = compile_seccomp(s);
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  EXPECT_EQ(prog->flags, unsigned{SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG});
  EXPECT_EQ(
      run_filtered(*prog, [] { return ::mkdir("/tmp/strata-seccomp-test-never", 0700) == 0 ? 0 : errno; }),
      9);
}

TEST(SeccompDefaultTest, Compiles) {
  Seccomp profile = default_seccomp_profile();
  EXPECT_EQ(profile.default_action, "SCMP_ACT_ERRNO");
  EXPECT_EQ(profile.default_errno_ret, std::optional<uint32_t>(EPERM));
  auto prog = compile_seccomp(profile);
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  EXPECT_FALSE(prog->empty());
}

// Ordinary work (files, fork, wait) goes through; namespaces and mounts get EPERM; clone3
// gets ENOSYS so that libc falls back to clone. Each check sets one bit of the exit code.
TEST(SeccompDefaultTest, AllowsOrdinaryWorkAndRefusesTheRest) {
  auto prog = compile_seccomp(default_seccomp_profile());
  ASSERT_TRUE(prog.ok()) << prog.error().to_string();
  char dir[] = "/tmp/strata-seccomp-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string sub = std::string(dir) + "/sub";
  const char* path = sub.c_str();
  int code = run_filtered(*prog, [path] {
    int code = 0;
    if (::mkdir(path, 0700) == 0) code |= 1;
    pid_t pid = ::fork();
    if (pid == 0) ::syscall(SYS_exit_group, 3);
    int status = 0;
    if (pid > 0 && ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 3) {
      code |= 2;
    }
    if (::unshare(CLONE_NEWUSER) == -1 && errno == EPERM) code |= 4;
    if (::syscall(SYS_mount, "none", path, "tmpfs", 0UL, nullptr) == -1 && errno == EPERM) code |= 8;
    if (::syscall(SYS_clone3, nullptr, 0UL) == -1 && errno == ENOSYS) code |= 16;
    if (::syscall(SYS_personality, 0xffffffffUL) >= 0) code |= 32;
    return code;
  });
  ::rmdir(path);
  ::rmdir(dir);
  EXPECT_EQ(code, 63);
}

TEST(SeccompTest, CacheCompilesOnceAndChecksTheProfile) {
  std::string dir = ::testing::TempDir() + "/seccomp_cache_" + std::to_string(::getpid());
  Seccomp profile = default_seccomp_profile();
  auto fresh = compile_seccomp(profile);
  ASSERT_TRUE(fresh.ok());
  auto first = compile_seccomp_cached(profile, dir);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  auto files = fs::list_dir(dir);
  ASSERT_EQ(files.size(), 1u);
  std::string path = dir + "/" + files[0];
  // A second compile is a load: the same program, and the file is what it came from (a
  // changed program byte in the file shows up in the result).
  auto text = fs::read_file(path);
  ASSERT_TRUE(text.ok());
  std::string patched = *text;
  patched.back() ^= 0x01;
  ASSERT_TRUE(fs::write_file_atomic(path, patched, 0600).ok());
  auto loaded = compile_seccomp_cached(profile, dir);
  ASSERT_TRUE(loaded.ok());
  ASSERT_EQ(loaded->filter.size(), fresh->filter.size());
  EXPECT_NE(
      std::memcmp(loaded->filter.data(), fresh->filter.data(), fresh->filter.size() * sizeof(sock_filter)),
      0);
  ASSERT_TRUE(fs::write_file_atomic(path, *text, 0600).ok());
  loaded = compile_seccomp_cached(profile, dir);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(
      std::memcmp(loaded->filter.data(), fresh->filter.data(), fresh->filter.size() * sizeof(sock_filter)),
      0);
  EXPECT_EQ(loaded->flags, fresh->flags);

  // Another profile never gets this program, even if its file name were the same: the file
  // holds the profile text and a different one is recompiled (and cached beside it).
  Seccomp other = profile;
  other.syscalls.pop_back();
  auto other_prog = compile_seccomp_cached(other, dir);
  ASSERT_TRUE(other_prog.ok());
  auto other_fresh = compile_seccomp(other);
  ASSERT_TRUE(other_fresh.ok());
  EXPECT_EQ(other_prog->filter.size(), other_fresh->filter.size());
  EXPECT_EQ(fs::list_dir(dir).size(), 2u);
  // A damaged file is recompiled, not trusted.
  ASSERT_TRUE(fs::write_file_atomic(path, "strata-seccomp-cache 1\ngarbage", 0600).ok());
  auto again = compile_seccomp_cached(profile, dir);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(
      std::memcmp(again->filter.data(), fresh->filter.data(), fresh->filter.size() * sizeof(sock_filter)), 0);
  (void)fs::remove_tree(dir);
}

}  // namespace
}  // namespace strata::oci
