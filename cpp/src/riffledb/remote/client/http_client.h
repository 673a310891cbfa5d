// The HTTP client of remote tables (`db://`, spec/remote-protocol.md §1 and §7): a small
// pool of keep-alive connections that survives fork(), retries with backoff, timeouts,
// and LanceDB's request headers. It knows HTTP and the retry policy, not the routes: the
// Python package builds the requests of each endpoint.
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "riffledb/io/http_pool.h"

namespace riffledb::remote {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

/// When a request is sent again (spec §1.5, LanceDB's `RetryConfig`).
struct RetryOptions {
  /// Failed attempts (a status in `statuses`) after which a retried request gives up.
  int retries = 3;
  /// Failed connection attempts after which it gives up.
  int connect_retries = 3;
  /// Failed reads (a timeout, a connection lost mid-response) after which it gives up.
  int read_retries = 3;
  /// The wait before attempt n+1 is `backoff_factor * 2^failures` seconds plus a
  /// uniform random `[0, backoff_jitter]` seconds.
  double backoff_factor = 0.25;
  double backoff_jitter = 0.25;
  std::vector<int> statuses = {409, 429, 500, 502, 503, 504};
};

/// How a client connects (LanceDB's `ClientConfig` and `connect()` arguments, resolved).
struct ClientOptions {
  /// `http://host[:port][/prefix]` or `https://...`: every request path is appended to
  /// it, as LanceDB appends to `host_override`.
  std::string base_url;
  /// Sent with every request (x-api-key, x-lancedb-database, User-Agent, extra headers).
  HeaderList headers;
  double connect_timeout_s = 120;
  /// For each read and write on the socket.
  double read_timeout_s = 300;
  /// The whole request, retries included (unset: no limit). Each attempt's connect and
  /// read timeouts are cut to what remains, and no retry starts after it.
  std::optional<double> timeout_s;
  /// Idle keep-alive connections kept per process, and how long one may stay idle.
  int max_idle_connections = 16;
  double pool_idle_timeout_s = 300;
  RetryOptions retry;
  /// For https: verify the server's certificate (against `ca_cert_path` if set).
  bool verify_tls = true;
  std::string ca_cert_path;
  /// Before blocking for bytes of an answer, poll the socket for up to this long (0:
  /// never): an answer that comes within it is read by a thread still on its CPU, hot,
  /// instead of one woken (util/busy_poll.h; it backs off where it does not pay, and
  /// never spins with one usable CPU). In [0, 1000000].
  /// 1,000 µs: a 256-row take's answer on loopback comes 150-450 µs after its request
  /// on 2-CPU virtual machines, the later in their busy hours, when a 200 µs spin
  /// missed it and backed off into sleeping waits (docs/remote.md, "Busy-polling").
  int64_t busy_poll_us = 1000;
  /// The same for the connections of a forked child (a DataLoader worker): several such
  /// processes each have their own spinner slots, and their waits overlap each other's
  /// work anyway.
  int64_t forked_busy_poll_us = 0;
};

struct HttpRequest {
  std::string method = "POST";  ///< GET or POST
  /// Appended to ClientOptions::base_url, query string included.
  std::string path;
  std::string body;
  /// Content-Type of `body` (none sent when empty).
  std::string content_type;
  /// A read that may be sent again (describe, count_rows, query, list...). Writes are
  /// single-shot: sent once, whatever happens (spec §1.5).
  bool retry = true;
  /// The x-request-id (a fresh UUIDv4 when empty); the same for every attempt.
  std::string request_id;
  HeaderList headers;  ///< per request, after the client's own
  /// When set, called before each attempt (a retry asks again: a token that expired
  /// meanwhile is fresh), on the sending thread; its headers come last and replace
  /// same-named ones of the client and of `headers` (spec §1.3, LanceDB's
  /// `header_provider`). Its failure fails the request, unsent.
  std::function<arrow::Result<HeaderList>()> header_source;
};

struct HttpResponse {
  int status = 0;
  std::string body;
  HeaderList headers;  ///< names in lower case
  std::string request_id;
  /// The header's value (name in lower case), if present.
  std::optional<std::string> header(const std::string& name) const;
};

/// Why a request failed, attached to its status (an IOError): the fields of LanceDB's
/// `HttpError` and `RetryError` (`riffledb.remote.errors`). Immutable.
class HttpErrorDetail : public arrow::StatusDetail {
 public:
  static constexpr const char* kTypeId = "riffledb::remote::HttpErrorDetail";

