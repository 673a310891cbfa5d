// `riffledb serve`: a database served over LanceDB's REST protocol
// (spec/remote-protocol.md), on cpp-httplib, with keep-alive, a pool of connection
// threads, API-key checks, size limits and a graceful stop.
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "riffledb/db/database.h"
#include "riffledb/remote/service.h"

namespace riffledb::remote {

/// How a Server listens and what it accepts.
struct ServerOptions {
  /// The address to listen on: loopback unless told otherwise (DESIGN.md decision 12).
  std::string host = "127.0.0.1";
  /// 0: a free port, chosen by the kernel (Server::port() says which).
  int port = 0;
  /// When not empty, every request must carry it in the `x-api-key` header (compared in
  /// constant time), or is answered 401.
  std::string api_key;
  /// Connection threads. A keep-alive connection holds its thread while it is open
  /// (cpp-httplib's model), so this is also the number of clients served at once;
  /// further connections wait in the accept queue.
  int threads = 16;
  /// Request bodies larger than this (after Content-Encoding is undone) are answered
  /// 413 and the connection is closed.
  int64_t max_body_bytes = int64_t{256} << 20;
  /// Requests with more header lines, or more header bytes, than these are answered 431.
  /// (cpp-httplib itself refuses a request line over 8 KiB, 414, and a header line over
  /// 8 KiB, 400.)
  int max_headers = 100;
  int64_t max_header_bytes = int64_t{64} << 10;
  /// An idle keep-alive connection is closed after this long; a connection is closed
  /// after this many requests.
  int keep_alive_timeout_ms = 5000;
  int keep_alive_max_requests = 1000;
  /// A client that sends nothing for this long in the middle of a request, or reads
  /// nothing of a response, is disconnected.
  int io_timeout_ms = 30000;
  /// A request's head (its line and headers) must come whole within this long of its
  /// first byte, or the connection is closed: a client sending a byte at a time, each
  /// within io_timeout_ms, would otherwise hold a connection thread for hours.
  int head_timeout_ms = 10000;
  /// After each reply, a connection thread polls for the next request for up to this
  /// long before blocking (0: never), so that a client sending requests back to back is
  /// answered by a thread still on its CPU (util/busy_poll.h: it backs off on
  /// connections whose requests come later, and at most usable CPUs - 1 threads spin).
  /// 200 µs: enough for a client that sends its next take after its Python's
  /// ~100-200 µs; with 1,000 µs, 4 client processes against one server on 2 CPUs did
  /// 20-40% fewer requests a second (the spinning thread held a CPU they needed).
  int busy_poll_us = 200;
  /// When both are set (PEM files: the certificate chain, the private key), the server
  /// speaks HTTPS only (TLS 1.2 or newer, no client certificates).
  std::string tls_cert_path;
  std::string tls_key_path;
  /// Plain (not TLS) requests whose head the server parses itself (a well-formed,
  /// authorized POST with a Content-Length within the limits) are read and answered
  /// without cpp-httplib, with the same replies. False sends every request through
  /// cpp-httplib (tests compare the two).
  bool plain_path = true;
  ServiceOptions service;
};

/// A running server. Thread-safe. The database it serves stays open as long as the
/// server lives; destroying a server stops it (as Stop()).
class Server {
 public:
  /// Binds `options.host:options.port` and starts serving `db` on threads of its own.
  /// Invalid for bad options (a TLS certificate or key that cannot be loaded names the
  /// file); IOError naming the address if it cannot be bound.
  static arrow::Result<std::unique_ptr<Server>> Start(std::shared_ptr<Database> db,
                                                      ServerOptions options);
  ~Server();

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// The port it listens on (the chosen one when options.port was 0).
  int port() const;
  const ServerOptions& options() const;
  /// "https" with TLS, else "http".
  const char* scheme() const;
  /// How often a table served looks for newer versions, in ms (0: at every request):
  /// ServiceOptions::version_check_interval_ms, resolved for the database.
  int64_t version_check_interval_ms() const;

  /// What the connection threads' busy-polls for a next request came to
  /// (ServerOptions::busy_poll_us), for tests and diagnostics.
  struct Stats {
    int64_t busy_polls = 0;      ///< waits for a request that began with a spin
    int64_t busy_poll_hits = 0;  ///< ... in which the request came
    int64_t plain_requests = 0;  ///< answered without cpp-httplib (plain_path)
  };
  Stats stats() const;

  /// Stops gracefully and returns when done: no new connection is accepted, requests
  /// already received are answered (a write commits whole or not at all; none is cut
  /// short), idle keep-alive connections are closed, then the threads are joined.
  /// Idempotent; callable from any thread but the server's own.
  void Stop();
  /// Waits until the server has stopped, up to `timeout_ms` (forever if unset); true if
  /// it has.
  bool Wait(std::optional<int64_t> timeout_ms = std::nullopt) const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// Makes glibc's malloc keep freed memory of up to 16 MiB blocks for reuse in this
/// process (M_MMAP_THRESHOLD 16 MiB, M_TRIM_THRESHOLD 32 MiB), unless the environment
/// sets either (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, or their GLIBC_TUNABLES
/// names). Without it, the per-request buffers of a megabyte answer were mapped
/// and faulted in anew at each request (about 1,150 page faults for a 1 MB take: the
/// connection threads' arenas are trimmed, and such blocks mmapped, every time).
/// Process-wide: for a process that serves (`riffledb serve`), not a library user's.
/// True if it changed the settings.
bool TuneAllocatorForServing();

}  // namespace riffledb::remote
