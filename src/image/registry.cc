// RegistryClient operations (distribution-spec: pulling manifests and blobs, pushing blobs with a
// monolithic upload or a cross-repository mount, pushing manifests). How each request is sent,
// authorized and retried is in registry_call.cc.
#include "image/registry.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include "base/digest.h"
#include "base/log.h"
#include "base/strings.h"
#include "image/registry_call.h"

namespace strata::image {

namespace {

constexpr size_t kMaxManifestSize = 4 << 20;
constexpr auto kProgressInterval = std::chrono::milliseconds(100);

std::string pull_scope(const std::string& repo) { return "repository:" + repo + ":pull"; }
std::string push_scope(const std::string& repo) { return "repository:" + repo + ":pull,push"; }

// Repository names are path components joined by '/' (distribution-spec "name"); checking them
// here keeps anything odd out of the request target.
Status validate_repo(const std::string& repo) {
  if (repo.empty()) return Error("empty repository name");
  for (char c : repo) {
    bool okc =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/';
    if (!okc) return Error("repository name \"" + repo + "\": invalid character");
  }
  return ok();
}

Status validate_reference(const std::string& ref) {
  if (ref.empty()) return Error("empty tag or digest");
  if (ref.find(':') != std::string::npos) return validate_digest(ref);
  if (ref.size() > 128) return Error("tag \"" + ref.substr(0, 40) + "...\": longer than 128 characters");
  for (char c : ref) {
    bool okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '-';
    if (!okc) return Error("tag \"" + ref + "\": invalid character");
  }
  return ok();
}

// "bytes 100-199/200" -> 100.
std::optional<uint64_t> content_range_start(const std::string& v) {
  if (v.rfind("bytes ", 0) != 0) return std::nullopt;
  auto dash = v.find('-', 6);
  if (dash == std::string::npos) return std::nullopt;
  return str::parse_uint(v.substr(6, dash - 6));
}

}  // namespace

RegistryClient::RegistryClient(std::string domain, RegistryOptions opts)
    : impl_(std::make_unique<Impl>(std::move(domain), std::move(opts))) {}
RegistryClient::~RegistryClient() = default;
RegistryClient::RegistryClient(RegistryClient&&) noexcept = default;
RegistryClient& RegistryClient::operator=(RegistryClient&&) noexcept = default;

const std::string& RegistryClient::domain() const { return impl_->domain; }

Result<FetchedManifest> RegistryClient::get_manifest(const std::string& repo, const std::string& ref,
                                                     std::string_view accept) {
  RegistryCall c;
  c.op = "pull";
  c.repo = repo;
  c.object = "manifest \"" + ref + "\"";
  TRY_CTX(validate_repo(repo), impl_->prefix(c));
  TRY_CTX(validate_reference(ref), impl_->prefix(c));
  c.path = "/v2/" + repo + "/manifests/" + ref;
  if (!accept.empty()) c.headers.emplace_back("Accept", std::string(accept));
  c.scopes = {pull_scope(repo)};
  c.max_body = kMaxManifestSize;
  HttpSession s = impl_->session();
  ASSIGN_OR_RETURN(HttpResponse r, impl_->call(s, c));
  if (r.status != 200) return impl_->status_error(c, r);
  FetchedManifest m;
  m.media_type =
      std::string(str::trim(r.header("Content-Type").substr(0, r.header("Content-Type").find(';'))));
  m.digest = sha256_digest(r.body);
  if (ref.find(':') != std::string::npos && m.digest != ref)
    return Error(impl_->prefix(c) + ": content has digest " + m.digest +
                 " (the registry sent another manifest)");
  std::string claimed = r.header("Docker-Content-Digest");
  if (!claimed.empty() && is_sha256_digest(claimed) && claimed != m.digest)
    log::get("image")->warn("{}: registry says digest {}, content has {}", impl_->prefix(c), claimed,
                            m.digest);
  m.body = std::move(r.body);
  return m;
}

Status RegistryClient::fetch_blob(const std::string& repo, const std::string& digest, int64_t size,
                                  ContentStore& store, const ProgressFn& progress) {
  RegistryCall c;
  c.op = "pull";
  c.repo = repo;
  c.object = "blob " + digest;
  TRY_CTX(validate_repo(repo), impl_->prefix(c));
  TRY_CTX(validate_digest(digest), impl_->prefix(c));
  auto w = store.writer(digest, size);
  if (!w.ok()) return std::move(w).error().context(impl_->prefix(c));
  uint64_t total = size >= 0 ? static_cast<uint64_t>(size) : 0;
  if (w->already_present()) {
    if (progress) progress(total, total);
    return ok();
  }
  auto last_progress = std::chrono::steady_clock::now() - kProgressInterval;
  auto report = [&](bool force) {
    auto now = std::chrono::steady_clock::now();
    if (!progress || (!force && now - last_progress < kProgressInterval)) return;
    last_progress = now;
    progress(w->offset(), total);
  };
  c.path = "/v2/" + repo + "/blobs/" + digest;
  c.scopes = {pull_scope(repo)};
  c.follow_redirects = true;
  c.retry = false;  // retried here, resuming from the partial data
  bool range_ok = true;
  c.sink.begin = [&](const HttpResponse& head) -> Status {
    if (head.status == 206) {
      auto start = content_range_start(head.header("Content-Range"));
      if (start && *start == w->offset()) return ok();
      range_ok = false;
      TRY(w->restart());
      return Error("the registry answered a range request with \"Content-Range: " +
                   head.header("Content-Range") + "\"; starting over");
    }
    if (w->offset() > 0) {
      log::get("image")->debug("{}: registry ignored the range request, restarting", impl_->prefix(c));
      TRY(w->restart());
    }
    if (size < 0) {
      if (auto len = str::parse_uint(head.header("Content-Length"))) total = *len;
    }
    return ok();
  };
  c.sink.data = [&](const char* p, size_t n) -> Status {
    TRY(w->write(p, n));
    report(false);
    return ok();
  };
  HttpSession s = impl_->session();
  int attempts = std::max(impl_->opts.retries, 0) + 1;
  for (int i = 1;; ++i) {
    bool complete = size >= 0 && w->offset() == static_cast<uint64_t>(size) && size > 0;
    if (complete) break;
    c.headers.clear();
    if (w->offset() > 0 && range_ok)
      c.headers.emplace_back("Range", "bytes=" + std::to_string(w->offset()) + "-");
    bool transient = false;
    bool range_broken_before = !range_ok;
    auto r = impl_->call(s, c, &transient);
    if (r.ok() && r->status == 416 && w->offset() > 0) {
      // The partial data is as long as the blob, or longer: nothing left to ask for.
      if (size < 0) break;
      TRY(w->restart());
      transient = true;
      r = Error(impl_->prefix(c) + ": 416 Range Not Satisfiable at offset " + std::to_string(w->offset()));
    } else if (r.ok() && r->status != 200 && r->status != 206) {
      return impl_->status_error(c, *r);
    } else if (r.ok()) {
      break;
    }
    if (!range_ok && range_broken_before == false) transient = true;
    if (!transient || i >= attempts) {
      std::string msg = r.error().message();
      if (transient && attempts > 1)
        msg += " (gave up after " + std::to_string(i) + " attempts; partial data kept)";
      return Error(msg, r.error().err());
    }
    impl_->backoff(i, r.error().message());
  }
  if (auto st = w->commit(); !st.ok()) return std::move(st).error().context(impl_->prefix(c));
  if (total == 0) total = w->offset();
  report(true);
  return ok();
}

Result<bool> RegistryClient::has_blob(const std::string& repo, const std::string& digest) {
  RegistryCall c;
  c.op = "pull";
  c.repo = repo;
  c.object = "blob " + digest;
  TRY_CTX(validate_repo(repo), impl_->prefix(c));
  TRY_CTX(validate_digest(digest), impl_->prefix(c));
  c.method = "HEAD";
  c.path = "/v2/" + repo + "/blobs/" + digest;
  c.scopes = {pull_scope(repo)};
  c.follow_redirects = true;
  HttpSession s = impl_->session();
  ASSIGN_OR_RETURN(HttpResponse r, impl_->call(s, c));
  if (r.status == 200) return true;
  if (r.status == 404) return false;
  return impl_->status_error(c, r);
}

Status RegistryClient::push_blob(const std::string& repo, const std::string& digest, const std::string& path,
                                 const std::string& mount_from) {
  RegistryCall c;
  c.op = "push";
  c.repo = repo;
  c.object = "blob " + digest;
  std::string prefix = impl_->prefix(c);
  TRY_CTX(validate_repo(repo), prefix);
  TRY_CTX(validate_digest(digest), prefix);
  if (!mount_from.empty()) TRY_CTX(validate_repo(mount_from), prefix + ": mount source");
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return Error::sys(prefix + ": stat " + path);
  auto present = has_blob(repo, digest);
  if (!present.ok()) return std::move(present).error();
  if (*present) {
    log::get("image")->debug("{}: already in the registry", prefix);
    return ok();
  }
  HttpSession s = impl_->session();
  int attempts = std::max(impl_->opts.retries, 0) + 1;
  for (int i = 1;; ++i) {
    RegistryCall start = c;
    start.method = "POST";
    start.path = "/v2/" + repo + "/blobs/uploads/";
    start.scopes = {push_scope(repo)};
    if (!mount_from.empty()) {
      start.path += "?mount=" + url_encode(digest) + "&from=" + url_encode(mount_from);
      start.scopes.push_back(pull_scope(mount_from));
    }
    ASSIGN_OR_RETURN(HttpResponse r, impl_->call(s, start));
    if (r.status == 201 && !mount_from.empty()) return ok();  // mounted
    if (r.status != 202) return impl_->status_error(start, r);
    std::string location = r.header("Location");
    if (location.empty()) return Error(prefix + ": upload started without a Location");
    RegistryCall put = c;
    put.method = "PUT";
    if (location.find("://") == std::string::npos && (location.empty() || location[0] != '/'))
      return Error(prefix + ": unexpected upload Location \"" + location.substr(0, 200) + "\"");
    put.path =
        location + (location.find('?') == std::string::npos ? "?" : "&") + "digest=" + url_encode(digest);
    put.headers = {{"Content-Type", "application/octet-stream"}};
    put.body_file = path;
    put.scopes = start.scopes;
    put.retry = false;  // an upload session may not survive a failure: start a new one
    bool transient = false;
    auto pr = impl_->call(s, put, &transient);
    if (pr.ok()) {
      if (pr->status == 201 || pr->status == 204) return ok();
      return impl_->status_error(put, *pr);
    }
    if (!transient || i >= attempts) return std::move(pr).error();
    impl_->backoff(i, pr.error().message());
  }
}

Status RegistryClient::put_manifest(const std::string& repo, const std::string& ref, std::string_view body,
                                    std::string_view media_type) {
  RegistryCall c;
  c.op = "push";
  c.repo = repo;
  c.object = "manifest \"" + ref + "\"";
  TRY_CTX(validate_repo(repo), impl_->prefix(c));
  TRY_CTX(validate_reference(ref), impl_->prefix(c));
  if (ref.find(':') != std::string::npos && sha256_digest(body) != ref)
    return Error(impl_->prefix(c) + ": body has digest " + sha256_digest(body));
  c.method = "PUT";
  c.path = "/v2/" + repo + "/manifests/" + ref;
  c.headers = {{"Content-Type", std::string(media_type)}};
  c.body = std::string(body);
  c.scopes = {push_scope(repo)};
  HttpSession s = impl_->session();
  ASSIGN_OR_RETURN(HttpResponse r, impl_->call(s, c));
  if (r.status < 200 || r.status >= 300) return impl_->status_error(c, r);
  return ok();
}

Status RegistryClient::ping() {
  RegistryCall c;
  c.op = "login";
  c.object = "GET /v2/";
  c.path = "/v2/";
  HttpSession s = impl_->session();
  ASSIGN_OR_RETURN(HttpResponse r, impl_->call(s, c));
  if (r.status != 200) return impl_->status_error(c, r);
  return ok();
}

}  // namespace strata::image
