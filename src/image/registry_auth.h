// Registry authentication pieces that do no I/O: WWW-Authenticate challenges (RFC 7235
// section 4.1, as the distribution token spec uses them), token-server answers and the
// per-scope token cache shared by the threads of one RegistryClient.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"

namespace strata::image {

struct AuthChallenge {
  std::string scheme;                         // lower case: "bearer", "basic"
  std::map<std::string, std::string> params;  // keys lower case, values unquoted
  std::string param(const std::string& key) const {
    auto it = params.find(key);
    return it == params.end() ? std::string() : it->second;
  }
};

// Parses one WWW-Authenticate header value, which may hold several challenges:
//   Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull,push"
// Quoted values may contain commas and backslash escapes. Malformed input is an error.
Result<std::vector<AuthChallenge>> parse_www_authenticate(std::string_view header);

struct BearerToken {
  std::string token;
  std::chrono::seconds expires_in{60};
};
// A token server's JSON answer: "token" or "access_token" (the first non-empty), and
// "expires_in" (the spec's default and minimum: 60 s).
Result<BearerToken> parse_token_response(std::string_view body);

// Tokens by key (realm, service and scopes). Thread-safe.
class TokenCache {
 public:
  std::optional<std::string> get(const std::string& key) const;
  void put(const std::string& key, const BearerToken& token);

 private:
  struct Entry {
    std::string token;
    std::chrono::steady_clock::time_point expires;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> tokens_;  // guarded by mu_
};

}  // namespace strata::image
