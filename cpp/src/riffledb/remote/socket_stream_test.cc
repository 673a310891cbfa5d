// SocketStream's writes: small ones are held back until a large one or Flush(), and the
// bytes arrive whole and in order.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "riffledb/remote/socket_stream_internal.h"

namespace riffledb::remote::internal {
namespace {

// What the peer can read without waiting.
std::string Available(int fd) {
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

TEST(SocketStream, SmallWritesWaitForTheNextLargeOneOrAFlush) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  {
    SocketStream stream(fds[0], 1000);
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n";
    const std::string body(20000, 'b');
    ASSERT_EQ(stream.write(head.data(), head.size()), static_cast<ssize_t>(head.size()));
    EXPECT_EQ(Available(fds[1]), "");  // held
    ASSERT_EQ(stream.write(body.data(), body.size()), static_cast<ssize_t>(body.size()));
    EXPECT_EQ(Available(fds[1]), head + body);  // one send, in order
    ASSERT_EQ(stream.write("0\r\n", 3), 3);
    ASSERT_EQ(stream.write("\r\n", 2), 2);
    EXPECT_EQ(Available(fds[1]), "");
    ASSERT_TRUE(stream.Flush());
    EXPECT_EQ(Available(fds[1]), "0\r\n\r\n");
    ASSERT_TRUE(stream.Flush());  // nothing held: nothing sent
    EXPECT_EQ(Available(fds[1]), "");
    // Small writes are held up to 16 KiB; the one that would pass it leaves with them.
    const std::string many(4000, 'm');
    for (int i = 0; i < 4; ++i) {
      ASSERT_EQ(stream.write(many.data(), many.size()), 4000);
    }
    EXPECT_EQ(Available(fds[1]).size(), 0u);
    ASSERT_EQ(stream.write(many.data(), many.size()), 4000);
    EXPECT_EQ(Available(fds[1]).size(), 20000u);
  }
  ::close(fds[1]);
  // A failed send is reported: the peer is gone.
  SocketStream gone(fds[0], 1000);
  ASSERT_EQ(gone.write("x", 1), 1);
  EXPECT_FALSE(gone.Flush());
  ::close(fds[0]);
}

TEST(SocketStream, WaitForRequestBusyPollsFirst) {
  if (BusyPoll::MaxSpinners() == 0) GTEST_SKIP() << "one usable CPU: no busy-polling";
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::atomic<bool> stopping{false};
  {
    // A request that comes during the spin is caught by it: the client sends once the
    // server's thread is spinning.
    SocketStream stream(fds[0], 1000, nullptr, /*busy_poll_us=*/1'000'000);
    std::thread client([&] {
      while (BusyPoll::Spinners() == 0) std::this_thread::yield();
      ASSERT_EQ(::send(fds[1], "GET", 3, 0), 3);
    });
    EXPECT_TRUE(stream.WaitForRequest(10'000, stopping));
    client.join();
    EXPECT_EQ(stream.busy_poll_stats().spins, 1);
    EXPECT_EQ(stream.busy_poll_stats().hits, 1);
    char got[3];
    ASSERT_EQ(stream.read(got, 3), 3);
  }
  {
    // Nothing comes: a lost spin, then the wait's own timeout.
    SocketStream stream(fds[0], 1000, nullptr, /*busy_poll_us=*/1000);
    EXPECT_FALSE(stream.WaitForRequest(20, stopping));
    EXPECT_EQ(stream.busy_poll_stats().spins, 1);
    EXPECT_EQ(stream.busy_poll_stats().hits, 0);
    // What is there at the first check (here the end of the stream) is no spin.
    ::shutdown(fds[1], SHUT_WR);
    EXPECT_TRUE(stream.WaitForRequest(10'000, stopping));
    EXPECT_EQ(stream.busy_poll_stats().spins, 1);
    char got;
    EXPECT_EQ(stream.read(&got, 1), 0);
  }
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(SocketStream, NoBusyPollByDefault) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::atomic<bool> stopping{false};
  SocketStream stream(fds[0], 1000);
  ASSERT_EQ(::send(fds[1], "G", 1, 0), 1);
  EXPECT_TRUE(stream.WaitForRequest(1000, stopping));
  EXPECT_EQ(stream.busy_poll_stats().spins, 0);
  ::close(fds[0]);
  ::close(fds[1]);
}

// SendAll sends what was held and every part, in order, however many parts there are
// (more than one sendmsg takes: IOV_MAX) and however little the socket takes at a time
// (a small send buffer, a slow reader: partial sends end inside parts).
TEST(SocketStream, SendAllSendsEveryPartInOrder) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  const int small = 4096;
  ASSERT_EQ(::setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
  std::vector<std::string> owned;
  std::string expected = "held";
  for (int i = 0; i < 3000; ++i) {  // 3000 parts of 1-97 bytes, and some empty
    owned.push_back(
        std::string(static_cast<size_t>(i % 97), static_cast<char>('a' + i % 26)));
    expected += owned.back();
  }
  owned.push_back(std::string(300000, 'z'));  // larger than the buffer
  expected += owned.back();
  std::vector<std::string_view> parts(owned.begin(), owned.end());
  std::string received;
  std::thread reader([&] {
    char buf[1000];
    while (true) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
      const ssize_t n = ::recv(fds[1], buf, sizeof(buf), 0);
      if (n <= 0) return;
      received.append(buf, static_cast<size_t>(n));
    }
  });
  {
    SocketStream stream(fds[0], 10000);
    ASSERT_EQ(stream.write("held", 4), 4);
    EXPECT_TRUE(stream.SendAll(parts));
    ::shutdown(fds[0], SHUT_WR);
  }
  reader.join();
  EXPECT_EQ(received.size(), expected.size());
  EXPECT_TRUE(received == expected);
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace
}  // namespace riffledb::remote::internal
