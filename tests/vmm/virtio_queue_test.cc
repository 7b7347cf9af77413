// The split virtqueue alone: chains, indirect tables, the used ring, interrupt suppression and
// every malformed ring a hostile guest can write.
#include "vmm/devices/virtio/queue.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "vmm/guest_memory.h"

namespace strata::vmm::virtio {
namespace {

constexpr uint64_t kDesc = 0x1000, kAvail = 0x3000, kUsed = 0x4000, kData = 0x10000;
constexpr uint64_t kAll = feature(kFRingEventIdx) | feature(kFRingIndirectDesc);

class VirtioQueue : public ::testing::Test {
 public:
  void SetUp() override {
    auto m = GuestMemory::create(1 << 20);
    ASSERT_TRUE(m.ok());
    mem = std::move(*m);
  }
  Status start(uint16_t size = 8, uint64_t features = kAll) {
    q.size = size;
    q.ready = true;
    q.desc_addr = kDesc;
    q.avail_addr = kAvail;
    q.used_addr = kUsed;
    return q.activate(mem, features);
  }
  void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next = 0, uint64_t table = kDesc) {
    uint64_t at = table + 16ull * i;
    mem.write_obj(at, addr);
    mem.write_obj(at + 8, len);
    mem.write_obj(at + 12, flags);
    mem.write_obj(at + 14, next);
  }
  void publish(uint16_t head) {
    mem.write_obj<uint16_t>(kAvail + 4 + 2ull * (avail_idx % q.size), head);
    mem.write_obj<uint16_t>(kAvail + 2, ++avail_idx);
  }
  std::string pop_error() {
    DescriptorChain c;
    auto r = q.pop(c);
    return r.ok() ? "" : r.error().message();
  }

