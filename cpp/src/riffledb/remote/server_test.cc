// The server's plain path (ServerOptions::plain_path: request heads parsed by the server
// itself) against cpp-httplib's: the same bytes sent to a server of each kind, on a
// database of its own, must get the same bytes back, whatever the requests and however
// they are cut into sends.
#include "riffledb/remote/server.h"

#include <arpa/inet.h>
#include <arrow/api.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/db/database.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/ipc_bytes.h"
#include "riffledb/testing/testing.h"

namespace riffledb::remote {
namespace {

using riffledb::testing::IdBatch;

std::string StreamBody(int64_t start, int64_t n) {
  return riffledb::testing::IpcStream({IdBatch(start, n)});
}

std::string Post(const std::string& target, const std::string& body,
                 const std::string& headers = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

std::string Create(const std::string& name, int64_t rows) {
  return Post("/v1/table/" + name + "/create/", StreamBody(0, rows),
              "Content-Type: application/vnd.apache.arrow.stream\r\n");
}

std::string Query(const std::string& name, const std::string& json,
                  const std::string& headers = "") {
  return Post("/v1/table/" + name + "/query/", json,
              "Content-Type: application/json\r\n" + headers);
}

// Sends `pieces` on one connection, a short pause between two (so that the server reads
// them apart), closes the sending side, and returns all the server sent until it closed.
std::string Exchange(int port, const std::vector<std::string>& pieces) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(::send(fd, pieces[i].data(), pieces[i].size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(pieces[i].size()));
  }
  ::shutdown(fd, SHUT_WR);
  std::string received;
  char buffer[65536];
  while (true) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 10000) <= 0) {
      ADD_FAILURE() << "the server neither answered nor closed in 10 s";
      break;
    }
    const ssize_t n = ::recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    received.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return received;
}

// `replies` with the (random) table ids of describe answers blanked out.
std::string WithoutTableIds(std::string replies) {
  const std::string key = "\"table_id\":\"";
  for (size_t at = replies.find(key); at != std::string::npos;
       at = replies.find(key, at + 1)) {
    const size_t begin = at + key.size();
    const size_t end = replies.find('"', begin);
    if (end == std::string::npos) break;
    replies.replace(begin, end - begin, "ID");
  }
  return replies;
}

class PlainPathTest : public ::testing::Test {
 protected:
  // What a server of each kind (a fresh memory database each) sends back for `pieces`;
  // expects them to be the same, and the plain server to have answered `plain` requests
  // itself.
  std::string Same(const std::vector<std::string>& pieces, int64_t plain,
                   ServerOptions options = {}) {
    std::string replies[2];
    for (const bool plain_path : {true, false}) {
      options.plain_path = plain_path;
      auto db = Database::Connect("memory://").ValueOrDie();
      auto server = Server::Start(db, options).ValueOrDie();
      replies[plain_path] = WithoutTableIds(Exchange(server->port(), pieces));
      server->Stop();
      EXPECT_EQ(server->stats().plain_requests, plain_path ? plain : 0);
    }
    EXPECT_EQ(replies[1], replies[0]);
    return replies[1];
  }
};

TEST_F(PlainPathTest, RepliesAsCppHttplibDoes) {
  const std::string requests =
      Create("t", 20) + Query("t", R"j({"filter":"_rowoffset in (3,1,3)","k":10})j") +
      Query("t", R"j({"filter":"id >","k":10})j") + Query("missing", R"j({"k":1})j") +
      Post("/v1/table/t/count_rows/", "{}") +
      Post("/v1/table/t/insert/", StreamBody(20, 5)) +
      Post("/v1/table/t/describe/", "{}") + Post("/v1/table/t/nothing/", "");
  const std::string replies = Same({requests}, 8);
  EXPECT_EQ(replies.rfind("HTTP/1.1 200 OK\r\nContent-Length: ", 0), 0u) << replies;
  for (const char* status : {"400 Bad Request", "404 Not Found", "501 Not Implemented"}) {
    EXPECT_NE(replies.find(std::string("HTTP/1.1 ") + status), std::string::npos)
        << status;
  }
  EXPECT_NE(replies.find("Keep-Alive: timeout=5, max=1000\r\n"), std::string::npos);
  EXPECT_NE(replies.find("X-Riffledb-Take-Order: asked\r\n"), std::string::npos);
}

