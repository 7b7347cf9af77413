#include "vmm/devices/virtio/net.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <nlohmann/json.hpp>

#include "vmm/event_loop.h"

namespace strata::vmm::virtio {
namespace {

// virtio_net_config up to max_virtqueue_pairs (5.1.4); the rest belongs to features not offered.
struct NetConfigSpace {
  uint8_t mac[6];
  uint16_t status;
  uint16_t max_virtqueue_pairs;
};
static_assert(sizeof(NetConfigSpace) == 10);
constexpr uint16_t kNetSLinkUp = 1;

constexpr size_t kRxQueue = 0;
constexpr size_t kTxQueue = 1;

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<MacAddress> parse_mac(std::string_view text) {
  MacAddress mac{};
  if (text.size() != 17) return Error("MAC address \"" + std::string(text) + "\" is not of the form aa:bb:cc:dd:ee:ff");
  for (size_t i = 0; i < 6; ++i) {
    int hi = hex_digit(text[3 * i]), lo = hex_digit(text[3 * i + 1]);
    if (hi < 0 || lo < 0 || (i < 5 && text[3 * i + 2] != ':'))
      return Error("MAC address \"" + std::string(text) + "\" is not of the form aa:bb:cc:dd:ee:ff");
    mac[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return mac;
}

std::string mac_to_string(const MacAddress& mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return buf;
}

Result<UniqueFd> NetDevice::open_tap(const std::string& name) {
  auto fail = [&](const std::string& step) { return Error::sys(step).context("open tap " + name); };
  if (name.empty() || name.size() >= IFNAMSIZ)
    return Error("open tap \"" + name + "\": the name must have 1 to " + std::to_string(IFNAMSIZ - 1) + " bytes");
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return fail("open /dev/net/tun");
  struct ifreq ifr {};
  std::memcpy(ifr.ifr_name, name.data(), name.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) != 0) return fail("TUNSETIFF");
  int hdr = static_cast<int>(kVnetHdrBytes);
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr) != 0) return fail("TUNSETVNETHDRSZ");
  // No offloads are offered to the guest, so none may reach it from the tap either.
  if (::ioctl(fd.get(), TUNSETOFFLOAD, 0UL) != 0) return fail("TUNSETOFFLOAD");
  return fd;
}

Result<std::shared_ptr<NetDevice>> NetDevice::create(NetConfig config) {
  if (config.queue_size < 2 || (config.queue_size & (config.queue_size - 1)) != 0)
    return Error("network interface " + config.id + ": queue size " + std::to_string(config.queue_size) +
                 " is not a power of two");
  ASSIGN_OR_RETURN(UniqueFd tap, open_tap(config.tap_name));
  return std::make_shared<NetDevice>(std::move(config), std::move(tap));
}

NetDevice::NetDevice(NetConfig config, UniqueFd tap) : config_(std::move(config)), tap_(std::move(tap)) {
  scratch_.resize(kMaxFrameBytes);
}

NetDevice::~NetDevice() { unregister(); }

NetCounters NetDevice::counters() const {
  NetCounters c;
  c.rx_frames = rx_frames_.load(std::memory_order_relaxed);
  c.rx_bytes = rx_bytes_.load(std::memory_order_relaxed);
  c.rx_dropped = rx_dropped_.load(std::memory_order_relaxed);
  c.tx_frames = tx_frames_.load(std::memory_order_relaxed);
  c.tx_bytes = tx_bytes_.load(std::memory_order_relaxed);
  c.tx_dropped = tx_dropped_.load(std::memory_order_relaxed);
  return c;
}

uint64_t NetDevice::features() const {
  uint64_t f = feature(kFRingEventIdx) | feature(kFRingIndirectDesc);
  if (config_.mac) f |= feature(kNetFMac);
  return f;
}

void NetDevice::read_config(uint64_t offset, uint8_t* data, size_t len) const {
  NetConfigSpace c{};
  if (config_.mac) std::memcpy(c.mac, config_.mac->data(), 6);
  c.status = kNetSLinkUp;
  c.max_virtqueue_pairs = 1;
  read_config_bytes(&c, sizeof c, offset, data, len);
}

Status NetDevice::activate(const ActivateContext& ctx) {
  rx_ = &ctx.queues[kRxQueue];
  tx_ = &ctx.queues[kTxQueue];
  loop_ = ctx.loop;
  if (loop_ != nullptr && tap_) {
    // The handler runs on the loop's thread; run_active() takes the transport's lock and does
    // nothing once the device is reset or failed. reset() unregisters before `this` can go.
    TRY_CTX(loop_->add(
                tap_.get(),
                [this](uint32_t) {
                  if (VirtioHost* h = host()) h->run_active([this] { return process_rx(); });
                },
                EPOLLIN),
            name() + ": watch the tap");
    registered_ = true;
    rx_polling_ = true;
  }
  return ok();
}

void NetDevice::unregister() {
  if (registered_ && loop_ != nullptr) loop_->remove(tap_.get());
  registered_ = false;
  rx_polling_ = false;
}

void NetDevice::reset() {
  unregister();
  rx_ = tx_ = nullptr;
  loop_ = nullptr;
}

void NetDevice::set_rx_polling(bool on) {
  if (!registered_ || rx_polling_ == on) return;
  // A failed modify leaves the old interest: at worst the handler runs and finds no buffer.
  if (loop_->modify(tap_.get(), on ? uint32_t{EPOLLIN} : 0u).ok()) rx_polling_ = on;
}

Status NetDevice::process(size_t queue) {
  if (queue == kTxQueue) return process_tx();
  if (queue == kRxQueue) {
    // New RX buffers: deliver what is waiting and watch the tap again.
    set_rx_polling(true);
    return process_rx();
  }
  return ok();
}

Status NetDevice::process_tx() {
  if (tx_ == nullptr) return ok();
  for (;;) {
    ASSIGN_OR_RETURN(bool got, tx_->pop(chain_));
    if (!got) return ok();
    uint64_t len = chain_.readable_bytes();
    if (len > kMaxFrameBytes)
      return Error("TX chain " + std::to_string(chain_.head()) + " has " + std::to_string(len) +
                   " bytes, more than " + std::to_string(kMaxFrameBytes));
    if (len < kVnetHdrBytes || !tap_) {
      tx_dropped_.fetch_add(1, std::memory_order_relaxed);
    } else {
      iov_.clear();
      chain_.iovecs(false, 0, len, iov_);
      ssize_t n;
      do {
        n = ::writev(tap_.get(), iov_.data(), static_cast<int>(iov_.size()));
      } while (n < 0 && errno == EINTR);
      if (n < 0) {
        // EAGAIN (the tap's queue is full), EIO (link down), EINVAL (a header the tap refuses):
        // the frame is lost, as on a real wire.
        tx_dropped_.fetch_add(1, std::memory_order_relaxed);
      } else {
        tx_frames_.fetch_add(1, std::memory_order_relaxed);
        tx_bytes_.fetch_add(len - kVnetHdrBytes, std::memory_order_relaxed);
      }
    }
    TRY(tx_->add_used(chain_.head(), 0));
  }
}

Status NetDevice::process_rx() {
  if (rx_ == nullptr || !tap_) return ok();
  for (int frames = 0; frames < kMaxRxFramesPerTurn; ++frames) {
    ASSIGN_OR_RETURN(bool got, rx_->pop(chain_));
    if (!got) {
      // Nothing to receive into: stop polling until the driver posts buffers and notifies.
      set_rx_polling(false);
      return ok();
    }
    uint64_t room = std::min<uint64_t>(chain_.writable_bytes(), kMaxFrameBytes);
    if (room < kVnetHdrBytes) {
      // A broken driver: give the chain back empty rather than read a frame it cannot hold.
      rx_dropped_.fetch_add(1, std::memory_order_relaxed);
      TRY(rx_->add_used(chain_.head(), 0));
      continue;
    }
    iov_.clear();
    chain_.iovecs(true, 0, room, iov_);
    iov_.push_back({scratch_.data(), scratch_.size()});  // anything past the chain lands here
    ssize_t n;
    do {
      n = ::readv(tap_.get(), iov_.data(), static_cast<int>(iov_.size()));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      rx_->undo_pop();
      if (errno == EAGAIN || errno == EWOULDBLOCK) return ok();
      return Error::sys(name() + ": read from tap " + config_.tap_name);
    }
    auto len = static_cast<uint64_t>(n);
    if (len > room || len < kVnetHdrBytes) {
      // Longer than the chain (or a runt): dropped; the chain waits for the next frame.
      rx_dropped_.fetch_add(1, std::memory_order_relaxed);
      rx_->undo_pop();
      continue;
    }
    // num_buffers (the header's last field): the tap does not write it; without
    // VIRTIO_NET_F_MRG_RXBUF it is 1 (5.1.6.4).
    uint16_t one = 1;
    chain_.write(10, &one, sizeof one);
    rx_frames_.fetch_add(1, std::memory_order_relaxed);
    rx_bytes_.fetch_add(len - kVnetHdrBytes, std::memory_order_relaxed);
    TRY(rx_->add_used(chain_.head(), static_cast<uint32_t>(len)));
  }
  return ok();  // more may wait: the level-triggered loop calls again
}

nlohmann::json NetDevice::save_state() const {
  NetCounters c = counters();
  nlohmann::json j = {{"tap_name", config_.tap_name},
                      {"rx_frames", c.rx_frames},
                      {"rx_bytes", c.rx_bytes},
                      {"rx_dropped", c.rx_dropped},
                      {"tx_frames", c.tx_frames},
                      {"tx_bytes", c.tx_bytes},
                      {"tx_dropped", c.tx_dropped}};
  if (config_.mac) j["mac"] = mac_to_string(*config_.mac);
  return j;
}

Status NetDevice::restore_state(const nlohmann::json& j) {
  std::optional<MacAddress> mac;
  std::string tap_name;
  NetCounters c;
  try {
    if (j.contains("mac")) {
      ASSIGN_OR_RETURN(MacAddress m, parse_mac(j.at("mac").get<std::string>()));
      mac = m;
    }
    tap_name = j.at("tap_name").get<std::string>();
    c.rx_frames = j.at("rx_frames").get<uint64_t>();
    c.rx_bytes = j.at("rx_bytes").get<uint64_t>();
    c.rx_dropped = j.at("rx_dropped").get<uint64_t>();
    c.tx_frames = j.at("tx_frames").get<uint64_t>();
    c.tx_bytes = j.at("tx_bytes").get<uint64_t>();
    c.tx_dropped = j.at("tx_dropped").get<uint64_t>();
  } catch (const nlohmann::json::exception& e) {
    return Error(name() + ": snapshot state: " + e.what());
  }
  if (!tap_ || tap_name != config_.tap_name) {
    ASSIGN_OR_RETURN(UniqueFd tap, open_tap(tap_name));
    unregister();  // restore runs after the transport's reset(); nothing should be registered
    tap_ = std::move(tap);
    config_.tap_name = tap_name;
  }
  config_.mac = mac;
  rx_frames_ = c.rx_frames;
  rx_bytes_ = c.rx_bytes;
  rx_dropped_ = c.rx_dropped;
  tx_frames_ = c.tx_frames;
  tx_bytes_ = c.tx_bytes;
  tx_dropped_ = c.tx_dropped;
  return ok();
}

}  // namespace strata::vmm::virtio
