// Fuzz target: the HTTP/1.1 response parser (http_connection.h: the S3 client's and the
// remote tables' client's) on arbitrary bytes, as the response to a PUT, a HEAD and a
// POST. A server (or whatever answers on its
// address) controls every byte: no input may crash the parser, make it read past the
// input, or return a body longer than the limit; errors are IOErrors.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "riffledb/io/http_connection.h"
#include "riffledb/io/s3_internal.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using riffledb::io::HttpOptions;
  using riffledb::io::ParseHttpResponse;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  HttpOptions options;
  options.max_body_bytes = 1 << 16;
  for (std::string_view method : {"PUT", "HEAD", "POST"}) {
    auto response = ParseHttpResponse(bytes, method, options);
    if (!response.ok()) {
      if (!response.status().IsIOError()) std::abort();
      continue;
    }
    if (response->status < 200 || response->status > 999) std::abort();
    if (static_cast<int64_t>(response->body.size()) > options.max_body_bytes)
      std::abort();
    if (response->body.size() > size) std::abort();
    (void)riffledb::io::internal::S3ErrorCode(response->body);
  }
  return 0;
}
