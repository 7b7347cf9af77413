#include "net/network.h"

#include <fcntl.h>
#include <net/if.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "base/log.h"
#include "base/rfc3339.h"
#include "base/strings.h"
#include "net/firewall.h"
#include "net/ipam.h"
#include "net/netlink.h"

namespace strata::net {
namespace {

using Json = nlohmann::json;

// The host's IPv4 routes (/proc/net/route), so an automatically picked subnet does not shadow
// a network the host already reaches. The default route is left out.
std::vector<Subnet> host_routes() {
  std::vector<Subnet> out;
  auto text = fs::read_file("/proc/net/route");
  if (!text) return out;
  for (const std::string& line : str::split(*text, '\n')) {
    std::vector<std::string> cols;
    for (const std::string& c : str::split(line, '\t'))
      if (!str::trim(c).empty()) cols.emplace_back(str::trim(c));
    if (cols.size() < 8 || cols[0] == "Iface") continue;
    // Addresses are printed as the hex of the network-order word read as a host-order one.
    uint32_t dst = static_cast<uint32_t>(std::strtoul(cols[1].c_str(), nullptr, 16));
    uint32_t mask = static_cast<uint32_t>(std::strtoul(cols[7].c_str(), nullptr, 16));
    dst = __builtin_bswap32(dst);
    mask = __builtin_bswap32(mask);
    if (mask == 0) continue;
    out.push_back(Subnet{dst & mask, __builtin_popcount(mask)});
  }
  return out;
}

Status validate_config(const NetworkConfig& n) {
  TRY(validate_name("network name", n.name, 64));
  TRY(validate_name("bridge name", n.bridge, IFNAMSIZ - 1));
  auto sn = Subnet::parse(n.subnet);
  if (!sn) return std::move(sn).error().context("network " + n.name);
  if (sn->prefix > 30)
    return Error("network " + n.name + ": subnet " + n.subnet + " is too small (at most /30)");
  auto gw = parse_ipv4(n.gateway);
  if (!gw) return Error("network " + n.name + ": gateway \"" + n.gateway + "\" is not an IPv4 address");
  if (!sn->contains(*gw) || *gw == sn->addr || *gw == sn->broadcast())
    return Error("network " + n.name + ": gateway " + n.gateway + " is not a host address of " + n.subnet);
  return ok();
}

}  // namespace

Subnet NetworkConfig::parsed_subnet() const {
  auto sn = Subnet::parse(subnet);
  return sn ? *sn : Subnet{};
}

uint32_t NetworkConfig::gateway_addr() const { return parse_ipv4(gateway).value_or(0); }

Status validate_name(std::string_view what, std::string_view name, size_t max_len) {
  auto bad = [&](const std::string& why) {
    return Error(std::string(what) + " \"" + std::string(name) + "\": " + why);
  };
  if (name.empty()) return bad("empty");
  if (name.size() > max_len) return bad("longer than " + std::to_string(max_len) + " characters");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
      return bad("only letters, digits, '_', '.' and '-' are allowed, starting with a letter or digit");
  }
  return ok();
}

std::string network_to_json(const NetworkConfig& n) {
  Json j = {{"name", n.name},       {"bridge", n.bridge},     {"subnet", n.subnet},
            {"gateway", n.gateway}, {"internal", n.internal}, {"created", n.created}};
  // replace: never throws, even on bytes that are not UTF-8 (attach refuses those first).
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

Result<NetworkConfig> network_from_json(std::string_view text) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Error("network config: not a JSON object");
  NetworkConfig n;
  auto str_field = [&](const char* key, std::string& out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string())
      return Error(std::string("network config: \"") + key + "\" is not a string");
    out = it->get<std::string>();
    return ok();
  };
  TRY(str_field("name", n.name));
  TRY(str_field("bridge", n.bridge));
  TRY(str_field("subnet", n.subnet));
  TRY(str_field("gateway", n.gateway));
  TRY(str_field("created", n.created));
  auto it = j.find("internal");
  if (it == j.end() || !it->is_boolean()) return Error("network config: \"internal\" is not a boolean");
  n.internal = it->get<bool>();
  TRY(validate_config(n));
  return n;
}

