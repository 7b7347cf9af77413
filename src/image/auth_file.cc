// auth.json reading and writing (containers-auth.json(5)).
#include "image/auth_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/fd.h"
#include "base/fs.h"
#include "base/strings.h"

namespace strata::image {

namespace {

constexpr size_t kMaxAuthFileSize = 4 << 20;

// The file's JSON, an empty object when it does not exist.
Result<nlohmann::json> read_auth_json(const std::string& file) {
  auto text = fs::read_file(file);
  if (!text.ok()) {
    if (text.error().err() == ENOENT) return nlohmann::json::object();
    return std::move(text).error().context("read auth file");
  }
  if (text->size() > kMaxAuthFileSize) return Error("auth file " + file + ": larger than 4 MiB");
  if (str::trim(*text).empty()) return nlohmann::json::object();
  try {
    auto j = nlohmann::json::parse(*text);
    if (!j.is_object()) return Error("auth file " + file + ": not a JSON object");
    if (j.contains("auths") && !j["auths"].is_object())
      return Error("auth file " + file + ": \"auths\" is not an object");
    return j;
  } catch (const nlohmann::json::exception& e) {
    return Error("auth file " + file + ": " + e.what());
  }
}

Status write_auth_json(const std::string& file, const nlohmann::json& j) {
  std::string dir = file.substr(0, file.find_last_of('/'));
  if (!dir.empty() && dir != file) TRY_CTX(fs::mkdir_p(dir, 0700), "write auth file " + file);
  // write_file_atomic creates the temporary with the final mode, so the secret is never
  // readable by others, not even briefly.
  TRY_CTX(fs::write_file_atomic(file, j.dump(1, '\t') + "\n", 0600, true), "write auth file");
  if (::chmod(file.c_str(), 0600) != 0) return Error::sys("chmod " + file);
  return ok();
}

}  // namespace

std::string default_auth_file() {
  if (const char* f = std::getenv("REGISTRY_AUTH_FILE"); f && *f) return f;
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x)
    return std::string(x) + "/containers/auth.json";
  return "/run/containers/" + std::to_string(::getuid()) + "/auth.json";
}

Result<std::optional<std::pair<std::string, std::string>>> load_credentials(const std::string& file,
                                                                            const std::string& domain) {
  ASSIGN_OR_RETURN(auto j, read_auth_json(file));
  if (!j.contains("auths")) return std::optional<std::pair<std::string, std::string>>{};
  const auto& auths = j["auths"];
  std::vector<std::string> keys = {domain, "https://" + domain, "http://" + domain, domain + "/"};
  if (domain == "docker.io")
    keys.insert(keys.end(), {"https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io"});
  for (const auto& key : keys) {
    auto it = auths.find(key);
    if (it == auths.end()) continue;
    std::string what = "auth file " + file + ": entry \"" + key + "\"";
    if (!it->is_object() || !it->contains("auth") || !(*it)["auth"].is_string())
      return Error(what + ": no \"auth\" string");
    auto decoded = base64_decode((*it)["auth"].get<std::string>());
    if (!decoded) return Error(what + ": \"auth\" is not valid base64");
    auto colon = decoded->find(':');
    if (colon == std::string::npos) return Error(what + ": \"auth\" does not decode to user:password");
    return std::optional<std::pair<std::string, std::string>>(
        std::make_pair(decoded->substr(0, colon), decoded->substr(colon + 1)));
  }
  return std::optional<std::pair<std::string, std::string>>{};
}

Status save_credentials(const std::string& file, const std::string& domain, const std::string& user,
                        const std::string& pass) {
  if (domain.empty()) return Error("save credentials: empty registry name");
  if (user.find(':') != std::string::npos)
    return Error("save credentials for " + domain + ": user name contains ':'");
  ASSIGN_OR_RETURN(auto j, read_auth_json(file));
  j["auths"][domain] = {{"auth", base64_encode(user + ":" + pass)}};
  TRY_CTX(write_auth_json(file, j), "save credentials for " + domain);
  return ok();
}

Status remove_credentials(const std::string& file, const std::string& domain) {
  ASSIGN_OR_RETURN(auto j, read_auth_json(file));
  if (!j.contains("auths") || !j["auths"].contains(domain))
    return Error("remove credentials: not logged in to " + domain + " (no entry in " + file + ")", ENOENT);
  j["auths"].erase(domain);
  TRY_CTX(write_auth_json(file, j), "remove credentials for " + domain);
  return ok();
}

}  // namespace strata::image
