// The passwd/group parser behind --user and an image's User: both files are the container's
// own (hostile), and so may be the user string (an image's User). Invariant: a resolved user
// has every id in 0..kMaxId; anything else is an error, never a crash.
// Input: <user> NUL <passwd> NUL <group>.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "base/strings.h"
#include "sandbox/users.h"

using namespace strata;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t a = in.find('\0');
  std::string_view user = in.substr(0, a), passwd, group;
  if (a != std::string_view::npos) {
    std::string_view rest = in.substr(a + 1);
    size_t b = rest.find('\0');
    passwd = rest.substr(0, b);
    if (b != std::string_view::npos) group = rest.substr(b + 1);
  }
  auto r = sandbox::resolve_user_in(passwd, group, user);
  if (!r) return 0;
  bool bad = r->uid > str::kMaxId || r->gid > str::kMaxId;
  for (uint32_t g : r->additional_gids) bad = bad || g > str::kMaxId;
  if (bad) {
    std::fprintf(stderr, "an id out of range passed\n");
    std::abort();
  }
  return 0;
}
