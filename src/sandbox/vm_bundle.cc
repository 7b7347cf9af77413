#include "sandbox/vm_bundle.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/cleanup.h"
#include "base/digest.h"
#include "base/fd.h"
#include "base/fs.h"
#include "base/strings.h"
#include "sandbox/tool.h"

namespace strata::sandbox {

namespace {

using Json = nlohmann::json;

// x86's COMMAND_LINE_SIZE, with room for the virtio_mmio.device= entries the monitor appends
// (about 40 bytes per device).
constexpr size_t kMaxCmdline = 2048 - 256;

// The bytes that identify a rootfs for the image cache: every entry's relative path, type,
// mode, owner, size, mtime, device number and link target, in a stable (sorted) order.
struct TreeWalk {
  Sha256 hash;
  uint64_t bytes = 0;  // allocated bytes of the tree
  uint64_t entries = 0;
};

Status walk(int dirfd, const std::string& rel, TreeWalk& w) {
  UniqueFd dup(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dup) return Error::sys("open " + (rel.empty() ? "/" : rel));
  DIR* d = ::fdopendir(dup.release());
  if (d == nullptr) return Error::sys("read directory " + rel);
  Cleanup close_dir([&] { ::closedir(d); });
  std::vector<std::string> names;
  while (auto* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.emplace_back(e->d_name);
  }
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    std::string path = rel + "/" + name;
    struct stat st {};
    if (::fstatat(::dirfd(d), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return Error::sys("stat " + path);
    char line[512];
    int n = std::snprintf(line, sizeof line, "%o %u %u %lld %lld.%09ld %llx ", st.st_mode, st.st_uid, st.st_gid,
                          static_cast<long long>(st.st_size), static_cast<long long>(st.st_mtim.tv_sec),
                          st.st_mtim.tv_nsec, static_cast<unsigned long long>(st.st_rdev));
    w.hash.update(line, static_cast<size_t>(n));
    w.hash.update(path);
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t len = ::readlinkat(::dirfd(d), name.c_str(), target, sizeof target);
      if (len < 0) return Error::sys("readlink " + path);
      w.hash.update(" -> ");
      w.hash.update(target, static_cast<size_t>(len));
    }
    w.hash.update("\n", 1);
    w.bytes += static_cast<uint64_t>(st.st_blocks) * 512 + 256;  // + the inode
    ++w.entries;
    if (S_ISDIR(st.st_mode)) {
      UniqueFd sub(::openat(::dirfd(d), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub) return Error::sys("open " + path);
      TRY(walk(sub.get(), path, w));
    }
  }
  return ok();
}

// Removes temporaries a killed `strata vm run` left in dir: ".tmp-<pid>-..." of a dead pid.
void remove_stale_temps(const std::string& dir) {
  for (const auto& name : fs::list_dir(dir)) {
    if (name.rfind(".tmp-", 0) != 0) continue;
    int pid = std::atoi(name.c_str() + 5);
    if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;
    (void)::unlink(fs::join(dir, name).c_str());
  }
}

std::string temp_name(const std::string& dir, const std::string& final_name) {
  return fs::join(dir, ".tmp-" + std::to_string(::getpid()) + "-" + final_name);
}

// <cache>/rootfs/<key>.ext4 for the tree at `root`, made when missing.
Result<std::string> rootfs_image(const std::string& cache_dir, const std::string& root) {
  UniqueFd rootfd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!rootfd) return Error::sys("open the bundle's root " + root);
  TreeWalk w;
  w.hash.update("strata rootfs image v1\n");
  TRY(walk(rootfd.get(), "", w));
  std::string key = w.hash.digest().substr(7, 32);
  std::string dir = fs::join(cache_dir, "rootfs");
  TRY(fs::mkdir_p(dir, 0700));
  std::string image = fs::join(dir, key + ".ext4");
  if (fs::exists(image)) return image;
  remove_stale_temps(dir);
  // Room for the files, their inodes and metadata, and space for the workload to write:
  // the image is sparse, so the headroom costs nothing until used.
  uint64_t mib = std::max<uint64_t>(64, (w.bytes * 5 / 4) / (1 << 20) + 64);
  uint64_t inodes = std::max<uint64_t>(16384, w.entries * 2 + 4096);
  std::fprintf(stderr, "strata: imaging the bundle's rootfs %s (%llu entries, %llu MiB ext4)\n", root.c_str(),
               static_cast<unsigned long long>(w.entries), static_cast<unsigned long long>(mib));
  std::string tmp = temp_name(dir, key + ".ext4");
  Cleanup drop_tmp([&] { (void)::unlink(tmp.c_str()); });
  // No journal: each VM boots its own throwaway copy.
  TRY_CTX(run_tool({"mkfs.ext4", "-q", "-F", "-L", "strata-root", "-O", "^has_journal", "-N",
                    std::to_string(inodes), "-d", root, tmp, std::to_string(mib) + "M"}),
          "image the rootfs " + root);
  if (::rename(tmp.c_str(), image.c_str()) != 0) return Error::sys("rename " + tmp + " to " + image);
  return image;
}

// A sparse copy (holes stay holes) of src at dst, created exclusively.
Status sparse_copy(const std::string& src, const std::string& dst) {
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) return Error::sys("open " + src);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return Error::sys("stat " + src);
  UniqueFd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) return Error::sys("create " + dst);
  if (::ftruncate(out.get(), st.st_size) != 0) return Error::sys("size " + dst);
  off_t pos = 0;
  while (pos < st.st_size) {
    off_t data = ::lseek(in.get(), pos, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole is left
      return Error::sys("seek " + src);
    }
    off_t hole = ::lseek(in.get(), data, SEEK_HOLE);
    if (hole < 0) return Error::sys("seek " + src);
    off_t off_in = data, off_out = data;
    while (off_in < hole) {
      ssize_t n = ::copy_file_range(in.get(), &off_in, out.get(), &off_out, static_cast<size_t>(hole - off_in), 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return Error::sys("copy " + src + " to " + dst);
    }
    pos = hole;
  }
  return ok();
}

// <cache>/initramfs/<hash of strata-init>.cpio: strata-init as /init, made when missing.
Result<std::string> initramfs(const std::string& cache_dir, const std::string& init_exe) {
  auto init = fs::read_file(init_exe);
  if (!init) return Error("no strata-init at " + init_exe + " (it is built beside strata: build target strata-init)");
  std::string dir = fs::join(cache_dir, "initramfs");
  TRY(fs::mkdir_p(dir, 0700));
  std::string path = fs::join(dir, sha256_digest(*init).substr(7, 32) + ".cpio");
  if (fs::exists(path)) return path;
  std::string cpio = make_cpio({{"dev", S_IFDIR | 0755, "", 0, 0},
                                {"dev/console", S_IFCHR | 0600, "", 5, 1},
                                {"proc", S_IFDIR | 0755, "", 0, 0},
                                {"sys", S_IFDIR | 0755, "", 0, 0},
                                {"newroot", S_IFDIR | 0755, "", 0, 0},
                                {"init", S_IFREG | 0755, *init, 0, 0}});
  TRY(fs::write_file_atomic(path, cpio, 0644));
  return path;
}

void put_hex(std::string& out, uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08X", v);
  out.append(buf, 8);
}

}  // namespace

