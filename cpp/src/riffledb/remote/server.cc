#include "riffledb/remote/server.h"

#include <fcntl.h>
#include <httplib.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "riffledb/io/http_connection.h"
#include "riffledb/remote/protocol.h"
#include "riffledb/remote/request_head_internal.h"
#include "riffledb/remote/socket_stream_internal.h"
#include "riffledb/util/busy_poll.h"

namespace riffledb::remote {

namespace {

// Set by a handler that answered without reading the whole request body: the
// connection must then be closed, or the rest of the body would be read as the next
// request. A connection is served start to end by one thread (ConnectionServer), which
// is the thread its handlers run on.
thread_local bool t_close_connection = false;
// The request was admitted already (Server::Impl::Admit, run by cpp-httplib's Expect:
// 100-continue handler before it says 100 Continue): its pre-routing call returns at
// once.
thread_local bool t_admitted = false;
// The connection being served by this thread: Admit ends its head's read deadline.
thread_local internal::SocketStream* t_stream = nullptr;

// The headers cpp-httplib adds to every request it parses (REMOTE_ADDR, REMOTE_PORT,
// LOCAL_ADDR, LOCAL_PORT), not counted against the client's limits.
constexpr int kAddedHeaders = 4;

// Every reply says that this server answers a take (a `_rowoffset` / `_rowid in (...)`
// query) with the rows in the order of the list, repeats repeated (Service::Query):
// riffledb's client, once it has seen this, asks for keys as they are rather than
// distinct and ascending, and has no answer to reorder (client/http_client.h,
// kTakeOrderHeader). LanceDB's client ignores it.
constexpr char kTakeOrderReplyHeader[] = "X-Riffledb-Take-Order";

void SetReply(const Reply& reply, httplib::Response& res) {
  res.status = reply.status;
  res.set_header(kTakeOrderReplyHeader, "asked");
  if (reply.stream != nullptr) {
    // Chunked, all of it in one call of the provider. (cpp-httplib stops calling a
    // provider once its stop() has begun, which would cut an answer short: Server::Stop
    // never calls it, see ConnectionServer::StopAccepting.) On a failure, false makes
    // cpp-httplib return without the last chunk, and the connection is closed: the
    // client sees a truncated answer, never a short valid one.
    std::shared_ptr<BodyStream> stream = reply.stream;
    res.set_chunked_content_provider(
        reply.content_type, [stream](size_t, httplib::DataSink& sink) {
          const arrow::Status written = stream->WriteTo([&](std::string_view piece) {
            return sink.write(piece.data(), piece.size());
          });
          if (!written.ok()) {
            t_close_connection = true;
            return false;
          }
          sink.done();
          return true;
        });
    return;
  }
  if (reply.body.empty()) return;
  // The body is written from the buffers the service built, without a copy: the
  // `length` bytes from `offset` asked for, in one call (false, which ends the reply,
  // for bytes past the end). A provider, not set_content: cpp-httplib compresses a body
  // set that way when the client accepts gzip or br, which the plain path never does.
  arrow::BufferVector body = reply.body;
  res.set_content_provider(
      static_cast<size_t>(BodySize(reply)), reply.content_type,
      [body](size_t offset, size_t length, httplib::DataSink& sink) {
        bool wrote = false;
        for (const auto& piece : body) {
          const auto size = static_cast<size_t>(piece->size());
          if (length == 0) break;
          if (offset >= size) {
            offset -= size;
            continue;
          }
          const size_t n = std::min(size - offset, length);
          if (!sink.write(reinterpret_cast<const char*>(piece->data()) + offset, n)) {
            return false;
          }
          wrote = true;
          length -= n;
          offset = 0;
        }
        return wrote;
      });
}

// What the plain path adds to a request body's memory at a time.
constexpr size_t kBodyChunk = size_t{1} << 20;

// The answer to a request body that could not be read whole.
constexpr char kUnreadBody[] =
    "Could not read the request body (malformed chunked encoding?)";

// Answers `status` and closes the connection afterwards (the body is not read).
void Refuse(httplib::Response& res, int status, std::string_view message) {
  SetReply(ErrorReply(status, message), res);
  res.set_header("Connection", "close");
  t_close_connection = true;
}

bool AllDigits(const std::string& text) {
  return !text.empty() && text.size() <= 19 &&
         std::all_of(text.begin(), text.end(),
                     [](char c) { return c >= '0' && c <= '9'; });
}

// cpp-httplib's server, with its keep-alive loop replaced by ours: a handler can close
// the connection after its reply (t_close_connection), idle connections close as soon
// as a stop begins, and every wait is bounded (SocketStream).
//
// With a TLS context, each connection does its handshake on its connection thread and
// is then served the same way (cpp-httplib's SSLServer would replace this loop with its
// own, and write through OpenSSL's socket BIO, which can raise SIGPIPE).
class ConnectionServer final : public httplib::Server {
 public:
  ConnectionServer(const ServerOptions& options, const std::atomic<bool>& stopping)
      : options_(options), stopping_(stopping) {}
  ~ConnectionServer() override {
    if (listener_ >= 0) ::close(listener_);
  }

