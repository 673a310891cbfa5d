// A recursive-descent parser of the expression language (grammar in README.md). Each
// precedence level is one method; AND/OR chains are built as balanced trees so that a
// long generated filter does not become a deep tree.
#include "riffledb/expr/parser.h"

#include <arrow/array/builder_base.h>
#include <arrow/compute/api_scalar.h>
#include <arrow/compute/cast.h>
#include <arrow/scalar.h>
#include <arrow/util/value_parsing.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "riffledb/expr/lexer_internal.h"
#include "riffledb/util/arrow_init.h"

namespace riffledb {

namespace {

namespace cp = arrow::compute;
using arrow::Result;
using arrow::Status;
using cp::Expression;
using internal::Token;
using internal::TokenKind;

// An expression with the depth of its tree, which is bounded by kMaxExpressionDepth.
struct Node {
  Expression expr;
  int depth = 1;
};

// How a function of the language maps onto Arrow.
enum class FunctionKind {
  kPlain,        // arrow_name(args...)
  kPattern,      // arrow_name(arg0) with MatchSubstringOptions(arg1, a string literal)
  kRound,        // round(x [, digits])
  kConcat,       // binary_join_element_wise(args..., "") skipping nulls
  kElementWise,  // max/min_element_wise(args...) skipping nulls
};

struct FunctionSpec {
  std::string_view name;
  std::string_view arrow_name;
  int min_args;
  int max_args;  // -1: any number
  FunctionKind kind = FunctionKind::kPlain;
};

// Sorted by name: the list is shown to users when they call an unknown function.
constexpr FunctionSpec kFunctions[] = {
    {"abs", "abs_checked", 1, 1},
    {"array_length", "list_value_length", 1, 1},
    {"ceil", "ceil", 1, 1},
    {"ceiling", "ceil", 1, 1},
    {"char_length", "utf8_length", 1, 1},
    {"character_length", "utf8_length", 1, 1},
    {"coalesce", "coalesce", 1, -1},
    {"concat", "binary_join_element_wise", 1, -1, FunctionKind::kConcat},
    {"contains", "match_substring", 2, 2, FunctionKind::kPattern},
    {"ends_with", "ends_with", 2, 2, FunctionKind::kPattern},
    {"exp", "exp", 1, 1},
    {"floor", "floor", 1, 1},
    {"greatest", "max_element_wise", 1, -1, FunctionKind::kElementWise},
    {"is_nan", "is_nan", 1, 1},
    {"least", "min_element_wise", 1, -1, FunctionKind::kElementWise},
    {"length", "utf8_length", 1, 1},
    {"ln", "ln", 1, 1},
    {"log10", "log10", 1, 1},
    {"lower", "utf8_lower", 1, 1},
    {"ltrim", "utf8_ltrim_whitespace", 1, 1},
    {"pow", "power", 2, 2},
    {"power", "power", 2, 2},
    {"regexp_like", "match_substring_regex", 2, 2, FunctionKind::kPattern},
    {"regexp_match", "match_substring_regex", 2, 2, FunctionKind::kPattern},
    {"round", "round", 1, 2, FunctionKind::kRound},
    {"rtrim", "utf8_rtrim_whitespace", 1, 1},
    {"sqrt", "sqrt", 1, 1},
    {"starts_with", "starts_with", 2, 2, FunctionKind::kPattern},
    {"trim", "utf8_trim_whitespace", 1, 1},
    {"trunc", "trunc", 1, 1},
    {"upper", "utf8_upper", 1, 1},
};

// round(x, digits) accepts this many digits either way (beyond, a float64 has none left).
constexpr int64_t kMaxRoundDigits = 15;

// Keywords that cannot be column names unless quoted.
constexpr std::string_view kReserved[] = {"AND",     "OR",   "NOT",   "IS", "IN",
                                          "BETWEEN", "LIKE", "ILIKE", "AS"};

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string KnownFunctionList() {
  std::string out;
  for (const FunctionSpec& f : kFunctions) {
    if (!out.empty()) out += ", ";
    out += f.name;
  }
  return out;
}

// The string value of a non-null string literal, or nullopt.
std::optional<std::string> StringLiteral(const Expression& expr) {
  const arrow::Datum* lit = expr.literal();
  if (lit == nullptr || !lit->is_scalar() || !lit->scalar()->is_valid)
    return std::nullopt;
  if (lit->type()->id() != arrow::Type::STRING) return std::nullopt;
  return std::string(static_cast<const arrow::StringScalar&>(*lit->scalar()).view());
}

// Builds the value set of `x IN (v1, v2, ...)` when every vi is a literal of one type
// (ints and floats mix as float64; NULLs join any type). Otherwise returns nullptr and
// the caller falls back to a chain of equalities.
Result<std::shared_ptr<arrow::Array>> LiteralValueSet(const std::vector<Node>& items) {
  std::shared_ptr<arrow::DataType> type;
  bool mixed_numbers = false;
  for (const Node& item : items) {
    const arrow::Datum* lit = item.expr.literal();
    if (lit == nullptr || !lit->is_scalar()) return nullptr;
    const auto& t = lit->scalar()->type;
    if (t->id() == arrow::Type::NA) continue;
    if (type == nullptr) {
      type = t;
    } else if (!type->Equals(*t)) {
      const bool numbers =
          (type->id() == arrow::Type::INT64 || type->id() == arrow::Type::DOUBLE) &&
          (t->id() == arrow::Type::INT64 || t->id() == arrow::Type::DOUBLE);
      if (!numbers) return nullptr;
      mixed_numbers = true;
    }
  }
  if (type == nullptr) return nullptr;  // only NULLs: leave it to the equality chain
  if (mixed_numbers) type = arrow::float64();
  ARROW_ASSIGN_OR_RAISE(auto builder, arrow::MakeBuilder(type));
  for (const Node& item : items) {
    const auto& scalar = item.expr.literal()->scalar();
    if (!scalar->is_valid) {
      ARROW_RETURN_NOT_OK(builder->AppendNull());
    } else if (mixed_numbers && scalar->type->id() == arrow::Type::INT64) {
      const int64_t v = static_cast<const arrow::Int64Scalar&>(*scalar).value;
      ARROW_RETURN_NOT_OK(
          builder->AppendScalar(arrow::DoubleScalar(static_cast<double>(v))));
    } else {
      ARROW_RETURN_NOT_OK(builder->AppendScalar(*scalar));
    }
  }
  return builder->Finish();
}

// CAST checks overflow, truncation and parse errors. (BindExpression truncates floats
// cast to integers first, as SQL engines do: CAST(2.7 AS int) is 2.)
std::shared_ptr<cp::CastOptions> SqlCastOptions(std::shared_ptr<arrow::DataType> type) {
  return std::make_shared<cp::CastOptions>(cp::CastOptions::Safe(std::move(type)));
}

class Parser {
 public:
  Parser(std::string_view text, std::vector<Token> tokens)
      : text_(text), tokens_(std::move(tokens)) {}

