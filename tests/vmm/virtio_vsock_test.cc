// virtio-vsock through the MMIO transport with a real EventLoop run on the test thread. The test
// plays the guest's driver (posting RX buffers, putting packets on TX, notifying) and the host
// programs on the unix sockets.
#include "vmm/devices/virtio/vsock.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "virtio_fake_driver.h"
#include "vmm/event_loop.h"

namespace strata::vmm::virtio {
namespace {

using testing::FakeDriver;
using vsock::Header;

constexpr size_t kHdr = sizeof(Header);
constexpr uint32_t kRxBuf = 4096 + kHdr;
constexpr uint16_t kQueueSize = 64;
constexpr uint64_t kCid = 3;

struct Pkt {
  Header h;
  std::string data;
};

Header guest_hdr(uint32_t src_port, uint32_t dst_port, uint16_t op, uint32_t buf_alloc = 64 * 1024,
                 uint32_t fwd_cnt = 0) {
  Header h{};
  h.src_cid = kCid;
  h.dst_cid = vsock::kHostCid;
  h.src_port = src_port;
  h.dst_port = dst_port;
  h.type = vsock::kTypeStream;
  h.op = op;
  h.buf_alloc = buf_alloc;
  h.fwd_cnt = fwd_cnt;
  return h;
}

UniqueFd unix_socket() { return UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)); }

sockaddr_un unix_addr(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  return a;
}

