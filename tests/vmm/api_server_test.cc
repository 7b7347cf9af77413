// The API server on a real unix socket, spoken to with a plain socket: keep-alive, bad requests,
// size limits, the socket file's life cycle, and what a client can hold (connection cap,
// deadlines, running out of descriptors).
#include "vmm/api/http_server.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "base/fd.h"

namespace strata::vmm::api {
namespace {

class IdleController : public VmController {
 public:
  InstanceState state() const override { return InstanceState::kNotStarted; }
  Status configure_logger(const Logger&) override { return ok(); }
  Status configure_metrics(const Metrics&) override { return ok(); }
  Status start(const VmConfig&) override { return Error("no VM in this test"); }
  Status pause() override { return ok(); }
  Status resume() override { return ok(); }
  Status send_ctrl_alt_del() override { return ok(); }
  Status flush_metrics() override { return ok(); }
  Status snapshot_create(const SnapshotCreate&) override { return ok(); }
  Result<VmConfig> snapshot_load(const SnapshotLoad&) override { return Error("no snapshots in this test"); }
  Status patch_drive(const std::string&, const std::string&) override { return ok(); }
};

UniqueFd connect_to(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return UniqueFd();
  timeval tv{5, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;  // the server may close early (oversized body): its answer is what counts
    data.remove_prefix(static_cast<size_t>(n));
  }
}

struct Reply {
  int status = 0;
  std::string headers;
  std::string body;
};

// Reads one response: headers, then Content-Length bytes. `pending` keeps bytes read past it.
std::optional<Reply> read_reply(int fd, std::string& pending) {
  auto fill = [&]() {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    pending.append(buf, static_cast<size_t>(n));
    return true;
  };
  size_t end;
  while ((end = pending.find("\r\n\r\n")) == std::string::npos)
    if (!fill()) return std::nullopt;
  Reply r;
  r.headers = pending.substr(0, end + 2);
  pending.erase(0, end + 4);
  r.status = std::stoi(r.headers.substr(9, 3));
  size_t length = 0;
  std::string lower = r.headers;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (auto p = lower.find("content-length:"); p != std::string::npos) length = std::stoul(lower.substr(p + 15));
  while (pending.size() < length)
    if (!fill()) return std::nullopt;
  r.body = pending.substr(0, length);
  pending.erase(0, length);
  return r;
}

bool peer_closed(int fd) {
  char c;
  return ::recv(fd, &c, 1, 0) == 0;
}

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

double cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

class ApiServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("strata-api-server-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "api.sock").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string path_;
  IdleController ctl_;
  Router router_{ctl_};
};

TEST_F(ApiServerTest, ApiServerKeepAliveAndBadRequests) {
  auto server = ApiServer::start(path_, router_);
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));

  // Two requests on one connection, the second sent before the first is answered.
  UniqueFd c = connect_to(path_);
  ASSERT_TRUE(c);
  std::string body = R"({"vcpu_count": 2, "mem_size_mib": 256})";
  send_all(c.get(), "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n\r\n"
                    "PUT /machine-config HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                    "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  std::string pending;
  auto r1 = read_reply(c.get(), pending);
  ASSERT_TRUE(r1);
  EXPECT_EQ(r1->status, 200);
  EXPECT_NE(r1->body.find("\"state\":\"Not started\""), std::string::npos) << r1->body;
  EXPECT_NE(r1->headers.find("application/json"), std::string::npos);
  auto r2 = read_reply(c.get(), pending);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->status, 204);
  EXPECT_TRUE(r2->body.empty());
  // ... and a third on the same connection sees the change.
  send_all(c.get(), "GET /machine-config HTTP/1.1\r\nHost: localhost\r\n\r\n");
  auto r3 = read_reply(c.get(), pending);
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->status, 200);
  EXPECT_NE(r3->body.find("\"mem_size_mib\":256"), std::string::npos) << r3->body;

  // A router-level refusal keeps the connection open.
  send_all(c.get(), "PUT /actions HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\n\r\n{}");
  auto r4 = read_reply(c.get(), pending);
  ASSERT_TRUE(r4);
  EXPECT_EQ(r4->status, 400);
  EXPECT_NE(r4->body.find("missing field `action_type`"), std::string::npos) << r4->body;
  send_all(c.get(), "GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n");
  auto r5 = read_reply(c.get(), pending);
  ASSERT_TRUE(r5);
  EXPECT_EQ(r5->status, 400);
  EXPECT_NE(r5->body.find("Invalid request method and/or path: GET nowhere."), std::string::npos) << r5->body;

  // A malformed request line: 400 and the connection is closed.
  UniqueFd bad = connect_to(path_);
  ASSERT_TRUE(bad);
  send_all(bad.get(), "GARBAGE\x01 / HTTP/9\r\n\r\n");
  std::string pending_bad;
  auto rb = read_reply(bad.get(), pending_bad);
  ASSERT_TRUE(rb);
  EXPECT_EQ(rb->status, 400);
  EXPECT_NE(rb->body.find("fault_message"), std::string::npos);
  EXPECT_TRUE(peer_closed(bad.get()));

  // An oversized body: 413 before the body is read, and the connection is closed.
  UniqueFd big = connect_to(path_);
  ASSERT_TRUE(big);
  std::string huge(60000, ' ');
  send_all(big.get(), "PUT /logger HTTP/1.1\r\nHost: localhost\r\nContent-Length: " + std::to_string(huge.size()) +
                          "\r\n\r\n" + huge);
  std::string pending_big;
  auto rg = read_reply(big.get(), pending_big);
  ASSERT_TRUE(rg);
  EXPECT_EQ(rg->status, 413);
  EXPECT_NE(rg->body.find("larger than the limit of 51200"), std::string::npos) << rg->body;

  // The first connection still works after all that.
  send_all(c.get(), "GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n");
  auto r6 = read_reply(c.get(), pending);
  ASSERT_TRUE(r6);
  EXPECT_EQ(r6->status, 200);

  // Connection: close is honoured.
  send_all(c.get(), "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
  auto r7 = read_reply(c.get(), pending);
  ASSERT_TRUE(r7);
  EXPECT_TRUE(peer_closed(c.get()));

  (*server)->stop();
  EXPECT_FALSE(std::filesystem::exists(path_));
  EXPECT_FALSE(connect_to(path_));
}

