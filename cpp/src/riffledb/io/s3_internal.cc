#include "riffledb/io/s3_internal.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>

namespace riffledb::io::internal {

namespace {

char ToLower(char c) {
  return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = ToLower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// SigV4's Trimall: no leading or trailing blanks, runs of blanks as one space.
std::string TrimAll(std::string_view s) {
  s = Trim(s);
  std::string out;
  out.reserve(s.size());
  bool blank = false;
  for (char c : s) {
    if (c == ' ' || c == '\t') {
      blank = true;
      continue;
    }
    if (blank) out += ' ';
    blank = false;
    out += c;
  }
  return out;
}

std::optional<std::string> FindHeader(
    const std::vector<std::pair<std::string, std::string>>& headers,
    std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return std::nullopt;
}

std::span<const uint8_t> AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Hashes

Sha256Digest Sha256(std::span<const uint8_t> data) {
  Sha256Digest digest{};
  unsigned int size = 0;
  // EVP_Digest cannot fail for SHA-256 short of memory exhaustion inside OpenSSL.
  EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return digest;
}

Sha256Digest Sha256(std::string_view data) { return Sha256(AsBytes(data)); }

Sha256Digest HmacSha256(std::span<const uint8_t> key, std::string_view data) {
  Sha256Digest digest{};
  unsigned int size = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data(),
       &size);
  return digest;
}

std::string HexEncode(std::span<const uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// SigV4

std::string UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto b = static_cast<unsigned char>(c);
    const bool unreserved = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') ||
                            (b >= '0' && b <= '9') || b == '-' || b == '_' || b == '.' ||
                            b == '~';
    if (unreserved || (keep_slash && b == '/')) {
      out += c;
    } else {
      out += '%';
      out += kHex[b >> 4];
      out += kHex[b & 0xf];
    }
  }
  return out;
}

std::optional<std::string> HttpRequest::Header(std::string_view name) const {
  return FindHeader(headers, name);
}

namespace {

// Encoded pairs sorted by key, then value (SigV4's canonical query string, and what is
// sent).
std::string CanonicalQuery(
    const std::vector<std::pair<std::string, std::string>>& query) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(query.size());
  for (const auto& [key, value] : query) {
    encoded.emplace_back(UriEncode(key, false), UriEncode(value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [key, value] : encoded) {
    if (!out.empty()) out += '&';
    out += key;
    out += '=';
    out += value;
  }
  return out;
}

}  // namespace

std::string HttpRequest::Target() const {
  std::string target = path.empty() ? "/" : path;
  if (!query.empty()) target += "?" + CanonicalQuery(query);
  return target;
}

Sha256Digest SigningKey(std::string_view secret_access_key, std::string_view date,
                        std::string_view region, std::string_view service) {
  const std::string secret = "AWS4" + std::string(secret_access_key);
  Sha256Digest key = HmacSha256(AsBytes(secret), date);
  key = HmacSha256(key, region);
  key = HmacSha256(key, service);
  return HmacSha256(key, "aws4_request");
}

std::string CanonicalRequest(const HttpRequest& request, std::string_view host,
                             std::string_view payload_sha256,
                             std::string* signed_headers) {
  // Lower-case names, sorted; values of repeated names joined with ',' in order.
  std::map<std::string, std::string> headers;
  headers["host"] = TrimAll(host);
  for (const auto& [name, value] : request.headers) {
    std::string key = Lower(Trim(name));
    auto [it, inserted] = headers.emplace(key, TrimAll(value));
    if (!inserted) it->second += "," + TrimAll(value);
  }
  std::string canonical_headers;
  std::string names;
  for (const auto& [name, value] : headers) {
    canonical_headers += name + ":" + value + "\n";
    if (!names.empty()) names += ';';
    names += name;
  }
  std::string out = request.method + "\n";
  out += (request.path.empty() ? "/" : request.path) + "\n";
  out += CanonicalQuery(request.query) + "\n";
  out += canonical_headers + "\n";
  out += names + "\n";
  out += payload_sha256;
  if (signed_headers != nullptr) *signed_headers = std::move(names);
  return out;
}

void SignRequest(const Credentials& credentials, std::string_view region,
                 std::string_view service, std::string_view amz_date,
                 std::string_view host, HttpRequest* request) {
  auto set = [&](std::string_view name, std::string value) {
    auto& headers = request->headers;
    headers.erase(
        std::remove_if(headers.begin(), headers.end(),
                       [&](const auto& h) { return EqualsIgnoreCase(h.first, name); }),
        headers.end());
    headers.emplace_back(std::string(name), std::move(value));
  };
  const std::string payload_sha256 = HexEncode(Sha256(request->body));
  set("X-Amz-Date", std::string(amz_date));
  set("X-Amz-Content-SHA256", payload_sha256);
  if (credentials.access_key_id.empty()) return;  // anonymous
  if (!credentials.session_token.empty()) {
    set("X-Amz-Security-Token", credentials.session_token);
  }
  std::string signed_headers;
  const std::string canonical =
      CanonicalRequest(*request, host, payload_sha256, &signed_headers);
  const std::string_view date = amz_date.substr(0, 8);
  const std::string scope = std::string(date) + "/" + std::string(region) + "/" +
                            std::string(service) + "/aws4_request";
  const std::string string_to_sign = "AWS4-HMAC-SHA256\n" + std::string(amz_date) + "\n" +
                                     scope + "\n" + HexEncode(Sha256(canonical));
  const std::string signature = HexEncode(HmacSha256(
      SigningKey(credentials.secret_access_key, date, region, service), string_to_sign));
  set("Authorization", "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" +
                           scope + ", SignedHeaders=" + signed_headers +
                           ", Signature=" + signature);
}

std::string AmzDateNow() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char out[32];
  std::strftime(out, sizeof(out), "%Y%m%dT%H%M%SZ", &utc);
  return out;
}

// ---------------------------------------------------------------------------------------
// Endpoints

std::string Endpoint::HostHeader() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string out = ipv6 ? "[" + host + "]" : host;
  const int default_port = scheme == "https" ? 443 : 80;
  if (port != default_port) out += ":" + std::to_string(port);
  return out;
}