class VirtioVsock : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-vsock-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    uds_ = dir_ + "/v.sock";
    auto l = EventLoop::create();
    ASSERT_TRUE(l.ok());
    loop_ = std::move(*l);
  }
  void TearDown() override {
    clients_.clear();
    d_.reset();
    dev_.reset();
    if (DIR* dir = ::opendir(dir_.c_str())) {
      while (dirent* e = ::readdir(dir)) {
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
          ::unlink((dir_ + "/" + e->d_name).c_str());
      }
      ::closedir(dir);
    }
    ::rmdir(dir_.c_str());
  }

  std::shared_ptr<VsockDevice> make_device(VsockConfig c = {}) {
    c.guest_cid = kCid;
    if (c.uds_path.empty()) c.uds_path = uds_;
    c.queue_size = kQueueSize;
    auto r = VsockDevice::create(c);
    EXPECT_TRUE(r.ok()) << r.error().to_string();
    return r.ok() ? *r : nullptr;
  }
  // The device behind a transport that has the loop; started like Linux, with `rx` RX buffers
  // and one event buffer posted.
  void start(VsockConfig c = {}, int rx = 32) {
    dev_ = make_device(std::move(c));
    ASSERT_TRUE(dev_);
    d_ = std::make_unique<FakeDriver>(dev_, 32 << 20);
    d_->transport.reset();  // first, so the old transport's destructor does not unset the new host
    d_->transport = std::make_unique<MmioTransport>(dev_, d_->mem, d_->irq, loop_.get());
    ASSERT_TRUE(d_->start(~0ull, kQueueSize));
    for (int i = 0; i < kQueueSize; ++i) rx_pool_.push_back(d_->alloc(kRxBuf));
    event_buf_ = d_->alloc(8);
    d_->add_chain(2, {{event_buf_, 8, true}});
    d_->kick(2);
    if (rx > 0) post_rx(rx);
  }

  // ---- guest side ----
  void post_rx(int n, bool kick = true) {
    for (int i = 0; i < n; ++i) {
      auto& q = d_->queues[0];
      uint16_t idx = static_cast<uint16_t>(q.next_desc % q.size);
      d_->add_chain(0, {{rx_pool_[idx], kRxBuf, true}});
      ++posted_;
    }
    if (kick) d_->kick(0);
  }
  // Collects what the device put on RX, reposting a buffer for each.
  void take_rx() {
    int consumed = 0;
    while (seen_ != d_->used_idx(0)) {
      auto e = d_->used(0, seen_++);
      Pkt p;
      EXPECT_GE(e.len, kHdr);
      EXPECT_TRUE(d_->mem.read(rx_pool_[e.id], &p.h, kHdr));
      auto data = d_->bytes(rx_pool_[e.id] + kHdr, e.len - kHdr);
      p.data.assign(data.begin(), data.end());
      EXPECT_EQ(p.h.len, e.len - kHdr);
      inbox_.push_back(p);
      ++consumed;
    }
    if (consumed > 0) post_rx(consumed);
  }
  void send(Header h, const std::string& payload = "", bool set_len = true) {
    if (set_len) h.len = static_cast<uint32_t>(payload.size());
    uint64_t hg = d_->alloc_bytes(&h, kHdr);
    if (payload.empty()) {
      d_->add_chain(1, {{hg, static_cast<uint32_t>(kHdr), false}});
    } else {
      uint64_t pg = d_->alloc_bytes(payload.data(), payload.size());
      d_->add_chain(1, {{hg, static_cast<uint32_t>(kHdr), false}, {pg, static_cast<uint32_t>(payload.size()), false}});
    }
    d_->kick(1);
  }
  void pump(int turns = 5) {
    for (int i = 0; i < turns; ++i) ASSERT_TRUE(loop_->run_once(5).ok());
  }
  // Waits (running the loop) for a packet matching `pred`; earlier non-matching ones stay queued.
  std::optional<Pkt> expect_pkt(const std::function<bool(const Pkt&)>& pred, int ms = 2000) {
    for (int waited = 0; waited <= ms; waited += 5) {
      take_rx();
      for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
        if (pred(*it)) {
          Pkt p = *it;
          inbox_.erase(it);
          return p;
        }
      }
      EXPECT_TRUE(loop_->run_once(5).ok());
    }
    return std::nullopt;
  }
  std::optional<Pkt> expect_op(uint16_t op, uint32_t guest_port) {
    return expect_pkt([=](const Pkt& p) { return p.h.op == op && p.h.dst_port == guest_port; });
  }
  // Payload of RW packets to `guest_port` until `n` bytes arrived.
  std::string expect_data(uint32_t guest_port, size_t n) {
    std::string got;
    while (got.size() < n) {
      auto p = expect_op(vsock::kOpRw, guest_port);
      if (!p) break;
      got += p->data;
    }
    return got;
  }

  // ---- host side ----
  int connect_host(const std::string& path) {
    UniqueFd s = unix_socket();
    auto a = unix_addr(path);
    EXPECT_EQ(::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    int fd = s.get();
    clients_.push_back(std::move(s));
    return fd;
  }
  void host_write(int fd, const std::string& s) {
    ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
  }
  // Reads `n` bytes from a host socket, running the loop meanwhile.
  std::string host_read(int fd, size_t n, int ms = 2000) {
    std::string got;
    char buf[65536];
    for (int waited = 0; waited <= ms && got.size() < n; waited += 5) {
      ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - got.size()), MSG_DONTWAIT);
      if (r > 0) {
        got.append(buf, static_cast<size_t>(r));
        continue;
      }
      if (r == 0) break;
      take_rx();
      EXPECT_TRUE(loop_->run_once(5).ok());
    }
    return got;
  }
  bool host_eof(int fd, int ms = 2000) {
    char c;
    for (int waited = 0; waited <= ms; waited += 5) {
      ssize_t r = ::recv(fd, &c, 1, MSG_DONTWAIT);
      if (r == 0 || (r < 0 && errno == ECONNRESET)) return true;
      take_rx();
      EXPECT_TRUE(loop_->run_once(5).ok());
    }
    return false;
  }
  // A host-initiated connection to guest port `port`, answered by the guest; returns the host
  // socket and the device's port.
  std::pair<int, uint32_t> host_connect(uint32_t port, uint32_t guest_buf = 64 * 1024) {
    int fd = connect_host(uds_);
    host_write(fd, "CONNECT " + std::to_string(port) + "\n");
    auto req = expect_op(vsock::kOpRequest, port);
    EXPECT_TRUE(req);
    if (!req) return {fd, 0};
    send(guest_hdr(port, req->h.src_port, vsock::kOpResponse, guest_buf));
    EXPECT_EQ(host_read(fd, 3 + std::to_string(req->h.src_port).size() + 1),
              "OK " + std::to_string(req->h.src_port) + "\n");
    return {fd, req->h.src_port};
  }
  // A listening socket at <uds>_<port>.
  UniqueFd host_listen(uint32_t port) {
    UniqueFd l = unix_socket();
    auto a = unix_addr(uds_ + "_" + std::to_string(port));
    EXPECT_EQ(::bind(l.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(l.get(), 8), 0);
    return l;
  }
  int host_accept(int listener) {
    for (int i = 0; i < 400; ++i) {
      int fd = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        clients_.emplace_back(fd);
        return fd;
      }
      EXPECT_TRUE(loop_->run_once(5).ok());
    }
    return -1;
  }

  std::string dir_, uds_;
  std::unique_ptr<EventLoop> loop_;
  std::shared_ptr<VsockDevice> dev_;
  std::unique_ptr<FakeDriver> d_;
  std::vector<uint64_t> rx_pool_;  // RX buffer of each descriptor index
  uint64_t event_buf_ = 0;
  uint16_t seen_ = 0;
  int posted_ = 0;
  std::deque<Pkt> inbox_;
  std::vector<UniqueFd> clients_;
};

