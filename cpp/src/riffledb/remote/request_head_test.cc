#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "riffledb/remote/request_head_internal.h"

namespace riffledb::remote::internal {
namespace {

RequestHeadLimits Limits(std::string_view key = "") {
  RequestHeadLimits limits;
  limits.max_headers = 10;
  limits.max_header_bytes = 1000;
  limits.max_body_bytes = 5000;
  limits.api_key = key;
  return limits;
}

HeadParse Parse(std::string_view bytes, RequestHead* head = nullptr,
                const RequestHeadLimits& limits = Limits()) {
  RequestHead ignored;
  return ParseRequestHead(bytes, limits, head != nullptr ? head : &ignored);
}

constexpr char kTake[] =
    "POST /v1/table/t/query/ HTTP/1.1\r\n"
    "Host: 127.0.0.1:80\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 12\r\n"
    "\r\n"
    "{\"k\":1,\"a\":2}";

TEST(RequestHeadTest, ParsesAPostWithALength) {
  RequestHead head;
  ASSERT_EQ(Parse(kTake, &head), HeadParse::kOurs);
  EXPECT_EQ(head.target, "/v1/table/t/query/");
  EXPECT_EQ(head.content_length, 12u);
  EXPECT_FALSE(head.close);
  EXPECT_EQ(std::string_view(kTake).substr(head.size), "{\"k\":1,\"a\":2}");
}

TEST(RequestHeadTest, EveryPrefixOfAHeadIsIncomplete) {
  const std::string_view take(kTake);
  const size_t head_size = take.find("\r\n\r\n") + 4;
  for (size_t n = 0; n < head_size; ++n) {
    EXPECT_EQ(Parse(take.substr(0, n)), HeadParse::kIncomplete) << n;
  }
  EXPECT_EQ(Parse(take.substr(0, head_size)), HeadParse::kOurs);
}

TEST(RequestHeadTest, NamesAndValuesAsHttpAllowsThem) {
  RequestHead head;
  ASSERT_EQ(Parse("POST /a?b=%20c HTTP/1.1\r\ncontent-length:\t7 \r\n"
                  "X-Odd_Name!#$%&'*+.^`|~: a \"quoted\"\tvalue\r\n"
                  "connection:  close \r\nConnection: keep-alive\r\n\r\n",
                  &head),
            HeadParse::kOurs);
  EXPECT_EQ(head.target, "/a?b=%20c");
  EXPECT_EQ(head.content_length, 7u);
  EXPECT_TRUE(head.close);
  // Only the first Connection header, and only `close` exactly, as cpp-httplib.
  for (const char* value :
       {"keep-alive, close", "Close", "keep-alive\r\nConnection: close"}) {
    ASSERT_EQ(Parse(std::string("POST / HTTP/1.1\r\nContent-Length: 0\r\nConnection: ") +
                        value + "\r\n\r\n",
                    &head),
              HeadParse::kOurs);
    EXPECT_FALSE(head.close) << value;
    EXPECT_EQ(head.content_length, 0u);
  }
}

// What cpp-httplib parses (and refuses or answers as it does): not ours.
TEST(RequestHeadTest, LeavesEverythingElseToCppHttplib) {
  const char* others[] = {
      // other methods and versions, and lower-case or odd request lines
      "GET /v1/table/ HTTP/1.1\r\n\r\n",
      "HEAD / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      "post / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      "POST / HTTP/1.0\r\nContent-Length: 0\r\n\r\n",
      "POST / HTTP/1.1 \r\nContent-Length: 0\r\n\r\n",
      "POST  / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      "POST /a b HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      "POST * HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      "POST /\x80 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      "POST HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
      // framing: none, repeated, not digits, too long, chunked, Expect
      "POST / HTTP/1.1\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1234567890123456789\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 5001\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n",
      // malformed header lines: folded, no colon, empty or odd names, control bytes
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nX-A: b\r\n  folded\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nno colon\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\n: empty name\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nX A: b\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nX-A : b\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nX-A: b\x01\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nX-A: caf\xc3\xa9\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nX-A: b\rc\r\n\r\n",
      // what cpp-httplib decodes or answers itself, values it rewrites, targets it cuts
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nRange: bytes=0-1\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Type: Multipart/form-data\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nX-A: a%20b\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nX-A:\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 1\r\nX-A:  \r\n\r\n",
      "POST /a#b HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
      "POST /a?b?c HTTP/1.1\r\nContent-Length: 1\r\n\r\n",
  };
  for (const char* request : others) {
    EXPECT_EQ(Parse(request), HeadParse::kNotOurs) << request;
  }
}

// A head that cannot become ours is said so at once: a client that sends it may wait for
// an answer without sending more (a head with bare LF line ends has no CRLF CRLF).
TEST(RequestHeadTest, ItSaysNotOursBeforeTheHeadEnds) {
  EXPECT_EQ(Parse("G"), HeadParse::kNotOurs);
  EXPECT_EQ(Parse("PUT"), HeadParse::kNotOurs);
  EXPECT_EQ(Parse("POSTX"), HeadParse::kNotOurs);
  EXPECT_EQ(Parse("POST / HTTP/1.1\n"), HeadParse::kNotOurs);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nContent-Length: 1\n\n"), HeadParse::kNotOurs);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nContent-Length: 1\r\n"), HeadParse::kIncomplete);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nContent-Length: 1\r"), HeadParse::kIncomplete);
  // A line that rules the head out, before the blank line: a bad request line (which
  // cpp-httplib answers at once), framing, a bare CR.
  EXPECT_EQ(Parse("POST /a b HTTP/1.1\r\n"), HeadParse::kNotOurs);
  EXPECT_EQ(Parse("POST / HTTP/1.0\r\n"), HeadParse::kNotOurs);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"),
            HeadParse::kNotOurs);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nX-A: b\rc"), HeadParse::kNotOurs);
  EXPECT_EQ(Parse("POST /\r HTTP"), HeadParse::kNotOurs);
  // A bare LF in the body is the body's.
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\na\nb"), HeadParse::kOurs);
}

