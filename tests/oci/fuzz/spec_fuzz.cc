// libFuzzer target for the config.json parser (STYLE.md section 12): parse_spec() and
// parse_process() take untrusted bytes and must answer with a Spec or an Error, never crash,
// leak, throw or hang. Seeds: spec_fuzz_corpus/ (ok_*, bad_*, process_* as in spec_test.cc).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "oci/spec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto spec = strata::oci::parse_spec(text);
  if (spec.ok()) {
    // What later layers read first; a parsed Spec must be safe to walk.
    size_t binds = 0;
    for (const auto& m : spec->mounts) binds += m.is_bind() ? 1 : 0;
    (void)binds;
    (void)spec->linux.find_namespace(strata::oci::NamespaceType::kUser);
  } else if (spec.error().message().empty()) {
    __builtin_trap();  // every refusal must say why
  }
  auto process = strata::oci::parse_process(text);
  if (!process.ok() && process.error().message().empty()) __builtin_trap();
  return 0;
}
