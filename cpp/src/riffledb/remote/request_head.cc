#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

#include "riffledb/io/http_connection.h"
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

std::string Hex2(unsigned char c) {
  constexpr char kDigits[] = "0123456789abcdef";
  return {kDigits[c >> 4], kDigits[c & 0xF]};
}

}  // namespace

HeadParse ParseRequestHead(std::string_view bytes, const RequestHeadLimits& limits,
                           RequestHead* head) {
  // Each line is judged as soon as it is complete, so that a head that cannot be ours
  // goes to cpp-httplib before its blank line comes: a head with bare LF line ends has
  // no CRLF CRLF to wait for, and cpp-httplib reads no more of a head than it must.
  const size_t start = std::min(bytes.size(), kRequestStart.size());
  if (bytes.substr(0, start) != kRequestStart.substr(0, start)) {
    return HeadParse::kNotOurs;
  }
  std::string_view target;
  int headers = 0;
  int64_t header_bytes = 0;
  int lengths = 0;
  uint64_t length = 0;
  int keys = 0;
  std::string_view key;
  int connections = 0;
  bool close = false;
  bool asks_to_close = false;
  size_t at = 0;  // where the next line starts
  while (true) {
    const size_t lf = bytes.find('\n', at);
    if (lf == std::string_view::npos) {
      // The line so far: a bare CR in it is not ours either way.
      if (bytes.find('\r', at) < bytes.size() - 1) return HeadParse::kNotOurs;
      return HeadParse::kIncomplete;
    }
    if (lf == at || bytes[lf - 1] != '\r') return HeadParse::kNotOurs;  // a bare LF
    const std::string_view line = bytes.substr(at, lf - 1 - at);
    at = lf + 1;
    if (line.find('\r') != std::string_view::npos) return HeadParse::kNotOurs;
    if (target.empty()) {
      // The request line: POST <target> HTTP/1.1, a target cpp-httplib keeps as it is
      // (no fragment, one query string at most).
      std::string_view rest = line.substr(kRequestStart.size());
      if (rest.size() <= kVersion.size() ||
          rest.substr(rest.size() - kVersion.size()) != kVersion) {
        return HeadParse::kNotOurs;
      }
      target = rest.substr(0, rest.size() - kVersion.size());
      const size_t query = target.find('?');
      if (target.empty() || target.front() != '/' ||
          !std::all_of(target.begin(), target.end(),
                       [](unsigned char c) { return c > 0x20 && c < 0x7F; }) ||
          target.find('#') != std::string_view::npos ||
          (query != std::string_view::npos &&
           target.find('?', query + 1) != std::string_view::npos)) {
        return HeadParse::kNotOurs;
      }
      continue;
    }
    if (line.empty()) break;  // the blank line: the head is complete
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos) return HeadParse::kNotOurs;
    const std::string_view name = line.substr(0, colon);
    const std::string_view raw_value = line.substr(colon + 1);
    if (!std::all_of(name.begin(), name.end(), IsTokenChar) ||
        !std::all_of(raw_value.begin(), raw_value.end(), IsValueChar)) {
      return HeadParse::kNotOurs;  // a folded line starts with a blank: not a token
    }
    const std::string_view value = io::TrimBlanks(raw_value);
    // cpp-httplib percent-decodes header values and drops empty ones: left to it.
    if (value.empty() || value.find('%') != std::string_view::npos) {
      return HeadParse::kNotOurs;
    }
    if (++headers > limits.max_headers) return HeadParse::kNotOurs;
    header_bytes += static_cast<int64_t>(name.size() + value.size() + 4);
    if (header_bytes > limits.max_header_bytes) return HeadParse::kNotOurs;
    if (io::EqualsIgnoreCase(name, "content-length")) {
      if (++lengths > 1 || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(),
                       [](char c) { return c >= '0' && c <= '9'; })) {
        return HeadParse::kNotOurs;
      }
      length = 0;
      for (char c : value) length = length * 10 + static_cast<uint64_t>(c - '0');
      if (length > limits.max_body_bytes) return HeadParse::kNotOurs;
    } else if (io::EqualsIgnoreCase(name, "transfer-encoding") ||
               io::EqualsIgnoreCase(name, "expect") ||
               io::EqualsIgnoreCase(name, "content-encoding") ||
               io::EqualsIgnoreCase(name, "range")) {
      // Bodies cpp-httplib decodes (chunked, gzip), and what it answers itself.
      return HeadParse::kNotOurs;
    } else if (io::EqualsIgnoreCase(name, "content-type")) {
      if (value.size() >= 10 && io::EqualsIgnoreCase(value.substr(0, 10), "multipart/")) {
        return HeadParse::kNotOurs;  // cpp-httplib parses those bodies
      }
    } else if (io::EqualsIgnoreCase(name, "connection")) {
      // cpp-httplib reads the first one, exactly `close`; the option may be in any of
      // them, in any case, in a list (Server::Impl::Admit closes for those too).
      if (++connections == 1 && value == "close") close = true;
      asks_to_close = asks_to_close || AsksToClose(value);
    } else if (io::EqualsIgnoreCase(name, "x-api-key")) {
      if (++keys > 1) return HeadParse::kNotOurs;
      key = value;
    }
  }
  if (lengths != 1) return HeadParse::kNotOurs;
  if (!limits.api_key.empty() &&
      (keys != 1 || !ConstantTimeEquals(key, limits.api_key))) {
    return HeadParse::kNotOurs;
  }
  head->target = target;
  head->content_length = length;
  head->close = close;
  head->asks_to_close = asks_to_close;
  head->size = at;
  return HeadParse::kOurs;
}

