// Cleanup: a scope guard that runs a function on scope exit unless cancel()ed. Used to unwind
// multi-step setup where the step's resource has no RAII type of its own.
#pragma once

#include <utility>

namespace strata {

template <class F>
class [[nodiscard]] Cleanup {
 public:
  explicit Cleanup(F f) : f_(std::move(f)) {}
  Cleanup(const Cleanup&) = delete;
  Cleanup& operator=(const Cleanup&) = delete;
  ~Cleanup() {
    if (armed_) f_();
  }
  void cancel() { armed_ = false; }

 private:
  F f_;
  bool armed_ = true;
};

}  // namespace strata
