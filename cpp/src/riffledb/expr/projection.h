// The one projection engine: output columns and filters bound once to a table schema,
// with the columns they read, and applied to every batch of a scan, a take or a
// permutation read.
//
// Projection and Filter are immutable and thread-safe once made; bind once, then share
// them (std::shared_ptr<const ...>) across reads and threads. What they return does not
// depend on them.
#pragma once

#include <arrow/array.h>
#include <arrow/compute/expression.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace riffledb {

/// The hidden row id column every table read can produce: `fragment_id << 32 |
/// row_in_fragment` (uint64, never null).
inline constexpr char kRowIdColumn[] = "_rowid";
/// The hidden row offset column: the row's position in its version's scan order (uint64,
/// never null).
inline constexpr char kRowOffsetColumn[] = "_rowoffset";

/// The columns a bound projection or filter reads, in the order of its input batch: the
/// table columns (indexes into the schema it was bound to, ascending), then `_rowid` if
/// `row_id`, then `_rowoffset` if `row_offset`.
struct NeededColumns {
  std::vector<int> columns;
  bool row_id = false;
  bool row_offset = false;

  /// Number of columns of the input batch.
  int size() const {
    return static_cast<int>(columns.size()) + (row_id ? 1 : 0) + (row_offset ? 1 : 0);
  }
};

/// One output column: its name and its source. A source that names a column of the
/// schema (or `_rowid`, `_rowoffset`) passes that column through without a copy, whatever
/// characters the name holds; any other source is a SQL expression.
using OutputColumn = std::pair<std::string, std::string>;

/// Output columns bound to a table schema: which columns a read needs, the output schema,
/// and how to build an output batch from the needed columns.
///
/// The input of Project() is the needed columns only (input_schema(), see NeededColumns),
/// so a read gathers or copies nothing else. Plain columns pass through; expressions are
/// evaluated on the input. The output schema keeps the table schema's metadata.
class Projection {
 public:
  /// Every column of `schema`, in order; then `_rowid` if `with_row_id`.
  static arrow::Result<std::shared_ptr<const Projection>> All(
      std::shared_ptr<arrow::Schema> schema, bool with_row_id = false);

  /// Plain columns by name, in the order given (`_rowid`, `_rowoffset` allowed; no SQL);
  /// then `_rowid` if `with_row_id`. Empty `names`: every column, as All().
  /// Invalid("Column 'x' does not exist; available columns: a, b") for an unknown name.
  static arrow::Result<std::shared_ptr<const Projection>> Columns(
      std::shared_ptr<arrow::Schema> schema, std::span<const std::string> names,
      bool with_row_id = false);

  /// Output columns (name, source), in order; then `_rowid` if `with_row_id`. Empty
  /// `outputs`: every column, as All(). Errors are the expression language's (parse
  /// errors with their position, "Column 'x' does not exist; available columns: ...",
  /// type errors).
  static arrow::Result<std::shared_ptr<const Projection>> Make(
      std::shared_ptr<arrow::Schema> schema, std::span<const OutputColumn> outputs,
      bool with_row_id = false);

  /// The schema this projection was bound to.
  const std::shared_ptr<arrow::Schema>& schema() const { return schema_; }
  const NeededColumns& needed() const { return needed_; }
  /// The schema of Project's input: the needed columns, in NeededColumns order.
  const std::shared_ptr<arrow::Schema>& input_schema() const { return input_schema_; }
  const std::shared_ptr<arrow::Schema>& output_schema() const { return output_schema_; }
  /// True if the output is exactly the input (same columns, same order): Project only
  /// relabels it.
  bool pass_through() const { return pass_through_; }
  /// True if the output is every column of schema() in order, nothing else.
  bool all_columns() const { return all_columns_; }

  /// The output rows for `inputs`, the needed columns (input_schema()) of `num_rows`
  /// rows. Errors: Invalid for a wrong number of columns, and evaluation errors.
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Project(arrow::ArrayVector inputs,
                                                             int64_t num_rows) const;
  /// The same for a batch of input_schema() that the caller owns (Project reads its
  /// columns: never pass a batch other threads read, see table/snapshot.h).
  arrow::Result<std::shared_ptr<arrow::RecordBatch>> Project(
      const arrow::RecordBatch& input) const;

 private:
  struct Output {
    int input = -1;  // index of a passed-through input column, or -1 for `expr`
    arrow::compute::Expression expr;
    std::string sql;  // `expr` as the user wrote it, for errors
  };
  Projection() = default;

  std::shared_ptr<arrow::Schema> schema_;
  NeededColumns needed_;
  std::shared_ptr<arrow::Schema> input_schema_;
  std::shared_ptr<arrow::Schema> output_schema_;
  std::vector<Output> outputs_;
  bool pass_through_ = false;
  bool all_columns_ = false;
};

/// A SQL boolean expression bound to a table schema, with the columns it reads. Rows
/// where it is null or false are not selected.
class Filter {
 public:
  /// Parses and binds `sql`. Errors are the expression language's (parse position,
  /// unknown column, type error).
  static arrow::Result<std::shared_ptr<const Filter>> Make(
      std::shared_ptr<arrow::Schema> schema, std::string_view sql);
  /// Binds an already parsed expression; `sql` is its text for error messages (empty:
  /// Arrow's rendering of `parsed`).
  static arrow::Result<std::shared_ptr<const Filter>> Bind(
      std::shared_ptr<arrow::Schema> schema, arrow::compute::Expression parsed,
      std::string sql = "");

  /// The same expression bound to another schema (a commit that retries on a newer
  /// version binds again without parsing).
  arrow::Result<std::shared_ptr<const Filter>> Rebind(
      std::shared_ptr<arrow::Schema> schema) const;

  const std::shared_ptr<arrow::Schema>& schema() const { return schema_; }
  /// The filter's text, as given to Make.
  const std::string& sql() const { return sql_; }
  const NeededColumns& needed() const { return needed_; }
  const std::shared_ptr<arrow::Schema>& input_schema() const { return input_schema_; }
  /// The bound expression (its field references index input_schema()).
  const arrow::compute::Expression& expression() const { return bound_; }

  /// The selection on `input` (a batch of input_schema()): a BooleanArray without nulls.
  /// Errors: Invalid("Filter must be a boolean expression, got <type>") and evaluation
  /// errors (divide by zero, overflow), which name the filter: "Filter 'x / y > 1'
  /// failed: divide by zero".
  arrow::Result<std::shared_ptr<arrow::BooleanArray>> Evaluate(
      const arrow::RecordBatch& input) const;

 private:
  Filter() = default;

  std::shared_ptr<arrow::Schema> schema_;
  std::string sql_;
  arrow::compute::Expression parsed_;
  arrow::compute::Expression bound_;
  NeededColumns needed_;
  std::shared_ptr<arrow::Schema> input_schema_;
};

/// True if `a` and `b` are the same schema (the same object, or equal fields).
bool SameSchema(const std::shared_ptr<arrow::Schema>& a,
                const std::shared_ptr<arrow::Schema>& b);

/// The field of a hidden column (`_rowid` or `_rowoffset`): uint64, not nullable.
std::shared_ptr<arrow::Field> HiddenColumnField(const std::string& name);

}  // namespace riffledb