  // Set before the server starts; owned by Server::Impl.
  void set_tls(SSL_CTX* ctx) { tls_ = ctx; }

  // cpp-httplib listens with a backlog of 5 (compiled in); concurrent clients would
  // see refused or retried connects. listen() again only resizes the queue.
  void RaiseBacklog() { ::listen(svr_sock_, 512); }

  // Keeps a descriptor of the bound listening socket of its own, for StopAccepting;
  // false (errno set) if it cannot, and then the socket is closed.
  bool KeepListener() {
    listener_ = ::fcntl(svr_sock_, F_DUPFD_CLOEXEC, 0);
    if (listener_ < 0) {
      const int error = errno;
      ::close(svr_sock_.exchange(INVALID_SOCKET));
      errno = error;
    }
    return listener_ >= 0;
  }

  // Ends the accept loop: the listening socket is shut down (on Linux, accept() then
  // fails with EINVAL), and the loop closes the socket and waits for the connection
  // threads, which finish the requests they have (stopping_). Not cpp-httplib's stop():
  // it marks the server as shutting down, after which cpp-httplib no longer calls a
  // reply's content provider, so that the answers being sent were cut short
  // (ServerConcurrent tests). Through a descriptor of its own: the loop's may be
  // closed, and its number reused, by then. Idempotent; also makes the port refuse
  // connections after a loop that ended on its own (an accept error).
  void StopAccepting() { ::shutdown(listener_, SHUT_RDWR); }

  // How a request of a plain connection went on the plain path (set_plain_path).
  enum class Plain {
    kNotOurs,  // its bytes are still unread: cpp-httplib's
    kServed,   // answered; the connection goes on
    kClose,    // answered; the connection closes (asked, or the last request)
    kFailed,   // the connection failed: it closes without an answer
  };
  // Reads and answers a request of a plain connection itself when it is one it parses
  // (request_head_internal.h); `last`: its answer closes the connection. Set before
  // the server starts.
  void set_plain_path(std::function<Plain(internal::SocketStream&, bool last)> path) {
    plain_path_ = std::move(path);
  }

  // Server::Stats, summed over the connections.
  std::atomic<int64_t> busy_polls_{0};
  std::atomic<int64_t> busy_poll_hits_{0};
  std::atomic<int64_t> plain_requests_{0};

 private:
  bool process_and_close_socket(socket_t sock) override {
    // A reply is written in two pieces (headers, body): without this, Nagle holds the
    // second until the client's delayed ACK of the first, 40 ms per request.
    const int one = 1;
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    std::unique_ptr<SSL, internal::SslDeleter> ssl;
    if (tls_ != nullptr) {
      ssl = internal::AcceptTls(tls_, sock, options_.io_timeout_ms,
                                options_.head_timeout_ms);
      if (ssl == nullptr) {  // not TLS, or not finished in time
        ::close(sock);
        return true;
      }
    }
    internal::SocketStream stream(sock, options_.io_timeout_ms, ssl.get(),
                                  options_.busy_poll_us);
    t_stream = &stream;
    for (int served = 0; served < options_.keep_alive_max_requests; ++served) {
      const BusyPoll::Stats before = stream.busy_poll_stats();
      const bool got = stream.WaitForRequest(options_.keep_alive_timeout_ms, stopping_);
      const BusyPoll::Stats& after = stream.busy_poll_stats();
      busy_polls_.fetch_add(after.spins - before.spins, std::memory_order_relaxed);
      busy_poll_hits_.fetch_add(after.hits - before.hits, std::memory_order_relaxed);
      if (!got) break;
      // Until its head is parsed (ServePlain, or Admit on cpp-httplib's path).
      stream.BeginHead(std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(options_.head_timeout_ms));
      const bool last = served + 1 == options_.keep_alive_max_requests ||
                        stopping_.load(std::memory_order_acquire);
      bool closed_by_client = false;
      t_close_connection = false;
      t_admitted = false;
      const Plain plain =
          stream.plain() && plain_path_ ? plain_path_(stream, last) : Plain::kNotOurs;
      bool ok = plain != Plain::kFailed;
      if (plain == Plain::kNotOurs) {
        ok = process_request(stream, last, closed_by_client, nullptr);
      }
      closed_by_client = closed_by_client || plain == Plain::kClose;
      if (plain == Plain::kServed || plain == Plain::kClose) {
        plain_requests_.fetch_add(1, std::memory_order_relaxed);
      }
      stream.EndHead();
      if (!stream.Flush()) break;  // the reply's last held-back bytes
      if (!ok || closed_by_client || last || t_close_connection) break;
    }
    t_close_connection = false;
    t_stream = nullptr;
    stream.LingeringClose();
    return true;
  }

