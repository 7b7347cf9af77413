// Layer unpacking without privileges beyond a process: archives are built here with
// libarchive's writer; the integration tests cover ownership, devices and overlay mounts.
#include "image/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "base/digest.h"
#include "base/fd.h"
#include "base/fs.h"
#include "image/manifest.h"

namespace strata::image {
namespace {

struct TarEntry {
  std::string path;
  mode_t type = AE_IFREG;
  std::string data;
  mode_t mode = 0644;
  std::string link;  // symlink target, or hardlink target when hardlink is set
  bool hardlink = false;
  int64_t mtime = 1000000;
  std::vector<std::pair<std::string, std::string>> xattrs;
  dev_t rdev = 0;
};

TarEntry file(std::string path, std::string data, mode_t mode = 0644) {
  return TarEntry{.path = std::move(path), .data = std::move(data), .mode = mode};
}
TarEntry dir(std::string path, mode_t mode = 0755) {
  return TarEntry{.path = std::move(path), .type = AE_IFDIR, .mode = mode};
}
TarEntry symlink_to(std::string path, std::string target) {
  return TarEntry{.path = std::move(path), .type = AE_IFLNK, .mode = 0777, .link = std::move(target)};
}
TarEntry hardlink_to(std::string path, std::string target) {
  return TarEntry{.path = std::move(path), .link = std::move(target), .hardlink = true};
}

la_ssize_t append_cb(archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

std::string make_tar(const std::vector<TarEntry>& entries, Compression c = Compression::kNone) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (c == Compression::kGzip) archive_write_add_filter_gzip(a);
  if (c == Compression::kZstd) archive_write_add_filter_zstd(a);
  archive_write_set_bytes_in_last_block(a, 1);
  EXPECT_EQ(archive_write_open(a, &out, nullptr, append_cb, nullptr), ARCHIVE_OK);
  for (const auto& t : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.path.c_str());
    archive_entry_set_mtime(e, t.mtime, 0);
    if (t.hardlink) {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_hardlink(e, t.link.c_str());
    } else {
      archive_entry_set_filetype(e, t.type);
      if (t.type == AE_IFLNK) archive_entry_set_symlink(e, t.link.c_str());
      if (t.type == AE_IFREG) archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
      if (t.type == AE_IFCHR || t.type == AE_IFBLK) archive_entry_set_rdev(e, t.rdev);
    }
    archive_entry_set_perm(e, t.mode);
    for (const auto& [k, v] : t.xattrs) archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    EXPECT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    if (!t.data.empty() && !t.hardlink) archive_write_data(a, t.data.data(), t.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// One tar header block (ustar) for `name` with `size` bytes of content following.
std::string ustar_header(std::string_view name, char typeflag, size_t size) {
  std::string h(512, '\0');
  auto put = [&](size_t off, std::string_view v) { h.replace(off, v.size(), v); };
  char num[16];
  put(0, name.substr(0, 99));
  put(100, "0000644");
  put(108, "0000000");
  put(116, "0000000");
  snprintf(num, sizeof(num), "%011zo", size);
  put(124, num);
  put(136, "00000000000");
  h[156] = typeflag;
  put(257, "ustar");
  put(263, "00");
  put(148, "        ");
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  snprintf(num, sizeof(num), "%06o", sum);
  put(148, num);
  h[154] = '\0';
  h[155] = ' ';
  return h;
}

std::string padded(std::string data) {
  data.resize((data.size() + 511) / 512 * 512, '\0');
  return data;
}

// A regular file whose name is carried in a PAX "path" record, as Go's archive/tar (docker,
// buildah) writes every non-ASCII name: UTF-8 bytes, no hdrcharset.
std::string pax_file(const std::string& name, const std::string& data) {
  std::string record = " path=" + name + "\n";
  size_t len = record.size() + 2;
  if (std::to_string(len).size() + record.size() != len) ++len;
  record = std::to_string(len) + record;
  return ustar_header("PaxHeaders/x", 'x', record.size()) + padded(record) +
         ustar_header("placeholder", '0', data.size()) + padded(data);
}

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/strata-unpack-test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    top_ = tmpl;
    dest_ = top_ + "/layer";
    outside_ = top_ + "/outside";
    ASSERT_EQ(mkdir(dest_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(outside_.c_str(), 0755), 0);
    ASSERT_TRUE(fs::write_file_atomic(outside_ + "/canary", "canary").ok());
  }
  void TearDown() override { ASSERT_TRUE(fs::remove_tree(top_).ok()); }

  // Unpacks into a fresh, empty dest_.
  Result<UnpackStats> unpack(const std::string& bytes, UnpackOptions opts = unprivileged()) {
    EXPECT_TRUE(fs::remove_tree(dest_).ok());
    EXPECT_EQ(mkdir(dest_.c_str(), 0755), 0);
    std::string blob = top_ + "/blob";
    EXPECT_TRUE(fs::write_file_atomic(blob, bytes).ok());
    UniqueFd fd(open(blob.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid());
    return unpack_layer(fd.get(), dest_, opts);
  }
  static UnpackOptions unprivileged() {
    UnpackOptions o;
    o.allow_devices = false;
    o.preserve_owner = false;
    o.userxattr = true;
    return o;
  }
  // The outside directory holds exactly the canary, unchanged.
  void expect_outside_untouched() {
    EXPECT_EQ(fs::list_dir(outside_), std::vector<std::string>{"canary"});
    auto c = fs::read_file(outside_ + "/canary");
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(*c, "canary");
    std::vector<std::string> top = fs::list_dir(top_);
    for (const auto& n : top) EXPECT_TRUE(n == "layer" || n == "outside" || n == "blob") << n;
  }
  void expect_refused(const std::vector<TarEntry>& entries, const std::string& message) {
    auto r = unpack(make_tar(entries));
    ASSERT_FALSE(r.ok()) << "unpacked " << r->entries << " entries";
    EXPECT_NE(r.error().message().find(message), std::string::npos) << r.error().message();
    expect_outside_untouched();
  }
  struct stat lstat_of(const std::string& rel) {
    struct stat st {};
    EXPECT_EQ(::lstat((dest_ + "/" + rel).c_str(), &st), 0) << rel;
    return st;
  }
  std::string read(const std::string& rel) {
    auto r = fs::read_file(dest_ + "/" + rel);
    return r.ok() ? *r : "<" + r.error().message() + ">";
  }
  std::optional<std::string> xattr(const std::string& rel, const char* name) {
    char buf[256];
    ssize_t n = lgetxattr((dest_ + "/" + rel).c_str(), name, buf, sizeof(buf));
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }

  std::string top_, dest_, outside_;
};

std::vector<TarEntry> sample_layer() {
  std::string big(3 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + (i * 7919) % 26);
  return {dir("./"),
          dir("./etc/"),
          file("./etc/hosts", "127.0.0.1 localhost\n"),
          dir("usr/bin/", 0755),
          file("usr/bin/big", big, 0755),
          file("empty", "")};
}

TEST_F(UnpackTest, PlainGzipAndZstdAreDetected) {
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(static_cast<int>(c));
    std::vector<TarEntry> entries = sample_layer();
    auto r = unpack(make_tar(entries, c));
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->entries, 6u);
    EXPECT_EQ(r->bytes, entries[4].data.size() + entries[2].data.size());
    EXPECT_EQ(read("etc/hosts"), "127.0.0.1 localhost\n");
    EXPECT_EQ(read("usr/bin/big"), entries[4].data);
    EXPECT_EQ(read("empty"), "");
    EXPECT_EQ(lstat_of("usr/bin/big").st_mode & 07777, 0755u);
    EXPECT_EQ(lstat_of("usr").st_mode & 07777, 0755u) << "implicit parent";
  }
}

TEST_F(UnpackTest, LinksModesAndTimes) {
  TarEntry sticky = dir("tmp/", 01777);
  sticky.mtime = 111;
  TarEntry ro = dir("ro/", 0555);
  ro.mtime = 222;
  TarEntry inner = file("ro/inner", "x", 0400);
  inner.mtime = 333;
  TarEntry suid = file("bin/su", "#!", 04755);
  TarEntry sgid = file("bin/wall", "#!", 02755);
  TarEntry link = symlink_to("bin/sh", "/bin/busybox");
  link.mtime = 444;
  TarEntry dangling = symlink_to("lib", "../../../nowhere");
  auto r = unpack(make_tar({sticky, ro, inner, file("bin/busybox", "elf", 0755), suid, sgid, link, dangling,
                            hardlink_to("bin/ls", "bin/busybox"), hardlink_to("bin/sh2", "bin/sh")}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(lstat_of("tmp").st_mode & 07777, 01777u);
  EXPECT_EQ(lstat_of("tmp").st_mtime, 111);
  EXPECT_EQ(lstat_of("ro").st_mode & 07777, 0555u);
  EXPECT_EQ(lstat_of("ro").st_mtime, 222) << "the directory's mtime survives writing its content";
  EXPECT_EQ(lstat_of("ro/inner").st_mode & 07777, 0400u);
  EXPECT_EQ(lstat_of("ro/inner").st_mtime, 333);
  EXPECT_EQ(lstat_of("bin/su").st_mode & 07777, 04755u);
  EXPECT_EQ(lstat_of("bin/wall").st_mode & 07777, 02755u);
  struct stat sh = lstat_of("bin/sh");
  EXPECT_TRUE(S_ISLNK(sh.st_mode));
  EXPECT_EQ(sh.st_mtime, 444);
  char target[64] = {};
  ASSERT_GT(readlink((dest_ + "/bin/sh").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_STREQ(target, "/bin/busybox") << "symlinks are stored as they are";
  ASSERT_GT(readlink((dest_ + "/lib").c_str(), target, sizeof(target) - 1), 0);
  EXPECT_STREQ(target, "../../../nowhere");
  EXPECT_EQ(lstat_of("bin/ls").st_ino, lstat_of("bin/busybox").st_ino);
  EXPECT_EQ(lstat_of("bin/busybox").st_nlink, 2u);
  EXPECT_TRUE(S_ISLNK(lstat_of("bin/sh2").st_mode)) << "a hardlink to a symlink links the symlink";
  EXPECT_EQ(lstat_of("bin/sh2").st_ino, sh.st_ino);
  ASSERT_EQ(chmod((dest_ + "/ro").c_str(), 0755), 0);  // so that TearDown can remove it unprivileged
}

TEST_F(UnpackTest, LaterEntriesReplaceEarlierOnes) {
  auto r =
      unpack(make_tar({file("a", "file"), dir("a/"), file("a/x", "in dir"), dir("d/"), file("d/keep", "k"),
                       dir("d/", 0700), file("f", "one"), file("f", "two"), dir("g/"), file("g/y", "y"),
                       file("g", "now a file"), symlink_to("s", "/etc"), file("s", "not through the link"),
                       file("h", "h"), hardlink_to("h2", "h"), file("h2", "own content")}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(read("a/x"), "in dir");
  EXPECT_EQ(read("d/keep"), "k") << "a directory entry over a directory keeps its content";
  EXPECT_EQ(lstat_of("d").st_mode & 07777, 0700u) << "and takes the later metadata";
  EXPECT_EQ(read("f"), "two");
  EXPECT_EQ(read("g"), "now a file");
  EXPECT_TRUE(S_ISREG(lstat_of("s").st_mode));
  EXPECT_EQ(read("s"), "not through the link");
  EXPECT_EQ(read("h"), "h") << "replacing a hardlink does not write into its target";
  EXPECT_EQ(read("h2"), "own content");
  expect_outside_untouched();
}

TEST_F(UnpackTest, PathEscapesAreRefused) {
  expect_refused({file("ok", "x"), file("../outside/canary", "pwned")},
                 "entry \"../outside/canary\": path escapes the layer directory");
  expect_refused({file("a/../../outside/canary", "pwned")}, "path escapes the layer directory");
  expect_refused({file(outside_ + "/canary", "pwned")},
                 "entry \"" + outside_ + "/canary\": absolute path refused");
  expect_refused({dir("../outside/new/")}, "path escapes the layer directory");
}

TEST_F(UnpackTest, SymlinkThenWriteThroughItIsRefused) {
  expect_refused({symlink_to("evil", outside_), file("evil/canary", "pwned")},
                 "entry \"evil/canary\": \"evil\" is a symlink; refusing to follow it");
  expect_refused({symlink_to("evil", outside_), file("evil/new", "pwned")}, "\"evil\" is a symlink");
  expect_refused({symlink_to("up", ".."), dir("up/outside/x/")}, "\"up\" is a symlink");
  expect_refused({dir("a/"), symlink_to("a/b", "/"), file("a/b/c/d", "pwned")}, "\"a/b\" is a symlink");
  // The whiteout and opaque paths resolve the same way.
  expect_refused({symlink_to("evil", outside_), file("evil/.wh.canary", "")}, "\"evil\" is a symlink");
  expect_refused({symlink_to("evil", outside_), file("evil/.wh..wh..opq", "")}, "\"evil\" is a symlink");
}

TEST_F(UnpackTest, HardlinksOutsideAreRefused) {
  expect_refused({hardlink_to("l", "../outside/canary")},
                 "entry \"l\": hardlink target \"../outside/canary\": path escapes the layer directory");
  expect_refused({hardlink_to("l", outside_ + "/canary")}, "absolute path refused");
  expect_refused({symlink_to("evil", outside_), hardlink_to("l", "evil/canary")},
                 "hardlink target \"evil/canary\" is not an earlier file of this layer");
  expect_refused({dir("d/"), hardlink_to("l", "d")}, "hardlink target \"d\" is not an earlier file");
  expect_refused({hardlink_to("l", "later"), file("later", "x")}, "is not an earlier file");
  // A hardlink to a symlink is the symlink itself, never what it points at.
  auto r = unpack(make_tar({symlink_to("evil", outside_ + "/canary"), hardlink_to("l", "evil")}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(S_ISLNK(lstat_of("l").st_mode));
  expect_outside_untouched();
}

TEST_F(UnpackTest, CorruptAndTruncatedArchivesFail) {
  std::string gz = make_tar(sample_layer(), Compression::kGzip);
  auto r = unpack(gz.substr(0, gz.size() / 2));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("read "), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find("runcat"), std::string::npos) << r.error().message();

  std::string tar = make_tar(sample_layer());
  r = unpack(tar.substr(0, tar.size() / 2));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("runcated"), std::string::npos) << r.error().message();

  std::string zst = make_tar(sample_layer(), Compression::kZstd);
  r = unpack(zst.substr(0, zst.size() - 100));
  ASSERT_FALSE(r.ok());

  r = unpack(std::string(4096, 'x'));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("read layer archive"), std::string::npos) << r.error().message();
  r = unpack("");
  ASSERT_FALSE(r.ok());
}

TEST_F(UnpackTest, WhiteoutsBecomeOverlayWhiteouts) {
  auto r =
      unpack(make_tar({dir("etc/"), file("etc/.wh.passwd", ""), file(".wh.gone", ""), dir("var/"),
                       file("var/.wh..wh..opq", ""), file("var/new", "n"), file("var/.wh..wh.plnk", ""),
                       file("both", "stays"), file(".wh.both", ""), file(".wh.dir2", ""), dir("dir2/"),
                       file("dir2/x", "x"), dir("dir3/"), file(".wh.dir3", ""), file("implicit/.wh.f", "")}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->whiteouts, 7u) << "5 whiteouts, 1 opaque marker, 1 whiteout over a directory";
  EXPECT_EQ(r->skipped, 1u) << ".wh..wh.plnk";
  for (const char* w : {"etc/passwd", "gone", "implicit/f"}) {
    struct stat st = lstat_of(w);
    EXPECT_TRUE(S_ISCHR(st.st_mode)) << w;
    EXPECT_EQ(st.st_rdev, makedev(0, 0)) << w;
  }
  EXPECT_FALSE(fs::exists(dest_ + "/etc/.wh.passwd"));
  EXPECT_EQ(xattr("var", "user.overlay.opaque"), "y");
  EXPECT_EQ(read("var/new"), "n");
  EXPECT_FALSE(fs::exists(dest_ + "/var/.wh..wh.plnk"));
  EXPECT_EQ(read("both"), "stays") << "the same layer's file wins over its whiteout";
  EXPECT_EQ(xattr("dir2", "user.overlay.opaque"), "y") << "whiteout then directory: opaque";
  EXPECT_EQ(read("dir2/x"), "x");
  EXPECT_TRUE(S_ISDIR(lstat_of("dir3").st_mode));
  EXPECT_EQ(xattr("dir3", "user.overlay.opaque"), "y") << "directory then whiteout: opaque";
  EXPECT_EQ(xattr("etc", "user.overlay.opaque"), std::nullopt);

  expect_refused({file(".wh.", "")}, "entry \".wh.\": whiteout names no file");
  expect_refused({file("a/.wh..", "")}, "whiteout names no file");
}

TEST_F(UnpackTest, WhiteoutsKeptAsFilesWhenAsked) {
  UnpackOptions o = unprivileged();
  o.overlay_whiteouts = false;
  auto r = unpack(make_tar({file("etc/.wh.passwd", ""), file("var/.wh..wh..opq", "")}), o);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(S_ISREG(lstat_of("etc/.wh.passwd").st_mode));
  EXPECT_TRUE(S_ISREG(lstat_of("var/.wh..wh..opq").st_mode));
  EXPECT_EQ(r->whiteouts, 0u);
}

TEST_F(UnpackTest, DevicesSkippedWithoutAllowDevicesFifosMade) {
  TarEntry null_dev{.path = "dev/null", .type = AE_IFCHR, .mode = 0666, .rdev = makedev(1, 3)};
  TarEntry disk{.path = "dev/sda", .type = AE_IFBLK, .mode = 0660, .rdev = makedev(8, 0)};
  TarEntry fifo{.path = "run/fifo", .type = AE_IFIFO, .mode = 0620, .mtime = 555};
  auto r = unpack(make_tar({null_dev, disk, fifo}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->skipped, 2u);
  EXPECT_FALSE(fs::exists(dest_ + "/dev/null"));
  EXPECT_FALSE(fs::exists(dest_ + "/dev/sda"));
  struct stat st = lstat_of("run/fifo");
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0620u);
  EXPECT_EQ(st.st_mtime, 555);
}

TEST_F(UnpackTest, XattrsFromPaxHeadersAndOverlayXattrsDropped) {
  TarEntry f = file("f", "data");
  f.xattrs = {{"user.note", "hello"}, {"trusted.overlay.redirect", "/etc"}, {"user.overlay.opaque", "y"}};
  TarEntry d = dir("d/");
  d.xattrs = {{"user.dir", "v"}, {"user.overlay.opaque", "y"}};
  auto r = unpack(make_tar({f, d}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(xattr("f", "user.note"), "hello");
  EXPECT_EQ(xattr("f", "user.overlay.opaque"), std::nullopt) << "a layer cannot forge overlay xattrs";
  EXPECT_EQ(xattr("d", "user.dir"), "v");
  EXPECT_EQ(xattr("d", "user.overlay.opaque"), std::nullopt);
  // libarchive's pax writer records each xattr twice (LIBARCHIVE.xattr.* and SCHILY.xattr.*) and
  // its reader reports both: 3 names dropped, 6 records.
  EXPECT_EQ(r->xattrs_dropped, 6u);
}

// Only the allow-list of unpack.h reaches the disk; the rest is dropped by name, before any
// setxattr (so the count does not depend on what this user may set). Root's view is in
// tests/image/integration/unpack_root_test.cc.
TEST_F(UnpackTest, XattrsOutsideTheAllowListAreDropped) {
  vfs_cap_data cap{};
  cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  cap.data[0].permitted = 1u << CAP_NET_RAW;
  TarEntry f = file("f", "data");
  f.xattrs = {{"user.mime_type", "text/plain"},
              {"security.selinux", "system_u:object_r:shadow_t:s0"},
              {"security.ima", "\x03\x02"},
              {"security.SMACK64EXEC", "_"},
              {"trusted.glusterfs.x", "1"},
              {"system.nfs4_acl", "x"},
              {"os2.name", "x"},
              {"security.capability", std::string(reinterpret_cast<const char*>(&cap), XATTR_CAPS_SZ_2)}};
  auto r = unpack(make_tar({f}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(xattr("f", "user.mime_type"), "text/plain");
  // (Run as root, each of these could have been set.)
  for (const char* name : {"security.selinux", "security.ima", "security.SMACK64EXEC", "trusted.glusterfs.x",
                           "system.nfs4_acl", "os2.name"})
    EXPECT_EQ(xattr("f", name), std::nullopt) << name;
  EXPECT_EQ(r->xattrs_dropped, 12u)
      << "6 names, each recorded twice (see above); security.capability is allowed";
}

TEST_F(UnpackTest, DiffIdIsTheDigestOfTheUncompressedStream) {
  std::vector<TarEntry> entries = sample_layer();
  std::string tar = make_tar(entries);
  // Padding after the end-of-archive blocks (tar writes whole records) belongs to the stream.
  std::string padded_tar = tar + std::string(10240, '\0');
  for (Compression c : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    SCOPED_TRACE(static_cast<int>(c));
    auto r = unpack(make_tar(entries, c));
    ASSERT_TRUE(r.ok()) << r.error().message();
    EXPECT_EQ(r->diff_id, sha256_digest(tar));
    EXPECT_EQ(r->tar_bytes, tar.size());
  }
  auto r = unpack(padded_tar);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->diff_id, sha256_digest(padded_tar));
  UniqueFd fd(open((top_ + "/blob").c_str(), O_RDONLY | O_CLOEXEC));
  auto id = layer_diff_id(fd.get());
  ASSERT_TRUE(id.ok()) << id.error().message();
  EXPECT_EQ(*id, sha256_digest(padded_tar)) << "without unpacking: the same digest";

  UnpackOptions o = unprivileged();
  o.expected_diff_id = sha256_digest(tar);
  r = unpack(make_tar(entries, Compression::kGzip), o);
  ASSERT_TRUE(r.ok()) << r.error().message();
  o.expected_diff_id = sha256_digest("another layer");
  r = unpack(make_tar(entries, Compression::kGzip), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("diff_id mismatch"), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(sha256_digest(tar)), std::string::npos) << r.error().message();
  EXPECT_NE(r.error().message().find(sha256_digest("another layer")), std::string::npos);
}

TEST_F(UnpackTest, CompressionInsideCompressionIsRefused) {
  std::string gz = make_tar(sample_layer(), Compression::kGzip);
  // gzip of the gzip, written by libarchive's raw format.
  std::string twice;
  archive* a = archive_write_new();
  archive_write_set_format_raw(a);
  archive_write_add_filter_gzip(a);
  ASSERT_EQ(archive_write_open(a, &twice, nullptr, append_cb, nullptr), ARCHIVE_OK);
  archive_entry* e = archive_entry_new();
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_pathname(e, "data");
  ASSERT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
  archive_write_data(a, gz.data(), gz.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  auto r = unpack(twice);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("compressed more than once (gzip inside gzip)"), std::string::npos)
      << r.error().message();
}

// A name is shown cut to 200 bytes with its length, and with its control characters escaped: a
// pax header can carry megabytes, and an escape sequence in a name must not reach a terminal.
TEST_F(UnpackTest, LongAndControlCharacterNamesAreShownCut) {
  std::string huge(100000, 'n');
  auto r = unpack(make_tar({file(huge, "x")}));
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message();
  EXPECT_LT(m.size(), 400u) << m.size();
  EXPECT_NE(m.find("entry \"" + std::string(200, 'n') + "\"... (100000 bytes)"), std::string::npos) << m;
  EXPECT_NE(m.find("longer than 4095 bytes"), std::string::npos) << m;

  r = unpack(pax_file("\x1b]0;pwned\x07\xc3\xa9/../../x", "x") + std::string(1024, '\0'));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("entry \"\\x1b]0;pwned\\x07\xc3\xa9/../../x\""), std::string::npos)
      << r.error().message();
  EXPECT_EQ(r.error().message().find('\x1b'), std::string::npos);
}

TEST_F(UnpackTest, NonAsciiAndLongNames) {
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "dir" + std::to_string(i) + "/";
  std::string long_name(200, 'n');
  auto r = unpack(make_tar({file(deep + long_name, "deep")}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(read(deep + long_name), "deep");
  // Names are bytes: the process locale (C here) must not mangle UTF-8 from a PAX record.
  r = unpack(pax_file("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac", "utf8") + std::string(1024, '\0'));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(read("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac"), "utf8");
}

TEST_F(UnpackTest, RootEntryMetadataAppliesToDest) {
  TarEntry root = dir("./", 0750);
  root.mtime = 777;
  auto r = unpack(make_tar({root, file("x", "x")}));
  ASSERT_TRUE(r.ok()) << r.error().message();
  struct stat st {};
  ASSERT_EQ(stat(dest_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_mtime, 777);
  expect_refused({file(".", "x")}, "the layer root is not a directory");
}

}  // namespace
}  // namespace strata::image
