// BindExpression, ReferencedColumns and evaluation: what happens to a parsed expression
// once a schema or a batch is known.
#include <arrow/array/util.h>
#include <arrow/compute/api_scalar.h>
#include <arrow/compute/cast.h>
#include <arrow/compute/exec.h>
#include <arrow/scalar.h>
#include <arrow/util/decimal.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "riffledb/expr/parser.h"
#include "riffledb/util/arrow_init.h"

namespace riffledb {

namespace {

namespace cp = arrow::compute;
using arrow::Result;
using arrow::Status;
using cp::Expression;

std::string JoinNames(const arrow::FieldVector& fields) {
  std::string out;
  for (const auto& field : fields) {
    if (!out.empty()) out += ", ";
    out += field->name();
  }
  return out.empty() ? "(none)" : out;
}

std::string RefText(const arrow::FieldRef& ref) {
  if (const std::string* name = ref.name()) return *name;
  if (const auto* parts = ref.nested_refs()) {
    std::string out;
    for (const auto& part : *parts) {
      if (!out.empty()) out += ".";
      out += RefText(part);
    }
    return out;
  }
  return ref.ToString();
}

// Checks that `ref` names exactly one field of `schema`, with a message that says which
// part is missing and what exists instead.
Status CheckColumn(const arrow::FieldRef& ref, const arrow::Schema& schema) {
  std::vector<arrow::FieldRef> parts;
  if (const auto* nested = ref.nested_refs()) {
    parts = *nested;
  } else {
    parts = {ref};
  }
  arrow::FieldVector fields = schema.fields();
  std::string path;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string* name = parts[i].name();
    if (name == nullptr) {  // a positional reference: let Arrow judge it
      ARROW_ASSIGN_OR_RAISE(auto match, ref.FindOne(schema));
      return Status::OK();
    }
    std::shared_ptr<arrow::Field> found;
    int matches = 0;
    for (const auto& field : fields) {
      if (field->name() == *name) {
        found = field;
        ++matches;
      }
    }
    if (matches == 0) {
      if (i == 0) {
        return Status::Invalid("Column '", *name, "' does not exist; available columns: ",
                               JoinNames(fields));
      }
      return Status::Invalid("Field '", *name, "' does not exist in struct column '",
                             path, "'; available fields: ", JoinNames(fields));
    }
    if (matches > 1) {
      return Status::Invalid("Column '", path.empty() ? "" : path + ".", *name,
                             "' is ambiguous: ", matches, " fields have that name");
    }
    path += (path.empty() ? "" : ".") + *name;
    if (i + 1 < parts.size()) {
      if (found->type()->id() != arrow::Type::STRUCT) {
        return Status::Invalid("Column '", path, "' is not a struct (it is ",
                               found->type()->ToString(), ") and has no field '",
                               RefText(parts[i + 1]), "'");
      }
      fields = found->type()->fields();
    }
  }
  return Status::OK();
}

Result<std::shared_ptr<arrow::DataType>> TypeOf(const Expression& expr,
                                                const arrow::Schema& schema) {
  ARROW_ASSIGN_OR_RAISE(Expression bound, expr.Bind(schema));
  if (bound.type() == nullptr) return Status::Invalid("untyped expression");
  return bound.type()->GetSharedPtr();
}

bool IsArithmetic(const std::string& name) {
  return name == "add_checked" || name == "subtract_checked" ||
         name == "multiply_checked" || name == "divide_checked" ||
         name == kModFunctionName;
}

bool IsKleene(const std::string& name) {
  return name == "and_kleene" || name == "or_kleene" || name == "invert";
}

// Mirrors a comparison so that its operands can be swapped.
std::string Mirror(const std::string& name) {
  if (name == "less") return "greater";
  if (name == "less_equal") return "greater_equal";
  if (name == "greater") return "less";
  if (name == "greater_equal") return "less_equal";
  return name;
}

// `unsigned_column <op> negative_literal` is decided by the sign alone; Arrow would cast
// both to int64 and fail on values above INT64_MAX. Rewritten as a comparison with 0u,
// which keeps nulls null: u > -1 is u >= 0u (true), u < -1 is u < 0u (false).
std::optional<Expression> CompareUnsignedWithNegative(const std::string& name,
                                                      const Expression& column,
                                                      const Expression& literal,
                                                      const arrow::Schema& schema) {
  const arrow::Datum* lit = literal.literal();
  if (lit == nullptr || !lit->is_scalar() || !lit->scalar()->is_valid ||
      lit->type()->id() != arrow::Type::INT64 ||
      static_cast<const arrow::Int64Scalar&>(*lit->scalar()).value >= 0) {
    return std::nullopt;
  }
  auto type = TypeOf(column, schema);
  if (!type.ok() || !arrow::is_unsigned_integer((*type)->id())) return std::nullopt;
  auto zero = arrow::MakeScalar(*type, 0);
  if (!zero.ok()) return std::nullopt;
  const bool always = name == "greater" || name == "greater_equal" || name == "not_equal";
  return cp::call(always ? "greater_equal" : "less", {column, cp::literal(*zero)});
}

bool IsComparison(const std::string& name) {
  return name == "equal" || name == "not_equal" || name == "less" ||
         name == "less_equal" || name == "greater" || name == "greater_equal";
}

// A decimal literal of the width of `decimal_type` (128 or 256 bits) holding exactly the
// number `scalar` (an int64 or a double) holds, with the smallest precision and scale
// that do; nullopt when there is none (NaN, infinity, a double too large or too small for
// the width).
//
// Arrow would cast an int64 literal to decimal(19, 0), widen both operands to the common
// scale, and fail ("Precision is not great enough") when the result passes 38 digits.
// The smallest exact decimal never widens the column more than its value needs. A double
// is written in its shortest round-trip form first, so `0.1` is the decimal 0.1 the user
// wrote, not 0.1000000000000000055511151231257827.
std::optional<arrow::Datum> ExactDecimalLiteral(const arrow::Scalar& scalar,
                                                const arrow::DataType& decimal_type) {
  std::string text;
  if (scalar.type->id() == arrow::Type::INT64) {
    text = std::to_string(static_cast<const arrow::Int64Scalar&>(scalar).value);
  } else if (scalar.type->id() == arrow::Type::DOUBLE) {
    const double value = static_cast<const arrow::DoubleScalar&>(scalar).value;
    if (!std::isfinite(value)) return std::nullopt;
    char buffer[64];
    auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
    if (error != std::errc()) return std::nullopt;
    text.assign(buffer, end);
  } else {
    return std::nullopt;
  }
  int32_t precision = 0;
  int32_t scale = 0;
  const bool wide = decimal_type.id() == arrow::Type::DECIMAL256;
  arrow::Decimal256 value256;
  arrow::Decimal128 value128;
  const arrow::Status parsed =
      wide ? arrow::Decimal256::FromString(text, &value256, &precision, &scale)
           : arrow::Decimal128::FromString(text, &value128, &precision, &scale);
  if (!parsed.ok() || scale < 0) return std::nullopt;
  // "0" parses with precision 0, which no decimal type has.
  precision = std::max({precision, scale, 1});
  auto type = wide ? arrow::Decimal256Type::Make(precision, scale)
                   : arrow::Decimal128Type::Make(precision, scale);
  if (!type.ok()) return std::nullopt;  // more digits than the width holds
  if (wide) {
    return arrow::Datum(std::make_shared<arrow::Decimal256Scalar>(value256, *type));
  }
  return arrow::Datum(std::make_shared<arrow::Decimal128Scalar>(value128, *type));
}

// Rewrites `*literal` (when it is one) to the type of `other` when that cast is lossless,
// so that a comparison runs in the column's type: uint64 vs an int64 literal, timestamp
// vs a string, large_string vs a string... Otherwise leaves it to Arrow's implicit casts.
void CoerceLiteral(const Expression& other, Expression* literal,
                   const arrow::Schema& schema, bool numbers_only = false) {
  const arrow::Datum* lit = literal->literal();
  if (lit == nullptr || !lit->is_scalar() || !lit->scalar()->is_valid) return;
  if (other.literal() != nullptr) return;
  auto maybe_type = TypeOf(other, schema);
  if (!maybe_type.ok()) return;  // the final Bind reports it
  const std::shared_ptr<arrow::DataType> target = *maybe_type;
  const std::shared_ptr<arrow::Scalar>& scalar = lit->scalar();
  const arrow::Type::type from = scalar->type->id();
  const arrow::Type::type to = target->id();
  if (scalar->type->Equals(*target)) return;

  if (arrow::is_decimal(to)) {
    // An integer literal becomes a decimal next to a decimal column, in arithmetic too
    // (`price * 2`). A float literal does only in comparisons, where the decimal compares
    // exactly (`price = 0.1`); one with no exact decimal form (1e300) compares in
    // float64. In arithmetic a float keeps Arrow's float64 result.
    if (from != arrow::Type::INT64 && (from != arrow::Type::DOUBLE || numbers_only))
      return;
    auto decimal = ExactDecimalLiteral(*scalar, *target);
    if (numbers_only) {
      if (decimal) *literal = cp::literal(*std::move(decimal));
      return;
    }
    // A comparison runs in the decimal both sides fit: integer digits and scale of the
    // wider side. Past the width's 38 (76) digits (`price > 1e37` on decimal(5, 2)) it
    // compares in float64 instead of failing to bind.
    if (decimal) {
      const auto& column = static_cast<const arrow::DecimalType&>(*target);
      const auto& value = static_cast<const arrow::DecimalType&>(*decimal->type());
      const int32_t scale = std::max(column.scale(), value.scale());
      const int32_t digits = std::max(column.precision() - column.scale(),
                                      value.precision() - value.scale()) +
                             scale;
      const int32_t max_digits = to == arrow::Type::DECIMAL256
                                     ? arrow::Decimal256Type::kMaxPrecision
                                     : arrow::Decimal128Type::kMaxPrecision;
      if (digits <= max_digits) {
        *literal = cp::literal(*std::move(decimal));
        return;
      }
    }
    // Rounds a 19-digit integer, as any float64 comparison with it does.
    auto as_double =
        cp::Cast(arrow::Datum(scalar), cp::CastOptions::Unsafe(arrow::float64()));
    if (as_double.ok()) *literal = cp::literal(*std::move(as_double));
    return;
  }
  const bool temporal_target = to == arrow::Type::DATE32 || to == arrow::Type::DATE64 ||
                               to == arrow::Type::TIMESTAMP;
  const bool temporal_source = from == arrow::Type::STRING ||
                               from == arrow::Type::DATE32 ||
                               from == arrow::Type::TIMESTAMP;
  bool wanted = false;
  if (arrow::is_integer(to) && from == arrow::Type::INT64) {
    wanted = true;  // a safe cast fails (and we skip) when the value does not fit
  } else if (arrow::is_floating(to) && from == arrow::Type::INT64) {
    wanted = true;
  } else if (numbers_only) {
    return;
  } else if (temporal_target && temporal_source) {
    wanted = true;
  } else if ((to == arrow::Type::LARGE_STRING || to == arrow::Type::STRING_VIEW) &&
             from == arrow::Type::STRING) {
    wanted = true;
  }
  if (!wanted) return;

  arrow::Datum value(scalar);
  if (to == arrow::Type::TIMESTAMP && from == arrow::Type::STRING) {
    // Parse as a naive timestamp first: a zone-aware column then reads it as UTC.
    const auto& ts = static_cast<const arrow::TimestampType&>(*target);
    auto naive = cp::Cast(value, arrow::timestamp(ts.unit()), cp::CastOptions::Safe());
    if (!naive.ok()) return;
    value = *naive;
  }
  auto cast = cp::Cast(value, target, cp::CastOptions::Safe());
  if (!cast.ok()) return;
  if (arrow::is_floating(to)) {
    // Only when the integer survives the round trip.
    auto back = cp::Cast(*cast, arrow::int64(), cp::CastOptions::Safe());
    if (!back.ok() || !back->scalar()->Equals(*scalar)) return;
  }
  *literal = cp::literal(*cast);
}

// `arg` of a call, read as its large_ type when it is a string_view or binary_view
// column: Arrow's kernels mostly lack view types (IN, LIKE, lower(), length(), ...).
// A column alone (a projection of it) keeps its type.
Expression WithoutView(Expression arg, const arrow::Schema& schema) {
  if (arg.field_ref() == nullptr) return arg;
  auto type = TypeOf(arg, schema);
  if (type.ok() && (*type)->id() == arrow::Type::STRING_VIEW) {
    return cp::call("cast", {std::move(arg)}, cp::CastOptions::Safe(arrow::large_utf8()));
  }
  if (type.ok() && (*type)->id() == arrow::Type::BINARY_VIEW) {
    return cp::call("cast", {std::move(arg)},
                    cp::CastOptions::Safe(arrow::large_binary()));
  }
  return arg;
}

// Lowers `%` and coerces literals, bottom-up. The result is unbound.
Result<Expression> Lower(const Expression& expr, const arrow::Schema& schema) {
  const Expression::Call* call = expr.call();
  if (call == nullptr) return expr;
  // These read validity only, for views too: no copy of the column's bytes.
  const bool any_type = call->function_name == "is_null" ||
                        call->function_name == "is_valid" ||
                        call->function_name == "true_unless_null";
  std::vector<Expression> args;
  args.reserve(call->arguments.size());
  for (const Expression& arg : call->arguments) {
    ARROW_ASSIGN_OR_RAISE(Expression lowered, Lower(arg, schema));
    args.push_back(any_type ? std::move(lowered)
                            : WithoutView(std::move(lowered), schema));
  }
  if (call->function_name == kModFunctionName) {
    if (args.size() != 2) return Status::Invalid("% takes two operands");
    CoerceLiteral(args[0], &args[1], schema, /*numbers_only=*/true);
    CoerceLiteral(args[1], &args[0], schema, /*numbers_only=*/true);
    ARROW_ASSIGN_OR_RAISE(auto left, TypeOf(args[0], schema));
    ARROW_ASSIGN_OR_RAISE(auto right, TypeOf(args[1], schema));
    // a % b = a - b * trunc(a / b); integer division already truncates.
    Expression quotient = cp::call("divide_checked", {args[0], args[1]});
    if (!arrow::is_integer(left->id()) || !arrow::is_integer(right->id())) {
      quotient = cp::call("trunc", {std::move(quotient)});
    }
    return cp::call(
        "subtract_checked",
        {args[0], cp::call("multiply_checked", {args[1], std::move(quotient)})});
  }
  if (call->function_name == "cast" && args.size() == 1) {
    // CAST(float AS int) truncates like SQL engines do; a NaN or an out-of-range value
    // still fails the safe cast.
    const auto* options = static_cast<const cp::CastOptions*>(call->options.get());
    auto from = TypeOf(args[0], schema);
    if (options != nullptr && options->to_type.type != nullptr && from.ok() &&
        arrow::is_floating((*from)->id()) && arrow::is_integer(options->to_type.id())) {
      return cp::call("cast", {cp::call("trunc", {args[0]})}, call->options);
    }
  }
  if (call->function_name == "is_in" && args.size() == 1 && call->options != nullptr) {
    // Arrow casts the value set to the operand's decimal type by rescaling, which fails
    // (or would round 0.125 into 0.13). Beside a decimal, IN is the OR of equalities,
    // each literal made an exact decimal as a comparison does; Kleene OR keeps IN's
    // nulls (a null operand, or no match with a NULL in the list, is null).
    auto type = TypeOf(args[0], schema);
    const auto& set = static_cast<const cp::SetLookupOptions&>(*call->options).value_set;
    if (type.ok() && arrow::is_decimal((*type)->id()) && set.is_array() &&
        set.length() > 0) {
      std::vector<Expression> terms;
      const auto items = set.make_array();
      for (int64_t i = 0; i < items->length(); ++i) {
        ARROW_ASSIGN_OR_RAISE(auto item, items->GetScalar(i));
        if (!item->is_valid) item = arrow::MakeNullScalar(*type);
        Expression value = cp::literal(std::move(item));
        CoerceLiteral(args[0], &value, schema);
        terms.push_back(cp::call("equal", {args[0], std::move(value)}));
      }
      // Balanced, so that a long list stays shallow.
      while (terms.size() > 1) {
        std::vector<Expression> next;
        for (size_t i = 0; i + 1 < terms.size(); i += 2) {
          next.push_back(cp::call("or_kleene", {terms[i], terms[i + 1]}));
        }
        if (terms.size() % 2 == 1) next.push_back(terms.back());
        terms = std::move(next);
      }
      return terms.front();
    }
  }
  if (IsComparison(call->function_name) && args.size() == 2) {
    if (auto rewritten =
            CompareUnsignedWithNegative(call->function_name, args[0], args[1], schema)) {
      return *rewritten;
    }
    if (auto rewritten = CompareUnsignedWithNegative(Mirror(call->function_name), args[1],
                                                     args[0], schema)) {
      return *rewritten;
    }
    CoerceLiteral(args[0], &args[1], schema);
    CoerceLiteral(args[1], &args[0], schema);
  }
  if (IsArithmetic(call->function_name) && args.size() == 2) {
    CoerceLiteral(args[0], &args[1], schema, /*numbers_only=*/true);
    CoerceLiteral(args[1], &args[0], schema, /*numbers_only=*/true);
  }
  if (IsKleene(call->function_name)) {
    // Arrow's Kleene kernels take no null-typed input: a bare NULL there is a null bool.
    for (Expression& arg : args) {
      if (arg.literal() != nullptr && arg.type() != nullptr &&
          arg.type()->id() == arrow::Type::NA) {
        arg = cp::literal(arrow::MakeNullScalar(arrow::boolean()));
      }
    }
  }
  return cp::call(call->function_name, std::move(args), call->options);
}

// The smallest subexpression of `expr` that fails to bind, to point a type error at it.
Expression Culprit(const Expression& expr, const arrow::Schema& schema) {
  if (const Expression::Call* call = expr.call()) {
    for (const Expression& arg : call->arguments) {
      if (!arg.Bind(schema).ok()) return Culprit(arg, schema);
    }
  }
  return expr;
}

void CollectColumns(const Expression& expr, std::vector<std::string>* out,
                    std::unordered_set<std::string>* seen) {
  if (const arrow::FieldRef* ref = expr.field_ref()) {
    const std::string* name = ref->name();
    if (name == nullptr) {
      if (const auto* parts = ref->nested_refs(); parts != nullptr && !parts->empty()) {
        name = parts->front().name();
      }
    }
    if (name != nullptr && seen->insert(*name).second) out->push_back(*name);
    return;
  }
  if (const Expression::Call* call = expr.call()) {
    for (const Expression& arg : call->arguments) CollectColumns(arg, out, seen);
  }
}

// Checks that every column the bound expression reads exists in `batch` with the bound
// type, so that evaluating on a mismatched batch fails instead of reading out of bounds.
Status CheckBatch(const Expression& expr, const arrow::RecordBatch& batch) {
  if (const Expression::Parameter* param = expr.parameter()) {
    if (param->type.id() == arrow::Type::NA && param->indices.empty())
      return Status::OK();
    if (param->indices.empty())
      return Status::Invalid("unresolved column in ", expr.ToString());
    std::shared_ptr<arrow::DataType> type;
    for (size_t i = 0; i < param->indices.size(); ++i) {
      const int index = param->indices[i];
      const int n = i == 0 ? batch.num_columns() : type->num_fields();
      if (i > 0 && type->id() != arrow::Type::STRUCT) {
        return Status::Invalid("Column ", expr.ToString(), " does not match the batch");
      }
      if (index < 0 || index >= n) {
        return Status::Invalid("Column ", expr.ToString(),
                               " does not exist in the batch; bind to its schema");
      }
      type = i == 0 ? batch.schema()->field(index)->type() : type->field(index)->type();
    }
    if (param->type.type == nullptr || !type->Equals(*param->type.type)) {
      return Status::Invalid("Column ", expr.ToString(), " is ", type->ToString(),
                             " in the batch but ",
                             param->type.type ? param->type.type->ToString() : "untyped",
                             " in the bound expression; bind to the batch's schema");
    }
    return Status::OK();
  }
  if (const Expression::Call* call = expr.call()) {
    for (const Expression& arg : call->arguments)
      ARROW_RETURN_NOT_OK(CheckBatch(arg, batch));
  }
  return Status::OK();
}

}  // namespace

