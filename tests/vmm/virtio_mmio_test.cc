// The virtio-mmio transport driven through its registers like Linux's virtio_mmio driver, and
// what a hostile driver gets: a device marked DEVICE_NEEDS_RESET, a config interrupt, a live
// process, and a working device again after a reset.
#include "vmm/devices/virtio/mmio.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "virtio_fake_driver.h"
#include "vmm/devices/virtio/rng.h"

namespace strata::vmm::virtio {
namespace {

using testing::FakeDriver;
using testing::Seg;

// A device that records what the transport does to it.
class RecordingDevice : public VirtioDevice {
 public:
  DeviceType type() const override { return DeviceType::kVsock; }
  std::string name() const override { return "virtio-test t0"; }
  uint64_t features() const override { return feature(kFRingEventIdx) | feature(3) | feature(40); }
  size_t num_queues() const override { return 3; }
  uint16_t max_queue_size(size_t q) const override { return q == 2 ? 64 : 128; }
  void read_config(uint64_t offset, uint8_t* data, size_t len) const override {
    read_config_bytes(config, sizeof config, offset, data, len);
  }
  void write_config(uint64_t offset, const uint8_t* data, size_t len) override {
    if (offset + len <= sizeof config) std::memcpy(config + offset, data, len);
  }
  Status activate(const ActivateContext& ctx) override {
    ++activations;
    features_seen = ctx.features;
    if (fail_activate) return Error("activation refused");
    queues = ctx.queues;
    return ok();
  }
  Status process(size_t q) override {
    processed.push_back(q);
    if (fail_process) return Error("bad request");
    DescriptorChain c;
    for (;;) {
      ASSIGN_OR_RETURN(bool got, queues[q].pop(c));
      if (!got) return ok();
      TRY(queues[q].add_used(c.head(), 0));
    }
  }
  void reset() override {
    ++resets;
    queues = {};
  }
  nlohmann::json save_state() const override { return {{"x", 7}}; }
  Status restore_state(const nlohmann::json& j) override {
    restored = j.at("x").get<int>();
    return ok();
  }

  uint8_t config[8] = {1, 2, 3, 4, 5, 6, 7, 8};
  int activations = 0, resets = 0, restored = 0;
  bool fail_activate = false, fail_process = false;
  uint64_t features_seen = 0;
  std::vector<size_t> processed;
  std::span<Queue> queues;
};

TEST(VirtioMmio, IdentityRegisters) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  EXPECT_EQ(d.rd(mmio::kMagicValue), 0x74726976u);
  EXPECT_EQ(d.rd(mmio::kVersion), 2u);
  EXPECT_EQ(d.rd(mmio::kDeviceId), 19u);
  EXPECT_EQ(d.rd(mmio::kVendorId), mmio::kVendor);
  EXPECT_EQ(d.device_features(), feature(kFRingEventIdx) | feature(3) | feature(40) | feature(kFVersion1));
  EXPECT_EQ(d.rd(mmio::kShmLenLow), 0xffffffffu);  // no shared memory regions
  EXPECT_EQ(MmioTransport::kNotifyOffset, 0x50u);
  EXPECT_EQ(d.transport->num_queues(), 3u);
  // Queue sizes per queue; a missing queue reads 0.
  d.wr(mmio::kQueueSel, 2);
  EXPECT_EQ(d.rd(mmio::kQueueNumMax), 64u);
  d.wr(mmio::kQueueSel, 3);
  EXPECT_EQ(d.rd(mmio::kQueueNumMax), 0u);
  // Narrow or misaligned control register accesses read 0.
  uint8_t b[2] = {0xff, 0xff};
  d.transport->read(mmio::kMagicValue, b, 2);
  EXPECT_EQ(b[0], 0);
  uint8_t w[4];
  d.transport->read(mmio::kMagicValue + 1, w, 4);
  EXPECT_EQ(w[0], 0);
}

TEST(VirtioMmio, ConfigSpaceForwarded) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  uint8_t v[2];
  d.transport->read(mmio::kConfig + 3, v, 2);
  EXPECT_EQ(v[0], 4);
  EXPECT_EQ(v[1], 5);
  uint8_t in = 0x99;
  d.transport->write(mmio::kConfig + 1, &in, 1);
  EXPECT_EQ(dev->config[1], 0x99);
  uint32_t past;
  d.transport->read(mmio::kConfig + 6, reinterpret_cast<uint8_t*>(&past), 4);
  EXPECT_EQ(past, 0x0807u);  // bytes past the config space read 0
}

