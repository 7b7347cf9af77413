// RegistryClient: the OCI distribution v2 API (distribution-spec, "pull" and "push" sections)
// over Boost.Beast and OpenSSL, for one registry.
//
// - Auth: anonymous first; a 401 with `WWW-Authenticate: Bearer realm=..,service=..,scope=..`
//   gets a token from the realm (with the auth.json credentials, if any), cached per scope and
//   shared by every thread; `Basic` challenges get the credentials directly.
// - Transport: HTTPS; plain HTTP is allowed (after an HTTPS attempt fails below the certificate
//   check) for insecure registries, loopback ones by default, like podman.
// - Retries: connect failures, resets, short reads, 5xx and 429, with exponential backoff;
//   blob downloads resume from the partial data with a Range request.
// - Errors name the registry, the repository, the object and the HTTP status with the registry's
//   error codes: `pull 127.0.0.1:5000/team/app: manifest "v9": 404 Not Found (MANIFEST_UNKNOWN:
//   manifest unknown)`.
// Thread-safe: each call uses its own connections; tokens and credentials are shared under a lock.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.h"
#include "image/auth_file.h"
#include "image/store.h"

namespace strata::image {

struct RegistryOptions {
  // false: HTTPS without certificate verification, and plain HTTP fallback (--tls-verify=false).
  bool tls_verify = true;
  // Allow plain HTTP when HTTPS fails below the certificate check; default: true for localhost,
  // 127.0.0.0/8 and ::1, else false.
  std::optional<bool> insecure_http;
  std::string auth_file;  // podman-compatible auth.json; empty: default_auth_file()
  std::string ca_file;    // extra CA bundle
  // Per-registry CAs, as podman reads them: <certs_dir>/<domain>/*.crt.
  std::string certs_dir = "/etc/containers/certs.d";
  int retries = 3;                               // extra attempts after a transient failure
  std::chrono::milliseconds retry_backoff{250};  // first backoff; doubles each attempt, at most 8 s
  std::chrono::milliseconds timeout{30000};      // per connect, send or read step
};

struct FetchedManifest {
  std::string body;
  std::string media_type;  // the Content-Type, without parameters
  std::string digest;      // sha256 of body (verified against a digest reference)
};

using ProgressFn = std::function<void(uint64_t done, uint64_t total)>;

class RegistryClient {
 public:
  // domain: "127.0.0.1:5000", "registry.example:443", "docker.io" (served by registry-1.docker.io).
  RegistryClient(std::string domain, RegistryOptions opts);
  ~RegistryClient();
  RegistryClient(RegistryClient&&) noexcept;
  RegistryClient& operator=(RegistryClient&&) noexcept;

  const std::string& domain() const;

  // GET /v2/<repo>/manifests/<ref> with `accept` (comma-separated media types); the body is
  // capped at 4 MiB.
  Result<FetchedManifest> get_manifest(const std::string& repo, const std::string& tag_or_digest,
                                       std::string_view accept);
  // Downloads a blob into the store (resuming partial data), verifying size (size < 0: unknown)
  // and digest. progress is called at most every ~100 ms and once at the end.
  Status fetch_blob(const std::string& repo, const std::string& digest, int64_t size, ContentStore& store,
                    const ProgressFn& progress);
  // HEAD /v2/<repo>/blobs/<digest>.
  Result<bool> has_blob(const std::string& repo, const std::string& digest);
  // Uploads the file at `path` as blob `digest` (POST /blobs/uploads/, PUT ?digest=), or mounts it
  // from `mount_from` (another repository of this registry); nothing when the registry has it.
  Status push_blob(const std::string& repo, const std::string& digest, const std::string& path,
                   const std::string& mount_from = {});
  // PUT /v2/<repo>/manifests/<ref>.
  Status put_manifest(const std::string& repo, const std::string& tag_or_digest, std::string_view body,
                      std::string_view media_type);
  // GET /v2/ with auth: checks that the registry answers and accepts the credentials (login).
  Status ping();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::image
