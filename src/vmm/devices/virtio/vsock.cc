#include "vmm/devices/virtio/vsock.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/fs.h"
#include "base/log.h"
#include "vmm/event_loop.h"

namespace strata::vmm::virtio {
namespace {

using vsock::Header;

constexpr size_t kRxQueue = 0;
constexpr size_t kTxQueue = 1;
constexpr size_t kEventQueue = 2;
constexpr size_t kHdr = sizeof(Header);
constexpr size_t kMaxCommand = 32;  // "CONNECT 4294967295" with room to spare
constexpr long kAcceptRetryNs = 100'000'000;  // after EMFILE: 100 ms without accepting

bool unix_address(const std::string& path, sockaddr_un& addr) {
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) return false;
  std::memcpy(addr.sun_path, path.data(), path.size());
  return true;
}

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// "CONNECT <port>" (the newline already taken off) -> the port.
bool parse_connect(const std::string& line, uint32_t& port) {
  constexpr std::string_view kPrefix = "CONNECT ";
  if (line.size() <= kPrefix.size() || line.compare(0, kPrefix.size(), kPrefix) != 0) return false;
  std::string_view digits(line.data() + kPrefix.size(), line.size() - kPrefix.size());
  if (digits.size() > 10) return false;
  uint64_t v = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  if (v > 0xffffffffull) return false;
  port = static_cast<uint32_t>(v);
  return true;
}

}  // namespace

// ---- creation ----

Result<UniqueFd> VsockDevice::listen_on(const std::string& path) {
  sockaddr_un addr;
  if (!unix_address(path, addr)) return Error("the path must have 1 to " + std::to_string(sizeof addr.sun_path - 1) + " bytes");
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Error::sys("socket");
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EADDRINUSE) return Error::sys("bind");
    // A socket file from a monitor that died is replaced; one somebody listens on is not, nor is
    // anything but a socket (connect() to a regular file is ECONNREFUSED too: it must not be
    // taken for a stale socket and removed).
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && !S_ISSOCK(st.st_mode))
      return Error("bind: the path exists and is not a socket (" + fs::file_type_name(st.st_mode) + ")",
                   EADDRINUSE);
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      return Error("bind: the socket is in use", EADDRINUSE);
    if (errno != ECONNREFUSED) return Error::sys("bind", EADDRINUSE);
    ::unlink(path.c_str());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return Error::sys("bind");
  }
  if (::listen(fd.get(), 128) != 0) {
    ::unlink(path.c_str());
    return Error::sys("listen");
  }
  return fd;
}

Result<std::shared_ptr<VsockDevice>> VsockDevice::create(VsockConfig config) {
  std::string what = "vsock " + config.id;
  if (config.guest_cid < 3 || config.guest_cid > 0xffffffffull)
    return Error(what + ": guest CID " + std::to_string(config.guest_cid) + " is not in [3, 2^32)");
  if (config.queue_size < 2 || (config.queue_size & (config.queue_size - 1)) != 0)
    return Error(what + ": queue size " + std::to_string(config.queue_size) + " is not a power of two");
  if (config.buf_alloc < 4096) return Error(what + ": buffer of " + std::to_string(config.buf_alloc) + " bytes is too small");
  if (config.max_connections == 0) return Error(what + ": no connections allowed");
  std::shared_ptr<VsockDevice> d(new VsockDevice(std::move(config)));
  d->accept_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!d->accept_timer_) return Error::sys(what + ": timerfd_create");
  auto fd = listen_on(d->config_.uds_path);
  if (!fd) return std::move(fd).error().context(what + ": listen on " + d->config_.uds_path);
  d->listener_ = std::move(*fd);
  struct stat st {};
  if (::stat(d->config_.uds_path.c_str(), &st) == 0) {
    d->uds_dev_ = st.st_dev;
    d->uds_ino_ = st.st_ino;
  }
  return d;
}

