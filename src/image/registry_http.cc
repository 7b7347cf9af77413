// HttpSession: blocking HTTP/1.1 over Boost.Beast. Every socket operation is an async one run to
// completion on the session's own io_context, so that tcp_stream's per-operation timer bounds
// it (Beast's synchronous calls have no timeouts).
#include "image/registry_http.h"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <map>

namespace strata::image {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

constexpr size_t kChunkSize = 1 << 20;
constexpr uint32_t kHeaderLimit = 64 << 10;

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool iequals(std::string_view a, std::string_view b) { return a.size() == b.size() && lower(a) == lower(b); }

std::string default_port(const std::string& scheme) { return scheme == "https" ? "443" : "80"; }

bool is_ip_literal(const std::string& host) {
  beast::error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

}  // namespace

Result<Url> Url::parse(std::string_view url) {
  std::string what = "parse URL \"" + std::string(url.substr(0, 300)) + "\"";
  auto sep = url.find("://");
  if (sep == std::string_view::npos) return Error(what + ": no scheme");
  Url u;
  u.scheme = lower(url.substr(0, sep));
  if (u.scheme != "http" && u.scheme != "https") return Error(what + ": scheme is not http or https");
  std::string_view rest = url.substr(sep + 3);
  size_t end = rest.find_first_of("/?#");
  std::string_view auth = rest.substr(0, end);
  rest = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (auto hash = rest.find('#'); hash != std::string_view::npos) rest = rest.substr(0, hash);
  if (auto at = auth.rfind('@'); at != std::string_view::npos) auth = auth.substr(at + 1);  // userinfo
  if (!auth.empty() && auth[0] == '[') {
    auto close = auth.find(']');
    if (close == std::string_view::npos) return Error(what + ": unterminated IPv6 address");
    u.host = std::string(auth.substr(1, close - 1));
    std::string_view after = auth.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return Error(what + ": junk after IPv6 address");
      u.port = std::string(after.substr(1));
    }
  } else {
    auto colon = auth.find(':');
    u.host = std::string(auth.substr(0, colon));
    if (colon != std::string_view::npos) u.port = std::string(auth.substr(colon + 1));
  }
  if (u.host.empty()) return Error(what + ": no host");
  if (u.port.empty()) u.port = default_port(u.scheme);
  for (char c : u.port)
    if (c < '0' || c > '9') return Error(what + ": bad port");
  for (char c : rest)
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f)
      return Error(what + ": control character or space");
  u.target = rest.empty() ? "/" : (rest[0] == '?' ? "/" + std::string(rest) : std::string(rest));
  return u;
}

Result<Url> Url::resolve(std::string_view location) const {
  if (location.find("://") != std::string_view::npos) return parse(location);
  if (location.substr(0, 2) == "//") return parse(scheme + ":" + std::string(location));
  std::string target;
  if (!location.empty() && location[0] == '/') {
    target = std::string(location);
  } else {
    std::string base = this->target.substr(0, this->target.find('?'));
    target = base.substr(0, base.rfind('/') + 1) + std::string(location);
  }
  return parse(origin() + target);
}

std::string Url::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port == default_port(scheme) ? h : h + ":" + port;
}

std::string url_encode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Result<std::shared_ptr<ssl::context>> make_tls_context(const TlsOptions& opts) {
  try {
    auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                     ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (!opts.verify) {
      ctx->set_verify_mode(ssl::verify_none);
      return ctx;
    }
    beast::error_code ec;
    ctx->set_default_verify_paths(ec);
    if (ec) return Error("TLS: load the system CA store: " + ec.message());
    for (const auto& f : opts.ca_files) {
      ctx->load_verify_file(f, ec);
      if (ec) return Error("TLS: load CA file " + f + ": " + ec.message());
    }
    ctx->set_verify_mode(ssl::verify_peer);
    return ctx;
  } catch (const std::exception& e) {
    return Error(std::string("TLS: create client context: ") + e.what());
  }
}

std::string HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) return v;
  return {};
}

std::vector<std::string> HttpResponse::headers_named(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : headers)
    if (iequals(k, name)) out.push_back(v);
  return out;
}

namespace {

struct Connection {
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  beast::flat_buffer buffer;
  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }
  template <class F>
  auto with_stream(F&& f) {
    if (tls) return f(*tls);
    return f(*plain);
  }
};

}  // namespace

