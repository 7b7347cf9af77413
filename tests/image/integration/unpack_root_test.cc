// Layer unpacking as root: ownership, device nodes, xattrs, and whiteouts proven by what
// overlayfs makes of the unpacked layers (mounted read-only with lowerdir=upper:lower), for
// root's form (trusted.overlay.opaque) and for the form an unprivileged user writes
// (user.overlay.opaque, mounted with userxattr).
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "base/fd.h"
#include "base/fs.h"
#include "image/unpack.h"

namespace strata::image {
namespace {

struct TarEntry {
  std::string path;
  mode_t type = AE_IFREG;
  std::string data;
  mode_t mode = 0644;
  int64_t uid = 0, gid = 0;
  std::string link;
  dev_t rdev = 0;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

la_ssize_t append_cb(archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

std::string make_tar_gz(const std::vector<TarEntry>& entries) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_add_filter_gzip(a);
  EXPECT_EQ(archive_write_open(a, &out, nullptr, append_cb, nullptr), ARCHIVE_OK);
  for (const auto& t : entries) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, t.path.c_str());
    archive_entry_set_filetype(e, t.type);
    archive_entry_set_perm(e, t.mode);
    archive_entry_set_uid(e, t.uid);
    archive_entry_set_gid(e, t.gid);
    archive_entry_set_mtime(e, 1700000000, 0);
    if (t.type == AE_IFLNK) archive_entry_set_symlink(e, t.link.c_str());
    if (t.type == AE_IFREG) archive_entry_set_size(e, static_cast<la_int64_t>(t.data.size()));
    if (t.type == AE_IFCHR || t.type == AE_IFBLK) archive_entry_set_rdev(e, t.rdev);
    for (const auto& [k, v] : t.xattrs) archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
    EXPECT_EQ(archive_write_header(a, e), ARCHIVE_OK) << archive_error_string(a);
    if (!t.data.empty()) archive_write_data(a, t.data.data(), t.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

TarEntry file(std::string path, std::string data = "x") {
  return {.path = std::move(path), .data = std::move(data)};
}
TarEntry dir(std::string path) { return {.path = std::move(path), .type = AE_IFDIR, .mode = 0755}; }

class UnpackRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(geteuid(), 0u) << "integration tests run as root";
    char tmpl[] = "/tmp/strata-unpack-root.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    top_ = tmpl;
  }
  void TearDown() override {
    if (!mounted_.empty()) {
      EXPECT_EQ(umount2(mounted_.c_str(), 0), 0) << strerror(errno);
    }
    ASSERT_TRUE(fs::remove_tree(top_).ok());
  }

  std::string layer_dir(const std::string& name) {
    std::string d = top_ + "/" + name;
    EXPECT_EQ(mkdir(d.c_str(), 0755), 0);
    return d;
  }
  Result<UnpackStats> unpack(const std::string& bytes, const std::string& dest, UnpackOptions opts = {}) {
    std::string blob = top_ + "/blob";
    EXPECT_TRUE(fs::write_file_atomic(blob, bytes).ok());
    UniqueFd fd(open(blob.c_str(), O_RDONLY | O_CLOEXEC));
    EXPECT_TRUE(fd.valid());
    return unpack_layer(fd.get(), dest, opts);
  }
  // Read-only overlay of the layers, topmost first (as the image's layers stack).
  std::string mount_overlay(const std::string& upper, const std::string& lower,
                            const std::string& extra = "") {
    std::string mnt = top_ + "/merged";
    EXPECT_EQ(mkdir(mnt.c_str(), 0755), 0);
    std::string opts = "lowerdir=" + upper + ":" + lower + extra;
    EXPECT_EQ(mount("overlay", mnt.c_str(), "overlay", MS_RDONLY, opts.c_str()), 0)
        << strerror(errno) << " " << opts;
    mounted_ = mnt;
    return mnt;
  }

