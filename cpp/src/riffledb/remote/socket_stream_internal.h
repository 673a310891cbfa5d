// A connected socket as a cpp-httplib Stream, for the server's own keep-alive loop
// (server.cc): reads buffered, every wait bounded by a timeout, writes without SIGPIPE.
#pragma once

#include <httplib.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <string>

namespace riffledb::remote::internal {

/// Not thread-safe: one connection thread owns it. Does not own the socket.
class SocketStream final : public httplib::Stream {
 public:
  SocketStream(int fd, int io_timeout_ms) : fd_(fd), io_timeout_ms_(io_timeout_ms) {}

  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return fd_; }

  /// Waits for the next request of a keep-alive connection: true once a byte (or the
  /// end of the stream) is there; false after `idle_ms` without one, or as soon as
  /// `stopping` is set while nothing has arrived.
  bool WaitForRequest(int idle_ms, const std::atomic<bool>& stopping);

  /// Closes our side, then reads and drops what the client still sends (up to a few
  /// seconds and megabytes) before closing: closing a socket with unread input resets
  /// the connection, and the client could lose the reply it has not read yet.
  void LingeringClose();

 private:
  // poll() for `events` up to `timeout_ms`: >0 ready, 0 timed out, <0 error.
  int Poll(short events, int timeout_ms) const;

  const int fd_;
  const int io_timeout_ms_;
  std::array<char, 4096> buffer_{};
  size_t begin_ = 0;  // buffer_[begin_, end_) is read and not consumed yet
  size_t end_ = 0;
};

}  // namespace riffledb::remote::internal