TEST(VirtioMmio, LinuxProbeActivates) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  ASSERT_TRUE(d.start(~feature(40)));
  EXPECT_EQ(dev->activations, 1);
  EXPECT_EQ(dev->features_seen, feature(kFRingEventIdx) | feature(3) | feature(kFVersion1));
  EXPECT_EQ(dev->queues.size(), 3u);
  EXPECT_TRUE(dev->queues[0].active());
  EXPECT_EQ(dev->queues[2].size, 64);
  // Queue registers read back.
  d.wr(mmio::kQueueSel, 1);
  EXPECT_EQ(d.rd(mmio::kQueueNum), 128u);
  EXPECT_EQ(d.rd(mmio::kQueueReady), 1u);
  EXPECT_EQ(d.rd(mmio::kQueueDescLow), testing::desc_gpa(1));
  EXPECT_EQ(d.rd(mmio::kQueueDeviceLow), testing::used_gpa(1));
}

TEST(VirtioMmio, Version1IsRequired) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  EXPECT_FALSE(d.negotiate(~feature(kFVersion1)));
  d.driver_ok();
  EXPECT_EQ(d.rd(mmio::kStatus) & kStatusDriverOk, 0u);
  EXPECT_EQ(dev->activations, 0);
  // Features the device did not offer are refused too.
  d.wr(mmio::kStatus, 0);
  d.wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver);
  d.wr(mmio::kDriverFeaturesSel, 1);
  d.wr(mmio::kDriverFeatures, 1 | (1u << 20));  // VERSION_1 and bit 52
  d.wr(mmio::kStatus, kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
  EXPECT_EQ(d.rd(mmio::kStatus) & kStatusFeaturesOk, 0u);
  // And a proper driver then succeeds.
  EXPECT_TRUE(d.start());
}

TEST(VirtioMmio, RegistersLockedOutsideTheirPhase) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  // Queue setup before FEATURES_OK is ignored.
  d.wr(mmio::kQueueSel, 0);
  d.wr(mmio::kQueueNum, 16);
  EXPECT_EQ(d.rd(mmio::kQueueNum), 0u);
  ASSERT_TRUE(d.start());
  // Features and queues cannot change after DRIVER_OK.
  d.wr(mmio::kDriverFeaturesSel, 0);
  d.wr(mmio::kDriverFeatures, 0);
  d.wr(mmio::kQueueSel, 0);
  d.wr(mmio::kQueueNum, 16);
  d.wr(mmio::kQueueDescLow, 0x5000);
  EXPECT_EQ(d.rd(mmio::kQueueNum), 128u);
  EXPECT_EQ(d.rd(mmio::kQueueDescLow), testing::desc_gpa(0));
  // Clearing status bits without a reset is ignored.
  d.wr(mmio::kStatus, kStatusAcknowledge);
  EXPECT_NE(d.rd(mmio::kStatus) & kStatusDriverOk, 0u);
}

TEST(VirtioMmio, NotifyProcessesAndInterrupts) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  d.kick(0);  // before DRIVER_OK: ignored
  EXPECT_TRUE(dev->processed.empty());
  ASSERT_TRUE(d.start(~feature(kFRingEventIdx)));
  uint64_t buf = d.alloc(64);
  d.add_chain(1, {{buf, 64, true}});
  d.kick(1);
  ASSERT_EQ(dev->processed.size(), 1u);
  EXPECT_EQ(dev->processed[0], 1u);
  EXPECT_EQ(d.used_idx(1), 1);
  EXPECT_EQ(d.irq->count.load(), 1u);
  EXPECT_EQ(d.rd(mmio::kInterruptStatus), mmio::kInterruptUsedBuffer);
  d.wr(mmio::kInterruptAck, mmio::kInterruptUsedBuffer);
  EXPECT_EQ(d.rd(mmio::kInterruptStatus), 0u);
  // The monitor's ioeventfd path.
  d.add_chain(1, {{buf, 64, true}});
  d.transport->notify(1);
  EXPECT_EQ(d.used_idx(1), 2);
  EXPECT_EQ(d.irq->count.load(), 2u);
  // A notify with nothing new raises nothing; out-of-range queue numbers are ignored.
  d.transport->notify(1);
  d.transport->notify(7);
  d.kick(0xffffffff);
  EXPECT_EQ(d.irq->count.load(), 2u);
  EXPECT_FALSE(d.needs_reset());
}