  std::string top_;
  std::string mounted_;
};

std::optional<std::string> get_xattr(const std::string& path, const char* name) {
  char buf[256];
  ssize_t n = lgetxattr(path.c_str(), name, buf, sizeof(buf));
  if (n < 0) return std::nullopt;
  return std::string(buf, static_cast<size_t>(n));
}

TEST_F(UnpackRootTest, OwnershipModesDevicesAndXattrs) {
  // A file capability as setcap writes it: cap_net_bind_service=ep.
  vfs_cap_data cap{};
  cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  cap.data[0].permitted = 1u << CAP_NET_BIND_SERVICE;
  std::string cap_bytes(reinterpret_cast<const char*>(&cap), XATTR_CAPS_SZ_2);
  TarEntry ping = file("bin/ping", "elf");
  ping.mode = 04755;
  ping.uid = 1234;
  ping.gid = 5678;
  ping.xattrs = {{"security.capability", cap_bytes}};
  TarEntry home{.path = "home/user/",
                .type = AE_IFDIR,
                .mode = 02750,
                .uid = 1000,
                .gid = 1001,
                .xattrs = {{"user.note", "dir"}, {"trusted.note", "dir"}}};
  TarEntry link{.path = "home/user/link",
                .type = AE_IFLNK,
                .mode = 0777,
                .uid = 1000,
                .gid = 1001,
                .link = "/nowhere",
                .xattrs = {{"trusted.note", "link"}}};
  TarEntry null_dev{.path = "dev/null", .type = AE_IFCHR, .mode = 0666, .rdev = makedev(1, 3)};
  TarEntry disk{.path = "dev/sda", .type = AE_IFBLK, .mode = 0660, .gid = 6, .rdev = makedev(8, 0)};
  TarEntry fifo{.path = "run/fifo", .type = AE_IFIFO, .mode = 0600, .uid = 7};
  std::string dest = layer_dir("layer");
  auto r = unpack(make_tar_gz({ping, home, link, null_dev, disk, fifo}), dest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->skipped, 0u);

  struct stat st {};
  ASSERT_EQ(lstat((dest + "/bin/ping").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_EQ(st.st_mode & 07777, 04755u) << "setuid survives the chown";
  EXPECT_EQ(get_xattr(dest + "/bin/ping", "security.capability"), cap_bytes) << "survives the chown";
  ASSERT_EQ(lstat((dest + "/home/user").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1000u);
  EXPECT_EQ(st.st_gid, 1001u);
  EXPECT_EQ(st.st_mode & 07777, 02750u);
  EXPECT_EQ(get_xattr(dest + "/home/user", "user.note"), "dir");
  EXPECT_EQ(get_xattr(dest + "/home/user", "trusted.note"), std::nullopt) << "trusted.* is the host's";
  ASSERT_EQ(lstat((dest + "/home/user/link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_uid, 1000u) << "the link itself, not its target";
  EXPECT_EQ(get_xattr(dest + "/home/user/link", "trusted.note"), std::nullopt);
  EXPECT_EQ(r->xattrs_dropped, 4u) << "2 names, each recorded twice by libarchive's pax writer";
  ASSERT_EQ(lstat((dest + "/dev/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  ASSERT_EQ(lstat((dest + "/dev/sda").c_str(), &st), 0);
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(8, 0));
  EXPECT_EQ(st.st_gid, 6u);
  ASSERT_EQ(lstat((dest + "/run/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_uid, 7u);
}

// As root every name could be set, so what reaches the disk is the allow-list's doing (unpack.h):
// LSM labels, IMA/EVM data and trusted.* from a layer are dropped; file capabilities, ACLs and
// user.* are applied.
TEST_F(UnpackRootTest, OnlyAllowListedXattrsAreApplied) {
  vfs_cap_data cap{};
  cap.magic_etc = VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE;
  cap.data[0].permitted = 1u << CAP_NET_RAW;
  std::string cap_bytes(reinterpret_cast<const char*>(&cap), XATTR_CAPS_SZ_2);
  // system.posix_acl_access as the kernel stores it: version 2, then (tag, perm, id) entries:
  // user::rw-, user:1234:r--, group::r--, mask::r--, other::r--.
  auto acl_entry = [](uint16_t tag, uint16_t perm, uint32_t id) {
    std::string e(8, '\0');
    memcpy(&e[0], &tag, 2);
    memcpy(&e[2], &perm, 2);
    memcpy(&e[4], &id, 4);
    return e;
  };
  uint32_t version = 2;
  std::string acl(reinterpret_cast<const char*>(&version), 4);
  acl += acl_entry(0x01, 6, UINT32_MAX) + acl_entry(0x02, 4, 1234) + acl_entry(0x04, 4, UINT32_MAX) +
         acl_entry(0x10, 4, UINT32_MAX) + acl_entry(0x20, 4, UINT32_MAX);
  TarEntry f = file("bin/tool", "elf");
  f.mode = 0755;
  f.xattrs = {{"security.capability", cap_bytes},
              {"system.posix_acl_access", acl},
              {"user.origin", "image"},
              {"security.selinux", "system_u:object_r:shadow_t:s0"},
              {"security.ima", std::string("\x03\x02\x04", 3)},
              {"security.evm", std::string("\x03\x02", 2)},
              {"trusted.overlay.redirect", "/etc"},
              {"trusted.strata-test", "x"}};
  std::string dest = layer_dir("layer");
  auto r = unpack(make_tar_gz({f}), dest);
  ASSERT_TRUE(r.ok()) << r.error().message();
  std::string p = dest + "/bin/tool";
  EXPECT_EQ(get_xattr(p, "security.capability"), cap_bytes);
  EXPECT_EQ(get_xattr(p, "system.posix_acl_access"), acl);
  EXPECT_EQ(get_xattr(p, "user.origin"), "image");
  for (const char* dropped : {"security.selinux", "security.ima", "security.evm", "trusted.overlay.redirect",
                              "trusted.strata-test"})
    EXPECT_EQ(get_xattr(p, dropped), std::nullopt) << dropped;
  EXPECT_EQ(r->xattrs_dropped, 10u) << "5 names, each recorded twice by libarchive's pax writer";
}

std::vector<TarEntry> lower_layer() {
  return {dir("a/"),
          file("a/keep", "keep"),
          file("a/gone", "gone"),
          dir("d/"),
          file("d/old", "old"),
          dir("d/sub/"),
          file("d/sub/x", "x"),
          dir("e/"),
          file("e/lower", "lower")};
}
std::vector<TarEntry> upper_layer() {
  return {dir("a/"),
          file("a/.wh.gone", ""),
          dir("d/"),
          file("d/.wh..wh..opq", ""),
          file("d/new", "new"),
          file(".wh.e", ""),
          dir("e/"),
          file("e/upper", "upper")};
}

void expect_merged_view(const std::string& mnt) {
  EXPECT_TRUE(fs::exists(mnt + "/a/keep"));
  EXPECT_FALSE(fs::exists(mnt + "/a/gone")) << "whiteout hides the lower file";
  EXPECT_TRUE(fs::exists(mnt + "/d/new"));
  EXPECT_FALSE(fs::exists(mnt + "/d/old")) << "opaque directory hides the lower content";
  EXPECT_FALSE(fs::exists(mnt + "/d/sub"));
  EXPECT_TRUE(fs::exists(mnt + "/e/upper"));
  EXPECT_FALSE(fs::exists(mnt + "/e/lower")) << "deleted and recreated in one layer: opaque";
  EXPECT_EQ(fs::list_dir(mnt + "/d"), std::vector<std::string>{"new"});
}

TEST_F(UnpackRootTest, WhiteoutsAndOpaqueDirsStackAsOverlayLayers) {
  std::string lower = layer_dir("lower");
  std::string upper = layer_dir("upper");
  ASSERT_TRUE(unpack(make_tar_gz(lower_layer()), lower).ok());
  auto r = unpack(make_tar_gz(upper_layer()), upper);
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_EQ(r->whiteouts, 3u);
  EXPECT_EQ(get_xattr(upper + "/d", "trusted.overlay.opaque"), "y");
  expect_merged_view(mount_overlay(upper, lower));
}

TEST_F(UnpackRootTest, UnprivilegedUserMakesTheUserxattrForm) {
  std::string lower = layer_dir("lower");
  std::string upper = layer_dir("upper");
  ASSERT_TRUE(unpack(make_tar_gz(lower_layer()), lower).ok());
  TarEntry dev{.path = "dev/null", .type = AE_IFCHR, .mode = 0666, .rdev = makedev(1, 3)};
  std::vector<TarEntry> entries = upper_layer();
  entries.push_back(dev);
  std::string blob = top_ + "/upper.tar.gz";
  ASSERT_TRUE(fs::write_file_atomic(blob, make_tar_gz(entries)).ok());
  ASSERT_EQ(chown(upper.c_str(), 65534, 65534), 0);
  ASSERT_EQ(chmod(top_.c_str(), 0755), 0);  // mkdtemp made it 0700; nobody must reach upper
  UniqueFd in(open(blob.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(in.valid());

  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0)
      _exit(90);
    UnpackOptions opts;  // the defaults for a non-root euid
    if (opts.preserve_owner || opts.allow_devices || !opts.userxattr) _exit(91);
    auto r = unpack_layer(in.get(), upper, opts);
    if (!r.ok()) {
      fprintf(stderr, "unpack as nobody: %s\n", r.error().to_string().c_str());
      _exit(92);
    }
    _exit(r->skipped == 1 && r->whiteouts == 3 ? 0 : 93);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);

  struct stat st {};
  ASSERT_EQ(lstat((upper + "/a/gone").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) << "whiteouts need no privilege";
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(get_xattr(upper + "/d", "user.overlay.opaque"), "y");
  EXPECT_EQ(get_xattr(upper + "/d", "trusted.overlay.opaque"), std::nullopt);
  EXPECT_FALSE(fs::exists(upper + "/dev/null")) << "devices skipped";
  expect_merged_view(mount_overlay(upper, lower, ",userxattr"));
}

}  // namespace
}  // namespace strata::image
