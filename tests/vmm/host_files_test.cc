// The opening rules for host paths named by strata-vmm's clients (host_files.h), and the log
// rate limiter: FIFOs, devices, directories and sockets where a file is expected, without root.
#include "vmm/host_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "vmm/log_rate_limiter.h"

namespace strata::vmm {
namespace {

namespace stdfs = std::filesystem;

class HostFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-host-files-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fifo_ = dir_ + "/fifo";
    ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
    file_ = dir_ + "/file";
    std::ofstream(file_) << "content";
  }
  void TearDown() override { stdfs::remove_all(dir_); }

  std::string read(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  std::vector<std::string> names() {
    std::vector<std::string> out;
    for (const auto& e : stdfs::directory_iterator(dir_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

  std::string dir_, fifo_, file_;
};

// Every open below returns at once: a FIFO with no writer (or reader) would otherwise block the
// test forever, so a regression shows as a hang of this test.

TEST_F(HostFiles, RegularFilesOnlyForInputs) {
  auto ok = open_regular_file(file_, "kernel");
  ASSERT_TRUE(ok.ok()) << ok.error().to_string();
  EXPECT_EQ(::fcntl(ok->get(), F_GETFL) & O_NONBLOCK, 0) << "a regular file is handed back in blocking mode";

  auto fifo = open_regular_file(fifo_, "kernel");
  ASSERT_FALSE(fifo.ok());
  EXPECT_EQ(fifo.error().message(), "kernel " + fifo_ + ": not a regular file (a FIFO)");
  auto zero = open_regular_file("/dev/zero", "snapshot state file");
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.error().message(), "snapshot state file /dev/zero: not a regular file (a character device)");
  auto dir = open_regular_file(dir_, "initrd");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().message(), "initrd " + dir_ + ": not a regular file (a directory)");
  auto missing = open_regular_file(dir_ + "/missing", "kernel");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().err(), ENOENT);
  EXPECT_EQ(missing.error().message(), "open kernel " + dir_ + "/missing");
}

TEST_F(HostFiles, DiskImagesAreRegularFilesOrBlockDevices) {
  EXPECT_TRUE(open_disk_image(file_, true, "drive").ok());
  EXPECT_TRUE(open_disk_image(file_, false, "drive").ok());
  for (bool ro : {true, false}) {
    auto fifo = open_disk_image(fifo_, ro, "drive file");
    ASSERT_FALSE(fifo.ok());
    EXPECT_EQ(fifo.error().message(),
              "drive file " + fifo_ + ": not a regular file or a block device (a FIFO)");
  }
  auto null = open_disk_image("/dev/null", true, "drive file");
  ASSERT_FALSE(null.ok());
  EXPECT_NE(null.error().message().find("(a character device)"), std::string::npos);
}

TEST_F(HostFiles, OutputsTakeFifosWithoutAReaderAndNeverBlock) {
  // A FIFO nobody reads: opened at once (O_RDWR), and once full, writes fail instead of waiting.
  auto fifo = open_output(fifo_, "log file");
  ASSERT_TRUE(fifo.ok()) << fifo.error().to_string();
  std::string line(1000, 'x');
  line += '\n';
  Status st = ok();
  int written = 0;
  while ((st = write_line(fifo->get(), line, "the log")).ok() && written < 10000) ++written;
  ASSERT_FALSE(st.ok()) << "a FIFO nobody reads took 10 MB";
  EXPECT_EQ(st.error().err(), EAGAIN);
  EXPECT_NE(st.error().message().find("nobody reads it"), std::string::npos) << st.error().message();
  EXPECT_GT(written, 10);

  // A regular file is created, then appended to.
  std::string log = dir_ + "/new.log";
  {
    auto f = open_output(log, "log file");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(write_line(f->get(), "one\n", "the log").ok());
  }
  {
    auto f = open_output(log, "log file");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(write_line(f->get(), "two\n", "the log").ok());
  }
  EXPECT_EQ(read(log), "one\ntwo\n");
  EXPECT_TRUE(open_output("/dev/null", "metrics file").ok());

  // A directory, a unix socket: refused, naming what they are.
  auto dir = open_output(dir_, "metrics file");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().err(), EISDIR);
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::string sock = dir_ + "/s";
  sock.copy(a.sun_path, sizeof a.sun_path - 1);
  ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  auto so = open_output(sock, "log file");
  ASSERT_FALSE(so.ok());
  EXPECT_EQ(so.error().message(), "log file " + sock + ": not a regular file (a socket)");
}

