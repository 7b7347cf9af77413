#include "net/hosts.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "base/fd.h"
#include "base/fs.h"
#include "base/strings.h"

namespace strata::net {
namespace {

std::string line(const std::string& ip, const std::vector<std::string>& names) {
  std::string out = ip;
  for (const std::string& n : names)
    if (!n.empty()) out += "\t" + n;
  return out + "\n";
}

std::vector<std::string> names_of(const Attachment& a) {
  std::vector<std::string> names{a.name};
  names.insert(names.end(), a.aliases.begin(), a.aliases.end());
  return names;
}

}  // namespace

std::string render_hosts(const Attachment& self, const std::vector<Attachment>& peers) {
  std::string out = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  std::vector<std::string> own = names_of(self);
  std::string short_id = self.container_id.substr(0, 12);
  if (std::find(own.begin(), own.end(), short_id) == own.end()) own.push_back(short_id);
  out += line(self.ip, own);
  if (!self.gateway.empty()) out += line(self.gateway, {std::string(kHostAlias)});
  for (const Attachment& p : peers)
    if (p.container_id != self.container_id && !p.name.empty()) out += line(p.ip, names_of(p));
  return out;
}

Status write_in_place(const std::string& path, std::string_view content) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!fd) return Error::sys("open hosts file " + path);
  // Write first, then cut the tail: a reader sees the new head early and never an empty file.
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::pwrite(fd.get(), content.data() + done, content.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::sys("write hosts file " + path);
    done += static_cast<size_t>(n);
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(content.size())) != 0)
    return Error::sys("truncate hosts file " + path);
  return ok();
}

Status write_hosts_files(const std::vector<Attachment>& attached) {
  Status first;
  for (const Attachment& a : attached) {
    if (a.hosts_path.empty()) continue;
    Status st = write_in_place(a.hosts_path, render_hosts(a, attached));
    if (!st && first) first = std::move(st).error().context("container " + a.container_id.substr(0, 12));
  }
  return first;
}

std::string resolv_conf_for_container(std::string_view host) {
  std::string out;
  bool have_ns = false;
  for (const std::string& raw : str::split(host, '\n')) {
    std::string_view l = str::trim(raw);
    if (str::starts_with(l, "nameserver")) {
      std::string_view addr = str::trim(l.substr(10));
      if (size_t sp = addr.find_first_of(" \t#"); sp != std::string_view::npos) addr = addr.substr(0, sp);
      if (str::starts_with(addr, "127.") || addr == "::1" || addr == "0:0:0:0:0:0:0:1") continue;
      have_ns = true;
    }
    if (l.empty() && raw.empty()) continue;
    out += std::string(l) + "\n";
  }
  if (!have_ns) out += "nameserver 8.8.8.8\nnameserver 8.8.4.4\n";
  return out;
}

std::string resolv_conf_for_container() {
  auto text = fs::read_file("/etc/resolv.conf");
  return resolv_conf_for_container(text ? std::string_view(*text) : std::string_view());
}

}  // namespace strata::net
