// A connected socket as a cpp-httplib Stream, for the server's own keep-alive loop
// (server.cc): reads buffered, every wait bounded by a timeout, writes without SIGPIPE;
// in TLS when given an OpenSSL session.
#pragma once

#include <httplib.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "riffledb/util/busy_poll.h"

namespace riffledb::remote::internal {

/// Not thread-safe: one connection thread owns it. Does not own the socket, nor the
/// TLS session.
class SocketStream final : public httplib::Stream {
 public:
  /// With `ssl` (a session whose handshake is done, on `fd`: see AcceptTls), reads and
  /// writes go through TLS.
  /// Sets the socket's send and receive timeouts to `io_timeout_ms`. WaitForRequest
  /// busy-polls up to `busy_poll_us` first.
  SocketStream(int fd, int io_timeout_ms, SSL* ssl = nullptr, int busy_poll_us = 0);

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return fd_; }

  /// A request's head begins: until EndHead(), reads wait no longer than `deadline` and
  /// fail once it has passed (a head must come whole in time however its bytes trickle
  /// in, each of which would restart the I/O timeout), and the bytes read() returns are
  /// kept, up to kMaxHeadBytes, for head() (cpp-httplib's parser, which reads heads
  /// through read(), drops lines it cannot parse: Server::Impl::Admit checks them).
  /// Over TLS the deadline bounds the waits for the records too.
  void BeginHead(std::chrono::steady_clock::time_point deadline);
  /// The head has been read: reads are bounded by the I/O timeout only, and not kept.
  void EndHead();
  /// What read() returned since BeginHead(), at most kMaxHeadBytes of it.
  std::string_view head() const { return head_; }
  static constexpr size_t kMaxHeadBytes = size_t{256} << 10;

  /// Waits for the next request of a keep-alive connection: true once a byte (or the
  /// end of the stream) is there; false after `idle_ms` without one, or as soon as
  /// `stopping` is set while nothing has arrived. Busy-polls first (see the
  /// constructor).
  bool WaitForRequest(int idle_ms, const std::atomic<bool>& stopping);
  /// Not TLS: the plain path (server.cc) reads the request head itself.
  bool plain() const { return ssl_ == nullptr; }
  /// The bytes received and not read yet (a plain stream's).
  std::string_view buffered() const {
    return std::string_view(buffer_.data() + begin_, end_ - begin_);
  }
  /// Receives more after buffered() (moved to the start of the buffer first), waiting
  /// up to the I/O timeout: false, with nothing received, if the buffer is full, the peer
  /// closed, or the receive failed or timed out. Plain streams only.
  bool ReceiveMore();
  /// Marks the first `n` bytes of buffered() read.
  void Consume(size_t n) { begin_ += std::min(n, end_ - begin_); }
  /// What WaitForRequest's busy-polls came to.
  const BusyPoll::Stats& busy_poll_stats() const { return busy_poll_.stats(); }
  /// Sends what write() held back. Small writes (a reply's headers, a chunk's size line)
  /// are held until the next large one or this call, so that a reply leaves in one
  /// segment where it fits: a client woken by the headers alone would sleep again for
  /// the body. False if the connection failed.
  bool Flush();
  /// Sends what write() held back, then `parts`, all of them: on a plain socket in one
  /// sendmsg where the socket takes it (a reply's head and the buffers of its body,
  /// from where they are). False if the connection failed.
  bool SendAll(std::span<const std::string_view> parts);

  /// Closes our side (after a TLS close_notify), then reads and drops what the client
  /// still sends (up to a few seconds and megabytes) before closing: closing a socket
  /// with unread input resets the connection, and the client could lose the reply it has
  /// not read yet.
  void LingeringClose();

 private:
  // read() without keeping the head's bytes.
  ssize_t ReadSome(char* ptr, size_t size);
  // poll() for `events` up to `timeout_ms`: >0 ready, 0 timed out, <0 error.
  int Poll(short events, int timeout_ms) const;
  // How long a read may wait now: the I/O timeout, cut to the read deadline (0 once it
  // has passed).
  int ReadWaitMs() const;
  // With a read deadline, polls for bytes up to ReadWaitMs(): false if none came (the
  // deadline passed). True without one (the receive timeout bounds the wait).
  bool WaitToRead() const;

  // Bytes decrypted and not yet read by us (TLS only).
  bool Pending() const {
    return ssl_ != nullptr && (SSL_pending(ssl_) > 0 || SSL_has_pending(ssl_) == 1);
  }

  // Sends `pending_` then `data` (for plain sockets all of it, through SendAll): the
  // bytes of `data` sent (all of pending_ is sent first), -1 on failure.
  ssize_t SendWithPending(const char* data, size_t size);

  const int fd_;
  const int io_timeout_ms_;
  SSL* const ssl_;
  std::string pending_;  // written, not sent yet
  // The addresses, asked for once (cpp-httplib asks for them on every request).
  mutable std::string remote_ip_, local_ip_;
  mutable int remote_port_ = -1, local_port_ = -1;
  std::array<char, 4096> buffer_{};
  size_t begin_ = 0;  // buffer_[begin_, end_) is read and not consumed yet
  size_t end_ = 0;
  BusyPoll busy_poll_;
  std::optional<std::chrono::steady_clock::time_point> read_deadline_;
  bool in_head_ = false;
  std::string head_;  // read() since BeginHead, while in_head_
};

/// The server side of a TLS session on `fd` with its handshake done, or null if the
/// client did not complete it within `handshake_timeout_ms` (a client trickling its
/// hello would otherwise hold the thread, each byte within the I/O timeout). The session
/// reads and writes `fd` with every wait bounded by `io_timeout_ms` (and by a head's
/// deadline, SocketStream::BeginHead) and without SIGPIPE (OpenSSL's socket BIO uses
/// write(), which raises it on a closed connection).
struct SslDeleter {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};
std::unique_ptr<SSL, SslDeleter> AcceptTls(SSL_CTX* ctx, int fd, int io_timeout_ms,
                                           int handshake_timeout_ms);

}  // namespace riffledb::remote::internal
