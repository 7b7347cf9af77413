#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "base/fd.h"
#include "base/strings.h"

namespace strata::fs {

Status read_chunks(int fd, const std::string& what, const std::function<Status(const char*, size_t)>& sink,
                   size_t buf_size) {
  std::vector<char> buf(buf_size);
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::sys("read " + what);
    }
    if (n == 0) return ok();
    TRY(sink(buf.data(), static_cast<size_t>(n)));
  }
}

namespace {

Error too_big(const std::string& shown, size_t max_bytes) {
  return Error("read " + shown + ": larger than " + std::to_string(max_bytes) + " bytes", EFBIG);
}

Error not_regular(const std::string& shown, mode_t mode) {
  return Error("read " + shown + ": not a regular file (" + file_type_name(mode) + ")");
}

// fd is open for reading: the whole content, at most max_bytes.
Result<std::string> read_regular(int fd, const std::string& shown, size_t max_bytes) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Error::sys("stat " + shown);
  if (!S_ISREG(st.st_mode)) return not_regular(shown, st.st_mode);
  if (static_cast<uint64_t>(st.st_size) > max_bytes) return too_big(shown, max_bytes);
  std::string out;
  // (/proc and sysfs files say 0 and are read to their end all the same.)
  out.reserve(static_cast<size_t>(st.st_size));
  TRY(read_chunks(
      fd, shown,
      [&](const char* p, size_t n) -> Status {
        if (n > max_bytes - out.size()) return too_big(shown, max_bytes);
        out.append(p, n);
        return ok();
      },
      st.st_size > 0 && st.st_size < 64 * 1024 ? static_cast<size_t>(st.st_size) + 1 : 64 * 1024));
  return out;
}

int sys_openat2(int dirfd, const char* path, uint64_t flags, uint64_t resolve) {
  struct open_how how {};
  how.flags = flags | O_CLOEXEC;
  how.resolve = resolve;
  return static_cast<int>(::syscall(SYS_openat2, dirfd, path, &how, sizeof how));
}

constexpr uint64_t kInRoot = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

// The in-root form of a path for messages: absolute, as the container sees it.
std::string in_root_name(std::string_view path) {
  std::string out = "/";
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  out += path;
  return out;
}

// openat2 wants a relative path; "" (the root itself) becomes ".".
std::string relative(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return path.empty() ? std::string(".") : std::string(path);
}

}  // namespace

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer; O_NOCTTY: a terminal named
  // here must not become ours.
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) return Error::sys("open " + path);
  return read_regular(fd.get(), path, max_bytes);
}

std::string file_type_name(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a directory";
    case S_IFLNK:
      return "a symlink";
    case S_IFIFO:
      return "a FIFO";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    default:
      return "an unknown file type";
  }
}

Result<UniqueFd> open_in_root(int root_fd, std::string_view path, int flags) {
  std::string rel = relative(path);
  UniqueFd fd(sys_openat2(root_fd, rel.c_str(), static_cast<uint64_t>(flags) | O_PATH, kInRoot));
  if (!fd) return Error::sys("open " + in_root_name(path) + " in the container's root");
  return fd;
}

Result<std::string> read_file_in_root(int root_fd, std::string_view path, size_t max_bytes) {
  ASSIGN_OR_RETURN(UniqueFd at, open_in_root(root_fd, path));
  std::string shown = in_root_name(path) + " in the container's root";
  struct stat st {};
  if (::fstat(at.get(), &st) != 0) return Error::sys("stat " + shown);
  if (!S_ISREG(st.st_mode)) return not_regular(shown, st.st_mode);
  // Reopen the very inode that was checked for reading (never the path again: it may have
  // been replaced in between).
  std::string self = "/proc/self/fd/" + std::to_string(at.get());
  UniqueFd fd(::open(self.c_str(), O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC));
  if (!fd) return Error::sys("open " + shown);
  return read_regular(fd.get(), shown, max_bytes);
}

