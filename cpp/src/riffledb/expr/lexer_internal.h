// The tokenizer of the expression language. Private to riffledb/expr.
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace riffledb::internal {

enum class TokenKind {
  kIdentifier,        // a bare word: a column, a keyword or a function name
  kQuotedIdentifier,  // `my col` or "my col", unescaped in `text`
  kInteger,           // digits only, as written
  kFloat,             // digits with a fraction and/or an exponent, as written
  kString,            // 'text', unescaped in `text`
  kOperator,          // punctuation: = == != <> < <= > >= + - * / % ( ) , . :: ||
  kEnd,               // the end of the input
};

struct Token {
  TokenKind kind;
  std::string text;
  size_t pos;  // 0-based byte offset of the token's first character
  size_t end;  // 0-based byte offset one past its last character

  bool IsOperator(std::string_view op) const {
    return kind == TokenKind::kOperator && text == op;
  }
  /// True for a bare word equal to `keyword` (upper case) ignoring case.
  bool IsKeyword(std::string_view keyword) const;
  /// How the token appears in an error message, e.g. "'>'" or "the end of the input".
  std::string Describe() const;
};

/// Builds the Invalid status of every parse error: "Invalid filter '<excerpt>' at
/// position <pos + 1>: <reason>".
arrow::Status ParseError(std::string_view text, size_t pos, std::string_view reason);

/// Splits `text` into tokens, the last one kEnd. Errors are ParseError()s.
arrow::Result<std::vector<Token>> Tokenize(std::string_view text);

}  // namespace riffledb::internal
