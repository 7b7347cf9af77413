#include "net/attach.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/log.h"
#include "net/firewall.h"
#include "net/hosts.h"
#include "net/link.h"
#include "net/netlink.h"

namespace strata::net {
namespace {

bool valid_utf8(const std::string& s) {
  try {
    (void)nlohmann::json(s).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

Status validate_request(const AttachRequest& req) {
  TRY(validate_name("container id", req.container_id, 128));
  if (!req.name.empty()) TRY(validate_name("container name", req.name, 253));
  for (const std::string& a : req.aliases) TRY(validate_name("network alias", a, 253));
  if (req.netns_path.empty()) return Error("no network namespace path");
  // The record is JSON: a path that is not UTF-8 could not be stored faithfully.
  if (!valid_utf8(req.hosts_path)) return Error("hosts file path is not valid UTF-8");
  for (const PortMapping& p : req.ports) {
    if (!parse_ipv4(p.host_ip)) return Error("publish " + p.str() + ": bad host address");
    if (p.proto != "tcp" && p.proto != "udp")
      return Error("publish " + p.str() + ": protocol is not tcp or udp");
    if (p.container_port == 0) return Error("publish " + p.str() + ": container port 0");
  }
  return ok();
}

// Host ports are unique across the whole store: DNAT'ed ports have no socket on the host, so
// binding alone would not see a port that another container already publishes.
Status resolve_ports(const NetworkStore& store, std::vector<PortMapping>& ports) {
  std::vector<Attachment> all;
  for (const NetworkConfig& n : store.list()) {
    ASSIGN_OR_RETURN(std::vector<Attachment> l, Leases(store.dir(n.name)).list());
    all.insert(all.end(), l.begin(), l.end());
  }
  for (PortMapping& p : ports) {
    if (p.host_port == 0) {
      for (int tries = 0; tries < 16 && p.host_port == 0; ++tries) {
        ASSIGN_OR_RETURN(uint16_t port, pick_free_port(p.proto, p.host_ip));
        p.host_port = port;
        for (const Attachment& a : all)
          for (const PortMapping& q : a.ports)
            if (ports_conflict(p, q)) p.host_port = 0;
        // The kernel may offer the same free port twice within one request.
        for (const PortMapping* q = ports.data(); q != &p; ++q)
          if (ports_conflict(p, *q)) p.host_port = 0;
      }
      if (p.host_port == 0) return Error("publish " + p.str() + ": no free host port found");
    }
    for (const Attachment& a : all)
      for (const PortMapping& q : a.ports)
        if (ports_conflict(p, q))
          return Error("port " + std::to_string(p.host_port) + "/" + p.proto + " on " + p.host_ip +
                           " is already in use by container " + a.container_id.substr(0, 12),
                       EADDRINUSE);
  }
  return check_ports_free(ports);
}

// Undoes what attach made, for the record `a`; each step tolerates "already gone".
Status teardown(const NetworkStore& store, const Attachment& a) {
  Status first;
  auto note = [&](Status st) {
    if (!st && first) first = std::move(st);
  };
  auto nl = Netlink::open();
  if (nl) {
    note(remove_veth(*nl, a.host_veth));
  } else {
    note(std::move(nl).error());
  }
  auto fw = Firewall::open(store.options().nft_table);
  if (fw) {
    note(fw->remove_container(a.container_id));
  } else {
    note(std::move(fw).error());
  }
  return first;
}

}  // namespace

Result<std::vector<Attachment>> attachments(const NetworkStore& store, const std::string& network) {
  TRY(validate_name("network name", network, 64));
  return Leases(store.dir(network)).list();
}

Result<Attachment> attach(const NetworkStore& store, const NetworkConfig& want_net,
                          const AttachRequest& req) {
  std::string what = "attach container " + req.container_id.substr(0, 12) + " to network " + want_net.name;
  TRY_CTX(validate_request(req), what);
  ASSIGN_OR_RETURN(StoreLock lk, store.lock());
  // The stored config, not the caller's copy: it may be stale or hand-made.
  auto net_r = store.get(want_net.name);
  if (!net_r) return std::move(net_r).error().context(what);
  const NetworkConfig& net = *net_r;
  Leases leases(store.dir(net.name));
  if (leases.get(req.container_id)) return Error(what + ": the container is already attached to it", EEXIST);

  Attachment a;
  a.container_id = req.container_id;
  a.name = req.name;
  a.aliases = req.aliases;
  a.hosts_path = req.hosts_path;
  a.ports = req.ports;
  a.host_veth = host_veth_name(net.name, req.container_id);
  TRY_CTX(resolve_ports(store, a.ports), what);
  TRY_CTX(ensure_ip_forward(), what);

  auto leased = leases.allocate(net, std::move(a));
  if (!leased) return std::move(leased).error().context(what);
  a = std::move(*leased);
  auto made = [&]() -> Status {
    ASSIGN_OR_RETURN(Netlink host, Netlink::open());
    TRY(ensure_bridge(host, net));
    ASSIGN_OR_RETURN(Firewall fw, Firewall::open(store.options().nft_table));
    TRY(fw.ensure_network(net));
    TRY(plumb_container(host, net, a, req.netns_path));
    TRY(fw.add_container(a.container_id, a.ip, a.ports));
    ASSIGN_OR_RETURN(std::vector<Attachment> all, leases.list());
    // Our own file must be right; a peer's may be gone with its container (it is detached
    // later by its own cleanup), which must not fail this attach.
    if (!a.hosts_path.empty()) TRY(write_in_place(a.hosts_path, render_hosts(a, all)));
    Status peers = write_hosts_files(all);
    if (!peers)
      log::get("net")->warn("network {}: update hosts files: {}", net.name, peers.error().to_string());
    return ok();
  }();
  if (!made) {
    // The lease goes only once the links and rules are gone: otherwise detach needs it.
    Status undo = teardown(store, a);
    if (undo) undo = leases.release(a.container_id);
    if (!undo)
      log::get("net")->warn("container {}: undo a failed attach: {}", a.container_id.substr(0, 12),
                            undo.error().to_string());
    return std::move(made).error().context(what);
  }
  log::get("net")->info("container {}: attached to network {} as {} ({})", a.container_id.substr(0, 12),
                        net.name, a.ip, a.host_veth);
  return a;
}

Status detach(const NetworkStore& store, const std::string& network, const std::string& container_id) {
  std::string what = "detach container " + container_id.substr(0, 12) + " from network " + network;
  TRY_CTX(validate_name("container id", container_id, 128), what);
  TRY_CTX(validate_name("network name", network, 64), what);
  ASSIGN_OR_RETURN(StoreLock lk, store.lock());
  Leases leases(store.dir(network));
  auto rec = leases.get(container_id);
  Attachment a;
  if (rec) {
    a = std::move(*rec);
  } else {
    // No record: nothing was made (the record is written first). An unreadable one must not
    // block the cleanup. Either way the names derive from the ids, so removing them costs
    // little and covers a record deleted or mangled by hand.
    if (rec.error().err() != ENOENT)
      log::get("net")->warn("{}: {}; removing what its ids name", what, rec.error().to_string());
    a.container_id = container_id;
    a.network = network;
    a.host_veth = host_veth_name(network, container_id);
  }
  TRY_CTX(teardown(store, a), what);
  TRY_CTX(leases.release(container_id), what);
  if (rec || rec.error().err() != ENOENT) {
    // The container is gone whatever happens here: a peer's file that cannot be updated is a
    // warning, not a failed detach.
    auto rest = leases.list();
    Status st = rest ? write_hosts_files(*rest) : Status(std::move(rest).error());
    if (!st) log::get("net")->warn("network {}: update hosts files: {}", network, st.error().to_string());
    log::get("net")->info("container {}: detached from network {}", container_id.substr(0, 12), network);
  }
  return ok();
}

Status detach_all(const NetworkStore& store, const std::string& container_id) {
  TRY_CTX(validate_name("container id", container_id, 128), "detach container");
  for (const NetworkConfig& n : store.list()) {
    if (!fs::exists(fs::join(store.dir(n.name), "attachments/" + container_id + ".json"))) continue;
    TRY(detach(store, n.name, container_id));
  }
  return ok();
}

}  // namespace strata::net
