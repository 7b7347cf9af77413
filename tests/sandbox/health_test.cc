#include "sandbox/health.h"

#include <gtest/gtest.h>

#include "base/fs.h"

namespace strata::sandbox {
namespace {

using Strings = std::vector<std::string>;

image::Healthcheck image_check(Strings test) {
  image::Healthcheck h;
  h.test = std::move(test);
  return h;
}

HealthConfig resolved(const std::optional<image::Healthcheck>& img, const HealthFlags& f) {
  auto r = resolve_health(img, f);
  EXPECT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_TRUE(r.ok() && r->has_value());
  return r.ok() && r->has_value() ? **r : HealthConfig{};
}

std::string error_of(const std::optional<image::Healthcheck>& img, const HealthFlags& f) {
  auto r = resolve_health(img, f);
  return r.ok() ? "(no error)" : r.error().to_string();
}

TEST(HealthResolve, ImageCheckGetsDockersDefaults) {
  HealthConfig h = resolved(image_check({"CMD-SHELL", "wget -q -O- localhost"}), {});
  EXPECT_EQ(h.test, (Strings{"CMD-SHELL", "wget -q -O- localhost"}));
  EXPECT_EQ(h.interval_ns, 30'000'000'000);
  EXPECT_EQ(h.timeout_ns, 30'000'000'000);
  EXPECT_EQ(h.start_period_ns, 0);
  EXPECT_EQ(h.retries, 3);
  EXPECT_EQ(h.on_failure, "none");
}

TEST(HealthResolve, FlagsOverrideTheImageOneByOne) {
  image::Healthcheck img = image_check({"CMD", "/bin/check"});
  img.interval_ns = 5'000'000'000;
  img.retries = 7;
  HealthFlags f;
  f.timeout = "1m30s";
  f.start_period = "250ms";
  f.on_failure = "restart";
  HealthConfig h = resolved(img, f);
  EXPECT_EQ(h.test, (Strings{"CMD", "/bin/check"}));
  EXPECT_EQ(h.interval_ns, 5'000'000'000);  // the image's
  EXPECT_EQ(h.retries, 7);                  // the image's
  EXPECT_EQ(h.timeout_ns, 90'000'000'000);
  EXPECT_EQ(h.start_period_ns, 250'000'000);
  EXPECT_EQ(h.on_failure, "restart");
}

TEST(HealthResolve, HealthCmdForms) {
  HealthFlags f;
  f.cmd = "curl -f http://localhost/ || exit 1";
  EXPECT_EQ(resolved(std::nullopt, f).test, (Strings{"CMD-SHELL", "curl -f http://localhost/ || exit 1"}));
  f.cmd = R"(["/bin/check", "--quick"])";
  EXPECT_EQ(resolved(std::nullopt, f).test, (Strings{"CMD", "/bin/check", "--quick"}));
  f.cmd = R"(["CMD-SHELL", "exit 0"])";
  EXPECT_EQ(resolved(std::nullopt, f).test, (Strings{"CMD-SHELL", "exit 0"}));
  // Not a JSON array of strings: a shell command like any other.
  f.cmd = "[ -f /ready ]";
  EXPECT_EQ(resolved(std::nullopt, f).test, (Strings{"CMD-SHELL", "[ -f /ready ]"}));
}

TEST(HealthResolve, NoHealthCheck) {
  HealthFlags none;
  none.none = true;
  for (const auto& img : {std::optional<image::Healthcheck>{}, std::optional{image_check({"NONE"})},
                          std::optional{image_check({})}}) {
    auto r = resolve_health(img, {});
    ASSERT_TRUE(r.ok());
    EXPECT_FALSE(r->has_value());
  }
  auto r = resolve_health(image_check({"CMD", "true"}), none);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
  HealthFlags cmd_none;
  cmd_none.cmd = "none";
  r = resolve_health(image_check({"CMD", "true"}), cmd_none);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->has_value());
}

TEST(HealthResolve, IntervalDisableKeepsTheCheckWithoutATimer) {
  HealthFlags f;
  f.cmd = "true";
  f.interval = "disable";
  HealthConfig h = resolved(std::nullopt, f);
  EXPECT_EQ(h.interval_ns, 0);
  EXPECT_EQ(h.test, (Strings{"CMD-SHELL", "true"}));
}

TEST(HealthResolve, BadValuesNameTheirFlag) {
  HealthFlags f;
  f.cmd = "true";
  f.interval = "10";
  EXPECT_EQ(error_of(std::nullopt, f),
            "--health-interval 10: expected a duration such as 30s, 1m30s or 500ms");
  f.interval = "500us";
  EXPECT_EQ(error_of(std::nullopt, f), "--health-interval 500us: must be at least 1ms");
  f.interval.reset();
  f.timeout = "soon";
  EXPECT_EQ(error_of(std::nullopt, f),
            "--health-timeout soon: expected a duration such as 30s, 1m30s or 500ms");
  f.timeout.reset();
  f.retries = -1;
  EXPECT_EQ(error_of(std::nullopt, f), "--health-retries -1: must not be negative");
  f.retries.reset();
  f.on_failure = "reboot";
  EXPECT_EQ(error_of(std::nullopt, f), "--health-on-failure reboot: expected none, kill, restart or stop");

  HealthFlags conflict;
  conflict.none = true;
  conflict.cmd = "true";
  EXPECT_EQ(error_of(std::nullopt, conflict), "--no-healthcheck conflicts with the --health-* options");

  HealthFlags orphan;
  orphan.interval = "5s";
  EXPECT_EQ(error_of(std::nullopt, orphan), "--health-* options need a health check: give --health-cmd");

  HealthFlags empty;
  empty.cmd = "";
  EXPECT_EQ(error_of(std::nullopt, empty), "--health-cmd: empty command");
  EXPECT_EQ(error_of(image_check({"CMD"}), {}), "the image's Healthcheck.Test: CMD needs a program to run");
  EXPECT_EQ(error_of(image_check({"CMD-SHELL", "a", "b"}), {}),
            "the image's Healthcheck.Test: CMD-SHELL takes exactly one command string");
  EXPECT_EQ(error_of(image_check({"RUN", "x"}), {}),
            "the image's Healthcheck.Test: unknown test type \"RUN\" (CMD, CMD-SHELL or NONE)");
}

TEST(HealthArgv, ExecAndShellForms) {
  HealthConfig h;
  h.test = {"CMD", "/bin/check", "a b"};
  EXPECT_EQ(health_argv(h), (Strings{"/bin/check", "a b"}));
  h.test = {"CMD-SHELL", "test -f /ready && echo ok"};
  EXPECT_EQ(health_argv(h), (Strings{"/bin/sh", "-c", "test -f /ready && echo ok"}));
}

HealthResult result(int code) { return HealthResult{"s", "e", code, "out" + std::to_string(code)}; }

TEST(HealthState, DockersTransitions) {
  HealthConfig c;
  c.retries = 2;
  HealthState s;
  EXPECT_EQ(s.status, "starting");
  record_health_result(s, c, result(1), false);
  EXPECT_EQ(s.status, "starting");  // one failure of two
  EXPECT_EQ(s.failing_streak, 1);
  record_health_result(s, c, result(1), false);
  EXPECT_EQ(s.status, "unhealthy");
  EXPECT_EQ(s.failing_streak, 2);
  record_health_result(s, c, result(0), false);
  EXPECT_EQ(s.status, "healthy");
  EXPECT_EQ(s.failing_streak, 0);
  record_health_result(s, c, result(1), false);
  EXPECT_EQ(s.status, "healthy");
  record_health_result(s, c, result(-1), false);  // a timeout counts as a failure
  EXPECT_EQ(s.status, "unhealthy");
}

TEST(HealthState, StartPeriodFailuresDoNotCountWhileStarting) {
  HealthConfig c;
  c.retries = 1;
  HealthState s;
  record_health_result(s, c, result(1), true);
  record_health_result(s, c, result(1), true);
  EXPECT_EQ(s.status, "starting");
  EXPECT_EQ(s.failing_streak, 0);
  EXPECT_EQ(s.log.size(), 2u);  // logged all the same
  record_health_result(s, c, result(0), true);
  EXPECT_EQ(s.status, "healthy");
  // Once healthy, the start period no longer shields a failure.
  record_health_result(s, c, result(1), true);
  EXPECT_EQ(s.status, "unhealthy");
}

TEST(HealthState, KeepsTheLastFiveResultsAndRoundTrips) {
  HealthConfig c;
  c.retries = 3;
  HealthState s;
  for (int i = 0; i < 8; ++i) record_health_result(s, c, result(i), false);
  ASSERT_EQ(s.log.size(), kHealthLogEntries);
  EXPECT_EQ(s.log.front().exit_code, 3);
  EXPECT_EQ(s.log.back().exit_code, 7);
  auto back = parse_health_state(health_state_json(s));
  ASSERT_TRUE(back.ok()) << back.error().to_string();
  EXPECT_EQ(back->status, s.status);
  EXPECT_EQ(back->failing_streak, s.failing_streak);
  ASSERT_EQ(back->log.size(), kHealthLogEntries);
  EXPECT_EQ(back->log.back().output, "out7");
  EXPECT_EQ(back->log.back().start, "s");
  EXPECT_FALSE(parse_health_state("[1,2]").ok());
  EXPECT_FALSE(parse_health_state(R"({"Status": 5})").ok());
}

}  // namespace
}  // namespace strata::sandbox