TEST_F(HostFiles, NewFileReplacesOnlyRegularFiles) {
  {
    auto f = NewFile::create(file_, "memory file");
    ASSERT_TRUE(f.ok()) << f.error().to_string();
    ASSERT_TRUE(f->write("snapshot").ok());
    EXPECT_EQ(read(file_), "content") << "the target is untouched until commit";
    ASSERT_TRUE(f->commit().ok());
  }
  EXPECT_EQ(read(file_), "snapshot");
  struct stat st {};
  ASSERT_EQ(::stat(file_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(names(), (std::vector<std::string>{"fifo", "file"})) << "no temporary left";

  // Not committed (a failed snapshot): nothing is left behind, the target is unchanged.
  {
    auto f = NewFile::create(dir_ + "/new", "memory file");
    ASSERT_TRUE(f.ok());
    ASSERT_TRUE(f->write("half").ok());
  }
  EXPECT_EQ(names(), (std::vector<std::string>{"fifo", "file"}));

  // A FIFO or a directory at the target is refused before anything is made (rename(2) would
  // replace a device node or a FIFO with the snapshot).
  auto fifo = NewFile::create(fifo_, "memory file");
  ASSERT_FALSE(fifo.ok());
  EXPECT_EQ(fifo.error().message(), "memory file " + fifo_ + ": exists and is not a regular file (a FIFO)");
  EXPECT_FALSE(NewFile::create(dir_, "snapshot state file").ok());
  EXPECT_FALSE(NewFile::create("/dev/null", "memory file").ok());
  EXPECT_EQ(names(), (std::vector<std::string>{"fifo", "file"}));

  // A FIFO planted where the old code put its temporary ("<path>.tmp") is never opened.
  ASSERT_EQ(::mkfifo((dir_ + "/snap.tmp").c_str(), 0600), 0);
  auto planted = NewFile::create(dir_ + "/snap", "memory file");
  ASSERT_TRUE(planted.ok());
  ASSERT_TRUE(planted->commit().ok());

  // A symlink is replaced, never written through.
  ASSERT_EQ(::symlink(file_.c_str(), (dir_ + "/link").c_str()), 0);
  auto link = NewFile::create(dir_ + "/link", "memory file");
  ASSERT_TRUE(link.ok());
  ASSERT_TRUE(link->write("new").ok());
  ASSERT_TRUE(link->commit().ok());
  EXPECT_EQ(read(file_), "snapshot");
  EXPECT_EQ(read(dir_ + "/link"), "new");
}

TEST(LogRateLimiter, BurstThenRefillCountingWhatItSuppressed) {
  using namespace std::chrono_literals;
  LogRateLimiter l(3, 1s);
  auto t = LogRateLimiter::Clock::now();
  uint64_t suppressed = 99;
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(l.allow(t, &suppressed));
    EXPECT_EQ(suppressed, 0u);
  }
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(l.allow(t + 10ms));
  // A third of the period gives back one line, which reports the 100 left out.
  EXPECT_TRUE(l.allow(t + 10ms + 340ms, &suppressed));
  EXPECT_EQ(suppressed, 100u);
  EXPECT_FALSE(l.allow(t + 360ms));
  // A long quiet time refills to the burst, not beyond.
  auto later = t + 1h;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.allow(later, &suppressed));
  EXPECT_FALSE(l.allow(later));
}

}  // namespace
}  // namespace strata::vmm