  Result<Expression> Parse() {
    if (Peek().kind == TokenKind::kEnd) return Error(Peek(), "the expression is empty");
    ARROW_ASSIGN_OR_RAISE(Node node, ParseOr());
    if (Peek().kind != TokenKind::kEnd) {
      return Error(Peek(),
                   "unexpected " + Peek().Describe() + " after a complete expression");
    }
    return std::move(node.expr);
  }

 private:
  // Counts the recursion of the parser itself (parentheses, NOT, unary minus, arguments).
  class DepthScope {
   public:
    explicit DepthScope(Parser* parser) : parser_(parser) { ++parser_->depth_; }
    ~DepthScope() { --parser_->depth_; }
    DepthScope(const DepthScope&) = delete;
    DepthScope& operator=(const DepthScope&) = delete;

   private:
    Parser* parser_;
  };

  const Token& Peek(size_t ahead = 0) const {
    return tokens_[std::min(index_ + ahead, tokens_.size() - 1)];
  }
  const Token& Next() {
    const Token& tok = tokens_[index_];
    if (index_ + 1 < tokens_.size()) ++index_;
    return tok;
  }
  const Token* Previous() const { return index_ > 0 ? &tokens_[index_ - 1] : nullptr; }

  Status Error(const Token& at, std::string_view reason) const {
    return internal::ParseError(text_, at.pos, reason);
  }

  Status TooDeep(const Token& at) const {
    return Error(at, "the expression is nested too deeply (the limit is " +
                         std::to_string(kMaxExpressionDepth) + " levels)");
  }

  Status CheckDepth(const Token& at) const {
    return depth_ > kMaxExpressionDepth ? TooDeep(at) : Status::OK();
  }

