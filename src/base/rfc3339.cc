#include "base/rfc3339.h"

#include <time.h>

#include <cstdio>

namespace strata {

std::string now_rfc3339() {
  time_t t = ::time(nullptr);
  struct tm tm {};
  ::gmtime_r(&t, &tm);
  char buf[32];
  ::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string now_rfc3339_nanos() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm {};
  ::gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  size_t n = ::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  ::snprintf(buf + n, sizeof buf - n, ".%09ldZ", ts.tv_nsec);
  return buf;
}

std::optional<int64_t> parse_rfc3339(std::string_view s) {
  std::string head(s.substr(0, 19));
  struct tm tm {};
  const char* end = ::strptime(head.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  return static_cast<int64_t>(::timegm(&tm));
}

std::optional<int64_t> parse_rfc3339_nanos(std::string_view s) {
  if (s.size() < 20 || (s[10] != 'T' && s[10] != 't')) return std::nullopt;
  auto secs = parse_rfc3339(s);
  if (!secs) return std::nullopt;
  size_t i = 19;
  int64_t frac = 0;
  if (i < s.size() && s[i] == '.') {
    size_t digits = 0;
    for (++i; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i, ++digits) {
      if (digits < 9) frac = frac * 10 + (s[i] - '0');
    }
    if (digits == 0) return std::nullopt;
    for (; digits < 9; ++digits) frac *= 10;
  }
  int64_t offset = 0;
  if (i + 1 == s.size() && (s[i] == 'Z' || s[i] == 'z')) {
    offset = 0;
  } else if (i + 6 == s.size() && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
    auto two = [&](size_t at) -> int {
      return s[at] >= '0' && s[at] <= '9' && s[at + 1] >= '0' && s[at + 1] <= '9' ? (s[at] - '0') * 10 + (s[at + 1] - '0')
                                                                                 : -1;
    };
    int h = two(i + 1), m = two(i + 4);
    if (h < 0 || m < 0 || h > 23 || m > 59) return std::nullopt;
    offset = (s[i] == '+' ? 1 : -1) * (h * 3600 + m * 60);
  } else {
    return std::nullopt;
  }
  return (*secs - offset) * 1000000000 + frac;
}

std::optional<int64_t> parse_duration_nanos(std::string_view s) {
  if (s.empty()) return std::nullopt;
  long double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    long double v = 0, scale = 1;
    bool dot = false;
    for (; i < s.size() && ((s[i] >= '0' && s[i] <= '9') || (s[i] == '.' && !dot)); ++i) {
      if (s[i] == '.') {
        dot = true;
      } else if (dot) {
        scale /= 10;
        v += (s[i] - '0') * scale;
      } else {
        v = v * 10 + (s[i] - '0');
      }
    }
    if (i == start || (i == start + 1 && dot)) return std::nullopt;
    size_t ustart = i;
    while (i < s.size() && ((s[i] >= 'a' && s[i] <= 'z') || s[i] == '\xc2' || s[i] == '\xb5')) ++i;
    std::string_view unit = s.substr(ustart, i - ustart);
    long double mult;
    if (unit == "ns") mult = 1;
    else if (unit == "us" || unit == "\xc2\xb5s") mult = 1e3;
    else if (unit == "ms") mult = 1e6;
    else if (unit == "s") mult = 1e9;
    else if (unit == "m") mult = 60e9;
    else if (unit == "h") mult = 3600e9;
    else return std::nullopt;
    total += v * mult;
    if (total > 9.2e18L) return std::nullopt;
  }
  return static_cast<int64_t>(total);
}

std::optional<int64_t> parse_time_arg(std::string_view s, int64_t now_ns) {
  if (auto t = parse_rfc3339_nanos(s)) return t;
  if (auto d = parse_duration_nanos(s)) return now_ns - *d;
  // Unix seconds, optionally with a fraction.
  size_t i = 0;
  int64_t secs = 0, frac = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    if (i >= 12) return std::nullopt;
    secs = secs * 10 + (s[i] - '0');
  }
  if (i == 0) return std::nullopt;
  if (i < s.size()) {
    if (s[i] != '.' || i + 1 == s.size()) return std::nullopt;
    size_t digits = 0;
    for (++i; i < s.size(); ++i, ++digits) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      if (digits < 9) frac = frac * 10 + (s[i] - '0');
    }
    for (; digits < 9; ++digits) frac *= 10;
  }
  return secs * 1000000000 + frac;
}

}  // namespace strata
