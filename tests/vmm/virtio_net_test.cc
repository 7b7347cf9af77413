// virtio-net through the MMIO transport: a SOCK_DGRAM socketpair stands in for the tap (one
// datagram = one frame with its vnet header), and one test uses a real tap in a private
// network namespace when the machine allows it.
#include "vmm/devices/virtio/net.h"

#include <fcntl.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "virtio_fake_driver.h"
#include "vmm/event_loop.h"

namespace strata::vmm::virtio {
namespace {

using testing::FakeDriver;

constexpr size_t kHdr = NetDevice::kVnetHdrBytes;

// A FakeDriver whose transport hands `loop` to the device (FakeDriver's own has none).
std::unique_ptr<FakeDriver> driver_with_loop(const std::shared_ptr<VirtioDevice>& dev, EventLoop* loop) {
  auto d = std::make_unique<FakeDriver>(dev);
  d->transport.reset();  // first, so the old transport's destructor does not unset the new host
  d->transport = std::make_unique<MmioTransport>(dev, d->mem, d->irq, loop);
  return d;
}

std::vector<uint8_t> frame(size_t len, uint8_t seed) {
  std::vector<uint8_t> f(len);
  for (size_t i = 0; i < len; ++i) f[i] = static_cast<uint8_t>(seed + i);
  return f;
}

class VirtioNet : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    tap_ = UniqueFd(sv[0]);
    peer_ = UniqueFd(sv[1]);
    auto l = EventLoop::create();
    ASSERT_TRUE(l.ok());
    loop_ = std::move(*l);
  }
  std::shared_ptr<NetDevice> device(std::optional<MacAddress> mac = std::nullopt, uint16_t qsize = 256) {
    return std::make_shared<NetDevice>(NetConfig{.id = "eth0", .tap_name = "tap0", .mac = mac, .queue_size = qsize},
                                       std::move(tap_));
  }
  // Runs the loop until `cond` or about a second passes.
  template <class F>
  bool run_until(F cond) {
    for (int i = 0; i < 100 && !cond(); ++i) EXPECT_TRUE(loop_->run_once(10).ok());
    return cond();
  }
  // Posts one RX chain of `len` writable bytes (in two buffers, like header + data); returns its gpa.
  uint64_t post_rx(FakeDriver& d, uint32_t len) {
    uint64_t buf = d.alloc(len);
    d.add_chain(0, {{buf, kHdr, true}, {buf + kHdr, len - static_cast<uint32_t>(kHdr), true}});
    return buf;
  }
  void send_frame(const std::vector<uint8_t>& payload) {
    std::vector<uint8_t> pkt(kHdr, 0);
    pkt.insert(pkt.end(), payload.begin(), payload.end());
    ASSERT_EQ(::send(peer_.get(), pkt.data(), pkt.size(), 0), static_cast<ssize_t>(pkt.size()));
  }

  UniqueFd tap_, peer_;
  std::unique_ptr<EventLoop> loop_;
};

TEST_F(VirtioNet, ConfigAndFeatures) {
  auto mac = parse_mac("02:00:0a:0B:ff:01");
  ASSERT_TRUE(mac.ok());
  EXPECT_EQ(mac_to_string(*mac), "02:00:0a:0b:ff:01");
  EXPECT_FALSE(parse_mac("02:00:0a:0b:ff").ok());
  EXPECT_FALSE(parse_mac("02:00:0a:0b:ff:0g").ok());
  EXPECT_FALSE(parse_mac("02-00-0a-0b-ff-01").ok());

  auto net = device(*mac);
  FakeDriver d(net);
  EXPECT_EQ(d.rd(mmio::kDeviceId), 1u);
  EXPECT_EQ(net->name(), "virtio-net eth0");
  uint64_t f = d.device_features();
  EXPECT_TRUE(f & feature(kNetFMac));
  EXPECT_TRUE(f & feature(kFVersion1));
  EXPECT_TRUE(f & feature(kFRingEventIdx));
  EXPECT_TRUE(f & feature(kFRingIndirectDesc));
  EXPECT_FALSE(f & feature(0));  // no CSUM
  uint8_t got[6];
  for (int i = 0; i < 6; ++i) d.transport->read(mmio::kConfig + i, &got[i], 1);
  EXPECT_EQ(std::memcmp(got, mac->data(), 6), 0);
  EXPECT_EQ(d.rd(mmio::kQueueNumMax), 256u);

  auto no_mac = std::make_shared<NetDevice>(NetConfig{.id = "eth1", .tap_name = "tap1"}, UniqueFd());
  FakeDriver d2(no_mac);
  EXPECT_FALSE(d2.device_features() & feature(kNetFMac));
}

