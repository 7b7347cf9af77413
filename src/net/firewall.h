// strata's nftables rules, all in one table of its own (`table ip <table>`, default "strata");
// no other table is ever read or changed. Layout:
//   set bridges          every strata bridge, for isolation
//   chain hostports      published ports: [ip daddr H] tcp dport P dnat to IP:CP, one rule
//                        per mapping, comment "strata:c:<container id>"
//   chain prerouting     nat hook; traffic for a local address -> hostports
//   chain output         nat hook; the host's own traffic for a local address (127.0.0.1
//                        included) -> hostports, so `curl 127.0.0.1:8080` on the host works
//   chain postrouting    per network (comment "strata:n:<name>"): masquerade what leaves the
//                        subnet, and what enters the bridge from 127.0.0.0/8 (that needs
//                        route_localnet on the bridge, set by link.cc; netavark does the same),
//                        and DNAT'ed traffic between two containers of the same bridge
//   chain forward        per network: drop from its bridge to any other strata bridge
//                        (isolation); internal networks drop everything leaving the bridge
// Every rule carries a comment naming its owner, so removal after a crash deletes exactly the
// owner's rules (found by listing the table) and nothing else.
#pragma once

#include <string>
#include <vector>

#include "base/error.h"
#include "net/network.h"
#include "net/nft.h"
#include "net/ports.h"

namespace strata::net {

std::string container_rule_comment(const std::string& container_id);
std::string network_rule_comment(const std::string& network);

struct FirewallRule {
  std::string chain;
  uint64_t handle = 0;
  std::string comment;
};

class Firewall {
 public:
  static Result<Firewall> open(std::string table);

  // The table, its chains and the network's rules, each made only when missing.
  Status ensure_network(const NetworkConfig& net);
  // The network's rules and its bridge in the set; the table too when no network is left.
  Status remove_network(const NetworkConfig& net);
  // One DNAT rule per mapping (host ports must be resolved, never 0), in one transaction.
  Status add_container(const std::string& container_id, const std::string& ip,
                       const std::vector<PortMapping>& ports);
  // Every rule tagged with the container; none is fine.
  Status remove_container(const std::string& container_id);
  // The table's rules (empty when there is no table).
  Result<std::vector<FirewallRule>> rules();
  const std::string& table() const { return table_; }

 private:
  struct Listing {
    bool table_exists = false;
    std::vector<FirewallRule> rules;
    std::vector<std::string> bridges;
  };
  Firewall(Nft nft, std::string table) : nft_(std::move(nft)), table_(std::move(table)) {}
  Result<Listing> list();
  Result<Listing> list_unchecked();
  void delete_rules_with_comment(const Listing& l, const std::string& comment, std::string& batch);

  Nft nft_;
  std::string table_;
};

}  // namespace strata::net
