#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "base/fd.h"

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

Result<std::string> read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::sys("open " + path);
  std::string out;
  TRY(read_chunks(
      fd.get(), path,
      [&](const char* p, size_t n) -> Status {
        out.append(p, n);
        return ok();
      },
      8192));
  return out;
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
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
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