std::string Endpoint::ToString() const { return scheme + "://" + HostHeader(); }

arrow::Result<Endpoint> ParseEndpoint(std::string_view url) {
  auto invalid = [&](std::string_view why) {
    return arrow::Status::Invalid("Invalid endpoint '", url, "': ", why);
  };
  if (url.find('@') != std::string_view::npos) {
    // Not echoed: user info may hold a password.
    return arrow::Status::Invalid(
        "Invalid endpoint: user info (user:password@) is not allowed; pass credentials "
        "as storage options");
  }
  Endpoint endpoint;
  std::string_view rest;
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos) {
    return invalid("expected http://host[:port] or https://host[:port]");
  }
  endpoint.scheme = Lower(url.substr(0, sep));
  if (endpoint.scheme != "http" && endpoint.scheme != "https") {
    return invalid("the scheme must be http or https");
  }
  rest = url.substr(sep + 3);
  if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find_first_of("/?#") != std::string_view::npos) {
    return invalid("only a scheme, a host and a port are allowed (no path)");
  }
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) return invalid("unterminated IPv6 address");
    endpoint.host = std::string(rest.substr(1, close - 1));
    rest.remove_prefix(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return invalid("junk after the IPv6 address");
      port = rest.substr(1);
    }
  } else {
    const size_t colon = rest.find(':');
    endpoint.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port = rest.substr(colon + 1);
  }
  if (endpoint.host.empty()) return invalid("no host");
  endpoint.port = endpoint.scheme == "https" ? 443 : 80;
  if (!port.empty() || rest.ends_with(":")) {
    int value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value <= 0 ||
        value > 65535) {
      return invalid("the port must be a number from 1 to 65535");
    }
    endpoint.port = value;
  }
  return endpoint;
}

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  return FindHeader(headers, name);
}

// ---------------------------------------------------------------------------------------
// HTTP

