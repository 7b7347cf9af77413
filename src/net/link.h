// The links of a container network: the bridge (made on first use, with the gateway address
// and route_localnet, see firewall.h for why), and one veth pair per container, its peer
// created inside the container's namespace as eth0 with the leased address and a default
// route through the gateway.
#pragma once

#include <string>

#include "base/error.h"
#include "net/ipam.h"
#include "net/netlink.h"
#include "net/network.h"

namespace strata::net {

// "veth" + 8 hex of a hash of (network, container id): stable, so detach after a crash finds
// the link from the ids alone, and distinct for one container on two networks.
std::string host_veth_name(const std::string& network, const std::string& container_id);
// 0a:58:<the four bytes of the IP>: locally administered, unicast, and unique on the bridge
// as long as the IP is (the Kubernetes bridge plugins use the same rule), so a peer's stale
// ARP entry for a reused address still points at the right port.
Mac mac_for_ip(uint32_t ip);
std::string mac_string(const Mac& mac);

// Sets net.ipv4.ip_forward to 1 when it is 0 (containers' traffic is routed by the host).
Status ensure_ip_forward();
// Creates the bridge when missing, gives it the gateway address, sets it up and turns on
// route_localnet on it.
Status ensure_bridge(Netlink& host, const NetworkConfig& net);
// The veth pair for `a` (peer inside netns_path as eth0), enslaved and up, with lo, address
// and default route inside. Leaves no link behind on failure.
Status plumb_container(Netlink& host, const NetworkConfig& net, const Attachment& a,
                       const std::string& netns_path);
// Deletes the host side (the kernel deletes the peer with it); a missing link is fine.
Status remove_veth(Netlink& host, const std::string& name);

}  // namespace strata::net