TEST_F(VirtioVsock, ConfigAndCreate) {
  auto dev = make_device({.id = "vsock0"});
  ASSERT_TRUE(dev);
  FakeDriver d(dev);
  EXPECT_EQ(d.rd(mmio::kDeviceId), 19u);
  EXPECT_EQ(dev->name(), "virtio-vsock vsock0");
  uint64_t cid = 0;
  d.transport->read(mmio::kConfig, reinterpret_cast<uint8_t*>(&cid), 8);
  EXPECT_EQ(cid, kCid);
  uint64_t f = d.device_features();
  EXPECT_TRUE(f & feature(kFVersion1));
  EXPECT_TRUE(f & feature(kFRingEventIdx));
  EXPECT_EQ(d.transport->num_queues(), 3u);
  // The path is taken while the device lives; bad configurations are refused.
  EXPECT_FALSE(VsockDevice::create({.guest_cid = 3, .uds_path = uds_}).ok());
  auto missing = VsockDevice::create({.guest_cid = 3, .uds_path = dir_ + "/no/such/dir/v.sock"});
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("listen on " + dir_ + "/no/such/dir/v.sock"), std::string::npos);
  EXPECT_FALSE(VsockDevice::create({.guest_cid = 2, .uds_path = dir_ + "/x.sock"}).ok());
  EXPECT_FALSE(VsockDevice::create({.guest_cid = 3, .uds_path = dir_ + "/" + std::string(120, 'a')}).ok());
  // Without a loop the device cannot run.
  EXPECT_FALSE(d.start());
  EXPECT_TRUE(d.needs_reset());
  dev.reset();
}

TEST_F(VirtioVsock, StaleSocketFileIsReplaced) {
  {
    UniqueFd s = unix_socket();
    auto a = unix_addr(uds_);
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }  // bound, never listened, closed: the file stays behind
  ASSERT_EQ(::access(uds_.c_str(), F_OK), 0);
  auto dev = make_device();
  ASSERT_TRUE(dev);
  dev.reset();
  EXPECT_NE(::access(uds_.c_str(), F_OK), 0);  // removed with the device
}

// uds_path comes from PUT /vsock: whatever is there and is not a socket is the user's file.
// (connect() to a regular file fails ECONNREFUSED, as to a stale socket: it was removed.)
TEST_F(VirtioVsock, AFileAtUdsPathIsNeverRemoved) {
  { std::ofstream(uds_) << "precious"; }
  auto r = VsockDevice::create({.guest_cid = kCid, .uds_path = uds_});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("the path exists and is not a socket (a regular file)"),
            std::string::npos)
      << r.error().message();
  std::ifstream in(uds_);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");

  // The device removes its socket file at the end only if the path is still that socket.
  ::unlink(uds_.c_str());
  auto dev = make_device();
  ASSERT_TRUE(dev);
  ::unlink(uds_.c_str());
  { std::ofstream(uds_) << "replaced"; }
  dev.reset();
  EXPECT_EQ(::access(uds_.c_str(), F_OK), 0);
}

