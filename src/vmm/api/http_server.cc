// The API's HTTP/1.1 transport: Boost.Beast's request_parser over Asio unix stream sockets, one
// io_context run by one thread. This is the only translation unit of src/vmm that includes
// Beast (compiled at -O1: see src/vmm/CMakeLists.txt); the request semantics are in router.cc.
#include "vmm/api/http_server.h"

#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <atomic>
#include <list>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "base/fd.h"
#include "base/log.h"
#include "vmm/log_rate_limiter.h"

namespace strata::vmm::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using unix_socket = asio::local::stream_protocol;

namespace {

constexpr uint32_t kHeaderLimit = 16 << 10;

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path))
    return Error("API socket path \"" + path + "\" is empty or longer than " +
                 std::to_string(sizeof(addr.sun_path) - 1) + " bytes");
  path.copy(addr.sun_path, path.size());
  return addr;
}

// Removes a socket file nobody listens on; refuses a live one or a non-socket.
Status clear_stale_socket(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return ok();
    return Error::sys("stat " + path);
  }
  if (!S_ISSOCK(st.st_mode)) return Error("API socket path " + path + " exists and is not a socket");
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return Error::sys("create a unix socket");
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
    return Error("Failed to open the API socket at: " + path + ". Check that it is not already used.");
  if (errno != ECONNREFUSED && errno != ENOENT) return Error::sys("probe API socket " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Error::sys("remove stale API socket " + path);
  return ok();
}

}  // namespace

struct ApiServer::Impl {
  struct Session;

  std::string path;
  RequestHandler handler;
  ApiServerOptions options;
  dev_t dev = 0;
  ino_t ino = 0;
  // Declared before the io_context: sessions still queued in it when it is destroyed release
  // their slot in open_connections then.
  size_t open_connections = 0;  // the server's thread only
  std::atomic<uint64_t> accepted{0}, accept_failures{0}, refused{0}, timed_out{0};
  LogRateLimiter accept_log, refuse_log;
  std::string full_response;  // the 503 for a connection over max_connections
  asio::io_context ioc{1};
  std::optional<unix_socket::acceptor> acceptor;
  std::optional<asio::steady_timer> accept_timer;
  std::list<std::weak_ptr<Session>> sessions;
  std::thread thread;
  bool stopped = false;

  void accept();
  void on_accept_error(beast::error_code ec);
  void refuse(unix_socket::socket socket);
  void run();
};

// One connection. Its life: wait_request (idle deadline) -> read_header/read_body (request
// deadline) -> the handler -> the response write (request deadline) -> wait_request or close.
// A deadline that passes cancels the pending operation; its handler sees timed_out and ends the
// connection (with a 408 when a request was under way).
struct ApiServer::Impl::Session : std::enable_shared_from_this<Session> {
  enum class Phase { kIdle, kRequest, kResponse };

  Session(Impl& server, unix_socket::socket socket)
      : server(server), socket(std::move(socket)), timer(this->socket.get_executor()) {
    ++server.open_connections;
  }
  ~Session() { release_slot(); }

  Impl& server;
  unix_socket::socket socket;
  asio::steady_timer timer;
  beast::flat_buffer buffer;
  std::optional<http::request_parser<http::string_body>> parser;
  http::response<http::string_body> response;
  std::string continue_line;
  Phase phase = Phase::kIdle;
  uint64_t deadline_seq = 0;  // bumped by every arm/disarm: a stale expiry is ignored
  bool timed_out = false;
  bool counted = true;  // holds a slot in server.open_connections

  void release_slot() {
    if (counted) --server.open_connections;
    counted = false;
  }

  void arm(Phase p) {
    phase = p;
    // A deadline that passed just as its operation completed cancelled nothing: forget it.
    timed_out = false;
    uint64_t seq = ++deadline_seq;
    timer.expires_after(p == Phase::kIdle ? server.options.idle_timeout : server.options.request_timeout);
    timer.async_wait([self = shared_from_this(), seq](beast::error_code ec) {
      if (ec || seq != self->deadline_seq || !self->socket.is_open()) return;
      self->timed_out = true;
      ++self->server.timed_out;
      beast::error_code ignored;
      self->socket.cancel(ignored);  // the pending wait, read or write ends with operation_aborted
    });
  }

