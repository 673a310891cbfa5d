// HttpConnection against a scripted server on loopback: keep-alive, framing, and the
// step each failure is named by; then HttpConnectionPool. (The parser's golden and
// truncation tests are in s3_internal_test.cc, its fuzz target http_response_fuzz.cc.)
#include "riffledb/io/http_connection.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/io/http_pool.h"
#include "riffledb/testing/fork.h"
#include "riffledb/testing/loopback.h"
#include "riffledb/testing/testing.h"

namespace riffledb::io {
namespace {

// Accepts one connection; for each scripted response reads one request (head and a
// Content-Length body), records it and sends the response; then, if `close_after`,
// closes, else waits for the client to close.
class ScriptedServer {
 public:
  explicit ScriptedServer(std::vector<std::string> responses, bool close_after = true)
      : responses_(std::move(responses)), close_after_(close_after) {
    listen_fd_ = testing::ListenOnLoopback(&port_);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedServer() {
    thread_.join();
    ::close(listen_fd_);
  }
  Endpoint endpoint() const { return {"http", "127.0.0.1", port_}; }
  // Valid after the connection is done.
  const std::vector<std::string>& requests() const { return requests_; }

 private:
  void Serve() {
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    std::string data;
    char buf[4096];
    for (const std::string& response : responses_) {
      while (true) {
        const size_t head_end = data.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          size_t length = 0;
          const size_t at = data.find("Content-Length: ");
          if (at != std::string::npos && at < head_end)
            length = std::stoul(data.substr(at + 16));
          if (data.size() >= head_end + 4 + length) {
            requests_.push_back(data.substr(0, head_end + 4 + length));
            data.erase(0, head_end + 4 + length);
            break;
          }
        }
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
          ::close(fd);
          return;
        }
        data.append(buf, static_cast<size_t>(n));
      }
      size_t sent = 0;
      while (sent < response.size()) {
        const ssize_t n =
            ::send(fd, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
      }
    }
    if (!close_after_) {
      while (::recv(fd, buf, sizeof(buf), 0) > 0) {
      }
    }
    ::close(fd);
  }