// Out of descriptors, accept() fails (EMFILE) while the connection stays queued: the listener
// stays readable, and the level-triggered loop called on_listener again at once (a busy loop).
TEST_F(VirtioVsock, OutOfDescriptorsTheListenerPausesInsteadOfSpinning) {
  ASSERT_NO_FATAL_FAILURE(start());
  UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));  // made while descriptors remain
  ASSERT_TRUE(client);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  int lowest_free = ::dup(0);
  ASSERT_GE(lowest_free, 0);
  ::close(lowest_free);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(lowest_free);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  auto a = unix_addr(uds_);
  int rc = ::connect(client.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
  rusage before{}, after{};
  ::getrusage(RUSAGE_SELF, &before);
  int turns = 0;
  for (auto end = std::chrono::steady_clock::now() + std::chrono::seconds(1);
       std::chrono::steady_clock::now() < end; ++turns)
    (void)loop_->run_once(5);
  ::getrusage(RUSAGE_SELF, &after);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_EQ(rc, 0);
  auto us = [](const rusage& r) {
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000ll + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
  };
  EXPECT_LT(us(after) - us(before), 200000) << "the loop spun: " << turns << " turns in 1 s";
  EXPECT_LT(turns, 400) << "each turn should wait its 5 ms";
  // Descriptors back: the waiting connection is accepted within the retry delay and works.
  host_write(client.get(), "CONNECT 52\n");
  EXPECT_TRUE(expect_op(vsock::kOpRequest, 52));
}

TEST_F(VirtioVsock, HostInitiatedConnectionRelaysBothWays) {
  ASSERT_NO_FATAL_FAILURE(start());
  int fd = connect_host(uds_);
  host_write(fd, "CONNECT 52\n");
  auto req = expect_op(vsock::kOpRequest, 52);
  ASSERT_TRUE(req);
  EXPECT_EQ(req->h.src_cid, vsock::kHostCid);
  EXPECT_EQ(req->h.dst_cid, kCid);
  EXPECT_GE(req->h.src_port, 1u << 30);
  EXPECT_EQ(req->h.type, vsock::kTypeStream);
  EXPECT_EQ(req->h.buf_alloc, 256u * 1024);
  EXPECT_EQ(req->h.len, 0u);
  uint32_t hp = req->h.src_port;
  send(guest_hdr(52, hp, vsock::kOpResponse));
  EXPECT_EQ(host_read(fd, 4 + std::to_string(hp).size()), "OK " + std::to_string(hp) + "\n");
  EXPECT_EQ(dev_->connection_count(), 1u);

  host_write(fd, "hello");
  EXPECT_EQ(expect_data(52, 5), "hello");
  send(guest_hdr(52, hp, vsock::kOpRw), "world");
  EXPECT_EQ(host_read(fd, 5), "world");

  // The host closes its sending side: the guest learns, and can still send.
  ASSERT_EQ(::shutdown(fd, SHUT_WR), 0);
  auto sd = expect_op(vsock::kOpShutdown, 52);
  ASSERT_TRUE(sd);
  EXPECT_EQ(sd->h.flags, vsock::kShutdownSend);
  send(guest_hdr(52, hp, vsock::kOpRw), "more");
  EXPECT_EQ(host_read(fd, 4), "more");
  // The guest closes: RST back, the host sees EOF.
  Header sh = guest_hdr(52, hp, vsock::kOpShutdown);
  sh.flags = vsock::kShutdownRcv | vsock::kShutdownSend;
  send(sh);
  EXPECT_TRUE(expect_op(vsock::kOpRst, 52));
  EXPECT_TRUE(host_eof(fd));
  EXPECT_EQ(dev_->connection_count(), 0u);
  EXPECT_FALSE(d_->needs_reset());
  EXPECT_GT(d_->irq->count.load(), 0u);
}

