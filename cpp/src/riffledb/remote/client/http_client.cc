#include "riffledb/remote/client/http_client.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>

#include "riffledb/io/http_connection.h"
#include "riffledb/io/http_pool.h"
#include "riffledb/util/busy_poll.h"
#include "riffledb/util/pid.h"

namespace riffledb::remote {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int64_t kMaxBusyPollUs = BusyPoll::kMaxLimit.count();

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool IsConnectError(io::HttpFailure step) {
  return step != io::HttpFailure::kSend && step != io::HttpFailure::kReceive;
}

// A request that got no response, in words a user can act on (`where` is host:port),
// with the name LanceDB's users know it by (cpp-httplib's, which this client used) last.
std::string TransportFailure(const io::HttpFailureInfo& failure,
                             const std::string& where) {
  std::string words, name;
  switch (failure.step) {
    case io::HttpFailure::kConnect:
      words = "cannot connect to " + where;
      name = "Connection";
      break;
    case io::HttpFailure::kConnectTimeout:
      words = "connecting to " + where + " took longer than the connect timeout";
      name = "ConnectionTimeout";
      break;
    case io::HttpFailure::kReceive:
      words = "the connection to " + where +
              " failed, closed or timed out before the whole response came";
      name = "Read";
      break;
    case io::HttpFailure::kSend:
      words = "sending the request to " + where + " failed";
      name = "Write";
      break;
    case io::HttpFailure::kTlsHandshake:
      words = "the TLS handshake with " + where + " failed";
      name = "SSLConnection";
      break;
    case io::HttpFailure::kTlsCertificates:
      words =
          "cannot load the CA certificates (tls_config.ssl_ca_cert) to verify " + where;
      name = "SSLLoadingCerts";
      break;
    case io::HttpFailure::kTlsVerification:
      words = "the TLS certificate of " + where + " is not trusted (" + failure.reason +
              "): give the CA that signed it as tls_config.ssl_ca_cert";
      name = "SSLServerVerification";
      break;
  }
  return words + " [" + name + "]";
}

}  // namespace

std::optional<std::string> HttpResponse::header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return std::nullopt;
}

std::string HttpErrorDetail::ToString() const {
  return fields_.retries_exhausted ? "remote retry error" : "remote http error";
}

const HttpErrorDetail* GetHttpErrorDetail(const arrow::Status& status) {
  const auto& detail = status.detail();
  if (detail == nullptr ||
      std::string_view(detail->type_id()) != HttpErrorDetail::kTypeId)
    return nullptr;
  return static_cast<const HttpErrorDetail*>(detail.get());
}

std::string NewRequestId() {
  // One generator per thread, reseeded in a forked child (whose copy of the parent's
  // state would repeat the parent's ids).
  thread_local std::mt19937_64 rng;
  thread_local uint64_t seeded_generation = ~uint64_t{0};
  if (seeded_generation != ForkGeneration()) {
    std::random_device device;
    std::seed_seq seed{device(), device(), device(), device(),
                       static_cast<unsigned>(CurrentPid())};
    rng.seed(seed);
    seeded_generation = ForkGeneration();
  }
  uint64_t hi = rng(), lo = rng();
  hi = (hi & ~uint64_t{0xF000}) | 0x4000;                      // version 4
  lo = (lo & ~(uint64_t{0xC} << 60)) | (uint64_t{0x8} << 60);  // variant 10
  char text[37];
  std::snprintf(text, sizeof(text), "%08x-%04x-%04x-%04x-%012llx",
                static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xFFFF),
                static_cast<unsigned>(hi & 0xFFFF), static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xFFFFFFFFFFFFULL));
  return text;
}

struct HttpClient::Impl {
  // Constant after construction.
  ClientOptions options;
  io::Endpoint endpoint;
  std::string where;   // host:port, for messages
  std::string prefix;  // path prefix of base_url, without a trailing slash
  // For https: the trusted certificates, loaded once (or why they could not be).
  arrow::Result<std::shared_ptr<const io::TlsContext>> tls =
      std::shared_ptr<const io::TlsContext>();

  // The keep-alive connections (pid-aware: io/http_pool.h).
  std::unique_ptr<io::HttpConnectionPool> pool;
  const uint64_t created_generation = ForkGeneration();  // the process that made it
  // Set once an answer said kTakeOrderHeader: asked (HttpClient::TakesInAskedOrder).
  mutable std::atomic<bool> takes_in_asked_order{false};