TEST_F(VirtioNet, TxWritesTheFrameToTheTap) {
  auto net = device();
  FakeDriver d(net);
  ASSERT_TRUE(d.start());
  uint8_t hdr[kHdr] = {};
  auto f = frame(1514, 7);
  uint64_t h = d.alloc_bytes(hdr, kHdr), b = d.alloc_bytes(f.data(), f.size());
  d.add_chain(1, {{h, kHdr, false}, {b, 1000, false}, {b + 1000, 514, false}});
  d.kick(1);
  ASSERT_EQ(d.used_idx(1), 1);
  EXPECT_EQ(d.used(1, 0).len, 0u);
  std::vector<uint8_t> got(70000);
  ssize_t n = ::recv(peer_.get(), got.data(), got.size(), 0);
  ASSERT_EQ(n, static_cast<ssize_t>(kHdr + f.size()));
  EXPECT_TRUE(std::equal(f.begin(), f.end(), got.begin() + kHdr));
  // Through an indirect table too.
  d.add_indirect_chain(1, {{h, kHdr, false}, {b, 60, false}});
  d.kick(1);
  EXPECT_EQ(::recv(peer_.get(), got.data(), got.size(), 0), static_cast<ssize_t>(kHdr + 60));
  auto c = net->counters();
  EXPECT_EQ(c.tx_frames, 2u);
  EXPECT_EQ(c.tx_bytes, 1514u + 60u);
  EXPECT_EQ(c.tx_dropped, 0u);
  EXPECT_FALSE(d.needs_reset());
}

TEST_F(VirtioNet, TxDropsWhatTheTapRefusesAndShortChains) {
  auto net = device();
  FakeDriver d(net, 8 << 20);
  ASSERT_TRUE(d.start(~0ull, 256));
  auto f = frame(60000, 1);
  uint64_t b = d.alloc_bytes(f.data(), f.size());
  // Fill the socket until it refuses: the frames are dropped, the device carries on.
  for (int round = 0; round < 8; ++round) {
    for (int i = 0; i < 16; ++i) d.add_chain(1, {{b, 60000, false}});
    d.kick(1);
  }
  EXPECT_EQ(d.used_idx(1), 128);
  auto c = net->counters();
  EXPECT_GT(c.tx_dropped, 0u);
  EXPECT_GT(c.tx_frames, 0u);
  EXPECT_EQ(c.tx_frames + c.tx_dropped, 128u);
  // A chain shorter than the header is dropped; one with only writable buffers too.
  uint64_t before = c.tx_dropped;
  d.add_chain(1, {{b, 5, false}});
  d.add_chain(1, {{b, 100, true}});
  d.kick(1);
  EXPECT_EQ(d.used_idx(1), 130);
  EXPECT_EQ(net->counters().tx_dropped, before + 2);
  EXPECT_FALSE(d.needs_reset());
}

TEST_F(VirtioNet, OversizeTxChainFailsTheDevice) {
  auto net = device();
  FakeDriver d(net, 8 << 20);
  ASSERT_TRUE(d.start());
  uint64_t b = d.alloc(70000);
  d.add_chain(1, {{b, 65562, false}, {b + 65562, 1, false}});
  d.kick(1);
  EXPECT_TRUE(d.needs_reset());
}

TEST_F(VirtioNet, RxIntoPostedBuffers) {
  auto net = device();
  auto d = driver_with_loop(net, loop_.get());
  ASSERT_TRUE(d->start());
  uint64_t buf = post_rx(*d, 1526);
  d->kick(0);
  EXPECT_EQ(d->used_idx(0), 0);
  auto f = frame(1000, 3);
  send_frame(f);
  ASSERT_TRUE(run_until([&] { return d->used_idx(0) == 1; }));
  EXPECT_EQ(d->used(0, 0).len, kHdr + 1000);
  auto got = d->bytes(buf, kHdr + 1000);
  EXPECT_EQ(got[10] | (got[11] << 8), 1);  // num_buffers
  EXPECT_TRUE(std::equal(f.begin(), f.end(), got.begin() + kHdr));
  EXPECT_GT(d->irq->count.load(), 0u);
  auto c = net->counters();
  EXPECT_EQ(c.rx_frames, 1u);
  EXPECT_EQ(c.rx_bytes, 1000u);
}