TEST_F(VirtioVsock, BytesAfterTheConnectLineAreTheStream) {
  ASSERT_NO_FATAL_FAILURE(start());
  int fd = connect_host(uds_);
  host_write(fd, "CONNECT 7\nearly bytes");
  auto req = expect_op(vsock::kOpRequest, 7);
  ASSERT_TRUE(req);
  pump();
  take_rx();
  for (const auto& p : inbox_) EXPECT_NE(p.h.op, vsock::kOpRw) << "data before the RESPONSE";
  send(guest_hdr(7, req->h.src_port, vsock::kOpResponse));
  EXPECT_EQ(host_read(fd, 4 + std::to_string(req->h.src_port).size()), "OK " + std::to_string(req->h.src_port) + "\n");
  EXPECT_EQ(expect_data(7, 11), "early bytes");
}

TEST_F(VirtioVsock, HostConnectionsTheGuestOrTheCommandRefuse) {
  ASSERT_NO_FATAL_FAILURE(start());
  // The guest answers RST: the host connection is closed.
  int a = connect_host(uds_);
  host_write(a, "CONNECT 99\n");
  auto req = expect_op(vsock::kOpRequest, 99);
  ASSERT_TRUE(req);
  send(guest_hdr(99, req->h.src_port, vsock::kOpRst));
  EXPECT_TRUE(host_eof(a));
  // Bad commands close the connection without bothering the guest.
  for (const char* bad : {"HELLO\n", "CONNECT\n", "CONNECT -1\n", "CONNECT 4294967296\n", "CONNECT 1 2\n"}) {
    int b = connect_host(uds_);
    host_write(b, bad);
    EXPECT_TRUE(host_eof(b)) << bad;
  }
  int c = connect_host(uds_);
  host_write(c, std::string(100, 'C'));
  EXPECT_TRUE(host_eof(c));
  // The host gives up before the guest answers: the guest gets RST.
  int e = connect_host(uds_);
  host_write(e, "CONNECT 98\n");
  auto req2 = expect_op(vsock::kOpRequest, 98);
  ASSERT_TRUE(req2);
  for (auto& cl : clients_)
    if (cl.get() == e) cl.reset();
  auto rst = expect_op(vsock::kOpRst, 98);
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->h.src_port, req2->h.src_port);
  pump();
  take_rx();
  for (const auto& p : inbox_) EXPECT_NE(p.h.op, vsock::kOpRequest);  // nothing for the bad commands
  EXPECT_EQ(dev_->connection_count(), 0u);
  EXPECT_FALSE(d_->needs_reset());
}

TEST_F(VirtioVsock, GuestInitiatedConnection) {
  ASSERT_NO_FATAL_FAILURE(start());
  UniqueFd l = host_listen(1234);
  send(guest_hdr(5000, 1234, vsock::kOpRequest));
  auto resp = expect_op(vsock::kOpResponse, 5000);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->h.src_port, 1234u);
  EXPECT_EQ(resp->h.src_cid, vsock::kHostCid);
  EXPECT_EQ(resp->h.dst_cid, kCid);
  int fd = host_accept(l.get());
  ASSERT_GE(fd, 0);
  send(guest_hdr(5000, 1234, vsock::kOpRw), "ping");
  EXPECT_EQ(host_read(fd, 4), "ping");
  host_write(fd, "pong");
  EXPECT_EQ(expect_data(5000, 4), "pong");
  // The host closes both ways: SHUTDOWN with both flags; the guest's RST ends it.
  for (auto& cl : clients_)
    if (cl.get() == fd) cl.reset();
  auto sd = expect_op(vsock::kOpShutdown, 5000);
  ASSERT_TRUE(sd);
  EXPECT_EQ(sd->h.flags, vsock::kShutdownRcv | vsock::kShutdownSend);
  send(guest_hdr(5000, 1234, vsock::kOpRst));
  pump();
  EXPECT_EQ(dev_->connection_count(), 0u);
}

TEST_F(VirtioVsock, GuestConnectToNothingGetsRst) {
  ASSERT_NO_FATAL_FAILURE(start());
  send(guest_hdr(6000, 4321, vsock::kOpRequest));
  auto rst = expect_op(vsock::kOpRst, 6000);
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->h.src_port, 4321u);
  EXPECT_EQ(rst->h.dst_cid, kCid);
  EXPECT_EQ(dev_->connection_count(), 0u);
}