namespace {

constexpr size_t kMaxHeaderBytes = 64 << 10;

// Blocks SIGPIPE in this thread while alive: OpenSSL writes to its socket with write(),
// which raises SIGPIPE when the peer has closed, and the default action kills the
// process. A SIGPIPE raised meanwhile is consumed before the mask is restored.
class SigpipeBlock {
 public:
  SigpipeBlock() {
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGPIPE);
    blocked_ = ::pthread_sigmask(SIG_BLOCK, &block, &old_) == 0;
  }
  ~SigpipeBlock() {
    if (!blocked_) return;
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      ::sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        const struct timespec zero { 0, 0 };
        while (::sigtimedwait(&pipe, nullptr, &zero) < 0 && errno == EINTR) {
        }
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlock(const SigpipeBlock&) = delete;
  SigpipeBlock& operator=(const SigpipeBlock&) = delete;

 private:
  sigset_t old_;
  bool blocked_ = false;
  bool was_pending_ = false;
};

// The last OpenSSL error of this thread, as text (and the queue cleared).
std::string OpenSslError() {
  unsigned long code = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
  std::string out;
  if (code != 0) {
    char text[256];
    ERR_error_string_n(code, text, sizeof(text));
    out = text;
  }
  ERR_clear_error();
  return out.empty() ? "unknown TLS error" : out;
}

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const { SSL_free(ssl); }
};

// Where a response is read from: a connection, or bytes in memory (ParseHttpResponse).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads what is available (at least one byte); 0 at the end of the stream.
  virtual arrow::Result<size_t> Receive(char* out, size_t size) = 0;
  // An IOError saying what failed, naming the peer.
  virtual arrow::Status Error(std::string_view what, const std::string& detail) const = 0;
};

