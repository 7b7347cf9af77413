// strata network create | ls | inspect | rm (podman's names and output).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/strata_commands.h"
#include "net/attach.h"
#include "net/network.h"

namespace strata::cli {

namespace {

using Json = nlohmann::json;

Json network_json(const net::NetworkStore& store, const net::NetworkConfig& n) {
  Json containers = Json::object();
  if (auto att = net::attachments(store, n.name)) {
    for (const auto& a : *att) {
      containers[a.container_id] = {
          {"name", a.name}, {"ip", a.ip + "/" + std::to_string(a.prefix)}, {"mac", a.mac}};
    }
  }
  return {{"name", n.name},
          {"driver", "bridge"},
          {"network_interface", n.bridge},
          {"subnets", {{{"subnet", n.subnet}, {"gateway", n.gateway}}}},
          {"internal", n.internal},
          {"created", n.created},
          {"containers", containers}};
}

}  // namespace

void add_network_commands(CLI::App& app, Globals& g) {
  CLI::App* netc = app.add_subcommand("network", "Manage container networks");
  netc->require_subcommand(1);

  auto* want = new net::NetworkConfig();
  CLI::App* create = netc->add_subcommand("create", "Create a bridge network (isolated from the others)");
  create->add_option("--subnet", want->subnet, "Subnet, e.g. 10.89.5.0/24 (default: a free /24)");
  create->add_option("--gateway", want->gateway, "Gateway address (default: the subnet's first)");
  create->add_option("--interface-name", want->bridge, "Bridge name (default: strataN)");
  create->add_flag("--internal", want->internal, "No traffic to or from outside the network");
  create->add_option("name", want->name, "Network name")->required();
  create->callback([&g, want] {
    auto store = net::NetworkStore::open(g.root);
    if (!store) {
      g.exit_code = fail(store.error());
      return;
    }
    auto n = store->create(*want);
    if (!n) {
      g.exit_code = fail(n.error().context("network create " + want->name));
      return;
    }
    std::printf("%s\n", n->name.c_str());
  });

  auto* format = new std::string();
  CLI::App* ls = netc->add_subcommand("ls", "List networks");
  ls->alias("list");
  ls->add_option("--format", *format, "table or json");
  ls->callback([&g, format] {
    auto store = net::NetworkStore::open(g.root);
    if (!store) {
      g.exit_code = fail(store.error());
      return;
    }
    (void)store->ensure_default();
    auto nets = store->list();
    if (*format == "json") {
      Json out = Json::array();
      for (const auto& n : nets) out.push_back(network_json(*store, n));
      std::printf("%s\n", out.dump(4).c_str());
      return;
    }
    std::printf("%-24s %-12s %-20s %s\n", "NAME", "BRIDGE", "SUBNET", "CONTAINERS");
    for (const auto& n : nets) {
      auto att = net::attachments(*store, n.name);
      std::printf("%-24s %-12s %-20s %zu\n", n.name.c_str(), n.bridge.c_str(), n.subnet.c_str(),
                  att ? att->size() : 0);
    }
  });

  auto* inames = new std::vector<std::string>();
  CLI::App* inspect = netc->add_subcommand("inspect", "Show networks as JSON");
  inspect->add_option("names", *inames, "Network names")->required();
  inspect->callback([&g, inames] {
    auto store = net::NetworkStore::open(g.root);
    if (!store) {
      g.exit_code = fail(store.error());
      return;
    }
    Json out = Json::array();
    for (const auto& name : *inames) {
      auto n = store->get(name);
      if (!n) {
        g.exit_code = fail(n.error());
        continue;
      }
      out.push_back(network_json(*store, *n));
    }
    std::printf("%s\n", out.dump(4).c_str());
  });

  auto* rnames = new std::vector<std::string>();
  CLI::App* rm = netc->add_subcommand("rm", "Remove networks (refused while containers use them)");
  rm->add_option("names", *rnames, "Network names")->required();
  rm->callback([&g, rnames] {
    auto store = net::NetworkStore::open(g.root);
    if (!store) {
      g.exit_code = fail(store.error());
      return;
    }
    for (const auto& name : *rnames) {
      Status s = store->remove(name);
      if (!s.ok()) {
        g.exit_code = fail(s.error().context("network rm " + name));
        continue;
      }
      std::printf("%s\n", name.c_str());
    }
  });
}

}  // namespace strata::cli
