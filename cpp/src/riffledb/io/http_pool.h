// Keep-alive HTTP connections to one server, kept by the process that opened them
// (DESIGN.md decision 9): the pool of the remote-table client and of S3's ranged GETs.
#pragma once

#include <arrow/result.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "riffledb/io/http_connection.h"

namespace riffledb::io {

/// Counters of one process's use of a pool (for tests and diagnostics).
struct HttpPoolStats {
  int64_t requests = 0;         ///< connections handed out (Acquire)
  int64_t connections = 0;      ///< connections opened
  int64_t reused = 0;           ///< ... of the handed out, pooled ones
  int64_t abandoned_fds = 0;    ///< inherited sockets closed without shutdown
  int64_t abandoned_conns = 0;  ///< inherited connections left undestroyed
  int64_t busy_polls = 0;       ///< waits for an answer's bytes that began with a spin
  int64_t busy_poll_hits = 0;   ///< ... in which the bytes came
};

/// A pid-aware pool of idle keep-alive connections.
///
/// Thread-safe: each Acquire() hands a connection to one caller, in a Lease that gives it
/// back when destroyed (pooled again if it is still reusable). Fork-safe: a pooled
/// connection belongs to the process that opened it. The first use in a forked child
/// abandons what it inherited — it closes its copies of the parent's sockets without
/// shutdown() (which would cut the parent's connections, shared through the same open
/// file) and never destroys the parent's connection objects (whose destructor would shut
/// the socket down, or send a TLS close_notify) — then opens connections of its own. A
/// request of the parent in flight at the fork goes on in the parent undisturbed.
class HttpConnectionPool {
  struct Entry;
  struct Impl;

 public:
  struct Options {
    /// Idle connections kept; more are closed when given back.
    int max_idle = 16;
    /// An idle connection older than this is closed instead of being handed out.
    double idle_timeout_s = 300;
  };

  /// One connection handed out, and whether it came from the pool. Destroyed, it gives
  /// the connection back: pooled if reusable (its last response came whole, framed,
  /// without `Connection: close`, and nothing failed) and there is room, else closed.
  /// The pool must outlive its leases.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&& other) noexcept;
    ~Lease();
    HttpConnection& connection() const;
    /// A pooled connection (which the server may have closed since: a request that
    /// fails on it as on a closed connection, HttpConnection::StaleFailure, is worth one
    /// retry on a new connection when it may be sent twice).
    bool reused() const { return reused_; }

   private:
    friend class HttpConnectionPool;
    Lease(Impl* owner, std::unique_ptr<Entry> entry, bool reused);
    void GiveBack();
    Impl* owner_ = nullptr;
    std::unique_ptr<Entry> entry_;
    bool reused_ = false;
  };

  /// Opens a new connection (called outside the pool's lock).
  using Opener = std::function<arrow::Result<std::unique_ptr<HttpConnection>>()>;

  HttpConnectionPool() : HttpConnectionPool(Options{}) {}
  explicit HttpConnectionPool(Options options);
  /// In a process that inherited it, abandons the parent's connections first (above).
  ~HttpConnectionPool();
  HttpConnectionPool(const HttpConnectionPool&) = delete;
  HttpConnectionPool& operator=(const HttpConnectionPool&) = delete;

  /// An idle pooled connection that is still open (one non-blocking peek), else a new
  /// one from `open`, whose error is returned as it is. `fresh`: a new one in any case
  /// (the retry of a request that failed on a pooled one).
  arrow::Result<Lease> Acquire(const Opener& open, bool fresh = false);
  /// This process's counters.
  HttpPoolStats stats() const;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace riffledb::io
