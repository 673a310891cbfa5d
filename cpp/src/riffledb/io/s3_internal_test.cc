#include "riffledb/io/s3_internal.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/testing/files.h"
#include "riffledb/testing/loopback.h"
#include "riffledb/testing/testing.h"

namespace riffledb::io::internal {
namespace {

std::string Hex(std::string_view text) {
  return HexEncode({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

using riffledb::testing::Bytes;

// -- Hashes
// --------------------------------------------------------------------------------

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(HexEncode(Sha256("")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexEncode(Sha256("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(HmacSha256, Rfc4231Case2) {
  const std::string key = "Jefe";
  EXPECT_EQ(HexEncode(HmacSha256(Bytes(key), "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(HexEncode, LowerCase) { EXPECT_EQ(Hex(std::string("\x00\xab\xff", 3)), "00abff"); }

// -- SigV4
// ---------------------------------------------------------------------------------

// The example of "Examples of how to derive a signing key for Signature Version 4" in the
// AWS documentation (IAM reference).
TEST(SigV4, DerivedSigningKeyOfTheAwsExample) {
  EXPECT_EQ(HexEncode(SigningKey("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "20120215",
                                 "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

TEST(SigV4, UriEncodeKeepsUnreservedAndEncodesTheRest) {
  EXPECT_EQ(UriEncode("aZ09-_.~", false), "aZ09-_.~");
  EXPECT_EQ(UriEncode("a b+c/d", false), "a%20b%2Bc%2Fd");
  EXPECT_EQ(UriEncode("a b+c/d", true), "a%20b%2Bc/d");
  EXPECT_EQ(UriEncode("t\xc3\xa9=*", true), "t%C3%A9%3D%2A");
}

// The expected headers were computed once with botocore 1.44.8's S3SigV4Auth (the signer
// boto3 uses for S3), with the clock fixed at 2026-12-04 10:11:12 UTC:
//
//   from unittest import mock; import datetime
//   from botocore.auth import S3SigV4Auth
//   from botocore.awsrequest import AWSRequest
//   from botocore.credentials import Credentials
//   def sign(method, url, token, region, headers, body, params=None):
//       req = AWSRequest(method=method, url=url, headers=headers, data=body,
//                        params=params or {})
//       now = datetime.datetime(2026, 12, 4, 10, 11, 12)
//       with mock.patch("botocore.auth.get_current_datetime", return_value=now):
//           S3SigV4Auth(Credentials(kKeyId, kSecret, token), "s3", region).add_auth(req)
//       return dict(req.headers)
//
// with the URLs, headers and bodies of each test below (the URL's path is the
// URI-encoded path, as sent).
constexpr char kKeyId[] = "AKIDEXAMPLE";
constexpr char kSecret[] = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
constexpr char kDate[] = "20261204T101112Z";

// sign("PUT", "http://127.0.0.1:9000/riffle-test/db/t.riffle/_versions/"
//      "00000000000000000001.json", None, "us-east-1", {"If-None-Match": "*"},
//      b'{"version":1}')
TEST(SigV4, ConditionalPutMatchesBotocore) {
  HttpRequest request;
  request.method = "PUT";
  request.path = "/riffle-test/db/t.riffle/_versions/00000000000000000001.json";
  request.headers = {{"If-None-Match", "*"}};
  request.body = R"({"version":1})";
  SignRequest({kKeyId, kSecret, ""}, "us-east-1", "s3", kDate, "127.0.0.1:9000",
              &request);
  EXPECT_EQ(request.Header("x-amz-date"), kDate);
  EXPECT_EQ(request.Header("x-amz-content-sha256"),
            "2430f1a2ad2982d0067885488a4c89e21ad1d7c83b115ba8f1b20acc88dfaea8");
  EXPECT_EQ(request.Header("x-amz-security-token"), std::nullopt);
  EXPECT_EQ(request.Header("Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;if-none-match;x-amz-content-sha256;x-amz-date, "
            "Signature=5b332412abcbe69fde52a6f7435536a997f6e24a7a4996e876917e4ee1fbf18c");
}

// sign("GET", "https://s3.eu-west-1.amazonaws.com/my-bucket", None, "eu-west-1", {}, b"",
//      params={"list-type": "2", "prefix": "dir/a b~"})
TEST(SigV4, ListWithQueryMatchesBotocore) {
  HttpRequest request;
  request.method = "GET";
  request.path = "/my-bucket";
  request.query = {{"prefix", "dir/a b~"}, {"list-type", "2"}};
  SignRequest({kKeyId, kSecret, ""}, "eu-west-1", "s3", kDate,
              "s3.eu-west-1.amazonaws.com", &request);
  EXPECT_EQ(request.Target(), "/my-bucket?list-type=2&prefix=dir%2Fa%20b~");
  EXPECT_EQ(request.Header("x-amz-content-sha256"),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(request.Header("Authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/eu-west-1/s3/aws4_request, "
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date, "
            "Signature=5daf23096f6a20a9f3b83bb3d00feec1352f6eef5aae44588c32e01d947cf436");
}

// sign("PUT", "https://s3.example.com:8443/bucket.with.dots/"
//      "db/t%C3%A9%20st.riffle/data/x%2By.arrow", "FQoGZXIvYXdzEXAMPLETOKEN//+=",
//      "eu-central-1", {"If-None-Match": "*"}, b"payload bytes")
TEST(SigV4, SessionTokenAndEncodedKeyMatchBotocore) {
  HttpRequest request;
  request.method = "PUT";
  request.path = "/" + UriEncode("bucket.with.dots", false) + "/" +
                 UriEncode("db/t\xc3\xa9 st.riffle/data/x+y.arrow", true);
  EXPECT_EQ(request.path, "/bucket.with.dots/db/t%C3%A9%20st.riffle/data/x%2By.arrow");
  request.headers = {{"If-None-Match", "*"}};
  request.body = "payload bytes";
  SignRequest({kKeyId, kSecret, "FQoGZXIvYXdzEXAMPLETOKEN//+="}, "eu-central-1", "s3",
              kDate, "s3.example.com:8443", &request);
  EXPECT_EQ(request.Header("X-Amz-Security-Token"), "FQoGZXIvYXdzEXAMPLETOKEN//+=");
  EXPECT_EQ(request.Header("x-amz-content-sha256"),
            "5043c48a936e796a7d6d31fdebb464e52df0e5d2a855e167ea694015ba1641e7");
  EXPECT_EQ(
      request.Header("Authorization"),
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/eu-central-1/s3/aws4_request, "
      "SignedHeaders=host;if-none-match;x-amz-content-sha256;x-amz-date;"
      "x-amz-security-token, "
      "Signature=4dd206928bcf6dbf0b115d415af74c84a2f720038f45f54cfe469e67f0f9ca16");
}

TEST(SigV4, CanonicalRequestTrimsAndSortsHeaders) {
  HttpRequest request;
  request.method = "PUT";
  request.path = "/b/k";
  request.headers = {{"X-B", "  two   words "}, {"x-a", "1"}, {"X-A", "2"}};
  std::string signed_headers;
  const std::string canonical =
      CanonicalRequest(request, "example.com", "HASH", &signed_headers);
  EXPECT_EQ(
      canonical,
      "PUT\n/b/k\n\nhost:example.com\nx-a:1,2\nx-b:two words\n\nhost;x-a;x-b\nHASH");
  EXPECT_EQ(signed_headers, "host;x-a;x-b");
}

TEST(SigV4, AnonymousRequestsAreNotSigned) {
  HttpRequest request;
  request.method = "PUT";
  request.path = "/b/k";
  SignRequest({}, "us-east-1", "s3", kDate, "example.com", &request);
  EXPECT_EQ(request.Header("Authorization"), std::nullopt);
  EXPECT_EQ(request.Header("x-amz-date"), kDate);
}

TEST(SigV4, AmzDateNowHasTheSigV4Format) {
  const std::string now = AmzDateNow();
  ASSERT_EQ(now.size(), 16u);
  EXPECT_EQ(now[8], 'T');
  EXPECT_EQ(now[15], 'Z');
}

// -- Endpoints
// -----------------------------------------------------------------------------

TEST(Endpoint, Parses) {
  ASSERT_OK_AND_ASSIGN(auto a, ParseEndpoint("http://127.0.0.1:5000"));
  EXPECT_EQ(a.scheme, "http");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 5000);
  EXPECT_EQ(a.HostHeader(), "127.0.0.1:5000");
  ASSERT_OK_AND_ASSIGN(auto b, ParseEndpoint("HTTPS://s3.us-east-2.amazonaws.com/"));
  EXPECT_EQ(b.scheme, "https");
  EXPECT_EQ(b.port, 443);
  EXPECT_EQ(b.HostHeader(), "s3.us-east-2.amazonaws.com");
  EXPECT_EQ(b.ToString(), "https://s3.us-east-2.amazonaws.com");
  ASSERT_OK_AND_ASSIGN(auto c, ParseEndpoint("http://[::1]:9000"));
  EXPECT_EQ(c.host, "::1");
  EXPECT_EQ(c.HostHeader(), "[::1]:9000");
  ASSERT_OK_AND_ASSIGN(auto d, ParseEndpoint("http://minio"));
  EXPECT_EQ(d.port, 80);
  EXPECT_EQ(d.HostHeader(), "minio");
}

TEST(Endpoint, RejectsWhatIsNotSchemeHostPort) {
  for (const char* bad :
       {"127.0.0.1:5000", "ftp://host", "http://", "http://host:0", "http://host:99999",
        "http://host:x", "http://host/path", "http://[::1", "http://host:"}) {
    ASSERT_RAISES_WITH_MESSAGE(Invalid, bad, ParseEndpoint(bad).status());
  }
  // User info is refused without echoing it: it may hold a password.
  auto st = ParseEndpoint("http://user:hunter2@host").status();
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "user info", st);
  EXPECT_EQ(st.message().find("hunter2"), std::string::npos);
}

// -- HTTP, against a canned server on loopback
// ---------------------------------------------

// Accepts one connection on 127.0.0.1 (an ephemeral port) per response, in turn: reads
// one request (headers and a Content-Length body), records it, sends the response (an
// empty one: nothing) and closes.
class CannedServer {
 public:
  explicit CannedServer(std::string response, bool read_request = true)
      : CannedServer(std::vector<std::string>{std::move(response)}, read_request) {}
  explicit CannedServer(std::vector<std::string> responses, bool read_request = true)
      : responses_(std::move(responses)), read_request_(read_request) {
    listen_fd_ = testing::ListenOnLoopback(&port_);
    thread_ = std::thread([this] {
      for (const std::string& response : responses_) {
        if (!Serve(response)) break;
      }
    });
  }
  ~CannedServer() {
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }

  int port() const { return port_; }
  Endpoint endpoint() const { return {"http", "127.0.0.1", port_}; }
  // Valid once the client has its response (the first request's).
  const std::string& request_head() const { return head_; }
  // The request line of every request served, once the server thread is joined.
  const std::vector<std::string>& request_lines() {
    if (thread_.joinable()) thread_.join();
    return lines_;
  }
  const std::string& request_body() const { return body_; }
  std::string RequestHeader(std::string_view name) const {
    const std::string needle = "\r\n" + std::string(name) + ": ";
    const size_t at = head_.find(needle);
    if (at == std::string::npos) return "<missing>";
    const size_t begin = at + needle.size();
    return head_.substr(begin, head_.find("\r\n", begin) - begin);
  }

 private:
  // False when no client came within 10 s (a test expecting more requests than were
  // sent then fails on its counts instead of hanging).
  bool Serve(const std::string& response) {
    pollfd listening{listen_fd_, POLLIN, 0};
    if (::poll(&listening, 1, 10000) != 1) return false;
    const int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return false;
    if (read_request_) {
      std::string data;
      char buf[4096];
      size_t head_end = std::string::npos;
      size_t length = 0;
      while (true) {
        if (head_end == std::string::npos) {
          head_end = data.find("\r\n\r\n");
          if (head_end != std::string::npos) {
            const std::string head = data.substr(0, head_end + 2);
            lines_.push_back(head.substr(0, head.find("\r\n")));
            if (lines_.size() == 1) head_ = head;
            const std::string needle = "\r\nContent-Length: ";
            const size_t at = head.find(needle);
            length =
                at == std::string::npos ? 0 : std::stoul(head.substr(at + needle.size()));
          }
        }
        if (head_end != std::string::npos && data.size() >= head_end + 4 + length) break;
        ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        data.append(buf, static_cast<size_t>(n));
      }
      if (head_end != std::string::npos && lines_.size() == 1) {
        body_ = data.substr(head_end + 4, length);
      }
    }
    size_t sent = 0;
    while (sent < response.size()) {
      ssize_t n =
          ::send(fd, response.data() + sent, response.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<size_t>(n);
    }
    ::close(fd);
    return true;
  }

  std::vector<std::string> responses_;
  bool read_request_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string head_;
  std::string body_;
  std::vector<std::string> lines_;
};

// For a CannedServer or a KeepAliveServer (below).
template <typename Server>
S3RequestConfig ConfigFor(const Server& server) {
  S3RequestConfig config;
  config.endpoint = server.endpoint();
  config.region = "us-east-1";
  config.credentials = {kKeyId, kSecret, "TOKEN"};
  config.http.connect_timeout_seconds = 5;
  config.http.io_timeout_seconds = 5;
  return config;
}

std::string XmlError(const std::string& code) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code +
         "</Code><Message>m</Message><Key>k</Key></Error>";
}

std::string Response(const std::string& status_line, const std::string& body) {
  return status_line + "\r\nContent-Type: application/xml\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

TEST(PutIfAbsent, SendsASignedConditionalPut) {
  CannedServer server("HTTP/1.1 200 OK\r\nETag: \"x\"\r\nContent-Length: 0\r\n\r\n");
  const std::string data = "{\"version\": 7}";
  ASSERT_OK(PutIfAbsent(ConfigFor(server), "riffle-test",
                        "db/a b.riffle/_versions/00000000000000000007.json",
                        Bytes(data)));
  const std::string& head = server.request_head();
  EXPECT_TRUE(head.starts_with(
      "PUT /riffle-test/db/a%20b.riffle/_versions/00000000000000000007.json "
      "HTTP/1.1\r\n"))
      << head;
  EXPECT_EQ(server.RequestHeader("Host"), "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(server.RequestHeader("If-None-Match"), "*");
  EXPECT_EQ(server.RequestHeader("Content-Length"), std::to_string(data.size()));
  EXPECT_EQ(server.RequestHeader("X-Amz-Content-SHA256"), HexEncode(Sha256(data)));
  EXPECT_EQ(server.RequestHeader("X-Amz-Security-Token"), "TOKEN");
  EXPECT_EQ(server.RequestHeader("Connection"), "close");
  EXPECT_EQ(server.request_body(), data);

  // The signature is the one of what was sent: sign the same request again at the date
  // the client used.
  HttpRequest expected;
  expected.method = "PUT";
  expected.path = "/riffle-test/db/a%20b.riffle/_versions/00000000000000000007.json";
  expected.headers = {{"If-None-Match", "*"}};
  expected.body = data;
  SignRequest({kKeyId, kSecret, "TOKEN"}, "us-east-1", "s3",
              server.RequestHeader("X-Amz-Date"), server.endpoint().HostHeader(),
              &expected);
  EXPECT_EQ(server.RequestHeader("Authorization"), expected.Header("Authorization"));
  EXPECT_EQ(head.find(kSecret), std::string::npos);
}

TEST(PutIfAbsent, CreatedIsOk) {
  CannedServer server("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  ASSERT_OK(PutIfAbsent(ConfigFor(server), "b", "k", Bytes("x")));
}

TEST(PutIfAbsent, PreconditionFailedIsAlreadyExistsNamingThePath) {
  CannedServer server(
      Response("HTTP/1.1 412 Precondition Failed", XmlError("PreconditionFailed")));
  arrow::Status st =
      PutIfAbsent(ConfigFor(server), "b", "t/_versions/1.json", Bytes("x"));
  ASSERT_TRUE(st.IsAlreadyExists()) << st.ToString();
  EXPECT_NE(st.message().find("'b/t/_versions/1.json'"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("PreconditionFailed"), std::string::npos) << st.message();
}

TEST(PutIfAbsent, ConflictIsARetryableIOError) {
  CannedServer server(
      Response("HTTP/1.1 409 Conflict", XmlError("ConditionalRequestConflict")));
  bool conflict = false;
  arrow::Status st = PutIfAbsent(ConfigFor(server), "b", "k", Bytes("x"), &conflict);
  ASSERT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_TRUE(conflict);
  EXPECT_NE(st.message().find("HTTP 409 ConditionalRequestConflict"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("retry"), std::string::npos) << st.message();
}

TEST(PutIfAbsent, OtherErrorsNameThePathStatusAndCodeNotTheSecret) {
  CannedServer server(
      Response("HTTP/1.1 403 Forbidden", XmlError("SignatureDoesNotMatch")));
  bool conflict = true;
  arrow::Status st = PutIfAbsent(ConfigFor(server), "b", "k", Bytes("x"), &conflict);
  ASSERT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_FALSE(conflict);
  EXPECT_NE(st.message().find("'b/k'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("HTTP 403 SignatureDoesNotMatch"), std::string::npos)
      << st.message();
  EXPECT_EQ(st.message().find(kSecret), std::string::npos);
}

TEST(PutIfAbsent, ChunkedErrorBody) {
  const std::string xml = XmlError("InternalError");
  const std::string first = xml.substr(0, 10);
  const std::string rest = xml.substr(10);
  char sizes[64];
  std::snprintf(sizes, sizeof(sizes), "%zx", first.size());
  std::string chunked = std::string(sizes) + ";ext=1\r\n" + first + "\r\n";
  std::snprintf(sizes, sizeof(sizes), "%zX", rest.size());
  chunked += std::string(sizes) + "\r\n" + rest + "\r\n0\r\nX-Trailer: t\r\n\r\n";
  CannedServer server(
      "HTTP/1.1 500 Internal Server Error\r\nTransfer-Encoding: chunked\r\n\r\n" +
      chunked);
  arrow::Status st = PutIfAbsent(ConfigFor(server), "b", "k", Bytes("x"));
  ASSERT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_NE(st.message().find("HTTP 500 InternalError"), std::string::npos)
      << st.message();
}

TEST(PutIfAbsent, ServerClosingWithoutAReplyLeavesTheOutcomeUnknown) {
  CannedServer server("");
  arrow::Status st = PutIfAbsent(ConfigFor(server), "b", "k", Bytes("x"));
  ASSERT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_NE(st.message().find("may have been created"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("closed before the end of the status line"),
            std::string::npos)
      << st.message();
}

// -- CreateIfAbsent: PutIfAbsent retried ------------------------------------------------

CreateRetries FastRetries() {
  CreateRetries retries;
  retries.backoff = std::chrono::milliseconds(1);
  return retries;
}

std::string Ok200(const std::string& body = "") {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

const std::string kInternalError =
    Response("HTTP/1.1 500 Internal Server Error", XmlError("InternalError"));
const std::string kPreconditionFailed =
    Response("HTTP/1.1 412 Precondition Failed", XmlError("PreconditionFailed"));

TEST(PutIfAbsent, A5xxLeavesTheOutcomeUnknown) {
  CannedServer server(kInternalError);
  bool conflict = true;
  bool unknown = false;
  arrow::Status st =
      PutIfAbsent(ConfigFor(server), "b", "k", Bytes("x"), &conflict, &unknown);
  ASSERT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_FALSE(conflict);
  EXPECT_TRUE(unknown);
  EXPECT_NE(st.message().find("may have been created"), std::string::npos)
      << st.message();
}

TEST(CreateIfAbsent, A5xxIsRetried) {
  CannedServer server(std::vector<std::string>{
      kInternalError, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"});
  ASSERT_OK(CreateIfAbsent(ConfigFor(server), "b", "k", Bytes("data"), FastRetries()));
  EXPECT_EQ(server.request_lines(),
            (std::vector<std::string>{"PUT /b/k HTTP/1.1", "PUT /b/k HTTP/1.1"}));
}

TEST(CreateIfAbsent, AnAnswerLostAfterTheObjectWasCreatedIsOursWhenItHoldsOurBytes) {
  // The first PUT created the object but its answer was lost (a 500, then a closed
  // connection); the retry finds the object, which is read back.
  CannedServer server(
      std::vector<std::string>{kInternalError, "", kPreconditionFailed, Ok200("data")});
  ASSERT_OK(CreateIfAbsent(ConfigFor(server), "b", "k", Bytes("data"), FastRetries()));
  EXPECT_EQ(server.request_lines(),
            (std::vector<std::string>{"PUT /b/k HTTP/1.1", "PUT /b/k HTTP/1.1",
                                      "PUT /b/k HTTP/1.1", "GET /b/k HTTP/1.1"}));
}

TEST(CreateIfAbsent, AnObjectOfOtherBytesAfterAnUnknownOutcomeIsAnotherWriters) {
  // Shorter, as long, longer (the read asks for one byte more than ours, at most).
  for (const std::string& held :
       {std::string("dat"), std::string("date"), std::string("data+")}) {
    CannedServer server(
        std::vector<std::string>{kInternalError, kPreconditionFailed, Ok200(held)});
    arrow::Status st =
        CreateIfAbsent(ConfigFor(server), "b", "k", Bytes("data"), FastRetries());
    ASSERT_TRUE(st.IsAlreadyExists()) << st.ToString();
    EXPECT_NE(st.message().find("an earlier attempt's outcome was unknown"),
              std::string::npos)
        << st.message();
    EXPECT_EQ(server.request_lines().size(), 3u);
  }
}

TEST(CreateIfAbsent, AnObjectThatCannotBeReadBackLeavesTheOutcomeUnknown) {
  // Not AlreadyExists: a commit would take the version for another writer's and delete
  // the files our own (maybe created) manifest references.
  CannedServer server(std::vector<std::string>{
      "", kPreconditionFailed,
      Response("HTTP/1.1 403 Forbidden", XmlError("AccessDenied"))});
  arrow::Status st =
      CreateIfAbsent(ConfigFor(server), "b", "k", Bytes("data"), FastRetries());
  ASSERT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_NE(st.message().find("may have been created"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("could not be read back"), std::string::npos)
      << st.message();
  EXPECT_NE(st.message().find("HTTP 403 AccessDenied"), std::string::npos)
      << st.message();
}

TEST(GetObject, AsksForOneByteMoreThanAllowed) {
  CannedServer server(Response("HTTP/1.1 206 Partial Content", "abc"));
  ASSERT_OK_AND_ASSIGN(std::string got, GetObject(ConfigFor(server), "b", "k", 3));
  EXPECT_EQ(got, "abc");
  EXPECT_EQ(server.RequestHeader("Range"), "bytes=0-3");
}

TEST(GetObject, ALongerObjectIsACapacityError) {
  CannedServer server(Response("HTTP/1.1 206 Partial Content", "abcd"));
  auto got = GetObject(ConfigFor(server), "b", "k", 3);
  ASSERT_TRUE(got.status().IsCapacityError()) << got.status().ToString();
}

TEST(GetObject, AnEmptyObjectIsEmpty) {
  CannedServer server(
      Response("HTTP/1.1 416 Requested Range Not Satisfiable", XmlError("InvalidRange")));
  ASSERT_OK_AND_ASSIGN(std::string got, GetObject(ConfigFor(server), "b", "k", 3));
  EXPECT_EQ(got, "");
}

TEST(CreateIfAbsent, AnExistingObjectWithoutAnUnknownOutcomeIsNotReadBack) {
  CannedServer server(std::vector<std::string>{kPreconditionFailed});
  arrow::Status st =
      CreateIfAbsent(ConfigFor(server), "b", "k", Bytes("data"), FastRetries());
  ASSERT_TRUE(st.IsAlreadyExists()) << st.ToString();
  EXPECT_EQ(st.message().find("earlier attempt"), std::string::npos) << st.message();
  EXPECT_EQ(server.request_lines().size(), 1u);
}

TEST(CreateIfAbsent, UnknownOutcomesAreRetriedABoundedNumberOfTimes) {
  CreateRetries retries = FastRetries();
  retries.unknowns = 2;
  CannedServer server(
      std::vector<std::string>{kInternalError, kInternalError, kInternalError});
  arrow::Status st = CreateIfAbsent(ConfigFor(server), "b", "k", Bytes("data"), retries);
  ASSERT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_NE(st.message().find("HTTP 500 InternalError"), std::string::npos)
      << st.message();
  EXPECT_EQ(server.request_lines().size(), 3u);
}

TEST(CreateIfAbsent, ConflictsAreRetried) {
  const std::string conflict =
      Response("HTTP/1.1 409 Conflict", XmlError("ConditionalRequestConflict"));
  CannedServer server(
      {conflict, conflict, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"});
  ASSERT_OK(CreateIfAbsent(ConfigFor(server), "b", "k", Bytes("data"), FastRetries()));
  EXPECT_EQ(server.request_lines().size(), 3u);
}

TEST(CreateIfAbsent, OtherErrorsAreNotRetried) {
  CannedServer server(Response("HTTP/1.1 403 Forbidden", XmlError("AccessDenied")));
  arrow::Status st =
      CreateIfAbsent(ConfigFor(server), "b", "k", Bytes("data"), FastRetries());
  ASSERT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_EQ(server.request_lines().size(), 1u);
}

// Serves `script[i]` on the i-th connection it accepts: for each response in turn, reads
// one request (head only: the GETs here have no body) and sends it; an empty response
// closes the connection instead (a server dropping an idle keep-alive connection as the
// request arrives), and kHold answers nothing until the client closes. Records the
// request lines of each connection.
class KeepAliveServer {
 public:
  static constexpr char kHold[] = "<hold>";

  explicit KeepAliveServer(std::vector<std::vector<std::string>> script)
      : script_(std::move(script)), lines_(script_.size()) {
    listen_fd_ = testing::ListenOnLoopback(&port_, /*backlog=*/4);
    thread_ = std::thread([this] {
      for (size_t i = 0; i < script_.size(); ++i) {
        pollfd listening{listen_fd_, POLLIN, 0};
        if (::poll(&listening, 1, 10000) != 1) return;
        const int fd = ::accept(listen_fd_, nullptr, nullptr);
        if (fd < 0) return;
        std::string data;
        char buf[4096];
        for (const std::string& response : script_[i]) {
          size_t end;
          while ((end = data.find("\r\n\r\n")) == std::string::npos) {
            const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
            if (n <= 0) break;
            data.append(buf, static_cast<size_t>(n));
          }
          if (end == std::string::npos) break;
          lines_[i].push_back(data.substr(0, end + 4));
          data.erase(0, end + 4);
          if (response.empty()) break;
          if (response == kHold) {  // until the client closes
            while (::recv(fd, buf, sizeof(buf), 0) > 0) {
            }
            break;
          }
          ::send(fd, response.data(), response.size(), MSG_NOSIGNAL);
        }
        ::close(fd);
      }
    });
  }
  ~KeepAliveServer() {
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }
  Endpoint endpoint() const { return {"http", "127.0.0.1", port_}; }
  // The request heads of each connection, once every connection was served.
  const std::vector<std::vector<std::string>>& heads() {
    if (thread_.joinable()) thread_.join();
    return lines_;
  }

 private:
  std::vector<std::vector<std::string>> script_;
  std::vector<std::vector<std::string>> lines_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
};

S3RequestConfig PooledConfigFor(const KeepAliveServer& server) {
  S3RequestConfig config = ConfigFor(server);
  config.pool = std::make_shared<HttpConnectionPool>();
  return config;
}

TEST(GetRange, RangedGetsOfAPoolShareAKeepAliveConnection) {
  KeepAliveServer server({{Response("HTTP/1.1 206 Partial Content", "abc"),
                           Response("HTTP/1.1 206 Partial Content", "defg")}});
  S3RequestConfig config = PooledConfigFor(server);
  ASSERT_OK_AND_ASSIGN(std::string first, GetRange(config, "b", "k", 0, 3));
  ASSERT_OK_AND_ASSIGN(std::string second, GetRange(config, "b", "k", 3, 4));
  EXPECT_EQ(first, "abc");
  EXPECT_EQ(second, "defg");
  const HttpPoolStats stats = config.pool->stats();
  config.pool.reset();  // closes the idle connection: the server's thread ends
  const auto& heads = server.heads();
  ASSERT_EQ(heads.size(), 1u);
  ASSERT_EQ(heads[0].size(), 2u);
  EXPECT_NE(heads[0][1].find("Range: bytes=3-6\r\n"), std::string::npos);
  for (const std::string& head : heads[0]) {
    EXPECT_EQ(head.find("Connection: close"), std::string::npos) << head;
  }
  EXPECT_EQ(stats.connections, 1);
  EXPECT_EQ(stats.reused, 1);
}

TEST(GetRange, AGetThatFailsOnAPooledConnectionIsSentAgainOnANewOne) {
  // The first connection is closed as the second GET arrives on it.
  KeepAliveServer server({{Response("HTTP/1.1 206 Partial Content", "abc"), ""},
                          {Response("HTTP/1.1 206 Partial Content", "xyz")}});
  S3RequestConfig config = PooledConfigFor(server);
  ASSERT_OK_AND_ASSIGN(std::string first, GetRange(config, "b", "k", 0, 3));
  ASSERT_OK_AND_ASSIGN(std::string second, GetRange(config, "b", "k", 10, 3));
  EXPECT_EQ(first, "abc");
  EXPECT_EQ(second, "xyz");
  const HttpPoolStats stats = config.pool->stats();
  EXPECT_EQ(stats.connections, 2);
  EXPECT_EQ(stats.reused, 1);
  config.pool.reset();
  const auto& heads = server.heads();
  ASSERT_EQ(heads.size(), 2u);
  EXPECT_EQ(heads[0].size(), 2u);  // the second GET, unanswered
  ASSERT_EQ(heads[1].size(), 1u);  // ... sent again
  EXPECT_NE(heads[1][0].find("Range: bytes=10-12\r\n"), std::string::npos);
}

TEST(GetRange, AGetThatTimesOutOnAPooledConnectionIsNotSentAgain) {
  // The second GET is read and never answered: a slow server, not a closed connection.
  KeepAliveServer server(
      {{Response("HTTP/1.1 206 Partial Content", "abc"), KeepAliveServer::kHold}});
  S3RequestConfig config = PooledConfigFor(server);
  config.http.io_timeout_seconds = 0.2;
  ASSERT_OK(GetRange(config, "b", "k", 0, 3).status());
  auto second = GetRange(config, "b", "k", 3, 3);
  ASSERT_RAISES_WITH_MESSAGE(IOError, "timed out", second.status());
  const HttpPoolStats stats = config.pool->stats();
  EXPECT_EQ(stats.connections, 1);  // no second connection: not sent again
  EXPECT_EQ(stats.reused, 1);
  config.pool.reset();
  EXPECT_EQ(server.heads().size(), 1u);
}

TEST(PutIfAbsent, IsSentOnAConnectionOfItsOwnWhateverThePool) {
  CannedServer server(Response("HTTP/1.1 200 OK", ""));
  S3RequestConfig config = ConfigFor(server);
  config.pool = std::make_shared<HttpConnectionPool>();
  const std::string data = "bytes";
  ASSERT_OK(PutIfAbsent(config, "b", "k",
                        {reinterpret_cast<const uint8_t*>(data.data()), data.size()}));
  EXPECT_EQ(server.RequestHeader("Connection"), "close");
  EXPECT_EQ(config.pool->stats().requests, 0);
}

TEST(SendHttpRequest, ChunkedBodyIsReassembled) {
  CannedServer server(
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n");
  HttpRequest request;
  request.method = "GET";
  request.path = "/b/k";
  ASSERT_OK_AND_ASSIGN(auto response, SendHttpRequest(server.endpoint(), request));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.reason, "OK");
  EXPECT_EQ(response.body, "hello world");
  EXPECT_TRUE(server.request_head().starts_with("GET /b/k HTTP/1.1\r\n"));
  EXPECT_EQ(server.RequestHeader("Content-Length"), "<missing>");
}

TEST(SendHttpRequest, BodyUntilCloseWithoutLength) {
  CannedServer server("HTTP/1.1 200 OK\r\n\r\neverything until close");
  HttpRequest request;
  request.method = "GET";
  request.path = "/";
  ASSERT_OK_AND_ASSIGN(auto response, SendHttpRequest(server.endpoint(), request));
  EXPECT_EQ(response.body, "everything until close");
}

TEST(SendHttpRequest, ServerClosingEarlyIsAnError) {
  CannedServer server("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
  HttpRequest request;
  request.method = "GET";
  request.path = "/";
  auto response = SendHttpRequest(server.endpoint(), request);
  ASSERT_RAISES_WITH_MESSAGE(
      IOError, "closed before the end of the body (5 of 100 bytes)", response.status());
  EXPECT_NE(response.status().message().find(server.endpoint().ToString()),
            std::string::npos);
}

TEST(SendHttpRequest, MalformedResponsesAreErrors) {
  for (const char* canned :
       {"garbage\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n"}) {
    CannedServer server(canned);
    HttpRequest request;
    request.method = "GET";
    request.path = "/";
    ASSERT_RAISES(IOError, SendHttpRequest(server.endpoint(), request).status());
  }
}

TEST(SendHttpRequest, ConnectionRefusedNamesTheEndpoint) {
  // A port that was just free: bind, read it, close.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  Endpoint endpoint{"http", "127.0.0.1", ntohs(addr.sin_port)};
  HttpRequest request;
  request.method = "GET";
  request.path = "/";
  ASSERT_RAISES_WITH_MESSAGE(IOError, "Cannot connect to " + endpoint.ToString(),
                             SendHttpRequest(endpoint, request).status());
}

TEST(SendHttpRequest, TlsToAPlainServerFailsCleanly) {
  CannedServer server("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                      /*read_request=*/false);
  Endpoint endpoint{"https", "127.0.0.1", server.port()};
  HttpRequest request;
  request.method = "GET";
  request.path = "/";
  ASSERT_RAISES_WITH_MESSAGE(IOError, "TLS", SendHttpRequest(endpoint, request).status());
}

// The seeds of http_response_fuzz, parsed as the client parses a connection's bytes.
TEST(ParseHttpResponse, FuzzSeeds) {
  const std::string dir =
      std::string(RIFFLEDB_COMPONENT_DIR) + "/testdata/fuzz/http_response_fuzz/";
  auto read = [&](const char* name) {
    std::ifstream in(dir + name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  ASSERT_OK_AND_ASSIGN(auto ok, ParseHttpResponse(read("ok_empty.txt"), "PUT"));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.Header("etag"), "\"x\"");
  EXPECT_EQ(ok.body, "");
  ASSERT_OK_AND_ASSIGN(auto failed,
                       ParseHttpResponse(read("precondition_failed.txt"), "PUT"));
  EXPECT_EQ(failed.status, 412);
  EXPECT_EQ(S3ErrorCode(failed.body), "PreconditionFailed");
  ASSERT_OK_AND_ASSIGN(auto chunked,
                       ParseHttpResponse(read("continue_then_chunked.txt"), "PUT"));
  EXPECT_EQ(chunked.status, 500);
  EXPECT_EQ(chunked.body, "<Code>InternalError</Code>");
  ASSERT_OK_AND_ASSIGN(auto until_close,
                       ParseHttpResponse(read("until_close.txt"), "PUT"));
  EXPECT_EQ(until_close.status, 409);
  EXPECT_EQ(S3ErrorCode(until_close.body), "ConditionalRequestConflict");
  // After a HEAD there is no body, whatever the headers say.
  ASSERT_OK_AND_ASSIGN(auto head,
                       ParseHttpResponse(read("precondition_failed.txt"), "HEAD"));
  EXPECT_EQ(head.body, "");
  // Truncated anywhere in the head or a framed body: an error naming <memory>.
  const std::string whole = read("precondition_failed.txt");
  for (size_t n = 0; n < whole.size(); ++n) {
    ASSERT_RAISES_WITH_MESSAGE(IOError, "<memory>",
                               ParseHttpResponse(whole.substr(0, n), "PUT").status());
  }
}

TEST(S3ErrorCode, FromXml) {
  EXPECT_EQ(S3ErrorCode(XmlError("NoSuchBucket")), "NoSuchBucket");
  EXPECT_EQ(S3ErrorCode("not xml"), "");
  EXPECT_EQ(S3ErrorCode("<Code>unterminated"), "");
}

}  // namespace
}  // namespace riffledb::io::internal
