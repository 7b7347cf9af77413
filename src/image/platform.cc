// Platforms (image-spec image-index.md "platform"): the host's, in Go's GOOS/GOARCH spelling
// that registries use, and the choice of one manifest from an index.
#include <sys/utsname.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/strings.h"
#include "image/manifest.h"
#include "image/shown_name.h"

namespace strata::image {
namespace {

struct ArchName {
  const char* machine;  // uname -m
  const char* arch;     // GOARCH
  const char* variant;
};

// uname machine names as the kernel reports them; arm variants as containerd's platforms
// package derives them (armv7l -> arm/v7, aarch64 -> arm64/v8).
constexpr ArchName kArches[] = {
    {"x86_64", "amd64", ""},   {"aarch64", "arm64", "v8"},
    {"arm64", "arm64", "v8"},  {"armv8l", "arm", "v8"},
    {"armv7l", "arm", "v7"},   {"armv6l", "arm", "v6"},
    {"armv5tel", "arm", "v5"}, {"i386", "386", ""},
    {"i686", "386", ""},       {"ppc64le", "ppc64le", ""},
    {"s390x", "s390x", ""},    {"riscv64", "riscv64", ""},
    {"mips64", "mips64", ""},  {"loongarch64", "loong64", ""},
};

}  // namespace

Platform host_platform() {
  Platform p;
  p.os = "linux";
  utsname u{};
  if (uname(&u) != 0) return p;
  p.architecture = u.machine;
  for (const auto& a : kArches) {
    if (std::strcmp(u.machine, a.machine) == 0) {
      p.architecture = a.arch;
      p.variant = a.variant;
      break;
    }
  }
  return p;
}

std::string platform_string(const Platform& p) {
  std::string s = p.os + "/" + p.architecture;
  if (!p.variant.empty()) s += "/" + p.variant;
  return s;
}

Result<Platform> parse_platform(std::string_view s) {
  std::vector<std::string> parts = str::split(s, '/');
  bool empty_part = std::any_of(parts.begin(), parts.end(), [](const std::string& x) { return x.empty(); });
  if (parts.size() < 2 || parts.size() > 3 || empty_part)
    return Error("invalid platform \"" + std::string(s) + "\": want os/arch[/variant]");
  Platform p;
  p.os = parts[0];
  p.architecture = parts[1];
  if (parts.size() == 3) p.variant = parts[2];
  return p;
}

Result<Descriptor> select_platform(const Index& index, const Platform& want) {
  const Descriptor* unvariant = nullptr;
  std::string offered;
  size_t not_shown = 0;
  for (const auto& d : index.manifests) {
    if (!d.platform || !is_manifest_media_type(d.media_type)) continue;
    const Platform& p = *d.platform;
    if (p.os == "unknown") continue;  // buildx attestation manifests
    // The index is the registry's: its list is shown cut, and an odd platform escaped.
    if (offered.size() > kShownNameBytes) {
      ++not_shown;
    } else {
      std::string ps = platform_string(p);
      if (!offered.empty()) offered += ", ";
      bool plain =
          ps.size() <= 64 && std::all_of(ps.begin(), ps.end(), [](char c) { return c > 0x20 && c < 0x7F; });
      offered += plain ? ps : shown_name(ps);
    }
    if (p.os != want.os || p.architecture != want.architecture) continue;
    if (p.variant == want.variant) return d;
    if (p.variant.empty() && unvariant == nullptr) unvariant = &d;
  }
  if (unvariant != nullptr) return *unvariant;
  if (not_shown > 0) offered += " and " + std::to_string(not_shown) + " more";
  return Error("no image for " + platform_string(want) + " in the index; it offers " +
               (offered.empty() ? std::string("no image manifests with a platform") : offered));
}

}  // namespace strata::image
