// ApiServer: the HTTP/1.1 server of strata-vmm's API on a unix socket (--api-sock), in its own
// thread. Keep-alive connections, Content-Length (or chunked) bodies up to max_body_bytes
// (Firecracker's default limit, 51200 bytes: larger ones get 413 and the connection is closed),
// malformed requests get 400 and a closed connection; the server keeps serving either way.
// Requests are answered one at a time, in arrival order, by the handler (usually a Router).
// The socket file is created at start (a stale one, whose listener is gone, is replaced; one
// that a live server answers on is refused, as is a path that is not a socket) and removed at
// stop. No Boost in this header: the Beast code is in http_server.cc only.
//
// What a client can hold is bounded (issue 10, item 7): at most max_connections at once (as
// Firecracker's micro_http, one more is answered 503 "Too many open connections" and closed); a
// request must arrive in full, and its response be taken, within request_timeout (else 408 and
// close); a connection idle between requests is closed after idle_timeout. When accept() fails
// (no descriptors left: EMFILE, ENFILE; no memory) the server waits accept_retry before trying
// again, since the listener stays readable and an immediate retry would spin; the warning is
// rate-limited.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "base/error.h"
#include "vmm/api/router.h"

namespace strata::vmm::api {

// Maps (method, target, body) to a response; called on the server's thread only. The body is
// empty when the request had none.
using RequestHandler =
    std::function<ApiResponse(std::string_view method, std::string_view target, std::string_view body)>;

struct ApiServerOptions {
  size_t max_body_bytes = 51200;  // Firecracker's HTTP_MAX_PAYLOAD_SIZE
  size_t max_connections = 10;    // Firecracker's micro_http MAX_CONNECTIONS
  // From a request's first byte to its last, and for writing a response.
  std::chrono::milliseconds request_timeout = std::chrono::seconds(10);
  // Between requests on a keep-alive connection, and from accept to the first byte.
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  std::chrono::milliseconds accept_retry = std::chrono::milliseconds(100);
};

// What the server refused or cut short, since it started.
struct ApiServerStats {
  uint64_t accepted = 0;
  uint64_t accept_failures = 0;      // accept() errors (EMFILE...), each followed by a pause
  uint64_t refused_connections = 0;  // over max_connections: 503
  uint64_t timed_out = 0;            // idle, half-sent or unread connections closed
};

class ApiServer {
 public:
  // Binds and listens on socket_path, then serves on a new thread.
  static Result<std::unique_ptr<ApiServer>> start(const std::string& socket_path, RequestHandler handler,
                                                  ApiServerOptions options = {});
  // The usual handler: router.handle(). The router must outlive the server.
  static Result<std::unique_ptr<ApiServer>> start(const std::string& socket_path, Router& router,
                                                  ApiServerOptions options = {});
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Stops accepting, closes every connection, joins the thread (a request being handled is
  // finished first) and removes the socket file if it is still the one we made. Idempotent.
  void stop();
  const std::string& socket_path() const;
  ApiServerStats stats() const;

  struct Impl;

 private:
  explicit ApiServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::vmm::api
