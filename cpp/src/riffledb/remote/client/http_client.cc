#include "riffledb/remote/client/http_client.h"

#include <httplib.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>
#include <unordered_set>

#include "riffledb/util/fork_safe_mutex.h"
#include "riffledb/util/pid.h"

namespace riffledb::remote {

namespace {

using Clock = std::chrono::steady_clock;

// One keep-alive connection (a cpp-httplib client holds one socket at a time). The
// socket-options callback records each socket it opens, with its inode, so that a
// forked child can close its copy of exactly that socket and nothing else.
struct Connection {
  std::unique_ptr<httplib::ClientImpl> client;
  std::atomic<int> fd{-1};
  std::atomic<uint64_t> dev{0};
  std::atomic<uint64_t> ino{0};
  Clock::time_point idle_since;
};

const char* ReasonPhrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "";
  }
}

std::string Lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// Splits the microseconds of `seconds` for cpp-httplib's (sec, usec) setters.
void SetTimeouts(httplib::ClientImpl& client, double connect_s, double read_s) {
  auto split = [](double s, time_t* sec, time_t* usec) {
    s = std::max(s, 0.001);
    *sec = static_cast<time_t>(s);
    *usec = static_cast<time_t>((s - static_cast<double>(*sec)) * 1e6);
  };
  time_t sec, usec;
  split(connect_s, &sec, &usec);
  client.set_connection_timeout(sec, usec);
  split(read_s, &sec, &usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
}

bool IsConnectError(httplib::Error error) {
  switch (error) {
    case httplib::Error::Connection:
    case httplib::Error::ConnectionTimeout:
    case httplib::Error::BindIPAddress:
    case httplib::Error::SSLConnection:
    case httplib::Error::SSLLoadingCerts:
    case httplib::Error::SSLServerVerification:
      return true;
    default:
      return false;
  }
}

// A request that got no response, in words a user can act on (`where` is host:port),
// with cpp-httplib's name for it last.
std::string TransportFailure(httplib::Error error, const httplib::ClientImpl& client,
                             const std::string& where) {
  std::string words;
  switch (error) {
    case httplib::Error::Connection:
      words = "cannot connect to " + where;
      break;
    case httplib::Error::ConnectionTimeout:
      words = "connecting to " + where + " took longer than the connect timeout";
      break;
    case httplib::Error::Read:
      words = "the connection to " + where +
              " failed, closed or timed out before the whole response came";
      break;
    case httplib::Error::Write:
      words = "sending the request to " + where + " failed";
      break;
    case httplib::Error::SSLConnection:
      words = "the TLS handshake with " + where + " failed";
      break;
    case httplib::Error::SSLLoadingCerts:
      words =
          "cannot load the CA certificates (tls_config.ssl_ca_cert) to verify " + where;
      break;
    case httplib::Error::SSLServerVerification: {
      words = "the TLS certificate of " + where + " is not trusted";
      if (const auto* ssl = dynamic_cast<const httplib::SSLClient*>(&client)) {
        words += std::string(" (") +
                 X509_verify_cert_error_string(ssl->get_openssl_verify_result()) + ")";
      }
      words += ": give the CA that signed it as tls_config.ssl_ca_cert";
      break;
    }
    default:
      break;
  }
  const std::string name = httplib::to_string(error);
  return words.empty() ? name : words + " [" + name + "]";
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
  bool https = false;
  std::string host;
  int port = 0;
  std::string prefix;  // path prefix of base_url, without a trailing slash

  // The pool. A ForkSafeMutex: fork() waits for a critical section in flight, so a
  // child always finds these consistent. Critical sections do no I/O but the child's
  // close() of inherited sockets.
  mutable ForkSafeMutex mu;
  mutable uint64_t generation = ForkGeneration();         // guarded by mu
  mutable std::vector<std::unique_ptr<Connection>> idle;  // guarded by mu
  mutable std::unordered_set<Connection*> live;           // guarded by mu
  mutable ClientStats stats;                              // guarded by mu

  // In a process that inherited the pool, forgets it: closes this process's copies of
  // the inherited sockets (after checking each fd is still that socket), and leaves
  // the connection objects undestroyed. Requires mu.
  void AdoptLocked() const {
    const uint64_t current = ForkGeneration();
    if (generation == current) return;
    ClientStats fresh;
    for (Connection* conn : live) {
      const int fd = conn->fd.load();
      struct stat st;
      if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
          static_cast<uint64_t>(st.st_dev) == conn->dev.load() &&
          static_cast<uint64_t>(st.st_ino) == conn->ino.load()) {
        ::close(fd);  // never shutdown(): that would cut the parent's connection
        ++fresh.abandoned_fds;
      }
      ++fresh.abandoned_conns;
    }
    for (auto& conn : idle) {
      internal::AbandonAfterFork(std::shared_ptr<Connection>(std::move(conn)));
    }
    // The checked-out ones belonged to threads of an ancestor: nothing here owns them.
    idle.clear();
    live.clear();
    generation = current;
    stats = fresh;
  }

  std::unique_ptr<Connection> NewConnection() const {
    auto conn = std::make_unique<Connection>();
    if (https) {
      auto ssl = std::make_unique<httplib::SSLClient>(host, port);
      ssl->enable_server_certificate_verification(options.verify_tls);
      if (!options.ca_cert_path.empty()) ssl->set_ca_cert_path(options.ca_cert_path);
      conn->client = std::move(ssl);
    } else {
      conn->client = std::make_unique<httplib::ClientImpl>(host, port);
    }
    Connection* raw = conn.get();
    conn->client->set_keep_alive(true);
    conn->client->set_tcp_nodelay(true);
    conn->client->set_socket_options([raw](socket_t sock) {
      struct stat st;
      if (::fstat(sock, &st) == 0) {
        raw->dev.store(static_cast<uint64_t>(st.st_dev));
        raw->ino.store(static_cast<uint64_t>(st.st_ino));
      }
      raw->fd.store(sock);
    });
    return conn;
  }

  std::unique_ptr<Connection> Acquire() const {
    std::vector<std::unique_ptr<Connection>> expired;  // destroyed outside the lock
    std::unique_ptr<Connection> conn;
    {
      std::lock_guard<ForkSafeMutex> lock(mu);
      AdoptLocked();
      const auto now = Clock::now();
      const auto max_idle = std::chrono::duration<double>(options.pool_idle_timeout_s);
      while (!idle.empty() && conn == nullptr) {
        std::unique_ptr<Connection> candidate = std::move(idle.back());
        idle.pop_back();
        if (now - candidate->idle_since > max_idle) {
          live.erase(candidate.get());
          expired.push_back(std::move(candidate));
        } else {
          conn = std::move(candidate);
          ++stats.reused;
        }
      }
      ++stats.requests;
    }
    if (conn != nullptr) return conn;
    conn = NewConnection();
    std::lock_guard<ForkSafeMutex> lock(mu);
    AdoptLocked();
    live.insert(conn.get());
    ++stats.connections;
    return conn;
  }

  void Release(std::unique_ptr<Connection> conn, bool keep) const {
    {
      std::lock_guard<ForkSafeMutex> lock(mu);
      AdoptLocked();
      if (live.count(conn.get()) == 0) {
        // Not this process's (cannot happen: a thread stays in its process); never
        // destroy what may be an ancestor's.
        internal::AbandonAfterFork(std::shared_ptr<Connection>(std::move(conn)));
        return;
      }
      if (keep && static_cast<int>(idle.size()) < options.max_idle_connections) {
        conn->idle_since = Clock::now();
        idle.push_back(std::move(conn));
        return;
      }
      live.erase(conn.get());
    }
    conn.reset();  // this process's own: shut down and closed normally
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpClient::~HttpClient() {
  // A client destroyed in a process that inherited it must not destroy the parent's
  // connections: adopt first (closes the inherited fds, abandons the objects).
  std::vector<std::unique_ptr<Connection>> idle;
  {
    std::lock_guard<ForkSafeMutex> lock(impl_->mu);
    impl_->AdoptLocked();
    idle = std::move(impl_->idle);
    impl_->idle.clear();
    impl_->live.clear();
  }
}

arrow::Result<std::shared_ptr<HttpClient>> HttpClient::Make(ClientOptions options) {
  auto impl = std::make_unique<Impl>();
  std::string_view url = options.base_url;
  if (url.rfind("http://", 0) == 0) {
    url.remove_prefix(7);
  } else if (url.rfind("https://", 0) == 0) {
    url.remove_prefix(8);
    impl->https = true;
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
  int port = impl->https ? 443 : 80;
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
  impl->host = std::string(host);
  impl->port = port;
  impl->prefix = std::move(prefix);
  impl->options = std::move(options);
  return std::shared_ptr<HttpClient>(new HttpClient(std::move(impl)));
}

const ClientOptions& HttpClient::options() const { return impl_->options; }

ClientStats HttpClient::stats() const {
  std::lock_guard<ForkSafeMutex> lock(impl_->mu);
  impl_->AdoptLocked();
  return impl_->stats;
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

  std::mt19937_64 jitter_rng(std::hash<std::string>{}(request.request_id));
  for (int attempt = 0;; ++attempt) {
    double connect_s = options.connect_timeout_s, read_s = options.read_timeout_s;
    if (deadline) {
      const double left = std::chrono::duration<double>(*deadline - Clock::now()).count();
      connect_s = std::min(connect_s, left);
      read_s = std::min(read_s, left);
    }
    httplib::Request req;
    req.method = request.method;
    req.path = impl.prefix + request.path;
    for (const auto& [name, value] : options.headers) req.headers.emplace(name, value);
    req.headers.emplace("x-request-id", request.request_id);
    // A request's own headers (a header_provider's) replace the client's of the same
    // name, as LanceDB's (httplib::Headers compares names without case).
    for (const auto& [name, value] : request.headers) req.headers.erase(name);
    for (const auto& [name, value] : request.headers) req.headers.emplace(name, value);
    if (!request.content_type.empty())
      req.headers.emplace("Content-Type", request.content_type);
    req.body = request.retry ? request.body : std::move(request.body);

    std::unique_ptr<Connection> conn = impl.Acquire();
    SetTimeouts(*conn->client, connect_s, read_s);
    httplib::Response res;
    httplib::Error transport = httplib::Error::Success;
    const bool sent = conn->client->send(req, res, transport);
    std::string failure;  // read from the connection before it goes back to the pool
    if (!sent) {
      failure = TransportFailure(transport, *conn->client,
                                 impl.host + ":" + std::to_string(impl.port));
    }
    impl.Release(std::move(conn), sent);

    bool retryable = false;
    if (!sent) {
      error.status_code.reset();
      error.message =
          "Http error: (request_id=" + request.request_id + ") " + what + ": " + failure;
      if (IsConnectError(transport)) {
        ++error.connect_failures;
        retryable = error.connect_failures < retry.connect_retries;
      } else {
        ++error.read_failures;
        retryable = error.read_failures < retry.read_retries;
      }
      if (!request.retry) return fail(false);
    } else {
      if (res.status >= 200 && res.status < 300) {
        HttpResponse response;
        response.status = res.status;
        response.body = std::move(res.body);
        response.request_id = request.request_id;
        for (const auto& [name, value] : res.headers)
          response.headers.emplace_back(Lower(name), value);
        return response;
      }
      error.status_code = res.status;
      const std::string reason =
          *ReasonPhrase(res.status) != '\0' ? ReasonPhrase(res.status) : res.reason;
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
      wait += std::uniform_real_distribution<double>(0, retry.backoff_jitter)(jitter_rng);
    }
    if (deadline) {
      const double left = std::chrono::duration<double>(*deadline - Clock::now()).count();
      if (left <= wait) return fail(true);
    }
    std::this_thread::sleep_for(std::chrono::duration<double>(wait));
  }
}

}  // namespace riffledb::remote
