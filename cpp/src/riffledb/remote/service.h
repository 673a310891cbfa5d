// The REST endpoints of `riffledb serve` (spec/remote-protocol.md §2-3) on a Database,
// independent of the HTTP transport: a request (method, target, body) in, a reply
// (status, content type, body) out. server.h puts it behind cpp-httplib; tests and the
// fuzz target call it directly.
#pragma once

#include <arrow/buffer.h>
#include <arrow/status.h>
#include <arrow/type_fwd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "riffledb/db/database.h"
#include "riffledb/remote/protocol.h"

namespace riffledb::remote {

inline constexpr char kJsonType[] = "application/json";
/// Request bodies of create and insert.
inline constexpr char kArrowStreamType[] = "application/vnd.apache.arrow.stream";
/// Response bodies of `/query/`.
inline constexpr char kArrowFileType[] = "application/vnd.apache.arrow.file";

/// A reply body produced while it is sent (a large query answer: an IPC file written
/// batch by batch), so that the memory one answer holds is bounded by a batch, not by
/// the answer's size. Not thread-safe: the connection that sends it writes it, once.
class BodyStream {
 public:
  /// Takes a piece of the body; false when it could not be sent (the client is gone).
  using Writer = std::function<bool(std::string_view piece)>;

  virtual ~BodyStream() = default;

  /// Writes the whole body, in pieces, through `write`. A failure here happens after
  /// the status line was sent, so it cannot become an error reply: the transport must
  /// abort the connection, so that the client sees a truncated body, never a short
  /// valid one. IOError when `write` failed.
  virtual arrow::Status WriteTo(const Writer& write) = 0;
};

/// What the server sends back.
struct Reply {
  int status = 200;
  std::string content_type = kJsonType;
  /// The body, in pieces sent one after the other (none: no body, or `stream`): a
  /// query answer's large buffers are the ones its take gathered into, sent from there.
  arrow::BufferVector body;
  /// Set instead of `body` for an answer too large to build whole: the transport sends
  /// it as it is written (HTTP/1.1 chunked). Only with status 200.
  std::shared_ptr<BodyStream> stream;
};

/// The bytes of a reply's body, and their number.
int64_t BodySize(const Reply& reply);
std::string BodyText(const Reply& reply);

/// A reply of `status` with body `{"error": message}`.
Reply ErrorReply(int status, std::string_view message);

/// The HTTP status of a failed status (spec §1.5): 404 for a missing table or route,
/// 400 for bad input (and for an existing table on create, whose message says "already
/// exists", which is what LanceDB's client looks for), 501 for what is not implemented,
/// 413 for CapacityError, 500 for I/O errors, damage and anything else.
int HttpStatusOf(const arrow::Status& status);

/// How the service answers.
struct ServiceOptions {
  /// `/query/` answers are IPC files of batches of at most this many rows: LanceDB's
  /// client hands each batch to its caller as is (spec §2.9).
  int64_t max_batch_rows = 1024;
  /// A `/query/` answer of at most this many bytes is built whole and sent with its
  /// length; any failure is an error reply. A larger one is streamed (Reply::stream):
  /// the server holds this much plus one batch of it at a time, and a failure after
  /// this many bytes aborts the connection.
  int64_t max_buffered_answer_bytes = int64_t{1} << 20;
  /// What the buffers of one create or insert body may decompress to, in total (an
  /// LZ4-compressed IPC body of zeros expands about 250 times): more is answered 413.
  /// Uncompressed bodies are read in place and never reach it.
  int64_t max_decoded_bytes = int64_t{1} << 30;
  /// A cached table whose newest version is still the one it holds is checked to still be
  /// the same table (Store::SameTableAt: one manifest read) at most this often, in
  /// milliseconds: a table dropped and created again by another process, with as many
  /// versions, is served from the old one's files (still mapped) until then. 0: at every
  /// request.
  int64_t table_check_interval_ms = 1000;
  /// A cached table looks for versions newer than the one it holds (Store::LatestVersion)
  /// at most this often, in milliseconds; in between, requests read the version it holds.
  /// Commits made through this server are seen at once all the same (they move the
  /// cached handle); other writers' within the interval. 0: at every request.
  /// kAutoVersionCheck: 0 for a directory (two stats, ~2 µs) and
  /// kObjectStoreVersionCheckMs on object storage, where the check is two HEADs and a
  /// LIST, a round trip each, at every take.
  int64_t version_check_interval_ms = kAutoVersionCheck;