  // "expected an expression after '>'" (+ ", got X"), for a token that cannot start one.
  Status ExpectedExpression(const Token& got) const {
    std::string reason = "expected an expression";
    if (const Token* prev = Previous()) reason += " after " + prev->Describe();
    if (got.kind != TokenKind::kEnd || Previous() == nullptr) {
      reason += ", got " + got.Describe();
    }
    for (std::string_view keyword : kReserved) {
      if (got.IsKeyword(keyword)) {
        reason += " (a keyword: quote a column of that name as `" + got.text + "`)";
        break;
      }
    }
    return Error(got, reason);
  }

  Status Expect(std::string_view op, std::string_view context) {
    if (Peek().IsOperator(op)) {
      Next();
      return Status::OK();
    }
    return Error(Peek(), "expected '" + std::string(op) + "' " + std::string(context) +
                             ", got " + Peek().Describe());
  }

  // A node for `function(children...)`, checking the depth of the tree.
  Result<Node> MakeCall(const Token& at, std::string function, std::vector<Node> children,
                        std::shared_ptr<cp::FunctionOptions> options = nullptr) {
    int depth = 0;
    std::vector<Expression> args;
    args.reserve(children.size());
    for (Node& child : children) {
      depth = std::max(depth, child.depth);
      args.push_back(std::move(child.expr));
    }
    if (depth + 1 > kMaxExpressionDepth) return TooDeep(at);
    return Node{cp::call(std::move(function), std::move(args), std::move(options)),
                depth + 1};
  }

  // Joins `terms` with the associative `function` as a balanced tree.
  Result<Node> Balanced(const Token& at, const std::string& function,
                        std::vector<Node>& terms, size_t begin, size_t end) {
    if (end - begin == 1) return std::move(terms[begin]);
    const size_t mid = begin + (end - begin + 1) / 2;
    ARROW_ASSIGN_OR_RAISE(Node left, Balanced(at, function, terms, begin, mid));
    ARROW_ASSIGN_OR_RAISE(Node right, Balanced(at, function, terms, mid, end));
    return MakeCall(at, function, {std::move(left), std::move(right)});
  }

  // or_expr := and_expr (OR and_expr)*
  Result<Node> ParseOr() {
    DepthScope scope(this);
    ARROW_RETURN_NOT_OK(CheckDepth(Peek()));
    std::vector<Node> terms;
    ARROW_ASSIGN_OR_RAISE(Node first, ParseAnd());
    terms.push_back(std::move(first));
    const Token& at = Peek();
    while (Peek().IsKeyword("OR")) {
      Next();
      ARROW_ASSIGN_OR_RAISE(Node term, ParseAnd());
      terms.push_back(std::move(term));
    }
    return Balanced(at, "or_kleene", terms, 0, terms.size());
  }

  // and_expr := not_expr (AND not_expr)*
  Result<Node> ParseAnd() {
    std::vector<Node> terms;
    ARROW_ASSIGN_OR_RAISE(Node first, ParseNot());
    terms.push_back(std::move(first));
    const Token& at = Peek();
    while (Peek().IsKeyword("AND")) {
      Next();
      ARROW_ASSIGN_OR_RAISE(Node term, ParseNot());
      terms.push_back(std::move(term));
    }
    return Balanced(at, "and_kleene", terms, 0, terms.size());
  }

  // not_expr := NOT not_expr | comparison
  Result<Node> ParseNot() {
    if (!Peek().IsKeyword("NOT")) return ParseComparison();
    const Token& op = Next();
    DepthScope scope(this);
    ARROW_RETURN_NOT_OK(CheckDepth(op));
    ARROW_ASSIGN_OR_RAISE(Node operand, ParseNot());
    return MakeCall(op, "invert", {std::move(operand)});
  }

  static const char* ComparisonFunction(const Token& tok) {
    if (tok.kind != TokenKind::kOperator) return nullptr;
    if (tok.text == "=" || tok.text == "==") return "equal";
    if (tok.text == "!=" || tok.text == "<>") return "not_equal";
    if (tok.text == "<") return "less";
    if (tok.text == "<=") return "less_equal";
    if (tok.text == ">") return "greater";
    if (tok.text == ">=") return "greater_equal";
    return nullptr;
  }

