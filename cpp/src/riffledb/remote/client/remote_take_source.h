// A table of a remote database as a TakeSource (riffledb/permutation/take_source.h): what
// lets the permutation reader, and the loader above it, read a `db://` table through the
// same code path as a local snapshot.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "riffledb/permutation/take_source.h"
#include "riffledb/remote/client/http_client.h"

namespace riffledb::remote {

/// Which remote table, at which version, and how to ask for it.
struct RemoteTableOptions {
  /// The table's name, as the server knows it (for messages).
  std::string name;
  /// The path of the table's routes, percent-encoded, with its trailing slash:
  /// `/v1/table/<name>/`; `query/` and `count_rows/` are appended.
  std::string table_path;
  /// The version every request reads (spec §2.8's `"version"`); unset: the newest
  /// version at each request, which a reader should not want (see RemoteTakeSource).
  std::optional<uint64_t> version;
  /// The `table_id` a describe of `version` gave (riffledb's servers give one), sent
  /// with every request: a riffledb server answers 404 instead of reading that version
  /// of another table of the name (the first dropped and another created up to it).
  /// Empty: none sent.
  std::string table_id;
  /// Sent with every request, after the client's own.
  HeaderList headers;
  /// When set, called before every attempt of every request for more headers, which
  /// replace same-named ones (HttpRequest::header_source): a credential that expires
  /// (LanceDB's `header_provider`) stays fresh for a reader that lives for hours, and
  /// across a request's retries. Called from whichever thread sends the request, so it
  /// must be thread-safe; an error fails that request (its message names the provider).
  std::function<arrow::Result<HeaderList>()> header_source;
  /// The most keys (`_rowid`s or offsets) in one `IN (...)` filter: a larger take is
  /// sent as several requests, one after the other.
  int64_t max_keys_per_request = 8192;
};

/// One take from a remote table, whatever its schema (spec §2.7).
struct RemoteTake {
  /// The table's name, as the server knows it.
  std::string name;
  /// How messages name the table; empty: `table '<name>'`.
  std::string description;
  /// `/v1/table/<name>/`, percent-encoded, with its trailing slash.
  std::string table_path;
  /// The version read; unset: the newest.
  std::optional<uint64_t> version;
  /// As RemoteTableOptions::table_id.
  std::string table_id;
  /// By `_rowid` (else by `_rowoffset`).
  bool by_row_id = false;
  /// The columns asked for (`"columns"`); empty: the server's default, every column.
  std::vector<std::string> columns;
  /// `"with_row_id": true` (always sent for a take by row id).
  bool with_row_id = false;
  /// Sent with each request, after the client's own.
  HeaderList headers;
  /// When set, called before each attempt for more headers, which replace same-named
  /// ones of `headers` and the client's (RemoteTableOptions::header_source).
  std::function<arrow::Result<HeaderList>()> header_source;
  /// The most keys in one `IN (...)` filter: more are sent as several requests.
  int64_t max_keys_per_request = 8192;
};

/// The rows whose key is `keys[i]`, in that order, repeats repeated, with the columns of
/// the server's answer: one `<key> in (...)` query (LanceDB's clients' spelling up to
/// 0.34, which every server understands) per `max_keys_per_request` keys.
///
/// A riffledb server (HttpClient::TakesInAskedOrder) is asked for the keys as they are,
/// and its answer, in that order, is taken as it is: checked against its key column when
/// it has one (`_rowid`, or `_rowoffset` if asked for) and matched as below if that
/// differs; without one, a row count other than the keys' is an error. Each of its
/// answers must say kTakeOrderHeader too: if one does not (the address reaches another
/// server now), the take is asked again as of any other server.
///
/// Any other server is asked for the distinct keys, ascending, and its answer is put in
/// the order asked for here. The answer's key column says where each row is, in
/// whatever order and with whatever repeats the server chose; without it (a take by
/// offset of every column) the server's rows are in ascending offset order, as LanceDB's
/// scan order and riffledb's answer to ascending offsets are, and a row count other than
/// the distinct keys' is an error.
///
/// IndexError naming the first key (and its position) the answer lacks, or the first
/// negative offset (an offset past INT64_MAX as unsigned), before any request.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeRemoteRows(
    const HttpClient& client, const RemoteTake& take, std::span<const uint64_t> keys);

/// The pieces of TakeRemoteRows, for tests and the fuzz target.

