#include "net/firewall.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/log.h"
#include "base/strings.h"

namespace strata::net {
namespace {

using Json = nlohmann::json;
constexpr std::string_view kNetworkTag = "strata:n:";
constexpr std::string_view kContainerTag = "strata:c:";

}  // namespace

std::string container_rule_comment(const std::string& container_id) {
  return std::string(kContainerTag) + container_id;
}
std::string network_rule_comment(const std::string& network) { return std::string(kNetworkTag) + network; }

Result<Firewall> Firewall::open(std::string table) {
  ASSIGN_OR_RETURN(Nft nft, Nft::open());
  return Firewall(std::move(nft), std::move(table));
}

Result<Firewall::Listing> Firewall::list() {
  try {
    return list_unchecked();
  } catch (const nlohmann::json::exception& e) {
    return Error("list nft table ip " + table_ + ": unexpected JSON from libnftables: " + e.what());
  }
}

// May throw nlohmann's exceptions on JSON of an unexpected shape; list() catches them.
Result<Firewall::Listing> Firewall::list_unchecked() {
  Listing out;
  ASSIGN_OR_RETURN(std::string tables, nft_.list_json("list tables ip"));
  // The caller's names are validated (network.cc) so they never need quoting in nft text;
  // nft's JSON is parsed without exceptions and every field read is type-checked.
  auto find_table = [&](const Json& j) {
    if (!j.is_object() || !j.contains("nftables") || !j["nftables"].is_array()) return false;
    for (const Json& item : j["nftables"])
      if (item.is_object() && item.contains("table") && item["table"].is_object() &&
          item["table"].value("name", "") == table_)
        return true;
    return false;
  };
  Json tj = Json::parse(tables, nullptr, false);
  if (tj.is_discarded()) return Error("list nft tables: unparsable JSON from libnftables");
  out.table_exists = find_table(tj);
  if (!out.table_exists) return out;

  ASSIGN_OR_RETURN(std::string text, nft_.list_json("list table ip " + table_));
  Json j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("nftables") || !j["nftables"].is_array())
    return Error("list nft table ip " + table_ + ": unparsable JSON from libnftables");
  for (const Json& item : j["nftables"]) {
    if (!item.is_object()) continue;
    if (auto r = item.find("rule"); r != item.end() && r->is_object()) {
      FirewallRule rule;
      rule.chain = r->value("chain", "");
      if (auto h = r->find("handle"); h != r->end() && h->is_number_unsigned())
        rule.handle = h->get<uint64_t>();
      if (auto c = r->find("comment"); c != r->end() && c->is_string()) rule.comment = c->get<std::string>();
      out.rules.push_back(std::move(rule));
    } else if (auto s = item.find("set");
               s != item.end() && s->is_object() && s->value("name", "") == "bridges") {
      if (auto e = s->find("elem"); e != s->end()) {
        if (e->is_string()) out.bridges.push_back(e->get<std::string>());
        if (e->is_array())
          for (const Json& x : *e)
            if (x.is_string()) out.bridges.push_back(x.get<std::string>());
      }
    }
  }
  return out;
}

Result<std::vector<FirewallRule>> Firewall::rules() {
  ASSIGN_OR_RETURN(Listing l, list());
  return l.rules;
}

