#include "net/link.h"

#include <fcntl.h>

#include <cstdio>

#include "base/fd.h"
#include "base/fs.h"
#include "base/strings.h"

namespace strata::net {

std::string host_veth_name(const std::string& network, const std::string& container_id) {
  // FNV-1a: a stable spread of the ids, not a security boundary (a collision is an EEXIST
  // from the kernel, reported as such).
  uint32_t h = 2166136261u;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 16777619u;
    }
  };
  mix(network);
  mix(std::string_view("\0", 1));
  mix(container_id);
  char buf[16];
  std::snprintf(buf, sizeof buf, "veth%08x", h);
  return buf;
}

Mac mac_for_ip(uint32_t ip) {
  return Mac{0x0a,
             0x58,
             static_cast<uint8_t>(ip >> 24),
             static_cast<uint8_t>(ip >> 16),
             static_cast<uint8_t>(ip >> 8),
             static_cast<uint8_t>(ip)};
}

std::string mac_string(const Mac& mac) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
                mac[5]);
  return buf;
}

Status ensure_ip_forward() {
  const std::string path = "/proc/sys/net/ipv4/ip_forward";
  ASSIGN_OR_RETURN(std::string v, fs::read_file(path));
  if (str::trim(v) == "1") return ok();
  TRY_CTX(fs::write_file(path, "1"), "enable IPv4 forwarding");
  return ok();
}

Status ensure_bridge(Netlink& host, const NetworkConfig& net) {
  std::string what = "set up bridge " + net.bridge + " of network " + net.name;
  Status made = host.create_bridge(net.bridge);
  if (!made && made.error().err() != EEXIST) return std::move(made).error().context(what);
  ASSIGN_OR_RETURN(int index, host.link_index(net.bridge));
  Status addr = host.add_address(index, net.gateway_addr(), net.parsed_subnet().prefix);
  if (!addr && addr.error().err() != EEXIST) return std::move(addr).error().context(what);
  TRY_CTX(host.set_up(index), what);
  // Lets the host's own 127.0.0.1 traffic, DNAT'ed to a container, be routed out of the
  // bridge (the kernel drops loopback sources on other links otherwise); the firewall then
  // masquerades it to the gateway address.
  TRY_CTX(fs::write_file("/proc/sys/net/ipv4/conf/" + net.bridge + "/route_localnet", "1"), what);
  return ok();
}

Status plumb_container(Netlink& host, const NetworkConfig& net, const Attachment& a,
                       const std::string& netns_path) {
  std::string what = "connect container " + a.container_id.substr(0, 12) + " to network " + a.network;
  UniqueFd ns(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return Error::sys(what + ": open network namespace " + netns_path);
  auto ip = parse_ipv4(a.ip);
  auto gw = parse_ipv4(a.gateway);
  if (!ip || !gw) return Error(what + ": bad address in the attachment");
  bool created = false;
  auto body = [&]() -> Status {
    ASSIGN_OR_RETURN(int bridge, host.link_index(net.bridge));
    TRY(host.create_veth(a.host_veth, "eth0", ns.get(), mac_for_ip(*ip)));
    created = true;
    ASSIGN_OR_RETURN(int veth, host.link_index(a.host_veth));
    TRY(host.set_up(veth, bridge));
    ASSIGN_OR_RETURN(Netlink inner, Netlink::open_in_netns(netns_path));
    ASSIGN_OR_RETURN(int lo, inner.link_index("lo"));
    TRY(inner.set_up(lo));
    ASSIGN_OR_RETURN(int eth0, inner.link_index("eth0"));
    TRY(inner.add_address(eth0, *ip, a.prefix));
    TRY(inner.set_up(eth0));
    TRY(inner.add_default_route(eth0, *gw));
    return ok();
  };
  Status st = body();
  if (!st) {
    // Only a veth this call made: an EEXIST from create_veth means another owner.
    if (created) (void)remove_veth(host, a.host_veth);
    return std::move(st).error().context(what);
  }
  return ok();
}

Status remove_veth(Netlink& host, const std::string& name) {
  Status st = host.delete_link(name);
  if (!st && st.error().err() != ENODEV) return st;
  return ok();
}

}  // namespace strata::net