namespace {

// mkdir_in_root's walk; `links` counts the dangling symlinks followed (the kernel's 40).
Result<UniqueFd> mkdir_in_root_at(int root_fd, const std::string& rel, mode_t mode, uid_t uid, gid_t gid,
                                  int links) {
  UniqueFd fd(sys_openat2(root_fd, rel.c_str(), O_PATH | O_DIRECTORY, kInRoot));
  if (fd) return fd;
  if (errno != ENOENT) return Error::sys("open " + in_root_name(rel) + " in the container's root");
  // Component by component: each parent is resolved inside the root (so a symlink in the path
  // is followed as the container would follow it, never out of it) and the missing child is
  // made in it with mkdirat, which never follows a symlink in its last component.
  UniqueFd parent(sys_openat2(root_fd, ".", O_PATH | O_DIRECTORY, kInRoot));
  if (!parent) return Error::sys("open the container's root");
  std::string prefix;
  for (const auto& part : str::split(rel, '/')) {
    if (part.empty() || part == ".") continue;
    std::string parent_path = prefix;
    prefix += prefix.empty() ? part : "/" + part;
    UniqueFd next(sys_openat2(root_fd, prefix.c_str(), O_PATH | O_DIRECTORY, kInRoot));
    if (!next && errno == ENOENT && part != "..") {
      if (::mkdirat(parent.get(), part.c_str(), mode) == 0) {
        if (uid != static_cast<uid_t>(-1) || gid != static_cast<gid_t>(-1)) {
          UniqueFd made(::openat(parent.get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
          if (!made || ::fchownat(made.get(), "", uid, gid, AT_EMPTY_PATH) != 0)
            return Error::sys("chown " + in_root_name(prefix) + " in the container's root");
        }
      } else if (errno == EEXIST) {
        // A dangling symlink: its target is made, inside the root, as the container would
        // see it made (podman's securejoin does the same).
        char target[PATH_MAX];
        ssize_t n = ::readlinkat(parent.get(), part.c_str(), target, sizeof target - 1);
        if (n > 0) {
          if (++links > 40) return Error("mkdir " + in_root_name(prefix) + " in the container's root", ELOOP);
          std::string to(target, static_cast<size_t>(n));
          std::string joined = to.front() == '/' ? to : parent_path + "/" + to;
          TRY(mkdir_in_root_at(root_fd, relative(joined), mode, uid, gid, links));
        }
      } else {
        return Error::sys("mkdir " + in_root_name(prefix) + " in the container's root");
      }
      next.reset(sys_openat2(root_fd, prefix.c_str(), O_PATH | O_DIRECTORY, kInRoot));
    }
    if (!next) return Error::sys("open " + in_root_name(prefix) + " in the container's root");
    parent = std::move(next);
  }
  return parent;
}

}  // namespace

Result<UniqueFd> mkdir_in_root(int root_fd, std::string_view path, mode_t mode, uid_t uid, gid_t gid) {
  return mkdir_in_root_at(root_fd, relative(path), mode, uid, gid, 0);
}

static Status write_all(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Error::sys("write " + path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode, bool durable) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  // A new file, never what is already there: a leftover of a dead process of the same pid is
  // removed, and a FIFO or device planted at the name is neither opened nor written.
  ::unlink(tmp.c_str());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
  if (!fd) return Error::sys("create " + tmp);
  Status st = write_all(fd.get(), data, tmp);
  if (st.ok() && durable && ::fsync(fd.get()) != 0) st = Error::sys("fsync " + tmp);
  fd.reset();
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = Error::sys("rename " + tmp + " to " + path);
  if (!st.ok()) ::unlink(tmp.c_str());
  return st;
}

Status write_file(const std::string& path, std::string_view data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return Error::sys("open " + path);
  ssize_t n;
  do {
    n = ::write(fd.get(), data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Error::sys("write '" + std::string(data.substr(0, 64)) + "' to " + path);
  return ok();
}

Status mkdir_p(const std::string& path, mode_t mode) {
  if (path.empty() || path == "/") return ok();
  // Deepest first: usually only the last component is missing, so this is one mkdir(2)
  // instead of one per component from the root.
  if (::mkdir(path.c_str(), mode) == 0) return ok();
  if (errno == EEXIST) {
    if (!is_dir(path)) return Error("mkdir " + path + ": exists and is not a directory", ENOTDIR);
    return ok();
  }
  if (errno != ENOENT) return Error::sys("mkdir " + path);
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos || slash == 0) return Error::sys("mkdir " + path, ENOENT);
  TRY(mkdir_p(path.substr(0, slash), mode));
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) return Error::sys("mkdir " + path);
  return ok();
}

static Status remove_at(int dirfd, const char* name, dev_t dev, const std::string& shown) {
  struct stat st {};
  if (::fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return ok();
    return Error::sys("stat " + shown);
  }
  if (S_ISDIR(st.st_mode)) {
    if (st.st_dev != dev) return Error("remove " + shown + ": is a mount point", EBUSY);
    UniqueFd fd(::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return Error::sys("open " + shown);
    DIR* d = ::fdopendir(fd.get());
    if (d == nullptr) return Error::sys("opendir " + shown);
    int dfd = fd.release();
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      names.emplace_back(e->d_name);
    }
    Status result;
    for (const auto& n : names) {
      Status s = remove_at(dfd, n.c_str(), dev, shown + "/" + n);
      if (!s.ok()) {
        result = std::move(s);
        break;
      }
    }
    ::closedir(d);
    if (!result.ok()) return result;
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) return Error::sys("rmdir " + shown);
    return ok();
  }
  if (::unlinkat(dirfd, name, 0) != 0 && errno != ENOENT) return Error::sys("unlink " + shown);
  return ok();
}

Status remove_tree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return ok();
    return Error::sys("stat " + path);
  }
  return remove_at(AT_FDCWD, path.c_str(), st.st_dev, path);
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = ::opendir(path.c_str());
  if (d == nullptr) return out;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    out.emplace_back(e->d_name);
  }
  ::closedir(d);
  return out;
}

std::string join(std::string_view a, std::string_view b) {
  std::string out(a);
  while (!out.empty() && out.back() == '/') out.pop_back();
  while (!b.empty() && b.front() == '/') b.remove_prefix(1);
  out += '/';
  out += b;
  return out;
}

std::string clean(std::string_view p) {
  bool abs = !p.empty() && p.front() == '/';
  std::vector<std::string_view> parts;
  size_t i = 0;
  while (i <= p.size()) {
    size_t j = p.find('/', i);
    if (j == std::string_view::npos) j = p.size();
    std::string_view part = p.substr(i, j - i);
    if (part.empty() || part == ".") {
    } else if (part == "..") {
      if (!parts.empty() && parts.back() != "..") {
        parts.pop_back();
      } else if (!abs) {
        parts.push_back(part);
      }
    } else {
      parts.push_back(part);
    }
    i = j + 1;
  }
  std::string out = abs ? "/" : "";
  for (size_t k = 0; k < parts.size(); ++k) {
    if (k) out += '/';
    out += parts[k];
  }
  if (out.empty()) out = ".";
  return out;
}

std::string absolute(const std::string& p) {
  if (!p.empty() && p.front() == '/') return clean(p);
  char buf[PATH_MAX];
  if (::getcwd(buf, sizeof buf) == nullptr) return clean(p);
  return clean(join(buf, p));
}

}  // namespace strata::fs
