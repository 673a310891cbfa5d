// The request heads the server parses itself (server.cc's plain path): a well-formed
// HTTP/1.1 POST with a Content-Length, which is what both clients send for every table
// route and the takes a training job repeats. Anything else is left to cpp-httplib, which
// parses it and gives the transport's refusals (Server::Impl::Admit), so that an odd or
// hostile request is judged by one parser and answered the same way as before.
//
// Pure: no I/O, for tests and the fuzz target (request_head_fuzz.cc).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace riffledb::remote::internal {

/// What the plain path needs of a request head.
struct RequestHead {
  std::string_view target;      ///< as sent (Service::Handle parses it)
  uint64_t content_length = 0;  ///< the body's bytes
  /// The first Connection header is exactly `close`, as cpp-httplib reads it (its
  /// answer then says Connection: close in place of Keep-Alive).
  bool close = false;
  /// A Connection header has the `close` option (AsksToClose), `close` or not: the
  /// connection's last request.
  bool asks_to_close = false;
  size_t size = 0;  ///< of the head, through its blank line
};

/// The limits of Server::Impl::Admit that a head must be within to be parsed here.
struct RequestHeadLimits {
  int max_headers = 0;
  int64_t max_header_bytes = 0;
  uint64_t max_body_bytes = 0;
  /// The server's API key: a head without it, or with another one, is not parsed here
  /// (cpp-httplib's path answers it 401). Empty: none is asked for.
  std::string_view api_key;
};

enum class HeadParse {
  kIncomplete,  ///< no blank line yet: more bytes may make it a head of ours
  kOurs,        ///< `*head` is set
  kNotOurs,     ///< any other request, or a malformed one: cpp-httplib's
};

/// Parses the head at the start of `bytes` (the bytes received so far). kOurs only for
/// `POST <target> HTTP/1.1` (a target of visible ASCII starting with '/', without a
/// fragment or a second '?'), header lines of a token name, a colon and a non-empty
/// value of visible ASCII, spaces and tabs without '%' (no folded lines; cpp-httplib
/// percent-decodes values and drops empty ones), exactly one Content-Length of at most
/// 18 digits and at most `limits.max_body_bytes`, no Transfer-Encoding, Content-Encoding,
/// Expect, Range or multipart Content-Type (what cpp-httplib decodes or answers itself),
/// the headers within the limits, and the API key if the server has one (one, compared
/// in constant time). Each line is judged once complete: kNotOurs comes as soon as a line
/// rules the head out, kIncomplete only while the complete lines are all ours.
HeadParse ParseRequestHead(std::string_view bytes, const RequestHeadLimits& limits,
                           RequestHead* head);

/// Whether the header lines of `head` (a request head as received, through its blank
/// line; what follows it is not looked at) are each a token name, a colon right after
/// it, and a value of visible characters, spaces and tabs: RFC 9112 §5 and what a proxy
/// in front would agree with. cpp-httplib drops a line it cannot read (`Content-Length :
/// 5`, a name without a colon) and serves the request without it, so that a body the
/// line announced would be read as the next request. Each line must end in CRLF
/// (cpp-httplib drops a header line that ends in a bare LF, which a proxy may take); a
/// CR elsewhere, a NUL, another control byte, a folded line (starting with a blank), or
/// a Content-Length or Transfer-Encoding with an empty value (which cpp-httplib drops)
/// is not well formed. The request line is cpp-httplib's to judge. `*why` (when not
/// null) says what is wrong.
bool HeaderLinesAreWellFormed(std::string_view head, std::string* why = nullptr);

/// Whether a Connection header's value has the `close` option (RFC 9110 §7.6.1: a list
/// of case-insensitive tokens).
bool AsksToClose(std::string_view connection);

/// How reading a chunked request body ended.
enum class ChunkedBody {
  kWhole,      ///< `*body` holds it; the stream is at the next request
  kTooLarge,   ///< a chunk's size takes the body past `max_bytes` (said before its data)
  kMalformed,  ///< not RFC 9112 §7.1 chunked framing: `*why` says what
  kCut,        ///< the stream ended or failed first
};

/// Reads a chunked request body (RFC 9112 §7.1) through `read` (a stream's read(): bytes
/// or <= 0 for the end or a failure), never past its end: its lines a byte at a time,
/// its data by exact lengths, so that a pipelined next request stays unread. Strict, so
/// that a proxy in front cannot frame the body otherwise: a chunk size is 1 to 16 hex
/// digits, optionally followed by chunk extensions (`;` and visible characters, which are
/// ignored), and every line ends in CRLF; a size of `-2`, `0x5` or ` 5` (which
/// cpp-httplib's strtoul-based reader took, or waited 30 s on for data that never came)
/// is malformed. A size that takes the body past `max_bytes` is kTooLarge at once, before
/// its data. Trailer fields are read, checked as header lines, and dropped; lines (a
/// chunk size's, the trailers together) are bounded by `max_line_bytes`.
ChunkedBody ReadChunkedBody(const std::function<ssize_t(char*, size_t)>& read,
                            uint64_t max_bytes, size_t max_line_bytes, std::string* body,
                            std::string* why);

}  // namespace riffledb::remote::internal