VsockDevice::~VsockDevice() {
  clear_connections();
  if (listener_registered_ && loop_ != nullptr) loop_->remove(listener_.get());
  if (accept_timer_registered_ && loop_ != nullptr) loop_->remove(accept_timer_.get());
  if (listener_) {
    listener_.reset();
    // Only the socket file this device made: the path may have been replaced meanwhile.
    struct stat st {};
    if (::lstat(config_.uds_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == uds_dev_ &&
        st.st_ino == uds_ino_)
      ::unlink(config_.uds_path.c_str());
  }
}

uint64_t VsockDevice::features() const { return feature(kFRingEventIdx) | feature(kFRingIndirectDesc); }

void VsockDevice::read_config(uint64_t offset, uint8_t* data, size_t len) const {
  uint64_t cid = config_.guest_cid;  // struct virtio_vsock_config { le64 guest_cid; }
  read_config_bytes(&cid, sizeof cid, offset, data, len);
}

// ---- life cycle ----

Status VsockDevice::activate(const ActivateContext& ctx) {
  if (ctx.loop == nullptr) return Error(name() + " needs an event loop for its sockets");
  rxq_ = &ctx.queues[kRxQueue];
  txq_ = &ctx.queues[kTxQueue];
  evq_ = &ctx.queues[kEventQueue];
  loop_ = ctx.loop;
  TRY_CTX(loop_->add(
              listener_.get(),
              [this](uint32_t) {
                if (VirtioHost* h = host()) h->run_active([this] { return on_listener(); });
              },
              EPOLLIN),
          name() + ": watch " + config_.uds_path);
  listener_registered_ = true;
  TRY_CTX(loop_->add(
              accept_timer_.get(),
              [this](uint32_t) {
                if (VirtioHost* h = host()) h->run_active([this] { return on_accept_timer(); });
              },
              EPOLLIN),
          name() + ": watch its accept timer");
  accept_timer_registered_ = true;
  return deliver_event();
}

void VsockDevice::clear_connections() {
  for (auto& [id, c] : conns_) {
    if (c->registered && loop_ != nullptr) loop_->remove(c->sock.get());
  }
  conns_.clear();
  by_key_.clear();
  rx_ready_.clear();
}

void VsockDevice::reset() {
  clear_connections();
  control_.clear();
  if (listener_registered_ && loop_ != nullptr) loop_->remove(listener_.get());
  listener_registered_ = false;
  if (accept_timer_registered_ && loop_ != nullptr) loop_->remove(accept_timer_.get());
  accept_timer_registered_ = false;
  itimerspec off{};
  ::timerfd_settime(accept_timer_.get(), 0, &off, nullptr);
  rxq_ = txq_ = evq_ = nullptr;
  loop_ = nullptr;
  pending_reset_event_ = false;
}

Status VsockDevice::process(size_t queue) {
  switch (queue) {
    case kTxQueue:
      TRY(process_tx());
      return flush_rx();
    case kRxQueue:
      return flush_rx();
    case kEventQueue:
      return deliver_event();
  }
  return ok();
}

nlohmann::json VsockDevice::save_state() const {
  // Connections are not saved: the guest learns of their loss from TRANSPORT_RESET.
  return {{"guest_cid", config_.guest_cid}, {"uds_path", config_.uds_path}};
}

Status VsockDevice::restore_state(const nlohmann::json& state) {
  uint64_t cid = 0;
  try {
    cid = state.at("guest_cid").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    return Error(name() + ": snapshot state: " + e.what());
  }
  if (cid < 3 || cid > 0xffffffffull) return Error(name() + ": snapshot guest CID " + std::to_string(cid) + " is invalid");
  clear_connections();
  control_.clear();
  config_.guest_cid = cid;
  pending_reset_event_ = true;  // sent at activate(), or once the driver posts an event buffer
  return ok();
}

Status VsockDevice::deliver_event() {
  if (!pending_reset_event_ || evq_ == nullptr) return ok();
  ASSIGN_OR_RETURN(bool got, evq_->pop(chain_));
  if (!got) return ok();
  uint32_t id = vsock::kEventTransportReset;
  size_t n = chain_.write(0, &id, sizeof id);
  TRY(evq_->add_used(chain_.head(), static_cast<uint32_t>(n)));
  if (n == sizeof id) pending_reset_event_ = false;
  return ok();
}

// ---- host connections ----

VsockDevice::Conn* VsockDevice::add_conn(UniqueFd sock, ConnState state) {
  auto c = std::make_unique<Conn>();
  c->id = next_id_++;
  c->sock = std::move(sock);
  c->state = state;
  Conn* p = c.get();
  conns_[p->id] = std::move(c);
  ++counters_.connections_opened;
  return p;
}

bool VsockDevice::register_conn(Conn& c) {
  uint64_t id = c.id;
  auto st = loop_->add(
      c.sock.get(),
      [this, id](uint32_t events) {
        if (VirtioHost* h = host()) h->run_active([this, id, events] { return on_socket(id, events); });
      },
      0);
  if (!st.ok()) return false;
  c.registered = true;
  c.events = 0;
  update_interest(c);
  return true;
}

void VsockDevice::update_interest(Conn& c) {
  if (!c.registered) return;
  if (c.hup) {
    // The host closed both ways: EPOLLHUP would fire at every turn. What is left to read is
    // read when RX buffers and credit allow (rx_ready_), without the loop.
    loop_->remove(c.sock.get());
    c.registered = false;
    return;
  }
  uint32_t ev = 0;
  switch (c.state) {
    case ConnState::kAwaitCommand:
      ev = EPOLLIN;
      break;
    case ConnState::kLocalInit:
      break;  // EPOLLHUP still reports a host that gives up
    case ConnState::kEstablished:
      if (!c.want_read && !c.eof && !c.guest_shut_rcv && c.peer_credit() > 0) ev |= EPOLLIN;
      if (c.tx_pending() > 0) ev |= EPOLLOUT;
      break;
  }
  if (ev != c.events && loop_->modify(c.sock.get(), ev).ok()) c.events = ev;
}

void VsockDevice::close_conn(Conn& c, bool rst) {
  if (c.state != ConnState::kAwaitCommand) {
    if (rst) queue_control(header_for(c, vsock::kOpRst));
    auto it = by_key_.find({c.local_port, c.peer_port});
    if (it != by_key_.end() && it->second == &c) by_key_.erase(it);
  }
  if (c.registered) loop_->remove(c.sock.get());
  conns_.erase(c.id);  // closes the socket; a stale id in rx_ready_ is skipped
}

uint32_t VsockDevice::allocate_local_port() {
  for (;;) {
    uint32_t p = next_local_port_++;
    if (next_local_port_ == 0) next_local_port_ = 1u << 30;
    auto it = by_key_.lower_bound({p, 0});
    if (it == by_key_.end() || it->first.first != p) return p;
  }
}

Status VsockDevice::on_listener() {
  for (;;) {
    int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (would_block(errno)) return ok();
      return pause_accepting(errno);  // EMFILE, ENFILE, ENOBUFS, ENOMEM
    }
    UniqueFd sock(fd);
    if (conns_.size() >= config_.max_connections) continue;  // closed: over the cap
    Conn* c = add_conn(std::move(sock), ConnState::kAwaitCommand);
    if (!register_conn(*c)) close_conn(*c, false);
  }
}

