// virtio-blk against a temporary image, driven through the MMIO transport like Linux does.
#include "vmm/devices/virtio/blk.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "virtio_fake_driver.h"

namespace strata::vmm::virtio {
namespace {

using testing::FakeDriver;
using testing::Seg;

struct Header {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

class VirtioBlk : public ::testing::Test {
 protected:
  void SetUp() override { path_ = make_image(64); }
  void TearDown() override {
    for (auto& p : files_) ::unlink(p.c_str());
  }
  // An image of `sectors` sectors, sector i filled with byte i.
  std::string make_image(uint64_t sectors, size_t extra = 0) {
    char tmpl[] = "/tmp/strata-virtio-blk-XXXXXX";
    int fd = ::mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    for (uint64_t s = 0; s < sectors; ++s) {
      std::vector<uint8_t> sec(512, static_cast<uint8_t>(s));
      EXPECT_EQ(::write(fd, sec.data(), sec.size()), 512);
    }
    std::vector<uint8_t> tail(extra, 0xee);
    if (extra) {
      EXPECT_EQ(::write(fd, tail.data(), extra), static_cast<ssize_t>(extra));
    }
    ::close(fd);
    files_.push_back(tmpl);
    return tmpl;
  }
  std::shared_ptr<BlockDevice> device(bool read_only = false, std::string serial = "") {
    auto d = BlockDevice::create({.id = "rootfs", .path = path_, .read_only = read_only, .serial = std::move(serial)});
    EXPECT_TRUE(d.ok()) << d.error().to_string();
    return *d;
  }
  std::vector<uint8_t> file_sector(uint64_t s) {
    std::vector<uint8_t> v(512);
    int fd = ::open(path_.c_str(), O_RDONLY);
    EXPECT_EQ(::pread(fd, v.data(), 512, static_cast<off_t>(s * 512)), 512);
    ::close(fd);
    return v;
  }

  // Submits one request as Linux lays it out (header, data, status) and returns the status.
  struct Done {
    uint8_t status;
    uint32_t used_len;
    uint64_t data;  // gpa of the data buffer
  };
  Done request(FakeDriver& d, uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable,
               const std::vector<uint8_t>& out = {}, bool indirect = false) {
    Header h{type, 0, sector};
    uint64_t hdr = d.alloc_bytes(&h, sizeof h);
    uint64_t data = d.alloc(data_len ? data_len : 1);
    if (!out.empty()) d.mem.write(data, out.data(), out.size());
    uint64_t status = d.alloc(1);
    d.mem.write_obj<uint8_t>(status, 0xaa);
    std::vector<Seg> segs{{hdr, sizeof h, false}};
    if (data_len) segs.push_back({data, data_len, data_writable});
    segs.push_back({status, 1, true});
    uint16_t before = d.used_idx(0);
    if (indirect)
      d.add_indirect_chain(0, segs);
    else
      d.add_chain(0, segs);
    d.kick(0);
    EXPECT_EQ(d.used_idx(0), before + 1);
    return {*d.mem.read_obj<uint8_t>(status), d.used(0, before).len, data};
  }

