// HttpClient against an in-process cpp-httplib server (keep-alive, so that pooled
// connections are really reused): retries, single-shot writes, errors, and fork().
// Forked children report through their exit code and have an alarm() as a backstop.
#include "riffledb/remote/client/http_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/testing/fork.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/busy_poll.h"

namespace riffledb::remote {
namespace {

// A keep-alive server on a free loopback port, recording what it received.
class TestServer {
 public:
  TestServer() {
    server_.Get("/v1/table/",
                [this](const httplib::Request& req, httplib::Response& res) {
                  Record(req);
                  int status = 200;
                  {
                    std::lock_guard<std::mutex> lock(mu_);
                    if (!statuses_.empty()) {
                      status = statuses_.front();
                      statuses_.erase(statuses_.begin());
                    }
                  }
                  res.status = status;
                  res.set_content(status == 200 ? R"({"tables": []})" : "Try again later",
                                  "application/json");
                });
    server_.Post(R"(/v1/table/([^/]+)/insert/)",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   Record(req);
                   res.status = 500;
                   res.set_content("boom", "text/plain");
                 });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // Until it runs, stop() does nothing: a test that failed at once would hang in the
    // destructor's join.
    while (!server_.is_running())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~TestServer() {
    server_.stop();
    thread_.join();
  }

  void FailNext(std::vector<int> statuses) {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_ = std::move(statuses);
  }
  std::vector<std::string> request_ids() {
    std::lock_guard<std::mutex> lock(mu_);
    return request_ids_;
  }
  std::vector<int> remote_ports() {
    std::lock_guard<std::mutex> lock(mu_);
    return remote_ports_;
  }
  std::string last_header(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    return last_headers_.count(name) ? last_headers_.find(name)->second : "";
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // The values of header `name` each request carried, joined by ", " (several headers
  // of that name in one request show as one entry).
  std::vector<std::string> values(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> out;
    for (const auto& headers : all_headers_) {
      std::string joined;
      auto [begin, end] = headers.equal_range(name);
      for (auto it = begin; it != end; ++it) {
        joined += (joined.empty() ? "" : ", ") + it->second;
      }
      out.push_back(joined);
    }
    return out;
  }

 private:
  void Record(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mu_);
    all_headers_.push_back(req.headers);
    request_ids_.push_back(req.get_header_value("x-request-id"));
    remote_ports_.push_back(req.remote_port);
    last_headers_ = req.headers;
  }

  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::vector<int> statuses_;
  std::vector<std::string> request_ids_;
  std::vector<int> remote_ports_;
  httplib::Headers last_headers_;
  std::vector<httplib::Headers> all_headers_;
};

ClientOptions FastOptions(const std::string& url) {
  ClientOptions options;
  options.base_url = url;
  options.connect_timeout_s = 5;
  options.read_timeout_s = 10;
  options.retry.backoff_factor = 0.001;
  options.retry.backoff_jitter = 0.001;
  options.headers = {{"x-api-key", "k"}, {"User-Agent", "riffledb-test"}};
  return options;
}

HttpRequest ListTables() {
  HttpRequest request;
  request.method = "GET";
  request.path = "/v1/table/";
  return request;
}

TEST(HttpClient, RetriesListedStatusesWithTheSameRequestId) {
  TestServer server;
  ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(FastOptions(server.url())));
  server.FailNext({503, 429});
  ASSERT_OK_AND_ASSIGN(HttpResponse response, client->Send(ListTables()));
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, R"({"tables": []})");
  std::vector<std::string> ids = server.request_ids();
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(ids[0], response.request_id);
  EXPECT_EQ(ids[1], ids[0]);
  EXPECT_EQ(ids[2], ids[0]);
  EXPECT_EQ(ids[0].size(), 36u);
  EXPECT_EQ(ids[0][14], '4');  // UUIDv4
  EXPECT_EQ(server.last_header("x-api-key"), "k");
  EXPECT_EQ(server.last_header("User-Agent"), "riffledb-test");
  // One keep-alive connection served all three attempts.
  EXPECT_EQ(client->stats().connections, 1);
  EXPECT_EQ(client->stats().reused, 2);
}

TEST(HttpClient, TheHeaderSourceIsAskedBeforeEachAttemptAndWins) {
  TestServer server;
  ClientOptions options = FastOptions(server.url());
  options.headers.emplace_back("x-token", "client");
  ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(options));
  server.FailNext({503, 429});
  int calls = 0;
  HttpRequest request = ListTables();
  request.headers = {{"X-Token", "request"}, {"x-extra", "e"}};
  request.header_source = [&]() -> arrow::Result<HeaderList> {
    return HeaderList{{"x-token", "fresh-" + std::to_string(++calls)}};
  };
  ASSERT_OK(client->Send(request).status());
  // A retry asks again: each attempt carried the token of its moment, and only it.
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(server.values("x-token"),
            (std::vector<std::string>{"fresh-1", "fresh-2", "fresh-3"}));
  EXPECT_EQ(server.values("x-extra"), (std::vector<std::string>{"e", "e", "e"}));
  EXPECT_EQ(server.last_header("x-api-key"), "k");
  // A failing source fails the request before anything is sent.
  const size_t sent = server.request_ids().size();
  request.header_source = []() -> arrow::Result<HeaderList> {
    return arrow::Status::Invalid("token expired");
  };
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "token expired", client->Send(request));
  EXPECT_EQ(server.request_ids().size(), sent);
}

