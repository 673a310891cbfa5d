#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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
  // The close option in any Connection header, in any case, in a list (cpp-httplib
  // read only a first header of exactly `close`, and kept the others open: a request
  // after one was served, which a proxy in front took for no request at all).
  for (const auto& [value, close] : std::vector<std::pair<std::string, bool>>{
           {"keep-alive, close", true},
           {"Close", true},
           {"CLOSE ,TE", true},
           {"keep-alive\r\nConnection: close", true},
           {"keep-alive", false},
           {"closed, unclose", false},
           {"keep-alive, TE", false}}) {
    ASSERT_EQ(
        Parse("POST / HTTP/1.1\r\nContent-Length: 0\r\nConnection: " + value + "\r\n\r\n",
              &head),
        HeadParse::kOurs);
    EXPECT_EQ(head.asks_to_close, close) << value;
    EXPECT_FALSE(head.close) << value;  // not exactly `close` in the first one
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

namespace riffledb::remote::internal {
namespace {

// ReadChunkedBody over `bytes`, as a stream that gives at most `piece` bytes a read.
struct Chunked {
  ChunkedBody result;
  std::string body;
  std::string why;
  std::string unread;  // what the reader left of `bytes`
};

Chunked ReadChunked(std::string_view bytes, uint64_t max = 100, size_t piece = 1000,
                    size_t max_line = 64) {
  Chunked out;
  size_t at = 0;
  auto read = [&](char* dest, size_t n) -> ssize_t {
    n = std::min({n, piece, bytes.size() - at});
    bytes.copy(dest, n, at);
    at += n;
    return static_cast<ssize_t>(n);
  };
  out.result = ReadChunkedBody(read, max, max_line, &out.body, &out.why);
  out.unread = std::string(bytes.substr(at));
  return out;
}

TEST(ReadChunkedBody, ReadsTheBodyAndNothingAfterIt) {
  for (const size_t piece : {size_t{1}, size_t{3}, size_t{1000}}) {
    const Chunked c = ReadChunked(
        "5\r\nhello\r\nA;name=value; x\r\n, world!!!\r\n1 ;e\r\n.\r\n"
        "0\r\nExpires: never\r\nX-Sum: 1\r\n\r\nPOST /next HTTP/1.1\r\n",
        100, piece);
    EXPECT_EQ(c.result, ChunkedBody::kWhole) << c.why;
    EXPECT_EQ(c.body, "hello, world!!!.");
    EXPECT_EQ(c.unread, "POST /next HTTP/1.1\r\n");  // a pipelined request stays
  }
  const Chunked empty = ReadChunked("0\r\n\r\n");
  EXPECT_EQ(empty.result, ChunkedBody::kWhole);
  EXPECT_EQ(empty.body, "");
  const Chunked upper = ReadChunked("0000F\r\n0123456789abcde\r\n0\r\n\r\n");
  EXPECT_EQ(upper.result, ChunkedBody::kWhole) << upper.why;
  EXPECT_EQ(upper.body, "0123456789abcde");
}

TEST(ReadChunkedBody, MalformedFramingIsRefusedWithWhy) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"-2\r\nhello\r\n0\r\n\r\n", "not hex digits: '-2'"},
      {"0x5\r\nhello\r\n0\r\n\r\n", "other than a chunk extension"},
      {" 5\r\nhello\r\n0\r\n\r\n", "not hex digits: ' 5'"},
      {"5 \r\nhello\r\n0\r\n\r\n", "followed by blanks"},
      {"5\nhello\r\n0\r\n\r\n", "does not end in CRLF"},
      {"5\r\nhelloXY0\r\n\r\n", "not followed by CRLF"},
      {"\r\n", "not hex digits: ''"},
      {"\xff\r\n", "not hex digits: '\\xff'"},
      {"00000000000000001\r\nx\r\n0\r\n\r\n", "more than 16 hex digits"},
      {"5;\x01\r\nhello\r\n0\r\n\r\n", "other than a chunk extension"},
      {"0\r\nno colon\r\n\r\n", "a trailer line"},
      {"0\r\n: empty name\r\n\r\n", "a trailer line"},
      {std::string(70, '1') + "\r\n", "too long"},
      {"0\r\nX: " + std::string(70, 'v') + "\r\n\r\n", "too long"},
  };
  for (const auto& [bytes, why] : cases) {
    const Chunked c = ReadChunked(bytes);
    EXPECT_EQ(c.result, ChunkedBody::kMalformed) << bytes;
    EXPECT_NE(c.why.find(why), std::string::npos) << bytes << ": " << c.why;
  }
}

TEST(ReadChunkedBody, ASizePastTheLimitIsRefusedBeforeItsData) {
  // The data is never waited for: the stream holds none of it.
  for (const std::string size : {"7FFFFFFF", "FFFFFFFFFFFFFFFF", "65"}) {
    const Chunked c = ReadChunked(size + "\r\n", 100);
    EXPECT_EQ(c.result, ChunkedBody::kTooLarge) << size;
  }
  // The limit is of the whole body: 60 + 41 bytes.
  const Chunked c = ReadChunked("3c\r\n" + std::string(60, 'a') + "\r\n29\r\n", 100);
  EXPECT_EQ(c.result, ChunkedBody::kTooLarge);
  const Chunked exact = ReadChunked("3c\r\n" + std::string(60, 'a') + "\r\n28\r\n" +
                                    std::string(40, 'b') + "\r\n0\r\n\r\n");
  EXPECT_EQ(exact.result, ChunkedBody::kWhole) << exact.why;
  EXPECT_EQ(exact.body.size(), 100u);
}

TEST(ReadChunkedBody, MemoryComesWithTheData) {
  // A size line of 100 MiB and 3 bytes: the body does not hold 100 MiB (it did, zeroed,
  // until the I/O timeout: two such connections took 200 MB of the server's memory).
  const Chunked c = ReadChunked("6400000\r\nabc", uint64_t{1} << 30);
  EXPECT_EQ(c.result, ChunkedBody::kCut);
  EXPECT_LE(c.body.capacity(), size_t{2} << 20);
  // A body larger than the pieces it is read in comes whole.
  const std::string data(3 << 20, 'd');
  const Chunked big =
      ReadChunked("300000\r\n" + data + "\r\n0\r\n\r\n", uint64_t{1} << 30,
                  /*piece=*/1 << 16);
  EXPECT_EQ(big.result, ChunkedBody::kWhole) << big.why;
  EXPECT_EQ(big.body, data);
}

TEST(ReadChunkedBody, AStreamThatEndsFirstIsCut) {
  for (const std::string bytes : {"", "5", "5\r", "5\r\nhel", "5\r\nhello",
                                  "5\r\nhello\r", "0\r\n", "0\r\nX: 1\r\n"}) {
    const Chunked c = ReadChunked(bytes);
    EXPECT_EQ(c.result, ChunkedBody::kCut) << bytes;
  }
}

}  // namespace
}  // namespace riffledb::remote::internal