// The connection stays in the backlog and the listener readable: the level-triggered loop would
// call on_listener() again at once, for as long as the error lasts (a busy loop). So the
// listener is left unwatched until the timer fires; its connections wait meanwhile.
Status VsockDevice::pause_accepting(int err) {
  uint64_t suppressed = 0;
  if (accept_log_.allow(LogRateLimiter::Clock::now(), &suppressed)) {
    log::get("vmm")->warn("{}: accept on {}: {}; trying again in {} ms{}", name(), config_.uds_path,
                          errno_string(err), kAcceptRetryNs / 1'000'000,
                          suppressed ? " (" + std::to_string(suppressed) + " such failures not logged)" : "");
  }
  TRY_CTX(loop_->modify(listener_.get(), 0), name() + ": stop watching " + config_.uds_path);
  itimerspec t{};
  t.it_value.tv_nsec = kAcceptRetryNs;
  if (::timerfd_settime(accept_timer_.get(), 0, &t, nullptr) != 0)
    return Error::sys(name() + ": timerfd_settime");
  return ok();
}

Status VsockDevice::on_accept_timer() {
  uint64_t expirations = 0;
  if (::read(accept_timer_.get(), &expirations, sizeof expirations) < 0) return ok();  // EAGAIN: nothing due
  TRY_CTX(loop_->modify(listener_.get(), EPOLLIN), name() + ": watch " + config_.uds_path);
  return ok();
}

Status VsockDevice::on_socket(uint64_t id, uint32_t events) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return ok();
  Conn& c = *it->second;
  switch (c.state) {
    case ConnState::kAwaitCommand:
      read_command(c);
      break;
    case ConnState::kLocalInit:
      if (events & (EPOLLHUP | EPOLLERR)) close_conn(c, true);  // the host gave up before the guest answered
      break;
    case ConnState::kEstablished:
      if ((events & EPOLLOUT) && !flush_tx(c)) break;
      if (events & (EPOLLHUP | EPOLLERR)) c.hup = true;
      if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        mark_readable(c);
        update_interest(c);
      }
      break;
  }
  return flush_rx();
}

