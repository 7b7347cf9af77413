#include "net/ports.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include "base/fd.h"
#include "base/strings.h"
#include "net/subnet.h"

namespace strata::net {
namespace {

struct Range {
  uint32_t first = 0;
  uint32_t last = 0;  // inclusive
  uint32_t size() const { return last - first + 1; }
};

Result<Range> parse_range(std::string_view s, std::string_view what) {
  size_t dash = s.find('-');
  auto port = [&](std::string_view p) -> Result<uint32_t> {
    auto v = str::parse_uint(p);
    if (p.empty() || p.size() > 5 || !v || *v < 1 || *v > 65535)
      return Error(std::string(what) + " \"" + std::string(p) + "\" is not a port number (1-65535)");
    return static_cast<uint32_t>(*v);
  };
  Range r;
  ASSIGN_OR_RETURN(r.first, port(s.substr(0, dash)));
  r.last = r.first;
  if (dash != std::string_view::npos) {
    ASSIGN_OR_RETURN(r.last, port(s.substr(dash + 1)));
    if (r.last < r.first) return Error(std::string(what) + " range \"" + std::string(s) + "\" is reversed");
  }
  if (r.size() > static_cast<uint32_t>(kMaxPortRange))
    return Error(std::string(what) + " range \"" + std::string(s) + "\" has more than " +
                 std::to_string(kMaxPortRange) + " ports");
  return r;
}

Result<sockaddr_in> sockaddr_for(const std::string& ip, uint16_t port) {
  auto addr = parse_ipv4(ip);
  if (!addr) return Error("host address \"" + ip + "\" is not an IPv4 address");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(*addr);
  return sa;
}

Result<UniqueFd> bound_socket(const std::string& proto, const std::string& ip, uint16_t port) {
  ASSIGN_OR_RETURN(sockaddr_in sa, sockaddr_for(ip, port));
  UniqueFd fd(::socket(AF_INET, (proto == "udp" ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
  std::string shown = "port " + std::to_string(port) + "/" + proto + " on " + ip;
  if (!fd) return Error::sys("socket for " + shown);
  int one = 1;
  if (proto == "tcp") ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    int err = errno;
    if (err == EADDRINUSE) return Error(shown + " is already in use", err);
    if (err == EADDRNOTAVAIL) return Error(shown + ": " + ip + " is not an address of this host", err);
    return Error::sys("bind " + shown, err);
  }
  return fd;
}

}  // namespace

std::string PortMapping::str() const {
  return host_ip + ":" + std::to_string(host_port) + "->" + std::to_string(container_port) + "/" + proto;
}

Result<std::vector<PortMapping>> parse_port_mapping(std::string_view spec) {
  std::string shown = "publish \"" + std::string(spec) + "\"";
  auto fail = [&](const std::string& why) { return Error(shown + ": " + why); };
  std::string_view s = spec;
  std::string proto = "tcp";
  if (size_t slash = s.find('/'); slash != std::string_view::npos) {
    proto = std::string(s.substr(slash + 1));
    if (proto != "tcp" && proto != "udp") return fail("protocol \"" + proto + "\" is not tcp or udp");
    s = s.substr(0, slash);
  }
  if (s.empty()) return fail("no container port");
  if (s.front() == '[') return fail("IPv6 host addresses are not supported");

  std::vector<std::string> parts = str::split(s, ':');
  if (parts.size() > 3) return fail("expected [IP:][HOST:]CONTAINER[/tcp|udp]");
  std::string host_ip = "0.0.0.0";
  std::string host_part;
  std::string container_part = parts.back();
  if (parts.size() == 3) {
    host_ip = parts[0];
    host_part = parts[1];
    if (!parse_ipv4(host_ip)) return fail("host address \"" + host_ip + "\" is not an IPv4 address");
  } else if (parts.size() == 2) {
    host_part = parts[0];
    if (host_part.empty()) return fail("empty host port (use \"CONTAINER\" for a random host port)");
  }

  auto crange = parse_range(container_part, "container port");
  if (!crange) return std::move(crange).error().context(shown);
  Range hrange;
  if (!host_part.empty()) {
    auto h = parse_range(host_part, "host port");
    if (!h) return std::move(h).error().context(shown);
    hrange = *h;
    if (hrange.size() != crange->size())
      return fail("host range " + host_part + " and container range " + container_part + " differ in length");
  } else if (crange->size() != 1) {
    return fail("a container port range needs a host port range of the same length");
  }

  std::vector<PortMapping> out;
  for (uint32_t i = 0; i < crange->size(); ++i) {
    PortMapping m;
    m.host_ip = host_ip;
    m.host_port = host_part.empty() ? 0 : static_cast<uint16_t>(hrange.first + i);
    m.container_port = static_cast<uint16_t>(crange->first + i);
    m.proto = proto;
    out.push_back(std::move(m));
  }
  return out;
}

bool ports_conflict(const PortMapping& a, const PortMapping& b) {
  if (a.proto != b.proto || a.host_port != b.host_port || a.host_port == 0) return false;
  return a.host_ip == b.host_ip || a.host_ip == "0.0.0.0" || b.host_ip == "0.0.0.0";
}

Status check_ports_free(const std::vector<PortMapping>& ports) {
  for (size_t i = 0; i < ports.size(); ++i) {
    const PortMapping& p = ports[i];
    if (p.proto != "tcp" && p.proto != "udp") return Error("port mapping " + p.str() + ": unknown protocol");
    for (size_t j = 0; j < i; ++j)
      if (ports_conflict(p, ports[j]))
        return Error("port " + std::to_string(p.host_port) + "/" + p.proto + " on " + p.host_ip +
                     " is published twice");
    if (p.host_port == 0) continue;
    auto fd = bound_socket(p.proto, p.host_ip, p.host_port);
    if (!fd) return std::move(fd).error();
  }
  return ok();
}

Result<uint16_t> pick_free_port(const std::string& proto, const std::string& host_ip) {
  ASSIGN_OR_RETURN(UniqueFd fd, bound_socket(proto, host_ip, 0));
  sockaddr_in sa{};
  socklen_t len = sizeof sa;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0)
    return Error::sys("getsockname of a free " + proto + " port");
  return ntohs(sa.sin_port);
}

}  // namespace strata::net