  const ServerOptions& options_;
  const std::atomic<bool>& stopping_;
  int listener_ = -1;  // KeepListener's
  SSL_CTX* tls_ = nullptr;
  std::function<Plain(internal::SocketStream&, bool)> plain_path_;
};

struct SslCtxDeleter {
  void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};

// The first error on OpenSSL's queue, as text (and the queue cleared).
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

// A server context with the certificate chain and key of the options.
arrow::Result<std::unique_ptr<SSL_CTX, SslCtxDeleter>> MakeTlsContext(
    const ServerOptions& options) {
  std::unique_ptr<SSL_CTX, SslCtxDeleter> ctx(SSL_CTX_new(TLS_server_method()));
  if (ctx == nullptr) return arrow::Status::IOError("TLS: ", OpenSslError());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), options.tls_cert_path.c_str()) != 1) {
    return arrow::Status::Invalid("Cannot load the TLS certificate '",
                                  options.tls_cert_path, "': ", OpenSslError());
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), options.tls_key_path.c_str(),
                                  SSL_FILETYPE_PEM) != 1) {
    return arrow::Status::Invalid("Cannot load the TLS private key '",
                                  options.tls_key_path, "': ", OpenSslError());
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return arrow::Status::Invalid("The TLS private key '", options.tls_key_path,
                                  "' does not match the certificate '",
                                  options.tls_cert_path, "'");
  }
  return ctx;
}

}  // namespace

struct Server::Impl {
  Impl(std::shared_ptr<Database> db, ServerOptions opts)
      : options(std::move(opts)),
        service(std::move(db), options.service),
        http(options, stopping) {}