  // A pooled connection that is still open, else a new one (connect_s: its connect
  // timeout). An IOError with an io::HttpFailure when connecting fails.
  arrow::Result<io::HttpConnectionPool::Lease> Acquire(double connect_s,
                                                       double read_s) const {
    return pool->Acquire([&]() -> arrow::Result<std::unique_ptr<io::HttpConnection>> {
      ARROW_ASSIGN_OR_RAISE(auto tls_context, tls);
      io::HttpOptions http;
      http.connect_timeout_seconds = std::max(connect_s, 0.001);
      http.io_timeout_seconds = std::max(read_s, 0.001);
      http.max_body_bytes = std::numeric_limits<int64_t>::max();
      http.busy_poll_us = ForkGeneration() == created_generation
                              ? options.busy_poll_us
                              : options.forked_busy_poll_us;
      return io::HttpConnection::Open(endpoint, http, tls_context);
    });
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpClient::~HttpClient() = default;

arrow::Result<std::shared_ptr<HttpClient>> HttpClient::Make(ClientOptions options) {
  auto impl = std::make_unique<Impl>();
  bool https = false;
  std::string_view url = options.base_url;
  if (url.rfind("http://", 0) == 0) {
    url.remove_prefix(7);
  } else if (url.rfind("https://", 0) == 0) {
    url.remove_prefix(8);
    https = true;
  } else {
    return arrow::Status::Invalid(
        "Invalid remote URL '", options.base_url,
        "': expected http://host[:port] or https://host[:port]");
  }
  const size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  std::string prefix =
      slash == std::string_view::npos ? "" : std::string(url.substr(slash));
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  int port = https ? 443 : 80;
  std::string_view host = authority;
  const size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos &&
      authority.find(']', colon) == std::string_view::npos) {
    host = authority.substr(0, colon);
    std::string_view digits = authority.substr(colon + 1);
    if (digits.empty() || digits.size() > 5 ||
        !std::all_of(digits.begin(), digits.end(),
                     [](char c) { return c >= '0' && c <= '9'; }))
      return arrow::Status::Invalid("Invalid port in remote URL '", options.base_url,
                                    "'");
    port = std::stoi(std::string(digits));
    if (port < 1 || port > 65535)
      return arrow::Status::Invalid("Invalid port in remote URL '", options.base_url,
                                    "'");
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    return arrow::Status::Invalid("Invalid remote URL '", options.base_url, "': no host");
  if (options.retry.retries < 0 || options.retry.connect_retries < 0 ||
      options.retry.read_retries < 0)
    return arrow::Status::Invalid("retry_config retries must not be negative");
  if (!(options.retry.backoff_factor >= 0) || !(options.retry.backoff_jitter >= 0))
    return arrow::Status::Invalid(
        "retry_config backoff_factor and backoff_jitter must "
        "not be negative");
  if (!(options.connect_timeout_s > 0) || !(options.read_timeout_s > 0) ||
      (options.timeout_s && !(*options.timeout_s > 0)))
    return arrow::Status::Invalid("timeout_config timeouts must be positive");
  for (int64_t us : {options.busy_poll_us, options.forked_busy_poll_us}) {
    if (us < 0 || us > kMaxBusyPollUs) {
      return arrow::Status::Invalid("busy_poll_us must be in [0, ", kMaxBusyPollUs,
                                    "], not ", us);
    }
  }
  impl->endpoint = io::Endpoint{https ? "https" : "http", std::string(host), port};
  impl->where = impl->endpoint.host + ":" + std::to_string(port);
  impl->prefix = std::move(prefix);
  if (https) {
    // A CA file that cannot be loaded fails each request, as a connect failure.
    impl->tls = io::TlsContext::Make(options.verify_tls, options.ca_cert_path);
  }
  io::HttpConnectionPool::Options pool;
  pool.max_idle = options.max_idle_connections;
  pool.idle_timeout_s = options.pool_idle_timeout_s;
  impl->pool = std::make_unique<io::HttpConnectionPool>(pool);
  impl->options = std::move(options);
  return std::shared_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

const ClientOptions& HttpClient::options() const { return impl_->options; }

ClientStats HttpClient::stats() const { return impl_->pool->stats(); }

bool HttpClient::TakesInAskedOrder() const {
  return impl_->takes_in_asked_order.load(std::memory_order_relaxed);
}

namespace {

bool SafeInHeader(std::string_view text) {
  return text.find_first_of("\r\n", 0) == std::string_view::npos &&
         text.find('\0') == std::string_view::npos;
}

}  // namespace

// The request line and headers of `request`, with the blank line: the client's headers,
// x-request-id, the request's own, then `dynamic` (this attempt's from the header
// source); each replaces the earlier ones of the same name, compared without case, as
// LanceDB's do. Then Content-Type and Content-Length.
arrow::Result<std::string> HttpClient::RequestHead(const Impl& impl,
                                                   const HttpRequest& request,
                                                   const HeaderList& dynamic) {
  if (!SafeInHeader(request.method) || !SafeInHeader(request.path) ||
      request.method.find(' ') != std::string::npos ||
      request.path.find(' ') != std::string::npos) {
    return arrow::Status::Invalid("Invalid request line: '", request.method.substr(0, 20),
                                  " ", request.path.substr(0, 200), "'");
  }
  std::string head;
  head.reserve(512);
  head.append(request.method).append(" ").append(impl.prefix).append(request.path);
  head.append(" HTTP/1.1\r\nHost: ").append(impl.endpoint.HostHeader()).append("\r\n");
  bool user_agent = false;
  auto add = [&](const std::string& name, const std::string& value) -> arrow::Status {
    if (name.empty() || !SafeInHeader(name) || !SafeInHeader(value) ||
        name.find_first_of(": \t") != std::string::npos) {
      return arrow::Status::Invalid("Invalid HTTP header '", name.substr(0, 100),
                                    "': names and values may not hold line breaks");
    }
    user_agent = user_agent || io::EqualsIgnoreCase(name, "User-Agent");
    head.append(name).append(": ").append(value).append("\r\n");
    return arrow::Status::OK();
  };
  auto named_in = [](const HeaderList& list, const std::string& name) {
    return std::any_of(list.begin(), list.end(), [&](const auto& header) {
      return io::EqualsIgnoreCase(header.first, name);
    });
  };
  for (const auto& [name, value] : impl.options.headers) {
    if (!named_in(request.headers, name) && !named_in(dynamic, name)) {
      ARROW_RETURN_NOT_OK(add(name, value));
    }
  }
  ARROW_RETURN_NOT_OK(add("x-request-id", request.request_id));
  for (const auto& [name, value] : request.headers) {
    if (!named_in(dynamic, name)) ARROW_RETURN_NOT_OK(add(name, value));
  }
  for (const auto& [name, value] : dynamic) ARROW_RETURN_NOT_OK(add(name, value));
  if (!request.content_type.empty()) {
    ARROW_RETURN_NOT_OK(add("Content-Type", request.content_type));
  }
  if (!user_agent) head.append("User-Agent: riffledb\r\n");
  head.append("Accept: */*\r\n");
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT") {
    head.append("Content-Length: ").append(std::to_string(request.body.size()));
    head.append("\r\n");
  }
  head.append("\r\n");
  return head;
}

arrow::Result<HttpResponse> HttpClient::Send(HttpRequest request) const {
  const Impl& impl = *impl_;
  const ClientOptions& options = impl.options;
  const RetryOptions& retry = options.retry;
  if (request.request_id.empty()) request.request_id = NewRequestId();
  std::optional<Clock::time_point> deadline;
  if (options.timeout_s) {
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(*options.timeout_s));
  }

  HttpErrorDetail::Fields error;
  error.request_id = request.request_id;
  error.max_request_failures = retry.retries;
  error.max_connect_failures = retry.connect_retries;
  error.max_read_failures = retry.read_retries;
  const std::string what = request.method + " " + request.path;

  auto fail = [&](bool exhausted) {
    error.retries_exhausted = exhausted;
    std::string message = error.message;
    if (exhausted) {
      message = "Hit retry limit for request_id=" + error.request_id +
                " (request_failures=" + std::to_string(error.request_failures) + "/" +
                std::to_string(error.max_request_failures) +
                ", connect_failures=" + std::to_string(error.connect_failures) + "/" +
                std::to_string(error.max_connect_failures) +
                ", read_failures=" + std::to_string(error.read_failures) + "/" +
                std::to_string(error.max_read_failures) + ")";
    }
    return arrow::Status(arrow::StatusCode::IOError, std::move(message),
                         std::make_shared<HttpErrorDetail>(error));
  };

  // Without a header source the head is the same for every attempt.
  std::string head;
  if (!request.header_source) {
    ARROW_ASSIGN_OR_RAISE(head, RequestHead(impl, request, {}));
  }
  // Seeded on the first retry: seeding a Mersenne Twister fills 312 words, which every
  // request would pay for.
  std::optional<std::mt19937_64> jitter_rng;
  for (int attempt = 0;; ++attempt) {
    if (request.header_source) {
      ARROW_ASSIGN_OR_RAISE(const HeaderList dynamic, request.header_source());
      ARROW_ASSIGN_OR_RAISE(head, RequestHead(impl, request, dynamic));
    }
    double connect_s = options.connect_timeout_s, read_s = options.read_timeout_s;
    if (deadline) {
      const double left = std::chrono::duration<double>(*deadline - Clock::now()).count();
      connect_s = std::min(connect_s, left);
      read_s = std::min(read_s, left);
    }
    arrow::Result<io::HttpResponse> result = [&]() -> arrow::Result<io::HttpResponse> {
      // Given back when it goes: pooled again only if whole and keep-alive.
      ARROW_ASSIGN_OR_RAISE(auto lease, impl.Acquire(connect_s, read_s));
      io::HttpConnection& conn = lease.connection();
      conn.SetIoTimeout(std::max(read_s, 0.001));
      const arrow::Status written = conn.Send(head, request.body);
      return written.ok() ? conn.Receive(request.method)
                          : arrow::Result<io::HttpResponse>(written);
    }();
    const bool sent = result.ok();
    io::HttpFailureInfo transport{io::HttpFailure::kReceive, ""};
    std::string failure;
    if (!sent) {
      if (auto info = io::GetHttpFailure(result.status())) transport = *info;
      failure = TransportFailure(transport, impl.where);
    }

    bool retryable = false;
    if (!sent) {
      error.status_code.reset();
      error.message =
          "Http error: (request_id=" + request.request_id + ") " + what + ": " + failure;
      if (IsConnectError(transport.step)) {
        ++error.connect_failures;
        retryable = error.connect_failures < retry.connect_retries;
      } else {
        ++error.read_failures;
        retryable = error.read_failures < retry.read_retries;
      }
      if (!request.retry) return fail(false);
    } else {
      io::HttpResponse& res = *result;
      if (res.status >= 200 && res.status < 300) {
        HttpResponse response;
        response.status = res.status;
        response.body = std::move(res.body);
        response.request_id = request.request_id;
        for (auto& [name, value] : res.headers) {
          response.headers.emplace_back(Lower(std::move(name)), std::move(value));
          if (response.headers.back().first == kTakeOrderHeader &&
              response.headers.back().second == kTakeOrderAsked) {
            impl.takes_in_asked_order.store(true, std::memory_order_relaxed);
          }
        }
        return response;
      }
      error.status_code = res.status;
      const std::string reason = *io::ReasonPhrase(res.status) != '\0'
                                     ? io::ReasonPhrase(res.status)
                                     : res.reason;
      error.message = "Http error: (request_id=" + request.request_id + ") " +
                      std::to_string(res.status) + " " + reason + ": " + res.body;
      const bool listed = std::find(retry.statuses.begin(), retry.statuses.end(),
                                    res.status) != retry.statuses.end();
      if (!request.retry || !listed) return fail(false);
      ++error.request_failures;
      retryable = error.request_failures < retry.retries;
    }
    if (!retryable) return fail(true);
    const int failures =
        error.request_failures + error.connect_failures + error.read_failures;
    double wait = retry.backoff_factor * std::pow(2.0, failures);
    if (retry.backoff_jitter > 0) {
      if (!jitter_rng) jitter_rng.emplace(std::hash<std::string>{}(request.request_id));
      wait +=
          std::uniform_real_distribution<double>(0, retry.backoff_jitter)(*jitter_rng);
    }
    if (deadline) {
      const double left = std::chrono::duration<double>(*deadline - Clock::now()).count();
      if (left <= wait) return fail(true);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
}

}  // namespace riffledb::remote
