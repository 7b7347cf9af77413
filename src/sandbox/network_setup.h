// The container's side of src/net: which network a ContainerConfig asks for, the files that
// make its name resolution (/etc/hosts, /etc/resolv.conf), and attach/detach around its life.
#pragma once

#include <string>

#include "base/error.h"
#include "sandbox/record.h"

namespace strata::sandbox {

// Writes <dir>/hosts, <dir>/resolv.conf and <dir>/hostname before the container starts.
Status write_network_files(const ContainerRecord& rec, const std::string& dir);
// Fails with a clear error when a published host port is taken or the network does not exist.
Status check_network(const ContainerStore& store, const ContainerRecord& rec);
// Attaches the network namespace of `pid` to rec.config.network (bridge/NAME); sets
// rec.network_attached and rec.ip. host/none: nothing to do.
Status attach_network(const ContainerStore& store, ContainerRecord& rec, pid_t pid);
// Idempotent: removes veth, rules and lease; updates the peers' hosts files.
Status detach_network(const ContainerStore& store, ContainerRecord& rec);

}  // namespace strata::sandbox
