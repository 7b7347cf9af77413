// LogRateLimiter: how often one log call site may write (STYLE.md section 8: rate-limit what a
// guest or an API client can trigger). The idea of Firecracker's logger/rate_limited.rs: each
// call site owns a token bucket, `burst` lines at once and `burst` more per `period`, so that
// a condition repeating in a loop (accept() failing on EMFILE, a guest resetting a device)
// logs a few lines rather than gigabytes, and one noisy site does not silence the others.
// Unlike Firecracker's, it counts what it suppressed, so that the next line it lets through can
// say how many were left out. Thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace strata::vmm {

class LogRateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  explicit LogRateLimiter(uint32_t burst = 10, std::chrono::milliseconds period = std::chrono::seconds(5))
      : burst_(burst), period_(period) {}

  // True when a line may be written at `now`. Then *suppressed (when given) is the number of
  // lines refused since the last one allowed.
  bool allow(Clock::time_point now = Clock::now(), uint64_t* suppressed = nullptr) {
    std::lock_guard<std::mutex> g(mu_);
    if (!started_) {
      started_ = true;
      tokens_ = burst_;
      last_ = now;
    }
    if (now > last_) {
      // Refill in proportion to the time passed, never beyond a full bucket.
      double add = static_cast<double>(burst_) * std::chrono::duration<double>(now - last_).count() /
                   std::chrono::duration<double>(period_).count();
      tokens_ = std::min<double>(burst_, tokens_ + add);
      last_ = now;
    }
    if (tokens_ < 1.0) {
      ++suppressed_;
      return false;
    }
    tokens_ -= 1.0;
    if (suppressed) *suppressed = suppressed_;
    suppressed_ = 0;
    return true;
  }

 private:
  const uint32_t burst_;
  const std::chrono::milliseconds period_;
  std::mutex mu_;
  bool started_ = false;
  double tokens_ = 0;
  Clock::time_point last_{};
  uint64_t suppressed_ = 0;
};

}  // namespace strata::vmm