Result<StoreLock> StoreLock::acquire(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return Error::sys("open lock " + path);
  int r;
  do {
    r = ::flock(fd.get(), LOCK_EX);
  } while (r != 0 && errno == EINTR);
  if (r != 0) return Error::sys("lock " + path);
  return StoreLock(std::move(fd));
}

Result<NetworkStore> NetworkStore::open(const std::string& root, StoreOptions opts) {
  auto table_ok = [](const std::string& t) {
    if (t.empty() || t.size() > 32) return false;
    for (char c : t)
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
        return false;
    return true;
  };
  if (!table_ok(opts.nft_table))
    return Error("network store: nft table name \"" + opts.nft_table + "\" is invalid");
  TRY_CTX(Subnet::parse(opts.default_subnet),
          opts.default_subnet_configured
              ? "the configured default subnet (--default-subnet, STRATA_DEFAULT_SUBNET)"
              : "network store: default subnet");
  TRY_CTX(Subnet::parse(opts.subnet_pool), "network store: subnet pool");
  std::string dir = fs::join(root, "networks");
  TRY_CTX(fs::mkdir_p(dir, 0700), "open network store");
  return NetworkStore(dir, std::move(opts));
}

std::string NetworkStore::dir(const std::string& name) const { return fs::join(root_, name); }

Result<StoreLock> NetworkStore::lock() const { return StoreLock::acquire(fs::join(root_, ".lock")); }

Result<NetworkConfig> NetworkStore::get(const std::string& name) const {
  TRY(validate_name("network name", name, 64));
  std::string path = fs::join(dir(name), "config.json");
  auto text = fs::read_file(path);
  if (!text) {
    if (text.error().err() == ENOENT) return Error("network " + name + " not found", ENOENT);
    return std::move(text).error().context("read network " + name);
  }
  auto n = network_from_json(*text);
  if (!n) return std::move(n).error().context(path);
  if (n->name != name) return Error(path + ": holds network \"" + n->name + "\"");
  return n;
}