  static constexpr int64_t kAutoVersionCheck = -1;
  static constexpr int64_t kObjectStoreVersionCheckMs = 1000;
};

/// The endpoints on one database. Thread-safe: requests run concurrently. Every request
/// reads the table it names at its newest version (or the version it asks for), so it
/// sees every commit made before it, by this server or by other writers.
///
/// Opened tables are cached by name and reused while their version is still the
/// newest (a check of the store, not a reopen: a Table's snapshots are immutable, so a
/// reused handle reads exactly the version it reports). Inserts go through the cached
/// handle, which moves to the version they commit; create and drop evict the name.
class Service {
 public:
  Service(std::shared_ptr<Database> db, ServiceOptions options = {});

  const std::shared_ptr<Database>& database() const { return db_; }

  /// Answers one request. `target` is the request target as sent (path and query
  /// string, not decoded); `body` is the whole request body (the transport bounds its
  /// size). Never fails: errors become error replies, with the database's location
  /// replaced by "<db>" in messages.
  Reply Handle(std::string_view method, std::string_view target, std::string body) const;

  /// Tables opened from their store so far (a cached handle moving to a newer version is
  /// not an open): for tests and diagnostics.
  int64_t table_opens() const { return table_opens_.load(std::memory_order_relaxed); }

  /// ServiceOptions::version_check_interval_ms, kAutoVersionCheck resolved for the
  /// database served.
  int64_t version_check_interval_ms() const { return version_check_interval_ms_; }

 private:
  arrow::Result<Reply> Dispatch(std::string_view method, const Route& route,
                                std::string body) const;
  arrow::Result<Reply> ListTables(const Route& route) const;
  arrow::Result<Reply> CreateTable(const Route& route, std::string body) const;
  arrow::Result<Reply> Describe(const Route& route, std::string_view body) const;
  arrow::Result<Reply> CountRows(const Route& route, std::string_view body) const;
  arrow::Result<Reply> Insert(const Route& route, std::string body) const;
  arrow::Result<Reply> Query(const Route& route, std::string_view body) const;
  arrow::Result<Reply> QueryOnce(const Route& route, const QueryRequest& request) const;
  arrow::Result<Reply> DropTable(const Route& route) const;
  arrow::Result<Reply> ListVersions(const Route& route) const;
  // The table at `version` (the newest if none); a version it does not have is
  // Invalid with ErrorKind::kTableNotFound, answered 404 as LanceDB's checkout expects.
  arrow::Result<std::shared_ptr<Table>> OpenAt(const std::string& name,
                                               std::optional<uint64_t> version) const;
  // A handle of its own at `version` (errors as OpenAt's).
  arrow::Result<std::shared_ptr<Table>> OpenVersion(const std::string& name,
                                                    uint64_t version) const;
  // What a read of `version` (the newest if none) reads: the snapshot of OpenAt's handle,
  // at `version` also when another request moves the cached handle meanwhile.
  arrow::Result<std::shared_ptr<const Snapshot>> SnapshotAt(
      const std::string& name, std::optional<uint64_t> version,
      const std::optional<std::string>& table_id = std::nullopt) const;
  // The table at its newest version: the cached handle if that is still the newest.
  arrow::Result<std::shared_ptr<Table>> OpenLatest(const std::string& name) const;
  // Forgets `name` (created, overwritten or dropped): a handle being opened meanwhile
  // is not cached.
  void Evict(const std::string& name) const;
  Reply ToErrorReply(const arrow::Status& status) const;

  const std::shared_ptr<Database> db_;
  const ServiceOptions options_;
  // options_.version_check_interval_ms, kAutoVersionCheck resolved for db_.
  const int64_t version_check_interval_ms_;

  // A table's cached handle, and the mutex held while it moves to a newer version
  // (OpenLatest).
  struct CachedTable {
    std::shared_ptr<Table> table;
    std::shared_ptr<std::mutex> refresh;
    // When the table was last found to be the same (steady clock, ms): SameTableAt.
    std::shared_ptr<std::atomic<int64_t>> checked_ms;
    // When the store was last asked for its newest version (steady clock, ms).
    std::shared_ptr<std::atomic<int64_t>> version_checked_ms;
  };

  mutable std::mutex cache_mu_;
  mutable std::atomic<int64_t> table_opens_{0};
  // Guarded by cache_mu_: handles at (at least) the version they were found newest at.
  mutable std::unordered_map<std::string, CachedTable> tables_;
  // Guarded by cache_mu_: bumped by Evict.
  mutable uint64_t generation_ = 0;
};

}  // namespace riffledb::remote