bool AsksToClose(std::string_view connection) {
  while (!connection.empty()) {
    const size_t comma = connection.find(',');
    if (io::EqualsIgnoreCase(io::TrimBlanks(connection.substr(0, comma)), "close")) {
      return true;
    }
    if (comma == std::string_view::npos) break;
    connection.remove_prefix(comma + 1);
  }
  return false;
}

bool HeaderLinesAreWellFormed(std::string_view head, std::string* why) {
  auto bad = [&](std::string_view what, std::string_view line) {
    if (why != nullptr) {
      // Its start, up to a colon: never a value (it may be a key).
      *why = std::string(what) + ": '";
      for (const char c : line.substr(0, std::min<size_t>(line.find(':'), 40))) {
        const auto u = static_cast<unsigned char>(c);
        *why += u >= 0x20 && u < 0x7F ? std::string(1, c) : "\\x" + Hex2(u);
      }
      *why += "'";
    }
    return false;
  };
  size_t at = head.find('\n');  // after the request line
  while (at != std::string_view::npos && at + 1 < head.size()) {
    const size_t begin = at + 1;
    at = head.find('\n', begin);
    std::string_view line = head.substr(
        begin, at == std::string_view::npos ? std::string_view::npos : at - begin);
    if (at != std::string_view::npos) {
      // cpp-httplib reads a line that ends in a bare LF, and drops it if it is a
      // header: a proxy in front that takes it (`Content-Length: 63\n`) frames the
      // body otherwise.
      if (line.empty() || line.back() != '\r') {
        return bad("A header line that does not end in CRLF", line);
      }
      line.remove_suffix(1);
    } else if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (line.empty()) return true;  // the blank line: the head ends
    if (line.front() == ' ' || line.front() == '\t') {
      return bad("A folded header line", line);
    }
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string_view::npos ||
        !std::all_of(line.begin(), line.begin() + static_cast<ptrdiff_t>(colon),
                     [](char c) { return IsTokenChar(static_cast<unsigned char>(c)); })) {
      return bad("A header line that is not a name, a colon and a value", line);
    }
    const std::string_view value = line.substr(colon + 1);
    if (!std::all_of(value.begin(), value.end(), [](char c) {
          const auto u = static_cast<unsigned char>(c);
          return IsValueChar(u) || u >= 0x80;  // obs-text
        })) {
      return bad("A header value with a control character", line);
    }
    // cpp-httplib drops a header whose value is empty: framing a proxy would read (an
    // empty Content-Length, taken for 0 or refused) that this server would not.
    const std::string_view name = line.substr(0, colon);
    if (io::TrimBlanks(value).empty() &&
        (io::EqualsIgnoreCase(name, "content-length") ||
         io::EqualsIgnoreCase(name, "transfer-encoding"))) {
      return bad("A framing header with an empty value", line);
    }
  }
  return true;  // no blank line yet: the parser judges a head that is cut short
}

