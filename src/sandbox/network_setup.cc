#include "sandbox/network_setup.h"

#include "base/fs.h"
#include "net/attach.h"
#include "net/hosts.h"
#include "net/network.h"
#include "net/ports.h"

namespace strata::sandbox {

namespace {

bool wants_bridge(const ContainerConfig& c) { return c.network != "host" && c.network != "none"; }

Result<net::NetworkStore> open_networks(const ContainerStore& store) {
  return net::NetworkStore::open(store.root());
}

Result<net::NetworkConfig> find_network(net::NetworkStore& nets, const std::string& name) {
  if (name == "bridge" || name == nets.options().default_network) return nets.ensure_default();
  auto n = nets.get(name);
  if (!n)
    return Error("network \"" + name + "\" does not exist (strata network create " + name + ")", ENOENT);
  return n;
}

std::vector<net::PortMapping> port_mappings(const ContainerConfig& c) {
  std::vector<net::PortMapping> out;
  for (const auto& p : c.ports) {
    net::PortMapping m;
    m.host_ip = p.host_ip.empty() ? "0.0.0.0" : p.host_ip;
    m.host_port = p.host_port;
    m.container_port = p.container_port;
    m.proto = p.proto;
    out.push_back(m);
  }
  return out;
}

}  // namespace

Status write_network_files(const ContainerRecord& rec, const std::string& dir) {
  std::string hostname = rec.config.hostname.empty() ? rec.id.substr(0, 12) : rec.config.hostname;
  TRY(fs::write_file_atomic(dir + "/hostname", hostname + "\n", 0644));
  std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  std::string resolv;
  if (rec.config.network == "host") {
    // The host's view, as podman gives a --network host container.
    auto h = fs::read_file("/etc/hosts");
    if (h) hosts = *h;
    auto r = fs::read_file("/etc/resolv.conf");
    resolv = r ? *r : std::string();
  } else {
    hosts += "127.0.1.1\t" + hostname + " " + rec.name + "\n";
    resolv = net::resolv_conf_for_container();
  }
  // Written in place later (net rewrites peers' hosts files), so created here as plain files.
  TRY(fs::write_file_atomic(dir + "/hosts", hosts, 0644));
  TRY(fs::write_file_atomic(dir + "/resolv.conf", resolv, 0644));
  return ok();
}

Status check_network(const ContainerStore& store, const ContainerRecord& rec) {
  if (!wants_bridge(rec.config)) return ok();
  ASSIGN_OR_RETURN(net::NetworkStore nets, open_networks(store));
  if (rec.config.network != "bridge" && rec.config.network != nets.options().default_network) {
    TRY(find_network(nets, rec.config.network));
  }
  return net::check_ports_free(port_mappings(rec.config));
}

Status attach_network(const ContainerStore& store, ContainerRecord& rec, pid_t pid) {
  if (!wants_bridge(rec.config)) return ok();
  ASSIGN_OR_RETURN(net::NetworkStore nets, open_networks(store));
  ASSIGN_OR_RETURN(net::NetworkConfig network, find_network(nets, rec.config.network));
  // Recorded before the attach: a crash half-way is still found and undone by teardown.
  rec.network_attached = network.name;
  TRY(store.save(rec));
  net::AttachRequest req;
  req.container_id = rec.id;
  req.name = rec.name;
  req.netns_path = "/proc/" + std::to_string(pid) + "/ns/net";
  req.ports = port_mappings(rec.config);
  req.hosts_path = store.dir(rec.id) + "/hosts";
  auto a = net::attach(nets, network, req);
  if (!a) return std::move(a).error().context("attach container " + rec.name + " to network " + network.name);
  rec.ip = a->ip;
  // Ports asked with host port 0 got one picked: record what was given.
  rec.config.ports.clear();
  for (const auto& p : a->ports) {
    rec.config.ports.push_back(
        {p.host_ip == "0.0.0.0" ? "" : p.host_ip, p.host_port, p.container_port, p.proto});
  }
  return store.save(rec);
}

Status detach_network(const ContainerStore& store, ContainerRecord& rec) {
  if (!rec.damaged.empty()) {
    // Which network it joined may be what was lost: every network's lease for it goes.
    ASSIGN_OR_RETURN(net::NetworkStore nets, open_networks(store));
    TRY_CTX(net::detach_all(nets, rec.id), "detach container " + rec.name);
    rec.network_attached.clear();
    rec.ip.clear();
    return ok();
  }
  if (rec.network_attached.empty()) return ok();
  ASSIGN_OR_RETURN(net::NetworkStore nets, open_networks(store));
  TRY_CTX(net::detach(nets, rec.network_attached, rec.id), "detach container " + rec.name);
  rec.network_attached.clear();
  rec.ip.clear();
  return ok();
}

}  // namespace strata::sandbox
