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
      replies[plain_path] = Exchange(server->port(), pieces);
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
  // Nothing after a request that says close is answered (`keep-alive, close` does not
  // close, as cpp-httplib reads it).
  std::string replies =
      Same({Create("t", 3) +
            Post("/v1/table/t/count_rows/", "{}", "Connection: keep-alive, close\r\n") +
            Post("/v1/table/t/count_rows/", "{}", "Connection: close\r\n") + count},
           3);
  EXPECT_NE(replies.find("Connection: close\r\n"), std::string::npos);
  EXPECT_EQ(replies.find("Keep-Alive", replies.find("Connection: close")),
            std::string::npos);
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

}  // namespace
}  // namespace riffledb::remote