struct HttpSession::Impl {
  asio::io_context ioc;
  std::shared_ptr<ssl::context> tls;
  bool verify = true;
  std::chrono::milliseconds timeout;
  std::map<std::string, std::unique_ptr<Connection>> conns;
  std::vector<char> chunk = std::vector<char>(kChunkSize);

  // Runs one asynchronous operation to completion under the connection's timer.
  template <class Start>
  beast::error_code run(Connection& c, Start&& start) {
    c.lowest().expires_after(timeout);
    beast::error_code result = asio::error::operation_aborted;
    bool done = false;
    start([&](beast::error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    ioc.restart();
    ioc.run();
    if (!done) return asio::error::operation_aborted;
    return result;
  }

  Result<Connection*> connect(const Url& url, bool* reused, HttpFailure* failure);
  Result<HttpResponse> exchange(Connection& c, const HttpRequest& req, size_t max_body, const BodySink& sink,
                                HttpFailure* failure, bool* nothing_received, bool* keep_alive);
};

Result<Connection*> HttpSession::Impl::connect(const Url& url, bool* reused, HttpFailure* failure) {
  std::string key = url.origin();
  if (auto it = conns.find(key); it != conns.end()) {
    *reused = true;
    return it->second.get();
  }
  *reused = false;
  std::string where = url.authority();
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, url.port, ec);
  if (ec) {
    *failure = HttpFailure::kConnect;
    return Error("resolve " + url.host + ": " + ec.message());
  }
  auto c = std::make_unique<Connection>();
  if (url.scheme == "https") {
    c->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(ioc, *tls);
  } else {
    c->plain = std::make_unique<beast::tcp_stream>(ioc);
  }
  ec = run(*c, [&](auto handler) { c->lowest().async_connect(endpoints, std::move(handler)); });
  if (ec) {
    *failure = HttpFailure::kConnect;
    return Error("connect to " + where + ": " + ec.message());
  }
  if (c->tls) {
    SSL* s = c->tls->native_handle();
    bool ip = is_ip_literal(url.host);
    if (!ip) SSL_set_tlsext_host_name(s, url.host.c_str());
    if (verify) {
      X509_VERIFY_PARAM* param = SSL_get0_param(s);
      if (ip)
        X509_VERIFY_PARAM_set1_ip_asc(param, url.host.c_str());
      else
        X509_VERIFY_PARAM_set1_host(param, url.host.c_str(), 0);
    }
    ec =
        run(*c, [&](auto handler) { c->tls->async_handshake(ssl::stream_base::client, std::move(handler)); });
    if (ec) {
      long vr = SSL_get_verify_result(s);
      if (verify && vr != X509_V_OK) {
        *failure = HttpFailure::kTlsVerify;
        return Error("TLS handshake with " + where +
                     ": certificate verification failed: " + X509_verify_cert_error_string(vr));
      }
      *failure = HttpFailure::kTlsHandshake;
      return Error("TLS handshake with " + where + ": " + ec.message());
    }
  }
  Connection* raw = c.get();
  conns[key] = std::move(c);
  return raw;
}

Result<HttpResponse> HttpSession::Impl::exchange(Connection& c, const HttpRequest& req, size_t max_body,
                                                 const BodySink& sink, HttpFailure* failure,
                                                 bool* nothing_received, bool* keep_alive) {
  *nothing_received = true;
  *keep_alive = false;
  std::string where = req.method + " " + req.url.str();
  auto fill = [&](auto& msg) {
    msg.method_string(req.method);
    msg.target(req.url.target);
    msg.version(11);
    msg.set(http::field::host, req.url.authority());
    msg.set(http::field::user_agent, "strata");
    for (const auto& [k, v] : req.headers) msg.set(k, v);
  };
  beast::error_code ec;
  if (!req.body_file.empty()) {
    http::request<http::file_body> msg;
    fill(msg);
    msg.body().open(req.body_file.c_str(), beast::file_mode::scan, ec);
    if (ec) {
      *failure = HttpFailure::kLocal;
      return Error("open " + req.body_file + ": " + ec.message());
    }
    msg.prepare_payload();
    ec = c.with_stream([&](auto& s) {
      return run(c, [&](auto handler) { http::async_write(s, msg, std::move(handler)); });
    });
  } else {
    http::request<http::string_body> msg;
    fill(msg);
    msg.body() = req.body;
    if (!req.body.empty() || req.method == "PUT" || req.method == "POST" || req.method == "PATCH")
      msg.prepare_payload();
    ec = c.with_stream([&](auto& s) {
      return run(c, [&](auto handler) { http::async_write(s, msg, std::move(handler)); });
    });
  }
  if (ec) {
    *failure = HttpFailure::kIo;
    return Error(where + ": send request: " + ec.message());
  }
  http::response_parser<http::buffer_body> parser;
  parser.body_limit(boost::none);
  parser.header_limit(kHeaderLimit);
  if (req.method == "HEAD") parser.skip(true);
  ec = c.with_stream([&](auto& s) {
    return run(c, [&](auto handler) { http::async_read_header(s, c.buffer, parser, std::move(handler)); });
  });
  if (ec) {
    *failure = HttpFailure::kIo;
    return Error(where + ": read response: " + ec.message());
  }
  *nothing_received = false;
  HttpResponse resp;
  const auto& head = parser.get();
  resp.status = head.result_int();
  resp.reason = std::string(head.reason());
  if (resp.reason.empty()) resp.reason = std::string(http::obsolete_reason(head.result()));
  for (const auto& f : head) resp.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  bool to_sink = sink && (resp.status == 200 || resp.status == 206);
  if (to_sink && sink.begin) {
    Status st = sink.begin(resp);
    if (!st.ok()) {
      *failure = HttpFailure::kSink;
      return std::move(st).error();
    }
  }
  uint64_t received = 0;
  while (!parser.is_done()) {
    parser.get().body().data = chunk.data();
    parser.get().body().size = chunk.size();
    ec = c.with_stream([&](auto& s) {
      return run(c, [&](auto handler) { http::async_read(s, c.buffer, parser, std::move(handler)); });
    });
    if (ec == http::error::need_buffer) ec = {};
    // Bytes that arrived before a failure are delivered too: a resumed download starts after them.
    size_t n = chunk.size() - parser.get().body().size;
    received += n;
    if (to_sink && n > 0) {
      Status st = sink.data(chunk.data(), n);
      if (!st.ok()) {
        *failure = HttpFailure::kSink;
        return std::move(st).error();
      }
    }
    if (ec) {
      *failure = HttpFailure::kIo;
      return Error(where + ": read body after " + std::to_string(received) + " bytes: " + ec.message());
    }
    if (to_sink) continue;
    if (resp.body.size() + n > max_body) {
      if (resp.status >= 200 && resp.status < 300) {
        *failure = HttpFailure::kTooLarge;
        return Error(where + ": body larger than the limit of " + std::to_string(max_body) + " bytes");
      }
      resp.body.append(chunk.data(), max_body - resp.body.size());
      resp.body_truncated = true;
      return resp;  // the rest is not read: the connection is dropped
    }
    resp.body.append(chunk.data(), n);
  }
  *keep_alive = parser.keep_alive();
  return resp;
}

HttpSession::HttpSession(std::shared_ptr<ssl::context> tls, bool tls_verify,
                         std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->tls = std::move(tls);
  impl_->verify = tls_verify;
  impl_->timeout = timeout;
}

HttpSession::~HttpSession() = default;

Result<HttpResponse> HttpSession::send(const HttpRequest& req, size_t max_body, const BodySink& sink,
                                       HttpFailure* failure) {
  *failure = HttpFailure::kNone;
  std::string key = req.url.origin();
  // A kept-alive connection may have been closed by the server while idle: one retry on a new
  // connection when nothing at all came back on the old one.
  for (int round = 0;; ++round) {
    bool reused = false;
    auto conn = impl_->connect(req.url, &reused, failure);
    if (!conn.ok()) return std::move(conn).error();
    bool nothing_received = false, keep_alive = false;
    auto r = impl_->exchange(**conn, req, max_body, sink, failure, &nothing_received, &keep_alive);
    if (!r.ok() || !keep_alive || r->body_truncated) impl_->conns.erase(key);
    if (!r.ok() && reused && nothing_received && *failure == HttpFailure::kIo && round == 0) continue;
    return r;
  }
}

}  // namespace strata::image
