#include "riffledb/io/http_connection.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace riffledb::io {

namespace {

constexpr size_t kMaxHeaderBytes = 64 << 10;
// What one receive into the head buffer asks for.
constexpr size_t kReceiveChunk = 16 << 10;
// The receive buffer of a connection to a loopback address
// (HttpConnection::Impl::SizeReceiveBufferForLoopback).
constexpr int kLoopbackReceiveBuffer = 1 << 20;

char ToLower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// Whether the comma-separated header value `value` lists `token` (case-insensitive).
bool ListsToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (EqualsIgnoreCase(TrimBlanks(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

class HttpFailureDetail : public arrow::StatusDetail {
 public:
  static constexpr const char* kTypeId = "riffledb::io::HttpFailureDetail";
  explicit HttpFailureDetail(HttpFailureInfo info) : info_(std::move(info)) {}
  const char* type_id() const override { return kTypeId; }
  std::string ToString() const override { return "http failure"; }
  const HttpFailureInfo& info() const { return info_; }

 private:
  const HttpFailureInfo info_;
};

arrow::Status Failure(HttpFailure step, std::string message, std::string reason) {
  return arrow::Status(
      arrow::StatusCode::IOError, std::move(message),
      std::make_shared<HttpFailureDetail>(HttpFailureInfo{step, std::move(reason)}));
}

// Blocks SIGPIPE in this thread while alive: OpenSSL writes to its socket with write(),
// which raises SIGPIPE when the peer has closed, and the default action kills the
// process. A SIGPIPE raised meanwhile is consumed before the mask is restored. (Plain
// sockets are written with MSG_NOSIGNAL and need none of this.)
class SigpipeBlock {
 public:
  explicit SigpipeBlock(bool active) {
    if (!active) return;
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

std::string ErrnoText(int err) {
  if (err == EAGAIN || err == EWOULDBLOCK) return "timed out";
  return std::strerror(err);
}

struct timeval ToTimeval(double seconds) {
  struct timeval tv {};
  if (seconds <= 0) return tv;  // 0: no timeout
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>((seconds - static_cast<double>(tv.tv_sec)) * 1e6);
  if (tv.tv_sec == 0 && tv.tv_usec == 0) tv.tv_usec = 1;
  return tv;
}

// Where a response is read from: a connection, or bytes in memory (ParseHttpResponse).
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads what is available (at least one byte); 0 at the end of the stream.
  virtual arrow::Result<size_t> Receive(char* out, size_t size) = 0;
  // An IOError saying what failed, naming the peer.
  virtual arrow::Status Error(HttpFailure failure, std::string_view what,
                              const std::string& detail) const = 0;
  arrow::Status ReceiveError(const std::string& detail) const {
    return Error(HttpFailure::kReceive, "read the response from", detail);
  }
};

// Buffered reads of responses. The buffer outlives a response: bytes after one (which a
// keep-alive peer should not send) stay for the next read.
class ResponseReader {
 public:
  explicit ResponseReader(ByteSource* source) : source_(source) {}

  size_t buffered() const { return buffer_.size() - pos_; }

  // Reads one CRLF-terminated line (without the CRLF); IOError past `max` bytes or at
  // the end of the stream.
  arrow::Result<std::string_view> ReadLine(size_t max, std::string_view what) {
    size_t searched = 0;  // bytes after pos_ known to hold no CRLF
    while (true) {
      const size_t end = buffer_.find("\r\n", pos_ + searched);
      if (end != std::string::npos) {
        std::string_view line(buffer_.data() + pos_, end - pos_);
        pos_ = end + 2;
        return line;
      }
      if (buffered() > max) {
        return source_->ReceiveError(std::string(what) + " too long");
      }
      searched = buffered() > 0 ? buffered() - 1 : 0;  // Fill keeps them after pos_
      ARROW_ASSIGN_OR_RAISE(bool more, Fill());
      if (!more) {
        return source_->ReceiveError("the connection closed before the end of the " +
                                     std::string(what));
      }
    }
  }

  // Appends the next `n` bytes to `out`: what is buffered, then received straight into
  // `out`.
  arrow::Status ReadExact(size_t n, std::string* out, std::string_view what) {
    const size_t start = out->size();
    const size_t have = std::min(n, buffered());
    out->append(buffer_, pos_, have);
    pos_ += have;
    if (have == n) return arrow::Status::OK();
    out->resize(start + n);
    size_t filled = have;
    while (filled < n) {
      ARROW_ASSIGN_OR_RAISE(size_t got,
                            source_->Receive(out->data() + start + filled, n - filled));
      if (got == 0) {
        out->resize(start + filled);
        return source_->ReceiveError("the connection closed before the end of the " +
                                     std::string(what) + " (" + std::to_string(filled) +
                                     " of " + std::to_string(n) + " bytes)");
      }
      filled += got;
    }
    return arrow::Status::OK();
  }

  arrow::Status ReadToEnd(std::string* out, int64_t max) {
    out->append(buffer_, pos_, std::string::npos);
    buffer_.clear();
    pos_ = 0;
    while (true) {
      if (static_cast<int64_t>(out->size()) > max) {
        return source_->ReceiveError("the body is too long");
      }
      const size_t start = out->size();
      out->resize(start + kReceiveChunk);
      ARROW_ASSIGN_OR_RAISE(size_t got,
                            source_->Receive(out->data() + start, kReceiveChunk));
      out->resize(start + got);
      if (got == 0) return arrow::Status::OK();
    }
  }

 private:
  arrow::Result<bool> Fill() {
    if (pos_ == buffer_.size()) {
      buffer_.clear();
      pos_ = 0;
    } else if (pos_ > kMaxHeaderBytes) {
      buffer_.erase(0, pos_);
      pos_ = 0;
    }
    const size_t start = buffer_.size();
    buffer_.resize(start + kReceiveChunk);
    auto got = source_->Receive(buffer_.data() + start, kReceiveChunk);
    buffer_.resize(start + (got.ok() ? *got : 0));
    ARROW_RETURN_NOT_OK(got);
    return *got > 0;
  }

  ByteSource* source_;
  std::string buffer_;
  size_t pos_ = 0;
};

arrow::Result<int64_t> ParseSize(std::string_view text, int base) {
  text = TrimBlanks(text);
  int64_t value = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() ||
      value < 0) {
    return arrow::Status::Invalid("bad length '", text, "'");
  }
  return value;
}

arrow::Status ReadChunkedBody(ResponseReader* reader, const ByteSource& source,
                              const HttpOptions& options, std::string* body) {
  while (true) {
    ARROW_ASSIGN_OR_RAISE(std::string_view line, reader->ReadLine(4096, "chunk header"));
    const std::string_view size_text = line.substr(0, line.find(';'));
    auto size = ParseSize(size_text, 16);
    if (!size.ok()) {
      return source.ReceiveError("bad chunk size '" + std::string(size_text) + "'");
    }
    if (*size == 0) break;
    if (static_cast<int64_t>(body->size()) + *size > options.max_body_bytes) {
      return source.ReceiveError("the body is too long");
    }
    ARROW_RETURN_NOT_OK(reader->ReadExact(static_cast<size_t>(*size), body, "chunk"));
    std::string crlf;
    ARROW_RETURN_NOT_OK(reader->ReadExact(2, &crlf, "chunk"));
    if (crlf != "\r\n") return source.ReceiveError("a chunk does not end with CRLF");
  }
  // Trailers, up to the empty line.
  while (true) {
    ARROW_ASSIGN_OR_RAISE(std::string_view line,
                          reader->ReadLine(kMaxHeaderBytes, "trailer"));
    if (line.empty()) return arrow::Status::OK();
  }
}

// The status line and headers of one response; `http10`: the status line's version.
arrow::Status ReadHead(ResponseReader* reader, const ByteSource& source,
                       HttpResponse* response, bool* http10) {
  ARROW_ASSIGN_OR_RAISE(std::string_view status_line,
                        reader->ReadLine(kMaxHeaderBytes, "status line"));
  // HTTP/1.x SP 3DIGIT SP reason
  if (!status_line.starts_with("HTTP/1.") || status_line.size() < 12 ||
      status_line[8] != ' ') {
    return source.ReceiveError("not an HTTP/1.x status line: '" +
                               std::string(status_line.substr(0, 80)) + "'");
  }
  *http10 = status_line[7] == '0';
  int status = 0;
  auto [ptr, ec] =
      std::from_chars(status_line.data() + 9, status_line.data() + 12, status);
  if (ec != std::errc() || ptr != status_line.data() + 12 || status < 100) {
    return source.ReceiveError("bad status in '" +
                               std::string(status_line.substr(0, 80)) + "'");
  }
  response->status = status;
  response->reason =
      status_line.size() > 13 ? std::string(status_line.substr(13)) : std::string();
  response->headers.clear();
  size_t header_bytes = 0;
  while (true) {
    ARROW_ASSIGN_OR_RAISE(std::string_view line,
                          reader->ReadLine(kMaxHeaderBytes, "headers"));
    if (line.empty()) return arrow::Status::OK();
    header_bytes += line.size();
    if (header_bytes > kMaxHeaderBytes) return source.ReceiveError("headers too long");
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return source.ReceiveError("bad header line '" + std::string(line.substr(0, 80)) +
                                 "'");
    }
    response->headers.emplace_back(std::string(TrimBlanks(line.substr(0, colon))),
                                   std::string(TrimBlanks(line.substr(colon + 1))));
  }
}

// One response, whole. `keep_alive`: whether the connection may carry another request
// after it (framed by length or chunks, no `Connection: close`).
arrow::Result<HttpResponse> ReadResponse(ResponseReader* reader, const ByteSource& source,
                                         std::string_view method,
                                         const HttpOptions& options, bool* keep_alive) {
  HttpResponse response;
  bool http10 = false;
  do {
    ARROW_RETURN_NOT_OK(ReadHead(reader, source, &response, &http10));
  } while (response.status >= 100 && response.status < 200);

  const auto connection = response.Header("Connection");
  *keep_alive = http10 ? (connection && ListsToken(*connection, "keep-alive"))
                       : !(connection && ListsToken(*connection, "close"));
  if (method == "HEAD" || response.status == 204 || response.status == 304) {
    return response;
  }
  const auto encoding = response.Header("Transfer-Encoding");
  const auto length = response.Header("Content-Length");
  if (encoding && EqualsIgnoreCase(TrimBlanks(*encoding), "chunked")) {
    ARROW_RETURN_NOT_OK(ReadChunkedBody(reader, source, options, &response.body));
  } else if (encoding) {
    return source.ReceiveError("unsupported Transfer-Encoding '" + *encoding + "'");
  } else if (length) {
    auto size = ParseSize(*length, 10);
    if (!size.ok()) return source.ReceiveError("bad Content-Length '" + *length + "'");
    if (*size > options.max_body_bytes) {
      return source.ReceiveError("the body is too long");
    }
    ARROW_RETURN_NOT_OK(
        reader->ReadExact(static_cast<size_t>(*size), &response.body, "body"));
  } else {
    *keep_alive = false;  // the end of the connection ends the body
    ARROW_RETURN_NOT_OK(reader->ReadToEnd(&response.body, options.max_body_bytes));
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
  arrow::Status Error(HttpFailure failure, std::string_view what,
                      const std::string& detail) const override {
    return Failure(failure, "Cannot " + std::string(what) + " <memory>: " + detail,
                   detail);
  }

 private:
  static constexpr size_t kPiece = 7;
  std::string_view bytes_;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Endpoint, HttpResponse, failures

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

std::string_view TrimBlanks(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
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
    case 431:
      return "Request Header Fields Too Large";
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

std::string Endpoint::HostHeader() const {
  const bool ipv6 = host.find(':') != std::string::npos;
  std::string out = ipv6 ? "[" + host + "]" : host;
  const int default_port = scheme == "https" ? 443 : 80;
  if (port != default_port) out += ":" + std::to_string(port);
  return out;
}

std::string Endpoint::ToString() const { return scheme + "://" + HostHeader(); }

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) return value;
  }
  return std::nullopt;
}

std::optional<HttpFailureInfo> GetHttpFailure(const arrow::Status& status) {
  const auto& detail = status.detail();
  if (detail == nullptr ||
      std::string_view(detail->type_id()) != HttpFailureDetail::kTypeId) {
    return std::nullopt;
  }
  return static_cast<const HttpFailureDetail&>(*detail).info();
}

// ---------------------------------------------------------------------------------------
// TlsContext

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

arrow::Result<std::shared_ptr<const TlsContext>> TlsContext::Make(
    bool verify, const std::string& ca_file) {
  auto failed = [](HttpFailure failure, const std::string& what) {
    std::string reason = OpenSslError();
    return Failure(failure, what + ": " + reason, reason);
  };
  std::shared_ptr<TlsContext> tls(new TlsContext());
  tls->ctx_ = SSL_CTX_new(TLS_client_method());
  if (tls->ctx_ == nullptr)
    return failed(HttpFailure::kTlsHandshake, "Cannot set up TLS");
  tls->verify_ = verify;
  SSL_CTX_set_min_proto_version(tls->ctx_, TLS1_2_VERSION);
  // A response delimited by the end of the connection ends at the TCP close; its
  // framing is checked by the parser, not by a close_notify servers often omit.
  SSL_CTX_set_options(tls->ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (verify) {
    const int loaded = ca_file.empty() ? SSL_CTX_set_default_verify_paths(tls->ctx_)
                                       : SSL_CTX_load_verify_locations(
                                             tls->ctx_, ca_file.c_str(), nullptr);
    if (loaded != 1) {
      return failed(HttpFailure::kTlsCertificates,
                    ca_file.empty()
                        ? "Cannot load the system's trusted certificates"
                        : "Cannot load the trusted certificates of '" + ca_file + "'");
    }
    SSL_CTX_set_verify(tls->ctx_, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(tls->ctx_, SSL_VERIFY_NONE, nullptr);
  }
  return std::shared_ptr<const TlsContext>(std::move(tls));
}

// ---------------------------------------------------------------------------------------
// HttpConnection

class HttpConnection::Impl : public ByteSource {
 public:
  Impl(Endpoint endpoint, HttpOptions options)
      : endpoint_(std::move(endpoint)),
        options_(options),
        busy_poll_(std::chrono::microseconds(options.busy_poll_us)),
        reader_(this) {}
  ~Impl() override {
    if (ssl_ != nullptr) SSL_free(ssl_);  // no close_notify: the peer may be gone
    if (fd_ >= 0) ::close(fd_);
  }

  arrow::Status Open(std::shared_ptr<const TlsContext> tls) {
    ARROW_RETURN_NOT_OK(ConnectSocket());
    if (endpoint_.scheme == "https") {
      if (tls == nullptr) {
        ARROW_ASSIGN_OR_RAISE(tls, TlsContext::Make(/*verify=*/true, ""));
      }
      tls_ = std::move(tls);
      ARROW_RETURN_NOT_OK(StartTls());
    }
    return arrow::Status::OK();
  }

  void SetMaxBodyBytes(int64_t bytes) { options_.max_body_bytes = bytes; }

  void SetIoTimeout(double seconds) {
    if (seconds == io_timeout_) return;
    io_timeout_ = seconds;
    struct timeval tv = ToTimeval(seconds);
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  }

  arrow::Status Send(std::string_view head, std::string_view body) {
    response_started_ = false;
    timed_out_ = false;
    if (ssl_ != nullptr) {
      SigpipeBlock no_sigpipe(true);
      // One record for a small request.
      if (!body.empty() && head.size() + body.size() <= kReceiveChunk) {
        std::string whole;
        whole.reserve(head.size() + body.size());
        whole.append(head).append(body);
        return SendTls(whole);
      }
      ARROW_RETURN_NOT_OK(SendTls(head));
      return SendTls(body);
    }
    struct iovec parts[2] = {{const_cast<char*>(head.data()), head.size()},
                             {const_cast<char*>(body.data()), body.size()}};
    int first = 0;
    const int count = body.empty() ? 1 : 2;
    while (first < count) {
      struct msghdr msg {};
      msg.msg_iov = parts + first;
      msg.msg_iovlen = static_cast<size_t>(count - first);
      const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        return Error(HttpFailure::kSend, "send the request to", ErrnoText(errno));
      }
      auto left = static_cast<size_t>(n);
      while (first < count && left >= parts[first].iov_len) {
        left -= parts[first].iov_len;
        ++first;
      }
      if (first < count) {
        parts[first].iov_base = static_cast<char*>(parts[first].iov_base) + left;
        parts[first].iov_len -= left;
      }
    }
    return arrow::Status::OK();
  }

  arrow::Result<HttpResponse> ReadOne(std::string_view method, bool* keep_alive) {
    SigpipeBlock no_sigpipe(ssl_ != nullptr);
    return ReadResponse(&reader_, *this, method, options_, keep_alive);
  }

  bool StillOpen() const {
    if (fd_ < 0 || reader_.buffered() > 0) return false;
    if (ssl_ != nullptr && SSL_pending(ssl_) > 0) return false;
    char byte;
    const ssize_t n = ::recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  void Abandon() {
    ssl_ = nullptr;  // the parent's: never freed here
    fd_ = -1;
  }

  int fd() const { return fd_; }
  BusyPoll::Stats busy_poll_stats() const { return busy_poll_.stats(); }

  arrow::Result<size_t> Receive(char* out, size_t size) override {
    if (ssl_ != nullptr) {
      if (SSL_pending(ssl_) == 0) {
        busy_poll_.Spin([this] {
          struct pollfd pfd {
            fd_, POLLIN, 0
          };
          // Ready, or failed (the read below says how); a signal is not an answer.
          const int ready = ::poll(&pfd, 1, 0);
          return ready < 0 && errno == EINTR ? 0 : ready;
        });
      }
      size_t read = 0;
      if (SSL_read_ex(ssl_, out, size, &read) == 1) {
        response_started_ = true;
        return read;
      }
      const int err = SSL_get_error(ssl_, 0);
      if (err == SSL_ERROR_ZERO_RETURN) return 0;
      timed_out_ = err == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK);
      return ReceiveError(TlsFailure());
    }
    // Plain TCP: the check that spins is the read itself, without blocking (no poll()
    // before it: one system call for bytes already there, which the later reads of an
    // answer usually find; a few µs each on a virtual machine).
    ssize_t n = -1;
    int err = EAGAIN;  // nothing read yet (Spin may not try)
    auto nothing_yet = [&] {
      return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
    };
    busy_poll_.Spin([&] {
      n = ::recv(fd_, out, size, MSG_DONTWAIT);
      err = n < 0 ? errno : 0;
      // Bytes, the end, or a failure (returned below); a signal is not an answer.
      return nothing_yet() ? 0 : 1;
    });
    if (nothing_yet()) {
      do {
        n = ::recv(fd_, out, size, 0);  // bounded by SO_RCVTIMEO: EAGAIN when it passes
      } while (n < 0 && errno == EINTR);
      err = n < 0 ? errno : 0;
    }
    if (n > 0) response_started_ = true;
    if (n >= 0) return static_cast<size_t>(n);
    timed_out_ = err == EAGAIN || err == EWOULDBLOCK;
    return ReceiveError(ErrnoText(err));
  }

  bool response_started() const { return response_started_; }
  bool timed_out() const { return timed_out_; }

  arrow::Status Error(HttpFailure failure, std::string_view what,
                      const std::string& detail) const override {
    return Failure(
        failure,
        "Cannot " + std::string(what) + " " + endpoint_.ToString() + ": " + detail,
        detail);
  }

 private:
  arrow::Status SendTls(std::string_view data) {
    while (!data.empty()) {
      size_t written = 0;
      if (SSL_write_ex(ssl_, data.data(), data.size(), &written) != 1) {
        return Error(HttpFailure::kSend, "send the request to", TlsFailure());
      }
      data.remove_prefix(written);
    }
    return arrow::Status::OK();
  }

  // The OpenSSL error of the last call, or errno's (a timeout, a reset) if it has none.
  static std::string TlsFailure() {
    const int saved_errno = errno;
    std::string text = OpenSslError();
    if (text == "unknown TLS error" && saved_errno != 0) text = ErrnoText(saved_errno);
    return text;
  }

  // Linux starts a connection's receive buffer at 128 KiB and grows it with the bytes
  // read per round trip, which request-answer traffic hardly does. An answer bigger than
  // the buffer (a 256-row take of 512-byte rows is 134 kB) then stalls its sender until
  // we read, one more wake-up on each side: 256-row takes on loopback ran 25-35% faster
  // with 1 MiB. A fixed size turns the kernel's tuning off, which would cap a long link's
  // throughput, so it is set only for a server on this machine (a loopback address),
  // and before connect(), where it also sets the window scale (tcp(7)).
  static void SizeReceiveBufferForLoopback(int fd, const struct sockaddr* addr) {
    bool loopback = false;
    if (addr->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const struct sockaddr_in*>(addr);
      loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    } else if (addr->sa_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(addr);
      loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    if (!loopback) return;
    const int bytes = kLoopbackReceiveBuffer;  // the kernel allows up to rmem_max
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  }

  arrow::Status ConnectSocket() {
    struct addrinfo hints {};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    struct addrinfo* addrs = nullptr;
    const std::string port = std::to_string(endpoint_.port);
    const int rc = ::getaddrinfo(endpoint_.host.c_str(), port.c_str(), &hints, &addrs);
    if (rc != 0) return Error(HttpFailure::kConnect, "resolve", ::gai_strerror(rc));
    std::unique_ptr<struct addrinfo, decltype(&::freeaddrinfo)> guard(addrs,
                                                                      &::freeaddrinfo);
    std::string last_error = "no address";
    bool timed_out = false;
    for (auto* addr = addrs; addr != nullptr; addr = addr->ai_next) {
      int fd = ::socket(addr->ai_family, addr->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        addr->ai_protocol);
      if (fd < 0) {
        last_error = ErrnoText(errno);
        continue;
      }
      SizeReceiveBufferForLoopback(fd, addr->ai_addr);
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
        timed_out = err == ETIMEDOUT;
        last_error = timed_out ? "connection timed out" : std::strerror(err);
        ::close(fd);
        continue;
      }
      // Blocking from here on, with timeouts on each send and receive.
      ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      fd_ = fd;
      SetIoTimeout(options_.io_timeout_seconds);
      return arrow::Status::OK();
    }
    return Error(timed_out ? HttpFailure::kConnectTimeout : HttpFailure::kConnect,
                 "connect to", last_error);
  }

  arrow::Status StartTls() {
    ssl_ = SSL_new(tls_->ctx_);
    if (ssl_ == nullptr) {
      return Error(HttpFailure::kTlsHandshake, "set up TLS for", OpenSslError());
    }
    if (tls_->verify_) {
      unsigned char ip[16];
      const bool is_ip = ::inet_pton(AF_INET, endpoint_.host.c_str(), ip) == 1 ||
                         ::inet_pton(AF_INET6, endpoint_.host.c_str(), ip) == 1;
      X509_VERIFY_PARAM* param = SSL_get0_param(ssl_);
      if (is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(param, endpoint_.host.c_str()) != 1) {
          return Error(HttpFailure::kTlsHandshake, "set up TLS for", OpenSslError());
        }
      } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl_, endpoint_.host.c_str()) != 1) {
          return Error(HttpFailure::kTlsHandshake, "set up TLS for", OpenSslError());
        }
      }
    }
    unsigned char ip[16];
    const bool is_ip = ::inet_pton(AF_INET, endpoint_.host.c_str(), ip) == 1 ||
                       ::inet_pton(AF_INET6, endpoint_.host.c_str(), ip) == 1;
    if (!is_ip && SSL_set_tlsext_host_name(ssl_, endpoint_.host.c_str()) != 1) {
      return Error(HttpFailure::kTlsHandshake, "set up TLS for", OpenSslError());
    }
    SSL_set_fd(ssl_, fd_);
    SigpipeBlock no_sigpipe(true);
    if (SSL_connect(ssl_) != 1) {
      const long verify = SSL_get_verify_result(ssl_);  // NOLINT(runtime/int)
      if (verify != X509_V_OK) {
        ERR_clear_error();
        return Error(HttpFailure::kTlsVerification, "verify the TLS certificate of",
                     X509_verify_cert_error_string(verify));
      }
      return Error(HttpFailure::kTlsHandshake, "start TLS with", TlsFailure());
    }
    return arrow::Status::OK();
  }

