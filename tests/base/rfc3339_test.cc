#include "base/rfc3339.h"

#include <gtest/gtest.h>

namespace strata {
namespace {

constexpr int64_t kSec = 1000000000;

TEST(Rfc3339, ParsesWholeTimesToNanoseconds) {
  EXPECT_EQ(parse_rfc3339_nanos("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_rfc3339_nanos("2026-11-23T09:08:00Z"), 1795424880 * kSec);
  EXPECT_EQ(parse_rfc3339_nanos("2026-11-23T09:08:00.5Z"), 1795424880 * kSec + 500000000);
  EXPECT_EQ(parse_rfc3339_nanos("2026-11-23T09:08:00.123456789Z"), 1795424880 * kSec + 123456789);
  // Digits past nanoseconds are dropped, not rounded.
  EXPECT_EQ(parse_rfc3339_nanos("2026-11-23T09:08:00.1234567899Z"), 1795424880 * kSec + 123456789);
  EXPECT_EQ(parse_rfc3339_nanos("2026-11-23T10:08:00+01:00"), 1795424880 * kSec);
  EXPECT_EQ(parse_rfc3339_nanos("2026-11-23T08:38:00-00:30"), 1795424880 * kSec);
  for (const char* bad : {"", "2026-11-23", "2026-11-23T09:08:00", "2026-11-23 09:08:00Z", "2026-11-23T09:08:00.Z",
                          "2026-11-23T09:08:00+1:00", "2026-11-23T09:08:00+25:00", "2026-11-23T09:08:00Zjunk",
                          "yesterday"}) {
    EXPECT_FALSE(parse_rfc3339_nanos(bad).has_value()) << bad;
  }
}

TEST(Rfc3339, ParsesGoDurations) {
  EXPECT_EQ(parse_duration_nanos("90s"), 90 * kSec);
  EXPECT_EQ(parse_duration_nanos("10m"), 600 * kSec);
  EXPECT_EQ(parse_duration_nanos("1h30m"), 5400 * kSec);
  EXPECT_EQ(parse_duration_nanos("1.5h"), 5400 * kSec);
  EXPECT_EQ(parse_duration_nanos("250ms"), 250000000);
  EXPECT_EQ(parse_duration_nanos("3us"), 3000);
  EXPECT_EQ(parse_duration_nanos("7ns"), 7);
  for (const char* bad : {"", "10", "m", "10x", "1h 30m", ".s", "-5s", "1e3s", "99999999999h"}) {
    EXPECT_FALSE(parse_duration_nanos(bad).has_value()) << bad;
  }
}

TEST(Rfc3339, TimeArgumentsAsPodmanTakesThem) {
  const int64_t now = 1795424880 * kSec;
  EXPECT_EQ(parse_time_arg("10m", now), now - 600 * kSec);
  EXPECT_EQ(parse_time_arg("2026-11-23T09:00:00Z", now), now - 480 * kSec);
  EXPECT_EQ(parse_time_arg("1795424880", now), now);
  EXPECT_EQ(parse_time_arg("1795424880.25", now), now + 250000000);
  for (const char* bad : {"", "soon", "1795424880.", "17954x", "1795424880.2x", "2026-11-23"}) {
    EXPECT_FALSE(parse_time_arg(bad, now).has_value()) << bad;
  }
}

}  // namespace
}  // namespace strata
