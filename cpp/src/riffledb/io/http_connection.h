// One HTTP/1.1 connection, plain or TLS (OpenSSL), blocking with a timeout on each send
// and receive: what the S3 client's conditional PUT (s3_internal.h, one request per
// connection) and the client of remote tables (remote/client/http_client.h, a keep-alive
// pool) send their requests on. It frames requests and parses responses; it knows no
// routes, retries or pools.
//
// Reads are buffered (a response's head is parsed from one receive buffer) and a body of
// known length is received straight into the response, in as few receives as the kernel
// allows: on loopback a 130 KiB answer is 2-3 receives, where a 4 KiB buffer took 33
// (with a poll before each).
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "riffledb/util/busy_poll.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace riffledb::io {

/// The reason phrase of the statuses riffledb's server and the REST protocol use (spec
/// §1.5), "" for others.
const char* ReasonPhrase(int status);

/// Where requests go: `http(s)://host[:port]`.
struct Endpoint {
  std::string scheme;  ///< "http" or "https"
  std::string host;    ///< a name, an IPv4 address, or an IPv6 address without brackets
  int port = 0;
  /// The Host header: `host` (bracketed if IPv6), with `:port` unless the default.
  std::string HostHeader() const;
  /// `scheme://host[:port]`, for messages.
  std::string ToString() const;
};

struct HttpResponse {
  int status = 0;
  std::string reason;
  /// In the order received, names as sent.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  /// The first header named `name` (case-insensitive), if any.
  std::optional<std::string> Header(std::string_view name) const;
};

struct HttpOptions {
  double connect_timeout_seconds = 10;
  /// Each send or receive (and the TLS handshake's), not the whole request.
  double io_timeout_seconds = 60;
  /// Bodies longer than this are an error.
  int64_t max_body_bytes = 16 << 20;
  /// Before blocking for bytes of an answer, poll the socket for up to this long
  /// (util/busy_poll.h: it backs off, and never spins with one usable CPU). 0: block at
  /// once.
  int64_t busy_poll_us = 0;
};

/// How an https connection checks the server. Made once and shared by connections
/// (it holds the trusted certificates, loaded once).
class TlsContext {
 public:
  /// `verify`: check the server's certificate chain and name. `ca_file`: the trusted
  /// CAs (PEM); empty: the system's trust store (SSL_CERT_FILE / SSL_CERT_DIR override
  /// it). IOError with HttpFailure::kTlsCertificates when they cannot be loaded.
  static arrow::Result<std::shared_ptr<const TlsContext>> Make(
      bool verify, const std::string& ca_file);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

 private:
  friend class HttpConnection;
  TlsContext() = default;
  ::ssl_ctx_st* ctx_ = nullptr;
  bool verify_ = true;
};

/// Which step of a request failed: the status of a failure carries it as its detail.
enum class HttpFailure {
  kConnect,          ///< resolving the host or connecting failed
  kConnectTimeout,   ///< connecting took longer than the connect timeout
  kTlsCertificates,  ///< the trusted certificates could not be loaded
  kTlsHandshake,     ///< the TLS handshake failed
  kTlsVerification,  ///< the server's certificate is not trusted (or not for the host)
  kSend,             ///< sending the request failed
  kReceive,          ///< the response did not come whole: timeout, close, malformed
};

struct HttpFailureInfo {
  HttpFailure step;
  /// Why, in the words of the system or of OpenSSL ("Connection refused", "timed out",
  /// "unable to get local issuer certificate", "bad chunk size '-1'"...).
  std::string reason;
};

/// The step a status returned here failed at, and why, if it is one of these failures.
std::optional<HttpFailureInfo> GetHttpFailure(const arrow::Status& status);

/// One connection. Not thread-safe: one request at a time.
class HttpConnection {
 public:
  /// Connects to `endpoint` and, for https, starts TLS with `tls` (the system's trust
  /// store when null). IOError naming the endpoint and carrying an HttpFailure.
  static arrow::Result<std::unique_ptr<HttpConnection>> Open(
      const Endpoint& endpoint, const HttpOptions& options,
      std::shared_ptr<const TlsContext> tls = nullptr);
  /// Closes the connection (a TLS session without close_notify).
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  /// The timeout of each send and receive from now on.
  void SetIoTimeout(double seconds);
  /// The longest body a response may have from now on (HttpOptions::max_body_bytes).
  void SetMaxBodyBytes(int64_t bytes);
  /// Sends `head` (request line and headers, with the blank line) then `body`: one
  /// system call for both when they fit the socket's buffer. HttpFailure::kSend.
  arrow::Status Send(std::string_view head, std::string_view body);
  /// Reads one whole response to a `method` request: interim 1xx responses skipped, the
  /// body framed by Content-Length, chunked, or the end of the connection (none after
  /// HEAD, 204 and 304). HttpFailure::kReceive.
  arrow::Result<HttpResponse> Receive(std::string_view method);
  /// Whether another request may be sent: the last response was whole, framed by its
  /// length or chunks, and did not say `Connection: close` (or was HTTP/1.0 without
  /// keep-alive), and nothing failed.
  bool reusable() const { return reusable_; }
  /// Whether an idle connection is still open: the peer has not closed it and sent
  /// nothing unasked (one non-blocking peek).
  bool StillOpen() const;
  /// After the last request failed: whether it failed as on a connection the server had
  /// closed (the send failed, or the connection closed or reset before any byte of the
  /// response came), not by a timeout or a response cut short.
  bool StaleFailure() const;

  int fd() const { return fd_; }
  /// What its busy-polling before receives came to (HttpOptions::busy_poll_us).
  BusyPoll::Stats busy_poll_stats() const;
  /// Forgets the socket and the TLS session without closing or freeing either: for a
  /// forked child, whose copies belong to the parent's connection (the caller closes
  /// its copy of the fd). The object may then be destroyed.
  void Abandon();

 private:
  class Impl;
  explicit HttpConnection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  int fd_ = -1;
  bool reusable_ = false;
};

/// ASCII case-insensitive equality (header names, tokens).
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
/// `s` without leading and trailing spaces and tabs (header values).
std::string_view TrimBlanks(std::string_view s);

/// Parses one whole response to a `method` request from `bytes`, handed to the parser
/// a few bytes at a time: for tests and the fuzz target. IOError naming `<memory>` for
/// a malformed or truncated response.
arrow::Result<HttpResponse> ParseHttpResponse(std::string_view bytes,
                                              std::string_view method,
                                              const HttpOptions& options = {});

}  // namespace riffledb::io