  struct Fields {
    /// False: one failed attempt (HttpError); true: the retries are exhausted
    /// (RetryError, whose cause is the last attempt's HttpError, `message`).
    bool retries_exhausted = false;
    std::string request_id;
    /// The last response's status, if one came back.
    std::optional<int> status_code;
    /// The last attempt's error as HttpError says it ("503: body" or the transport's
    /// error).
    std::string message;
    int request_failures = 0, connect_failures = 0, read_failures = 0;
    int max_request_failures = 0, max_connect_failures = 0, max_read_failures = 0;
  };

  explicit HttpErrorDetail(Fields fields) : fields_(std::move(fields)) {}
  const char* type_id() const override { return kTypeId; }
  std::string ToString() const override;
  const Fields& fields() const { return fields_; }

 private:
  const Fields fields_;
};

/// The detail of a status returned by HttpClient::Send, if any.
const HttpErrorDetail* GetHttpErrorDetail(const arrow::Status& status);

/// Counters of one process's use of a client (for tests and diagnostics): `requests`
/// counts attempts sent, `reused` those sent on a pooled connection.
using ClientStats = io::HttpPoolStats;

/// A pid-aware HTTP/1.1 client with a keep-alive pool (DESIGN.md decisions 9 and 12), on
/// io::HttpConnection (plain or TLS).
///
/// Thread-safe: concurrent Send() calls each take a connection of their own from the
/// pool (or open one). Fork-safe: every pooled connection belongs to the process that
/// opened it. The first Send() in a forked child abandons what it inherited — it closes
/// its copies of the parent's sockets without shutdown() (which would cut the parent's
/// connections, shared through the same open file) and never destroys the parent's
/// connection objects (whose destructor would shut the socket down, or send a TLS
/// close_notify) — then opens connections of its own. A request of the parent that was
/// in flight at the fork goes on in the parent undisturbed.
class HttpClient {
 public:
  /// Invalid for a base URL that is not http(s)://host[:port][/prefix] or bad options.
  static arrow::Result<std::shared_ptr<HttpClient>> Make(ClientOptions options);
  ~HttpClient();

  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends `request` and returns a 2xx response. Anything else is an IOError carrying an
  /// HttpErrorDetail: the first non-2xx status not worth a retry, a transport error of
  /// a single-shot request (status_code unset), or, for a retried request, exhausted
  /// retries. Blocks (sleeps between retries); call it without the GIL.
  arrow::Result<HttpResponse> Send(HttpRequest request) const;

  const ClientOptions& options() const;
  /// This process's counters.
  ClientStats stats() const;

  /// Whether a 2xx answer of this client's server said `x-riffledb-take-order: asked`
  /// (kTakeOrderHeader): the server answers a take's rows in the order of its `IN (...)`
  /// list, repeats repeated, so a take may ask for its keys as they are
  /// (TakeRemoteRows). Learned from the first answer that says so, and kept.
  bool TakesInAskedOrder() const;

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  static arrow::Result<std::string> RequestHead(const Impl& impl,
                                                const HttpRequest& request,
                                                const HeaderList& dynamic);
  std::unique_ptr<Impl> impl_;
};

/// The header of a riffledb server's answers (lower case, as HttpResponse::headers
/// holds names) saying that its takes answer rows in the order asked for; its value is
/// kTakeOrderAsked. LanceDB's servers do not send it: a client then asks for the distinct
/// keys ascending and puts the answer in order itself. (The server sets it in
/// remote/server.cc; tests/test_serve.py checks its replies, remote_client_test the
/// client against mocks that send it or not.)
inline constexpr char kTakeOrderHeader[] = "x-riffledb-take-order";
inline constexpr char kTakeOrderAsked[] = "asked";

/// A random UUIDv4 (fresh per call, distinct in forked children).
std::string NewRequestId();

}  // namespace riffledb::remote
