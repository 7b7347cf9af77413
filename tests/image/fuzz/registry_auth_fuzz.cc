// libFuzzer target for what a registry (or anything answering in its place) sends the client
// before any digest protects it: the WWW-Authenticate header and the token server's JSON.
// Both must answer with a value or an Error that says why; never crash, throw or hang.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "image/registry_auth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto challenges = strata::image::parse_www_authenticate(in);
  if (challenges.ok()) {
    for (const auto& c : *challenges) {
      if (c.scheme.empty()) __builtin_trap();
      (void)c.param("realm");
    }
  } else if (challenges.error().message().empty()) {
    __builtin_trap();
  }
  auto token = strata::image::parse_token_response(in);
  if (token.ok() && (token->token.empty() || token->expires_in.count() < 60)) __builtin_trap();
  if (!token.ok() && token.error().message().empty()) __builtin_trap();
  return 0;
}
