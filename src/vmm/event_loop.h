// EventLoop: the monitor's one epoll loop for device back ends (ioeventfds of virtqueue
// notifications, tap and unix sockets, timers). Handlers run on the loop's thread. add, modify
// and remove may be called from any thread (a device activates on a vCPU thread when the
// driver writes DRIVER_OK) and from inside a handler; post() and stop() too.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "base/error.h"
#include "base/fd.h"

namespace strata::vmm {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;  // events: EPOLLIN/EPOLLOUT/EPOLLHUP/...

  static Result<std::unique_ptr<EventLoop>> create();

  // Watches `fd` for `events` (EPOLLIN by default); the loop does not own the fd.
  Status add(int fd, Handler h, uint32_t events = 0x001 /* EPOLLIN */);
  Status modify(int fd, uint32_t events);
  void remove(int fd);

  // Runs `fn` on the loop's thread at its next turn (callable from any thread).
  void post(std::function<void()> fn);
  // Makes run() return after the current turn (callable from any thread).
  void stop();
  bool stopped() const { return stop_; }

  // Waits up to timeout_ms (-1: forever) and runs the ready handlers once.
  Status run_once(int timeout_ms);
  // Runs until stop().
  Status run();

 private:
  EventLoop() = default;
  UniqueFd epoll_;
  UniqueFd wake_;  // eventfd for post()/stop()
  std::mutex handlers_mu_;  // guards handlers_ (never held while a handler runs)
  std::map<int, std::shared_ptr<Handler>> handlers_;
  std::mutex mu_;
  std::vector<std::function<void()>> posted_;
  volatile bool stop_ = false;
};

}  // namespace strata::vmm
