// Fixture of the src/net integration tests (root): "containers" are network namespaces made
// with `ip netns add`; each one's hosts file is /etc/netns/<ns>/hosts, which `ip netns exec`
// bind-mounts over /etc/hosts, as strata bind-mounts a container's. Every name is unique to
// the test process: bridges stt<pid><x>, namespaces stt<pid>-<n>, nft table strata_t<pid>,
// subnets 10.213.<k>.0/24, store root in a temp dir. TearDown removes all of them even when
// the test failed half-way.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "net/attach.h"
#include "net/network.h"

namespace strata::net::it {

struct RunResult {
  int code = -1;
  std::string out;  // stdout and stderr
};

// Runs a shell command line, capturing its output.
RunResult sh(const std::string& cmd);

class NetTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // A network of this test: bridge stt<pid><tag>, subnet 10.213.<k+index>.0/24.
  NetworkConfig network(const std::string& tag, int index);
  // A "container": a fresh netns; returns its container id (64 hex).
  std::string container(const std::string& ns);
  AttachRequest request(const std::string& ns, const std::string& name, std::vector<std::string> aliases = {},
                        std::vector<PortMapping> ports = {});
  std::string ns_name(const std::string& ns) const { return "stt" + std::to_string(pid_) + "-" + ns; }
  std::string hosts_path(const std::string& ns) const { return "/etc/netns/" + ns_name(ns) + "/hosts"; }
  // Runs a command inside the netns (with its hosts file as /etc/hosts).
  RunResult in(const std::string& ns, const std::string& cmd);
  // Starts `busybox httpd` on port 80 in the netns, serving a page that holds `token`.
  void serve_http(const std::string& ns, const std::string& token);
  // Whether a link exists in the host namespace.
  static bool link_exists(const std::string& name);
  // The nft table's text, "" when it does not exist.
  std::string table_text();
  // A non-loopback IPv4 address of the host outside the test's subnets.
  static std::string host_address();

  pid_t pid_ = 0;
  std::string root_;
  std::string table_;
  std::optional<NetworkStore> store_;
  std::vector<std::string> namespaces_;
  std::vector<std::string> bridges_;
  std::vector<pid_t> servers_;
  std::vector<std::string> ids_;
};

}  // namespace strata::net::it
