// The request and response pieces of LanceDB's REST protocol (spec/remote-protocol.md
// §2) that `riffledb serve` speaks, parsed from and written to plain text: routes, query
// strings, JSON bodies, take filters, the JSON schema of describe. Nothing here does I/O
// or knows HTTP transport; the server (server.h) and the service (service.h) call it.
//
// Every input is untrusted. Each function returns Invalid naming the field or the part of
// the input at fault, never throws and never crashes (fuzzed by request_fuzz.cc).
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>
#include <arrow/type.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace riffledb::remote {

/// What a request target names.
struct Route {
  enum class Kind {
    kListTables,  ///< `GET /v1/table/` or `GET /v1/namespace/$/table/list`
    kTable,       ///< `POST /v1/table/{name}/{action}/`
  };
  Kind kind = Kind::kListTables;
  /// The table name, percent-decoded and checked by Database::ValidateTableName (kTable).
  std::string table;
  /// The action path after the name, without slashes at either end: `describe`,
  /// `count_rows`, `version/list`... (kTable).
  std::string action;
  /// The query string's parameters, percent-decoded, in order.
  std::vector<std::pair<std::string, std::string>> params;
};

/// Parses a request target (`/v1/table/t/query/?a=b`). The trailing slash is optional.
/// KeyError for a path that is not a route of the protocol (the server answers 404);
/// Invalid naming the table for a name that is not a plain table name (path separators,
/// `..`, a leading '.', too long, characters outside [A-Za-z0-9_.-]), and naming the
/// parameter for a malformed query string.
arrow::Result<Route> ParseRoute(std::string_view target);

/// Decodes %XX escapes (and '+' as a space when `plus_is_space`, as in query strings).
/// Invalid for a truncated or non-hex escape and for a decoded NUL byte.
arrow::Result<std::string> PercentDecode(std::string_view text, bool plus_is_space);

/// `key=value&...` pairs, percent-decoded, in order; empty pieces are skipped, a piece
/// without '=' has an empty value.
arrow::Result<std::vector<std::pair<std::string, std::string>>> ParseQueryString(
    std::string_view query);

/// The value of parameter `name` (the last one if repeated), if present.
std::optional<std::string> FindParam(
    const std::vector<std::pair<std::string, std::string>>& params,
    std::string_view name);

/// Compares an API key in time that depends only on the lengths, not on where the
/// first difference is.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

/// The body of describe, count_rows and version/list: empty, or a JSON object with
/// optional `version` (null or a non-negative integer) and, for count_rows, `predicate`
/// (null or a string). Unknown keys are ignored.
struct ReadRequest {
  std::optional<uint64_t> version;
  std::optional<std::string> predicate;
  /// riffledb's: the `table_id` the client read with `version` (its describe's), so that
  /// a version of another table of the same name (dropped and created again) is not read
  /// as if it were of the first. LanceDB's servers ignore it.
  std::optional<std::string> table_id;
};
arrow::Result<ReadRequest> ParseReadRequest(std::string_view body);

/// The body of `/query/` (spec §2.6).
struct QueryRequest {
  std::optional<uint64_t> version;
  /// No limit when unset: the client sends k = isize::MAX for none, and 0 means none.
  /// Set, it is >= 1.
  std::optional<int64_t> limit;
  int64_t offset = 0;  ///< >= 0
  std::optional<std::string> filter;
  /// Output columns as (name, source) pairs: a `columns` list gives (name, name), an
  /// object gives its (alias, SQL) pairs in the order sent. Empty: every column.
  std::vector<std::pair<std::string, std::string>> columns;
  /// `columns` was a list (plain names, never SQL) rather than an object.
  bool columns_are_names = true;
  bool with_row_id = false;
  std::optional<std::string> table_id;  ///< as ReadRequest::table_id

  bool operator==(const QueryRequest&) const = default;
};
/// Invalid naming the field for a malformed body or field; NotImplemented naming it for
/// what riffledb does not serve yet (a non-empty `vector`, `full_text_query`,
/// `order_by`).
arrow::Result<QueryRequest> ParseQueryRequest(std::string_view body);

/// A take written as a filter, the way LanceDB's client sends takes (spec §2.7):
/// `_rowoffset IN (0, 2)` or `_rowid in (5,9)`, keywords in any case, any whitespace.
struct TakeFilter {
  bool row_ids = false;  ///< `_rowid IN`; else `_rowoffset IN`
  std::vector<uint64_t> values;
};
/// The take `filter` spells, or nullopt if it is anything else (a general filter).
std::optional<TakeFilter> MatchTakeFilter(std::string_view filter);

/// The schema in lance's JSON form (spec §2.3): `{"fields": [...], "metadata": {...}}`.
/// NotImplemented naming the field for a type that form has no name for.
arrow::Result<std::string> SchemaToJson(const arrow::Schema& schema);

/// `{"error": message}`, with control characters escaped.
std::string ErrorJson(std::string_view message);

namespace internal {

/// A body whose top-level `"filter"` member is a plain string (printable ASCII, no
/// escape), split around that string: `rest` is the body with `""` in its place and
/// `filter` the string (a view into the body). Nullopt for any other body: no such
/// member or two of them, a top-level string with an escape (a key could spell
/// "filter" with escapes), or a value that is not a plain string. (A NUL byte, which
/// no plain string holds, stays in `rest`, where ParseObject refuses it.)
/// ParseQueryRequest parses `rest`: nlohmann's lexer costs some 5 ns a byte, and a take's
/// `IN (...)` list is most of its body (7,000 characters for 1,024 rows).
struct LiftedFilter {
  std::string rest;
  std::string_view filter;
};
std::optional<LiftedFilter> LiftFilter(std::string_view body);

/// ParseQueryRequest parsing the whole body, never lifting its filter (for the tests
/// and the fuzz target, which check that both agree).
arrow::Result<QueryRequest> ParseQueryRequestWhole(std::string_view body);

}  // namespace internal

}  // namespace riffledb::remote
