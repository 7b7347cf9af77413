// Signal, rlimit and capability name tables (src/oci/names.h).
#include "oci/names.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <fstream>
#include <set>

namespace strata::oci {
namespace {

TEST(NamesSignalTest, AcceptsNamesWithAndWithoutPrefixInAnyCase) {
  EXPECT_EQ(signal_from_name("SIGTERM"), SIGTERM);
  EXPECT_EQ(signal_from_name("TERM"), SIGTERM);
  EXPECT_EQ(signal_from_name("term"), SIGTERM);
  EXPECT_EQ(signal_from_name("sigKill"), SIGKILL);
  EXPECT_EQ(signal_from_name("HUP"), SIGHUP);
  EXPECT_EQ(signal_from_name("SIGWINCH"), SIGWINCH);
  EXPECT_EQ(signal_from_name("usr2"), SIGUSR2);
}

TEST(NamesSignalTest, KnowsEveryStandardSignalAndTheAliases) {
  for (auto name :
       {"HUP",  "INT",  "QUIT", "ILL",    "TRAP",   "ABRT",  "BUS",  "FPE",  "KILL", "USR1", "SEGV",
        "USR2", "PIPE", "ALRM", "TERM",   "STKFLT", "CHLD",  "CONT", "STOP", "TSTP", "TTIN", "TTOU",
        "URG",  "XCPU", "XFSZ", "VTALRM", "PROF",   "WINCH", "IO",   "PWR",  "SYS"})
    EXPECT_TRUE(signal_from_name(name).has_value()) << name;
  EXPECT_EQ(signal_from_name("IOT"), SIGABRT);
  EXPECT_EQ(signal_from_name("CLD"), SIGCHLD);
  EXPECT_EQ(signal_from_name("POLL"), SIGIO);
}

TEST(NamesSignalTest, AcceptsNumbers) {
  EXPECT_EQ(signal_from_name("9"), 9);
  EXPECT_EQ(signal_from_name("15"), 15);
  EXPECT_EQ(signal_from_name("64"), SIGRTMAX);
}

TEST(NamesSignalTest, AcceptsRealtimeSignals) {
  EXPECT_EQ(signal_from_name("RTMIN"), SIGRTMIN);
  EXPECT_EQ(signal_from_name("SIGRTMIN+3"), SIGRTMIN + 3);
  EXPECT_EQ(signal_from_name("rtmin+0"), SIGRTMIN);
  EXPECT_EQ(signal_from_name("RTMAX"), SIGRTMAX);
  EXPECT_EQ(signal_from_name("SIGRTMAX-2"), SIGRTMAX - 2);
  EXPECT_EQ(signal_from_name(std::string("RTMIN+") + std::to_string(SIGRTMAX - SIGRTMIN)), SIGRTMAX);
}

TEST(NamesSignalTest, RefusesEverythingElse) {
  for (auto bad : {"",          "0",      "65",       "-9",       "+9",
                   "9x",        "SIG",    "FOO",      "SIGFOO",   "RTMIN-1",
                   "RTMAX+1",   "RTMIN+", "RTMIN+-1", "RTMIN++1", "RTMIN+100",
                   "RTMAX-100", "RTMINX", " TERM",    "TERM ",    "99999999999999999999"})
    EXPECT_FALSE(signal_from_name(bad).has_value()) << '"' << bad << '"';
}

TEST(NamesRlimitTest, MapsEveryLinuxRlimitBothWays) {
  struct {
    const char* name;
    int resource;
  } all[] = {{"RLIMIT_CPU", RLIMIT_CPU},           {"RLIMIT_FSIZE", RLIMIT_FSIZE},
             {"RLIMIT_DATA", RLIMIT_DATA},         {"RLIMIT_STACK", RLIMIT_STACK},
             {"RLIMIT_CORE", RLIMIT_CORE},         {"RLIMIT_RSS", RLIMIT_RSS},
             {"RLIMIT_NPROC", RLIMIT_NPROC},       {"RLIMIT_NOFILE", RLIMIT_NOFILE},
             {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_AS", RLIMIT_AS},
             {"RLIMIT_LOCKS", RLIMIT_LOCKS},       {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
             {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
             {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME}};
  static_assert(RLIMIT_NLIMITS == 16);
  for (const auto& r : all) {
    EXPECT_EQ(rlimit_from_name(r.name), r.resource) << r.name;
    EXPECT_EQ(rlimit_name(r.resource), r.name);
  }
}

TEST(NamesRlimitTest, RefusesUnknownAndNonCanonicalNames) {
  EXPECT_FALSE(rlimit_from_name("RLIMIT_FOO"));
  EXPECT_FALSE(rlimit_from_name("NOFILE"));
  EXPECT_FALSE(rlimit_from_name("rlimit_nofile"));
  EXPECT_FALSE(rlimit_from_name(""));
  EXPECT_EQ(rlimit_name(999), "");
  EXPECT_EQ(rlimit_name(-1), "");
}

TEST(NamesCapabilityTest, KnowsTheWholeTable) {
  EXPECT_EQ(capability_from_name("CAP_CHOWN"), 0);
  EXPECT_EQ(capability_from_name("CAP_NET_ADMIN"), 12);
  EXPECT_EQ(capability_from_name("CAP_SYS_ADMIN"), 21);
  EXPECT_EQ(capability_from_name("CAP_AUDIT_READ"), 37);
  EXPECT_EQ(capability_from_name("CAP_CHECKPOINT_RESTORE"), 40);
  EXPECT_EQ(capability_name(0), "CAP_CHOWN");
  EXPECT_EQ(capability_name(39), "CAP_BPF");
  EXPECT_EQ(capability_name(41), "");
  EXPECT_EQ(capability_name(-1), "");

  auto names = all_capability_names();
  ASSERT_EQ(names.size(), 41u);
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(capability_from_name(names[i]), static_cast<int>(i)) << names[i];
    EXPECT_EQ(capability_name(static_cast<int>(i)), names[i]);
  }
}

TEST(NamesCapabilityTest, RefusesUnknownNames) {
  EXPECT_FALSE(capability_from_name("CAP_FOO"));
  EXPECT_FALSE(capability_from_name("SYS_ADMIN"));
  EXPECT_FALSE(capability_from_name("cap_sys_admin"));
  EXPECT_FALSE(capability_from_name(""));
}

TEST(NamesCapabilityTest, LastCapabilityIsTheKernels) {
  int last = last_capability();
  std::ifstream f("/proc/sys/kernel/cap_last_cap");
  int expected = 40;
  if (f) f >> expected;
  EXPECT_EQ(last, expected);
  EXPECT_GE(last, 30);
}

TEST(NamesCapabilityTest, DefaultSetIsTheOciOne) {
  auto caps = default_capability_names();
  std::set<std::string> set(caps.begin(), caps.end());
  EXPECT_EQ(set.size(), 14u);
  EXPECT_EQ(set,
            (std::set<std::string>{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                                   "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                                   "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}));
  for (const auto& c : caps) EXPECT_TRUE(capability_from_name(c)) << c;
}

}  // namespace
}  // namespace strata::oci
