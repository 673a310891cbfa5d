#include <algorithm>
#include <cstring>

#include "riffledb/remote/protocol.h"
#include "riffledb/remote/request_head_internal.h"

namespace riffledb::remote::internal {

namespace {

constexpr std::string_view kRequestStart = "POST ";
constexpr std::string_view kVersion = " HTTP/1.1";

bool IsTokenChar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
    return true;
  }
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool IsValueChar(unsigned char c) { return (c >= 0x20 && c <= 0x7E) || c == '\t'; }

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           const auto lower = [](char c) {
             return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
           };
           return lower(x) == lower(y);
         });
}

std::string_view TrimBlanks(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

}  // namespace

HeadParse ParseRequestHead(std::string_view bytes, const RequestHeadLimits& limits,
                           RequestHead* head) {
  // Not ours as soon as the bytes say so, rather than once a blank line comes: a head of
  // another method, or with bare LF line ends, may never have a CRLF CRLF to wait for.
  const size_t start = std::min(bytes.size(), kRequestStart.size());
  if (bytes.substr(0, start) != kRequestStart.substr(0, start)) {
    return HeadParse::kNotOurs;
  }
  const size_t end = bytes.find("\r\n\r\n");
  const std::string_view seen =
      end == std::string_view::npos ? bytes : bytes.substr(0, end + 4);
  for (size_t at = seen.find('\n'); at != std::string_view::npos;
       at = seen.find('\n', at + 1)) {
    if (at == 0 || seen[at - 1] != '\r') return HeadParse::kNotOurs;
  }
  if (end == std::string_view::npos) return HeadParse::kIncomplete;

  std::string_view rest = bytes.substr(0, end + 2);  // every line with its CRLF
  auto next_line = [&rest] {
    const size_t eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    return line;
  };

  // The request line: POST <target> HTTP/1.1
  std::string_view line = next_line();
  line.remove_prefix(kRequestStart.size());
  if (line.size() <= kVersion.size() ||
      line.substr(line.size() - kVersion.size()) != kVersion) {
    return HeadParse::kNotOurs;
  }
  const std::string_view target = line.substr(0, line.size() - kVersion.size());
  if (target.empty() || target.front() != '/' ||
      !std::all_of(target.begin(), target.end(),
                   [](unsigned char c) { return c > 0x20 && c < 0x7F; })) {
    return HeadParse::kNotOurs;
  }

  int headers = 0;
  int64_t header_bytes = 0;
  int lengths = 0;
  uint64_t length = 0;
  int keys = 0;
  std::string_view key;
  int connections = 0;
  bool close = false;
  while (!rest.empty()) {
    line = next_line();
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return HeadParse::kNotOurs;
    const std::string_view name = line.substr(0, colon);
    const std::string_view raw_value = line.substr(colon + 1);
    if (!std::all_of(name.begin(), name.end(), IsTokenChar) ||
        !std::all_of(raw_value.begin(), raw_value.end(), IsValueChar)) {
      return HeadParse::kNotOurs;  // a folded line starts with a blank: not a token
    }
    const std::string_view value = TrimBlanks(raw_value);
    ++headers;
    header_bytes += static_cast<int64_t>(name.size() + value.size() + 4);
    if (IEquals(name, "content-length")) {
      if (++lengths > 1 || value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(),
                       [](char c) { return c >= '0' && c <= '9'; })) {
        return HeadParse::kNotOurs;
      }
      length = 0;
      for (char c : value) length = length * 10 + static_cast<uint64_t>(c - '0');
    } else if (IEquals(name, "transfer-encoding") || IEquals(name, "expect")) {
      return HeadParse::kNotOurs;
    } else if (IEquals(name, "connection")) {
      // As cpp-httplib reads it: the first one, exactly `close`.
      if (++connections == 1) close = value == "close";
    } else if (IEquals(name, "x-api-key")) {
      ++keys;
      key = value;
    }
  }
  if (lengths != 1 || length > limits.max_body_bytes || headers > limits.max_headers ||
      header_bytes > limits.max_header_bytes) {
    return HeadParse::kNotOurs;
  }
  if (!limits.api_key.empty() &&
      (keys != 1 || !ConstantTimeEquals(key, limits.api_key))) {
    return HeadParse::kNotOurs;
  }
  head->target = target;
  head->content_length = length;
  head->close = close;
  head->size = end + 4;
  return HeadParse::kOurs;
}

}  // namespace riffledb::remote::internal
