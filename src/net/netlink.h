// A route-netlink socket (libmnl) and the few link, address and route requests strata needs.
// A socket belongs to the network namespace it was created in for its whole life, so
// open_in_netns() creates one inside a container's namespace without moving this process.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "base/error.h"

struct mnl_socket;

namespace strata::net {

using Mac = std::array<uint8_t, 6>;

class Netlink {
 public:
  // A socket in this thread's network namespace.
  static Result<Netlink> open();
  // A socket in the namespace at netns_path (/proc/<pid>/ns/net or a bind-mounted netns): the
  // socket is made by a short-lived thread that setns()es first, so no thread of the caller
  // ever changes namespace.
  static Result<Netlink> open_in_netns(const std::string& netns_path);

  // ifindex of a link; ENODEV when there is none by that name.
  Result<int> link_index(const std::string& name);
  // A bridge; EEXIST passed through as an error with that errno.
  Status create_bridge(const std::string& name);
  // A veth pair whose peer is created directly inside the namespace `peer_netns_fd` under
  // `peer_name` (so "eth0" never exists in this namespace, where it may be taken).
  Status create_veth(const std::string& name, const std::string& peer_name, int peer_netns_fd,
                     const Mac& peer_mac);
  // Enslaves to master (when given) and sets the link up.
  Status set_up(int index, std::optional<int> master = std::nullopt);
  // EEXIST passed through.
  Status add_address(int index, uint32_t addr, int prefix);
  Status add_default_route(int index, uint32_t gateway);
  // ENODEV passed through.
  Status delete_link(const std::string& name);

 private:
  struct Closer {
    void operator()(mnl_socket* s) const;
  };
  explicit Netlink(std::unique_ptr<mnl_socket, Closer> s, unsigned portid)
      : nl_(std::move(s)), portid_(portid) {}
  // Sends one request with NLM_F_ACK and reads until its ack; `on_reply` sees data replies.
  Status transact(void* nlh, const std::string& what, int (*on_reply)(const void*, void*) = nullptr,
                  void* data = nullptr);

  std::unique_ptr<mnl_socket, Closer> nl_;
  unsigned portid_ = 0;
  uint32_t seq_ = 0;
};

}  // namespace strata::net
