// RegistryClient::Impl: transport choice, auth, redirects and retries of one registry call.
// The auth flow follows the distribution token spec (docs/spec/auth/token.md): the registry
// answers 401 with a Bearer challenge; the client asks the realm for a token for the scopes it
// needs, with Basic credentials when it has some, and repeats the request with the token.
#include "image/registry_call.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/log.h"
#include "base/strings.h"

namespace strata::image {

namespace {

constexpr size_t kMaxTokenBody = 1 << 20;
constexpr int kMaxRedirects = 5;

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

std::string host_of(const std::string& domain) {
  if (!domain.empty() && domain[0] == '[') return domain.substr(1, domain.find(']') - 1);
  return domain.substr(0, domain.find(':'));
}

// The registry's error JSON ({"errors":[{"code":..,"message":..}]}) as "CODE: message; ...".
std::string describe_error_body(const HttpResponse& r) {
  if (r.body.empty()) return {};
  try {
    auto j = nlohmann::json::parse(r.body);
    std::string out;
    if (j.is_object() && j.contains("errors") && j["errors"].is_array()) {
      for (const auto& e : j["errors"]) {
        if (!e.is_object()) continue;
        std::string code = e.value("code", std::string());
        std::string msg =
            e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>() : "";
        if (!out.empty()) out += "; ";
        out += code.empty() ? msg : (msg.empty() ? code : code + ": " + msg);
      }
    }
    if (!out.empty()) return out.substr(0, 500);
  } catch (const nlohmann::json::exception&) {
  }
  // Not the registry's JSON (a proxy's page, a token server's text): its first line, printable.
  std::string line;
  for (char c : r.body.substr(0, 200)) {
    if (c == '\n' || c == '\r') break;
    line.push_back(c >= ' ' && c < 0x7f ? c : '?');
  }
  return line;
}

std::string status_text(const HttpResponse& r) {
  std::string s = std::to_string(r.status) + " " + r.reason;
  std::string detail = describe_error_body(r);
  if (!detail.empty()) s += " (" + detail + ")";
  return s;
}

}  // namespace

RegistryClient::Impl::Impl(std::string d, RegistryOptions o) : domain(std::move(d)), opts(std::move(o)) {
  api_host = (domain == "docker.io" || domain == "index.docker.io") ? "registry-1.docker.io" : domain;
  allow_http = !opts.tls_verify || opts.insecure_http.value_or(is_loopback(host_of(domain)));
  TlsOptions t;
  t.verify = opts.tls_verify;
  if (!opts.ca_file.empty()) t.ca_files.push_back(opts.ca_file);
  if (!opts.certs_dir.empty()) {
    std::string dir = opts.certs_dir + "/" + domain;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      if (e.path().extension() == ".crt") t.ca_files.push_back(e.path().string());
    }
  }
  auto ctx = make_tls_context(t);
  if (ctx.ok())
    tls = std::move(*ctx);
  else
    init_error = std::move(ctx).error();
}

std::string RegistryClient::Impl::prefix(const RegistryCall& c) const {
  std::string p = c.op + " " + domain;
  if (!c.repo.empty()) p += "/" + c.repo;
  if (!c.object.empty()) p += ": " + c.object;
  return p;
}

Error RegistryClient::Impl::status_error(const RegistryCall& c, const HttpResponse& r) const {
  return Error(prefix(c) + ": " + status_text(r));
}

void RegistryClient::Impl::backoff(int attempt, const std::string& why) const {
  auto delay = opts.retry_backoff * (1 << std::min(attempt - 1, 10));
  delay = std::min<std::chrono::milliseconds>(delay, std::chrono::seconds(8));
  log::get("image")->warn("{}; retrying in {} ms (attempt {} of {})", why, delay.count(), attempt + 1,
                          opts.retries + 1);
  std::this_thread::sleep_for(delay);
}

Result<std::optional<std::pair<std::string, std::string>>> RegistryClient::Impl::credentials() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!creds_loaded_) {
    creds_loaded_ = true;
    std::string file = opts.auth_file.empty() ? default_auth_file() : opts.auth_file;
    auto r = load_credentials(file, domain);
    if (r.ok())
      creds_ = std::move(*r);
    else
      creds_error_ = std::move(r).error();
  }
  if (creds_error_) return *creds_error_;
  return creds_;
}

std::string RegistryClient::Impl::token_key(const std::string& realm, const std::string& service,
                                            const std::vector<std::string>& scopes) const {
  std::string key = realm + "\n" + service;
  for (const auto& s : scopes) key += "\n" + s;
  return key;
}

