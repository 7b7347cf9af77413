// Test helpers for the registry client: a temp dir, certificates made with the openssl CLI, a
// real Debian docker-registry (distribution 2.8) process, and a tiny scripted HTTP server
// (fault injection, redirects, the token server).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace strata::image::registry_test {

// mkdtemp under /tmp; removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A free TCP port on 127.0.0.1 (bound then released).
int free_port();
// Runs a shell command; returns its exit status (0 = success).
int run(const std::string& cmd);
std::string read_text(const std::string& path);
void write_text(const std::string& path, const std::string& data);

// A self-signed certificate for `subject_alt_name` ("IP:127.0.0.1"): <dir>/<name>.crt and .key.
void make_cert(const std::string& dir, const std::string& name, const std::string& subject_alt_name);

struct RegistryConfig {
  std::string auth_yaml;  // the `auth:` section, indented by two spaces per level; empty: none
  std::string tls_cert, tls_key;
};

// docker-registry serve <config> on 127.0.0.1:<free port>; killed on destruction.
class RegistryProcess {
 public:
  RegistryProcess(const std::string& dir, const RegistryConfig& cfg);
  ~RegistryProcess();
  // "127.0.0.1:<port>"
  std::string domain() const { return "127.0.0.1:" + std::to_string(port_); }
  bool ready() const { return ready_; }
  std::string log() const;

 private:
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool ready_ = false;
};

struct ScriptedRequest {
  std::string method;
  std::string target;
  std::map<std::string, std::string> headers;  // names lower case
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

struct ScriptedReply {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Close the connection after this many body bytes (Content-Length still says the full size).
  size_t cut_after = std::string::npos;
};

// A one-connection-at-a-time HTTP/1.1 server on 127.0.0.1 running `handler` in its own thread.
// Every answer closes the connection. Records every request.
class ScriptedServer {
 public:
  using Handler = std::function<ScriptedReply(const ScriptedRequest&)>;
  explicit ScriptedServer(Handler handler);
  ~ScriptedServer();
  int port() const { return port_; }
  std::string origin() const { return "127.0.0.1:" + std::to_string(port_); }
  std::vector<ScriptedRequest> requests() const;

 private:
  void serve();
  Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  std::vector<ScriptedRequest> requests_;
  std::thread thread_;
};

// A distribution token server: answers GET /token?service=..&scope=.. with an RS256 JWT whose
// header carries the signing certificate (x5c), as distribution 2.8's token verifier accepts
// (registry/auth/token/token.go: x5c chain verified against the rootcertbundle). Grants every
// requested action to `user:pass`; refuses other credentials; anonymous requests get pull only.
class TokenServer {
 public:
  TokenServer(const std::string& key_pem, const std::string& cert_pem, std::string issuer, std::string user,
              std::string pass);
  std::string realm() const { return "http://" + server_.origin() + "/token"; }
  std::vector<ScriptedRequest> requests() const { return server_.requests(); }
  // Makes a token (exposed so that a test can check a signature by hand if it wants).
  std::string issue(const std::string& service, const std::vector<std::string>& scopes, bool anonymous) const;

 private:
  ScriptedReply handle(const ScriptedRequest& req) const;
  std::string key_pem_, cert_der_b64_, issuer_, user_, pass_;
  ScriptedServer server_;
};

}  // namespace strata::image::registry_test