TEST(HttpClient, ARequestsOwnHeadersReplaceTheClientsAndLineBreaksAreRefused) {
  TestServer server;
  ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(FastOptions(server.url())));
  HttpRequest request = ListTables();
  request.headers = {{"X-API-KEY", "fresh"}};
  ASSERT_OK(client->Send(request).status());
  EXPECT_EQ(server.last_header("x-api-key"), "fresh");
  EXPECT_EQ(server.last_header("User-Agent"), "riffledb-test");
  const size_t sent = server.request_ids().size();
  for (auto bad : {HeaderList{{"x-token", "a\r\nx-api-key: stolen"}},
                   HeaderList{{"x-to\nken", "a"}}, HeaderList{{"x:y", "a"}}}) {
    request.headers = bad;
    ASSERT_RAISES_WITH_MESSAGE(Invalid, "Invalid HTTP header", client->Send(request));
  }
  request = ListTables();
  request.path = "/v1/table/ HTTP/1.1\r\nx: y";
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Invalid request line", client->Send(request));
  EXPECT_EQ(server.request_ids().size(), sent);  // nothing was sent
}

TEST(HttpClient, RetryErrorWhenRetriesAreExhausted) {
  TestServer server;
  ClientOptions options = FastOptions(server.url());
  options.retry.retries = 2;
  ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(options));
  server.FailNext({429, 429, 429});
  arrow::Status status = client->Send(ListTables()).status();
  ASSERT_TRUE(status.IsIOError()) << status.ToString();
  const HttpErrorDetail* detail = GetHttpErrorDetail(status);
  ASSERT_NE(detail, nullptr);
  EXPECT_TRUE(detail->fields().retries_exhausted);
  EXPECT_EQ(detail->fields().request_failures, 2);
  EXPECT_EQ(detail->fields().max_request_failures, 2);
  EXPECT_EQ(detail->fields().status_code, 429);
  EXPECT_NE(detail->fields().message.find("429 Too Many Requests: Try again later"),
            std::string::npos)
      << detail->fields().message;
  EXPECT_NE(status.message().find("Hit retry limit for request_id="), std::string::npos);
  EXPECT_EQ(server.request_ids().size(), 2u);
}

TEST(HttpClient, WritesAreSentOnce) {
  TestServer server;
  ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(FastOptions(server.url())));
  HttpRequest request;
  request.path = "/v1/table/t/insert/";
  request.body = "payload";
  request.content_type = "application/vnd.apache.arrow.stream";
  request.retry = false;
  arrow::Status status = client->Send(request).status();
  const HttpErrorDetail* detail = GetHttpErrorDetail(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_FALSE(detail->fields().retries_exhausted);
  EXPECT_EQ(detail->fields().status_code, 500);
  EXPECT_EQ(server.request_ids().size(), 1u);
}

TEST(HttpClient, ConnectErrorsCountAgainstConnectRetries) {
  // A port that was free a moment ago: bound, then closed without listening.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  close(fd);
  ClientOptions options = FastOptions("http://127.0.0.1:" + std::to_string(port));
  options.retry.connect_retries = 2;
  ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(options));
  arrow::Status status = client->Send(ListTables()).status();
  const HttpErrorDetail* detail = GetHttpErrorDetail(status);
  ASSERT_NE(detail, nullptr) << status.ToString();
  EXPECT_TRUE(detail->fields().retries_exhausted);
  EXPECT_EQ(detail->fields().connect_failures, 2);
  EXPECT_FALSE(detail->fields().status_code.has_value());
}

TEST(HttpClient, BadUrls) {
  for (const char* url :
       {"ftp://h", "http://", "http://h:0", "http://h:99999", "http://h:x"}) {
    ClientOptions options;
    options.base_url = url;
    SCOPED_TRACE(url);
    ASSERT_RAISES(Invalid, HttpClient::Make(options));
  }
}

TEST(HttpClient, BadBusyPoll) {
  for (int64_t us : {int64_t{-1}, int64_t{1'000'001}}) {
    ClientOptions options = FastOptions("http://127.0.0.1:1");
    options.busy_poll_us = us;
    ASSERT_RAISES_WITH_MESSAGE(
        Invalid, "busy_poll_us must be in [0, 1000000], not " + std::to_string(us),
        HttpClient::Make(options));
    options.busy_poll_us = 0;
    options.forked_busy_poll_us = us;
    ASSERT_RAISES_WITH_MESSAGE(
        Invalid, "busy_poll_us must be in [0, 1000000], not " + std::to_string(us),
        HttpClient::Make(options));
  }
}

