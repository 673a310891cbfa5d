#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <vector>

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

int PollFd(int fd, short events, int timeout_ms) {
  pollfd pfd{fd, events, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, timeout_ms);
  } while (ready < 0 && errno == EINTR);
  return ready;
}

using Clock = std::chrono::steady_clock;

// How long a wait may last: `io_timeout_ms`, cut to `deadline` (0 once it has passed).
int WaitMs(int io_timeout_ms, const std::optional<Clock::time_point>& deadline) {
  if (!deadline) return io_timeout_ms;
  const auto left =
      std::chrono::ceil<std::chrono::milliseconds>(*deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, io_timeout_ms));
}

// The socket of a TLS session: a BIO of our own instead of OpenSSL's socket BIO, so that
// every wait is bounded (by the I/O timeout, and by the deadline of the handshake or of
// a request's head: a record trickling in a byte at a time is cut off there) and writes
// use MSG_NOSIGNAL.
struct TlsSocket {
  int fd;
  int io_timeout_ms;
  std::optional<Clock::time_point> deadline;
};

int TlsWrite(BIO* bio, const char* data, int size) {
  const auto* socket = static_cast<const TlsSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const int wait = WaitMs(socket->io_timeout_ms, socket->deadline);
  if (wait == 0 || PollFd(socket->fd, POLLOUT, wait) <= 0) return -1;
  ssize_t n;
  do {
    n = ::send(socket->fd, data, static_cast<size_t>(size), MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  return static_cast<int>(n);
}

int TlsRead(BIO* bio, char* data, int size) {
  const auto* socket = static_cast<const TlsSocket*>(BIO_get_data(bio));
  BIO_clear_retry_flags(bio);
  const int wait = WaitMs(socket->io_timeout_ms, socket->deadline);
  if (wait == 0 || PollFd(socket->fd, POLLIN, wait) <= 0) return -1;
  ssize_t n;
  do {
    n = ::recv(socket->fd, data, static_cast<size_t>(size), 0);
  } while (n < 0 && errno == EINTR);
  return static_cast<int>(n);
}

long TlsCtrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

int TlsDestroy(BIO* bio) {
  delete static_cast<TlsSocket*>(BIO_get_data(bio));
  BIO_set_data(bio, nullptr);
  return 1;
}

const BIO_METHOD* TlsSocketMethod() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "riffledb socket");
    BIO_meth_set_write(m, TlsWrite);
    BIO_meth_set_read(m, TlsRead);
    BIO_meth_set_ctrl(m, TlsCtrl);
    BIO_meth_set_destroy(m, TlsDestroy);
    return m;
  }();
  return method;
}

// The deadline of the waits of `ssl`'s socket (a session of AcceptTls).
void SetTlsDeadline(SSL* ssl, std::optional<Clock::time_point> deadline) {
  static_cast<TlsSocket*>(BIO_get_data(SSL_get_rbio(ssl)))->deadline = deadline;
}

}  // namespace

std::unique_ptr<SSL, SslDeleter> AcceptTls(SSL_CTX* ctx, int fd, int io_timeout_ms,
                                           int handshake_timeout_ms) {
  std::unique_ptr<SSL, SslDeleter> ssl(SSL_new(ctx));
  if (ssl == nullptr) return nullptr;
  BIO* bio = BIO_new(TlsSocketMethod());
  if (bio == nullptr) return nullptr;
  BIO_set_data(
      bio, new TlsSocket{fd, io_timeout_ms,
                         Clock::now() + std::chrono::milliseconds(handshake_timeout_ms)});
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl.get(), bio, bio);  // the session owns the BIO
  if (SSL_accept(ssl.get()) != 1) {
    ERR_clear_error();  // the error queue is per thread: leave it clean
    return nullptr;
  }
  SetTlsDeadline(ssl.get(), std::nullopt);
  return ssl;
}

void SocketStream::BeginHead(Clock::time_point deadline) {
  read_deadline_ = deadline;
  if (ssl_ != nullptr) SetTlsDeadline(ssl_, deadline);
  head_.clear();
  in_head_ = true;
}