Status Firewall::ensure_network(const NetworkConfig& net) {
  std::string what = "set up nft rules of network " + net.name + " in table ip " + table_;
  auto l = list();
  if (!l) return std::move(l).error().context(what);
  const std::string t = "ip " + table_;
  std::string batch;
  if (!l->table_exists) {
    batch += "add table " + t + "\n";
    batch += "add set " + t + " bridges { type ifname; }\n";
    batch += "add chain " + t + " hostports\n";
    batch += "add chain " + t + " prerouting { type nat hook prerouting priority dstnat; policy accept; }\n";
    batch += "add rule " + t + " prerouting fib daddr type local jump hostports\n";
    batch += "add chain " + t + " output { type nat hook output priority -100; policy accept; }\n";
    batch += "add rule " + t + " output fib daddr type local jump hostports\n";
    batch +=
        "add chain " + t + " postrouting { type nat hook postrouting priority srcnat; policy accept; }\n";
    batch += "add chain " + t + " forward { type filter hook forward priority filter; policy accept; }\n";
  }
  const std::string tag = network_rule_comment(net.name);
  bool have_rules =
      std::any_of(l->rules.begin(), l->rules.end(), [&](const auto& r) { return r.comment == tag; });
  if (std::find(l->bridges.begin(), l->bridges.end(), net.bridge) == l->bridges.end())
    batch += "add element " + t + " bridges { \"" + net.bridge + "\" }\n";
  if (!have_rules) {
    const std::string br = "\"" + net.bridge + "\"";
    const std::string c = " comment \"" + tag + "\"\n";
    const std::string& sn = net.subnet;
    batch += "add rule " + t + " postrouting oifname " + br + " ip saddr 127.0.0.0/8 masquerade" + c;
    batch +=
        "add rule " + t + " postrouting oifname " + br + " ip saddr " + sn + " ct status dnat masquerade" + c;
    if (!net.internal) {
      batch += "add rule " + t + " postrouting ip saddr " + sn + " ip daddr != " + sn + " masquerade" + c;
      batch +=
          "add rule " + t + " forward iifname " + br + " oifname != " + br + " oifname @bridges drop" + c;
    } else {
      batch += "add rule " + t + " forward iifname " + br + " oifname != " + br + " drop" + c;
      batch += "add rule " + t + " forward oifname " + br + " iifname != " + br + " drop" + c;
    }
  }
  if (batch.empty()) return ok();
  return nft_.run(batch, what);
}

void Firewall::delete_rules_with_comment(const Listing& l, const std::string& comment, std::string& batch) {
  for (const FirewallRule& r : l.rules)
    if (r.comment == comment && r.handle != 0)
      batch += "delete rule ip " + table_ + " " + r.chain + " handle " + std::to_string(r.handle) + "\n";
}

Status Firewall::remove_network(const NetworkConfig& net) {
  std::string what = "remove nft rules of network " + net.name + " from table ip " + table_;
  auto l = list();
  if (!l) return std::move(l).error().context(what);
  if (!l->table_exists) return ok();
  std::string batch;
  delete_rules_with_comment(*l, network_rule_comment(net.name), batch);
  if (std::find(l->bridges.begin(), l->bridges.end(), net.bridge) != l->bridges.end())
    batch += "delete element ip " + table_ + " bridges { \"" + net.bridge + "\" }\n";
  bool others = std::any_of(l->rules.begin(), l->rules.end(), [&](const FirewallRule& r) {
    return str::starts_with(r.comment, kNetworkTag) && r.comment != network_rule_comment(net.name);
  });
  // The last network gone: the table goes too, leaving the host's ruleset as it was.
  if (!others) batch = "delete table ip " + table_ + "\n";
  if (batch.empty()) return ok();
  return nft_.run(batch, what);
}

Status Firewall::add_container(const std::string& container_id, const std::string& ip,
                               const std::vector<PortMapping>& ports) {
  if (ports.empty()) return ok();
  const std::string c = " comment \"" + container_rule_comment(container_id) + "\"\n";
  std::string batch;
  for (const PortMapping& p : ports) {
    if (p.host_port == 0) return Error("publish " + p.str() + ": host port not resolved");
    batch += "add rule ip " + table_ + " hostports ";
    if (p.host_ip != "0.0.0.0") batch += "ip daddr " + p.host_ip + " ";
    batch += p.proto + " dport " + std::to_string(p.host_port) + " dnat to " + ip + ":" +
             std::to_string(p.container_port) + c;
  }
  return nft_.run(batch, "publish ports of container " + container_id.substr(0, 12));
}

Status Firewall::remove_container(const std::string& container_id) {
  std::string what = "remove nft rules of container " + container_id.substr(0, 12);
  auto l = list();
  if (!l) return std::move(l).error().context(what);
  std::string batch;
  delete_rules_with_comment(*l, container_rule_comment(container_id), batch);
  if (batch.empty()) return ok();
  return nft_.run(batch, what);
}

}  // namespace strata::net
