// The SQL expression language of filters and projections (DESIGN.md, decision 6): parsing
// into arrow::compute::Expression, binding to a schema, and evaluation on a batch.
//
// All functions are thread-safe (they share no mutable state) and never throw.
// Expressions are immutable values that share their nodes; they stay valid as long as
// they are held.
#pragma once

#include <arrow/array.h>
#include <arrow/compute/expression.h>
#include <arrow/record_batch.h>
#include <arrow/result.h>
#include <arrow/type.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace riffledb {

/// The maximum nesting of an expression (parentheses, NOT, unary minus, function calls
/// and the depth of the resulting tree). Deeper input is rejected with Invalid, never a
/// crash.
inline constexpr int kMaxExpressionDepth = 256;

/// The name of the pseudo-function that `a % b` parses to. It has no Arrow kernel:
/// BindExpression lowers it to a composition of kernels once the operand types are known
/// (remainder with the sign of the dividend, like C++ and SQL).
inline constexpr const char kModFunctionName[] = "riffledb_mod";

/// Parses a SQL scalar expression (a filter or a projection) into an unbound Expression
/// whose field references are by name (`a`, nested `s.x`).
///
/// The language is the DataFusion-flavoured subset LanceDB users write; see
/// cpp/src/riffledb/expr/README.md for the grammar. Errors are Invalid with a message
/// "Invalid filter '<excerpt>' at position N: <reason>", N being the 1-based byte
/// position in `sql` of the offending token (`sql.size() + 1` for the end of the input).
arrow::Result<arrow::compute::Expression> ParseExpression(std::string_view sql);

/// Binds a parsed expression to `schema`: resolves columns, lowers `%`, casts literals
/// to the type of the column they are compared with when that is lossless (so that
/// `uint64_col > 5` and `ts_col > '2024-01-01'` work), and looks up kernels.
///
/// Errors (all Invalid): an unknown column names it and lists the available ones
/// ("Column 'foo' does not exist; available columns: a, b"); an ambiguous column names
/// it; a type error ("Type error in <expr>: ...") gives Arrow's reason.
arrow::Result<arrow::compute::Expression> BindExpression(
    const arrow::compute::Expression& expr, const arrow::Schema& schema);

/// Names of the top-level columns `expr` (bound or not) references, deduplicated, in
/// order of first use (a nested reference `s.x` names `s`).
std::vector<std::string> ReferencedColumns(const arrow::compute::Expression& expr);

/// Evaluates a bound boolean filter on `batch`, whose schema must be the one it was bound
/// to. Null and false both mean "not selected"; a scalar result is broadcast. Returns a
/// BooleanArray of batch.num_rows() values without nulls.
///
/// Errors: Invalid("Filter must be a boolean expression, got <type>") for a non-boolean
/// expression, Invalid for an unbound expression or a batch that does not match the bound
/// schema, and evaluation errors (e.g. Invalid "divide by zero").
arrow::Result<std::shared_ptr<arrow::BooleanArray>> EvaluateFilter(
    const arrow::compute::Expression& bound, const arrow::RecordBatch& batch);

/// Evaluates a bound expression on `batch` as an array of batch.num_rows() values (a
/// scalar result is broadcast). Same error contract as EvaluateFilter, less the type
/// check.
arrow::Result<std::shared_ptr<arrow::Array>> EvaluateExpression(
    const arrow::compute::Expression& bound, const arrow::RecordBatch& batch);

}  // namespace riffledb