TEST(VirtioMmio, ResetClearsEverything) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  ASSERT_TRUE(d.start());
  d.wr(mmio::kStatus, 0);
  EXPECT_EQ(dev->resets, 1);
  EXPECT_EQ(d.rd(mmio::kStatus), 0u);
  d.wr(mmio::kQueueSel, 0);
  EXPECT_EQ(d.rd(mmio::kQueueReady), 0u);
  EXPECT_EQ(d.rd(mmio::kQueueNum), 0u);
  EXPECT_EQ(d.rd(mmio::kQueueDescLow), 0u);
  d.kick(0);
  EXPECT_TRUE(dev->processed.empty());
  ASSERT_TRUE(d.start());
  EXPECT_EQ(dev->activations, 2);
}

TEST(VirtioMmio, ConfigChangeBumpsGeneration) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  uint32_t gen = d.rd(mmio::kConfigGeneration);
  ASSERT_TRUE(d.transport->run_locked([&] {
                 d.transport->config_changed();
                 return ok();
               }).ok());
  EXPECT_NE(d.rd(mmio::kConfigGeneration), gen);
  EXPECT_EQ(d.irq->count.load(), 0u);  // driver not running yet
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(d.transport->run_locked([&] {
                 d.transport->config_changed();
                 return ok();
               }).ok());
  EXPECT_EQ(d.irq->count.load(), 1u);
  EXPECT_EQ(d.rd(mmio::kInterruptStatus), mmio::kInterruptConfigChange);
}

// A failure: DEVICE_NEEDS_RESET, a config interrupt, no more processing; a reset recovers.
void expect_failed(FakeDriver& d, uint64_t irq_before = 0) {
  EXPECT_TRUE(d.needs_reset());
  EXPECT_TRUE(d.transport->failed());
  EXPECT_NE(d.rd(mmio::kInterruptStatus) & mmio::kInterruptConfigChange, 0u);
  EXPECT_GT(d.irq->count.load(), irq_before);
}

TEST(VirtioMmio, FailedDeviceStopsUntilReset) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  ASSERT_TRUE(d.start());
  dev->fail_process = true;
  d.kick(0);
  expect_failed(d);
  EXPECT_EQ(dev->resets, 1);  // the device let go of its queues
  d.kick(0);
  EXPECT_EQ(dev->processed.size(), 1u);
  // The driver writing back Status keeps NEEDS_RESET; it cannot clear it without a reset.
  d.wr(mmio::kStatus, d.rd(mmio::kStatus) & ~kStatusDeviceNeedsReset);
  EXPECT_TRUE(d.needs_reset());
  dev->fail_process = false;
  ASSERT_TRUE(d.start());
  EXPECT_FALSE(d.needs_reset());
  d.kick(0);
  EXPECT_EQ(dev->processed.size(), 2u);
}

TEST(VirtioMmio, FailedActivation) {
  auto dev = std::make_shared<RecordingDevice>();
  dev->fail_activate = true;
  FakeDriver d(dev);
  EXPECT_FALSE(d.start());
  expect_failed(d);
}

TEST(VirtioMmio, BadQueueSizesFailTheDevice) {
  for (uint32_t size : {0u, 3u, 100u, 256u, 0x10000u}) {
    SCOPED_TRACE(size);
    auto dev = std::make_shared<RecordingDevice>();
    FakeDriver d(dev);
    ASSERT_TRUE(d.negotiate());
    d.setup_queue(0, size);
    d.setup_queue(1);
    d.setup_queue(2);
    d.driver_ok();
    expect_failed(d);
    EXPECT_EQ(dev->activations, 0);
  }
}

TEST(VirtioMmio, QueueAreasOutsideRamFailTheDevice) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  ASSERT_TRUE(d.negotiate());
  d.setup_queue(0);
  d.setup_queue(1);
  d.setup_queue(2);
  d.wr(mmio::kQueueSel, 1);
  d.wr(mmio::kQueueReady, 0);
  d.wr(mmio::kQueueDeviceHigh, 0x10);  // 64 GiB: not RAM
  d.wr(mmio::kQueueReady, 1);
  d.driver_ok();
  expect_failed(d);
}