void SocketStream::EndHead() {
  read_deadline_.reset();
  if (ssl_ != nullptr) SetTlsDeadline(ssl_, std::nullopt);
  in_head_ = false;
  head_.clear();
}

SocketStream::SocketStream(int fd, int io_timeout_ms, SSL* ssl, int busy_poll_us)
    : fd_(fd),
      io_timeout_ms_(io_timeout_ms),
      ssl_(ssl),
      busy_poll_(std::chrono::microseconds(busy_poll_us)) {
  // Every blocking send and receive is bounded without a poll() before it.
  struct timeval tv {};
  tv.tv_sec = io_timeout_ms / 1000;
  tv.tv_usec = (io_timeout_ms % 1000) * 1000;
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

int SocketStream::Poll(short events, int timeout_ms) const {
  return PollFd(fd_, events, timeout_ms);
}

int SocketStream::ReadWaitMs() const { return WaitMs(io_timeout_ms_, read_deadline_); }

bool SocketStream::WaitToRead() const {
  if (!read_deadline_) return true;
  const int wait = ReadWaitMs();
  return wait > 0 && Poll(POLLIN, wait) > 0;  // 0: the deadline has passed
}

bool SocketStream::is_readable() const {
  return begin_ < end_ || Pending() || Poll(POLLIN, ReadWaitMs()) > 0;
}

bool SocketStream::is_writable() const { return Poll(POLLOUT, io_timeout_ms_) > 0; }

ssize_t SocketStream::read(char* ptr, size_t size) {
  const ssize_t n = ReadSome(ptr, size);
  if (in_head_ && n > 0 && head_.size() < kMaxHeadBytes) {
    head_.append(ptr, std::min(static_cast<size_t>(n), kMaxHeadBytes - head_.size()));
  }
  return n;
}

ssize_t SocketStream::ReadSome(char* ptr, size_t size) {
  if (ssl_ != nullptr) {
    // OpenSSL buffers what it decrypted; our buffer is not needed.
    if (read_deadline_ && ReadWaitMs() == 0) return -1;
    if (!Pending() && Poll(POLLIN, ReadWaitMs()) <= 0) return -1;
    const int n = SSL_read(ssl_, ptr, static_cast<int>(std::min<size_t>(size, 1 << 30)));
    if (n > 0) return n;
    const int error = SSL_get_error(ssl_, n);
    ERR_clear_error();
    return error == SSL_ERROR_ZERO_RETURN ? 0 : -1;
  }
  if (begin_ == end_) {
    // The receive timeout bounds the wait (a timeout is -1, EAGAIN).
    // Small reads (httplib reads request lines a byte at a time) go through the buffer;
    // large ones straight into the caller's memory.
    if (!WaitToRead()) return -1;
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
  constexpr size_t kHeld = 4096;  // writes smaller than this may be held back
  // Not an interim 100 Continue: its client waits for it before it sends the body
  // (held back, it left with the reply, after the body's 30 s I/O timeout).
  constexpr std::string_view kContinue = "HTTP/1.1 100 ";
  const bool interim =
      std::string_view(ptr, size).substr(0, kContinue.size()) == kContinue;
  if (!interim && size < kHeld && pending_.size() + size <= 4 * kHeld) {
    pending_.append(ptr, size);
    return static_cast<ssize_t>(size);
  }
  return SendWithPending(ptr, size);
}

ssize_t SocketStream::SendWithPending(const char* data, size_t size) {
  if (ssl_ != nullptr) {
    // Blocking until all is written (or the BIO's bounded waits fail).
    auto send_tls = [&](const char* bytes, size_t n) -> ssize_t {
      const int sent =
          SSL_write(ssl_, bytes, static_cast<int>(std::min<size_t>(n, 1 << 30)));
      if (sent > 0) return sent;
      ERR_clear_error();
      return -1;
    };
    while (!pending_.empty()) {
      const ssize_t n = send_tls(pending_.data(), pending_.size());
      if (n < 0) return -1;
      pending_.erase(0, static_cast<size_t>(n));
    }
    return size == 0 ? 0 : send_tls(data, size);
  }
  // All of `data`, after what is held, in one sendmsg where the socket takes it.
  const std::string_view part(data, size);
  return SendAll(std::span(&part, 1)) ? static_cast<ssize_t>(size) : -1;
}

bool SocketStream::SendAll(std::span<const std::string_view> parts) {
  if (ssl_ != nullptr) {
    for (std::string_view part : parts) {
      while (!part.empty()) {
        const ssize_t n = write(part.data(), part.size());
        if (n < 0) return false;
        part.remove_prefix(static_cast<size_t>(n));
      }
    }
    return Flush();
  }
  std::vector<struct iovec> iov;
  iov.reserve(parts.size() + 1);
  if (!pending_.empty()) iov.push_back({pending_.data(), pending_.size()});
  for (std::string_view part : parts) {
    if (!part.empty()) iov.push_back({const_cast<char*>(part.data()), part.size()});
  }
  size_t first = 0;  // iov[first] is the first part not sent whole
  bool ok = true;
  while (ok && first < iov.size()) {
    struct msghdr msg {};
    msg.msg_iov = iov.data() + first;
    msg.msg_iovlen = std::min<size_t>(iov.size() - first, IOV_MAX);
    // The send timeout bounds each call (set in the constructor).
    const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n < 0) {
      ok = errno == EINTR;
      continue;
    }
    for (auto sent = static_cast<size_t>(n); first < iov.size();) {
      struct iovec& part = iov[first];
      if (sent < part.iov_len) {
        part.iov_base = static_cast<char*>(part.iov_base) + sent;
        part.iov_len -= sent;
        break;
      }
      sent -= part.iov_len;
      ++first;
    }
  }
  pending_.clear();
  return ok;
}

bool SocketStream::Flush() {
  if (pending_.empty()) return true;
  return SendWithPending(nullptr, 0) >= 0;
}

void SocketStream::get_remote_ip_and_port(std::string& ip, int& port) const {
  if (remote_port_ < 0) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    remote_port_ = 0;
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      AddressOf(addr, remote_ip_, remote_port_);
    }
  }
  ip = remote_ip_;
  port = remote_port_;
}

