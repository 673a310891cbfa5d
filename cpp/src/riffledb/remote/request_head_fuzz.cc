// Fuzz target: any bytes as the start of a request on a plain connection
// (internal::ParseRequestHead and internal::HeaderLinesAreWellFormed,
// request_head_internal.h), and as a chunked body (internal::ReadChunkedBody). Nothing
// may crash; a head parsed as ours lies within the bytes, ends with its blank line, and
// is within the limits; an incomplete one is a prefix of what could become ours (starting
// like `POST `, no bare LF), so that the server never waits for a head cpp-httplib would
// answer.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "riffledb/remote/request_head_internal.h"

using riffledb::remote::internal::HeadParse;
using riffledb::remote::internal::ParseRequestHead;
using riffledb::remote::internal::RequestHead;
using riffledb::remote::internal::RequestHeadLimits;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  RequestHeadLimits limits;
  limits.max_headers = 8;
  limits.max_header_bytes = 512;
  limits.max_body_bytes = 4096;
  for (const std::string_view key : {std::string_view(), std::string_view("k3y")}) {
    limits.api_key = key;
    RequestHead head;
    const HeadParse parsed = ParseRequestHead(bytes, limits, &head);
    if (parsed == HeadParse::kOurs) {
      if (head.size < 4 || head.size > bytes.size() ||
          bytes.substr(head.size - 4, 4) != "\r\n\r\n" ||
          bytes.substr(0, head.size - 4).find("\r\n\r\n") != std::string_view::npos ||
          head.content_length > limits.max_body_bytes || head.target.empty() ||
          head.target.front() != '/' || head.target.data() < bytes.data() ||
          head.target.data() + head.target.size() > bytes.data() + head.size ||
          bytes.substr(0, 5) != "POST ") {
        std::abort();
      }
    } else if (parsed == HeadParse::kIncomplete) {
      const size_t start = bytes.size() < 5 ? bytes.size() : 5;
      if (bytes.substr(0, start) != std::string_view("POST ").substr(0, start) ||
          bytes.find("\r\n\r\n") != std::string_view::npos) {
        std::abort();
      }
      for (size_t at = bytes.find('\n'); at != std::string_view::npos;
           at = bytes.find('\n', at + 1)) {
        if (at == 0 || bytes[at - 1] != '\r') std::abort();
      }
    }
  }
  // The header-line check of heads cpp-httplib parses (Server::Impl::Admit): nothing
  // may crash, a refusal says why, and never quotes past a colon (a value may be a key).
  std::string why;
  if (!riffledb::remote::internal::HeaderLinesAreWellFormed(bytes, &why)) {
    const size_t quote = why.find(": '");
    if (quote == std::string::npos || why.find(':', quote + 3) != std::string::npos) {
      std::abort();
    }
  }
  // A chunked body: nothing may crash; a whole body is within the limit and no longer
  // than the bytes; a refusal says why.
  for (const size_t piece : {size_t{1}, size_t{4096}}) {
    size_t at = 0;
    auto read = [&](char* out, size_t n) -> ssize_t {
      n = std::min({n, piece, bytes.size() - at});
      bytes.copy(out, n, at);
      at += n;
      return static_cast<ssize_t>(n);
    };
    std::string body, chunk_why;
    const auto result = riffledb::remote::internal::ReadChunkedBody(
        read, /*max_bytes=*/1024, /*max_line_bytes=*/256, &body, &chunk_why);
    using riffledb::remote::internal::ChunkedBody;
    if ((result == ChunkedBody::kWhole && (body.size() > 1024 || body.size() > at)) ||
        (result == ChunkedBody::kMalformed && chunk_why.empty()) || at > bytes.size()) {
      std::abort();
    }
  }
  return 0;
}