// The hostile rings of VirtioQueue.HostileRingsAreErrors, through a whole device.
TEST(VirtioMmio, HostileChainsFailTheDeviceAndAResetRecovers) {
  struct Case {
    const char* name;
    std::function<void(FakeDriver&)> write;
  };
  uint64_t buf = testing::kDataBase;
  std::vector<Case> cases = {
      {"descriptor loop",
       [buf](FakeDriver& d) {
         d.write_desc(0, 0, buf, 8, kDescFNext | kDescFWrite, 1);
         d.write_desc(0, 1, buf, 8, kDescFNext | kDescFWrite, 0);
         d.push_avail(0, 0);
       }},
      {"address outside RAM", [](FakeDriver& d) { d.add_chain(0, {{0xf0000000, 8, true}}); }},
      {"length outside RAM", [](FakeDriver& d) { d.add_chain(0, {{(4 << 20) - 8, 16, true}}); }},
      {"length overflow", [](FakeDriver& d) { d.add_chain(0, {{~0ull - 0x10, 0xffffffff, true}}); }},
      {"huge avail idx jump", [](FakeDriver& d) { d.set_avail_idx(0, 0x7fff); }},
      {"nested indirect",
       [](FakeDriver& d) {
         uint64_t t = d.alloc(16);
         d.write_desc_at(t, t, 16, kDescFIndirect, 0);
         d.write_desc(0, 0, t, 16, kDescFIndirect, 0);
         d.push_avail(0, 0);
       }},
      {"head past the table", [](FakeDriver& d) { d.push_avail(0, 300); }},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto dev = std::make_shared<RngDevice>("rng0", 256);
    FakeDriver d(dev);
    ASSERT_TRUE(d.start());
    c.write(d);
    d.kick(0);
    expect_failed(d);
    // The driver resets the device and starts over: it works again.
    ASSERT_TRUE(d.start());
    EXPECT_FALSE(d.needs_reset());
    d.add_chain(0, {{d.alloc(32), 32, true}});
    d.kick(0);
    EXPECT_EQ(d.used_idx(0), 1);
    EXPECT_EQ(d.used(0, 0).len, 32u);
  }
}

TEST(VirtioMmio, IndirectChainsThroughTheTransport) {
  auto dev = std::make_shared<RngDevice>();
  FakeDriver d(dev);
  ASSERT_TRUE(d.start());
  ASSERT_NE(d.features & feature(kFRingIndirectDesc), 0u);
  uint64_t a = d.alloc(16), b = d.alloc(48);
  uint16_t head = d.add_indirect_chain(0, {{a, 16, true}, {b, 48, true}});
  d.kick(0);
  ASSERT_EQ(d.used_idx(0), 1);
  EXPECT_EQ(d.used(0, 0).id, head);
  EXPECT_EQ(d.used(0, 0).len, 64u);
}

TEST(VirtioMmio, SnapshotRestoresARunningDevice) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  ASSERT_TRUE(d.start(~feature(kFRingEventIdx)));
  uint64_t buf = d.alloc(8);
  d.add_chain(0, {{buf, 8, true}});
  d.kick(0);
  auto state = d.transport->save_state();
  EXPECT_EQ(state.at("queues").at(0).at("next_used"), 1);

  // A new transport over the same memory (as after restoring the memory file).
  auto dev2 = std::make_shared<RecordingDevice>();
  MmioTransport t2(dev2, d.mem, d.irq);
  ASSERT_TRUE(t2.restore_state(state).ok());
  EXPECT_EQ(dev2->restored, 7);
  EXPECT_EQ(dev2->activations, 1);
  EXPECT_EQ(t2.status(), d.transport->status());
  d.add_chain(0, {{buf, 8, true}});
  t2.notify(0);
  EXPECT_EQ(d.used_idx(0), 2);

  // Broken state is refused and leaves the transport reset.
  auto bad = state;
  bad["queues"].erase(1);
  auto dev3 = std::make_shared<RecordingDevice>();
  MmioTransport t3(dev3, d.mem, d.irq);
  EXPECT_FALSE(t3.restore_state(bad).ok());
  EXPECT_FALSE(t3.restore_state(nlohmann::json::array()).ok());
  EXPECT_EQ(t3.status(), 0u);
}

TEST(VirtioMmio, RunActiveForDeviceOwnedWork) {
  auto dev = std::make_shared<RecordingDevice>();
  FakeDriver d(dev);
  int ran = 0;
  d.transport->run_active([&] {
    ++ran;
    return ok();
  });
  EXPECT_EQ(ran, 0);  // not active
  ASSERT_TRUE(d.start(~feature(kFRingEventIdx)));
  uint64_t buf = d.alloc(8);
  d.add_chain(2, {{buf, 8, true}});
  dev->host()->run_active([&] { return dev->process(2); });
  EXPECT_EQ(d.used_idx(2), 1);
  EXPECT_EQ(d.irq->count.load(), 1u);
  dev->host()->run_active([&] { return Status(Error("tap gone")); });
  expect_failed(d, 1);
}

}  // namespace
}  // namespace strata::vmm::virtio
