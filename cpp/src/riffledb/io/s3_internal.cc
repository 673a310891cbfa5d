#include "riffledb/io/s3_internal.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <ctime>
#include <map>
#include <memory>
#include <random>
#include <thread>

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

// SigV4's Trimall: no leading or trailing blanks, runs of blanks as one space.
std::string TrimAll(std::string_view s) {
  s = TrimBlanks(s);
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
    std::string key = Lower(TrimBlanks(name));
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

namespace {

// The request line and headers of `request`, with the blank line.
std::string RequestHead(const Endpoint& endpoint, const HttpRequest& request,
                        bool close) {
  std::string head = request.method + " " + request.Target() + " HTTP/1.1\r\n";
  head += "Host: " + endpoint.HostHeader() + "\r\n";
  for (const auto& [name, value] : request.headers) head += name + ": " + value + "\r\n";
  if (!request.body.empty() || request.method == "PUT" || request.method == "POST") {
    head += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  head += "User-Agent: riffledb\r\n";
  if (close) head += "Connection: close\r\n";
  head += "\r\n";
  return head;
}

}  // namespace

arrow::Result<HttpResponse> SendHttpRequest(const Endpoint& endpoint,
                                            const HttpRequest& request,
                                            const HttpOptions& options) {
  ARROW_ASSIGN_OR_RAISE(auto conn, HttpConnection::Open(endpoint, options));
  ARROW_RETURN_NOT_OK(
      conn->Send(RequestHead(endpoint, request, /*close=*/true), request.body));
  return conn->Receive(request.method);
}

arrow::Result<HttpResponse> SendHttpRequest(HttpConnectionPool& pool,
                                            const Endpoint& endpoint,
                                            const HttpRequest& request,
                                            const HttpOptions& options) {
  const std::string head = RequestHead(endpoint, request, /*close=*/false);
  const bool repeatable = request.method == "GET" || request.method == "HEAD";
  auto open = [&] { return HttpConnection::Open(endpoint, options); };
  // A GET that fails on a pooled connection as on one the server closed meanwhile (its
  // idle limit) is sent once more, on a new connection; a timeout or an answer cut
  // short is not sent again.
  for (bool fresh = false;; fresh = true) {
    ARROW_ASSIGN_OR_RAISE(auto lease, pool.Acquire(open, fresh));
    HttpConnection& conn = lease.connection();
    conn.SetIoTimeout(options.io_timeout_seconds);
    conn.SetMaxBodyBytes(options.max_body_bytes);
    const arrow::Status sent = conn.Send(head, request.body);
    arrow::Result<HttpResponse> got =
        sent.ok() ? conn.Receive(request.method) : arrow::Result<HttpResponse>(sent);
    if (got.ok() || !lease.reused() || !repeatable || !conn.StaleFailure()) return got;
  }
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
                          bool* conflict, bool* unknown) {
  if (conflict != nullptr) *conflict = false;
  if (unknown != nullptr) *unknown = false;
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
    if (unknown != nullptr) *unknown = true;
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
  if (response.status >= 500) {
    if (unknown != nullptr) *unknown = true;
    return arrow::Status::IOError(
        "Conditional PUT of '", path,
        "' failed (the object may have been created): ", described);
  }
  return arrow::Status::IOError("Conditional PUT of '", path, "' failed: ", described);
}

arrow::Status CreateIfAbsent(const S3RequestConfig& config, const std::string& bucket,
                             const std::string& key, std::span<const uint8_t> data,
                             const CreateRetries& retries) {
  std::minstd_rand jitter(
      static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  int conflicts = 0;
  int unknowns = 0;
  for (int attempt = 0;; ++attempt) {
    bool conflict = false;
    bool unknown = false;
    arrow::Status st = PutIfAbsent(config, bucket, key, data, &conflict, &unknown);
    if (st.IsAlreadyExists() && unknowns > 0) {
      // An earlier attempt may have created it: ours if it holds our bytes.
      auto held = GetObject(config, bucket, key, static_cast<int64_t>(data.size()));
      if (held.ok() && held->size() == data.size() &&
          std::equal(data.begin(), data.end(),
                     reinterpret_cast<const uint8_t*>(held->data()))) {
        return arrow::Status::OK();
      }
      if (held.ok() || held.status().IsCapacityError()) {  // other bytes: not ours
        return st.WithMessage(st.message(),
                              "; an earlier attempt's outcome was unknown and the "
                              "object holds other bytes");
      }
      // Still unknown: the caller must not take the object for another writer's.
      return arrow::Status::IOError(
          "Conditional PUT of '", bucket, "/", key,
          "' failed (the object may have been created): an earlier attempt's outcome "
          "was unknown, a retry found the object, and it could not be read back: ",
          held.status().message());
    }
    if (conflict && conflicts < retries.conflicts) {
      ++conflicts;
    } else if (unknown && unknowns < retries.unknowns) {
      ++unknowns;
    } else {
      return st;
    }
    const auto backoff = retries.backoff * (1 << std::min(attempt, 10));
    std::this_thread::sleep_for(backoff + std::chrono::milliseconds(jitter() % 20));
  }
}

namespace {

// A signed `GET /bucket/key` with `Range: range`, with room for `max_body_bytes` (and an
// error document).
arrow::Result<HttpResponse> SignedRangeGet(const S3RequestConfig& config,
                                           const std::string& bucket,
                                           const std::string& key,
                                           const std::string& range,
                                           int64_t max_body_bytes) {
  HttpRequest request;
  request.method = "GET";
  request.path = "/" + UriEncode(bucket, false) + "/" + UriEncode(key, true);
  request.headers.emplace_back("Range", range);
  const std::string host = config.endpoint.HostHeader();
  SignRequest(config.credentials, config.region, "s3", AmzDateNow(), host, &request);
  HttpOptions http = config.http;
  http.max_body_bytes = std::max<int64_t>(max_body_bytes, 4096);
  if (config.pool != nullptr)
    return SendHttpRequest(*config.pool, config.endpoint, request, http);
  return SendHttpRequest(config.endpoint, request, http);
}

}  // namespace

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
  auto sent = SignedRangeGet(config, bucket, key, range,
                             std::max<int64_t>(config.http.max_body_bytes, length));
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

arrow::Result<std::string> GetObject(const S3RequestConfig& config,
                                     const std::string& bucket, const std::string& key,
                                     int64_t max_bytes) {
  const std::string path = bucket + "/" + key;
  // One byte more than allowed, at most: a longer object is told from a short one
  // without reading it all.
  auto sent = SignedRangeGet(config, bucket, key, "bytes=0-" + std::to_string(max_bytes),
                             max_bytes + 1);
  if (!sent.ok()) {
    return arrow::Status::IOError("GET of '", path,
                                  "' failed: ", sent.status().message());
  }
  HttpResponse& response = *sent;
  if (response.status == 416) return std::string();  // an empty object has no byte 0
  if (response.status != 200 && response.status != 206) {
    const std::string code = S3ErrorCode(response.body);
    return arrow::Status::IOError("GET of '", path, "' failed: HTTP ", response.status,
                                  code.empty() ? "" : " " + code);
  }
  if (static_cast<int64_t>(response.body.size()) > max_bytes) {
    return arrow::Status::CapacityError("GET of '", path, "': the object is longer than ",
                                        max_bytes, " bytes");
  }
  return std::move(response.body);
}

}  // namespace riffledb::io::internal