  std::string path_;
  std::vector<std::string> files_;
};

TEST_F(VirtioBlk, ConfigAndFeatures) {
  auto blk = device();
  FakeDriver d(blk);
  uint64_t cap = 0;
  d.transport->read(mmio::kConfig, reinterpret_cast<uint8_t*>(&cap), 8);
  EXPECT_EQ(cap, 64u);
  uint32_t seg_max = 0;
  d.transport->read(mmio::kConfig + 12, reinterpret_cast<uint8_t*>(&seg_max), 4);
  EXPECT_EQ(seg_max, 254u);
  uint64_t f = d.device_features();
  EXPECT_TRUE(f & feature(kBlkFFlush));
  EXPECT_FALSE(f & feature(kBlkFRo));
  EXPECT_TRUE(f & feature(kFVersion1));
  EXPECT_EQ(d.rd(mmio::kDeviceId), 2u);
  EXPECT_EQ(blk->name(), "virtio-blk rootfs");

  FakeDriver r(device(true));
  EXPECT_TRUE(r.device_features() & feature(kBlkFRo));
}

TEST_F(VirtioBlk, CapacityRoundsDownToSectors) {
  path_ = make_image(3, 100);
  EXPECT_EQ(device()->capacity_sectors(), 3u);
}

TEST_F(VirtioBlk, ReadsSectors) {
  FakeDriver d(device());
  ASSERT_TRUE(d.start());
  auto r = request(d, kBlkTIn, 5, 1024, true);
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 1025u);
  auto got = d.bytes(r.data, 1024);
  EXPECT_EQ(got[0], 5);
  EXPECT_EQ(got[511], 5);
  EXPECT_EQ(got[512], 6);
  EXPECT_GT(d.irq->count.load(), 0u);
}

TEST_F(VirtioBlk, ReadsThroughIndirectScatterLists) {
  FakeDriver d(device());
  ASSERT_TRUE(d.start());
  Header h{kBlkTIn, 0, 10};
  uint64_t hdr = d.alloc_bytes(&h, sizeof h);
  uint64_t a = d.alloc(100), b = d.alloc(412 + 512), st = d.alloc(1);
  d.add_indirect_chain(0, {{hdr, 16, false}, {a, 100, true}, {b, 924, true}, {st, 1, true}});
  d.kick(0);
  ASSERT_EQ(d.used_idx(0), 1);
  EXPECT_EQ(*d.mem.read_obj<uint8_t>(st), kBlkSOk);
  EXPECT_EQ(d.bytes(a, 1)[0], 10);
  EXPECT_EQ(d.bytes(b + 411, 1)[0], 10);
  EXPECT_EQ(d.bytes(b + 412, 1)[0], 11);
}

TEST_F(VirtioBlk, HeaderAndStatusMaySplitAnywhere) {
  // ANY_LAYOUT: the header in two pieces, the data and status in one writable buffer.
  FakeDriver d(device());
  ASSERT_TRUE(d.start());
  Header h{kBlkTIn, 0, 2};
  uint64_t hdr = d.alloc_bytes(&h, sizeof h);
  uint64_t buf = d.alloc(513);
  d.add_chain(0, {{hdr, 4, false}, {hdr + 4, 12, false}, {buf, 513, true}});
  d.kick(0);
  EXPECT_EQ(d.bytes(buf + 511, 1)[0], 2);
  EXPECT_EQ(d.bytes(buf + 512, 1)[0], kBlkSOk);
  EXPECT_EQ(d.used(0, 0).len, 513u);
}

TEST_F(VirtioBlk, WritesSectors) {
  FakeDriver d(device());
  ASSERT_TRUE(d.start());
  std::vector<uint8_t> data(1024, 0x5a);
  auto r = request(d, kBlkTOut, 7, 1024, false, data);
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 1u);
  EXPECT_EQ(file_sector(7), std::vector<uint8_t>(512, 0x5a));
  EXPECT_EQ(file_sector(8), std::vector<uint8_t>(512, 0x5a));
  EXPECT_EQ(file_sector(9), std::vector<uint8_t>(512, 9));
  // And reads it back.
  auto back = request(d, kBlkTIn, 8, 512, true);
  EXPECT_EQ(d.bytes(back.data, 512), std::vector<uint8_t>(512, 0x5a));
}

TEST_F(VirtioBlk, ReadOnlyRefusesWrites) {
  FakeDriver d(device(true));
  ASSERT_TRUE(d.start());
  auto r = request(d, kBlkTOut, 1, 512, false, std::vector<uint8_t>(512, 0x77));
  EXPECT_EQ(r.status, kBlkSIoErr);
  EXPECT_EQ(file_sector(1), std::vector<uint8_t>(512, 1));
  EXPECT_EQ(request(d, kBlkTIn, 1, 512, true).status, kBlkSOk);
  EXPECT_EQ(request(d, kBlkTFlush, 0, 0, false).status, kBlkSOk);
  EXPECT_FALSE(d.needs_reset());
}

TEST_F(VirtioBlk, OutOfRangeIsAnIoError) {
  FakeDriver d(device());
  ASSERT_TRUE(d.start());
  EXPECT_EQ(request(d, kBlkTIn, 63, 512, true).status, kBlkSOk);
  EXPECT_EQ(request(d, kBlkTIn, 63, 1024, true).status, kBlkSIoErr);
  EXPECT_EQ(request(d, kBlkTIn, 64, 512, true).status, kBlkSIoErr);
  EXPECT_EQ(request(d, kBlkTIn, ~0ull, 512, true).status, kBlkSIoErr);
  EXPECT_EQ(request(d, kBlkTIn, (~0ull) / 512, 512, true).status, kBlkSIoErr);
  EXPECT_EQ(request(d, kBlkTOut, 64, 512, false, std::vector<uint8_t>(512, 1)).status, kBlkSIoErr);
  EXPECT_EQ(request(d, kBlkTIn, 0, 100, true).status, kBlkSIoErr);  // not whole sectors
  struct stat st;
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 64 * 512);  // nothing written past the end
  EXPECT_FALSE(d.needs_reset());
}

