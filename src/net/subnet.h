// IPv4 addresses and subnets: parsing, formatting and the arithmetic that IP allocation and
// network creation need (host ranges, overlap). Addresses are host-order uint32_t.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"

namespace strata::net {

// "10.89.0.2" -> 0x0a590002; nullopt for anything that is not four decimal octets.
std::optional<uint32_t> parse_ipv4(std::string_view s);
std::string format_ipv4(uint32_t addr);

struct Subnet {
  uint32_t addr = 0;  // the network address: host bits are zero
  int prefix = 0;     // 0..32

  // "10.89.0.0/24". Host bits set ("10.89.0.1/24") are refused: the user meant something else.
  static Result<Subnet> parse(std::string_view s);
  std::string str() const;

  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint32_t broadcast() const { return addr | ~mask(); }
  bool contains(uint32_t ip) const { return (ip & mask()) == addr; }
  bool overlaps(const Subnet& o) const;
  // Usable host addresses: the network and broadcast addresses excluded (for /31 and /32 none
  // are excluded, but bridges need at least a /30 anyway: see NetworkStore::create).
  uint32_t first_host() const { return prefix >= 31 ? addr : addr + 1; }
  uint32_t last_host() const { return prefix >= 31 ? broadcast() : broadcast() - 1; }

  bool operator==(const Subnet&) const = default;
};

}  // namespace strata::net