  // comparison := concat ( cmp_op concat | IS [NOT] (NULL|TRUE|FALSE)
  //                      | [NOT] IN '(' list ')' | [NOT] BETWEEN concat AND concat
  //                      | [NOT] (LIKE|ILIKE) string )*
  Result<Node> ParseComparison() {
    ARROW_ASSIGN_OR_RAISE(Node left, ParseConcat());
    while (true) {
      const Token& tok = Peek();
      if (const char* function = ComparisonFunction(tok)) {
        Next();
        ARROW_ASSIGN_OR_RAISE(Node right, ParseConcat());
        ARROW_ASSIGN_OR_RAISE(
            left, MakeCall(tok, function, {std::move(left), std::move(right)}));
        continue;
      }
      if (tok.IsKeyword("IS")) {
        ARROW_ASSIGN_OR_RAISE(left, ParseIs(std::move(left)));
        continue;
      }
      bool negated = false;
      if (tok.IsKeyword("NOT") &&
          (Peek(1).IsKeyword("IN") || Peek(1).IsKeyword("BETWEEN") ||
           Peek(1).IsKeyword("LIKE") || Peek(1).IsKeyword("ILIKE"))) {
        Next();
        negated = true;
      }
      const Token& op = Peek();
      Node result;
      if (op.IsKeyword("IN")) {
        ARROW_ASSIGN_OR_RAISE(result, ParseIn(std::move(left)));
      } else if (op.IsKeyword("BETWEEN")) {
        ARROW_ASSIGN_OR_RAISE(result, ParseBetween(std::move(left)));
      } else if (op.IsKeyword("LIKE") || op.IsKeyword("ILIKE")) {
        ARROW_ASSIGN_OR_RAISE(result, ParseLike(std::move(left)));
      } else {
        return left;
      }
      if (negated) {
        ARROW_ASSIGN_OR_RAISE(result, MakeCall(op, "invert", {std::move(result)}));
      }
      left = std::move(result);
    }
  }

  Result<Node> ParseIs(Node operand) {
    const Token& is = Next();
    bool negated = false;
    if (Peek().IsKeyword("NOT")) {
      Next();
      negated = true;
    }
    const Token& what = Peek();
    auto lit = [](bool v) { return Node{cp::literal(v), 1}; };
    if (what.IsKeyword("NULL")) {
      Next();
      return MakeCall(is, negated ? "is_valid" : "is_null", {std::move(operand)});
    }
    if (what.IsKeyword("TRUE") || what.IsKeyword("FALSE")) {
      Next();
      // x IS TRUE is never null: coalesce(x, false); x IS NOT TRUE: not that.
      // x IS FALSE: coalesce(not x, false); x IS NOT FALSE: coalesce(x, true).
      const bool is_true = what.IsKeyword("TRUE");
      Node node;
      if (is_true) {
        ARROW_ASSIGN_OR_RAISE(node,
                              MakeCall(is, "coalesce", {std::move(operand), lit(false)}));
        if (negated) {
          ARROW_ASSIGN_OR_RAISE(node, MakeCall(is, "invert", {std::move(node)}));
        }
      } else if (negated) {
        ARROW_ASSIGN_OR_RAISE(node,
                              MakeCall(is, "coalesce", {std::move(operand), lit(true)}));
      } else {
        ARROW_ASSIGN_OR_RAISE(Node inverted,
                              MakeCall(is, "invert", {std::move(operand)}));
        ARROW_ASSIGN_OR_RAISE(
            node, MakeCall(is, "coalesce", {std::move(inverted), lit(false)}));
      }
      return node;
    }
    return Error(what, "expected NULL, TRUE or FALSE after '" + is.text +
                           (negated ? " NOT" : "") + "', got " + what.Describe());
  }

  Result<Node> ParseIn(Node operand) {
    const Token& in = Next();
    ARROW_RETURN_NOT_OK(Expect("(", "after 'IN'"));
    if (Peek().IsOperator(")")) return Error(Peek(), "the IN list is empty");
    std::vector<Node> items;
    while (true) {
      ARROW_ASSIGN_OR_RAISE(Node item, ParseOr());
      items.push_back(std::move(item));
      if (Peek().IsOperator(",")) {
        Next();
        continue;
      }
      ARROW_RETURN_NOT_OK(Expect(")", "or ',' in the IN list"));
      break;
    }
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Array> value_set,
                          LiteralValueSet(items));
    if (value_set != nullptr) {
      // INCONCLUSIVE is SQL's: a null input, or no match with a NULL in the list, is
      // null.
      return MakeCall(in, "is_in", {std::move(operand)},
                      std::make_shared<cp::SetLookupOptions>(
                          std::move(value_set), cp::SetLookupOptions::INCONCLUSIVE));
    }
    std::vector<Node> equalities;
    for (Node& item : items) {
      ARROW_ASSIGN_OR_RAISE(Node eq, MakeCall(in, "equal", {operand, std::move(item)}));
      equalities.push_back(std::move(eq));
    }
    return Balanced(in, "or_kleene", equalities, 0, equalities.size());
  }

