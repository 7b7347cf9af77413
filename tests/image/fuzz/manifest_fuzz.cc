// libFuzzer target for the image metadata parsers (STYLE.md section 12): parse_manifest() (with
// no, a generic and a specific Content-Type), parse_image_config() and parse_reference() take
// untrusted bytes and must answer with a value or an Error that says why, never crash, leak,
// throw or hang. A parsed reference must print to a canonical form that parses back to itself.
// Seeds: manifest_fuzz_corpus/ (OCI and Docker manifests, indexes, configs, references).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "image/image_config.h"
#include "image/manifest.h"
#include "image/reference.h"

namespace {

void check_manifest(const strata::Result<strata::image::AnyManifest>& r) {
  using namespace strata::image;
  if (!r.ok()) {
    if (r.error().message().empty()) __builtin_trap();
    return;
  }
  if (const auto* index = std::get_if<Index>(&*r)) {
    // What the puller does next with an index.
    auto d = select_platform(*index, host_platform());
    if (!d.ok() && d.error().message().empty()) __builtin_trap();
  } else {
    const auto& m = std::get<Manifest>(*r);
    for (const auto& l : m.layers)
      if (!layer_compression(l.media_type) || l.size < 0) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strata::image;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  check_manifest(parse_manifest(text));
  check_manifest(parse_manifest(text, "application/json"));
  check_manifest(parse_manifest(text, media_type::kDockerManifestList));

  auto config = parse_image_config(text);
  if (!config.ok() && config.error().message().empty()) __builtin_trap();

  auto ref = parse_reference(text);
  if (ref.ok()) {
    auto again = parse_reference(ref->str());
    if (!again.ok() || !(*again == *ref)) __builtin_trap();
    (void)ref->familiar();
  } else if (ref.error().message().empty()) {
    __builtin_trap();
  }
  return 0;
}