TEST_F(VirtioVsock, GuestShutdownWaitsForBufferedBytes) {
  ASSERT_NO_FATAL_FAILURE(start());
  UniqueFd l = host_listen(80);
  send(guest_hdr(5001, 80, vsock::kOpRequest));
  ASSERT_TRUE(expect_op(vsock::kOpResponse, 5001));
  int fd = host_accept(l.get());
  ASSERT_GE(fd, 0);
  send(guest_hdr(5001, 80, vsock::kOpRw), "last words");
  Header sh = guest_hdr(5001, 80, vsock::kOpShutdown);
  sh.flags = vsock::kShutdownSend;  // half close: the host reads EOF after the bytes
  send(sh);
  EXPECT_EQ(host_read(fd, 10), "last words");
  EXPECT_TRUE(host_eof(fd));
  host_write(fd, "reply");  // and can still answer
  EXPECT_EQ(expect_data(5001, 5), "reply");
}

TEST_F(VirtioVsock, NeverSendsTheGuestMoreThanItsCredit) {
  ASSERT_NO_FATAL_FAILURE(start());
  UniqueFd l = host_listen(77);
  send(guest_hdr(5002, 77, vsock::kOpRequest, /*buf_alloc=*/100));
  ASSERT_TRUE(expect_op(vsock::kOpResponse, 5002));
  int fd = host_accept(l.get());
  ASSERT_GE(fd, 0);
  std::string blob(300, 'x');
  for (size_t i = 0; i < blob.size(); ++i) blob[i] = static_cast<char>('a' + i % 26);
  host_write(fd, blob);
  EXPECT_EQ(expect_data(5002, 100), blob.substr(0, 100));
  auto creq = expect_op(vsock::kOpCreditRequest, 5002);
  ASSERT_TRUE(creq);
  pump(10);
  take_rx();
  for (const auto& p : inbox_) EXPECT_NE(p.h.op, vsock::kOpRw) << "data beyond the credit";
  // The guest consumed 100 bytes: 100 more.
  send(guest_hdr(5002, 77, vsock::kOpCreditUpdate, 100, 100));
  EXPECT_EQ(expect_data(5002, 100), blob.substr(100, 100));
  // A bigger buffer: the rest.
  send(guest_hdr(5002, 77, vsock::kOpCreditUpdate, 4096, 200));
  EXPECT_EQ(expect_data(5002, 100), blob.substr(200, 100));
}

TEST_F(VirtioVsock, CreditUpdatesAsTheHostConsumes) {
  ASSERT_NO_FATAL_FAILURE(start({.buf_alloc = 8192}));
  UniqueFd l = host_listen(88);
  send(guest_hdr(5003, 88, vsock::kOpRequest));
  auto resp = expect_op(vsock::kOpResponse, 5003);
  ASSERT_TRUE(resp);
  EXPECT_EQ(resp->h.buf_alloc, 8192u);
  int fd = host_accept(l.get());
  ASSERT_GE(fd, 0);
  // The guest uses its whole credit; the host reads it all; an update frees the credit.
  for (int i = 0; i < 8; ++i) send(guest_hdr(5003, 88, vsock::kOpRw), std::string(1024, static_cast<char>('0' + i)));
  EXPECT_EQ(host_read(fd, 8192).size(), 8192u);
  auto upd = expect_op(vsock::kOpCreditUpdate, 5003);
  ASSERT_TRUE(upd);
  EXPECT_GE(upd->h.fwd_cnt, 4096u);
  // Asked, the device tells its fwd_cnt.
  send(guest_hdr(5003, 88, vsock::kOpCreditRequest));
  auto upd2 = expect_op(vsock::kOpCreditUpdate, 5003);
  ASSERT_TRUE(upd2);
  EXPECT_EQ(upd2->h.fwd_cnt, 8192u);
}

