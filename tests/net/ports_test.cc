#include "net/ports.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "base/fd.h"

namespace strata::net {
namespace {

PortMapping pm(std::string ip, uint16_t host, uint16_t ctr, std::string proto = "tcp") {
  return PortMapping{std::move(ip), host, ctr, std::move(proto)};
}

TEST(PortMapping, Forms) {
  auto r = parse_port_mapping("8080:80");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(*r, std::vector<PortMapping>{pm("0.0.0.0", 8080, 80)});

  r = parse_port_mapping("127.0.0.1:8080:80/udp");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(*r, std::vector<PortMapping>{pm("127.0.0.1", 8080, 80, "udp")});

  r = parse_port_mapping("80");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, std::vector<PortMapping>{pm("0.0.0.0", 0, 80)});

  r = parse_port_mapping("127.0.0.1::53/udp");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, std::vector<PortMapping>{pm("127.0.0.1", 0, 53, "udp")});

  r = parse_port_mapping("8080-8082:80-82");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, (std::vector<PortMapping>{pm("0.0.0.0", 8080, 80), pm("0.0.0.0", 8081, 81),
                                          pm("0.0.0.0", 8082, 82)}));
  EXPECT_EQ((*r)[0].str(), "0.0.0.0:8080->80/tcp");
}

TEST(PortMapping, EachMalformedFormHasItsMessage) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "publish \"\": no container port"},
      {"/tcp", "publish \"/tcp\": no container port"},
      {"8080:80/sctp", "publish \"8080:80/sctp\": protocol \"sctp\" is not tcp or udp"},
      {"1:2:3:4", "publish \"1:2:3:4\": expected [IP:][HOST:]CONTAINER[/tcp|udp]"},
      {"[::1]:80:80", "publish \"[::1]:80:80\": IPv6 host addresses are not supported"},
      {"1.2.3:8080:80", "publish \"1.2.3:8080:80\": host address \"1.2.3\" is not an IPv4 address"},
      {":80", "publish \":80\": empty host port (use \"CONTAINER\" for a random host port)"},
      {"8080:0", "publish \"8080:0\": container port \"0\" is not a port number (1-65535)"},
      {"8080:http", "publish \"8080:http\": container port \"http\" is not a port number (1-65535)"},
      {"65536:80", "publish \"65536:80\": host port \"65536\" is not a port number (1-65535)"},
      {"-1:80", "publish \"-1:80\": host port \"\" is not a port number (1-65535)"},
      {"8082-8080:80-82", "publish \"8082-8080:80-82\": host port range \"8082-8080\" is reversed"},
      {"8080-8081:80-82",
       "publish \"8080-8081:80-82\": host range 8080-8081 and container range 80-82 differ in length"},
      {"80-81", "publish \"80-81\": a container port range needs a host port range of the same length"},
      {"1000-3000:1000-3000",
       "publish \"1000-3000:1000-3000\": container port range \"1000-3000\" has more "
       "than 1024 ports"},
  };
  for (const auto& [in, msg] : cases) {
    auto r = parse_port_mapping(in);
    ASSERT_FALSE(r.ok()) << in << " was accepted";
    EXPECT_EQ(r.error().message(), msg) << in;
  }
}

TEST(PortMapping, Conflicts) {
  EXPECT_TRUE(ports_conflict(pm("0.0.0.0", 80, 1), pm("127.0.0.1", 80, 2)));
  EXPECT_TRUE(ports_conflict(pm("127.0.0.1", 80, 1), pm("127.0.0.1", 80, 2)));
  EXPECT_FALSE(ports_conflict(pm("127.0.0.1", 80, 1), pm("127.0.0.2", 80, 2)));
  EXPECT_FALSE(ports_conflict(pm("0.0.0.0", 80, 1), pm("0.0.0.0", 80, 1, "udp")));
  EXPECT_FALSE(ports_conflict(pm("0.0.0.0", 0, 1), pm("0.0.0.0", 0, 2)));
}

TEST(PortMapping, CheckPortsFreeSeesAListener) {
  // A listener on a kernel-chosen loopback port: that exact port must be reported in use.
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(s.valid());
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
  ASSERT_EQ(::listen(s.get(), 1), 0);
  socklen_t len = sizeof sa;
  ASSERT_EQ(::getsockname(s.get(), reinterpret_cast<sockaddr*>(&sa), &len), 0);
  uint16_t port = ntohs(sa.sin_port);

  Status st = check_ports_free({pm("0.0.0.0", port, 80)});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "port " + std::to_string(port) + "/tcp on 0.0.0.0 is already in use");
  EXPECT_EQ(st.error().err(), EADDRINUSE);
  // udp on the same number is another port.
  EXPECT_TRUE(check_ports_free({pm("127.0.0.1", port, 80, "udp")}).ok());
  s.reset();
  EXPECT_TRUE(check_ports_free({pm("0.0.0.0", port, 80)}).ok());

  st = check_ports_free({pm("0.0.0.0", 18080, 80), pm("127.0.0.1", 18080, 81)});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message(), "port 18080/tcp on 127.0.0.1 is published twice");
  auto free_port = pick_free_port("tcp", "127.0.0.1");
  ASSERT_TRUE(free_port.ok());
  EXPECT_NE(*free_port, 0);
}

}  // namespace
}  // namespace strata::net