TEST_F(VirtioBlk, FlushAndGetId) {
  FakeDriver d(device(false, "serial-0123456789"));
  ASSERT_TRUE(d.start());
  EXPECT_EQ(request(d, kBlkTFlush, 0, 0, false).status, kBlkSOk);
  auto r = request(d, kBlkTGetId, 0, 20, true);
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(r.used_len, 21u);
  auto id = d.bytes(r.data, 20);
  EXPECT_EQ(std::string(id.begin(), id.begin() + 17), "serial-0123456789");
  EXPECT_EQ(id[17], 0);
  EXPECT_EQ(id[19], 0);
  // The drive id by default.
  FakeDriver d2(device());
  ASSERT_TRUE(d2.start());
  auto r2 = request(d2, kBlkTGetId, 0, 20, true);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(d2.bytes(r2.data, 6).data()), 6), "rootfs");
  EXPECT_FALSE(BlockDevice::create({.id = "x", .path = path_, .serial = std::string(21, 'a')}).ok());
}

TEST_F(VirtioBlk, UnsupportedTypes) {
  FakeDriver d(device());
  ASSERT_TRUE(d.start());
  EXPECT_EQ(request(d, 11 /* DISCARD */, 0, 16, false, std::vector<uint8_t>(16)).status, kBlkSUnsupp);
  EXPECT_EQ(request(d, 0xdead, 0, 0, false).status, kBlkSUnsupp);
  EXPECT_FALSE(d.needs_reset());
}

TEST_F(VirtioBlk, MalformedRequestsFailTheDevice) {
  {
    FakeDriver d(device());
    ASSERT_TRUE(d.start());
    uint64_t hdr = d.alloc(16);
    d.add_chain(0, {{hdr, 8, false}, {d.alloc(1), 1, true}});  // header too short
    d.kick(0);
    EXPECT_TRUE(d.needs_reset());
    EXPECT_NE(d.rd(mmio::kInterruptStatus) & mmio::kInterruptConfigChange, 0u);
  }
  {
    FakeDriver d(device());
    ASSERT_TRUE(d.start());
    Header h{kBlkTOut, 0, 0};
    d.add_chain(0, {{d.alloc_bytes(&h, 16), 16, false}, {d.alloc(512), 512, false}});  // no status byte
    d.kick(0);
    EXPECT_TRUE(d.needs_reset());
    EXPECT_EQ(file_sector(0), std::vector<uint8_t>(512, 0));
  }
}

TEST_F(VirtioBlk, UpdateBackingChangesCapacity) {
  auto blk = device();
  FakeDriver d(blk);
  ASSERT_TRUE(d.start());
  uint32_t gen = d.rd(mmio::kConfigGeneration);
  uint64_t irqs = d.irq->count.load();
  std::string bigger = make_image(128);
  ASSERT_TRUE(blk->update_backing(bigger).ok());
  EXPECT_NE(d.rd(mmio::kConfigGeneration), gen);
  EXPECT_EQ(d.irq->count.load(), irqs + 1);
  EXPECT_NE(d.rd(mmio::kInterruptStatus) & mmio::kInterruptConfigChange, 0u);
  uint64_t cap = 0;
  d.transport->read(mmio::kConfig, reinterpret_cast<uint8_t*>(&cap), 8);
  EXPECT_EQ(cap, 128u);
  auto r = request(d, kBlkTIn, 100, 512, true);
  EXPECT_EQ(r.status, kBlkSOk);
  EXPECT_EQ(d.bytes(r.data, 1)[0], 100);
  EXPECT_FALSE(blk->update_backing("/nonexistent/strata-image").ok());
  EXPECT_EQ(blk->capacity_sectors(), 128u);
  EXPECT_FALSE(BlockDevice::create({.id = "missing", .path = "/nonexistent/strata-image"}).ok());
}

}  // namespace
}  // namespace strata::vmm::virtio