  void disarm() {
    ++deadline_seq;
    timer.cancel();
  }

  // Waits for the first byte of the next request under the idle deadline, unless pipelined
  // bytes are already buffered.
  void wait_request() {
    if (buffer.size() > 0) return read_header();
    arm(Phase::kIdle);
    socket.async_wait(unix_socket::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->on_error(ec);
      self->read_header();
    });
  }

  void read_header() {
    arm(Phase::kRequest);
    parser.emplace();
    parser->header_limit(kHeaderLimit);
    parser->body_limit(server.options.max_body_bytes);
    http::async_read_header(socket, buffer, *parser,
                            [self = shared_from_this()](beast::error_code ec, size_t) {
                              self->on_header(ec);
                            });
  }

  void on_header(beast::error_code ec) {
    if (ec) return on_error(ec);
    // curl sends "Expect: 100-continue" before large bodies and waits a second for this line.
    auto expect = parser->get()[http::field::expect];
    if (!parser->is_done() && beast::iequals(expect, "100-continue")) {
      continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(socket, asio::buffer(continue_line),
                        [self = shared_from_this()](beast::error_code ec, size_t) {
                          if (ec) return self->close();
                          self->read_body();
                        });
      return;
    }
    read_body();
  }

  void read_body() {
    http::async_read(socket, buffer, *parser, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->on_request(ec);
    });
  }

  void on_error(beast::error_code ec) {
    if (timed_out) {
      if (phase != Phase::kRequest) return close();  // idle, or a client not taking its response
      log::get("vmm")->debug("API socket {}: a request not received in full within {} ms; closing",
                             server.path, server.options.request_timeout.count());
      return respond_and_close(http::status::request_timeout,
                               fault_body("The request was not received in full within " +
                                          std::to_string(server.options.request_timeout.count()) +
                                          " ms; the connection is closed."));
    }
    // A clean close between requests, or the server stopping: nothing to answer.
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
        ec == http::error::partial_message || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::broken_pipe)
      return close();
    if (ec == http::error::body_limit) {
      std::string size;
      // content_length() may only be asked once the header is parsed (Beast asserts it), and a
      // Content-Length over the limit fails while the header is still being parsed.
      if (parser && parser->is_header_done() && parser->content_length()) {
        size = " with size " + std::to_string(*parser->content_length());
      } else if (parser) {
        auto cl = parser->get()[http::field::content_length];
        if (!cl.empty()) size = " with size " + std::string(cl);
      }
      return respond_and_close(http::status::payload_too_large,
                               fault_body("Request payload" + size + " is larger than the limit of " +
                                          std::to_string(server.options.max_body_bytes) +
                                          " allowed by server."));
    }
    if (ec == http::error::header_limit)
      return respond_and_close(http::status::bad_request, fault_body("Request headers are too large."));
    // A malformed request: the stream's framing is lost, so answer and close.
    respond_and_close(http::status::bad_request, fault_body("Invalid HTTP request: " + ec.message() + "."));
  }

  void on_request(beast::error_code ec) {
    if (ec) return on_error(ec);
    disarm();  // the handler runs on this thread: no deadline applies to it
    auto& req = parser->get();
    ApiResponse r;
    try {
      r = server.handler(req.method_string(), req.target(), req.body());
    } catch (const std::exception& e) {
      r = ApiResponse{500, fault_body(std::string("Internal error: ") + e.what())};
    }
    bool keep_alive = req.keep_alive();
    response = {};
    response.version(11);
    response.result(r.status);
    response.set(http::field::server, "strata-vmm API");
    if (!r.body.empty()) response.set(http::field::content_type, "application/json");
    response.body() = std::move(r.body);
    response.keep_alive(keep_alive);
    response.prepare_payload();
    arm(Phase::kResponse);
    http::async_write(socket, response, [self = shared_from_this(), keep_alive](beast::error_code ec, size_t) {
      if (ec || !keep_alive) return self->close();
      self->wait_request();
    });
  }

  void respond_and_close(http::status status, std::string body) {
    response = {};
    response.version(11);
    response.result(status);
    response.set(http::field::server, "strata-vmm API");
    response.set(http::field::content_type, "application/json");
    response.body() = std::move(body);
    response.keep_alive(false);
    response.prepare_payload();
    arm(Phase::kResponse);
    http::async_write(socket, response, [self = shared_from_this()](beast::error_code, size_t) { self->close(); });
  }

  void close() {
    disarm();
    release_slot();
    beast::error_code ignored;
    socket.shutdown(unix_socket::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
};

void ApiServer::Impl::accept() {
  acceptor->async_accept([this](beast::error_code ec, unix_socket::socket socket) {
    if (ec == asio::error::operation_aborted || stopped) return;
    if (ec) return on_accept_error(ec);
    ++accepted;
    if (open_connections >= options.max_connections) {
      refuse(std::move(socket));
    } else {
      auto session = std::make_shared<Session>(*this, std::move(socket));
      sessions.remove_if([](const std::weak_ptr<Session>& w) { return w.expired(); });
      sessions.push_back(session);
      session->wait_request();
    }
    accept();
  });
}

// The listener stays readable while the error lasts (the connection waits in the backlog), so
// accepting again at once would spin, logging each failure: pause, then try again. Connections
// closing (idle and request deadlines) give descriptors back meanwhile.
void ApiServer::Impl::on_accept_error(beast::error_code ec) {
  ++accept_failures;
  uint64_t suppressed = 0;
  if (accept_log.allow(LogRateLimiter::Clock::now(), &suppressed)) {
    log::get("vmm")->warn("API socket {}: accept: {} ({} connections open); trying again in {} ms{}", path,
                          ec.message(), open_connections, options.accept_retry.count(),
                          suppressed ? " (" + std::to_string(suppressed) + " such failures not logged)" : "");
  }
  accept_timer->expires_after(options.accept_retry);
  accept_timer->async_wait([this](beast::error_code e) {
    if (e || stopped) return;
    accept();
  });
}

// As Firecracker's server: accept, say why, close. The answer fits in an empty socket buffer;
// if it does not go out at once it is not waited for.
void ApiServer::Impl::refuse(unix_socket::socket socket) {
  ++refused;
  uint64_t suppressed = 0;
  if (refuse_log.allow(LogRateLimiter::Clock::now(), &suppressed)) {
    log::get("vmm")->warn("API socket {}: {} connections open, the most it serves; refusing one more{}", path,
                          open_connections,
                          suppressed ? " (" + std::to_string(suppressed) + " such refusals not logged)" : "");
  }
  (void)::send(socket.native_handle(), full_response.data(), full_response.size(),
               MSG_DONTWAIT | MSG_NOSIGNAL);
  beast::error_code ignored;
  socket.close(ignored);
}

void ApiServer::Impl::run() {
  pthread_setname_np(pthread_self(), "strata-api");
  for (;;) {
    try {
      ioc.run();
      return;
    } catch (const std::exception& e) {
      // A handler threw past its own catch (allocation failure): log it and keep serving.
      log::get("vmm")->error("API server on {}: {}", path, e.what());
    }
  }
}

Result<std::unique_ptr<ApiServer>> ApiServer::start(const std::string& socket_path, RequestHandler handler,
                                                    ApiServerOptions options) {
  ASSIGN_OR_RETURN(sockaddr_un addr, unix_address(socket_path));
  TRY(clear_stale_socket(socket_path, addr));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::sys("create the API socket");
  // Clients wait for the socket file and connect at once: it must never exist without a
  // listener (a connect between bind and listen is refused). So bind a temporary name beside
  // it, listen, and rename it into place; directly only when the temporary name is too long.
  std::string bound = socket_path + ".new";
  sockaddr_un tmp_addr{};
  if (auto a = unix_address(bound); a.ok()) {
    tmp_addr = *a;
    ::unlink(bound.c_str());  // a leftover of a monitor killed right here
  } else {
    bound = socket_path;
    tmp_addr = addr;
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&tmp_addr), sizeof tmp_addr) != 0) {
    if (errno == EADDRINUSE)
      return Error("Failed to open the API socket at: " + socket_path + ". Check that it is not already used.");
    return Error::sys("bind the API socket " + bound);
  }
  if (::listen(fd.get(), 64) != 0) {
    Error e = Error::sys("listen on the API socket " + socket_path);
    ::unlink(bound.c_str());
    return e;
  }
  if (bound != socket_path && ::rename(bound.c_str(), socket_path.c_str()) != 0) {
    Error e = Error::sys("rename the API socket " + bound + " to " + socket_path);
    ::unlink(bound.c_str());
    return e;
  }
  auto impl = std::make_unique<Impl>();
  impl->path = socket_path;
  impl->handler = std::move(handler);
  impl->options = options;
  impl->options.max_connections = std::max<size_t>(options.max_connections, 1);
  std::string full = fault_body("Too many open connections: strata-vmm serves at most " +
                                std::to_string(impl->options.max_connections) + " API connections at a time.");
  impl->full_response = "HTTP/1.1 503 Service Unavailable\r\nServer: strata-vmm API\r\n"
                        "Content-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                        std::to_string(full.size()) + "\r\n\r\n" + full;
  struct stat st {};
  if (::stat(socket_path.c_str(), &st) == 0) {
    impl->dev = st.st_dev;
    impl->ino = st.st_ino;
  }
  beast::error_code ec;
  impl->acceptor.emplace(impl->ioc);
  impl->acceptor->assign(unix_socket(), fd.get(), ec);
  if (ec) {
    ::unlink(socket_path.c_str());
    return Error("adopt the API socket " + socket_path + ": " + ec.message());
  }
  fd.release();
  impl->accept_timer.emplace(impl->ioc);
  impl->accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->run(); });
  log::get("vmm")->info("API server listening on {}", socket_path);
  return std::unique_ptr<ApiServer>(new ApiServer(std::move(impl)));
}

