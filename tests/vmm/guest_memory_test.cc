#include "vmm/guest_memory.h"

#include <gtest/gtest.h>

#include "vmm/devices/bus.h"

namespace strata::vmm {
namespace {

TEST(GuestMemory, LayoutSplitsAroundTheMmioGap) {
  auto small = GuestMemory::layout(128ull << 20);
  ASSERT_EQ(small.size(), 1u);
  EXPECT_EQ(small[0].size, 128ull << 20);
  auto big = GuestMemory::layout(4ull << 30);
  ASSERT_EQ(big.size(), 2u);
  EXPECT_EQ(big[0].size, kMmioGapStart);
  EXPECT_EQ(big[1].gpa, kMmioGapEnd);
  EXPECT_EQ(big[1].size, (4ull << 30) - kMmioGapStart);
  EXPECT_EQ(big[1].file_offset, kMmioGapStart);
}

TEST(GuestMemory, RangesOutsideRamAreRefused) {
  auto m = GuestMemory::create(1 << 20);
  ASSERT_TRUE(m.ok()) << m.error().to_string();
  EXPECT_NE(m->ptr(0, 1 << 20), nullptr);
  EXPECT_EQ(m->ptr(1, 1 << 20), nullptr);
  EXPECT_EQ(m->ptr((1 << 20) - 4, 8), nullptr);
  EXPECT_EQ(m->ptr(~0ull - 2, 8), nullptr);  // wraps
  EXPECT_EQ(m->ptr(8, ~0ull), nullptr);
  EXPECT_TRUE(m->write_obj<uint32_t>(0x1000, 0xdeadbeef));
  EXPECT_EQ(m->read_obj<uint32_t>(0x1000), 0xdeadbeefu);
  EXPECT_FALSE(m->read_obj<uint64_t>((1 << 20) - 4).has_value());
}

TEST(GuestMemory, ZeroSizeIsAnError) { EXPECT_FALSE(GuestMemory::create(0).ok()); }

class Reg : public BusDevice {
 public:
  void read(uint64_t offset, uint8_t* data, size_t) override { data[0] = static_cast<uint8_t>(offset); }
  void write(uint64_t offset, const uint8_t* data, size_t) override { last = offset * 256 + data[0]; }
  uint64_t last = 0;
};

TEST(Bus, RoutesByRangeAndRefusesOverlaps) {
  Bus bus;
  auto a = std::make_shared<Reg>();
  ASSERT_TRUE(bus.insert(0x3f8, 8, a, "serial").ok());
  EXPECT_FALSE(bus.insert(0x3f0, 9, a, "x").ok());
  EXPECT_FALSE(bus.insert(0x3ff, 1, a, "y").ok());
  EXPECT_TRUE(bus.insert(0x400, 1, a, "z").ok());
  uint8_t v = 0;
  EXPECT_TRUE(bus.read(0x3fa, &v, 1));
  EXPECT_EQ(v, 2);
  uint8_t w = 7;
  EXPECT_TRUE(bus.write(0x3f9, &w, 1));
  EXPECT_EQ(a->last, 256u + 7);
  EXPECT_FALSE(bus.read(0x3f7, &v, 1));
  EXPECT_EQ(v, 0xff);
}

}  // namespace
}  // namespace strata::vmm