// A client that accepts compressed answers gets them uncompressed on both paths
// (cpp-httplib compresses a body set whole, with set_content, not a provider's).
TEST_F(PlainPathTest, AnswersAreNotCompressed) {
  const std::string accept = "Accept-Encoding: gzip, deflate, br\r\n";
  const std::string replies = Same({Create("t", 20) + Query("t", R"j({"k":3})j", accept) +
                                    Post("/v1/table/t/count_rows/", "{}",
                                         "Content-Type: application/json\r\n" + accept)},
                                   3);
  EXPECT_EQ(replies.find("Content-Encoding"), std::string::npos) << replies;
  EXPECT_EQ(replies.substr(replies.size() - 4), "\r\n20") << replies;
}

TEST_F(PlainPathTest, HeadsAndBodiesCutAnywhere) {
  const std::string create = Create("t", 20);
  const std::string take = Query("t", R"j({"filter":"_rowoffset in (19,0)","k":10})j");
  const size_t line = take.find("\r\n") + 5;  // inside the second header line
  const size_t body = take.find("\r\n\r\n") + 7;
  Same({create.substr(0, 3), create.substr(3, 50), create.substr(53) + take.substr(0, 1),
        take.substr(1, line - 1), take.substr(line, body - line), take.substr(body)},
       2);
}

TEST_F(PlainPathTest, LargeAnswersAreChunked) {
  ServerOptions options;
  options.service.max_batch_rows = 4;
  options.service.max_buffered_answer_bytes = 64;
  const std::string replies =
      Same({Create("t", 20) + Query("t", R"j({"k":20})j")}, 2, options);
  EXPECT_NE(replies.find("Transfer-Encoding: chunked\r\n"), std::string::npos);
  EXPECT_EQ(replies.substr(replies.size() - 5), "0\r\n\r\n");
}