  Result<Node> ParseBetween(Node operand) {
    const Token& between = Next();
    ARROW_ASSIGN_OR_RAISE(Node low, ParseConcat());
    if (!Peek().IsKeyword("AND")) {
      return Error(Peek(), "expected AND in BETWEEN, got " + Peek().Describe());
    }
    Next();
    ARROW_ASSIGN_OR_RAISE(Node high, ParseConcat());
    ARROW_ASSIGN_OR_RAISE(Node ge,
                          MakeCall(between, "greater_equal", {operand, std::move(low)}));
    ARROW_ASSIGN_OR_RAISE(
        Node le, MakeCall(between, "less_equal", {std::move(operand), std::move(high)}));
    return MakeCall(between, "and_kleene", {std::move(ge), std::move(le)});
  }

  Result<Node> ParseLike(Node operand) {
    const Token& like = Next();
    const bool ignore_case = like.IsKeyword("ILIKE");
    const Token& pattern_tok = Peek();
    ARROW_ASSIGN_OR_RAISE(Node pattern, ParseConcat());
    std::optional<std::string> text = StringLiteral(pattern.expr);
    if (!text) {
      return Error(pattern_tok, std::string("the pattern of ") +
                                    (ignore_case ? "ILIKE" : "LIKE") +
                                    " must be a string literal");
    }
    if (Peek().IsKeyword("ESCAPE")) {
      return Error(Peek(),
                   "ESCAPE is not supported; '\\' escapes '%' and '_' in patterns");
    }
    return MakeCall(like, "match_like", {std::move(operand)},
                    std::make_shared<cp::MatchSubstringOptions>(*text, ignore_case));
  }

  // concat := additive ('||' additive)*
  Result<Node> ParseConcat() {
    ARROW_ASSIGN_OR_RAISE(Node left, ParseAdditive());
    while (Peek().IsOperator("||")) {
      const Token& op = Next();
      ARROW_ASSIGN_OR_RAISE(Node right, ParseAdditive());
      ARROW_ASSIGN_OR_RAISE(left, MakeCall(op, "binary_join_element_wise",
                                           {std::move(left), std::move(right),
                                            Node{cp::literal(std::string()), 1}}));
    }
    return left;
  }

  // additive := multiplicative (('+' | '-') multiplicative)*
  Result<Node> ParseAdditive() {
    ARROW_ASSIGN_OR_RAISE(Node left, ParseMultiplicative());
    while (Peek().IsOperator("+") || Peek().IsOperator("-")) {
      const Token& op = Next();
      ARROW_ASSIGN_OR_RAISE(Node right, ParseMultiplicative());
      ARROW_ASSIGN_OR_RAISE(
          left, MakeCall(op, op.text == "+" ? "add_checked" : "subtract_checked",
                         {std::move(left), std::move(right)}));
    }
    return left;
  }

  // multiplicative := unary (('*' | '/' | '%') unary)*
  Result<Node> ParseMultiplicative() {
    ARROW_ASSIGN_OR_RAISE(Node left, ParseUnary());
    while (Peek().IsOperator("*") || Peek().IsOperator("/") || Peek().IsOperator("%")) {
      const Token& op = Next();
      ARROW_ASSIGN_OR_RAISE(Node right, ParseUnary());
      const char* function = op.text == "*"   ? "multiply_checked"
                             : op.text == "/" ? "divide_checked"
                                              : kModFunctionName;
      ARROW_ASSIGN_OR_RAISE(left,
                            MakeCall(op, function, {std::move(left), std::move(right)}));
    }
    return left;
  }

  // unary := ('-' | '+') unary | postfix
  Result<Node> ParseUnary() {
    const Token& op = Peek();
    if (!op.IsOperator("-") && !op.IsOperator("+")) return ParsePostfix();
    Next();
    DepthScope scope(this);
    ARROW_RETURN_NOT_OK(CheckDepth(op));
    const Token& operand_tok = Peek();
    // A negative number is one literal (so that -9223372036854775808 is an int64), unless
    // a cast binds tighter: -1::string is -(1::string).
    if (op.text == "-" &&
        (operand_tok.kind == TokenKind::kInteger ||
         operand_tok.kind == TokenKind::kFloat) &&
        !Peek(1).IsOperator("::")) {
      Next();
      return NumberLiteral(operand_tok, /*negative=*/true, op.pos);
    }
    ARROW_ASSIGN_OR_RAISE(Node operand, ParseUnary());
    if (op.text == "+") return operand;
    return MakeCall(op, "negate_checked", {std::move(operand)});
  }

