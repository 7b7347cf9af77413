// Published ports: the `-p [IP:][HOST:]CONTAINER[/tcp|udp]` syntax (docker/podman's), and the
// checks that a host port is free before a container starts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace strata::net {

struct PortMapping {
  std::string host_ip = "0.0.0.0";  // "0.0.0.0": every address of the host
  uint16_t host_port = 0;           // 0: a free port is picked when the container is attached
  uint16_t container_port = 0;
  std::string proto = "tcp";  // "tcp" | "udp"

  std::string str() const;  // "0.0.0.0:8080->80/tcp"
  bool operator==(const PortMapping&) const = default;
};

// Largest range "-p 8000-8999:8000-8999" accepted; each port becomes one mapping and one rule.
inline constexpr int kMaxPortRange = 1024;

// Parses one -p value:
//   "80"                   container port 80, random host port, every host address
//   "8080:80"              host 8080 -> container 80
//   "127.0.0.1:8080:80"    only on that host address; "127.0.0.1::80" with a random host port
//   "8080-8081:80-81/udp"  ranges of equal length
Result<std::vector<PortMapping>> parse_port_mapping(std::string_view spec);

// True when both mappings would claim the same host port (same protocol and port, and the
// same address or either one on every address).
bool ports_conflict(const PortMapping& a, const PortMapping& b);

// Binds each host port (tcp: SO_REUSEADDR, like a server would) and closes it again, so a port
// that a host process holds is reported before anything is created:
// "port 8080/tcp on 0.0.0.0 is already in use". Mappings with host_port 0 are skipped.
Status check_ports_free(const std::vector<PortMapping>& ports);

// A host port that is free now for proto on host_ip (the kernel's ephemeral choice).
Result<uint16_t> pick_free_port(const std::string& proto, const std::string& host_ip);

}  // namespace strata::net
