// IP address management. A lease is the attachment record
// root/networks/<name>/attachments/<container_id>.json: written durably (fsync of the file and
// of the directory) before the address is configured anywhere, so a crash at any point never
// hands the address out twice, and detach finds everything it must undo in it.
// All functions here expect the caller to hold the store lock (NetworkStore::lock()).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "base/error.h"
#include "net/network.h"
#include "net/ports.h"
#include "net/subnet.h"

namespace strata::net {

struct Attachment {
  std::string network;
  std::string container_id;
  std::string name;  // resolvable by peers
  std::vector<std::string> aliases;
  std::string ip;
  int prefix = 0;
  std::string gateway;
  std::string mac;                 // "0a:58:0a:59:00:02": derived from the IP (see link.h)
  std::string host_veth;           // "veth1a2b3c4d"
  std::vector<PortMapping> ports;  // host ports resolved (never 0)
  std::string hosts_path;          // the container's /etc/hosts on the host; empty: not managed
};

std::string attachment_to_json(const Attachment& a);
Result<Attachment> attachment_from_json(std::string_view text);

// The first free host address after `after` (wrapping around), skipping the gateway and the
// addresses in `used`. Round-robin, so an address just released is not reused at once (a
// peer's ARP cache or conntrack entry may still point at the old container).
Result<uint32_t> pick_address(const Subnet& subnet, uint32_t gateway, const std::set<uint32_t>& used,
                              uint32_t after);

class Leases {
 public:
  explicit Leases(std::string network_dir);

  // Every lease of the network; an unreadable record is reported, not skipped, since
  // skipping it could hand its address out again.
  Result<std::vector<Attachment>> list() const;
  // ENOENT when the container holds no lease here.
  Result<Attachment> get(const std::string& container_id) const;
  // Picks an address for `a` (ip, prefix, gateway, mac filled in) and persists the record
  // durably before returning it. ENOSPC when the subnet is full.
  Result<Attachment> allocate(const NetworkConfig& net, Attachment a) const;
  // Removes the lease; a missing lease is fine (detach is idempotent).
  Status release(const std::string& container_id) const;

 private:
  std::string path(const std::string& container_id) const;
  Status sync_dir() const;

  std::string dir_;  // <network dir>/attachments
  std::string hint_path_;
};

}  // namespace strata::net
