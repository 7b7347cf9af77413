#include "sandbox/config_check.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <limits>

namespace strata::sandbox {
namespace {

ContainerConfig config() {
  ContainerConfig c;
  c.args = {"sh"};
  return c;
}

std::string error_of(const ContainerConfig& c) {
  Status s = check_config(c);
  return s.ok() ? "" : s.error().message();
}

// --cpus inf was written to the record as JSON null: a container strata could neither list nor
// remove. nan was ignored, 1e308 overflowed the quota, 1e-9 gave quota 0.
TEST(CheckConfig, CpusMustBeFiniteAndInDockersRange) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  for (double bad : {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                     std::nan(""), 1e308, 1e-9, 0.0, -1.0, 0.009, static_cast<double>(n) + 0.01}) {
    ContainerConfig c = config();
    c.cpus = bad;
    std::string e = error_of(c);
    EXPECT_NE(e.find("the range of CPUs is from 0.01 to " + std::to_string(n) + ".00"), std::string::npos)
        << bad << ": " << e;
  }
  for (double good : {0.01, 0.5, static_cast<double>(n)}) {
    ContainerConfig c = config();
    c.cpus = good;
    EXPECT_EQ(error_of(c), "") << good;
  }
}

TEST(CheckConfig, MemoryHasDockersMinimum) {
  ContainerConfig c = config();
  c.memory = 1;
  EXPECT_EQ(error_of(c), "--memory 1 bytes: the minimum memory limit allowed is 6MB (6291456 bytes)");
  c.memory = 6 * 1024 * 1024;
  EXPECT_EQ(error_of(c), "");
  c.pids_limit = 0;
  EXPECT_NE(error_of(c).find("--pids-limit 0"), std::string::npos);
}

TEST(CheckConfig, HostnameIsRfc1123) {
  for (const char* bad : {"a/b", "-a", "a-", "a..b", ".a", "a b", "a_b", "\xc3\xa9t\xc3\xa9"}) {
    ContainerConfig c = config();
    c.hostname = bad;
    EXPECT_NE(error_of(c).find("--hostname"), std::string::npos) << bad;
  }
  ContainerConfig c = config();
  c.hostname = std::string(65, 'a');
  EXPECT_NE(error_of(c).find("longer than 64"), std::string::npos);
  for (const char* good : {"web", "web-1.example.com", "A1", "x"}) {
    c.hostname = good;
    EXPECT_EQ(error_of(c), "") << good;
  }
}

// An image VOLUME /dev hid the container's /dev; the error came later and named /proc/keys.
TEST(CheckConfig, VolumesCannotReplaceWhatTheRuntimeMounts) {
  for (const char* dest : {"/dev", "/dev/", "/proc", "/proc/sys", "/sys/fs/cgroup", "/", "/dev/pts"}) {
    ContainerConfig c = config();
    c.volumes.push_back({"", dest, false, true});
    std::string e = error_of(c);
    EXPECT_NE(e.find("the image's VOLUME"), std::string::npos) << dest << ": " << e;
    EXPECT_NE(e.find("a volume cannot replace it"), std::string::npos) << dest << ": " << e;
  }
  ContainerConfig c = config();
  c.volumes.push_back({"/srv", "/dev/shm/x", false, false});
  c.volumes.push_back({"/srv", "/devices", false, false});
  EXPECT_EQ(error_of(c), "");
  c.volumes.push_back({"/srv", "relative", false, false});
  EXPECT_NE(error_of(c).find("must be an absolute path"), std::string::npos);
}

TEST(CheckConfig, OtherFields) {
  ContainerConfig c = config();
  c.restart = "on-failure:99999999999";
  EXPECT_NE(error_of(c).find("--restart"), std::string::npos);
  c.restart = "on-failure:5";
  EXPECT_EQ(error_of(c), "");
  c.stop_timeout_s = -1;
  EXPECT_NE(error_of(c).find("--stop-timeout"), std::string::npos);
  c.stop_timeout_s = 10;
  c.stop_signal = "SIGNOPE";
  EXPECT_NE(error_of(c).find("is not a signal"), std::string::npos);
  c.stop_signal = "SIGTERM";
  c.health = HealthConfig{{"CMD", "true"}, 30000000000, -5, 0, 3, "none"};
  EXPECT_NE(error_of(c).find("timeout"), std::string::npos);
  c.cwd = "relative";
  c.health.reset();
  EXPECT_NE(error_of(c).find("working directory"), std::string::npos);
}

}  // namespace
}  // namespace strata::sandbox
