// RegistryClient::Impl: how one registry request is made (internal to registry*.cc).
// call() = attempts with backoff; each attempt = HTTPS (or the plain-HTTP fallback), auth
// (cached token or Basic first, then the 401 challenge), and blob redirects.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "image/registry.h"
#include "image/registry_auth.h"
#include "image/registry_http.h"

namespace strata::image {

struct RegistryCall {
  std::string op;      // "pull", "push", "login": the first word of error messages
  std::string repo;    // empty for /v2/
  std::string object;  // `manifest "v1"`, `blob sha256:...`
  std::string method = "GET";
  std::string path;  // "/v2/..." on the registry, or an absolute URL (upload locations)
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string body_file;
  std::vector<std::string> scopes;  // "repository:<repo>:pull[,push]"
  size_t max_body = 64 << 10;
  BodySink sink;
  bool follow_redirects = false;
  bool retry = true;  // retry transient failures here (false: the caller does)
};

struct RegistryClient::Impl {
  Impl(std::string domain, RegistryOptions opts);

  // "pull 127.0.0.1:5000/team/app: manifest \"v1\"".
  std::string prefix(const RegistryCall& c) const;
  // An unexpected status as an error: prefix, "404 Not Found (MANIFEST_UNKNOWN: manifest unknown)".
  Error status_error(const RegistryCall& c, const HttpResponse& r) const;
  HttpSession session() const { return HttpSession(tls, opts.tls_verify, opts.timeout); }
  // Makes the call (with retries when c.retry). Returns the answer for any status but 401, 429
  // and 5xx, which become errors; *transient tells whether another attempt could succeed.
  Result<HttpResponse> call(HttpSession& s, const RegistryCall& c, bool* transient = nullptr);
  // Sleeps before attempt number `attempt` (1 = first retry).
  void backoff(int attempt, const std::string& why) const;

  std::string domain;
  std::string api_host;  // where the API is served (registry-1.docker.io for docker.io)
  RegistryOptions opts;
  bool allow_http = false;
  std::optional<Error> init_error;
  std::shared_ptr<boost::asio::ssl::context> tls;

 private:
  Result<HttpResponse> attempt(HttpSession& s, const RegistryCall& c, bool* transient);
  Result<HttpResponse> send_follow(HttpSession& s, const RegistryCall& c, const std::string& auth,
                                   bool* transient);
  Result<HttpResponse> send_to_registry(HttpSession& s, HttpRequest& req, const std::string& path,
                                        size_t max_body, const BodySink& sink, HttpFailure* failure);
  Result<std::string> authorize(HttpSession& s, const RegistryCall& c, const HttpResponse& challenge_resp,
                                bool* transient);
  Result<std::optional<std::pair<std::string, std::string>>> credentials();
  std::string cached_auth(const RegistryCall& c);
  std::string token_key(const std::string& realm, const std::string& service,
                        const std::vector<std::string>& scopes) const;

  enum Scheme { kUnknown = 0, kHttps = 1, kHttp = 2 };
  std::atomic<int> scheme_{kUnknown};
  TokenCache tokens_;
  std::mutex mu_;
  bool creds_loaded_ = false;                                  // guarded by mu_
  std::optional<std::pair<std::string, std::string>> creds_;   // guarded by mu_
  std::optional<Error> creds_error_;                           // guarded by mu_
  std::optional<std::pair<std::string, std::string>> bearer_;  // realm, service; guarded by mu_
  bool basic_ = false;                                         // guarded by mu_
};

}  // namespace strata::image