// One connection: a socket, and a TLS session over it for https.
class Connection : public ByteSource {
 public:
  Connection(const Endpoint& endpoint, const HttpOptions& options)
      : endpoint_(endpoint), options_(options) {}
  ~Connection() {
    ssl_.reset();  // without SSL_shutdown: the request said Connection: close
    if (fd_ >= 0) ::close(fd_);
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  arrow::Status Open() {
    ARROW_RETURN_NOT_OK(ConnectSocket());
    if (endpoint_.scheme == "https") ARROW_RETURN_NOT_OK(StartTls());
    return arrow::Status::OK();
  }

  arrow::Status SendAll(std::string_view data) {
    while (!data.empty()) {
      if (ssl_) {
        size_t written = 0;
        if (SSL_write_ex(ssl_.get(), data.data(), data.size(), &written) != 1) {
          return Error("send the request to", TlsFailure());
        }
        data.remove_prefix(written);
        continue;
      }
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error("send the request to", ErrnoText(errno));
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return arrow::Status::OK();
  }

  arrow::Result<size_t> Receive(char* out, size_t size) override {
    while (true) {
      if (ssl_) {
        size_t read = 0;
        if (SSL_read_ex(ssl_.get(), out, size, &read) == 1) return read;
        const int err = SSL_get_error(ssl_.get(), 0);
        if (err == SSL_ERROR_ZERO_RETURN) return 0;
        return Error("read the response from", TlsFailure());
      }
      ssize_t n = ::recv(fd_, out, size, 0);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno == EINTR) continue;
      return Error("read the response from", ErrnoText(errno));
    }
  }

  arrow::Status Error(std::string_view what, const std::string& detail) const override {
    return arrow::Status::IOError("Cannot ", what, " ", endpoint_.ToString(), ": ",
                                  detail);
  }

 private:
  static std::string ErrnoText(int err) {
    if (err == EAGAIN || err == EWOULDBLOCK) return "timed out";
    return std::strerror(err);
  }

  // The OpenSSL error of the last call, or errno's (a timeout, a reset) if it has none.
  std::string TlsFailure() {
    const int saved_errno = errno;
    std::string text = OpenSslError();
    if (text == "unknown TLS error" && saved_errno != 0) text = ErrnoText(saved_errno);
    return text;
  }

  static struct timeval ToTimeval(double seconds) {
    struct timeval tv {};
    if (seconds <= 0) return tv;  // 0: no timeout
    tv.tv_sec = static_cast<time_t>(seconds);
    tv.tv_usec =
        static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
    if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;
    return tv;
  }

  arrow::Status ConnectSocket() {
    struct addrinfo hints {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo* addrs = nullptr;
    const std::string port = std::to_string(endpoint_.port);
    const int rc = ::getaddrinfo(endpoint_.host.c_str(), port.c_str(), &hints, &addrs);
    if (rc != 0) return Error("resolve", ::gai_strerror(rc));
    std::unique_ptr<struct addrinfo, decltype(&::freeaddrinfo)> guard(addrs,
                                                                      &::freeaddrinfo);
    std::string last_error = "no address";
    for (auto* addr = addrs; addr != nullptr; addr = addr->ai_next) {
      int fd = ::socket(addr->ai_family, addr->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        addr->ai_protocol);
      if (fd < 0) {
        last_error = ErrnoText(errno);
        continue;
      }
      int err = 0;
      if (::connect(fd, addr->ai_addr, addr->ai_addrlen) != 0) {
        err = errno;
        if (err == EINPROGRESS) {
          struct pollfd pfd {
            fd, POLLOUT, 0
          };
          const int timeout_ms =
              options_.connect_timeout_seconds > 0
                  ? std::max(1, static_cast<int>(options_.connect_timeout_seconds * 1000))
                  : -1;
          int ready;
          do {
            ready = ::poll(&pfd, 1, timeout_ms);
          } while (ready < 0 && errno == EINTR);
          if (ready == 0) {
            err = ETIMEDOUT;
          } else if (ready < 0) {
            err = errno;
          } else {
            socklen_t len = sizeof(err);
            if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
          }
        }
      }
      if (err != 0) {
        last_error = err == ETIMEDOUT ? "connection timed out" : std::strerror(err);
        ::close(fd);
        continue;
      }
      // Blocking from here on, with timeouts on each send and receive.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      struct timeval tv = ToTimeval(options_.io_timeout_seconds);
      ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      fd_ = fd;
      return arrow::Status::OK();
    }
    return Error("connect to", last_error);
  }

  arrow::Status StartTls() {
    ctx_.reset(SSL_CTX_new(TLS_client_method()));
    if (!ctx_) return Error("set up TLS for", OpenSslError());
    SSL_CTX_set_min_proto_version(ctx_.get(), TLS1_2_VERSION);
    // The system's trust store (SSL_CERT_FILE / SSL_CERT_DIR override it).
    if (SSL_CTX_set_default_verify_paths(ctx_.get()) != 1) {
      return Error("load the trusted certificates for", OpenSslError());
    }
    SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_PEER, nullptr);
    // A response delimited by the end of the connection ends at the TCP close; its
    // framing is checked by the parser, not by a close_notify servers often omit.
    SSL_CTX_set_options(ctx_.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
    ssl_.reset(SSL_new(ctx_.get()));
    if (!ssl_) return Error("set up TLS for", OpenSslError());
    unsigned char ip[16];
    const bool is_ip = ::inet_pton(AF_INET, endpoint_.host.c_str(), ip) == 1 ||
                       ::inet_pton(AF_INET6, endpoint_.host.c_str(), ip) == 1;
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
    if (is_ip) {
      if (X509_VERIFY_PARAM_set1_ip_asc(param, endpoint_.host.c_str()) != 1) {
        return Error("set up TLS for", OpenSslError());
      }
    } else {
      X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
      if (SSL_set_tlsext_host_name(ssl_.get(), endpoint_.host.c_str()) != 1 ||
          SSL_set1_host(ssl_.get(), endpoint_.host.c_str()) != 1) {
        return Error("set up TLS for", OpenSslError());
      }
    }
    SSL_set_fd(ssl_.get(), fd_);
    if (SSL_connect(ssl_.get()) != 1) {
      const long verify = SSL_get_verify_result(ssl_.get());  // NOLINT(runtime/int)
      if (verify != X509_V_OK) {
        ERR_clear_error();
        return Error("verify the TLS certificate of",
                     X509_verify_cert_error_string(verify));
      }
      return Error("start TLS with", TlsFailure());
    }
    return arrow::Status::OK();
  }

  const Endpoint& endpoint_;
  const HttpOptions& options_;
  int fd_ = -1;
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx_;
  std::unique_ptr<SSL, SslFree> ssl_;
};

// Buffered reads of one response.
class ResponseReader {
 public:
  explicit ResponseReader(ByteSource* conn) : conn_(conn) {}

  // Reads one CRLF-terminated line (without the CRLF); IOError past `max` bytes or at
  // the end of the stream.
  arrow::Result<std::string> ReadLine(size_t max, std::string_view what) {
    while (true) {
      const size_t end = buffer_.find("\r\n", pos_);
      if (end != std::string::npos) {
        std::string line = buffer_.substr(pos_, end - pos_);
        pos_ = end + 2;
        return line;
      }
      if (buffer_.size() - pos_ > max) {
        return conn_->Error("read the response from", std::string(what) + " too long");
      }
      ARROW_ASSIGN_OR_RAISE(bool more, Fill());
      if (!more) {
        return conn_->Error(
            "read the response from",
            "the connection closed before the end of the " + std::string(what));
      }
    }
  }

  arrow::Status ReadExact(size_t n, std::string* out, std::string_view what) {
    while (buffer_.size() - pos_ < n) {
      ARROW_ASSIGN_OR_RAISE(bool more, Fill());
      if (!more) {
        return conn_->Error("read the response from",
                            "the connection closed before the end of the " +
                                std::string(what) + " (" +
                                std::to_string(buffer_.size() - pos_) + " of " +
                                std::to_string(n) + " bytes)");
      }
    }
    out->append(buffer_, pos_, n);
    pos_ += n;
    return arrow::Status::OK();
  }

  arrow::Status ReadToEnd(std::string* out, int64_t max) {
    while (true) {
      out->append(buffer_, pos_, std::string::npos);
      buffer_.clear();
      pos_ = 0;
      if (static_cast<int64_t>(out->size()) > max) {
        return conn_->Error("read the response from", "the body is too long");
      }
      ARROW_ASSIGN_OR_RAISE(bool more, Fill());
      if (!more) return arrow::Status::OK();
    }
  }

 private:
  arrow::Result<bool> Fill() {
    if (pos_ > 0 && pos_ == buffer_.size()) {
      buffer_.clear();
      pos_ = 0;
    }
    char chunk[16384];
    ARROW_ASSIGN_OR_RAISE(size_t n, conn_->Receive(chunk, sizeof(chunk)));
    buffer_.append(chunk, n);
    return n > 0;
  }

  ByteSource* conn_;
  std::string buffer_;
  size_t pos_ = 0;
};

arrow::Result<int64_t> ParseSize(std::string_view text, int base) {
  text = Trim(text);
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() ||
      value < 0) {
    return arrow::Status::Invalid("bad length '", text, "'");
  }
  return value;
}

arrow::Status ReadChunkedBody(ResponseReader* reader, ByteSource* conn,
                              const HttpOptions& options, std::string* body) {
  while (true) {
    ARROW_ASSIGN_OR_RAISE(std::string line, reader->ReadLine(4096, "chunk header"));
    const std::string_view size_text = std::string_view(line).substr(0, line.find(';'));
    auto size = ParseSize(size_text, 16);
    if (!size.ok()) {
      return conn->Error("read the response from",
                         "bad chunk size '" + std::string(size_text) + "'");
    }
    if (*size == 0) break;
    if (static_cast<int64_t>(body->size()) + *size > options.max_body_bytes) {
      return conn->Error("read the response from", "the body is too long");
    }
    ARROW_RETURN_NOT_OK(reader->ReadExact(static_cast<size_t>(*size), body, "chunk"));
    std::string crlf;
    ARROW_RETURN_NOT_OK(reader->ReadExact(2, &crlf, "chunk"));
    if (crlf != "\r\n") {
      return conn->Error("read the response from", "a chunk does not end with CRLF");
    }
  }
  // Trailers, up to the empty line.
  while (true) {
    ARROW_ASSIGN_OR_RAISE(std::string line, reader->ReadLine(kMaxHeaderBytes, "trailer"));
    if (line.empty()) return arrow::Status::OK();
  }
}

// The status line and headers of one response.
arrow::Status ReadHead(ResponseReader* reader, ByteSource* conn, HttpResponse* response) {
  ARROW_ASSIGN_OR_RAISE(std::string status_line,
                        reader->ReadLine(kMaxHeaderBytes, "status line"));
  // HTTP/1.x SP 3DIGIT SP reason
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 ||
      status_line[8] != ' ') {
    return conn->Error("read the response from", "not an HTTP/1.x status line: '" +
                                                     status_line.substr(0, 80) + "'");
  }
  int status = 0;
  auto [ptr, ec] =
      std::from_chars(status_line.data() + 9, status_line.data() + 12, status);
  if (ec != std::errc() || ptr != status_line.data() + 12 || status < 100) {
    return conn->Error("read the response from",
                       "bad status in '" + status_line.substr(0, 80) + "'");
  }
  response->status = status;
  response->reason = status_line.size() > 13 ? status_line.substr(13) : "";
  response->headers.clear();
  size_t header_bytes = 0;
  while (true) {
    ARROW_ASSIGN_OR_RAISE(std::string line, reader->ReadLine(kMaxHeaderBytes, "headers"));
    if (line.empty()) return arrow::Status::OK();
    header_bytes += line.size();
    if (header_bytes > kMaxHeaderBytes) {
      return conn->Error("read the response from", "headers too long");
    }
    const size_t colon = line.find(':');
    if (colon == std::string::npos || colon == 0) {
      return conn->Error("read the response from",
                         "bad header line '" + line.substr(0, 80) + "'");
    }
    response->headers.emplace_back(std::string(Trim(line.substr(0, colon))),
                                   std::string(Trim(line.substr(colon + 1))));
  }
}