  std::vector<std::string> responses_;
  bool close_after_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::vector<std::string> requests_;
};

std::string Sized(std::string_view status_line, std::string_view body,
                  std::string_view extra = "") {
  return std::string(status_line) + "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + std::string(extra) + "\r\n" + std::string(body);
}

arrow::Result<HttpResponse> Exchange(HttpConnection& conn, std::string_view body) {
  const std::string head =
      "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n";
  ARROW_RETURN_NOT_OK(conn.Send(head, body));
  return conn.Receive("POST");
}

// Waits (up to 10 s) for the peer's close to be seen.
bool SeesClose(const HttpConnection& conn) {
  for (int i = 0; i < 1000; ++i) {
    if (!conn.StillOpen()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(HttpConnection, KeepAliveCarriesRequestsOfEveryFraming) {
  const std::string big(300000, 'z');
  ScriptedServer server({Sized("HTTP/1.1 200 OK", "hello"),
                         "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "2\r\nab\r\n3;x=y\r\ncde\r\n0\r\nTrailer: t\r\n\r\n",
                         Sized("HTTP/1.1 200 OK", big, "Connection: keep-alive\r\n"),
                         Sized("HTTP/1.0 200 OK", "old", "Connection: Keep-Alive\r\n")});
  ASSERT_OK_AND_ASSIGN(auto conn, HttpConnection::Open(server.endpoint(), HttpOptions{}));
  ASSERT_OK_AND_ASSIGN(auto a, Exchange(*conn, "one"));
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(a.body, "hello");
  EXPECT_TRUE(conn->reusable());
  EXPECT_TRUE(conn->StillOpen());
  ASSERT_OK_AND_ASSIGN(auto b, Exchange(*conn, ""));
  EXPECT_EQ(b.status, 201);
  EXPECT_EQ(b.reason, "Created");
  EXPECT_EQ(b.body, "abcde");
  EXPECT_TRUE(conn->reusable());
  ASSERT_OK_AND_ASSIGN(auto c, Exchange(*conn, std::string(100000, 'q')));
  EXPECT_EQ(c.body, big);
  EXPECT_TRUE(conn->reusable());
  ASSERT_OK_AND_ASSIGN(auto d, Exchange(*conn, "x"));
  EXPECT_EQ(d.body, "old");
  EXPECT_TRUE(conn->reusable());  // HTTP/1.0 that asked for keep-alive
  EXPECT_TRUE(SeesClose(*conn));  // the server closed after its script
  conn.reset();
  ASSERT_EQ(server.requests().size(), 4u);
  EXPECT_EQ(server.requests()[0],
            "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\none");
  EXPECT_EQ(server.requests()[2].size(),
            server.requests()[2].find("\r\n\r\n") + 4 + 100000);
}

TEST(HttpConnection, WhatEndsWithTheConnectionIsNotReusable) {
  for (const std::string& response :
       {Sized("HTTP/1.1 200 OK", "bye", "Connection: close\r\n"),
        Sized("HTTP/1.1 200 OK", "bye", "Connection: keep-alive, Close\r\n"),
        Sized("HTTP/1.0 200 OK", "bye"),
        std::string("HTTP/1.1 200 OK\r\n\r\nbye")}) {  // until the close
    ScriptedServer server({response});
    ASSERT_OK_AND_ASSIGN(auto conn,
                         HttpConnection::Open(server.endpoint(), HttpOptions{}));
    ASSERT_OK_AND_ASSIGN(auto got, Exchange(*conn, ""));
    EXPECT_EQ(got.body, "bye") << response;
    EXPECT_FALSE(conn->reusable()) << response;
  }
}

// A connection to a loopback address gets a receive buffer of 1 MiB (what the kernel
// allows of it: it doubles the value, up to net.core.rmem_max) instead of starting at
// 128 KiB, so that a 134 kB answer never stalls its sender.
TEST(HttpConnection, ALoopbackPeerGetsAMegabyteReceiveBuffer) {
  int64_t rmem_max = 0;
  {
    std::ifstream in("/proc/sys/net/core/rmem_max");
    ASSERT_TRUE(in >> rmem_max);
  }
  ScriptedServer server({Sized("HTTP/1.1 200 OK", "hi")});
  ASSERT_OK_AND_ASSIGN(auto conn, HttpConnection::Open(server.endpoint(), HttpOptions{}));
  int bytes = 0;
  socklen_t len = sizeof(bytes);
  ASSERT_EQ(::getsockopt(conn->fd(), SOL_SOCKET, SO_RCVBUF, &bytes, &len), 0);
  EXPECT_EQ(bytes, 2 * std::min<int64_t>(int64_t{1} << 20, rmem_max));
  ASSERT_OK_AND_ASSIGN(auto got, Exchange(*conn, ""));
  EXPECT_EQ(got.body, "hi");
}

TEST(HttpConnection, FailuresNameTheirStep) {
  {  // nothing listens
    int port;
    {
      ScriptedServer server({});
      port = server.endpoint().port;
      auto conn = HttpConnection::Open(server.endpoint(), HttpOptions{});
      ASSERT_OK(conn.status());  // accepted, then closed with nothing read
    }
    auto refused = HttpConnection::Open({"http", "127.0.0.1", port}, HttpOptions{});
    ASSERT_RAISES_WITH_MESSAGE(IOError, "Cannot connect to http://127.0.0.1:", refused);
    ASSERT_TRUE(GetHttpFailure(refused.status()).has_value());
    EXPECT_EQ(GetHttpFailure(refused.status())->step, HttpFailure::kConnect);
    EXPECT_EQ(GetHttpFailure(refused.status())->reason, "Connection refused");
  }
  {  // the body cut short
    ScriptedServer server({"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"});
    ASSERT_OK_AND_ASSIGN(auto conn,
                         HttpConnection::Open(server.endpoint(), HttpOptions{}));
    auto cut = Exchange(*conn, "");
    ASSERT_RAISES_WITH_MESSAGE(
        IOError, "the connection closed before the end of the body (3 of 10 bytes)", cut);
    EXPECT_EQ(GetHttpFailure(cut.status())->step, HttpFailure::kReceive);
    EXPECT_FALSE(conn->reusable());
  }
  // No answer within the receive timeout (the server waits for our close), blocking at
  // once or after a spin of non-blocking reads that find nothing.
  for (int64_t busy_poll_us : {0, 2000}) {
    SCOPED_TRACE(busy_poll_us);
    ScriptedServer server({}, /*close_after=*/false);
    HttpOptions options;
    options.io_timeout_seconds = 0.2;
    options.busy_poll_us = busy_poll_us;
    ASSERT_OK_AND_ASSIGN(auto conn, HttpConnection::Open(server.endpoint(), options));
    auto late = Exchange(*conn, "");
    ASSERT_RAISES_WITH_MESSAGE(IOError, "timed out", late);
    EXPECT_EQ(GetHttpFailure(late.status())->step, HttpFailure::kReceive);
    if (busy_poll_us > 0 && BusyPoll::MaxSpinners() > 0) {
      EXPECT_EQ(conn->busy_poll_stats().spins,
                1);  // it spun, found nothing, then blocked
      EXPECT_EQ(conn->busy_poll_stats().hits, 0);
    }
  }
  // The end of the connection found by a spin's read is the end, not a timeout.
  for (int64_t busy_poll_us : {0, 1'000'000}) {
    SCOPED_TRACE(busy_poll_us);
    ScriptedServer server({""});  // closes without an answer
    HttpOptions options;
    options.busy_poll_us = busy_poll_us;
    ASSERT_OK_AND_ASSIGN(auto conn, HttpConnection::Open(server.endpoint(), options));
    const auto start = std::chrono::steady_clock::now();
    auto closed = Exchange(*conn, "");
    ASSERT_RAISES_WITH_MESSAGE(IOError, "closed before", closed);
    EXPECT_EQ(GetHttpFailure(closed.status())->step, HttpFailure::kReceive);
    // Seen when it came: not after the spin's second (an end taken for "nothing yet").
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
    EXPECT_EQ(conn->busy_poll_stats().hits, conn->busy_poll_stats().spins);
  }
  {  // not HTTP
    ScriptedServer server({"SSH-2.0-OpenSSH\r\n\r\n"});
    ASSERT_OK_AND_ASSIGN(auto conn,
                         HttpConnection::Open(server.endpoint(), HttpOptions{}));
    auto junk = Exchange(*conn, "");
    ASSERT_RAISES_WITH_MESSAGE(IOError, "not an HTTP/1.x status line: 'SSH-2.0-OpenSSH'",
                               junk);
  }
}

TEST(HttpConnection, AMissingCaFileIsACertificateFailure) {
  auto tls = TlsContext::Make(/*verify=*/true, "/nonexistent/ca.pem");
  ASSERT_RAISES_WITH_MESSAGE(IOError, "'/nonexistent/ca.pem'", tls);
  EXPECT_EQ(GetHttpFailure(tls.status())->step, HttpFailure::kTlsCertificates);
  ASSERT_OK(TlsContext::Make(/*verify=*/false, "").status());
}

// The pool of keep-alive connections (http_pool.h), on the scripted server.

HttpConnectionPool::Opener OpenerOf(const Endpoint& endpoint) {
  return [endpoint] { return HttpConnection::Open(endpoint, HttpOptions{}); };
}

TEST(HttpConnectionPool, HandsAConnectionOutAgainWhileItStaysOpen) {
  ScriptedServer server(
      {Sized("HTTP/1.1 200 OK", "one"), Sized("HTTP/1.1 200 OK", "two")},
      /*close_after=*/false);
  HttpConnectionPool pool;
  int first_fd = -1;
  {
    ASSERT_OK_AND_ASSIGN(auto lease, pool.Acquire(OpenerOf(server.endpoint())));
    EXPECT_FALSE(lease.reused());
    first_fd = lease.connection().fd();
    ASSERT_OK_AND_ASSIGN(auto response, Exchange(lease.connection(), "a"));
    EXPECT_EQ(response.body, "one");
  }
  {
    ASSERT_OK_AND_ASSIGN(auto lease, pool.Acquire(OpenerOf(server.endpoint())));
    EXPECT_TRUE(lease.reused());
    EXPECT_EQ(lease.connection().fd(), first_fd);
    ASSERT_OK_AND_ASSIGN(auto response, Exchange(lease.connection(), "b"));
    EXPECT_EQ(response.body, "two");
  }
  const HttpPoolStats stats = pool.stats();
  EXPECT_EQ(stats.requests, 2);
  EXPECT_EQ(stats.connections, 1);
  EXPECT_EQ(stats.reused, 1);
}

TEST(HttpConnectionPool, OpensAnewWhenTheConnectionCannotCarryAnotherRequest) {
  HttpConnectionPool pool;
  {  // the server said Connection: close
    ScriptedServer server({Sized("HTTP/1.1 200 OK", "x", "Connection: close\r\n")});
    ASSERT_OK_AND_ASSIGN(auto lease, pool.Acquire(OpenerOf(server.endpoint())));
    ASSERT_OK(Exchange(lease.connection(), "").status());
  }
  {  // the server closed it while it was idle in the pool
    ScriptedServer server({Sized("HTTP/1.1 200 OK", "y")});
    {
      ASSERT_OK_AND_ASSIGN(auto lease, pool.Acquire(OpenerOf(server.endpoint())));
      EXPECT_FALSE(lease.reused());
      ASSERT_OK(Exchange(lease.connection(), "").status());
    }
    ScriptedServer next({Sized("HTTP/1.1 200 OK", "z")});
    ASSERT_OK_AND_ASSIGN(auto lease, [&] {
      // Once the close is seen (the peek of Acquire), the pooled one is dropped.
      for (int i = 0; i < 1000; ++i) {
        auto got = pool.Acquire(OpenerOf(next.endpoint()));
        if (!got.ok() || !got->reused()) return got;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return arrow::Result<HttpConnectionPool::Lease>(
          arrow::Status::IOError("the closed connection was handed out for 10 s"));
    }());
    EXPECT_FALSE(lease.reused());
    ASSERT_OK_AND_ASSIGN(auto response, Exchange(lease.connection(), ""));
    EXPECT_EQ(response.body, "z");
  }
  EXPECT_EQ(pool.stats().reused, 0);
}

TEST(HttpConnectionPool, KeepsAtMostMaxIdleConnections) {
  ScriptedServer a({Sized("HTTP/1.1 200 OK", "a")}, /*close_after=*/false);
  ScriptedServer b({Sized("HTTP/1.1 200 OK", "b")}, /*close_after=*/false);
  HttpConnectionPool pool(HttpConnectionPool::Options{.max_idle = 1});
  {
    ASSERT_OK_AND_ASSIGN(auto first, pool.Acquire(OpenerOf(a.endpoint())));
    ASSERT_OK_AND_ASSIGN(auto second, pool.Acquire(OpenerOf(b.endpoint())));
    ASSERT_OK(Exchange(first.connection(), "").status());
    ASSERT_OK(Exchange(second.connection(), "").status());
  }  // second given back first, then first: no room, closed
  auto refused = [] {
    return arrow::Result<std::unique_ptr<HttpConnection>>(
        arrow::Status::IOError("no new connection"));
  };
  ASSERT_OK_AND_ASSIGN(auto kept, pool.Acquire(refused));
  EXPECT_TRUE(kept.reused());
  // One connection was kept: the next one is opened (here, refused).
  ASSERT_RAISES_WITH_MESSAGE(IOError, "no new connection", pool.Acquire(refused));
  EXPECT_EQ(pool.stats().reused, 1);
}

TEST(HttpConnectionPool, AFreshAcquireOpensANewConnection) {
  ScriptedServer server({Sized("HTTP/1.1 200 OK", "a")}, /*close_after=*/false);
  HttpConnectionPool pool;
  {
    ASSERT_OK_AND_ASSIGN(auto lease, pool.Acquire(OpenerOf(server.endpoint())));
    ASSERT_OK(Exchange(lease.connection(), "").status());
  }
  auto refused = [] {
    return arrow::Result<std::unique_ptr<HttpConnection>>(
        arrow::Status::IOError("no new connection"));
  };
  ASSERT_RAISES_WITH_MESSAGE(IOError, "no new connection",
                             pool.Acquire(refused, /*fresh=*/true));
  ASSERT_OK_AND_ASSIGN(auto pooled, pool.Acquire(refused));  // still there
  EXPECT_TRUE(pooled.reused());
}

TEST(HttpConnectionPool, AForkedChildLeavesTheParentsConnectionAlone) {
  ScriptedServer server(
      {Sized("HTTP/1.1 200 OK", "before"), Sized("HTTP/1.1 200 OK", "after")},
      /*close_after=*/false);
  HttpConnectionPool pool;
  {
    ASSERT_OK_AND_ASSIGN(auto lease, pool.Acquire(OpenerOf(server.endpoint())));
    ASSERT_OK(Exchange(lease.connection(), "").status());
  }
  // The child closes its copy of the pooled socket (no shutdown) and opens its own: the
  // server, busy with the parent's connection, never answers it, so the child only
  // checks what it abandoned.
  const int child = testing::RunInForkedChild([&] {
    const HttpPoolStats stats = pool.stats();
    return stats.abandoned_conns == 1 && stats.abandoned_fds == 1 &&
                   stats.requests == 0 && stats.connections == 0
               ? 0
               : 1;
  });
  EXPECT_EQ(child, 0);
  ASSERT_OK_AND_ASSIGN(auto lease, pool.Acquire(OpenerOf(server.endpoint())));
  EXPECT_TRUE(lease.reused());
  ASSERT_OK_AND_ASSIGN(auto response, Exchange(lease.connection(), ""));
  EXPECT_EQ(response.body, "after");
}

}  // namespace
}  // namespace riffledb::io