Result<std::unique_ptr<ApiServer>> ApiServer::start(const std::string& socket_path, Router& router,
                                                    ApiServerOptions options) {
  return start(
      socket_path,
      [&router](std::string_view method, std::string_view target, std::string_view body) {
        return router.handle(method, target, body);
      },
      options);
}

ApiServer::ApiServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ApiServer::~ApiServer() { stop(); }

const std::string& ApiServer::socket_path() const { return impl_->path; }

ApiServerStats ApiServer::stats() const {
  ApiServerStats s;
  s.accepted = impl_->accepted;
  s.accept_failures = impl_->accept_failures;
  s.refused_connections = impl_->refused;
  s.timed_out = impl_->timed_out;
  return s;
}

void ApiServer::stop() {
  if (!impl_ || impl_->stopped) return;
  Impl* impl = impl_.get();
  asio::post(impl->ioc, [impl] {
    impl->stopped = true;
    beast::error_code ignored;
    impl->acceptor->close(ignored);
    impl->accept_timer->cancel();
    for (auto& w : impl->sessions)
      if (auto s = w.lock()) s->close();
    impl->sessions.clear();
  });
  if (impl->thread.joinable()) impl->thread.join();
  impl->stopped = true;
  // Remove the socket file only if it is still ours (not replaced by a newer server).
  struct stat st {};
  if (::stat(impl->path.c_str(), &st) == 0 && st.st_dev == impl->dev && st.st_ino == impl->ino)
    ::unlink(impl->path.c_str());
}

}  // namespace strata::vmm::api