ChunkedBody ReadChunkedBody(const std::function<ssize_t(char*, size_t)>& read,
                            uint64_t max_bytes, size_t max_line_bytes, std::string* body,
                            std::string* why) {
  auto malformed = [&](std::string what) {
    *why = std::move(what);
    return ChunkedBody::kMalformed;
  };
  // One CRLF-ended line, without its CRLF, into `line`; false at the end of the stream.
  // `budget`: the bytes the line may take, reduced by what it took.
  std::string line;
  auto read_line = [&](size_t* budget, ChunkedBody* failed) {
    line.clear();
    while (true) {
      char c;
      if (read(&c, 1) <= 0) {
        *failed = ChunkedBody::kCut;
        return false;
      }
      if (*budget == 0) {
        *failed = malformed("a line of the chunked body is too long");
        return false;
      }
      --*budget;
      if (c == '\n') {
        if (line.empty() || line.back() != '\r') {
          *failed = malformed("a line of the chunked body does not end in CRLF");
          return false;
        }
        line.pop_back();
        return true;
      }
      line.push_back(c);
    }
  };
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  ChunkedBody failed = ChunkedBody::kCut;
  while (true) {
    size_t budget = max_line_bytes;
    if (!read_line(&budget, &failed)) return failed;
    size_t digits = 0;
    uint64_t size = 0;
    while (digits < line.size() && hex(line[digits]) >= 0) {
      if (digits == 16) return malformed("a chunk size of more than 16 hex digits");
      size = size * 16 + static_cast<uint64_t>(hex(line[digits]));
      ++digits;
    }
    if (digits == 0) {
      std::string quoted;
      for (const char c : line.substr(0, std::min<size_t>(line.size(), 20))) {
        const auto u = static_cast<unsigned char>(c);
        quoted += u >= 0x20 && u < 0x7F ? std::string(1, c) : "\\x" + Hex2(u);
      }
      return malformed("a chunk size that is not hex digits: '" + quoted + "'");
    }
    // Chunk extensions: blanks, then `;` and visible characters; ignored.
    size_t at = digits;
    while (at < line.size() && (line[at] == ' ' || line[at] == '\t')) ++at;
    if (at < line.size() &&
        (line[at] != ';' ||
         !std::all_of(line.begin() + static_cast<ptrdiff_t>(at), line.end(), [](char c) {
           return IsValueChar(static_cast<unsigned char>(c));
         }))) {
      return malformed("a chunk size followed by other than a chunk extension");
    }
    if (at == line.size() && at != digits) {
      return malformed("a chunk size followed by blanks");
    }
    if (size == 0) break;
    if (size > max_bytes - std::min<uint64_t>(max_bytes, body->size())) {
      return ChunkedBody::kTooLarge;
    }
    // Grown as the data comes, a piece at a time: a size line alone commits no
    // memory for the data it announces.
    constexpr size_t kPiece = size_t{1} << 20;
    uint64_t left = size;
    while (left > 0) {
      const size_t start = body->size();
      body->resize(start + static_cast<size_t>(std::min<uint64_t>(left, kPiece)));
      const ssize_t n = read(body->data() + start, body->size() - start);
      if (n <= 0) {
        body->resize(start);
        return ChunkedBody::kCut;
      }
      body->resize(start + static_cast<size_t>(n));
      left -= static_cast<uint64_t>(n);
    }
    char crlf[2];
    for (char& c : crlf) {
      if (read(&c, 1) <= 0) return ChunkedBody::kCut;
    }
    if (crlf[0] != '\r' || crlf[1] != '\n') {
      return malformed("a chunk's data is not followed by CRLF");
    }
  }
  // Trailer fields, up to a blank line: each a header line, all within the budget.
  size_t budget = max_line_bytes;
  while (true) {
    if (!read_line(&budget, &failed)) return failed;
    if (line.empty()) return ChunkedBody::kWhole;
    const size_t colon = line.find(':');
    if (colon == 0 || colon == std::string::npos ||
        !std::all_of(line.begin(), line.begin() + static_cast<ptrdiff_t>(colon),
                     [](char c) { return IsTokenChar(static_cast<unsigned char>(c)); }) ||
        !std::all_of(line.begin() + static_cast<ptrdiff_t>(colon) + 1, line.end(),
                     [](char c) {
                       const auto u = static_cast<unsigned char>(c);
                       return IsValueChar(u) || u >= 0x80;
                     })) {
      return malformed("a trailer line that is not a name, a colon and a value");
    }
  }
}

}  // namespace riffledb::remote::internal