TEST_F(ApiServerTest, ApiServerExpectContinue) {
  auto server = ApiServer::start(path_, router_);
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  UniqueFd c = connect_to(path_);
  std::string body = R"({"level": "Info"})";
  send_all(c.get(), "PUT /logger HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\n\r\n");
  std::string pending;
  auto cont = read_reply(c.get(), pending);
  ASSERT_TRUE(cont);
  EXPECT_EQ(cont->status, 100);
  send_all(c.get(), body);
  auto r = read_reply(c.get(), pending);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
}

TEST_F(ApiServerTest, ApiServerSocketFileLifeCycle) {
  // A stale socket file (its listener gone) is replaced.
  {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  }
  ASSERT_TRUE(std::filesystem::exists(path_));
  auto first = ApiServer::start(path_, router_);
  ASSERT_TRUE(first.ok()) << first.error().to_string();

  // A live one is refused, and left alone.
  auto second = ApiServer::start(path_, router_);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().message(), "Failed to open the API socket at: " + path_ + ". Check that it is not already used.");
  EXPECT_TRUE(connect_to(path_));

  // Stopping removes the file; stopping twice is harmless.
  (*first)->stop();
  (*first)->stop();
  EXPECT_FALSE(std::filesystem::exists(path_));

  // A path that is not a socket is never removed.
  std::ofstream(path_) << "precious";
  auto third = ApiServer::start(path_, router_);
  ASSERT_FALSE(third.ok());
  EXPECT_NE(third.error().message().find("is not a socket"), std::string::npos);
  EXPECT_TRUE(std::filesystem::exists(path_));

  EXPECT_FALSE(ApiServer::start(std::string(200, 'x'), router_).ok());
}