// One response, whole: interim 1xx responses skipped, the body framed by
// Content-Length, chunked, or the end of the stream (none after HEAD, 204 and 304).
arrow::Result<HttpResponse> ReadResponse(ByteSource* source, std::string_view method,
                                         const HttpOptions& options) {
  ResponseReader reader(source);
  HttpResponse response;
  do {
    ARROW_RETURN_NOT_OK(ReadHead(&reader, source, &response));
  } while (response.status >= 100 && response.status < 200);

  if (method == "HEAD" || response.status == 204 || response.status == 304) {
    return response;
  }
  const auto encoding = response.Header("Transfer-Encoding");
  const auto length = response.Header("Content-Length");
  if (encoding && EqualsIgnoreCase(Trim(*encoding), "chunked")) {
    ARROW_RETURN_NOT_OK(ReadChunkedBody(&reader, source, options, &response.body));
  } else if (encoding) {
    return source->Error("read the response from",
                         "unsupported Transfer-Encoding '" + *encoding + "'");
  } else if (length) {
    auto size = ParseSize(*length, 10);
    if (!size.ok()) {
      return source->Error("read the response from",
                           "bad Content-Length '" + *length + "'");
    }
    if (*size > options.max_body_bytes) {
      return source->Error("read the response from", "the body is too long");
    }
    ARROW_RETURN_NOT_OK(
        reader.ReadExact(static_cast<size_t>(*size), &response.body, "body"));
  } else {
    ARROW_RETURN_NOT_OK(reader.ReadToEnd(&response.body, options.max_body_bytes));
  }
  return response;
}

