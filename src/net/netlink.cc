#include "net/netlink.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <libmnl/libmnl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sched.h>

#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "net/subnet.h"

namespace strata::net {
namespace {

nlmsghdr* start(char* buf, uint16_t type, uint16_t flags) {
  nlmsghdr* nlh = mnl_nlmsg_put_header(buf);
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  return nlh;
}

ifinfomsg* put_ifinfo(nlmsghdr* nlh, int index = 0) {
  auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
  ifi->ifi_family = AF_UNSPEC;
  ifi->ifi_index = index;
  return ifi;
}

}  // namespace

void Netlink::Closer::operator()(mnl_socket* s) const { mnl_socket_close(s); }

Result<Netlink> Netlink::open() {
  mnl_socket* raw = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
  if (!raw) return Error::sys("open netlink socket");
  std::unique_ptr<mnl_socket, Closer> s(raw);
  if (mnl_socket_bind(s.get(), 0, MNL_SOCKET_AUTOPID) < 0) return Error::sys("bind netlink socket");
  return Netlink(std::move(s), mnl_socket_get_portid(s.get()));
}

Result<Netlink> Netlink::open_in_netns(const std::string& netns_path) {
  UniqueFd ns(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns) return Error::sys("open network namespace " + netns_path);
  Result<Netlink> out = Error("netlink socket in " + netns_path + ": not made");
  try {
    // setns(CLONE_NEWNET) changes only the calling thread; the thread ends right after, and
    // the socket it made stays bound to the namespace it was created in.
    std::thread t([&] {
      if (::setns(ns.get(), CLONE_NEWNET) != 0) {
        out = Error::sys("enter network namespace " + netns_path);
        return;
      }
      out = open();
    });
    t.join();
  } catch (const std::system_error& e) {
    return Error("start a thread to enter " + netns_path + ": " + e.what(), e.code().value());
  }
  if (!out) return std::move(out).error().context("netlink in " + netns_path);
  return out;
}

Status Netlink::transact(void* msg, const std::string& what, int (*on_reply)(const void*, void*),
                         void* data) {
  auto* nlh = static_cast<nlmsghdr*>(msg);
  nlh->nlmsg_seq = ++seq_;
  if (mnl_socket_sendto(nl_.get(), nlh, nlh->nlmsg_len) < 0) return Error::sys(what + ": netlink send");
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  struct Ctx {
    int (*fn)(const void*, void*);
    void* data;
  } ctx{on_reply, data};
  auto cb = [](const nlmsghdr* n, void* p) -> int {
    auto* c = static_cast<Ctx*>(p);
    if (c->fn) return c->fn(n, c->data);
    return MNL_CB_OK;
  };
  for (;;) {
    ssize_t n = mnl_socket_recvfrom(nl_.get(), buf.data(), buf.size());
    if (n < 0) return Error::sys(what + ": netlink receive");
    // An NLMSG_ERROR carrying a non-zero error makes mnl_cb_run return -1 with errno set.
    int r = mnl_cb_run(buf.data(), n, seq_, portid_, cb, &ctx);
    if (r < 0) return Error::sys(what);
    if (r == MNL_CB_STOP) return ok();
  }
}

Result<int> Netlink::link_index(const std::string& name) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = start(buf.data(), RTM_GETLINK, 0);
  put_ifinfo(nlh);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  int index = 0;
  auto on_reply = [](const void* m, void* p) -> int {
    auto* n = static_cast<const nlmsghdr*>(m);
    if (n->nlmsg_type == RTM_NEWLINK)
      *static_cast<int*>(p) = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(n))->ifi_index;
    return MNL_CB_OK;
  };
  TRY(transact(nlh, "look up link " + name, on_reply, &index));
  if (index <= 0) return Error("look up link " + name + ": no index in the answer", ENODEV);
  return index;
}

Status Netlink::create_bridge(const std::string& name) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = start(buf.data(), RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  put_ifinfo(nlh);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  nlattr* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "bridge");
  mnl_attr_nest_end(nlh, info);
  return transact(nlh, "create bridge " + name);
}

Status Netlink::create_veth(const std::string& name, const std::string& peer_name, int peer_netns_fd,
                            const Mac& peer_mac) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = start(buf.data(), RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
  put_ifinfo(nlh);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  nlattr* info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
  mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
  nlattr* data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
  nlattr* peer = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
  // VETH_INFO_PEER's payload is a whole link message: an ifinfomsg, then its attributes.
  auto* pifi = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload_tail(nlh));
  std::memset(pifi, 0, sizeof *pifi);
  pifi->ifi_family = AF_UNSPEC;
  nlh->nlmsg_len += MNL_ALIGN(sizeof(ifinfomsg));
  mnl_attr_put_strz(nlh, IFLA_IFNAME, peer_name.c_str());
  mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
  mnl_attr_put(nlh, IFLA_ADDRESS, peer_mac.size(), peer_mac.data());
  mnl_attr_nest_end(nlh, peer);
  mnl_attr_nest_end(nlh, data);
  mnl_attr_nest_end(nlh, info);
  return transact(nlh, "create veth " + name + " with peer " + peer_name);
}

Status Netlink::set_up(int index, std::optional<int> master) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = start(buf.data(), RTM_NEWLINK, 0);
  ifinfomsg* ifi = put_ifinfo(nlh, index);
  ifi->ifi_flags = IFF_UP;
  ifi->ifi_change = IFF_UP;
  if (master) mnl_attr_put_u32(nlh, IFLA_MASTER, static_cast<uint32_t>(*master));
  return transact(nlh, "set link " + std::to_string(index) + " up" +
                           (master ? " on master " + std::to_string(*master) : std::string()));
}

Status Netlink::add_address(int index, uint32_t addr, int prefix) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = start(buf.data(), RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL);
  auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
  ifa->ifa_family = AF_INET;
  ifa->ifa_prefixlen = static_cast<uint8_t>(prefix);
  ifa->ifa_scope = RT_SCOPE_UNIVERSE;
  ifa->ifa_index = static_cast<uint32_t>(index);
  uint32_t a = htonl(addr);
  mnl_attr_put_u32(nlh, IFA_LOCAL, a);
  mnl_attr_put_u32(nlh, IFA_ADDRESS, a);
  if (prefix < 31) {
    Subnet sn{addr & (prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix)), prefix};
    mnl_attr_put_u32(nlh, IFA_BROADCAST, htonl(sn.broadcast()));
  }
  return transact(nlh, "add address " + format_ipv4(addr) + "/" + std::to_string(prefix) + " to link " +
                           std::to_string(index));
}

Status Netlink::add_default_route(int index, uint32_t gateway) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = start(buf.data(), RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL);
  auto* rtm = static_cast<rtmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(rtmsg)));
  rtm->rtm_family = AF_INET;
  rtm->rtm_table = RT_TABLE_MAIN;
  rtm->rtm_protocol = RTPROT_BOOT;
  rtm->rtm_scope = RT_SCOPE_UNIVERSE;
  rtm->rtm_type = RTN_UNICAST;
  mnl_attr_put_u32(nlh, RTA_GATEWAY, htonl(gateway));
  mnl_attr_put_u32(nlh, RTA_OIF, static_cast<uint32_t>(index));
  return transact(nlh, "add default route via " + format_ipv4(gateway));
}

Status Netlink::delete_link(const std::string& name) {
  std::vector<char> buf(MNL_SOCKET_BUFFER_SIZE);
  nlmsghdr* nlh = start(buf.data(), RTM_DELLINK, 0);
  put_ifinfo(nlh);
  mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
  return transact(nlh, "delete link " + name);
}

}  // namespace strata::net
