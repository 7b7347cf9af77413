// Attaching a container's network namespace to a network, and detaching it again. Everything
// is keyed by the container id and recorded (ipam.h) before it is made, so detach works from
// any process, after a kill -9 of anything, and as often as it is called.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "net/ipam.h"
#include "net/network.h"
#include "net/ports.h"

namespace strata::net {

struct AttachRequest {
  std::string container_id;  // the key of the attachment ([A-Za-z0-9_.-], 64 hex in strata)
  std::string name;          // resolvable by peers; may be empty
  std::vector<std::string> aliases;
  std::string netns_path;          // /proc/<pid>/ns/net or a bind-mounted netns
  std::vector<PortMapping> ports;  // host_port 0: a free port is picked
  std::string hosts_path;          // the container's /etc/hosts on the host; empty: not managed
};

// Leases an address, makes the bridge and the network's rules if needed, the veth pair
// (eth0 inside, with address, default route and lo up), the DNAT rules of the published ports,
// and rewrites the hosts files of the network. Ports are checked first (against host sockets
// and every attachment of the store): a port in use fails with nothing created. On any
// failure everything made so far is undone.
Result<Attachment> attach(const NetworkStore& store, const NetworkConfig& net, const AttachRequest& req);

// Removes the container's veth, its nft rules and its lease, and rewrites the peers' hosts
// files. Idempotent: an unknown container is fine.
Status detach(const NetworkStore& store, const std::string& network, const std::string& container_id);

// Detaches the container from every network holding a lease for it: the cleanup for a
// container whose own state (which network it joined) was lost.
Status detach_all(const NetworkStore& store, const std::string& container_id);

// The attachments of a network (for `strata network inspect` and for checks).
Result<std::vector<Attachment>> attachments(const NetworkStore& store, const std::string& network);

}  // namespace strata::net