  // postfix := primary ('::' type)*
  Result<Node> ParsePostfix() {
    ARROW_ASSIGN_OR_RAISE(Node node, ParsePrimary());
    while (Peek().IsOperator("::")) {
      const Token& op = Next();
      ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::DataType> type, ParseType());
      ARROW_ASSIGN_OR_RAISE(
          node, MakeCall(op, "cast", {std::move(node)}, SqlCastOptions(std::move(type))));
    }
    return node;
  }

  Result<Node> ParsePrimary() {
    const Token& tok = Peek();
    switch (tok.kind) {
      case TokenKind::kInteger:
      case TokenKind::kFloat:
        Next();
        return NumberLiteral(tok, /*negative=*/false, tok.pos);
      case TokenKind::kString:
        Next();
        return Node{cp::literal(tok.text), 1};
      case TokenKind::kQuotedIdentifier:
        return ParseColumn();
      case TokenKind::kOperator:
        if (tok.IsOperator("(")) {
          Next();
          ARROW_ASSIGN_OR_RAISE(Node inner, ParseOr());
          if (!Peek().IsOperator(")")) {
            return Error(Peek(), "expected ')' to close '(' at position " +
                                     std::to_string(tok.pos + 1) + ", got " +
                                     Peek().Describe());
          }
          Next();
          return inner;
        }
        return ExpectedExpression(tok);
      case TokenKind::kEnd:
        return ExpectedExpression(tok);
      case TokenKind::kIdentifier:
        break;
    }
    if (tok.IsKeyword("TRUE") || tok.IsKeyword("FALSE")) {
      Next();
      return Node{cp::literal(tok.IsKeyword("TRUE")), 1};
    }
    if (tok.IsKeyword("NULL")) {
      Next();
      return Node{cp::literal(arrow::MakeNullScalar(arrow::null())), 1};
    }
    for (std::string_view keyword : kReserved) {
      if (tok.IsKeyword(keyword)) return ExpectedExpression(tok);
    }
    if ((tok.IsKeyword("DATE") || tok.IsKeyword("TIMESTAMP")) &&
        Peek(1).kind == TokenKind::kString) {
      return ParseTypedLiteral();
    }
    if (tok.IsKeyword("CAST") && Peek(1).IsOperator("(")) return ParseCast();
    if (Peek(1).IsOperator("(")) return ParseFunction();
    return ParseColumn();
  }

