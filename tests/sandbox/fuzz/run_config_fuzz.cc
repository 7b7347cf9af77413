// The image-config-to-container-spec path of `strata run`: an image config (hostile: it comes
// from any registry) parsed, merged with an empty request, its user resolved against a passwd
// and group of the image's, and turned into config.json. The invariant: whatever passes the
// checks on the way must make a config.json that the runtime's own parser accepts, with ids in
// range; anything else is refused with an error, never a crash.
// Input: <config JSON> NUL <passwd> NUL <group>.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "base/strings.h"
#include "image/image_config.h"
#include "oci/spec.h"
#include "sandbox/run_config.h"
#include "sandbox/spec_builder.h"
#include "sandbox/users.h"

using namespace strata;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t a = in.find('\0');
  std::string_view config = in.substr(0, a);
  std::string_view passwd, group;
  if (a != std::string_view::npos) {
    std::string_view rest = in.substr(a + 1);
    size_t b = rest.find('\0');
    passwd = rest.substr(0, b);
    if (b != std::string_view::npos) group = rest.substr(b + 1);
  }
  auto img = image::parse_image_config(config);
  if (!img) return 0;
  auto c = sandbox::make_container_config(&*img, sandbox::RunRequest{});
  if (!c) return 0;
  auto user = sandbox::resolve_user_in(passwd, group, c->user);
  if (!user) return 0;
  if (user->uid > str::kMaxId || user->gid > str::kMaxId) {
    std::fprintf(stderr, "an id out of range passed: %u:%u\n", user->uid, user->gid);
    std::abort();
  }
  sandbox::ContainerRecord rec;
  rec.id = std::string(64, 'a');
  rec.name = "fuzz";
  rec.config = std::move(*c);
  // As launch() does on the first start: each anonymous volume gets its directory.
  for (size_t i = 0; i < rec.config.volumes.size(); ++i) {
    if (rec.config.volumes[i].source.empty())
      rec.config.volumes[i].source = "/run/strata-fuzz/volumes/" + std::to_string(i);
  }
  sandbox::SpecPaths paths{"/run/strata-fuzz", user->uid, user->gid, user->additional_gids};
  auto spec = sandbox::build_spec(rec, paths);
  if (!spec) {
    std::fprintf(stderr, "a checked config made no spec: %s\n", spec.error().to_string().c_str());
    std::abort();
  }
  auto parsed = oci::parse_spec(*spec);
  if (!parsed) {
    std::fprintf(stderr, "the runtime refuses the spec of a checked config: %s\n",
                 parsed.error().to_string().c_str());
    std::abort();
  }
  return 0;
}