TEST_F(VirtioNet, RxWithoutBuffersWaitsForTheNotify) {
  auto net = device();
  auto d = driver_with_loop(net, loop_.get());
  ASSERT_TRUE(d->start());
  auto f1 = frame(100, 1), f2 = frame(200, 2);
  send_frame(f1);
  send_frame(f2);
  // The tap is readable but nothing is posted: the device stops polling it (the loop would
  // otherwise spin), and nothing is lost.
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(loop_->run_once(10).ok());
  EXPECT_EQ(d->used_idx(0), 0);
  uint64_t a = post_rx(*d, 1526);
  uint64_t b = post_rx(*d, 1526);
  d->kick(0);  // delivered from the notify itself
  ASSERT_EQ(d->used_idx(0), 2);
  EXPECT_EQ(d->used(0, 0).len, kHdr + 100);
  EXPECT_EQ(d->used(0, 1).len, kHdr + 200);
  auto g1 = d->bytes(a + kHdr, 100), g2 = d->bytes(b + kHdr, 200);
  EXPECT_EQ(g1, f1);
  EXPECT_EQ(g2, f2);
  // Polling again: a later frame arrives through the loop.
  post_rx(*d, 1526);
  d->kick(0);
  send_frame(frame(50, 9));
  EXPECT_TRUE(run_until([&] { return d->used_idx(0) == 3; }));
  EXPECT_FALSE(d->needs_reset());
}

TEST_F(VirtioNet, RxFrameLongerThanTheChainIsDropped) {
  auto net = device();
  auto d = driver_with_loop(net, loop_.get());
  ASSERT_TRUE(d->start());
  uint64_t buf = post_rx(*d, 512);
  d->kick(0);
  send_frame(frame(2000, 5));  // does not fit
  auto small = frame(300, 6);
  send_frame(small);
  ASSERT_TRUE(run_until([&] { return d->used_idx(0) == 1; }));
  EXPECT_EQ(d->used(0, 0).len, kHdr + 300);
  EXPECT_EQ(d->bytes(buf + kHdr, 300), small);
  EXPECT_EQ(net->counters().rx_dropped, 1u);
  // A chain without room for the header comes back empty.
  d->add_chain(0, {{d->alloc(4), 4, true}});
  post_rx(*d, 512);
  d->kick(0);
  send_frame(frame(64, 1));
  ASSERT_TRUE(run_until([&] { return d->used_idx(0) == 3; }));
  EXPECT_EQ(d->used(0, 1).len, 0u);
  EXPECT_EQ(d->used(0, 2).len, kHdr + 64);
  EXPECT_FALSE(d->needs_reset());
}

TEST_F(VirtioNet, ResetUnregistersTheTap) {
  auto net = device();
  auto d = driver_with_loop(net, loop_.get());
  ASSERT_TRUE(d->start());
  d->wr(mmio::kStatus, 0);
  send_frame(frame(60, 1));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(loop_->run_once(5).ok());
  // Started again, the frame waiting on the tap is delivered.
  ASSERT_TRUE(d->start());
  post_rx(*d, 1526);
  d->kick(0);
  EXPECT_EQ(d->used_idx(0), 1);
}

TEST_F(VirtioNet, SaveAndRestoreState) {
  auto mac = parse_mac("06:00:00:00:00:01");
  auto net = device(*mac);
  FakeDriver d(net);
  ASSERT_TRUE(d.start());
  uint64_t h = d.alloc(kHdr + 60);
  d.add_chain(1, {{h, kHdr + 60, false}});
  d.kick(1);
  auto state = net->save_state();
  EXPECT_EQ(state.at("mac"), "06:00:00:00:00:01");
  EXPECT_EQ(state.at("tx_frames"), 1);

  auto fresh = std::make_shared<NetDevice>(NetConfig{.id = "eth0", .tap_name = "tap0"}, std::move(peer_));
  ASSERT_TRUE(fresh->restore_state(state).ok());
  EXPECT_EQ(fresh->counters().tx_frames, 1u);
  EXPECT_EQ(fresh->counters().tx_bytes, 60u);
  EXPECT_TRUE(fresh->features() & feature(kNetFMac));
  EXPECT_GE(fresh->tap_fd(), 0);  // same tap name: the open fd is kept
  EXPECT_FALSE(fresh->restore_state(nlohmann::json{{"mac", "nope"}}).ok());
}