// The Authorization header to send before any challenge: a cached token for these scopes, or
// Basic credentials for a registry known to want them.
std::string RegistryClient::Impl::cached_auth(const RegistryCall& c) {
  std::optional<std::pair<std::string, std::string>> bearer;
  bool basic;
  {
    std::lock_guard<std::mutex> lock(mu_);
    bearer = bearer_;
    basic = basic_;
  }
  if (bearer) {
    if (auto t = tokens_.get(token_key(bearer->first, bearer->second, c.scopes))) return "Bearer " + *t;
  }
  if (basic) {
    auto creds = credentials();
    if (creds.ok() && *creds) return "Basic " + base64_encode((*creds)->first + ":" + (*creds)->second);
  }
  return {};
}

Result<HttpResponse> RegistryClient::Impl::send_to_registry(HttpSession& s, HttpRequest& req,
                                                            const std::string& path, size_t max_body,
                                                            const BodySink& sink, HttpFailure* failure) {
  if (path.find("://") != std::string::npos) {
    ASSIGN_OR_RETURN(req.url, Url::parse(path));
    return s.send(req, max_body, sink, failure);
  }
  int scheme = scheme_.load();
  if (scheme != kHttp) {
    ASSIGN_OR_RETURN(req.url, Url::parse("https://" + api_host + path));
    auto r = s.send(req, max_body, sink, failure);
    bool fallback = !r.ok() && *failure == HttpFailure::kTlsHandshake && allow_http;
    if (!fallback) {
      if (r.ok())
        scheme_.store(kHttps);
      else if (*failure == HttpFailure::kTlsHandshake)
        return std::move(r).error().context(
            "(the registry does not speak TLS? plain HTTP is only tried for "
            "insecure registries: --tls-verify=false)");
      return r;
    }
    log::get("image")->info("{}: HTTPS failed ({}); using plain HTTP", domain, r.error().message());
    scheme_.store(kHttp);
  }
  ASSIGN_OR_RETURN(req.url, Url::parse("http://" + api_host + path));
  return s.send(req, max_body, sink, failure);
}

// One request and its redirects (GET/HEAD only). The Authorization header only goes to the
// registry's own origin: a redirect to storage must not carry the registry's credentials.
Result<HttpResponse> RegistryClient::Impl::send_follow(HttpSession& s, const RegistryCall& c,
                                                       const std::string& auth, bool* transient) {
  HttpRequest req;
  req.method = c.method;
  req.headers = c.headers;
  req.body = c.body;
  req.body_file = c.body_file;
  HttpFailure failure = HttpFailure::kNone;
  if (!auth.empty()) req.headers.emplace_back("Authorization", auth);
  auto r = send_to_registry(s, req, c.path, c.max_body, c.sink, &failure);
  std::string registry_origin = req.url.origin();
  for (int hops = 0; r.ok() && c.follow_redirects && hops <= kMaxRedirects; ++hops) {
    unsigned st = r->status;
    if (st != 301 && st != 302 && st != 303 && st != 307 && st != 308) break;
    std::string location = r->header("Location");
    if (location.empty()) break;
    if (hops == kMaxRedirects) return Error(prefix(c) + ": more than 5 redirects");
    auto next = req.url.resolve(location);
    if (!next.ok()) return std::move(next).error().context(prefix(c) + ": redirect");
    req.url = std::move(*next);
    req.headers.erase(std::remove_if(req.headers.begin(), req.headers.end(),
                                     [](const auto& h) { return h.first == "Authorization"; }),
                      req.headers.end());
    if (!auth.empty() && req.url.origin() == registry_origin) req.headers.emplace_back("Authorization", auth);
    log::get("image")->debug("{}: redirected to {}", prefix(c), req.url.origin());
    r = s.send(req, c.max_body, c.sink, &failure);
  }
  if (!r.ok()) {
    *transient = is_transient(failure);
    std::string msg = r.error().message();
    if (failure == HttpFailure::kTlsVerify)
      msg += " (use --tls-verify=false, or add the registry's CA to " + opts.certs_dir + "/" + domain +
             "/ca.crt)";
    return Error(prefix(c) + ": " + msg, r.error().err());
  }
  return r;
}