std::string make_cpio(const std::vector<CpioEntry>& entries) {
  std::string out;
  uint32_t ino = 1;
  auto pad4 = [&] { out.append((4 - out.size() % 4) % 4, '\0'); };
  auto entry = [&](const std::string& name, uint32_t mode, const std::string& data, uint32_t rmaj, uint32_t rmin) {
    out += "070701";
    // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
    for (uint32_t v : {ino++, mode, 0u, 0u, S_ISDIR(mode) ? 2u : 1u, 0u, static_cast<uint32_t>(data.size()), 0u, 0u,
                       rmaj, rmin, static_cast<uint32_t>(name.size() + 1), 0u}) {
      put_hex(out, v);
    }
    out += name;
    out += '\0';
    pad4();
    out += data;
    pad4();
  };
  for (const auto& e : entries) entry(e.name, e.mode, e.data, e.rdev_major, e.rdev_minor);
  entry("TRAILER!!!", 0, "", 0, 0);
  return out;
}

Result<std::string> init_cmdline(const oci::Spec& spec) {
  if (!spec.process || spec.process->args.empty()) return Error("config.json: process.args is empty: nothing to run");
  const oci::Process& p = *spec.process;
  Json cmd = {{"args", p.args}, {"cwd", p.cwd.empty() ? "/" : p.cwd}, {"uid", p.user.uid}, {"gid", p.user.gid}};
  if (!p.env.empty()) cmd["env"] = p.env;
  if (!p.user.additional_gids.empty()) cmd["groups"] = p.user.additional_gids;
  std::string line = "strata.root=/dev/vda";
  if (spec.root.readonly) line += " strata.rootflags=ro";
  if (!spec.hostname.empty()) {
    for (char c : spec.hostname) {
      if (c == ' ' || c == '"' || static_cast<unsigned char>(c) < 0x20)
        return Error("config.json: hostname \"" + spec.hostname + "\" cannot go on a kernel command line");
    }
    line += " strata.hostname=" + spec.hostname;
  }
  line += " strata.cmd=" + str::base64_encode(cmd.dump());
  if (line.size() > kMaxCmdline) {
    return Error("config.json: the process (args, env, cwd, user) takes " + std::to_string(line.size()) +
                 " bytes on the kernel command line, more than the " + std::to_string(kMaxCmdline) +
                 " it can hold: shorten process.env or process.args");
  }
  return line;
}