// A real tap inside a private network namespace (entered by a thread of its own, so the test
// process keeps its namespace): a frame the guest sends reaches an AF_PACKET socket on the tap,
// and a frame sent there reaches the guest.
TEST_F(VirtioNet, RealTapInANetworkNamespace) {
  if (::geteuid() != 0 || ::access("/dev/net/tun", R_OK | W_OK) != 0) GTEST_SKIP() << "needs root and /dev/net/tun";
  bool skipped = false;
  std::thread t([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      skipped = true;
      return;
    }
    EXPECT_FALSE(NetDevice::create({.id = "bad", .tap_name = std::string(20, 'x')}).ok());
    auto net = NetDevice::create({.id = "eth0", .tap_name = "strtap0"});
    ASSERT_TRUE(net.ok()) << net.error().to_string();
    // Up the link, and watch it with a packet socket for our experimental EtherType.
    constexpr uint16_t kEthType = 0x88b5;
    UniqueFd ctl(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    struct ifreq ifr {};
    std::strcpy(ifr.ifr_name, "strtap0");
    ASSERT_EQ(::ioctl(ctl.get(), SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    ASSERT_EQ(::ioctl(ctl.get(), SIOCSIFFLAGS, &ifr), 0);
    UniqueFd pkt(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(kEthType)));
    ASSERT_TRUE(pkt.valid());
    struct sockaddr_ll sll {};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(kEthType);
    sll.sll_ifindex = static_cast<int>(::if_nametoindex("strtap0"));
    ASSERT_EQ(::bind(pkt.get(), reinterpret_cast<sockaddr*>(&sll), sizeof sll), 0);

    auto loop = EventLoop::create();
    ASSERT_TRUE(loop.ok());
    auto d = driver_with_loop(*net, loop->get());
    ASSERT_TRUE(d->start());
    // Guest -> tap.
    std::vector<uint8_t> eth(kHdr, 0);
    uint8_t dst[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src[6] = {0x06, 0, 0, 0, 0, 2};
    eth.insert(eth.end(), dst, dst + 6);
    eth.insert(eth.end(), src, src + 6);
    eth.push_back(kEthType >> 8);
    eth.push_back(kEthType & 0xff);
    for (int i = 0; i < 100; ++i) eth.push_back(static_cast<uint8_t>(i));
    d->add_chain(1, {{d->alloc_bytes(eth.data(), eth.size()), static_cast<uint32_t>(eth.size()), false}});
    d->kick(1);
    EXPECT_EQ((*net)->counters().tx_frames, 1u);
    std::vector<uint8_t> got(2048);
    struct timeval tv {1, 0};
    ::setsockopt(pkt.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t n = ::recv(pkt.get(), got.data(), got.size(), 0);
    ASSERT_EQ(n, static_cast<ssize_t>(eth.size() - kHdr));
    EXPECT_TRUE(std::equal(eth.begin() + kHdr, eth.end(), got.begin()));
    // Tap -> guest: other frames (IPv6 solicitations) may come first; look for ours.
    for (int i = 0; i < 32; ++i) {
      uint64_t b = d->alloc(1526);
      d->add_chain(0, {{b, 1526, true}});
    }
    d->kick(0);
    std::vector<uint8_t> out(eth.begin() + kHdr, eth.end());
    std::memcpy(out.data() + 6, "\x06\x00\x00\x00\x00\x03", 6);
    sll.sll_halen = 6;
    std::memset(sll.sll_addr, 0xff, 6);
    ASSERT_EQ(::sendto(pkt.get(), out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&sll), sizeof sll),
              static_cast<ssize_t>(out.size()));
    bool found = false;
    for (int round = 0; round < 100 && !found; ++round) {
      EXPECT_TRUE((*loop)->run_once(10).ok());
      for (uint16_t u = 0; u < d->used_idx(0) && !found; ++u) {
        auto e = d->used(0, u);
        if (e.len != out.size() + kHdr) continue;
        // The chain's buffer: descriptor e.id of queue 0.
        uint64_t gpa = *d->mem.read_obj<uint64_t>(testing::desc_gpa(0) + 16ull * e.id);
        auto g = d->bytes(gpa + kHdr, out.size());
        found = g == out;
      }
    }
    EXPECT_TRUE(found);
    EXPECT_FALSE(d->needs_reset());
    d.reset();
  });
  t.join();
  if (skipped) GTEST_SKIP() << "unshare(CLONE_NEWNET) is not permitted";
}

}  // namespace
}  // namespace strata::vmm::virtio
