#include "vmm/event_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace strata::vmm {

Result<std::unique_ptr<EventLoop>> EventLoop::create() {
  std::unique_ptr<EventLoop> l(new EventLoop);
  l->epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!l->epoll_) return Error::sys("epoll_create1");
  l->wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!l->wake_) return Error::sys("eventfd for the event loop");
  struct epoll_event ev {};
  ev.events = EPOLLIN;
  ev.data.fd = l->wake_.get();
  if (::epoll_ctl(l->epoll_.get(), EPOLL_CTL_ADD, l->wake_.get(), &ev) != 0) return Error::sys("epoll_ctl add wake fd");
  return l;
}

Status EventLoop::add(int fd, Handler h, uint32_t events) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.fd = fd;
  std::lock_guard<std::mutex> g(handlers_mu_);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) return Error::sys("epoll_ctl add fd " + std::to_string(fd));
  handlers_[fd] = std::make_shared<Handler>(std::move(h));
  return ok();
}

Status EventLoop::modify(int fd, uint32_t events) {
  struct epoll_event ev {};
  ev.events = events;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) return Error::sys("epoll_ctl mod fd " + std::to_string(fd));
  return ok();
}

void EventLoop::remove(int fd) {
  std::lock_guard<std::mutex> g(handlers_mu_);
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  handlers_.erase(fd);
}

void EventLoop::post(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> g(mu_);
    posted_.push_back(std::move(fn));
  }
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

void EventLoop::stop() {
  stop_ = true;
  uint64_t one = 1;
  (void)!::write(wake_.get(), &one, sizeof one);
}

Status EventLoop::run_once(int timeout_ms) {
  struct epoll_event evs[32];
  int n = ::epoll_wait(epoll_.get(), evs, 32, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return ok();
    return Error::sys("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    int fd = evs[i].data.fd;
    if (fd == wake_.get()) {
      uint64_t v;
      (void)!::read(wake_.get(), &v, sizeof v);
      std::vector<std::function<void()>> fns;
      {
        std::lock_guard<std::mutex> g(mu_);
        fns.swap(posted_);
      }
      for (auto& f : fns) f();
      continue;
    }
    std::shared_ptr<Handler> h;
    {
      std::lock_guard<std::mutex> g(handlers_mu_);
      auto it = handlers_.find(fd);
      if (it == handlers_.end()) continue;  // removed by an earlier handler of this turn
      h = it->second;                       // kept alive even if the handler removes itself
    }
    (*h)(evs[i].events);
  }
  return ok();
}

Status EventLoop::run() {
  while (!stop_) TRY(run_once(-1));
  return ok();
}

}  // namespace strata::vmm