  const Endpoint endpoint_;
  HttpOptions options_;  // max_body_bytes changes (SetMaxBodyBytes)
  std::shared_ptr<const TlsContext> tls_;
  int fd_ = -1;
  SSL* ssl_ = nullptr;
  double io_timeout_ = -1;
  BusyPoll busy_poll_;
  ResponseReader reader_;
  bool response_started_ = false;  // a byte of the last request's response came
  bool timed_out_ = false;         // the last receive failed by the I/O timeout
};

HttpConnection::HttpConnection(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)), fd_(impl_->fd()) {}

HttpConnection::~HttpConnection() = default;

arrow::Result<std::unique_ptr<HttpConnection>> HttpConnection::Open(
    const Endpoint& endpoint, const HttpOptions& options,
    std::shared_ptr<const TlsContext> tls) {
  auto impl = std::make_unique<Impl>(endpoint, options);
  ARROW_RETURN_NOT_OK(impl->Open(std::move(tls)));
  return std::unique_ptr<HttpConnection>(new HttpConnection(std::move(impl)));
}

void HttpConnection::SetIoTimeout(double seconds) { impl_->SetIoTimeout(seconds); }

void HttpConnection::SetMaxBodyBytes(int64_t bytes) { impl_->SetMaxBodyBytes(bytes); }

arrow::Status HttpConnection::Send(std::string_view head, std::string_view body) {
  reusable_ = false;
  return impl_->Send(head, body);
}

arrow::Result<HttpResponse> HttpConnection::Receive(std::string_view method) {
  reusable_ = false;
  bool keep_alive = false;
  ARROW_ASSIGN_OR_RAISE(auto response, impl_->ReadOne(method, &keep_alive));
  reusable_ = keep_alive;
  return response;
}

bool HttpConnection::StillOpen() const { return impl_->StillOpen(); }

bool HttpConnection::StaleFailure() const {
  return !impl_->response_started() && !impl_->timed_out();
}

BusyPoll::Stats HttpConnection::busy_poll_stats() const {
  return impl_->busy_poll_stats();
}

void HttpConnection::Abandon() {
  impl_->Abandon();
  fd_ = -1;
  reusable_ = false;
}

arrow::Result<HttpResponse> ParseHttpResponse(std::string_view bytes,
                                              std::string_view method,
                                              const HttpOptions& options) {
  MemorySource source(bytes);
  ResponseReader reader(&source);
  bool keep_alive = false;
  return ReadResponse(&reader, source, method, options, &keep_alive);
}

}  // namespace riffledb::io
