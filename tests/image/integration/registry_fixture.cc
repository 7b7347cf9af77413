#include "registry_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "base/fs.h"
#include "base/strings.h"
#include "image/auth_file.h"

namespace strata::image::registry_test {

namespace {

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

std::string url_decode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i] == '+' ? ' ' : s[i]);
    }
  }
  return out;
}

std::string b64url(std::string_view data) {
  std::string s = base64_encode(data);
  for (char& c : s) c = c == '+' ? '-' : (c == '/' ? '_' : c);
  while (!s.empty() && s.back() == '=') s.pop_back();
  return s;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

const char* reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 206:
      return "Partial Content";
    case 307:
      return "Temporary Redirect";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Status";
  }
}

}  // namespace

TempDir::TempDir() {
  char tmpl[] = "/tmp/strata-registry-test.XXXXXX";
  if (!mkdtemp(tmpl)) throw std::runtime_error("mkdtemp");
  path_ = tmpl;
}

TempDir::~TempDir() { (void)fs::remove_tree(path_); }

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

int run(const std::string& cmd) { return std::system(cmd.c_str()); }

std::string read_text(const std::string& path) {
  auto r = fs::read_file(path);
  return r.ok() ? *r : std::string();
}

void write_text(const std::string& path, const std::string& data) {
  if (!fs::write_file_atomic(path, data).ok()) throw std::runtime_error("write " + path);
}

void make_cert(const std::string& dir, const std::string& name, const std::string& san) {
  std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=strata-test -addext "
      "subjectAltName=" +
      san + " -keyout " + dir + "/" + name + ".key -out " + dir + "/" + name + ".crt >/dev/null 2>&1";
  if (run(cmd) != 0) throw std::runtime_error("openssl req failed: " + cmd);
}

RegistryProcess::RegistryProcess(const std::string& dir, const RegistryConfig& cfg) : dir_(dir) {
  port_ = free_port();
  std::ostringstream y;
  y << "version: 0.1\n"
    << "log:\n  level: info\n  accesslog:\n    disabled: true\n"
    << "storage:\n  filesystem:\n    rootdirectory: " << dir << "/data\n  delete:\n    enabled: true\n"
    << "http:\n  addr: 127.0.0.1:" << port_ << "\n  secret: strata-test-secret\n";
  if (!cfg.tls_cert.empty())
    y << "  tls:\n    certificate: " << cfg.tls_cert << "\n    key: " << cfg.tls_key << "\n";
  y << cfg.auth_yaml;
  write_text(dir + "/config.yml", y.str());
  std::string log = dir + "/registry.log";
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::string cfg_path = dir + "/config.yml";
    execl("/usr/bin/docker-registry", "docker-registry", "serve", cfg_path.c_str(), nullptr);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return;
    }
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool up = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (up) {
      ready_ = true;
      return;
    }
    usleep(50 * 1000);
  }
}

RegistryProcess::~RegistryProcess() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGTERM);
  for (int i = 0; i < 100; ++i) {
    if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
    usleep(20 * 1000);
  }
  ::kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

std::string RegistryProcess::log() const { return read_text(dir_ + "/registry.log"); }

ScriptedServer::ScriptedServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 16) != 0)
    throw std::runtime_error("scripted server: bind/listen");
  socklen_t len = sizeof a;
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
  port_ = ntohs(a.sin_port);
  thread_ = std::thread([this] { serve(); });
}

ScriptedServer::~ScriptedServer() {
  stop_ = true;
  thread_.join();
  ::close(listen_fd_);
}

std::vector<ScriptedRequest> ScriptedServer::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void ScriptedServer::serve() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    timeval tv{5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::string in;
    char buf[65536];
    size_t head_end;
    bool bad = false;
    while ((head_end = in.find("\r\n\r\n")) == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) {
        bad = true;
        break;
      }
      in.append(buf, static_cast<size_t>(n));
      if (in[0] == 0x16) {  // a TLS ClientHello: this server speaks plain HTTP only
        bad = true;
        break;
      }
    }
    if (bad) {
      ::close(fd);
      continue;
    }
    ScriptedRequest req;
    auto lines = str::split(in.substr(0, head_end), '\n');
    auto first = str::split(std::string(str::trim(lines[0])), ' ');
    req.method = first.size() > 0 ? first[0] : "";
    req.target = first.size() > 1 ? first[1] : "";
    for (size_t i = 1; i < lines.size(); ++i) {
      auto colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      req.headers[lower(lines[i].substr(0, colon))] = std::string(str::trim(lines[i].substr(colon + 1)));
      if (!req.headers.empty() && req.headers.rbegin()->second.back() == '\r')
        req.headers.rbegin()->second.pop_back();
    }
    // Drain a request body so that the client's send completes.
    size_t body_len = str::parse_uint(str::trim(req.header("content-length"))).value_or(0);
    size_t have = in.size() - head_end - 4;
    while (have < body_len) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      have += static_cast<size_t>(n);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      requests_.push_back(req);
    }
    ScriptedReply rep = handler_(req);
    std::string out = "HTTP/1.1 " + std::to_string(rep.status) + " " + reason(rep.status) + "\r\n";
    for (const auto& [k, v] : rep.headers) out += k + ": " + v + "\r\n";
    out += "Content-Length: " + std::to_string(rep.body.size()) + "\r\nConnection: close\r\n\r\n";
    if (req.method != "HEAD") out += rep.body.substr(0, rep.cut_after);
    write_all(fd, out);
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }
}

