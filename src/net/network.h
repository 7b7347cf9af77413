// Networks: named bridges with a subnet, stored as root/networks/<name>/config.json. The
// store's lock (root/networks/.lock, flock) serializes every change to networks, leases and
// published ports across processes: an attach takes milliseconds, and one lock makes port
// uniqueness, address leases and "remove refuses while attached" race-free together.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "base/fd.h"
#include "net/subnet.h"

namespace strata::net {

struct NetworkConfig {
  std::string name;
  std::string bridge;     // Linux bridge, at most 15 characters
  std::string subnet;     // "10.89.0.0/24"
  std::string gateway;    // the bridge's address; first host of the subnet unless given
  bool internal = false;  // no masquerade, no traffic to or from outside the bridge
  std::string created;    // RFC 3339, UTC

  Subnet parsed_subnet() const;  // valid for stored configs
  uint32_t gateway_addr() const;
};

std::string network_to_json(const NetworkConfig& n);
// Every field checked (a config.json edited by hand is untrusted input).
Result<NetworkConfig> network_from_json(std::string_view text);

// Names usable in paths, nft comments and hosts files: [A-Za-z0-9][A-Za-z0-9_.-]*, bounded.
Status validate_name(std::string_view what, std::string_view name, size_t max_len);

struct StoreOptions {
  std::string nft_table = "strata";  // our own `table ip <name>`; tests use their own
  std::string default_network = "strata";
  std::string default_bridge = "strata0";
  std::string default_subnet = "10.89.0.0/24";
  // Set by the user (STRATA_DEFAULT_SUBNET, strata --default-subnet): an existing default network
  // with another subnet is made again with this one once no container is attached to it.
  bool default_subnet_configured = false;
  std::string bridge_prefix = "strata";      // bridges picked by create(): strata1, strata2, ...
  std::string subnet_pool = "10.89.0.0/16";  // /24s picked by create() come from here
};

// The options of the user's store: the defaults, with STRATA_DEFAULT_SUBNET (podman's
// containers.conf default_subnet) as the default network's subnet when set.
StoreOptions store_options_from_env();

// An exclusive flock held until destruction.
class StoreLock {
 public:
  static Result<StoreLock> acquire(const std::string& path);

 private:
  explicit StoreLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

class NetworkStore {
 public:
  static Result<NetworkStore> open(const std::string& root, StoreOptions opts = store_options_from_env());

  // Picks a free /24 from the pool and a free bridge name when they are empty; refuses a
  // duplicate name or bridge and a subnet overlapping another network's. The bridge itself is
  // made by the first attach.
  Result<NetworkConfig> create(const NetworkConfig& want);
  Result<NetworkConfig> get(const std::string& name) const;
  // The default network (options().default_network), created when missing, or made again
  // when a configured default subnet differs from its own and no container is attached to it
  // (EBUSY naming them otherwise).
  Result<NetworkConfig> ensure_default();
  std::vector<NetworkConfig> list() const;
  // Refuses while containers are attached and for the default network; deletes the bridge,
  // the network's nft rules and its directory.
  Status remove(const std::string& name);

  const StoreOptions& options() const { return opts_; }
  std::string dir(const std::string& name) const;
  // Held by every mutation (create, remove, attach, detach).
  Result<StoreLock> lock() const;

 private:
  NetworkStore(std::string root, StoreOptions opts) : root_(std::move(root)), opts_(std::move(opts)) {}
  Result<NetworkConfig> create_locked(const NetworkConfig& want);
  // remove() under the store lock, for any network (the default one included).
  Status remove_locked(const NetworkConfig& n);

  std::string root_;  // root/networks
  StoreOptions opts_;
};

}  // namespace strata::net
