// /etc/hosts and /etc/resolv.conf for containers. Name resolution between containers of a
// network is by hosts files (no DNS server): each attached container's file lists itself and
// every peer, and is rewritten whenever a container of the network comes or goes.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "net/ipam.h"

namespace strata::net {

// Name used for the host, resolving to the network's gateway (podman: host.containers.internal).
inline constexpr std::string_view kHostAlias = "host.strata.internal";

// The hosts file of `self`: localhost lines, self (ip, name, aliases, short id), the host
// alias at the gateway, then each peer (ip, name, aliases) in the order given.
std::string render_hosts(const Attachment& self, const std::vector<Attachment>& peers);

// Rewrites every attachment's hosts file (those with a hosts_path) from the list. Writes in
// place (truncate and write the same inode): the file is bind-mounted into the container and a
// rename would leave the container looking at the old inode. A file that cannot be written is
// returned as the error of that container; the others are still written.
Status write_hosts_files(const std::vector<Attachment>& attached);
Status write_in_place(const std::string& path, std::string_view content);

// The host's resolv.conf for a container: nameservers on loopback (127.0.0.0/8, ::1) are
// dropped since they are unreachable from the container's namespace (podman's rule); when none
// is left, public resolvers are added as a fallback.
std::string resolv_conf_for_container(std::string_view host_resolv_conf);
std::string resolv_conf_for_container();  // from /etc/resolv.conf

}  // namespace strata::net