std::vector<NetworkConfig> NetworkStore::list() const {
  std::vector<NetworkConfig> out;
  for (const std::string& name : fs::list_dir(root_)) {
    if (name.empty() || name[0] == '.') continue;
    auto n = get(name);
    if (n) {
      out.push_back(std::move(*n));
    } else {
      log::get("net")->warn("network store {}: skipping {}: {}", root_, name, n.error().to_string());
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

Result<NetworkConfig> NetworkStore::create(const NetworkConfig& want) {
  ASSIGN_OR_RETURN(StoreLock lk, lock());
  return create_locked(want);
}

Result<NetworkConfig> NetworkStore::create_locked(const NetworkConfig& want) {
  NetworkConfig n = want;
  TRY_CTX(validate_name("network name", n.name, 64), "create network");
  std::string what = "create network " + n.name;
  std::vector<NetworkConfig> others = list();
  for (const NetworkConfig& o : others)
    if (o.name == n.name) return Error(what + ": a network with that name exists", EEXIST);

  if (n.bridge.empty()) {
    for (int i = 1; i < 10000 && n.bridge.empty(); ++i) {
      std::string cand = opts_.bridge_prefix + std::to_string(i);
      bool taken = cand == opts_.default_bridge || ::if_nametoindex(cand.c_str()) != 0;
      for (const NetworkConfig& o : others) taken = taken || o.bridge == cand;
      if (!taken) n.bridge = cand;
    }
  }
  for (const NetworkConfig& o : others)
    if (o.bridge == n.bridge)
      return Error(what + ": bridge " + n.bridge + " belongs to network " + o.name, EEXIST);

  if (n.subnet.empty()) {
    Subnet pool = *Subnet::parse(opts_.subnet_pool);
    std::vector<Subnet> busy = host_routes();
    for (const NetworkConfig& o : others) busy.push_back(o.parsed_subnet());
    // The default subnet stays reserved for the default network even before it exists.
    busy.push_back(*Subnet::parse(opts_.default_subnet));
    int size = pool.prefix <= 24 ? 24 : pool.prefix;
    uint64_t count = uint64_t{1} << (size - pool.prefix);
    for (uint64_t i = 0; i < count && n.subnet.empty(); ++i) {
      Subnet cand{pool.addr + static_cast<uint32_t>(i << (32 - size)), size};
      bool free = true;
      for (const Subnet& b : busy) free = free && !cand.overlaps(b);
      if (free) n.subnet = cand.str();
    }
    if (n.subnet.empty()) return Error(what + ": no free subnet left in " + opts_.subnet_pool, ENOSPC);
  }
  auto sn = Subnet::parse(n.subnet);
  if (!sn) return std::move(sn).error().context(what);
  n.subnet = sn->str();
  if (n.gateway.empty()) n.gateway = format_ipv4(sn->first_host());
  TRY_CTX(validate_config(n), "create network");
  for (const NetworkConfig& o : others)
    if (sn->overlaps(o.parsed_subnet()))
      return Error(what + ": subnet " + n.subnet + " overlaps network " + o.name + " (" + o.subnet + ")",
                   EEXIST);
  if (n.created.empty()) n.created = now_rfc3339();

  std::string d = dir(n.name);
  TRY_CTX(fs::mkdir_p(d, 0700), what);
  Status st = fs::write_file_atomic(fs::join(d, "config.json"), network_to_json(n), 0600, /*durable=*/true);
  if (!st) {
    (void)fs::remove_tree(d);
    return std::move(st).error().context(what);
  }
  log::get("net")->info("network {}: created (bridge {}, subnet {})", n.name, n.bridge, n.subnet);
  return n;
}

StoreOptions store_options_from_env() {
  StoreOptions o;
  if (const char* s = std::getenv("STRATA_DEFAULT_SUBNET"); s != nullptr && *s != '\0') {
    o.default_subnet = s;
    o.default_subnet_configured = true;
  }
  return o;
}

Result<NetworkConfig> NetworkStore::ensure_default() {
  auto stale = [&](const NetworkConfig& n) {
    return opts_.default_subnet_configured && n.subnet != opts_.default_subnet;
  };
  auto n = get(opts_.default_network);
  if (n ? !stale(*n) : n.error().err() != ENOENT) return n;
  ASSIGN_OR_RETURN(StoreLock lk, lock());
  n = get(opts_.default_network);  // another process may have made it meanwhile
  if (n ? !stale(*n) : n.error().err() != ENOENT) return n;
  if (n) {
    std::string what = "default network " + n->name + " (subnet " + n->subnet + ")";
    auto attached = Leases(dir(n->name)).list();
    if (!attached) return std::move(attached).error().context(what);
    if (!attached->empty()) {
      std::vector<std::string> ids;
      for (const Attachment& a : *attached) ids.push_back(a.container_id.substr(0, 12));
      return Error(what + ": the configured default subnet is " + opts_.default_subnet +
                       ", but it cannot be changed while containers are attached: " + str::join(ids, ", "),
                   EBUSY);
    }
    TRY_CTX(remove_locked(*n), "change the subnet of the " + what + " to " + opts_.default_subnet);
  }
  NetworkConfig want;
  want.name = opts_.default_network;
  want.bridge = opts_.default_bridge;
  want.subnet = opts_.default_subnet;
  return create_locked(want);
}

Status NetworkStore::remove(const std::string& name) {
  std::string what = "remove network " + name;
  if (name == opts_.default_network) return Error(what + ": the default network cannot be removed", EPERM);
  ASSIGN_OR_RETURN(StoreLock lk, lock());
  auto n = get(name);
  if (!n) return std::move(n).error().context(what);
  Leases leases(dir(name));
  auto attached = leases.list();
  if (!attached) return std::move(attached).error().context(what);
  if (!attached->empty()) {
    std::vector<std::string> ids;
    for (const Attachment& a : *attached) ids.push_back(a.container_id.substr(0, 12));
    return Error(what + ": containers are attached: " + str::join(ids, ", "), EBUSY);
  }
  TRY_CTX(remove_locked(*n), what);
  return ok();
}

Status NetworkStore::remove_locked(const NetworkConfig& n) {
  ASSIGN_OR_RETURN(Firewall fw, Firewall::open(opts_.nft_table));
  TRY(fw.remove_network(n));
  ASSIGN_OR_RETURN(Netlink nl, Netlink::open());
  Status st = nl.delete_link(n.bridge);
  if (!st && st.error().err() != ENODEV) return std::move(st).error();
  TRY(fs::remove_tree(dir(n.name)));
  log::get("net")->info("network {}: removed", n.name);
  return ok();
}

}  // namespace strata::net