TEST(RequestHeadTest, HeadersWithinAdmitsLimits) {
  std::string ten = "POST / HTTP/1.1\r\nContent-Length: 0\r\n";
  for (int i = 0; i < 9; ++i) ten += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(Parse(ten + "\r\n"), HeadParse::kOurs);
  EXPECT_EQ(Parse(ten + "X-10: v\r\n\r\n"), HeadParse::kNotOurs);  // 11 headers
  // Admit counts a header's name and value and 4 bytes.
  const std::string head = "POST / HTTP/1.1\r\nContent-Length: 0\r\nX-Big: ";
  const size_t room = 1000 - (14 + 1 + 4) - (5 + 4);  // what the value may take
  EXPECT_EQ(Parse(head + std::string(room, 'v') + "\r\n\r\n"), HeadParse::kOurs);
  EXPECT_EQ(Parse(head + std::string(room + 1, 'v') + "\r\n\r\n"), HeadParse::kNotOurs);
}

// Lengths of more than 18 digits are refused before they are read (20 digits would wrap
// around 2^64 to 1), whatever the body limit.
TEST(RequestHeadTest, LongLengthsAreNotRead) {
  auto limits = Limits();
  limits.max_body_bytes = UINT64_MAX;
  RequestHead head;
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nContent-Length: 999999999999999999\r\n\r\n", &head,
                  limits),
            HeadParse::kOurs);
  EXPECT_EQ(head.content_length, 999999999999999999u);
  EXPECT_EQ(Parse("POST / HTTP/1.1\r\nContent-Length: 18446744073709551617\r\n\r\n",
                  &head, limits),
            HeadParse::kNotOurs);
}

TEST(RequestHeadTest, TheApiKeyMustBeThere) {
  const auto limits = Limits("k3y");
  RequestHead head;
  const std::string start = "POST / HTTP/1.1\r\nContent-Length: 0\r\n";
  EXPECT_EQ(Parse(start + "x-api-key: k3y\r\n\r\n", &head, limits), HeadParse::kOurs);
  EXPECT_EQ(Parse(start + "X-Api-Key:  k3y \r\n\r\n", &head, limits), HeadParse::kOurs);
  EXPECT_EQ(Parse(start + "\r\n", &head, limits), HeadParse::kNotOurs);
  EXPECT_EQ(Parse(start + "x-api-key: k3z\r\n\r\n", &head, limits), HeadParse::kNotOurs);
  EXPECT_EQ(Parse(start + "x-api-key: k3\r\n\r\n", &head, limits), HeadParse::kNotOurs);
  EXPECT_EQ(Parse(start + "x-api-key: k3y\r\nx-api-key: k3y\r\n\r\n", &head, limits),
            HeadParse::kNotOurs);
  // Without a key on the server, one sent is ignored.
  EXPECT_EQ(Parse(start + "x-api-key: anything\r\n\r\n"), HeadParse::kOurs);
}

}  // namespace
}  // namespace riffledb::remote::internal
