// The HTTP/1.1 transport under the registry client: URLs, a TLS context, and HttpSession, a
// blocking client (Boost.Beast over Asio, each I/O step bounded by a timeout) that keeps one
// keep-alive connection per origin. A session belongs to one thread; the TLS context is shared.
// No auth, redirects or retries here: registry.cc decides those, because they depend on what is
// being fetched.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/error.h"

namespace boost::asio::ssl {
class context;
}

namespace strata::image {

struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;    // without IPv6 brackets
  std::string port;
  std::string target;  // path and query, "/" at least

  // "http(s)://host[:port][/path][?query]".
  static Result<Url> parse(std::string_view url);
  // A Location header: absolute, or relative to this URL.
  Result<Url> resolve(std::string_view location) const;
  // "host:port" with IPv6 brackets (also the Host header when the port is not the default).
  std::string authority() const;
  std::string origin() const { return scheme + "://" + authority(); }
  std::string str() const { return origin() + target; }
};

// Percent-encodes a query parameter value (RFC 3986 unreserved characters stay).
std::string url_encode(std::string_view s);

struct TlsOptions {
  bool verify = true;
  std::vector<std::string> ca_files;  // trusted in addition to the system store
};
// A client TLS context; shared by every session of one registry client.
Result<std::shared_ptr<boost::asio::ssl::context>> make_tls_context(const TlsOptions& opts);

struct HttpRequest {
  std::string method = "GET";
  Url url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string body_file;  // when set, the body is this file's content (streamed from disk)
};

struct HttpResponse {
  unsigned status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;  // empty when the body went to a sink
  bool body_truncated = false;
  // The first header of that name (case-insensitive), "" when absent.
  std::string header(std::string_view name) const;
  std::vector<std::string> headers_named(std::string_view name) const;
};

// Why a send failed (for retry and HTTP-fallback decisions).
enum class HttpFailure {
  kNone,
  kConnect,       // resolve or TCP connect
  kTlsHandshake,  // handshake failed, not because of the peer's certificate
  kTlsVerify,     // the peer's certificate was refused
  kIo,            // timeout, reset or short read after connecting
  kSink,          // the body sink refused data
  kTooLarge,      // a 2xx body above max_body without a sink
  kLocal,         // a local problem (opening the body file)
};
inline bool is_transient(HttpFailure f) { return f == HttpFailure::kConnect || f == HttpFailure::kIo; }

// Receives a 200/206 body: begin() once with the status and headers, then data() per chunk.
// An error from either aborts the exchange (HttpFailure::kSink).
struct BodySink {
  std::function<Status(const HttpResponse& head)> begin;
  std::function<Status(const char* data, size_t n)> data;
  explicit operator bool() const { return static_cast<bool>(data); }
};

class HttpSession {
 public:
  HttpSession(std::shared_ptr<boost::asio::ssl::context> tls, bool tls_verify,
              std::chrono::milliseconds timeout);
  ~HttpSession();
  HttpSession(const HttpSession&) = delete;
  HttpSession& operator=(const HttpSession&) = delete;

  // Sends the request and reads the answer. A 200/206 body goes to `sink` when given; other
  // bodies are kept up to max_body bytes (error bodies are truncated, 2xx ones refused).
  // HEAD answers carry no body. On failure, *failure says why.
  Result<HttpResponse> send(const HttpRequest& req, size_t max_body, const BodySink& sink,
                            HttpFailure* failure);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::image