  GuestMemory mem;
  Queue q{256};
  uint16_t avail_idx = 0;
};

TEST_F(VirtioQueue, ChecksSizeAndAreas) {
  EXPECT_FALSE(start(0).ok());
  EXPECT_FALSE(start(6).ok());
  EXPECT_FALSE(start(512).ok());  // above max
  EXPECT_TRUE(start(256).ok());
  q.desc_addr = (1 << 20) - 16;  // table runs off the end of RAM
  EXPECT_FALSE(q.activate(mem, kAll).ok());
  q.desc_addr = kDesc + 8;  // misaligned
  EXPECT_FALSE(q.activate(mem, kAll).ok());
  q.desc_addr = kDesc;
  q.used_addr = ~0ull - 4;
  EXPECT_FALSE(q.activate(mem, kAll).ok());
  EXPECT_FALSE(q.active());
}

TEST_F(VirtioQueue, NotReadyIsInert) {
  q.ready = false;
  ASSERT_TRUE(q.activate(mem, kAll).ok());
  DescriptorChain c;
  auto r = q.pop(c);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

TEST_F(VirtioQueue, PopsDirectChainsReadableThenWritable) {
  ASSERT_TRUE(start().ok());
  desc(0, kData, 16, kDescFNext, 1);
  desc(1, kData + 0x100, 100, kDescFNext | kDescFWrite, 2);
  desc(2, kData + 0x200, 1, kDescFWrite);
  publish(0);
  DescriptorChain c;
  auto r = q.pop(c);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_TRUE(*r);
  EXPECT_EQ(c.head(), 0);
  ASSERT_EQ(c.buffers().size(), 3u);
  EXPECT_EQ(c.readable_bytes(), 16u);
  EXPECT_EQ(c.writable_bytes(), 101u);
  EXPECT_EQ(c.buffers()[1].host, mem.ptr(kData + 0x100, 1));
  // Streams across buffers.
  uint8_t pattern[101];
  for (int i = 0; i < 101; ++i) pattern[i] = static_cast<uint8_t>(i);
  EXPECT_EQ(c.write(0, pattern, sizeof pattern), 101u);
  EXPECT_EQ(*mem.read_obj<uint8_t>(kData + 0x200), 100);
  std::vector<iovec> iov;
  EXPECT_EQ(c.iovecs(true, 99, 10, iov), 2u);  // clipped at the end
  ASSERT_EQ(iov.size(), 2u);
  EXPECT_EQ(iov[0].iov_len, 1u);
  EXPECT_EQ(iov[1].iov_len, 1u);
  mem.write_obj<uint64_t>(kData + 8, 0x1122334455667788);
  uint64_t v = 0;
  EXPECT_EQ(c.read(8, &v, 8), 8u);
  EXPECT_EQ(v, 0x1122334455667788u);
  EXPECT_EQ(c.read(12, &v, 8), 4u);
  r = q.pop(c);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
}

TEST_F(VirtioQueue, UndoPopGivesTheChainBack) {
  ASSERT_TRUE(start().ok());
  desc(3, kData, 8, kDescFWrite);
  publish(3);
  DescriptorChain c;
  ASSERT_TRUE(*q.pop(c));
  q.undo_pop();
  ASSERT_TRUE(*q.pop(c));
  EXPECT_EQ(c.head(), 3);
}

TEST_F(VirtioQueue, IndirectTables) {
  ASSERT_TRUE(start().ok());
  uint64_t table = kData + 0x1000;
  desc(0, kData, 16, kDescFNext, 1, table);
  desc(1, kData + 0x100, 512, kDescFNext | kDescFWrite, 2, table);
  desc(2, kData + 0x400, 1, kDescFWrite, 0, table);
  desc(5, table, 48, kDescFIndirect | kDescFWrite);  // WRITE on the table descriptor is ignored
  publish(5);
  DescriptorChain c;
  auto r = q.pop(c);
  ASSERT_TRUE(r.ok()) << r.error().message();
  ASSERT_TRUE(*r);
  EXPECT_EQ(c.head(), 5);
  EXPECT_EQ(c.buffers().size(), 3u);
  EXPECT_EQ(c.readable_bytes(), 16u);
  EXPECT_EQ(c.writable_bytes(), 513u);
}

TEST_F(VirtioQueue, DirectDescriptorsThenAnIndirectTable) {
  ASSERT_TRUE(start().ok());
  uint64_t table = kData + 0x1000;
  desc(0, kData + 0x100, 4, kDescFWrite, 0, table);
  desc(0, kData, 16, kDescFNext, 1);
  desc(1, table, 16, kDescFIndirect);
  publish(0);
  DescriptorChain c;
  auto r = q.pop(c);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(c.buffers().size(), 2u);
}

TEST_F(VirtioQueue, HostileRingsAreErrors) {
  struct Case {
    const char* name;
    std::function<void(VirtioQueue&)> write;
    const char* expect;
  };
  uint64_t table = kData + 0x1000;
  std::vector<Case> cases = {
      {"loop", [](VirtioQueue& t) { t.desc(0, kData, 8, kDescFNext, 1); t.desc(1, kData, 8, kDescFNext, 0); t.publish(0); },
       "longer than the queue size"},
      {"self loop", [](VirtioQueue& t) { t.desc(2, kData, 8, kDescFNext, 2); t.publish(2); }, "longer than the queue size"},
      {"next past table", [](VirtioQueue& t) { t.desc(0, kData, 8, kDescFNext, 8); t.publish(0); }, "past the table"},
      {"head past table", [](VirtioQueue& t) { t.publish(9); }, "names descriptor 9"},
      {"address outside RAM", [](VirtioQueue& t) { t.desc(0, 2 << 20, 8, 0); t.publish(0); }, "outside guest memory"},
      {"length past RAM", [](VirtioQueue& t) { t.desc(0, (1 << 20) - 4, 8, 0); t.publish(0); }, "outside guest memory"},
      {"address + length wraps", [](VirtioQueue& t) { t.desc(0, ~0ull - 3, 0xffffffff, 0); t.publish(0); },
       "outside guest memory"},
      {"readable after writable",
       [](VirtioQueue& t) { t.desc(0, kData, 8, kDescFNext | kDescFWrite, 1); t.desc(1, kData, 8, 0); t.publish(0); },
       "device-readable buffer after"},
      {"avail idx jump", [](VirtioQueue& t) { t.mem.write_obj<uint16_t>(kAvail + 2, 9); }, "more than the queue size"},
      {"avail idx far jump", [](VirtioQueue& t) { t.mem.write_obj<uint16_t>(kAvail + 2, 0x8000); }, "more than the queue size"},
      {"nested indirect",
       [table](VirtioQueue& t) { t.desc(0, table, 16, kDescFIndirect, 0, table); t.desc(0, table, 16, kDescFIndirect); t.publish(0); },
       "nested indirect"},
      {"indirect and next", [table](VirtioQueue& t) { t.desc(0, table, 16, kDescFIndirect | kDescFNext, 1); t.publish(0); },
       "both INDIRECT and NEXT"},
      {"indirect length not multiple of 16", [table](VirtioQueue& t) { t.desc(0, table, 20, kDescFIndirect); t.publish(0); },
       "multiple of 16"},
      {"indirect empty", [table](VirtioQueue& t) { t.desc(0, table, 0, kDescFIndirect); t.publish(0); }, "multiple of 16"},
      {"indirect larger than the queue", [table](VirtioQueue& t) { t.desc(0, table, 16 * 9, kDescFIndirect); t.publish(0); },
       "multiple of 16"},
      {"indirect table outside RAM", [](VirtioQueue& t) { t.desc(0, (1 << 20) - 16, 32, kDescFIndirect); t.publish(0); },
       "outside guest memory"},
      {"indirect loop",
       [table](VirtioQueue& t) {
         t.desc(0, kData, 8, kDescFNext, 1, table);
         t.desc(1, kData, 8, kDescFNext, 0, table);
         t.desc(0, table, 32, kDescFIndirect);
         t.publish(0);
       },
       "longer than the queue size"},
      {"indirect next past table",
       [table](VirtioQueue& t) { t.desc(0, kData, 8, kDescFNext, 2, table); t.desc(0, table, 32, kDescFIndirect); t.publish(0); },
       "points past the table"},
  };
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    q.reset();
    avail_idx = 0;
    std::memset(mem.ptr(0, 1 << 20), 0, 1 << 20);
    ASSERT_TRUE(start().ok());
    c.write(*this);
    std::string err = pop_error();
    EXPECT_NE(err.find(c.expect), std::string::npos) << err;
  }
}

TEST_F(VirtioQueue, IndirectNeedsTheFeature) {
  ASSERT_TRUE(start(8, feature(kFRingEventIdx)).ok());
  desc(0, kData + 0x1000, 16, kDescFIndirect);
  publish(0);
  EXPECT_NE(pop_error().find("not negotiated"), std::string::npos);
}

TEST_F(VirtioQueue, UsedRingAndNoInterruptFlag) {
  ASSERT_TRUE(start(8, 0).ok());
  EXPECT_FALSE(q.needs_interrupt());  // nothing added
  desc(0, kData, 8, kDescFWrite);
  publish(0);
  DescriptorChain c;
  ASSERT_TRUE(*q.pop(c));
  ASSERT_TRUE(q.add_used(0, 8).ok());
  EXPECT_EQ(*mem.read_obj<uint16_t>(kUsed + 2), 1);
  EXPECT_EQ(*mem.read_obj<uint32_t>(kUsed + 4), 0u);
  EXPECT_EQ(*mem.read_obj<uint32_t>(kUsed + 8), 8u);
  EXPECT_TRUE(q.needs_interrupt());
  EXPECT_FALSE(q.needs_interrupt());
  mem.write_obj<uint16_t>(kAvail, kAvailFNoInterrupt);
  ASSERT_TRUE(q.add_used(0, 8).ok());
  EXPECT_FALSE(q.needs_interrupt());
  EXPECT_FALSE(q.add_used(8, 0).ok());  // head past the table
}

TEST_F(VirtioQueue, EventIdxSuppression) {
  ASSERT_TRUE(start(8).ok());
  // The driver wants an interrupt once used idx passes 2 (used_event = 2: after the 3rd).
  mem.write_obj<uint16_t>(kAvail + 4 + 2 * 8, 2);
  for (uint16_t i = 0; i < 4; ++i) {
    desc(i, kData, 8, kDescFWrite);
    publish(i);
  }
  DescriptorChain c;
  bool irq[4];
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(*q.pop(c));
    ASSERT_TRUE(q.add_used(c.head(), 1).ok());
    irq[i] = q.needs_interrupt();
  }
  EXPECT_FALSE(irq[0]);
  EXPECT_FALSE(irq[1]);
  EXPECT_TRUE(irq[2]);
  EXPECT_FALSE(irq[3]);
  // Several at once crossing used_event: one interrupt.
  mem.write_obj<uint16_t>(kAvail + 4 + 2 * 8, 5);
  for (uint16_t i = 4; i < 8; ++i) {
    desc(i, kData, 8, kDescFWrite);
    publish(i);
  }
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(*q.pop(c));
    ASSERT_TRUE(q.add_used(c.head(), 1).ok());
  }
  EXPECT_TRUE(q.needs_interrupt());
  // An empty pop publishes avail_event = next_avail: "notify me at the next buffer".
  auto r = q.pop(c);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(*r);
  EXPECT_EQ(*mem.read_obj<uint16_t>(kUsed + 4 + 8 * 8), 8);
}