// Answers a 401: returns the Authorization header to retry with.
Result<std::string> RegistryClient::Impl::authorize(HttpSession& s, const RegistryCall& c,
                                                    const HttpResponse& resp, bool* transient) {
  std::string login_hint = "check `strata login " + domain + "`";
  auto headers = resp.headers_named("WWW-Authenticate");
  if (headers.empty())
    return Error(prefix(c) + ": " + status_text(resp) + " without a challenge; " + login_hint);
  std::vector<AuthChallenge> challenges;
  for (const auto& h : headers) {
    auto parsed = parse_www_authenticate(h);
    if (!parsed.ok()) return std::move(parsed).error().context(prefix(c));
    challenges.insert(challenges.end(), parsed->begin(), parsed->end());
  }
  ASSIGN_OR_RETURN(auto creds, credentials());
  for (const auto& ch : challenges) {
    if (ch.scheme == "basic") {
      if (!creds)
        return Error(prefix(c) + ": " + status_text(resp) + ": authentication required; " + login_hint);
      std::lock_guard<std::mutex> lock(mu_);
      basic_ = true;
      return "Basic " + base64_encode(creds->first + ":" + creds->second);
    }
    if (ch.scheme != "bearer") continue;
    std::string realm = ch.param("realm"), service = ch.param("service");
    if (realm.empty()) return Error(prefix(c) + ": Bearer challenge without a realm");
    std::vector<std::string> scopes = c.scopes;
    std::string challenge_scope = ch.param("scope");
    for (const auto& sc : str::split(challenge_scope, ' '))
      if (!sc.empty() && std::find(scopes.begin(), scopes.end(), sc) == scopes.end()) scopes.push_back(sc);
    std::string query = "service=" + url_encode(service);
    for (const auto& sc : scopes) query += "&scope=" + url_encode(sc);
    auto url = Url::parse(realm);
    if (!url.ok()) return std::move(url).error().context(prefix(c) + ": token realm");
    url->target += (url->target.find('?') == std::string::npos ? "?" : "&") + query;
    HttpRequest treq;
    treq.url = *url;
    if (creds)
      treq.headers.emplace_back("Authorization",
                                "Basic " + base64_encode(creds->first + ":" + creds->second));
    HttpFailure failure = HttpFailure::kNone;
    auto tr = s.send(treq, kMaxTokenBody, {}, &failure);
    std::string where = prefix(c) + ": token server " + url->origin();
    if (!tr.ok()) {
      *transient = is_transient(failure);
      return std::move(tr).error().context(where);
    }
    if (tr->status == 401 || tr->status == 403)
      return Error(where + ": " + status_text(*tr) + ": " + (creds ? "credentials refused; " : "") +
                   login_hint);
    if (tr->status != 200) {
      *transient = tr->status >= 500 || tr->status == 429;
      return Error(where + ": " + status_text(*tr));
    }
    auto token = parse_token_response(tr->body);
    if (!token.ok()) return std::move(token).error().context(where);
    tokens_.put(token_key(realm, service, c.scopes), *token);
    {
      std::lock_guard<std::mutex> lock(mu_);
      bearer_ = std::make_pair(realm, service);
    }
    return "Bearer " + token->token;
  }
  return Error(prefix(c) + ": " + status_text(resp) + ": no supported auth scheme in WWW-Authenticate");
}

Result<HttpResponse> RegistryClient::Impl::attempt(HttpSession& s, const RegistryCall& c, bool* transient) {
  *transient = false;
  std::string auth = cached_auth(c);
  ASSIGN_OR_RETURN(HttpResponse r, send_follow(s, c, auth, transient));
  if (r.status != 401) return r;
  bool had_auth = !auth.empty();
  ASSIGN_OR_RETURN(auth, authorize(s, c, r, transient));
  if (had_auth && auth.rfind("Basic ", 0) == 0)
    return Error(prefix(c) + ": " + status_text(r) + ": credentials refused; check `strata login " + domain +
                 "`");
  ASSIGN_OR_RETURN(r, send_follow(s, c, auth, transient));
  if (r.status == 401) {
    std::string why =
        auth.rfind("Basic ", 0) == 0 ? "credentials refused" : "the token does not grant this access";
    return Error(prefix(c) + ": " + status_text(r) + ": " + why + "; check `strata login " + domain + "`");
  }
  return r;
}

Result<HttpResponse> RegistryClient::Impl::call(HttpSession& s, const RegistryCall& c, bool* transient) {
  bool dummy;
  if (!transient) transient = &dummy;
  if (init_error) return Error(*init_error).context(prefix(c));
  int attempts = c.retry ? std::max(opts.retries, 0) + 1 : 1;
  for (int i = 1;; ++i) {
    auto r = attempt(s, c, transient);
    if (r.ok() && (r->status >= 500 || r->status == 429)) {
      *transient = true;
      Error e = status_error(c, *r);
      if (i >= attempts) {
        if (attempts > 1)
          return Error(e.message() + " (server error, gave up after " + std::to_string(i) + " attempts)");
        return e;
      }
      backoff(i, e.message());
      continue;
    }
    if (r.ok() || !*transient) return r;
    if (i >= attempts) {
      if (attempts == 1) return r;
      return Error(r.error().message() + " (gave up after " + std::to_string(i) + " attempts)",
                   r.error().err());
    }
    backoff(i, r.error().message());
  }
}

}  // namespace strata::image