void SocketStream::get_local_ip_and_port(std::string& ip, int& port) const {
  if (local_port_ < 0) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    local_port_ = 0;
    if (::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      AddressOf(addr, local_ip_, local_port_);
    }
  }
  ip = local_ip_;
  port = local_port_;
}

bool SocketStream::ReceiveMore() {
  if (ssl_ != nullptr) return false;
  if (begin_ > 0) {
    std::memmove(buffer_.data(), buffer_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buffer_.size() || !WaitToRead()) return false;
  ssize_t n;
  do {
    n = ::recv(fd_, buffer_.data() + end_, buffer_.size() - end_, 0);
  } while (n < 0 && errno == EINTR);
  if (n <= 0) return false;
  end_ += static_cast<size_t>(n);
  return true;
}

bool SocketStream::WaitForRequest(int idle_ms, const std::atomic<bool>& stopping) {
  if (!Flush()) return false;
  if (begin_ < end_ || Pending()) return true;
  // Without TLS the check that spins is the read itself, without blocking: the request's
  // bytes in one system call instead of a poll() and a recv() (a few µs each on a
  // virtual machine). The end of the stream or a failure is "ready" too: the read that
  // follows sees the end again (a failure's error is used up here, and it then reads the
  // end: the connection closes either way).
  auto check = [this] {
    if (ssl_ != nullptr) return Poll(POLLIN, 0);
    const ssize_t n = ::recv(fd_, buffer_.data(), buffer_.size(), MSG_DONTWAIT);
    if (n > 0) {
      begin_ = 0;
      end_ = static_cast<size_t>(n);
      return 1;
    }
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : 1;
  };
  if (const int ready = busy_poll_.Spin(check)) return ready > 0;
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
  Flush();  // the last reply's held-back bytes (a failure changes nothing here)
  if (ssl_ != nullptr) {
    // One close_notify, without waiting for the client's.
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
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
