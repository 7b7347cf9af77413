#include "net/subnet.h"

#include <gtest/gtest.h>

namespace strata::net {
namespace {

TEST(Ipv4, ParseAndFormat) {
  EXPECT_EQ(parse_ipv4("10.89.0.2"), 0x0a590002u);
  EXPECT_EQ(parse_ipv4("255.255.255.255"), 0xffffffffu);
  EXPECT_EQ(parse_ipv4("0.0.0.0"), 0u);
  EXPECT_EQ(format_ipv4(0x0a590002u), "10.89.0.2");
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "1.2.3.256", "01.2.3.4", "1..3.4", "a.b.c.d", "1.2.3.4 ",
                          "-1.2.3.4", "1.2.3.", "1234.1.1.1"})
    EXPECT_FALSE(parse_ipv4(bad)) << bad;
}

TEST(Subnet, ParseMathAndStr) {
  auto s = Subnet::parse("10.89.0.0/24");
  ASSERT_TRUE(s.ok()) << s.error().to_string();
  EXPECT_EQ(s->str(), "10.89.0.0/24");
  EXPECT_EQ(s->mask(), 0xffffff00u);
  EXPECT_EQ(format_ipv4(s->broadcast()), "10.89.0.255");
  EXPECT_EQ(format_ipv4(s->first_host()), "10.89.0.1");
  EXPECT_EQ(format_ipv4(s->last_host()), "10.89.0.254");
  EXPECT_TRUE(s->contains(*parse_ipv4("10.89.0.77")));
  EXPECT_FALSE(s->contains(*parse_ipv4("10.89.1.1")));
  auto all = Subnet::parse("0.0.0.0/0");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->mask(), 0u);
  EXPECT_TRUE(all->contains(0xdeadbeef));
  auto one = Subnet::parse("10.0.0.7/32");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->first_host(), one->last_host());
}

TEST(Subnet, Overlaps) {
  Subnet a = *Subnet::parse("10.89.0.0/16");
  Subnet b = *Subnet::parse("10.89.3.0/24");
  Subnet c = *Subnet::parse("10.90.0.0/24");
  EXPECT_TRUE(a.overlaps(b));
  EXPECT_TRUE(b.overlaps(a));
  EXPECT_FALSE(a.overlaps(c));
  EXPECT_FALSE(b.overlaps(*Subnet::parse("10.89.4.0/24")));
}

TEST(Subnet, BadInputMessages) {
  auto expect = [](const char* in, const char* msg) {
    auto r = Subnet::parse(in);
    ASSERT_FALSE(r.ok()) << in;
    EXPECT_EQ(r.error().message(), msg) << in;
  };
  expect("10.89.0.0", "subnet \"10.89.0.0\": expected ADDRESS/PREFIX, e.g. 10.89.0.0/24");
  expect("10.89.0/24", "subnet \"10.89.0/24\": \"10.89.0\" is not an IPv4 address");
  expect("10.89.0.0/33", "subnet \"10.89.0.0/33\": prefix length must be a number from 0 to 32");
  expect("10.89.0.0/", "subnet \"10.89.0.0/\": prefix length must be a number from 0 to 32");
  expect("10.89.0.0/x", "subnet \"10.89.0.0/x\": prefix length must be a number from 0 to 32");
  expect("10.89.0.1/24", "subnet \"10.89.0.1/24\": host bits are set (the network address is 10.89.0.0/24)");
}

}  // namespace
}  // namespace strata::net