TEST_F(VirtioVsock, GuestIgnoringOurCreditIsReset) {
  ASSERT_NO_FATAL_FAILURE(start({.buf_alloc = 8192}));
  UniqueFd l = host_listen(89);
  send(guest_hdr(5004, 89, vsock::kOpRequest));
  ASSERT_TRUE(expect_op(vsock::kOpResponse, 5004));
  int fd = host_accept(l.get());
  ASSERT_GE(fd, 0);
  // The host does not read; the guest keeps sending 64 KiB packets. Once the host socket is
  // full and the device's 8 KiB are used, the connection is reset (the device lives on).
  std::string big(vsock::kMaxPayload, 'z');
  Header h = guest_hdr(5004, 89, vsock::kOpRw);
  h.len = vsock::kMaxPayload;
  uint64_t hg = d_->alloc_bytes(&h, kHdr), pg = d_->alloc_bytes(big.data(), big.size());
  bool reset = false;
  for (int i = 0; i < 400 && !reset; ++i) {
    d_->add_chain(1, {{hg, static_cast<uint32_t>(kHdr), false}, {pg, vsock::kMaxPayload, false}});
    d_->kick(1);
    take_rx();
    for (const auto& p : inbox_) reset |= p.h.op == vsock::kOpRst && p.h.dst_port == 5004;
  }
  EXPECT_TRUE(reset);
  EXPECT_EQ(dev_->connection_count(), 0u);
  EXPECT_GT(dev_->counters().malformed, 0u);
  EXPECT_FALSE(d_->needs_reset());
}

TEST_F(VirtioVsock, MalformedPacketsLeaveTheDeviceAlive) {
  ASSERT_NO_FATAL_FAILURE(start());
  auto rsts_to = [&](uint32_t port) {
    pump();
    take_rx();
    int n = 0;
    for (const auto& p : inbox_) n += p.h.op == vsock::kOpRst && p.h.dst_port == port;
    return n;
  };
  // Shorter than a header: dropped.
  uint64_t g = d_->alloc(16);
  d_->add_chain(1, {{g, 10, false}});
  d_->kick(1);
  // A length beyond the chain, or beyond any packet: RST.
  Header h = guest_hdr(7001, 1, vsock::kOpRw);
  h.len = 100;
  send(h, "", false);
  h = guest_hdr(7002, 1, vsock::kOpRequest);
  h.len = 1u << 31;
  send(h, "", false);
  // Unknown type and op; data for no connection: RST.
  h = guest_hdr(7003, 1, vsock::kOpRequest);
  h.type = 2;
  send(h);
  send(guest_hdr(7004, 1, 99));
  send(guest_hdr(7005, 1, vsock::kOpRw), "data");
  send(guest_hdr(7006, 1, vsock::kOpCreditUpdate));
  // Another CID as destination: RST; a forged source CID or an RST for nothing: no answer.
  h = guest_hdr(7007, 1, vsock::kOpRequest);
  h.dst_cid = 7;
  send(h);
  h = guest_hdr(7008, 1, vsock::kOpRequest);
  h.src_cid = 42;
  send(h);
  send(guest_hdr(7009, 1, vsock::kOpRst));
  // RX buffers too small for a header come back empty.
  d_->add_chain(0, {{d_->alloc(8), 8, true}});
  for (uint32_t p = 7001; p <= 7007; ++p) EXPECT_EQ(rsts_to(p), 1) << p;
  EXPECT_EQ(rsts_to(7008), 0);
  EXPECT_EQ(rsts_to(7009), 0);
  EXPECT_FALSE(d_->needs_reset());
  EXPECT_GE(dev_->counters().malformed, 4u);

  // Protocol errors on an open connection reset it.
  UniqueFd l = host_listen(90);
  send(guest_hdr(5005, 90, vsock::kOpRequest));
  ASSERT_TRUE(expect_op(vsock::kOpResponse, 5005));
  int fd = host_accept(l.get());
  ASSERT_GE(fd, 0);
  send(guest_hdr(5005, 90, vsock::kOpResponse));
  EXPECT_TRUE(expect_op(vsock::kOpRst, 5005));
  EXPECT_TRUE(host_eof(fd));
  // Still working.
  auto [hfd, hp] = host_connect(11);
  host_write(hfd, "alive");
  EXPECT_EQ(expect_data(11, 5), "alive");
  EXPECT_FALSE(d_->needs_reset());
}

