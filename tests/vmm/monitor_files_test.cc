// The host paths strata-vmm's API takes, through the code that uses them (issue 10, item 8):
// PUT /logger, /metrics, /boot-source, /drives, /snapshot/load, PATCH /drives and the kernel
// loader, each given a FIFO or a device. None needs /dev/kvm: every refusal comes before a VM.
// A call that blocks is a failure here, not a hung test: each runs on a helper thread, and when
// it has not returned in time the FIFO's other end is opened to release it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>

#include "base/log.h"
#include "vmm/boot/boot.h"
#include "vmm/devices/virtio/blk.h"
#include "vmm/guest_memory.h"
#include "vmm/logger.h"
#include "vmm/monitor.h"

namespace strata::vmm {
namespace {

namespace stdfs = std::filesystem;
using namespace std::chrono_literals;

class MonitorFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-monitor-files-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fifo_ = dir_ + "/fifo";
    ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
    file_ = dir_ + "/file";
    std::ofstream(file_) << std::string(4096, 'd');
  }
  void TearDown() override {
    (void)configure_log("", false);  // back to stderr for the tests that follow
    stdfs::remove_all(dir_);
  }

  // Runs fn on a helper thread and returns its result, or fails the test if it has not returned
  // within 5 s (it is blocked on the FIFO: opening its other end releases it).
  template <class F>
  auto returns_in_time(F fn) -> decltype(fn()) {
    auto f = std::async(std::launch::async, std::move(fn));
    if (f.wait_for(5s) != std::future_status::ready) {
      ADD_FAILURE() << "blocked for 5 s (on the FIFO " << fifo_ << ")";
      UniqueFd release(::open(fifo_.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
      f.wait();
    }
    return f.get();
  }
  // A sparse file of `size` bytes (zeros, taking no space).
  std::string sparse_file(const std::string& name, off_t size) {
    std::string path = dir_ + "/" + name;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    EXPECT_TRUE(fd && ::ftruncate(fd.get(), size) == 0);
    return path;
  }
  // What is waiting in the FIFO, without blocking.
  std::string drain_fifo() {
    UniqueFd fd(::open(fifo_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
    std::string out;
    char buf[65536];
    ssize_t n;
    while (fd && (n = ::read(fd.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

  std::string dir_, fifo_, file_;
  Monitor mon_{STDOUT_FILENO, STDIN_FILENO};
};

TEST_F(MonitorFiles, PutLoggerWithAFifoNobodyReads) {
  api::Logger l;
  l.log_path = fifo_;
  Status st = returns_in_time([&] { return mon_.configure_logger(l); });
  ASSERT_TRUE(st.ok()) << st.error().to_string();
  log::get("vmm")->warn("monitor-files probe line");
  EXPECT_NE(drain_fifo().find("warning vmm: monitor-files probe line"), std::string::npos);
  // Nobody reads: the lines that do not fit are dropped and counted, the logging thread never waits.
  uint64_t missed = missed_log_lines();
  returns_in_time([&] {
    for (int i = 0; i < 2000; ++i) log::get("vmm")->warn("filler {} {}", i, std::string(100, 'f'));
    return 0;
  });
  EXPECT_GT(missed_log_lines(), missed);
  // A bad path changes nothing.
  l.log_path = dir_;
  EXPECT_FALSE(mon_.configure_logger(l).ok());
}

TEST_F(MonitorFiles, PutMetricsWithAFifoNobodyReads) {
  Status st = returns_in_time([&] { return mon_.configure_metrics({fifo_}); });
  ASSERT_TRUE(st.ok()) << st.error().to_string();  // was ENXIO: opened write-only with no reader
  ASSERT_TRUE(mon_.flush_metrics().ok());
  std::string line = drain_fifo();
  EXPECT_NE(line.find("\"utc_timestamp_ms\""), std::string::npos) << line;
  EXPECT_NE(line.find("\"missed_log_count\""), std::string::npos) << line;
  // Full: a flush fails, saying so, and never waits.
  Status flush = ok();
  for (int i = 0; i < 100000 && (flush = mon_.flush_metrics()).ok(); ++i) {
  }
  ASSERT_FALSE(flush.ok());
  EXPECT_NE(flush.error().message().find("nobody reads it"), std::string::npos) << flush.error().message();
}

TEST_F(MonitorFiles, BootSourceAndDrivesMustBeRegularFiles) {
  api::BootSource b;
  b.kernel_image_path = fifo_;
  Status st = returns_in_time([&] { return mon_.check_boot_source(b); });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(),
            "The kernel file cannot be opened: kernel " + fifo_ + ": not a regular file (a FIFO)");
  b.kernel_image_path = "/dev/zero";
  st = mon_.check_boot_source(b);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().message().find("(a character device)"), std::string::npos);

  api::Drive d;
  d.drive_id = "d";
  d.path_on_host = fifo_;
  for (bool ro : {true, false}) {
    d.is_read_only = ro;
    st = returns_in_time([&] { return mon_.check_drive(d); });
    ASSERT_FALSE(st.ok()) << "a FIFO accepted as a drive (read-only: " << ro << ")";
    EXPECT_NE(st.error().message().find("not a regular file or a block device (a FIFO)"), std::string::npos);
  }
  d.path_on_host = file_;
  EXPECT_TRUE(mon_.check_drive(d).ok());
}

TEST_F(MonitorFiles, SnapshotLoadReadsOnlyABoundedRegularFile) {
  api::SnapshotLoad l;
  l.mem_file_path = file_;
  l.snapshot_path = fifo_;
  auto r = returns_in_time([&] { return mon_.snapshot_load(l); });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not a regular file (a FIFO)"), std::string::npos)
      << r.error().message();
  l.snapshot_path = "/dev/zero";  // was read until bad_alloc
  r = returns_in_time([&] { return mon_.snapshot_load(l); });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not a regular file (a character device)"), std::string::npos);
  l.snapshot_path = sparse_file("huge.json", 1ll << 30);
  r = returns_in_time([&] { return mon_.snapshot_load(l); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().err(), EFBIG) << r.error().to_string();
  EXPECT_EQ(mon_.state(), api::InstanceState::kNotStarted);
}

TEST_F(MonitorFiles, SnapshotMemoryFileMustBeARegularFile) {
  auto m = returns_in_time([&] { return GuestMemory::map_file(fifo_, 1 << 20); });
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.error().message(), "guest memory file " + fifo_ + ": not a regular file (a FIFO)");
  m = GuestMemory::map_file("/dev/zero", 1 << 20);
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().message().find("(a character device)"), std::string::npos);
}

TEST_F(MonitorFiles, DriveImagesOpenedAtStartOrPatchMustBeFilesOrBlockDevices) {
  // The path was checked at PUT time; by InstanceStart (or a PATCH) it may be a FIFO.
  auto d = returns_in_time(
      [&] { return virtio::BlockDevice::create({.id = "d", .path = fifo_, .read_only = true}); });
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.error().message().find("not a regular file or a block device (a FIFO)"), std::string::npos);
  auto good = virtio::BlockDevice::create({.id = "d", .path = file_, .read_only = true});
  ASSERT_TRUE(good.ok()) << good.error().to_string();
  Status st = returns_in_time([&] { return (*good)->update_backing(fifo_); });
  ASSERT_FALSE(st.ok());
  EXPECT_EQ((*good)->config().path, file_) << "a refused PATCH keeps the old backing file";
}

TEST_F(MonitorFiles, KernelReadIsCappedByGuestMemory) {
  auto mem = GuestMemory::create(16 << 20);
  ASSERT_TRUE(mem.ok()) << mem.error().to_string();
  std::string big = sparse_file("vmlinux", 1ll << 30);
  auto k = load_kernel(*mem, {big, "", ""});
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.error().err(), EFBIG) << k.error().to_string();
  EXPECT_NE(k.error().message().find("larger than 16777216 bytes"), std::string::npos) << k.error().message();
  k = returns_in_time([&] { return load_kernel(*mem, {fifo_, "", ""}); });
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.error().message().find("not a regular file (a FIFO)"), std::string::npos);
}

}  // namespace
}  // namespace strata::vmm
