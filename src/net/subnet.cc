#include "net/subnet.h"

#include <vector>

#include "base/strings.h"

namespace strata::net {

std::optional<uint32_t> parse_ipv4(std::string_view s) {
  std::vector<std::string> parts = str::split(s, '.');
  if (parts.size() != 4) return std::nullopt;
  uint32_t out = 0;
  for (const std::string& part : parts) {
    // No sign, no leading zeros (they read as octal to inet_aton), at most 3 digits.
    if (part.empty() || part.size() > 3 || (part.size() > 1 && part[0] == '0')) return std::nullopt;
    for (char c : part)
      if (c < '0' || c > '9') return std::nullopt;
    auto v = str::parse_uint(part);
    if (!v || *v > 255) return std::nullopt;
    out = (out << 8) | static_cast<uint32_t>(*v);
  }
  return out;
}

std::string format_ipv4(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 0xff) + "." +
         std::to_string((a >> 8) & 0xff) + "." + std::to_string(a & 0xff);
}

Result<Subnet> Subnet::parse(std::string_view s) {
  std::string shown = "subnet \"" + std::string(s) + "\"";
  size_t slash = s.find('/');
  if (slash == std::string_view::npos) return Error(shown + ": expected ADDRESS/PREFIX, e.g. 10.89.0.0/24");
  auto addr = parse_ipv4(s.substr(0, slash));
  if (!addr) return Error(shown + ": \"" + std::string(s.substr(0, slash)) + "\" is not an IPv4 address");
  std::string_view p = s.substr(slash + 1);
  auto prefix = str::parse_uint(p);
  if (p.empty() || p.size() > 2 || !prefix || *prefix > 32)
    return Error(shown + ": prefix length must be a number from 0 to 32");
  Subnet sn;
  sn.prefix = static_cast<int>(*prefix);
  sn.addr = *addr & sn.mask();
  if (sn.addr != *addr) return Error(shown + ": host bits are set (the network address is " + sn.str() + ")");
  return sn;
}

std::string Subnet::str() const { return format_ipv4(addr) + "/" + std::to_string(prefix); }

bool Subnet::overlaps(const Subnet& o) const {
  int p = std::min(prefix, o.prefix);
  uint32_t m = p == 0 ? 0 : ~uint32_t{0} << (32 - p);
  return (addr & m) == (o.addr & m);
}

}  // namespace strata::net