TEST_F(PlainPathTest, ItClosesWhenAskedAndAfterTheLastRequest) {
  const std::string count = Post("/v1/table/t/count_rows/", "{}");
  // Nothing after a request that says close is answered.
  std::string replies =
      Same({Create("t", 3) +
            Post("/v1/table/t/count_rows/", "{}", "Connection: close\r\n") + count},
           2);
  EXPECT_NE(replies.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(replies.find("Keep-Alive", replies.find("Connection: close")),
            std::string::npos);
  // Nor after one that says it in another form: in a list, in another case, in a second
  // header (cpp-httplib kept those open, and a request after one was served, which a
  // proxy in front took for no request at all).
  for (const char* connection :
       {"keep-alive, close", "Close", "CLOSE", "keep-alive\r\nConnection: close"}) {
    replies = Same({Create("t", 3) +
                    Post("/v1/table/t/count_rows/", "{}",
                         std::string("Connection: ") + connection + "\r\n") +
                    count},
                   2);
    const size_t second = replies.find("HTTP/1.1 ", 1);
    EXPECT_NE(replies.find("Connection: close\r\n", second), std::string::npos)
        << connection;
    EXPECT_EQ(replies.find("HTTP/1.1 ", second + 1), std::string::npos) << replies;
  }
  ServerOptions options;
  options.keep_alive_max_requests = 2;
  replies = Same({Create("t", 3) + count + count}, 2, options);
  EXPECT_NE(replies.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(replies.find("HTTP/1.1", replies.find("Connection: close")),
            std::string::npos);
}

// Requests the plain path does not parse reach cpp-httplib whole, also after one it
// answered on the same connection.
TEST_F(PlainPathTest, OtherRequestsReachCppHttplibWhole) {
  const std::string chunked =
      "POST /v1/table/t/count_rows/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: "
      "chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
  Same({Create("t", 3) + chunked + "GET /v1/table/ HTTP/1.1\r\nHost: x\r\n\r\n" +
        Post("/v1/table/t/count_rows/", "{}")},
       2);
  // Line ends of a bare LF: answered by cpp-httplib, not waited on for a CRLF CRLF.
  Same({"POST /v1/table/t/count_rows/ HTTP/1.1\nContent-Length: 0\n\n"}, 0);
  Same({"GET /v1/table/ HTTP/1.1\r\n\r\n"}, 0);
  Same({"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n"}, 0);
}

// What cpp-httplib decodes or answers itself goes to it: ranges (refused, 416: no
// route serves one, and its provider would be asked for bytes past the end), encoded
// bodies, and a body cut short (400, as the POST handler answers, and the connection
// closes).
TEST_F(PlainPathTest, RangesEncodingsAndShortBodies) {
  std::string replies = Same(
      {Create("t", 3) + Post("/v1/table/t/count_rows/", "{}", "Range: bytes=0-0\r\n") +
       "GET /v1/table/ HTTP/1.1\r\nHost: x\r\nRange: bytes=0-100000\r\n\r\n"},
      1);
  EXPECT_NE(replies.find("HTTP/1.1 416"), std::string::npos) << replies;
  Same({Create("t", 3) +
        Post("/v1/table/t/count_rows/", "not gzip", "Content-Encoding: gzip\r\n")},
       1);
  const std::string head =
      "POST /v1/table/t/count_rows/ HTTP/1.1\r\nContent-Length: 100\r\n\r\n";
  replies = Same({Create("t", 3) + head + "{}"}, 2);
  EXPECT_NE(replies.find("HTTP/1.1 400"), std::string::npos) << replies;
  EXPECT_NE(replies.find("Could not read the request body"), std::string::npos);
}

// A head the plain path rules out at its first line reaches cpp-httplib whole, however
// it is cut.
TEST_F(PlainPathTest, ABadRequestLineReachesCppHttplib) {
  for (const char* line : {"POST /a b HTTP/1.1\r\n", "POST / HTTP/1.0x\r\n"}) {
    const std::string replies = Same({line, "Content-Length: 0\r\n", "\r\n"}, 0);
    EXPECT_EQ(replies.rfind("HTTP/1.1 400", 0), 0u) << line << replies;
  }
}

TEST_F(PlainPathTest, TheApiKeyIsChecked) {
  ServerOptions options;
  options.api_key = "k3y";
  const std::string key = "x-api-key: k3y\r\n";
  const std::string create = Post("/v1/table/t/create/", StreamBody(0, 3), key);
  // Without the key, or with another: cpp-httplib's 401, and the connection closes.
  std::string replies =
      Same({create + Post("/v1/table/t/count_rows/", "{}")}, 1, options);
  EXPECT_NE(replies.find("HTTP/1.1 401"), std::string::npos);
  replies = Same({create + Post("/v1/table/t/count_rows/", "{}", "x-api-key: k3\r\n")}, 1,
                 options);
  EXPECT_NE(replies.find("HTTP/1.1 401"), std::string::npos);
  replies = Same({create + Post("/v1/table/t/count_rows/", "{}", key)}, 2, options);
  EXPECT_EQ(replies.find("HTTP/1.1 401"), std::string::npos);
}

// A request cpp-httplib cannot parse is answered with a JSON error and its connection
// closes: what followed the bad head was read as the next request, so a request in the
// body of one with an unknown method ran (here, a drop).
TEST_F(PlainPathTest, ARequestCppHttplibCannotParseClosesItsConnection) {
  const std::string drop = "POST /v1/table/t/drop/ HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
  const std::string smuggler =
      "FOO /v1/table/ HTTP/1.1\r\nContent-Length: " + std::to_string(drop.size()) +
      "\r\n\r\n" + drop;
  // Header lines cpp-httplib drops without a word, serving the request without them: a
  // body announced by one would be the next request.
  auto announcing = [&](const std::string& line) {
    return "POST /v1/table/t/count_rows/ HTTP/1.1\r\n" + line + "\r\n\r\n" + drop;
  };
  const std::string length = std::to_string(drop.size());
  for (const std::string& bad :
       {smuggler, "GET /" + std::string(20000, 'a') + " HTTP/1.1\r\n\r\n" + drop,
        "GET / HTTP/1.1\r\nX: " + std::string(100000, 'b') + "\r\n\r\n" + drop,
        announcing("Content-Length : " + length), announcing("Content-Length"),
        announcing("X: a" + std::string(1, '\0') + "b\r\nContent-Length: " + length),
        announcing("X: a\r\n folded: " + length),
        announcing("Transfer-Encoding : chunked"),
        // A header line that ends in a bare LF (cpp-httplib drops it), last or not, and
        // framing headers with an empty value (dropped too).
        announcing("Content-Length: " + length + "\n"),
        announcing("Content-Length: " + length + "\nX-A: b"),
        announcing("Transfer-Encoding: chunked\n"), announcing("Connection: close\n"),
        announcing("Content-Length: "), announcing("Content-Length:\t"),
        announcing("Content-Length: \r\nContent-Length: 2"),
        announcing("Transfer-Encoding: ")}) {
    const std::string replies = Same({Create("t", 3) + bad}, 1);
    ASSERT_EQ(replies.find("HTTP/1.1 ", replies.find("HTTP/1.1 ") + 1),
              replies.rfind("HTTP/1.1 "))
        << "two replies, then none: " << replies;
    const size_t last = replies.rfind("HTTP/1.1 ");
    EXPECT_TRUE(replies.compare(last, 12, "HTTP/1.1 400") == 0 ||
                replies.compare(last, 12, "HTTP/1.1 414") == 0)
        << replies.substr(last);
    EXPECT_NE(replies.find("Connection: close\r\n", last), std::string::npos);
    EXPECT_NE(replies.find("{\"error\":\"Malformed request: ", last), std::string::npos)
        << replies.substr(last);
  }
}

// A refusal of a Range request is whole: cpp-httplib cut it to the range asked for.
TEST_F(PlainPathTest, ARangeRefusalIsWhole) {
  for (const char* range : {"bytes=0-3", "bytes=0-3,5-2"}) {  // one it cannot parse
    const std::string replies =
        Same({"GET /v1/table/ HTTP/1.1\r\nHost: x\r\nRange: " + std::string(range) +
              "\r\n\r\n"},
             0);
    EXPECT_EQ(replies.rfind("HTTP/1.1 416", 0), 0u) << replies;
    const size_t body = replies.find("\r\n\r\n{\"error\":\"");
    ASSERT_NE(body, std::string::npos) << replies;
    EXPECT_EQ(replies.back(), '}') << replies;
    EXPECT_EQ(replies.find("Content-Range"), std::string::npos) << replies;
  }
}

// Sends `head` a byte every 20 ms and returns how long until the server closed (or
// answered) while it was still sending; nullopt if it never did.
std::optional<std::chrono::milliseconds> CutOffAfter(int port, const std::string& head) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const auto start = std::chrono::steady_clock::now();
  std::optional<std::chrono::milliseconds> cut;
  for (const char c : head) {
    pollfd pfd{fd, POLLIN, 0};
    if (::poll(&pfd, 1, 0) > 0 || ::send(fd, &c, 1, MSG_NOSIGNAL) != 1) {
      cut = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - start);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::close(fd);
  return cut;
}

// A head trickling in a byte at a time, each within the I/O timeout, is cut off at
// head_timeout_ms (it held a connection thread for as long as it went on); a body may
// come slower than that (each wait is bounded, not the whole).
TEST(ServerTest, AHeadMustComeWithinTheHeadTimeout) {
  ServerOptions options;
  options.head_timeout_ms = 300;
  auto db = Database::Connect("memory://").ValueOrDie();
  auto server = Server::Start(db, options).ValueOrDie();
  // The plain path's head (a POST), then cpp-httplib's (a GET): 100 bytes, 2 s.
  const std::string pad = "X-Pad: " + std::string(100, 'p');
  for (const std::string& head :
       {"POST /v1/table/t/count_rows/ HTTP/1.1\r\nContent-Length: 2\r\n" + pad,
        "GET /v1/table/ HTTP/1.1\r\nHost: x\r\n" + pad}) {
    const auto cut = CutOffAfter(server->port(), head.substr(0, 100));
    // Cut off while it was still being sent (2 s; the timeout is 300 ms).
    EXPECT_TRUE(cut.has_value()) << "not cut off: " << head.substr(0, 20);
  }
  // A head within the timeout, then a body slower than it: served.
  const std::string create = Create("t", 3);
  const size_t body = create.find("\r\n\r\n") + 4;
  std::vector<std::string> pieces{create.substr(0, body)};
  const size_t step = (create.size() - body) / 25 + 1;
  for (size_t at = body; at < create.size(); at += step) {
    pieces.push_back(create.substr(at, step));  // 20 ms apart: 500 ms
  }
  const std::string replies = Exchange(server->port(), pieces);
  EXPECT_EQ(replies.rfind("HTTP/1.1 200", 0), 0u) << replies;
  server->Stop();
}

}  // namespace
}  // namespace riffledb::remote