TEST_F(VirtioQueue, WrapsAroundTheRing) {
  ASSERT_TRUE(start(4).ok());
  DescriptorChain c;
  for (int round = 0; round < 70000; ++round) {  // past the 16-bit index wrap
    desc(static_cast<uint16_t>(round % 4), kData, 8, kDescFWrite);
    publish(static_cast<uint16_t>(round % 4));
    auto r = q.pop(c);
    ASSERT_TRUE(r.ok() && *r) << round;
    ASSERT_TRUE(q.add_used(c.head(), 8).ok());
  }
  EXPECT_EQ(q.next_avail(), static_cast<uint16_t>(70000));
  EXPECT_EQ(*mem.read_obj<uint16_t>(kUsed + 2), static_cast<uint16_t>(70000));
}

TEST_F(VirtioQueue, StateRoundTrips) {
  ASSERT_TRUE(start(8).ok());
  desc(0, kData, 8, kDescFWrite);
  publish(0);
  publish(0);
  DescriptorChain c;
  ASSERT_TRUE(*q.pop(c));
  ASSERT_TRUE(q.add_used(0, 8).ok());
  auto j = q.save_state();
  Queue r(256);
  ASSERT_TRUE(r.restore_state(j).ok());
  EXPECT_FALSE(r.active());
  ASSERT_TRUE(r.activate(mem, kAll).ok());
  EXPECT_EQ(r.next_avail(), 1);
  EXPECT_EQ(r.next_used(), 1);
  auto p = r.pop(c);
  ASSERT_TRUE(p.ok() && *p);
  EXPECT_FALSE(r.restore_state(nlohmann::json{{"size", "x"}}).ok());
}

}  // namespace
}  // namespace strata::vmm::virtio