/// The distinct keys, ascending, and where each key is among them:
/// `keys[i] == unique[rank[i]]`.
struct KeyRanks {
  std::vector<uint64_t> unique;
  std::vector<int64_t> rank;
};
KeyRanks RankKeys(std::span<const uint64_t> keys);

/// A query's answer (`body`: an Arrow IPC file, or a stream when `content_type` says
/// so) as one table, validated in full: its bytes are the server's. Invalid naming
/// `what` for anything else. A file is read from the stream inside it, with the
/// schema of the thread's previous answer when its message has the same bytes.
arrow::Result<std::shared_ptr<arrow::Table>> ReadQueryAnswer(
    std::string body, const std::optional<std::string>& content_type,
    std::string_view what);

/// The rows of `answer` (the server's answer to a take of `ranks.unique`) for `keys`, in
/// that order (see TakeRemoteRows). IndexError naming the first key the answer lacks and
/// its position; Invalid for an answer that cannot be matched to the keys.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> OrderTakeAnswer(
    std::shared_ptr<arrow::Table> answer, std::span<const uint64_t> keys,
    const KeyRanks& ranks, bool by_row_id, std::string_view what);

/// The answer of a riffledb server to a take of `keys` as asked (TakeRemoteRows), as one
/// batch, when its key column holds exactly `keys`, or it has none and as many rows as
/// `keys` for a take by offset; null when the key column differs (the answer is then
/// matched by OrderTakeAnswer). Invalid for a take by row id without `_rowid`, or a row
/// count that cannot be the keys'.
arrow::Result<std::shared_ptr<arrow::RecordBatch>> AnswerAsAsked(
    const std::shared_ptr<arrow::Table>& answer, std::span<const uint64_t> keys,
    bool by_row_id, std::string_view what);

/// Takes from one version of a remote table over HttpClient, with the requests of spec
/// §2.7: `{"filter": "_rowid in (...)", "with_row_id": true, "columns": [...]}` (and
/// `_rowoffset in (...)` with `_rowoffset` among the columns for takes by offset). Only
/// the columns the projection needs are asked for; the answer, in whatever order and
/// with whatever duplicates the server chose, is put in the order asked for here, and the
/// projection (SQL expressions included) is evaluated here: the one projection engine
/// (expr/projection.h), as for local tables.
///
/// Immutable and thread-safe: concurrent takes are concurrent requests on the client's
/// pool. Survives fork (the client is pid-aware: a forked child opens connections of its
/// own). Pinning a version makes every take answer for it, as a local snapshot does.
class RemoteTakeSource final : public TakeSource {
 public:
  /// Asks the server for the schema (a one-row query, whose answer's schema is the
  /// table's) and the row count of `options.version`. Errors: the client's (an IOError
  /// with an HttpErrorDetail; 404 for an unknown table or version), Invalid for an
  /// answer that is not Arrow IPC or not an integer.
  static arrow::Result<std::shared_ptr<const RemoteTakeSource>> Open(
      std::shared_ptr<const HttpClient> client, RemoteTableOptions options);

  const std::shared_ptr<arrow::Schema>& schema() const override { return schema_; }
  int64_t num_rows() const override { return num_rows_; }
  std::string ToString() const override;
  const RemoteTableOptions& options() const { return options_; }
  const std::shared_ptr<const HttpClient>& client() const { return client_; }

  /// With TakeOptions::binary_views, binary and string columns are cast to views of the
  /// answer's buffers (the answer is a copy anyway).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeOffsets(
      std::span<const int64_t> offsets, const TakeOptions& options) const override;
  /// IndexError naming the first id the server did not return.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> TakeRowIds(
      std::span<const uint64_t> row_ids, const TakeOptions& options) const override;
  arrow::Result<std::vector<uint64_t>> RowIdsOfOffsets(
      std::span<const int64_t> offsets) const override;

 private:
  RemoteTakeSource() = default;
  // The rows whose key (`_rowid` if by_row_id, else `_rowoffset`) is keys[i], in that
  // order, projected.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Take(
      std::span<const uint64_t> keys, bool by_row_id, const TakeOptions& options) const;

  // Constant after Open.
  std::shared_ptr<const HttpClient> client_;
  RemoteTableOptions options_;
  std::shared_ptr<arrow::Schema> schema_;
  std::shared_ptr<const Projection> all_columns_;
  int64_t num_rows_ = 0;
};

}  // namespace riffledb::remote