void VsockDevice::read_command(Conn& c) {
  // One byte at a time: what follows the newline is the stream's first data and stays in the
  // socket for the guest.
  for (;;) {
    char ch;
    ssize_t n = ::recv(c.sock.get(), &ch, 1, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && would_block(errno)) return;
    if (n <= 0) {
      close_conn(c, false);
      return;
    }
    if (ch == '\n') break;
    c.command.push_back(ch);
    if (c.command.size() > kMaxCommand) {
      close_conn(c, false);
      return;
    }
  }
  uint32_t port = 0;
  if (!parse_connect(c.command, port)) {
    close_conn(c, false);
    return;
  }
  c.command.clear();
  c.local_port = allocate_local_port();
  c.peer_port = port;
  c.state = ConnState::kLocalInit;
  by_key_[{c.local_port, c.peer_port}] = &c;
  queue_control(header_for(c, vsock::kOpRequest));
  update_interest(c);
}

bool VsockDevice::flush_tx(Conn& c) {
  while (c.tx_pending() > 0) {
    ssize_t n = ::send(c.sock.get(), c.tx_buf.data() + c.tx_head, c.tx_pending(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && would_block(errno)) break;
    if (n < 0) {
      close_conn(c, true);
      return false;
    }
    c.tx_head += static_cast<size_t>(n);
    c.fwd_cnt += static_cast<uint32_t>(n);
  }
  if (c.tx_pending() == 0) {
    c.tx_buf.clear();
    c.tx_head = 0;
    if (c.guest_shut_send && c.guest_shut_rcv) {
      close_conn(c, true);
      return false;
    }
    if (c.guest_shut_send) ::shutdown(c.sock.get(), SHUT_WR);
  }
  maybe_credit_update(c);
  update_interest(c);
  return true;
}

bool VsockDevice::write_to_host(Conn& c, const DescriptorChain& chain, uint32_t len) {
  if (len == 0) return true;
  uint64_t done = 0;
  if (c.tx_pending() == 0) {
    iov_.clear();
    chain.iovecs(false, kHdr, len, iov_);
    msghdr m{};
    m.msg_iov = iov_.data();
    m.msg_iovlen = iov_.size();
    ssize_t n;
    do {
      n = ::sendmsg(c.sock.get(), &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && !would_block(errno)) {
      close_conn(c, true);  // EPIPE, ECONNRESET: the host end is gone
      return false;
    }
    done = n < 0 ? 0 : static_cast<uint64_t>(n);
    c.fwd_cnt += static_cast<uint32_t>(done);
  }
  uint64_t rest = len - done;
  if (rest > 0) {
    if (c.tx_pending() + rest > config_.buf_alloc) {
      ++counters_.malformed;  // the guest sent more than the credit we gave it
      close_conn(c, true);
      return false;
    }
    if (c.tx_head > 0) {
      c.tx_buf.erase(c.tx_buf.begin(), c.tx_buf.begin() + static_cast<ptrdiff_t>(c.tx_head));
      c.tx_head = 0;
    }
    size_t old = c.tx_buf.size();
    c.tx_buf.resize(old + rest);
    chain.read(kHdr + done, c.tx_buf.data() + old, rest);
  }
  maybe_credit_update(c);
  update_interest(c);
  return true;
}

void VsockDevice::maybe_credit_update(Conn& c) {
  // The guest stops at buf_alloc bytes past the fwd_cnt it knows; announce before it has to.
  if (c.state == ConnState::kEstablished && c.fwd_cnt - c.fwd_cnt_announced >= config_.buf_alloc / 2)
    queue_control(header_for(c, vsock::kOpCreditUpdate));
}

void VsockDevice::mark_readable(Conn& c) {
  c.want_read = true;
  if (!c.queued && c.state == ConnState::kEstablished && !c.eof) {
    rx_ready_.push_back(c.id);
    c.queued = true;
  }
}

// ---- packets ----

Header VsockDevice::header_for(Conn& c, uint16_t op, uint32_t flags) {
  Header h{};
  h.src_cid = vsock::kHostCid;
  h.dst_cid = config_.guest_cid;
  h.src_port = c.local_port;
  h.dst_port = c.peer_port;
  h.type = vsock::kTypeStream;
  h.op = op;
  h.flags = flags;
  h.buf_alloc = config_.buf_alloc;
  h.fwd_cnt = c.fwd_cnt;
  c.fwd_cnt_announced = c.fwd_cnt;
  return h;
}

void VsockDevice::queue_control(const Header& h) {
  if (control_.size() >= config_.max_connections * 2 + 64) {
    ++counters_.dropped_control;
    return;
  }
  control_.push_back(h);
}

void VsockDevice::queue_reply_rst(const Header& h) {
  Header r{};
  r.src_cid = h.dst_cid;
  r.dst_cid = h.src_cid;
  r.src_port = h.dst_port;
  r.dst_port = h.src_port;
  r.type = vsock::kTypeStream;
  r.op = vsock::kOpRst;
  queue_control(r);
}

Status VsockDevice::process_tx() {
  if (txq_ == nullptr) return ok();
  for (;;) {
    ASSIGN_OR_RETURN(bool got, txq_->pop(chain_));
    if (!got) return ok();
    ++counters_.tx_packets;
    if (chain_.readable_bytes() < kHdr) {
      ++counters_.malformed;  // not even a header to answer: dropped
    } else {
      Header h;
      chain_.read(0, &h, kHdr);  // copied once: the guest may change it under us
      handle_packet(h, chain_);
    }
    TRY(txq_->add_used(chain_.head(), 0));
  }
}

void VsockDevice::handle_packet(const Header& h, const DescriptorChain& chain) {
  if (h.src_cid != config_.guest_cid) {
    ++counters_.malformed;  // not from our guest: dropped, as Firecracker does
    return;
  }
  auto it = by_key_.find({h.dst_port, h.src_port});
  bool bad_len = h.len > vsock::kMaxPayload || h.len > chain.readable_bytes() - kHdr;
  if (h.dst_cid != vsock::kHostCid || h.type != vsock::kTypeStream || bad_len) {
    if (h.type != vsock::kTypeStream || bad_len) ++counters_.malformed;
    if (h.dst_cid == vsock::kHostCid && it != by_key_.end())
      close_conn(*it->second, true);
    else if (h.op != vsock::kOpRst)
      queue_reply_rst(h);
    return;
  }
  if (it == by_key_.end()) {
    if (h.op == vsock::kOpRequest)
      guest_connect(h);
    else if (h.op != vsock::kOpRst)
      queue_reply_rst(h);
    return;
  }
  Conn& c = *it->second;
  c.peer_buf_alloc = h.buf_alloc;
  c.peer_fwd_cnt = h.fwd_cnt;
  if (c.peer_credit() > 0) c.credit_requested = false;
  if (c.want_read) mark_readable(c);  // it may have waited for this credit

  if (c.state == ConnState::kLocalInit) {
    if (h.op == vsock::kOpResponse) {
      c.state = ConnState::kEstablished;
      std::string line = "OK " + std::to_string(c.local_port) + "\n";
      ssize_t n = ::send(c.sock.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n != static_cast<ssize_t>(line.size())) {
        close_conn(c, true);
        return;
      }
      update_interest(c);
    } else {
      close_conn(c, h.op != vsock::kOpRst);  // the guest refused (RST) or spoke out of turn
    }
    return;
  }

  switch (h.op) {
    case vsock::kOpRw:
      if (c.guest_shut_send) {
        ++counters_.malformed;
        close_conn(c, true);
        return;
      }
      counters_.tx_bytes += h.len;
      if (!write_to_host(c, chain, h.len)) return;
      break;
    case vsock::kOpCreditUpdate:
      break;  // the credit was taken above
    case vsock::kOpCreditRequest:
      queue_control(header_for(c, vsock::kOpCreditUpdate));
      break;
    case vsock::kOpShutdown:
      if (h.flags & vsock::kShutdownRcv) c.guest_shut_rcv = true;
      if (h.flags & vsock::kShutdownSend) c.guest_shut_send = true;
      if (c.tx_pending() == 0) {
        if (c.guest_shut_rcv && c.guest_shut_send) {
          close_conn(c, true);  // the RST completes the guest's close
          return;
        }
        if (c.guest_shut_send) ::shutdown(c.sock.get(), SHUT_WR);
      }  // else flush_tx() finishes the job once the buffered bytes are out
      break;
    case vsock::kOpRst:
      close_conn(c, false);
      return;
    default:  // REQUEST or RESPONSE on an open connection, unknown ops
      ++counters_.malformed;
      close_conn(c, true);
      return;
  }
  update_interest(c);
}

void VsockDevice::guest_connect(const Header& h) {
  if (conns_.size() >= config_.max_connections) {
    queue_reply_rst(h);
    return;
  }
  sockaddr_un addr;
  std::string path = config_.uds_path + "_" + std::to_string(h.dst_port);
  UniqueFd sock;
  if (unix_address(path, addr)) sock.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  // A unix stream connect completes at once or fails (EAGAIN: the listener's backlog is full).
  if (!sock || ::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    queue_reply_rst(h);
    return;
  }
  Conn* c = add_conn(std::move(sock), ConnState::kEstablished);
  c->local_port = h.dst_port;
  c->peer_port = h.src_port;
  c->peer_buf_alloc = h.buf_alloc;
  c->peer_fwd_cnt = h.fwd_cnt;
  by_key_[{c->local_port, c->peer_port}] = c;
  queue_control(header_for(*c, vsock::kOpResponse));
  if (!register_conn(*c)) close_conn(*c, true);
}

Status VsockDevice::flush_rx() {
  if (rxq_ == nullptr) return ok();
  // Twice: reading may queue a CREDIT_REQUEST or an RST behind the data.
  for (int pass = 0; pass < 2; ++pass) {
    while (!control_.empty()) {
      ASSIGN_OR_RETURN(bool got, rxq_->pop(chain_));
      if (!got) return ok();
      if (chain_.writable_bytes() < kHdr) {
        ++counters_.malformed;  // a broken driver's buffer: given back empty
        TRY(rxq_->add_used(chain_.head(), 0));
        continue;
      }
      chain_.write(0, &control_.front(), kHdr);
      control_.pop_front();
      ++counters_.rx_packets;
      TRY(rxq_->add_used(chain_.head(), static_cast<uint32_t>(kHdr)));
    }
    while (!rx_ready_.empty()) {
      auto it = conns_.find(rx_ready_.front());
      if (it == conns_.end() || !it->second->queued) {
        rx_ready_.pop_front();
        continue;
      }
      Conn& c = *it->second;
      if (c.state != ConnState::kEstablished || c.eof || c.guest_shut_rcv || !c.want_read) {
        rx_ready_.pop_front();
        c.queued = false;
        continue;
      }
      uint32_t credit = c.peer_credit();
      if (credit == 0) {
        // Waits for the guest's credit; polling resumes with it (update_interest).
        rx_ready_.pop_front();
        c.queued = false;
        if (!c.credit_requested) {
          c.credit_requested = true;
          queue_control(header_for(c, vsock::kOpCreditRequest));
        }
        continue;
      }
      ASSIGN_OR_RETURN(bool got, rxq_->pop(chain_));
      if (!got) return ok();
      if (chain_.writable_bytes() <= kHdr) {
        ++counters_.malformed;
        TRY(rxq_->add_used(chain_.head(), 0));
        continue;
      }
      uint64_t max = std::min<uint64_t>({chain_.writable_bytes() - kHdr, credit, vsock::kMaxPayload});
      iov_.clear();
      chain_.iovecs(true, kHdr, max, iov_);
      ssize_t n;
      do {
        n = ::readv(c.sock.get(), iov_.data(), static_cast<int>(iov_.size()));
      } while (n < 0 && errno == EINTR);
      rx_ready_.pop_front();
      c.queued = false;
      if (n < 0 && would_block(errno)) {
        rxq_->undo_pop();
        c.want_read = false;
        update_interest(c);
        continue;
      }
      Header h;
      if (n < 0) {
        h = header_for(c, vsock::kOpRst);  // ECONNRESET and the like
      } else if (n == 0) {
        h = header_for(c, vsock::kOpShutdown, vsock::kShutdownSend | (c.hup ? vsock::kShutdownRcv : 0));
        c.eof = true;
        c.want_read = false;
      } else {
        h = header_for(c, vsock::kOpRw);
        h.len = static_cast<uint32_t>(n);
        c.rx_cnt += h.len;
        counters_.rx_bytes += h.len;
        if (static_cast<uint64_t>(n) == max) {
          mark_readable(c);  // more may wait: back in line behind the others
        } else {
          c.want_read = false;
        }
      }
      chain_.write(0, &h, kHdr);
      ++counters_.rx_packets;
      TRY(rxq_->add_used(chain_.head(), static_cast<uint32_t>(kHdr + h.len)));
      if (n < 0)
        close_conn(c, false);
      else
        update_interest(c);
    }
  }
  return ok();
}

}  // namespace strata::vmm::virtio