  Result<Node> NumberLiteral(const Token& tok, bool negative, size_t pos) {
    const std::string shown = (negative ? "-" : "") + tok.text;
    const char* begin = tok.text.data();
    const char* end = begin + tok.text.size();
    if (tok.kind == TokenKind::kInteger) {
      uint64_t magnitude = 0;
      auto [ptr, ec] = std::from_chars(begin, end, magnitude);
      const uint64_t limit =
          static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) + (negative ? 1 : 0);
      if (ec != std::errc() || ptr != end || magnitude > limit) {
        return internal::ParseError(text_, pos,
                                    "integer literal " + shown +
                                        " is out of range for int64 (write it as " +
                                        shown + ".0 for a float64)");
      }
      // Negating through uint64 keeps INT64_MIN defined.
      const int64_t value = negative ? static_cast<int64_t>(0 - magnitude)
                                     : static_cast<int64_t>(magnitude);
      return Node{cp::literal(value), 1};
    }
    double value = 0;
    auto [ptr, ec] = std::from_chars(begin, end, value);
    if (ec != std::errc() || ptr != end || !std::isfinite(value)) {
      return internal::ParseError(
          text_, pos, "float literal " + shown + " is out of range for float64");
    }
    return Node{cp::literal(negative ? -value : value), 1};
  }

  // DATE 'YYYY-MM-DD' | TIMESTAMP 'YYYY-MM-DD HH:MM:SS[.ffffff]'
  Result<Node> ParseTypedLiteral() {
    const Token& keyword = Next();
    const Token& value = Next();
    if (keyword.IsKeyword("DATE")) {
      int32_t days = 0;
      if (!arrow::internal::ParseValue<arrow::Date32Type>(value.text.data(),
                                                          value.text.size(), &days)) {
        return Error(value, "invalid DATE literal " + value.Describe() +
                                " (expected 'YYYY-MM-DD')");
      }
      return Node{cp::literal(arrow::Date32Scalar(days)), 1};
    }
    auto type = arrow::timestamp(arrow::TimeUnit::MICRO);
    int64_t micros = 0;
    if (!arrow::internal::ParseValue<arrow::TimestampType>(
            static_cast<const arrow::TimestampType&>(*type), value.text.data(),
            value.text.size(), &micros)) {
      return Error(value, "invalid TIMESTAMP literal " + value.Describe() +
                              " (expected 'YYYY-MM-DD HH:MM:SS[.ffffff]')");
    }
    return Node{cp::literal(arrow::TimestampScalar(micros, type)), 1};
  }

  // column := name ('.' name)*, a name being bare or quoted
  Result<Node> ParseColumn() {
    std::vector<arrow::FieldRef> parts;
    parts.emplace_back(Next().text);
    while (Peek().IsOperator(".")) {
      Next();
      const Token& part = Peek();
      if (part.kind != TokenKind::kIdentifier &&
          part.kind != TokenKind::kQuotedIdentifier) {
        return Error(part, "expected a field name after '.', got " + part.Describe());
      }
      Next();
      parts.emplace_back(part.text);
    }
    if (parts.size() == 1) return Node{cp::field_ref(std::move(parts[0])), 1};
    return Node{cp::field_ref(arrow::FieldRef(std::move(parts))), 1};
  }

  // CAST '(' or_expr AS type ')'
  Result<Node> ParseCast() {
    const Token& cast = Next();
    Next();  // '('
    ARROW_ASSIGN_OR_RAISE(Node operand, ParseOr());
    if (!Peek().IsKeyword("AS")) {
      return Error(Peek(), "expected AS in CAST, got " + Peek().Describe());
    }
    Next();
    ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::DataType> type, ParseType());
    ARROW_RETURN_NOT_OK(Expect(")", "to close CAST"));
    return MakeCall(cast, "cast", {std::move(operand)}, SqlCastOptions(std::move(type)));
  }

  Result<std::shared_ptr<arrow::DataType>> ParseType() {
    const Token& tok = Peek();
    static constexpr std::string_view kKnown =
        "boolean, tinyint, smallint, int, integer, bigint, int8, int16, int32, int64, "
        "uint8, uint16, uint32, uint64, float, real, double, float32, float64, string, "
        "varchar, text, date, timestamp";
    if (tok.kind != TokenKind::kIdentifier) {
      return Error(tok, "expected a type name, got " + tok.Describe() +
                            "; supported types: " + std::string(kKnown));
    }
    Next();
    const std::string name = ToLower(tok.text);
    std::shared_ptr<arrow::DataType> type;
    if (name == "boolean" || name == "bool") {
      type = arrow::boolean();
    } else if (name == "tinyint" || name == "int8") {
      type = arrow::int8();
    } else if (name == "smallint" || name == "int16") {
      type = arrow::int16();
    } else if (name == "int" || name == "integer" || name == "int32") {
      type = arrow::int32();
    } else if (name == "bigint" || name == "int64") {
      type = arrow::int64();
    } else if (name == "uint8") {
      type = arrow::uint8();
    } else if (name == "uint16") {
      type = arrow::uint16();
    } else if (name == "uint32") {
      type = arrow::uint32();
    } else if (name == "uint64") {
      type = arrow::uint64();
    } else if (name == "float" || name == "real" || name == "float32") {
      type = arrow::float32();
    } else if (name == "double" || name == "float64") {
      if (name == "double" && Peek().IsKeyword("PRECISION")) Next();
      type = arrow::float64();
    } else if (name == "string" || name == "varchar" || name == "text") {
      type = arrow::utf8();
      if (name == "varchar" && Peek().IsOperator("(") &&
          Peek(1).kind == TokenKind::kInteger && Peek(2).IsOperator(")")) {
        Next(), Next(), Next();  // VARCHAR(n): the length is not enforced
      }
    } else if (name == "date") {
      type = arrow::date32();
    } else if (name == "timestamp" || name == "datetime") {
      type = arrow::timestamp(arrow::TimeUnit::MICRO);
    } else {
      return Error(tok, "unknown type " + tok.Describe() +
                            "; supported types: " + std::string(kKnown));
    }
    return type;
  }

  // name '(' [or_expr (',' or_expr)*] ')'
  Result<Node> ParseFunction() {
    const Token& name_tok = Next();
    Next();  // '('
    const std::string name = ToLower(name_tok.text);
    const FunctionSpec* spec = nullptr;
    for (const FunctionSpec& f : kFunctions) {
      if (f.name == name) spec = &f;
    }
    if (spec == nullptr) {
      return Error(name_tok, "unknown function " + name_tok.Describe() +
                                 "; known functions: " + KnownFunctionList());
    }
    std::vector<Node> args;
    std::vector<const Token*> arg_tokens;
    if (!Peek().IsOperator(")")) {
      while (true) {
        arg_tokens.push_back(&Peek());
        ARROW_ASSIGN_OR_RAISE(Node arg, ParseOr());
        args.push_back(std::move(arg));
        if (Peek().IsOperator(",")) {
          Next();
          continue;
        }
        ARROW_RETURN_NOT_OK(Expect(")", "or ',' after an argument of " + name + "()"));
        break;
      }
    } else {
      Next();
    }
    const int n = static_cast<int>(args.size());
    if (n < spec->min_args || (spec->max_args >= 0 && n > spec->max_args)) {
      std::string expected =
          spec->max_args < 0 ? "at least " + std::to_string(spec->min_args)
          : spec->min_args == spec->max_args
              ? std::to_string(spec->min_args)
              : std::to_string(spec->min_args) + " or " + std::to_string(spec->max_args);
      const bool plural =
          spec->max_args != 1 && !(spec->max_args < 0 && spec->min_args == 1);
      return Error(name_tok, name + "() takes " + expected + " argument" +
                                 (plural ? "s" : "") + ", got " + std::to_string(n));
    }
    const std::string arrow_name(spec->arrow_name);
    switch (spec->kind) {
      case FunctionKind::kPlain:
        return MakeCall(name_tok, arrow_name, std::move(args));
      case FunctionKind::kPattern: {
        std::optional<std::string> pattern = StringLiteral(args[1].expr);
        if (!pattern) {
          return Error(*arg_tokens[1],
                       "the second argument of " + name + "() must be a string literal");
        }
        args.pop_back();
        return MakeCall(name_tok, arrow_name, std::move(args),
                        std::make_shared<cp::MatchSubstringOptions>(*pattern));
      }
      case FunctionKind::kRound: {
        int64_t digits = 0;
        if (n == 2) {
          const arrow::Datum* lit = args[1].expr.literal();
          if (lit == nullptr || !lit->is_scalar() || !lit->scalar()->is_valid ||
              lit->type()->id() != arrow::Type::INT64) {
            return Error(*arg_tokens[1],
                         "the digits of round() must be an integer literal");
          }
          digits = static_cast<const arrow::Int64Scalar&>(*lit->scalar()).value;
          if (digits < -kMaxRoundDigits || digits > kMaxRoundDigits) {
            return Error(*arg_tokens[1], "the digits of round() must be between -" +
                                             std::to_string(kMaxRoundDigits) + " and " +
                                             std::to_string(kMaxRoundDigits));
          }
          args.pop_back();
        }
        // SQL rounds half away from zero.
        return MakeCall(name_tok, arrow_name, std::move(args),
                        std::make_shared<cp::RoundOptions>(
                            digits, cp::RoundMode::HALF_TOWARDS_INFINITY));
      }
      case FunctionKind::kConcat:
        args.push_back(Node{cp::literal(std::string()), 1});
        return MakeCall(name_tok, arrow_name, std::move(args),
                        std::make_shared<cp::JoinOptions>(cp::JoinOptions::SKIP));
      case FunctionKind::kElementWise:
        return MakeCall(name_tok, arrow_name, std::move(args),
                        std::make_shared<cp::ElementWiseAggregateOptions>(
                            /*skip_nulls=*/true));
    }
    return Status::UnknownError("unreachable");
  }

  std::string_view text_;
  std::vector<Token> tokens_;
  size_t index_ = 0;
  int depth_ = 0;
};

}  // namespace

arrow::Result<arrow::compute::Expression> ParseExpression(std::string_view sql) {
  ARROW_RETURN_NOT_OK(EnsureArrowComputeInitialized());
  ARROW_ASSIGN_OR_RAISE(std::vector<Token> tokens, internal::Tokenize(sql));
  return Parser(sql, std::move(tokens)).Parse();
}

}  // namespace riffledb
