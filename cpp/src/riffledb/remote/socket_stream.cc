#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "riffledb/remote/socket_stream_internal.h"

namespace riffledb::remote::internal {

namespace {

void AddressOf(const sockaddr_storage& addr, std::string& ip, int& port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(addr);
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof(text));
    port = ntohs(in.sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(addr);
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof(text));
    port = ntohs(in6.sin6_port);
  }
  ip = text;
}

}  // namespace

int SocketStream::Poll(short events, int timeout_ms) const {
  pollfd pfd{fd_, events, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  return ready;
}

bool SocketStream::is_readable() const {
  return begin_ < end_ || Poll(POLLIN, io_timeout_ms_) > 0;
}

bool SocketStream::is_writable() const { return Poll(POLLOUT, io_timeout_ms_) > 0; }

ssize_t SocketStream::read(char* ptr, size_t size) {
  if (begin_ == end_) {
    if (Poll(POLLIN, io_timeout_ms_) <= 0) return -1;
    // Small reads (httplib reads request lines a byte at a time) go through the buffer;
    // large ones straight into the caller's memory.
    if (size >= buffer_.size()) {
      ssize_t n;
      do {
        n = ::recv(fd_, ptr, size, 0);
      } while (n < 0 && errno == EINTR);
      return n;
    }
    ssize_t n;
    do {
      n = ::recv(fd_, buffer_.data(), buffer_.size(), 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) return n;
    begin_ = 0;
    end_ = static_cast<size_t>(n);
  }
  const size_t n = std::min(size, end_ - begin_);
  std::memcpy(ptr, buffer_.data() + begin_, n);
  begin_ += n;
  return static_cast<ssize_t>(n);
}

ssize_t SocketStream::write(const char* ptr, size_t size) {
  if (!is_writable()) return -1;
  ssize_t n;
  do {
    n = ::send(fd_, ptr, size, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return n;
}

void SocketStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    AddressOf(addr, ip, port);
  }
}

void SocketStream::get_local_ip_and_port(std::string& ip, int& port) const {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    AddressOf(addr, ip, port);
  }
}

bool SocketStream::WaitForRequest(int idle_ms, const std::atomic<bool>& stopping) {
  if (begin_ < end_) return true;
  // Short polls, so that a stop closes idle connections at once instead of after the
  // keep-alive timeout.
  constexpr int kStepMs = 50;
  for (int waited = 0; waited < idle_ms; waited += kStepMs) {
    if (stopping.load(std::memory_order_acquire)) return Poll(POLLIN, 0) > 0;
    int ready = Poll(POLLIN, std::min(kStepMs, idle_ms - waited));
    if (ready != 0) return ready > 0;
  }
  return false;
}

void SocketStream::LingeringClose() {
  ::shutdown(fd_, SHUT_WR);
  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  constexpr size_t kMaxDrained = size_t{64} << 20;
  size_t drained = 0;
  while (drained < kMaxDrained && Clock::now() < deadline) {
    if (Poll(POLLIN, 200) <= 0) break;
    ssize_t n = ::recv(fd_, buffer_.data(), buffer_.size(), 0);
    if (n <= 0 && !(n < 0 && errno == EINTR)) break;
    if (n > 0) drained += static_cast<size_t>(n);
  }
  ::close(fd_);
}

}  // namespace riffledb::remote::internal