TEST_F(ApiServerTest, IdleConnectionsAreClosed) {
  ApiServerOptions o;
  o.idle_timeout = 300ms;
  auto server = ApiServer::start(path_, router_, o);
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  // Never a byte.
  UniqueFd silent = connect_to(path_);
  auto t0 = Clock::now();
  EXPECT_TRUE(peer_closed(silent.get()));  // within SO_RCVTIMEO's 5 s, else recv fails
  EXPECT_GE(Clock::now() - t0, 250ms);
  // Idle after a request, on a keep-alive connection.
  UniqueFd c = connect_to(path_);
  send_all(c.get(), "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  std::string pending;
  auto r = read_reply(c.get(), pending);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(peer_closed(c.get()));
  EXPECT_EQ((*server)->stats().timed_out, 2u);
}

TEST_F(ApiServerTest, RequestsSentInPartGet408) {
  ApiServerOptions o;
  o.request_timeout = 300ms;
  auto server = ApiServer::start(path_, router_, o);
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  for (std::string part :
       {std::string("PUT /machine-config HTTP/1.1\r\nHost: localhost\r\n"),
        std::string("PUT /machine-config HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"vcpu")}) {
    UniqueFd c = connect_to(path_);
    send_all(c.get(), part);
    std::string pending;
    auto t0 = Clock::now();
    auto r = read_reply(c.get(), pending);
    ASSERT_TRUE(r) << "no answer to a request sent in part: " << part;
    EXPECT_GE(Clock::now() - t0, 250ms);
    EXPECT_EQ(r->status, 408);
    EXPECT_NE(r->body.find("The request was not received in full within 300 ms"), std::string::npos)
        << r->body;
    EXPECT_TRUE(peer_closed(c.get()));
  }
  // A slow but complete request is not cut: the deadline is for the whole request, 300 ms here.
  UniqueFd c = connect_to(path_);
  send_all(c.get(), "GET / HTTP/1.1\r\n");
  std::this_thread::sleep_for(100ms);
  send_all(c.get(), "Host: localhost\r\n\r\n");
  std::string pending;
  auto r = read_reply(c.get(), pending);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(ApiServerTest, ResponsesNobodyReadsEndTheConnection) {
  ApiServerOptions o;
  o.request_timeout = 300ms;
  auto server = ApiServer::start(path_, router_, o);
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  // Pipelined requests whose answers are never read: the server's writes fill the socket and
  // wait; after the deadline the connection is closed instead of held for ever.
  UniqueFd c = connect_to(path_);
  std::string req = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  // Send until the server stops taking requests (its writes wait, so it reads no more): no
  // progress for 200 ms. A partial send is finished, so that only whole requests are counted.
  size_t sent = 0;
  auto last_progress = Clock::now();
  std::string_view rest;
  while (Clock::now() - last_progress < 200ms && sent < 100000) {
    if (rest.empty()) rest = req;
    ssize_t n = ::send(c.get(), rest.data(), rest.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n <= 0) {
      std::this_thread::sleep_for(1ms);
      continue;
    }
    rest.remove_prefix(static_cast<size_t>(n));
    if (rest.empty()) ++sent;
    last_progress = Clock::now();
  }
  std::this_thread::sleep_for(1s);
  std::string pending;
  size_t answered = 0;
  while (read_reply(c.get(), pending)) ++answered;
  EXPECT_LT(answered, sent) << "every response was waited for";
  EXPECT_GE((*server)->stats().timed_out, 1u);
}

TEST_F(ApiServerTest, ConnectionsOverTheCapGet503) {
  ApiServerOptions o;
  o.max_connections = 2;
  auto server = ApiServer::start(path_, router_, o);
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  auto served = [&](int fd) {
    send_all(fd, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    std::string pending;
    auto r = read_reply(fd, pending);
    return r && r->status == 200;
  };
  UniqueFd a = connect_to(path_), b = connect_to(path_);
  ASSERT_TRUE(served(a.get()));
  ASSERT_TRUE(served(b.get()));
  UniqueFd c = connect_to(path_);
  std::string pending;
  auto r = read_reply(c.get(), pending);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_NE(r->body.find("Too many open connections: strata-vmm serves at most 2 API connections at a time."),
            std::string::npos)
      << r->body;
  EXPECT_TRUE(peer_closed(c.get()));
  EXPECT_EQ((*server)->stats().refused_connections, 1u);
  // One leaves: there is room again.
  a.reset();
  bool ok = false;
  for (int i = 0; i < 50 && !ok; ++i) {
    UniqueFd d = connect_to(path_);
    ok = served(d.get());
    if (!ok) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(ok);
  EXPECT_TRUE(served(b.get()));
}

// Out of descriptors, accept() fails with EMFILE while the connection stays queued and the
// listener readable: retried at once, that was a busy loop (and a log line per try).
TEST_F(ApiServerTest, OutOfDescriptorsTheServerPausesInsteadOfSpinning) {
  ApiServerOptions o;
  o.accept_retry = 100ms;
  auto server = ApiServer::start(path_, router_, o);
  ASSERT_TRUE(server.ok()) << server.error().to_string();
  // The client socket exists before the limit drops: connect() needs no new descriptor here,
  // but the server's accept() does.
  UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(client);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  int highest = ::dup(0);  // the lowest free descriptor: the limit leaves none free
  ASSERT_GE(highest, 0);
  ::close(highest);
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(highest);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path_.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  int rc = ::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  double cpu0 = cpu_seconds();
  std::this_thread::sleep_for(1s);
  double cpu = cpu_seconds() - cpu0;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  ASSERT_EQ(rc, 0);
  auto stats = (*server)->stats();
  EXPECT_LT(cpu, 0.2) << "the server spun on accept()";
  EXPECT_GE(stats.accept_failures, 3u);
  EXPECT_LE(stats.accept_failures, 15u) << "about one try per 100 ms";
  // Descriptors back: the waiting connection is accepted and served.
  timeval tv{5, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  send_all(client.get(), "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
  std::string pending;
  auto r = read_reply(client.get(), pending);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace strata::vmm::api
