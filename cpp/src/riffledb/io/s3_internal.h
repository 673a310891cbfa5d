// Private to io/: what S3FileSystem needs beyond arrow::fs — the conditional PUT of
// commits (`If-None-Match: *`), which arrow::fs cannot send. AWS Signature Version 4,
// SHA-256 and HMAC-SHA256 (OpenSSL libcrypto), and a minimal blocking HTTP/1.1 client
// for one request per connection (OpenSSL libssl for https, with certificate
// verification).
//
// Nothing here keeps a connection or a thread: every request connects, sends, reads the
// whole response and closes, so it is safe in a forked child without any rebuild.
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "riffledb/io/http_connection.h"
#include "riffledb/io/http_pool.h"

namespace riffledb::io::internal {

// The HTTP/1.1 client (http_connection.h), by the names this header has always used.
using io::Endpoint;
using io::HttpConnectionPool;
using io::HttpOptions;
using io::HttpResponse;
using io::ParseHttpResponse;

// -- Hashes
// ------------------------------------------------------------------------------

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(std::span<const uint8_t> data);
Sha256Digest Sha256(std::string_view data);
Sha256Digest HmacSha256(std::span<const uint8_t> key, std::string_view data);
/// Lower-case hex, as SigV4 writes digests.
std::string HexEncode(std::span<const uint8_t> bytes);

// -- SigV4
// -------------------------------------------------------------------------------

/// Percent-encodes `text` as SigV4 wants for S3 (RFC 3986 unreserved characters kept,
/// every other byte `%XX` upper-case); '/' is kept when `keep_slash` (object keys).
std::string UriEncode(std::string_view text, bool keep_slash);

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  ///< empty: none
};

/// One HTTP request, as signed and sent.
struct HttpRequest {
  std::string method;  ///< "PUT", "GET" ...
  /// The URI-encoded path, starting with '/' (`/bucket/key`): both the request target
  /// and SigV4's canonical URI (S3 does not normalize it).
  std::string path;
  /// Unencoded query parameters; sent and signed sorted and encoded.
  std::vector<std::pair<std::string, std::string>> query;
  /// Headers besides Host and Content-Length (which the client adds). Signing adds
  /// x-amz-date, x-amz-content-sha256, x-amz-security-token and Authorization, and signs
  /// every header listed here plus host.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  /// The value of header `name` (case-insensitive), if set.
  std::optional<std::string> Header(std::string_view name) const;
  /// `path` and the encoded, sorted query, as sent on the request line.
  std::string Target() const;
};

/// The derived signing key: HMAC chain over date (YYYYMMDD), region, service and
/// "aws4_request", keyed with "AWS4" + secret.
Sha256Digest SigningKey(std::string_view secret_access_key, std::string_view date,
                        std::string_view region, std::string_view service);

/// SigV4's canonical request of `request` sent to `host` (the Host header value), whose
/// payload hash is `payload_sha256` (hex), signing exactly `signed_headers` (lower-case,
/// sorted, ';'-joined, also returned). For tests; SignRequest uses it.
std::string CanonicalRequest(const HttpRequest& request, std::string_view host,
                             std::string_view payload_sha256,
                             std::string* signed_headers);

/// Adds x-amz-date (`amz_date`, YYYYMMDD'T'HHMMSS'Z'), x-amz-content-sha256 (of the
/// body), x-amz-security-token (if the credentials have a session token) and
/// Authorization to `request`, for `host` (the Host header value). Anonymous credentials
/// (no key id) add only the date and hash headers.
void SignRequest(const Credentials& credentials, std::string_view region,
                 std::string_view service, std::string_view amz_date,
                 std::string_view host, HttpRequest* request);

/// The current UTC time as SigV4's x-amz-date.
std::string AmzDateNow();

// -- HTTP
// --------------------------------------------------------------------------------

/// Parses `http://host[:port]` or `https://host[:port]` (a trailing '/' allowed; no
/// other path, query or user info). Invalid naming `url` otherwise.
arrow::Result<Endpoint> ParseEndpoint(std::string_view url);

/// Sends `request` to `endpoint` on a new connection (Host, Content-Length, User-Agent
/// and `Connection: close` added) and reads the whole response: a body framed by
/// Content-Length, chunked, or by the end of the connection. https verifies the server's
/// certificate and name against the system's trust store. IOError naming the endpoint on
/// any failure to connect, send, or read a complete response.
arrow::Result<HttpResponse> SendHttpRequest(const Endpoint& endpoint,
                                            const HttpRequest& request,
                                            const HttpOptions& options = {});