// A response in memory, handed out a few bytes at a time so that every buffering path
// of ResponseReader runs.
class MemorySource : public ByteSource {
 public:
  explicit MemorySource(std::string_view bytes) : bytes_(bytes) {}
  arrow::Result<size_t> Receive(char* out, size_t size) override {
    const size_t n = std::min({size, bytes_.size(), kPiece});
    std::memcpy(out, bytes_.data(), n);
    bytes_.remove_prefix(n);
    return n;
  }
  arrow::Status Error(std::string_view what, const std::string& detail) const override {
    return arrow::Status::IOError("Cannot ", what, " <memory>: ", detail);
  }

 private:
  static constexpr size_t kPiece = 7;
  std::string_view bytes_;
};

}  // namespace

arrow::Result<HttpResponse> SendHttpRequest(const Endpoint& endpoint,
                                            const HttpRequest& request,
                                            const HttpOptions& options) {
  SigpipeBlock no_sigpipe;
  Connection conn(endpoint, options);
  ARROW_RETURN_NOT_OK(conn.Open());

  std::string head = request.method + " " + request.Target() + " HTTP/1.1\r\n";
  head += "Host: " + endpoint.HostHeader() + "\r\n";
  for (const auto& [name, value] : request.headers) head += name + ": " + value + "\r\n";
  if (!request.body.empty() || request.method == "PUT" || request.method == "POST") {
    head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  head += "User-Agent: riffledb\r\n";
  head += "Connection: close\r\n\r\n";
  ARROW_RETURN_NOT_OK(conn.SendAll(head));
  ARROW_RETURN_NOT_OK(conn.SendAll(request.body));

  return ReadResponse(&conn, request.method, options);
}

arrow::Result<HttpResponse> ParseHttpResponse(std::string_view bytes,
                                              std::string_view method,
                                              const HttpOptions& options) {
  MemorySource source(bytes);
  return ReadResponse(&source, method, options);
}

// ---------------------------------------------------------------------------------------
// The conditional PUT

std::string S3ErrorCode(std::string_view body) {
  const size_t open = body.find("<Code>");
  if (open == std::string_view::npos) return "";
  const size_t begin = open + 6;
  const size_t close = body.find("</Code>", begin);
  if (close == std::string_view::npos || close - begin > 128) return "";
  return std::string(body.substr(begin, close - begin));
}

arrow::Status PutIfAbsent(const S3RequestConfig& config, const std::string& bucket,
                          const std::string& key, std::span<const uint8_t> data,
                          bool* conflict) {
  if (conflict != nullptr) *conflict = false;
  const std::string path = bucket + "/" + key;
  HttpRequest request;
  request.method = "PUT";
  request.path = "/" + UriEncode(bucket, false) + "/" + UriEncode(key, true);
  request.headers.emplace_back("If-None-Match", "*");
  request.body.assign(reinterpret_cast<const char*>(data.data()), data.size());
  const std::string host = config.endpoint.HostHeader();
  SignRequest(config.credentials, config.region, "s3", AmzDateNow(), host, &request);

  auto sent = SendHttpRequest(config.endpoint, request, config.http);
  if (!sent.ok()) {
    return sent.status().WithMessage(
        "Conditional PUT of '", path,
        "' failed (the object may have been created): ", sent.status().message());
  }
  const HttpResponse& response = *sent;
  if (response.status == 200 || response.status == 201) return arrow::Status::OK();
  const std::string code = S3ErrorCode(response.body);
  const std::string described =
      "HTTP " + std::to_string(response.status) + (code.empty() ? "" : " " + code);
  if (response.status == 412) {
    return arrow::Status::AlreadyExists("File already exists: '", path, "' (", described,
                                        ")");
  }
  if (response.status == 409) {
    if (conflict != nullptr) *conflict = true;
    return arrow::Status::IOError(
        "Conditional PUT of '", path, "' failed: ", described,
        " (a conflicting conditional write to the same key was in progress; retry)");
  }
  return arrow::Status::IOError("Conditional PUT of '", path, "' failed: ", described);
}

arrow::Result<std::string> GetRange(const S3RequestConfig& config,
                                    const std::string& bucket, const std::string& key,
                                    int64_t offset, int64_t length) {
  const std::string path = bucket + "/" + key;
  const std::string range =
      "bytes=" + std::to_string(offset) + "-" + std::to_string(offset + length - 1);
  auto failed = [&](const std::string& why) {
    return arrow::Status::IOError("Ranged GET of '", path, "' (", range,
                                  ") failed: ", why);
  };
  if (offset < 0 || length <= 0) return failed("an empty or negative range");
  HttpRequest request;
  request.method = "GET";
  request.path = "/" + UriEncode(bucket, false) + "/" + UriEncode(key, true);
  request.headers.emplace_back("Range", range);
  const std::string host = config.endpoint.HostHeader();
  SignRequest(config.credentials, config.region, "s3", AmzDateNow(), host, &request);

  HttpOptions http = config.http;
  // Room for the body asked for, and for an error document.
  http.max_body_bytes = std::max<int64_t>(http.max_body_bytes, length);
  auto sent = SendHttpRequest(config.endpoint, request, http);
  if (!sent.ok()) return failed(sent.status().message());
  HttpResponse& response = *sent;
  if (response.status != 206 && !(response.status == 200 && offset == 0)) {
    const std::string code = S3ErrorCode(response.body);
    return failed("HTTP " + std::to_string(response.status) +
                  (code.empty() ? "" : " " + code));
  }
  if (static_cast<int64_t>(response.body.size()) != length) {
    return failed("the response has " + std::to_string(response.body.size()) +
                  " bytes instead of " + std::to_string(length) +
                  (response.status == 200 ? " (HTTP 200: the range was ignored)" : ""));
  }
  return std::move(response.body);
}

}  // namespace riffledb::io::internal