arrow::Result<arrow::compute::Expression> BindExpression(
    const arrow::compute::Expression& expr, const arrow::Schema& schema) {
  ARROW_RETURN_NOT_OK(EnsureArrowComputeInitialized());
  if (!expr.is_valid()) return Status::Invalid("cannot bind an empty expression");
  for (const arrow::FieldRef& ref : cp::FieldsInExpression(expr)) {
    ARROW_RETURN_NOT_OK(CheckColumn(ref, schema));
  }
  auto lowered = Lower(expr, schema);
  Result<Expression> bound =
      lowered.ok() ? lowered->Bind(schema) : Result<Expression>(lowered.status());
  if (bound.ok()) return bound;
  const Expression culprit = Culprit(lowered.ok() ? *lowered : expr, schema);
  return Status::Invalid("Type error in ", culprit.ToString(), ": ",
                         bound.status().message());
}

std::vector<std::string> ReferencedColumns(const arrow::compute::Expression& expr) {
  std::vector<std::string> out;
  std::unordered_set<std::string> seen;
  if (expr.is_valid()) CollectColumns(expr, &out, &seen);
  return out;
}

arrow::Result<std::shared_ptr<arrow::Array>> EvaluateExpression(
    const arrow::compute::Expression& bound, const arrow::RecordBatch& batch) {
  ARROW_RETURN_NOT_OK(EnsureArrowComputeInitialized());
  if (!bound.is_valid() || !bound.IsBound()) {
    return Status::Invalid("Expression must be bound before evaluation",
                           bound.is_valid() ? ": " + bound.ToString() : "");
  }
  ARROW_RETURN_NOT_OK(CheckBatch(bound, batch));
  ARROW_ASSIGN_OR_RAISE(arrow::Datum result,
                        cp::ExecuteScalarExpression(bound, cp::ExecBatch(batch)));
  if (result.is_scalar()) {
    return arrow::MakeArrayFromScalar(*result.scalar(), batch.num_rows());
  }
  if (!result.is_array() || result.length() != batch.num_rows()) {
    return Status::Invalid("Expression ", bound.ToString(),
                           " did not give one value per row");
  }
  return result.make_array();
}

arrow::Result<std::shared_ptr<arrow::BooleanArray>> EvaluateFilter(
    const arrow::compute::Expression& bound, const arrow::RecordBatch& batch) {
  if (bound.is_valid() && bound.IsBound()) {
    const arrow::DataType* type = bound.type();
    // A bare NULL (type null) selects nothing, as in SQL.
    if (type == nullptr ||
        (type->id() != arrow::Type::BOOL && type->id() != arrow::Type::NA)) {
      return Status::Invalid("Filter must be a boolean expression, got ",
                             type ? type->ToString() : "an untyped expression");
    }
  }
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Array> values,
                        EvaluateExpression(bound, batch));
  if (values->type_id() == arrow::Type::NA) {
    ARROW_ASSIGN_OR_RAISE(values, arrow::MakeArrayFromScalar(arrow::BooleanScalar(false),
                                                             batch.num_rows()));
  } else if (values->null_count() > 0) {
    ARROW_ASSIGN_OR_RAISE(arrow::Datum filled,
                          cp::CallFunction("coalesce", {values, arrow::Datum(false)}));
    values = filled.make_array();
  }
  return std::static_pointer_cast<arrow::BooleanArray>(values);
}

}  // namespace riffledb