/// The same on a keep-alive connection of `pool` (without `Connection: close`): a pooled
/// one still open, else a new one, given back to the pool after a whole response. A GET
/// or HEAD that fails on a pooled connection as on one the server closed since its last
/// response (HttpConnection::StaleFailure: not a timeout, nor an answer cut short) is
/// sent once more on a new connection; any other request, or failure, is not.
arrow::Result<HttpResponse> SendHttpRequest(HttpConnectionPool& pool,
                                            const Endpoint& endpoint,
                                            const HttpRequest& request,
                                            const HttpOptions& options);

// -- The conditional PUT
// -----------------------------------------------------------------

/// What a conditional PUT is sent with.
struct S3RequestConfig {
  Endpoint endpoint;
  std::string region;
  Credentials credentials;
  HttpOptions http;
  /// Where GETs find keep-alive connections to `endpoint` (null: a connection each).
  /// Never used by the conditional PUT, which is sent once on a new connection.
  std::shared_ptr<HttpConnectionPool> pool;
};

/// `<Code>` of an S3 XML error body, or empty.
std::string S3ErrorCode(std::string_view body);

/// `PUT /bucket/key` with `If-None-Match: *`: creates `bucket/key` holding `data`
/// unless it exists. OK on 200; AlreadyExists naming `path` on 412 PreconditionFailed;
/// IOError for everything else, naming `path`, the HTTP status and the S3 error code —
/// and for 409 ConditionalRequestConflict (a racing conditional write to the same key:
/// not applied, worth retrying) the message says so and `*conflict` is set. An error
/// sending or reading, or a 5xx answer, leaves the outcome unknown (the object may
/// exist): the message says so and `*unknown` is set. Messages never include
/// credentials.
arrow::Status PutIfAbsent(const S3RequestConfig& config, const std::string& bucket,
                          const std::string& key, std::span<const uint8_t> data,
                          bool* conflict = nullptr, bool* unknown = nullptr);

/// How CreateIfAbsent retries.
struct CreateRetries {
  /// Attempts after a 409 ConditionalRequestConflict (not applied: a racing conditional
  /// write's outcome decides ours).
  int conflicts = 4;
  /// Attempts after an unknown outcome (a 5xx, or a failure sending or reading).
  int unknowns = 3;
  /// The first wait; each retry doubles it (plus up to 20 ms of jitter).
  std::chrono::milliseconds backoff{20};
};

/// PutIfAbsent, retried as `retries` says. When an attempt's outcome was unknown and a
/// later one finds the object existing, the object is read back: if it holds `data`,
/// the earlier attempt created it and the result is OK; if it holds other bytes,
/// AlreadyExists, whose message says an earlier attempt's outcome was unknown; if it
/// cannot be read, the outcome is still unknown: an IOError saying the object may have
/// been created (never AlreadyExists, which would let a commit delete what the object
/// may reference).
arrow::Status CreateIfAbsent(const S3RequestConfig& config, const std::string& bucket,
                             const std::string& key, std::span<const uint8_t> data,
                             const CreateRetries& retries = {});

/// `GET /bucket/key` of the `length` bytes at `offset` (a `Range` header; `length` > 0):
/// exactly those bytes, from a 206 Partial Content (or a 200 whose body is the whole
/// object, if the range covers it). IOError naming `path`, the range and the HTTP status
/// and S3 error code otherwise, including a body of another length. One connection per
/// request, as PutIfAbsent: safe in a forked child.
arrow::Result<std::string> GetRange(const S3RequestConfig& config,
                                    const std::string& bucket, const std::string& key,
                                    int64_t offset, int64_t length);

/// `GET /bucket/key`, the whole object (asked for with `Range: bytes=0-<max_bytes>`):
/// IOError naming `path` and the HTTP status and S3 error code unless 200 or 206 (416,
/// an empty object, is ""); CapacityError if the object is longer than `max_bytes`.
arrow::Result<std::string> GetObject(const S3RequestConfig& config,
                                     const std::string& bucket, const std::string& key,
                                     int64_t max_bytes);

}  // namespace riffledb::io::internal
