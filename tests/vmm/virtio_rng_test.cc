// virtio-rng through the MMIO transport.
#include "vmm/devices/virtio/rng.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "virtio_fake_driver.h"

namespace strata::vmm::virtio {
namespace {

using testing::FakeDriver;

bool all_zero(const std::vector<uint8_t>& v) {
  return std::all_of(v.begin(), v.end(), [](uint8_t b) { return b == 0; });
}

TEST(VirtioRng, FillsWritableBuffers) {
  FakeDriver d(std::make_shared<RngDevice>("rng0"));
  EXPECT_EQ(d.rd(mmio::kDeviceId), 4u);
  ASSERT_TRUE(d.start());
  uint64_t a = d.alloc(64), b = d.alloc(64);
  d.add_chain(0, {{a, 64, true}, {b, 64, true}});
  d.kick(0);
  ASSERT_EQ(d.used_idx(0), 1);
  EXPECT_EQ(d.used(0, 0).len, 128u);
  EXPECT_FALSE(all_zero(d.bytes(a, 64)));
  EXPECT_FALSE(all_zero(d.bytes(b, 64)));
  EXPECT_EQ(d.irq->count.load(), 1u);
  EXPECT_EQ(d.rd(mmio::kInterruptStatus), mmio::kInterruptUsedBuffer);
}

TEST(VirtioRng, ManyRequestsInOneNotify) {
  FakeDriver d(std::make_shared<RngDevice>("rng0", 16));
  ASSERT_TRUE(d.start());
  for (int i = 0; i < 40; ++i) {
    for (int k = 0; k < 10; ++k) d.add_chain(0, {{d.alloc(16), 16, true}});
    d.kick(0);
  }
  EXPECT_EQ(d.used_idx(0), 400);
  EXPECT_FALSE(d.needs_reset());
}

TEST(VirtioRng, ReadableBuffersAreIgnoredAndLargeRequestsCapped) {
  FakeDriver d(std::make_shared<RngDevice>("rng0"), 8 << 20);
  ASSERT_TRUE(d.start());
  uint64_t in = d.alloc(32);
  uint64_t big = d.alloc(1 << 20);
  d.add_chain(0, {{in, 32, false}, {big, 1 << 20, true}});
  d.kick(0);
  EXPECT_TRUE(all_zero(d.bytes(in, 32)));
  EXPECT_EQ(d.used(0, 0).len, RngDevice::kMaxRequestBytes);
  EXPECT_TRUE(all_zero(d.bytes(big + RngDevice::kMaxRequestBytes, 4096)));
}

TEST(VirtioRng, EventIdxSuppressesInterrupts) {
  FakeDriver d(std::make_shared<RngDevice>("rng0", 16));
  ASSERT_TRUE(d.start());
  ASSERT_NE(d.features & feature(kFRingEventIdx), 0u);
  d.set_used_event(0, 2);  // interrupt when the 3rd buffer is used
  for (int i = 0; i < 3; ++i) {
    d.add_chain(0, {{d.alloc(8), 8, true}});
    d.kick(0);
  }
  EXPECT_EQ(d.used_idx(0), 3);
  EXPECT_EQ(d.irq->count.load(), 1u);
  EXPECT_EQ(d.avail_event(0), 3);  // asks to be notified at the next buffer
}

}  // namespace
}  // namespace strata::vmm::virtio
