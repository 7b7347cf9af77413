#include "net/ipam.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "base/fs.h"
#include "base/strings.h"
#include "net/link.h"

namespace strata::net {
namespace {

using Json = nlohmann::json;
constexpr std::string_view kSuffix = ".json";

Result<std::string> get_string(const Json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return Error(std::string("\"") + key + "\" is not a string");
  return it->get<std::string>();
}

Result<Attachment> parse_attachment(const Json& j) {
  if (!j.is_object()) return Error("not a JSON object");
  Attachment a;
  ASSIGN_OR_RETURN(a.network, get_string(j, "network"));
  ASSIGN_OR_RETURN(a.container_id, get_string(j, "container_id"));
  ASSIGN_OR_RETURN(a.name, get_string(j, "name"));
  ASSIGN_OR_RETURN(a.ip, get_string(j, "ip"));
  ASSIGN_OR_RETURN(a.gateway, get_string(j, "gateway"));
  ASSIGN_OR_RETURN(a.mac, get_string(j, "mac"));
  ASSIGN_OR_RETURN(a.host_veth, get_string(j, "host_veth"));
  ASSIGN_OR_RETURN(a.hosts_path, get_string(j, "hosts_path"));
  auto prefix = j.find("prefix");
  if (prefix == j.end() || !prefix->is_number_integer() || *prefix < 0 || *prefix > 32)
    return Error("\"prefix\" is not a prefix length");
  a.prefix = prefix->get<int>();
  if (!parse_ipv4(a.ip)) return Error("\"ip\" is not an IPv4 address");
  TRY(validate_name("container id", a.container_id, 128));
  TRY(validate_name("host veth", a.host_veth, 15));
  auto aliases = j.find("aliases");
  if (aliases == j.end() || !aliases->is_array()) return Error("\"aliases\" is not an array");
  for (const Json& x : *aliases) {
    if (!x.is_string()) return Error("\"aliases\" holds a non-string");
    a.aliases.push_back(x.get<std::string>());
  }
  auto ports = j.find("ports");
  if (ports == j.end() || !ports->is_array()) return Error("\"ports\" is not an array");
  for (const Json& p : *ports) {
    if (!p.is_object()) return Error("\"ports\" holds a non-object");
    PortMapping m;
    ASSIGN_OR_RETURN(m.host_ip, get_string(p, "host_ip"));
    ASSIGN_OR_RETURN(m.proto, get_string(p, "proto"));
    auto hp = p.find("host_port");
    auto cp = p.find("container_port");
    if (hp == p.end() || cp == p.end() || !hp->is_number_unsigned() || !cp->is_number_unsigned() ||
        *hp > 65535 || *cp > 65535)
      return Error("a port mapping has no valid port numbers");
    m.host_port = hp->get<uint16_t>();
    m.container_port = cp->get<uint16_t>();
    a.ports.push_back(std::move(m));
  }
  return a;
}

}  // namespace

std::string attachment_to_json(const Attachment& a) {
  Json ports = Json::array();
  for (const PortMapping& p : a.ports)
    ports.push_back({{"host_ip", p.host_ip},
                     {"host_port", p.host_port},
                     {"container_port", p.container_port},
                     {"proto", p.proto}});
  Json j = {{"network", a.network},
            {"container_id", a.container_id},
            {"name", a.name},
            {"aliases", a.aliases},
            {"ip", a.ip},
            {"prefix", a.prefix},
            {"gateway", a.gateway},
            {"mac", a.mac},
            {"host_veth", a.host_veth},
            {"ports", ports},
            {"hosts_path", a.hosts_path}};
  // replace: never throws, even on bytes that are not UTF-8 (attach refuses those first).
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

Result<Attachment> attachment_from_json(std::string_view text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error("attachment: not valid JSON");
  auto a = parse_attachment(j);
  if (!a) return std::move(a).error().context("attachment");
  return a;
}

Result<uint32_t> pick_address(const Subnet& subnet, uint32_t gateway, const std::set<uint32_t>& used,
                              uint32_t after) {
  uint32_t first = subnet.first_host();
  uint32_t last = subnet.last_host();
  if (last < first) return Error("subnet " + subnet.str() + " has no host addresses", ENOSPC);
  uint64_t n = uint64_t{last} - first + 1;
  uint64_t start = (after >= first && after < last) ? uint64_t{after} - first + 1 : 0;
  for (uint64_t i = 0; i < n; ++i) {
    uint32_t cand = first + static_cast<uint32_t>((start + i) % n);
    if (cand != gateway && !used.count(cand)) return cand;
  }
  return Error("subnet " + subnet.str() + " has no free address left", ENOSPC);
}

Leases::Leases(std::string network_dir)
    : dir_(fs::join(network_dir, "attachments")), hint_path_(fs::join(network_dir, "last_ip")) {}

std::string Leases::path(const std::string& container_id) const {
  return fs::join(dir_, container_id + std::string(kSuffix));
}

Status Leases::sync_dir() const {
  // A rename or unlink is durable only once the directory itself is synced.
  UniqueFd fd(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return Error::sys("open " + dir_);
  if (::fsync(fd.get()) != 0) return Error::sys("fsync " + dir_);
  return ok();
}

Result<std::vector<Attachment>> Leases::list() const {
  std::vector<Attachment> out;
  for (const std::string& name : fs::list_dir(dir_)) {
    // Only "<id>.json": a "<id>.json.tmp.<pid>" left by a crash mid-write was never a lease.
    if (name.size() <= kSuffix.size() || name.substr(name.size() - kSuffix.size()) != kSuffix) continue;
    ASSIGN_OR_RETURN(Attachment a, get(name.substr(0, name.size() - kSuffix.size())));
    out.push_back(std::move(a));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.ip < b.ip; });
  return out;
}

Result<Attachment> Leases::get(const std::string& container_id) const {
  std::string p = path(container_id);
  auto text = fs::read_file(p);
  if (!text) return std::move(text).error();
  auto a = attachment_from_json(*text);
  if (!a) return std::move(a).error().context(p);
  if (a->container_id != container_id) return Error(p + ": holds container " + a->container_id);
  return a;
}

Result<Attachment> Leases::allocate(const NetworkConfig& net, Attachment a) const {
  std::string what = "allocate an address on network " + net.name + " for " + a.container_id;
  TRY_CTX(fs::mkdir_p(dir_, 0700), what);
  if (fs::exists(path(a.container_id)))
    return Error(what + ": the container already holds a lease there", EEXIST);
  ASSIGN_OR_RETURN(std::vector<Attachment> leases, list());
  std::set<uint32_t> used;
  for (const Attachment& l : leases) used.insert(*parse_ipv4(l.ip));
  uint32_t after = 0;
  if (auto hint = fs::read_file(hint_path_)) after = parse_ipv4(str::trim(*hint)).value_or(0);
  Subnet sn = net.parsed_subnet();
  auto ip = pick_address(sn, net.gateway_addr(), used, after);
  if (!ip) return std::move(ip).error().context(what);
  a.network = net.name;
  a.ip = format_ipv4(*ip);
  a.prefix = sn.prefix;
  a.gateway = net.gateway;
  a.mac = mac_string(mac_for_ip(*ip));
  TRY_CTX(fs::write_file_atomic(path(a.container_id), attachment_to_json(a), 0600, /*durable=*/true), what);
  TRY_CTX(sync_dir(), what);
  // Only a hint for round-robin: losing it in a crash merely restarts the scan at the bottom.
  (void)fs::write_file_atomic(hint_path_, a.ip + "\n", 0600);
  return a;
}

Status Leases::release(const std::string& container_id) const {
  std::string p = path(container_id);
  if (::unlink(p.c_str()) != 0) {
    if (errno == ENOENT) return ok();
    return Error::sys("release lease " + p);
  }
  return sync_dir();
}

}  // namespace strata::net
