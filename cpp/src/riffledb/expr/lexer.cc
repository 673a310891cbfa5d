#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>

#include "riffledb/expr/lexer_internal.h"

namespace riffledb::internal {

namespace {

constexpr size_t kMaxExcerpt = 80;  // longer texts are shown around the error position
constexpr size_t kExcerptContext = 30;

bool IsIdentStart(unsigned char c) { return std::isalpha(c) || c == '_' || c >= 0x80; }
bool IsIdentChar(unsigned char c) { return IsIdentStart(c) || std::isdigit(c); }
bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }

bool IsContinuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Moves `k` back to the start of the UTF-8 sequence it falls in.
size_t CharBoundary(std::string_view s, size_t k) {
  while (k > 0 && k < s.size() && IsContinuation(static_cast<unsigned char>(s[k]))) --k;
  return k;
}

// The offset of the first byte of `text` that is not part of valid UTF-8, or npos.
size_t InvalidUtf8Offset(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len;
    uint32_t min_cp;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, min_cp = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min_cp = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min_cp = 0x10000, cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > text.size()) return i;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if (!IsContinuation(cc)) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return std::string_view::npos;
}

// Appends `text` with control bytes (and, in invalid UTF-8, every byte >= 0x80) escaped,
// so that a message is one readable line of valid UTF-8 whatever the input holds.
void AppendEscaped(std::string_view text, std::string* out) {
  const bool escape_high = InvalidUtf8Offset(text) != std::string_view::npos;
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f || (escape_high && c >= 0x80)) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out->append(buf);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

std::string Excerpt(std::string_view text, size_t pos) {
  std::string out;
  if (text.size() <= kMaxExcerpt) {
    AppendEscaped(text, &out);
    return out;
  }
  size_t begin = CharBoundary(text, pos > kExcerptContext ? pos - kExcerptContext : 0);
  size_t end = CharBoundary(text, std::min(text.size(), pos + kExcerptContext));
  if (begin > 0) out += "...";
  AppendEscaped(text.substr(begin, end - begin), &out);
  if (end < text.size()) out += "...";
  return out;
}

}  // namespace

bool Token::IsKeyword(std::string_view keyword) const {
  if (kind != TokenKind::kIdentifier || text.size() != keyword.size()) return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (std::toupper(static_cast<unsigned char>(text[i])) != keyword[i]) return false;
  }
  return true;
}

std::string Token::Describe() const {
  if (kind == TokenKind::kEnd) return "the end of the input";
  std::string out = "'";
  switch (kind) {
    case TokenKind::kString:
      out = "string '";
      break;
    case TokenKind::kQuotedIdentifier:
      out = "identifier '";
      break;
    default:
      break;
  }
  std::string_view shown = text;
  bool cut = shown.size() > 40;
  if (cut) shown = shown.substr(0, CharBoundary(shown, 40));
  AppendEscaped(shown, &out);
  if (cut) out += "...";
  out += "'";
  return out;
}

arrow::Status ParseError(std::string_view text, size_t pos, std::string_view reason) {
  return arrow::Status::Invalid("Invalid filter '", Excerpt(text, pos), "' at position ",
                                pos + 1, ": ", reason);
}

arrow::Result<std::vector<Token>> Tokenize(std::string_view text) {
  if (size_t bad = InvalidUtf8Offset(text); bad != std::string_view::npos) {
    return ParseError(text, bad, "the text is not valid UTF-8");
  }
  std::vector<Token> tokens;
  size_t i = 0;
  const size_t n = text.size();
  auto at = [&](size_t k) -> unsigned char {
    return k < n ? static_cast<unsigned char>(text[k]) : 0;
  };
  while (true) {
    while (i < n && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' ||
                     text[i] == '\r' || text[i] == '\f')) {
      ++i;
    }
    if (i >= n) break;
    const size_t start = i;
    const unsigned char c = at(i);
    Token tok{TokenKind::kOperator, "", start, start};

    if (IsIdentStart(c)) {
      while (i < n && IsIdentChar(at(i))) ++i;
      tok.kind = TokenKind::kIdentifier;
      tok.text = std::string(text.substr(start, i - start));
    } else if (IsDigit(c) || (c == '.' && IsDigit(at(i + 1)))) {
      bool is_float = false;
      while (IsDigit(at(i))) ++i;
      if (at(i) == '.' && at(i + 1) != '.') {
        is_float = true;
        ++i;
        while (IsDigit(at(i))) ++i;
      }
      if (at(i) == 'e' || at(i) == 'E') {
        size_t k = i + 1;
        if (at(k) == '+' || at(k) == '-') ++k;
        if (!IsDigit(at(k))) {
          return ParseError(text, start, "malformed number: expected digits after 'e'");
        }
        is_float = true;
        i = k;
        while (IsDigit(at(i))) ++i;
      }
      if (IsIdentChar(at(i))) {
        return ParseError(text, start,
                          "malformed number: a digit cannot be followed by a letter");
      }
      tok.kind = is_float ? TokenKind::kFloat : TokenKind::kInteger;
      tok.text = std::string(text.substr(start, i - start));
    } else if (c == '\'' || c == '"' || c == '`') {
      // A doubled quote stands for itself, as in SQL.
      const char quote = static_cast<char>(c);
      ++i;
      bool closed = false;
      while (i < n) {
        if (text[i] == quote) {
          if (at(i + 1) == static_cast<unsigned char>(quote)) {
            tok.text.push_back(quote);
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        tok.text.push_back(text[i++]);
      }
      if (!closed) {
        return ParseError(text, start,
                          quote == '\'' ? "unterminated string literal"
                                        : "unterminated quoted identifier");
      }
      if (quote == '\'') {
        tok.kind = TokenKind::kString;
      } else {
        if (tok.text.empty()) return ParseError(text, start, "empty quoted identifier");
        tok.kind = TokenKind::kQuotedIdentifier;
      }
    } else {
      static constexpr std::string_view kTwoChar[] = {
          "==", "!=", "<>", "<=", ">=", "::", "||"};
      tok.kind = TokenKind::kOperator;
      for (std::string_view op : kTwoChar) {
        if (text.substr(i, 2) == op) {
          tok.text = std::string(op);
          break;
        }
      }
      if (tok.text.empty()) {
        static constexpr std::string_view kOneChar = "=<>+-*/%(),.";
        if (kOneChar.find(static_cast<char>(c)) == std::string_view::npos) {
          std::string reason = "unexpected character '";
          AppendEscaped(text.substr(i, 1), &reason);
          reason += "'";
          return ParseError(text, start, reason);
        }
        tok.text = std::string(1, static_cast<char>(c));
      }
      i += tok.text.size();
    }
    tok.end = i;
    tokens.push_back(std::move(tok));
  }
  tokens.push_back(Token{TokenKind::kEnd, "", n, n});
  return tokens;
}

}  // namespace riffledb::internal