// A wait for an answer's bytes begins with a busy-poll (each receive that finds none
// there yet: one or two an answer of this server, which writes headers and body
// apart), counted in the client's stats; 0 turns it off.
TEST(HttpClient, BusyPollsBeforeEachAnswer) {
  if (BusyPoll::MaxSpinners() == 0) GTEST_SKIP() << "one usable CPU: no busy-polling";
  TestServer server;
  ClientOptions options = FastOptions(server.url());
  options.busy_poll_us = 1'000'000;  // the in-process server answers well within it
  ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(options));
  for (int i = 0; i < 5; ++i) ASSERT_OK(client->Send(ListTables()).status());
  ClientStats stats = client->stats();
  EXPECT_GE(stats.busy_polls, 1);
  EXPECT_LE(stats.busy_polls, 10);
  EXPECT_EQ(stats.busy_poll_hits, stats.busy_polls);

  options.busy_poll_us = 0;
  ASSERT_OK_AND_ASSIGN(auto blocking, HttpClient::Make(options));
  for (int i = 0; i < 5; ++i) ASSERT_OK(blocking->Send(ListTables()).status());
  EXPECT_EQ(blocking->stats().requests, 5);
  EXPECT_EQ(blocking->stats().busy_polls, 0);
}

// The regression test of the seed's known limitation: a child that inherits a client
// with a pooled keep-alive connection opens its own, and leaves the parent's alone.
TEST(HttpClient, ForkedChildNeverUsesTheParentsConnection) {
  TestServer server;
  ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(FastOptions(server.url())));
  ASSERT_OK(client->Send(ListTables()).status());
  const int parent_port = server.remote_ports().at(0);

  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    alarm(20);
    int code = 0;
    for (int i = 0; i < 3 && code == 0; ++i) {
      if (!client->Send(ListTables()).ok()) code = 1;
    }
    ClientStats stats = client->stats();
    if (code == 0 && stats.abandoned_fds != 1) code = 2;
    if (code == 0 && (stats.connections != 1 || stats.reused != 2)) code = 3;
    _exit(code);
  }
  ASSERT_EQ(testing::ReapWithDeadline(pid), 0);
  std::vector<int> ports = server.remote_ports();
  ASSERT_EQ(ports.size(), 4u);
  for (size_t i = 1; i < ports.size(); ++i) EXPECT_NE(ports[i], parent_port);

  // The parent's connection still works: the same socket serves its next request.
  ASSERT_OK(client->Send(ListTables()).status());
  EXPECT_EQ(server.remote_ports().back(), parent_port);
  EXPECT_EQ(client->stats().connections, 1);
  EXPECT_EQ(client->stats().abandoned_fds, 0);
}

// A forked child's connections poll as forked_busy_poll_us says (default 0: DataLoader
// workers do not spin), its parent's as busy_poll_us.
TEST(HttpClient, AForkedChildBusyPollsWithItsOwnSetting) {
  if (BusyPoll::MaxSpinners() == 0) GTEST_SKIP() << "one usable CPU: no busy-polling";
  // The server's threads may still be freeing a reply's memory at the fork: a child can
  // hang in ASan's allocator, or in TSan's own locks (kThreadSanitizer).
  if (kAllocatorIsForkUnsafe || kThreadSanitizer) {
    GTEST_SKIP() << "the sanitizer's runtime is not fork-safe";
  }
  TestServer server;
  for (int64_t forked : {int64_t{0}, int64_t{1'000'000}}) {
    SCOPED_TRACE(forked);
    ClientOptions options = FastOptions(server.url());
    options.busy_poll_us = 1'000'000;
    options.forked_busy_poll_us = forked;
    ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(options));
    ASSERT_OK(client->Send(ListTables()).status());
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(20);
      for (int i = 0; i < 3; ++i) {
        if (!client->Send(ListTables()).ok()) _exit(1);
      }
      const int64_t polls = client->stats().busy_polls;
      _exit(forked == 0 ? (polls == 0 ? 0 : 2) : (polls >= 1 ? 0 : 3));
    }
    EXPECT_EQ(testing::ReapWithDeadline(pid), 0);
  }
}

TEST(HttpClient, ForkWhileRequestsAreInFlight) {
  // Forks while two threads send: a child can hang in ASan's allocator, or in TSan's own
  // locks (kThreadSanitizer). make test runs it.
  if (kAllocatorIsForkUnsafe || kThreadSanitizer) {
    GTEST_SKIP() << "the sanitizer's runtime is not fork-safe";
  }
  TestServer server;
  ASSERT_OK_AND_ASSIGN(auto client, HttpClient::Make(FastOptions(server.url())));
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> busy;
  for (int t = 0; t < 2; ++t) {
    busy.emplace_back([&] {
      while (!stop.load()) {
        if (!client->Send(ListTables()).ok()) failures.fetch_add(1);
      }
    });
  }
  for (int i = 0; i < 10; ++i) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      alarm(20);
      _exit(client->Send(ListTables()).ok() ? 0 : 1);
    }
    EXPECT_EQ(testing::ReapWithDeadline(pid), 0) << "child " << i;
  }
  stop.store(true);
  for (auto& thread : busy) thread.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_OK(client->Send(ListTables()).status());
}

}  // namespace
}  // namespace riffledb::remote