TokenServer::TokenServer(const std::string& key_pem, const std::string& cert_pem, std::string issuer,
                         std::string user, std::string pass)
    : key_pem_(key_pem),
      issuer_(std::move(issuer)),
      user_(std::move(user)),
      pass_(std::move(pass)),
      server_([this](const ScriptedRequest& r) { return handle(r); }) {
  BIO* bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!cert) throw std::runtime_error("token server: bad certificate");
  unsigned char* der = nullptr;
  int len = i2d_X509(cert, &der);
  cert_der_b64_ = base64_encode(std::string_view(reinterpret_cast<char*>(der), static_cast<size_t>(len)));
  OPENSSL_free(der);
  X509_free(cert);
}

std::string TokenServer::issue(const std::string& service, const std::vector<std::string>& scopes,
                               bool anonymous) const {
  nlohmann::json access = nlohmann::json::array();
  for (const auto& s : scopes) {
    auto first = s.find(':'), last = s.rfind(':');
    if (first == std::string::npos || first == last) continue;
    auto actions = str::split(s.substr(last + 1), ',');
    if (anonymous) {
      actions.erase(std::remove_if(actions.begin(), actions.end(), [](const auto& a) { return a != "pull"; }),
                    actions.end());
    }
    access.push_back({{"type", s.substr(0, first)},
                      {"name", s.substr(first + 1, last - first - 1)},
                      {"actions", actions}});
  }
  int64_t now = std::time(nullptr);
  nlohmann::json header = {{"typ", "JWT"}, {"alg", "RS256"}, {"x5c", {cert_der_b64_}}};
  nlohmann::json claims = {{"iss", issuer_},
                           {"sub", anonymous ? "" : user_},
                           {"aud", service},
                           {"exp", now + 300},
                           {"nbf", now - 10},
                           {"iat", now},
                           {"jti", std::to_string(now) + "-" + std::to_string(rand())},
                           {"access", access}};
  std::string signing_input = b64url(header.dump()) + "." + b64url(claims.dump());
  BIO* bio = BIO_new_mem_buf(key_pem_.data(), static_cast<int>(key_pem_.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!key) throw std::runtime_error("token server: bad key");
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  size_t sig_len = 0;
  EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key);
  EVP_DigestSign(ctx, nullptr, &sig_len, reinterpret_cast<const unsigned char*>(signing_input.data()),
                 signing_input.size());
  std::string sig(sig_len, '\0');
  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &sig_len,
                 reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size());
  sig.resize(sig_len);
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(key);
  return signing_input + "." + b64url(sig);
}

ScriptedReply TokenServer::handle(const ScriptedRequest& req) const {
  std::string path = req.target.substr(0, req.target.find('?'));
  if (path != "/token") return {404, {}, "not found"};
  std::string service;
  std::vector<std::string> scopes;
  if (auto q = req.target.find('?'); q != std::string::npos) {
    for (const auto& kv : str::split(req.target.substr(q + 1), '&')) {
      auto eq = kv.find('=');
      std::string k = kv.substr(0, eq), v = eq == std::string::npos ? "" : url_decode(kv.substr(eq + 1));
      if (k == "service") service = v;
      if (k == "scope") scopes.push_back(v);
    }
  }
  std::string auth = req.header("authorization");
  bool anonymous = auth.empty();
  if (!anonymous && auth != "Basic " + base64_encode(user_ + ":" + pass_))
    return {401, {{"Content-Type", "application/json"}}, R"({"details":"incorrect username or password"})"};
  std::string token = issue(service, scopes, anonymous);
  nlohmann::json body = {{"token", token}, {"access_token", token}, {"expires_in", 300}};
  return {200, {{"Content-Type", "application/json"}}, body.dump()};
}

}  // namespace strata::image::registry_test