  // Transport checks made before the body is read: method, framing, header limits,
  // API key. Refused requests close their connection.
  httplib::Server::HandlerResponse Admit(const httplib::Request& req,
                                         httplib::Response& res) const {
    if (t_admitted) return httplib::Server::HandlerResponse::Unhandled;
    t_admitted = true;
    if (t_stream != nullptr) {
      // The head came. A line cpp-httplib dropped (`Content-Length : 5`) would leave
      // what it announced to be read as the next request: refused, and the connection
      // closes.
      std::string why;
      const bool whole = t_stream->head().size() < internal::SocketStream::kMaxHeadBytes;
      const bool well_formed =
          whole && internal::HeaderLinesAreWellFormed(t_stream->head(), &why);
      t_stream->EndHead();
      if (!whole) {
        Refuse(res, 431, "Request head too large");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!well_formed) {
        Refuse(res, 400, "Malformed request: " + why);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (req.method != "GET" && req.method != "HEAD" && req.method != "POST") {
      Refuse(res, 405, "Method " + req.method.substr(0, 20) + " is not allowed");
      return httplib::Server::HandlerResponse::Handled;
    }
    // No route reads the body of a GET or a HEAD, nor does cpp-httplib: what one
    // carried would be read as the next request, which a proxy in front took for part
    // of this one.
    if (req.method != "POST" &&
        (req.has_header("Transfer-Encoding") ||
         (req.has_header("Content-Length") &&
          req.get_header_value("Content-Length").find_first_not_of('0') !=
              std::string::npos))) {
      Refuse(res, 400, "A " + req.method + " request has no body");
      return httplib::Server::HandlerResponse::Handled;
    }
    int64_t header_bytes = 0;
    for (const auto& [key, value] : req.headers) {
      header_bytes += static_cast<int64_t>(key.size() + value.size() + 4);
    }
    if (static_cast<int64_t>(req.headers.size()) > options.max_headers + kAddedHeaders ||
        header_bytes > options.max_header_bytes + 256) {
      Refuse(res, 431,
             "Request headers too large (limits: " + std::to_string(options.max_headers) +
                 " headers, " + std::to_string(options.max_header_bytes) + " bytes)");
      return httplib::Server::HandlerResponse::Handled;
    }
    // Ambiguous framing is how requests get smuggled: refuse it.
    const bool has_length = req.has_header("Content-Length");
    const bool has_encoding = req.has_header("Transfer-Encoding");
    if (req.get_header_value_count("Content-Length") > 1 ||
        req.get_header_value_count("Transfer-Encoding") > 1 ||
        (has_length && !AllDigits(req.get_header_value("Content-Length"))) ||
        (has_encoding &&
         !io::EqualsIgnoreCase(req.get_header_value("Transfer-Encoding"), "chunked")) ||
        (has_length && has_encoding)) {
      Refuse(res, 400,
             "Invalid request framing: one Content-Length of digits, or "
             "Transfer-Encoding: chunked, not both");
      return httplib::Server::HandlerResponse::Handled;
    }
    // HTTP/1.0 has no chunked framing: such a message's framing is faulty (RFC 9112
    // §6.1), and a proxy in front may frame it otherwise.
    if (has_encoding && req.version == "HTTP/1.0") {
      Refuse(res, 400,
             "Invalid request framing: Transfer-Encoding in an HTTP/1.0 request");
      return httplib::Server::HandlerResponse::Handled;
    }
    // An expectation other than 100-continue (which cpp-httplib meets, after Admit: see
    // Start) cannot be met (RFC 9110 §10.1.1).
    if (req.has_header("Expect") &&
        !io::EqualsIgnoreCase(req.get_header_value("Expect"), "100-continue")) {
      Refuse(res, 417, "Only the 100-continue expectation is supported");
      return httplib::Server::HandlerResponse::Handled;
    }
    // cpp-httplib would answer a range of a reply itself: no route serves one. (Nor of
    // this refusal: it would cut it to the range asked for. The request is cpp-httplib's
    // own object, not a constant.)
    if (req.has_header("Range")) {
      const_cast<httplib::Request&>(req).ranges.clear();
      Refuse(res, 416, "Range requests are not supported");
      return httplib::Server::HandlerResponse::Handled;
    }
    // The connection's last request: asked in any case or list (cpp-httplib closes only
    // for a first Connection header of exactly `close`, and keeps HTTP/1.0 connections
    // that ask for keep-alive without saying so in its answer).
    bool last = req.version == "HTTP/1.0";
    for (size_t i = 0; i < req.get_header_value_count("Connection"); ++i) {
      last = last || internal::AsksToClose(req.get_header_value("Connection", i));
    }
    if (last) {
      if (req.get_header_value("Connection") != "close") {
        res.set_header("Connection", "close");  // else cpp-httplib says it
      }
      t_close_connection = true;
    }
    if (!options.api_key.empty()) {
      if (req.get_header_value_count("x-api-key") > 1) {
        Refuse(res, 400, "More than one x-api-key header");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!req.has_header("x-api-key")) {
        Refuse(res, 401, "Missing API key: send it in the x-api-key header");
        return httplib::Server::HandlerResponse::Handled;
      }
      if (!ConstantTimeEquals(req.get_header_value("x-api-key"), options.api_key)) {
        Refuse(res, 401, "Invalid API key");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  void HandleGet(const httplib::Request& req, httplib::Response& res) const {
    SetReply(service.Handle("GET", req.target, std::string()), res);
  }

  void HandlePost(const httplib::Request& req, httplib::Response& res,
                  const httplib::ContentReader& content_reader) const {
    const auto max = static_cast<uint64_t>(options.max_body_bytes);
    std::string body;
    if (req.has_header("Content-Length")) {
      // Digits only (Admit); too many of them to fit is too large as well.
      const std::string text = req.get_header_value("Content-Length");
      const uint64_t length = text.size() > 18 ? UINT64_MAX : std::stoull(text);
      if (length > max) {
        Refuse(res, 413, TooLarge());
        return;
      }
      body.reserve(length);
    }
    // A request with neither header has no body (RFC 9112 6.3; LanceDB's client sends
    // body-less POSTs so). cpp-httplib would read it until the connection closes.
    if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) {
      SetReply(service.Handle("POST", req.target, std::string()), res);
      return;
    }
    if (req.has_header("Transfer-Encoding") && req.has_header("Content-Encoding")) {
      Refuse(res, 415,
             "A chunked request body with a Content-Encoding is not supported: send "
             "a compressed body with its Content-Length");
      return;
    }
    if (req.has_header("Transfer-Encoding") && t_stream != nullptr) {
      // Read here, strictly (internal::ReadChunkedBody), not by cpp-httplib's reader,
      // which took `0x5` or ` 5` for sizes and waited out the I/O timeout on a size of
      // `-2` or `7FFFFFFF`.
      std::string why;
      const auto read = [](char* out, size_t n) { return t_stream->read(out, n); };
      switch (internal::ReadChunkedBody(
          read, max, static_cast<size_t>(options.max_header_bytes), &body, &why)) {
        case internal::ChunkedBody::kWhole:
          SetReply(service.Handle("POST", req.target, std::move(body)), res);
          return;
        case internal::ChunkedBody::kTooLarge:
          Refuse(res, 413, TooLarge());
          return;
        case internal::ChunkedBody::kMalformed:
          Refuse(res, 400, "Malformed chunked request body: " + why);
          return;
        case internal::ChunkedBody::kCut:
          Refuse(res, 400, kUnreadBody);
          return;
      }
    }
    bool too_large = false;
    const bool read = content_reader([&](const char* data, size_t n) {
      if (body.size() + n > max) {
        too_large = true;
        return false;
      }
      body.append(data, n);
      return true;
    });
    if (too_large) {
      Refuse(res, 413, TooLarge());
      return;
    }
    if (!read) {
      Refuse(res, 400, kUnreadBody);
      return;
    }
    SetReply(service.Handle("POST", req.target, std::move(body)), res);
  }

  // The plain path (ConnectionServer::set_plain_path): a request whose head this server
  // parses itself (internal::ParseRequestHead: a well-formed, authorized POST with a
  // Content-Length within the limits, which is every table request of both clients) is
  // read, handed to the service as HandlePost would, and answered here, without
  // cpp-httplib's parse (byte-wise reads, a header map, a regex route) and response
  // building: about 9 µs of the ~75 µs a 256-row take costs the server. Anything else is
  // left unread for cpp-httplib, which also gives every refusal.
  using Plain = ConnectionServer::Plain;

  // cpp-httplib's head of `reply`, byte for byte: the same headers, in its (sorted)
  // order. `close`: cpp-httplib's own close (the connection's last request, or one asking
  // for it), which says Connection: close in place of Keep-Alive; `refused`: Refuse()'s,
  // which adds Connection: close to whatever cpp-httplib says.
  std::string PlainReplyHead(const Reply& reply, bool close, bool refused) const {
    // cpp-httplib's text for a status it does not know.
    const char* reason = *io::ReasonPhrase(reply.status) != '\0'
                             ? io::ReasonPhrase(reply.status)
                             : "Internal Server Error";
    std::string out;
    out.reserve(256);
    out.append("HTTP/1.1 ")
        .append(std::to_string(reply.status))
        .append(" ")
        .append(reason)
        .append("\r\n");
    if (close || refused) out.append("Connection: close\r\n");
    if (reply.stream == nullptr) {
      out.append("Content-Length: ")
          .append(std::to_string(BodySize(reply)))
          .append("\r\n");
    }
    if (reply.stream != nullptr || !reply.body.empty()) {
      out.append("Content-Type: ").append(reply.content_type).append("\r\n");
    }
    if (!close) {
      out.append("Keep-Alive: timeout=")
          .append(std::to_string(std::max(1, options.keep_alive_timeout_ms / 1000)))
          .append(", max=")
          .append(std::to_string(options.keep_alive_max_requests))
          .append("\r\n");
    }
    if (reply.stream != nullptr) out.append("Transfer-Encoding: chunked\r\n");
    out.append(kTakeOrderReplyHeader).append(": asked\r\n\r\n");
    return out;
  }

  Plain ServePlain(internal::SocketStream& stream, bool last) const {
    internal::RequestHead head;
    while (true) {
      const auto parsed =
          internal::ParseRequestHead(stream.buffered(), head_limits, &head);
      if (parsed == internal::HeadParse::kNotOurs) return Plain::kNotOurs;
      if (parsed == internal::HeadParse::kOurs) break;
      // Full, closed or timed out: cpp-httplib reads what there is and says so.
      if (!stream.ReceiveMore()) return Plain::kNotOurs;
    }
    stream.EndHead();  // the body's reads are bounded by each wait only
    // The head's bytes are reused once the body is received: keep the target.
    const std::string target(head.target);
    stream.Consume(head.size);
    Reply reply;
    bool refused = false;  // as Refuse() answers: Connection: close, set by the handler
    try {
      // Grown as the bytes come, as cpp-httplib's path does: a head alone commits no
      // memory for the body it announces.
      std::string body;
      const auto length = static_cast<size_t>(head.content_length);
      body.reserve(std::min(length, kBodyChunk));
      bool whole = true;
      while (body.size() < length) {
        const size_t got = body.size();
        body.resize(got + std::min(length - got, kBodyChunk));
        const ssize_t n = stream.read(body.data() + got, body.size() - got);
        if (n <= 0) {
          whole = false;
          break;
        }
        body.resize(got + static_cast<size_t>(n));
      }
      if (whole) {
        reply = service.Handle("POST", target, std::move(body));
      } else {
        // HandlePost's answer to a body cut short, and the connection closes.
        reply = ErrorReply(400, kUnreadBody);
        refused = true;
      }
    } catch (const std::exception& e) {
      // Perhaps amid the body (an allocation for it failed): what is left of it must
      // not be read as the next request.
      reply = ErrorReply(500, std::string("Internal error: ") + e.what());
      refused = true;
    } catch (...) {
      reply = ErrorReply(500, "Internal error: unknown error");
      refused = true;
    }
    const bool close = head.close || last;
    // Asked in another form than cpp-httplib reads: answered as Admit answers it on
    // cpp-httplib's path (Connection: close beside its Keep-Alive), and closed.
    refused = refused || head.asks_to_close;
    const std::string out = PlainReplyHead(reply, close, refused);
    if (reply.stream == nullptr) {
      // The head and the body's buffers, from where they are, in one sendmsg.
      std::vector<std::string_view> parts;
      parts.reserve(reply.body.size() + 1);
      parts.push_back(out);
      for (const auto& piece : reply.body) {
        parts.emplace_back(reinterpret_cast<const char*>(piece->data()),
                           static_cast<size_t>(piece->size()));
      }
      if (!stream.SendAll(parts)) return Plain::kFailed;
      return close || refused ? Plain::kClose : Plain::kServed;
    }
    // Held back (socket_stream_internal.h): it leaves with the first chunk.
    if (stream.write(out.data(), out.size()) < 0) return Plain::kFailed;
    auto write_all = [&stream](std::string_view bytes) {
      while (!bytes.empty()) {
        const ssize_t n = stream.write(bytes.data(), bytes.size());
        if (n < 0) return false;
        bytes.remove_prefix(static_cast<size_t>(n));
      }
      return true;
    };
    // Chunked. On a failure the last chunk is never sent and the connection closes: the
    // client sees a truncated answer, never a short valid one.
    arrow::Status written;
    try {
      written = reply.stream->WriteTo([&](std::string_view piece) {
        if (piece.empty()) return true;  // a zero-size chunk would end the body
        char size[32];
        const int n = std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
        return write_all(std::string_view(size, static_cast<size_t>(n))) &&
               write_all(piece) && write_all("\r\n");
      });
    } catch (...) {
      return Plain::kFailed;  // after the head: only a cut answer can say so
    }
    if (!written.ok() || !write_all("0\r\n\r\n")) return Plain::kFailed;
    return close || refused ? Plain::kClose : Plain::kServed;
  }

  std::string TooLarge() const {
    return "Request body too large: the limit is " +
           std::to_string(options.max_body_bytes) + " bytes (--max-body-bytes)";
  }

  const ServerOptions options;
  const Service service;
  const internal::RequestHeadLimits head_limits{
      options.max_headers, options.max_header_bytes,
      static_cast<uint64_t>(options.max_body_bytes), options.api_key};
  std::unique_ptr<SSL_CTX, SslCtxDeleter> tls;  // null: plain HTTP
  std::atomic<bool> stopping{false};
  ConnectionServer http;
  int port = 0;
  std::thread thread;

  std::mutex stop_mu;  // serializes Stop()
  mutable std::mutex mu;
  mutable std::condition_variable finished_cv;
  bool finished = false;  // guarded by mu: the serving thread has returned
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { Stop(); }

int Server::port() const { return impl_->port; }

const ServerOptions& Server::options() const { return impl_->options; }

const char* Server::scheme() const { return impl_->tls ? "https" : "http"; }

int64_t Server::version_check_interval_ms() const {
  return impl_->service.version_check_interval_ms();
}

Server::Stats Server::stats() const {
  Stats stats;
  stats.busy_polls = impl_->http.busy_polls_.load(std::memory_order_relaxed);
  stats.busy_poll_hits = impl_->http.busy_poll_hits_.load(std::memory_order_relaxed);
  stats.plain_requests = impl_->http.plain_requests_.load(std::memory_order_relaxed);
  return stats;
}

arrow::Result<std::unique_ptr<Server>> Server::Start(std::shared_ptr<Database> db,
                                                     ServerOptions options) {
  if (db == nullptr) return arrow::Status::Invalid("No database to serve");
  if (options.port < 0 || options.port > 65535) {
    return arrow::Status::Invalid("Invalid port ", options.port);
  }
  if (options.threads < 1) {
    return arrow::Status::Invalid("Invalid threads ", options.threads,
                                  ": at least 1 is needed");
  }
  if (options.busy_poll_us < 0 || options.busy_poll_us > BusyPoll::kMaxLimit.count()) {
    return arrow::Status::Invalid("Invalid busy_poll_us ", options.busy_poll_us,
                                  ": it must be in [0, ", BusyPoll::kMaxLimit.count(),
                                  "]");
  }
  if (options.max_body_bytes < 1) {
    return arrow::Status::Invalid("Invalid max_body_bytes ", options.max_body_bytes);
  }
  if (options.keep_alive_max_requests < 1 || options.keep_alive_timeout_ms < 1 ||
      options.io_timeout_ms < 1 || options.head_timeout_ms < 1 ||
      options.max_headers < 1 || options.max_header_bytes < 1 ||
      options.service.max_batch_rows < 1) {
    return arrow::Status::Invalid("Invalid server limits: each must be at least 1");
  }
  if (options.service.version_check_interval_ms < 0 &&
      options.service.version_check_interval_ms != ServiceOptions::kAutoVersionCheck) {
    return arrow::Status::Invalid("Invalid version_check_interval_ms ",
                                  options.service.version_check_interval_ms,
                                  ": at least 0 (or kAutoVersionCheck)");
  }
  if (options.service.max_decoded_bytes < 1) {
    return arrow::Status::Invalid("Invalid max_decoded_bytes ",
                                  options.service.max_decoded_bytes);
  }
  if (options.tls_cert_path.empty() != options.tls_key_path.empty()) {
    return arrow::Status::Invalid(
        "TLS needs both a certificate and a private key (tls_cert_path, tls_key_path)");
  }
  std::unique_ptr<SSL_CTX, SslCtxDeleter> tls;
  if (!options.tls_cert_path.empty()) {
    ARROW_ASSIGN_OR_RAISE(tls, MakeTlsContext(options));
  }
  auto impl = std::make_unique<Impl>(std::move(db), std::move(options));
  impl->tls = std::move(tls);
  impl->http.set_tls(impl->tls.get());
  Impl* self = impl.get();
  auto& http = impl->http;
  const int threads = impl->options.threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // Only the Keep-Alive response header reads these; our loop enforces them.
  http.set_keep_alive_max_count(
      static_cast<size_t>(impl->options.keep_alive_max_requests));
  http.set_keep_alive_timeout(std::max(1, impl->options.keep_alive_timeout_ms / 1000));
  http.set_payload_max_length(static_cast<size_t>(impl->options.max_body_bytes));
  if (impl->options.plain_path) {
    http.set_plain_path([self](internal::SocketStream& stream, bool last) {
      return self->ServePlain(stream, last);
    });
  }
  http.set_pre_routing_handler(
      [self](const httplib::Request& req, httplib::Response& res) {
        return self->Admit(req, res);
      });
  // A client that sends `Expect: 100-continue` waits for 100 Continue before its body:
  // the request is admitted (or refused, its body never sent) first, as cpp-httplib
  // answers 100 before its pre-routing handler runs.
  http.set_expect_100_continue_handler([self](const httplib::Request& req,
                                              httplib::Response& res) {
    return self->Admit(req, res) == httplib::Server::HandlerResponse::Handled ? res.status
                                                                              : 100;
  });
  http.Get(".*", [self](const httplib::Request& req, httplib::Response& res) {
    self->HandleGet(req, res);
  });
  http.Post(".*", [self](const httplib::Request& req, httplib::Response& res,
                         const httplib::ContentReader& reader) {
    self->HandlePost(req, res, reader);
  });
  // cpp-httplib answers a request it cannot parse (a request line or a header line it
  // refuses, a URI over 8 KiB, a malformed Range) itself, with no body, and would keep
  // the connection: what follows the bad head, its body included, would then be read as
  // the next request (a request smuggled in a body). Those answers get a JSON body and
  // close the connection. Our own replies (a body, or a provider) are left as they are.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty() || res.content_provider_) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        std::string message;
        switch (res.status) {
          case 400:
            message =
                "Malformed request: a request line or header line that cannot "
                "be parsed";
            break;
          case 414:
            message = "Malformed request: the request line is over 8 KiB";
            break;
          case 416:
            message = "Malformed request: a Range header that cannot be parsed";
            break;
          default:
            message = "The request could not be served (HTTP " +
                      std::to_string(res.status) + ")";
        }
        // Whole, not cut to a Range the request may carry (cpp-httplib would apply it).
        const_cast<httplib::Request&>(req).ranges.clear();
        res.set_content(ErrorJson(message), kJsonType);
        res.set_header("Connection", "close");
        t_close_connection = true;
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        // Perhaps amid the body: what is left of it must not be read as the next
        // request.
        SetReply(ErrorReply(500, "Internal error: " + what), res);
        res.set_header("Connection", "close");
        t_close_connection = true;
      });

  const std::string& host = impl->options.host;
  errno = 0;
  if (impl->options.port == 0) {
    impl->port = http.bind_to_any_port(host);
    if (impl->port < 0) impl->port = 0;
  } else if (http.bind_to_port(host, impl->options.port)) {
    impl->port = impl->options.port;
  }
  if (impl->port == 0) {
    const int error = errno;
    return arrow::Status::IOError("Cannot listen on ", host, ":", impl->options.port,
                                  error != 0 ? ": " : "",
                                  error != 0 ? std::strerror(error) : "");
  }
  http.RaiseBacklog();
  if (!http.KeepListener()) {
    return arrow::Status::IOError("Cannot listen on ", host, ":", impl->port, ": ",
                                  std::strerror(errno));
  }
  impl->thread = std::thread([self] {
    self->http.listen_after_bind();
    self->http.StopAccepting();  // connects refused, also when the loop failed
    std::lock_guard<std::mutex> lock(self->mu);
    self->finished = true;
    self->finished_cv.notify_all();
  });
  // A Stop() before the accept loop runs is not lost: the loop finds the socket shut
  // down.
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

void Server::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (!impl_->thread.joinable()) return;
  impl_->stopping.store(true, std::memory_order_release);
  // The accept loop ends, then waits for every connection thread to finish the
  // requests it has (ConnectionServer::StopAccepting).
  impl_->http.StopAccepting();
  impl_->thread.join();
}

bool Server::Wait(std::optional<int64_t> timeout_ms) const {
  std::unique_lock<std::mutex> lock(impl_->mu);
  auto done = [&] { return impl_->finished; };
  if (!timeout_ms) {
    impl_->finished_cv.wait(lock, done);
    return true;
  }
  return impl_->finished_cv.wait_for(lock, std::chrono::milliseconds(*timeout_ms), done);
}

bool TuneAllocatorForServing() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr ||
      std::getenv("MALLOC_TRIM_THRESHOLD_") != nullptr ||
      (tunables != nullptr &&
       (std::strstr(tunables, "glibc.malloc.mmap_threshold") != nullptr ||
        std::strstr(tunables, "glibc.malloc.trim_threshold") != nullptr))) {
    return false;
  }
  constexpr int kMmapThreshold = 16 << 20;
  constexpr int kTrimThreshold = 32 << 20;
  return mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 &&
         mallopt(M_TRIM_THRESHOLD, kTrimThreshold) == 1;
#else
  return false;
#endif
}

}  // namespace riffledb::remote