Result<std::string> find_guest_kernel() {
  const char* env = std::getenv("STRATA_CACHE_DIR");
  if (env == nullptr || *env == '\0') env = std::getenv("STRATA_CACHE");
  std::string dir = fs::join(env != nullptr && *env != '\0' ? env : "/var/cache/strata", "kernel");
  std::string best;
  struct timespec best_time {};
  for (const auto& name : fs::list_dir(dir)) {
    std::string d = fs::join(dir, name);
    struct stat st {};
    if (name[0] == '.' || ::stat(fs::join(d, ".complete").c_str(), &st) != 0) continue;
    if (!fs::exists(fs::join(d, "vmlinux"))) continue;
    if (best.empty() || st.st_mtim.tv_sec > best_time.tv_sec ||
        (st.st_mtim.tv_sec == best_time.tv_sec && st.st_mtim.tv_nsec > best_time.tv_nsec)) {
      best = d;
      best_time = st.st_mtim;
    }
  }
  if (best.empty()) {
    return Error("no guest kernel in " + dir + ": build one with guest/kernel/build.sh (a few minutes, once) " +
                 "or pass --kernel");
  }
  return fs::join(best, "vmlinux");
}

Result<BundleBoot> prepare_bundle(const BundleRequest& req) {
  auto spec_r = oci::load_spec(req.bundle);
  if (!spec_r) return std::move(spec_r).error().context("bundle " + req.bundle);
  const oci::Spec& spec = *spec_r;
  auto args_r = init_cmdline(spec);
  if (!args_r) return std::move(args_r).error().context("bundle " + req.bundle);
  const std::string& strata_args = *args_r;
  if (spec.root.path.empty()) return Error("bundle " + req.bundle + ": config.json: root.path is empty");
  std::string root = spec.root.path[0] == '/' ? spec.root.path : fs::join(req.bundle, spec.root.path);
  if (!fs::is_dir(root)) return Error("bundle " + req.bundle + ": root.path " + root + " is not a directory");

  BundleBoot b;
  if (!req.kernel.empty()) {
    b.kernel = fs::absolute(req.kernel);
    if (!fs::exists(b.kernel)) return Error("--kernel " + req.kernel + ": no such file");
  } else {
    ASSIGN_OR_RETURN(b.kernel, find_guest_kernel());
  }
  ASSIGN_OR_RETURN(b.initrd, initramfs(req.cache_dir, req.init_exe));
  ASSIGN_OR_RETURN(std::string image, rootfs_image(req.cache_dir, root));
  b.root_readonly = spec.root.readonly;
  if (b.root_readonly) {
    b.root_image = image;
  } else {
    b.root_image = fs::join(req.vm_dir, "root.ext4");
    TRY_CTX(sparse_copy(image, b.root_image), "the VM's root disk");
  }
  // quiet: the console shows the workload, and the kernel only when something goes wrong;
  // panic=-1 and reboot=k: any end of the guest ends the VM (the monitor exits on the reset).
  b.boot_args =
      "console=ttyS0 quiet panic=-1 reboot=k pci=off nomodule i8042.noaux i8042.nomux i8042.nopnp "
      "i8042.dumbkbd " +
      strata_args;
  if (!req.extra_args.empty()) b.boot_args += " " + req.extra_args;
  if (spec.linux.resources && spec.linux.resources->memory && spec.linux.resources->memory->limit &&
      *spec.linux.resources->memory->limit > 0) {
    b.mem_mib = std::max<uint64_t>(64, static_cast<uint64_t>(*spec.linux.resources->memory->limit) >> 20);
  }
  return b;
}

std::optional<InitReport> parse_init_report(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  auto number = [](std::string_view s, size_t& pos) -> int {
    size_t start = pos;
    int v = 0;
    while (pos < s.size() && pos - start < 4 && s[pos] >= '0' && s[pos] <= '9') v = v * 10 + (s[pos++] - '0');
    return pos == start ? -1 : v;
  };
  if (line.rfind("exit ", 0) == 0) {
    size_t pos = 5;
    int n = number(line, pos);
    if (n < 0 || n > 255 || pos != line.size()) return std::nullopt;
    return InitReport{n, ""};
  }
  if (line.rfind("error ", 0) == 0) {
    size_t pos = 6;
    int e = number(line, pos);
    if (e < 0 || pos >= line.size() || line[pos] != ' ') return std::nullopt;
    std::string step(line.substr(pos + 1));
    if (step.empty() || step.find(' ') != std::string::npos) return std::nullopt;
    return InitReport{step == "exec" ? 127 : 125, step};
  }
  return std::nullopt;
}

}  // namespace strata::sandbox