TEST_F(VirtioVsock, PacketsWaitForRxBuffers) {
  ASSERT_NO_FATAL_FAILURE(start({}, /*rx=*/0));
  int fd = connect_host(uds_);
  host_write(fd, "CONNECT 33\n");
  pump(10);
  EXPECT_EQ(d_->used_idx(0), 0);
  post_rx(4);  // the notify flushes what waited
  auto req = expect_op(vsock::kOpRequest, 33);
  ASSERT_TRUE(req);
  // Data waits too, and is read only as buffers come.
  send(guest_hdr(33, req->h.src_port, vsock::kOpResponse));
  EXPECT_EQ(host_read(fd, 4 + std::to_string(req->h.src_port).size()), "OK " + std::to_string(req->h.src_port) + "\n");
  take_rx();
  std::string blob(20000, 'q');
  host_write(fd, blob);
  EXPECT_EQ(expect_data(33, blob.size()), blob);
}

TEST_F(VirtioVsock, ConnectionCap) {
  ASSERT_NO_FATAL_FAILURE(start({.max_connections = 2}));
  auto [a, pa] = host_connect(1);
  auto [b, pb] = host_connect(2);
  EXPECT_EQ(dev_->connection_count(), 2u);
  int c = connect_host(uds_);
  EXPECT_TRUE(host_eof(c));
  UniqueFd l = host_listen(3);
  send(guest_hdr(5006, 3, vsock::kOpRequest));
  EXPECT_TRUE(expect_op(vsock::kOpRst, 5006));
  EXPECT_EQ(dev_->connection_count(), 2u);
  (void)a, (void)b, (void)pa, (void)pb;
}

TEST_F(VirtioVsock, RestoreDropsConnectionsAndSendsTransportReset) {
  ASSERT_NO_FATAL_FAILURE(start());
  auto [fd, hp] = host_connect(44);
  ASSERT_NE(hp, 0u);
  EXPECT_EQ(d_->used_idx(2), 0);  // no event before a restore
  auto state = d_->transport->save_state();
  EXPECT_EQ(state.at("device").at("guest_cid"), kCid);

  // The restored VM: a new device and transport over a copy of guest memory.
  auto dev2 = make_device({.uds_path = dir_ + "/v2.sock"});
  ASSERT_TRUE(dev2);
  auto d2 = std::make_unique<FakeDriver>(dev2, 32 << 20);
  d2->transport.reset();
  d2->transport = std::make_unique<MmioTransport>(dev2, d2->mem, d2->irq, loop_.get());
  for (const auto& r : d_->mem.regions()) ASSERT_TRUE(d2->mem.write(r.gpa, r.host, r.size));
  d2->queues = d_->queues;  // the driver's own ring bookkeeping
  ASSERT_TRUE(d2->transport->restore_state(state).ok());
  uint16_t rx_base = d2->used_idx(0);
  ASSERT_EQ(d2->used_idx(2), 1);
  EXPECT_EQ(d2->used(2, 0).len, 4u);
  EXPECT_EQ(*d2->mem.read_obj<uint32_t>(event_buf_), vsock::kEventTransportReset);
  EXPECT_EQ(dev2->connection_count(), 0u);
  EXPECT_FALSE(d2->needs_reset());
  // The restored device serves new connections.
  int c = connect_host(dir_ + "/v2.sock");
  host_write(c, "CONNECT 45\n");
  for (int i = 0; i < 200 && d2->used_idx(0) == rx_base; ++i) ASSERT_TRUE(loop_->run_once(5).ok());
  ASSERT_EQ(d2->used_idx(0), rx_base + 1);
  auto e = d2->used(0, rx_base);
  Header req;
  ASSERT_TRUE(d2->mem.read(rx_pool_[e.id], &req, kHdr));
  EXPECT_EQ(req.op, vsock::kOpRequest);
  EXPECT_EQ(req.dst_port, 45u);
  d2.reset();
  // A driver reset drops connections too.
  d_->wr(mmio::kStatus, 0);
  EXPECT_EQ(dev_->connection_count(), 0u);
  EXPECT_TRUE(host_eof(fd));
}

}  // namespace
}  // namespace strata::vmm::virtio
