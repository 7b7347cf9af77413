// libFuzzer target for src/net's parsers of outside input (STYLE.md section 12): `-p` values,
// subnets, and the network and attachment records read back from disk (which a crash or a
// hand edit may have mangled). The first byte picks the parser. Each must answer with a value
// or an Error that says why, never crash, throw or hang; what parses must round-trip.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "net/ipam.h"
#include "net/network.h"
#include "net/ports.h"
#include "net/subnet.h"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::net;
  if (size == 0) return 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto ports = parse_port_mapping(text);
      if (!ports.ok()) {
        check(!ports.error().message().empty());
        break;
      }
      check(!ports->empty() && ports->size() <= static_cast<size_t>(kMaxPortRange));
      for (const PortMapping& p : *ports) {
        check(p.container_port != 0 && (p.proto == "tcp" || p.proto == "udp"));
        check(parse_ipv4(p.host_ip).has_value());
      }
      break;
    }
    case 1: {
      auto sn = Subnet::parse(text);
      if (!sn.ok()) {
        check(!sn.error().message().empty());
        break;
      }
      auto again = Subnet::parse(sn->str());
      check(again.ok() && *again == *sn && sn->contains(sn->addr) && sn->contains(sn->broadcast()));
      break;
    }
    case 2: {
      auto n = network_from_json(text);
      if (!n.ok()) {
        check(!n.error().message().empty());
        break;
      }
      auto again = network_from_json(network_to_json(*n));
      check(again.ok() && network_to_json(*again) == network_to_json(*n));
      break;
    }
    default: {
      auto a = attachment_from_json(text);
      if (!a.ok()) {
        check(!a.error().message().empty());
        break;
      }
      auto again = attachment_from_json(attachment_to_json(*a));
      check(again.ok() && attachment_to_json(*again) == attachment_to_json(*a));
      break;
    }
  }
  return 0;
}
