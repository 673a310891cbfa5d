// The server under concurrent use, as `make test-tsan` runs it (the suite's name says
// Concurrent): connection threads answering takes and counts from several clients while
// another client appends (the table cache's handle moving to each new version in place,
// Service::OpenLatest), and a Stop while requests are in flight. Each is run on the
// server's own request parser and on cpp-httplib's, with and without busy-polling.
#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "riffledb/db/database.h"
#include "riffledb/io/http_connection.h"
#include "riffledb/remote/server.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/ipc_bytes.h"
#include "riffledb/testing/testing.h"

namespace riffledb::remote {
namespace {

using riffledb::testing::IdBatch;
using riffledb::testing::ReaderOf;

constexpr int64_t kFirstRows = 500;  // rows 0..499, there before any client starts
constexpr int64_t kAppendRows = 10;  // rows each insert adds

// A keep-alive client, one request at a time: a new connection after an answer that
// closes its connection (the server's last of keep_alive_max_requests), as clients do.
class Client {
 public:
  explicit Client(int port) : port_(port) { Connect(); }

  // The answer to a POST of `body` to `/v1/table/t/<action>/`; an error once a
  // connection failed (then every later call fails too).
  arrow::Result<io::HttpResponse> Post(const std::string& action, std::string_view body,
                                       const char* content_type = "application/json") {
    if (status_.ok() && connection_ == nullptr) Connect();
    ARROW_RETURN_NOT_OK(status_);
    const std::string head =
        "POST /v1/table/t/" + action +
        "/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type +
        "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    status_ = connection_->Send(head, body);
    ARROW_RETURN_NOT_OK(status_);
    auto response = connection_->Receive("POST");
    status_ = response.status();
    if (response.ok() && response->Header("Connection") == "close") connection_.reset();
    return response;
  }

 private:
  void Connect() {
    io::HttpOptions options;
    options.io_timeout_seconds = 30;
    auto connection = io::HttpConnection::Open({"http", "127.0.0.1", port_}, options);
    if (connection.ok()) connection_ = std::move(*connection);
    status_ = connection.status();
  }

  const int port_;
  std::unique_ptr<io::HttpConnection> connection_;
  arrow::Status status_;
};

// An IPC stream of IdBatch(start, n): an insert's or a create's body.
std::string RowsBody(int64_t start, int64_t n) {
  return riffledb::testing::IpcStream({IdBatch(start, n)});
}

// The `id` column of an IPC file answer; a failure names what was wrong.
std::vector<int64_t> AnswerIds(const io::HttpResponse& response) {
  EXPECT_EQ(response.status, 200) << response.body;
  auto reader =
      arrow::ipc::RecordBatchFileReader::Open(std::make_shared<arrow::io::BufferReader>(
          arrow::Buffer::FromString(response.body)));
  EXPECT_OK(reader.status());
  std::vector<int64_t> ids;
  if (!reader.ok()) return ids;
  for (int i = 0; i < (*reader)->num_record_batches(); ++i) {
    auto batch = (*reader)->ReadRecordBatch(i).ValueOrDie();
    const auto& column =
        static_cast<const arrow::Int64Array&>(*batch->GetColumnByName("id"));
    for (int64_t r = 0; r < column.length(); ++r) ids.push_back(column.Value(r));
  }
  return ids;
}

// A take of `offsets` as riffledb's client sends it (the order asked is kept).
std::string TakeBody(const std::vector<int64_t>& offsets) {
  std::string body =
      R"({"version":null,"prefilter":true,"k":9223372036854775807,"vector":[],)"
      R"("filter":"_rowoffset in ()";
  for (size_t i = 0; i < offsets.size(); ++i) {
    if (i > 0) body += ',';
    body += std::to_string(offsets[i]);
  }
  return body + ")\"}";
}

// What a client thread saw.
struct Tally {
  int64_t answered = 0;   // 200s, each checked
  int64_t failed = 0;     // transport errors (a stopped server's closed connections)
  arrow::Status failure;  // the first one
};

// Whether `failure` came before any byte of an answer: connecting or sending failed, or
// the connection closed before a status line. Anything else (a reset, a timeout, an
// answer closed after its first bytes) may have cut an answer short.
bool BeforeAnyAnswer(const arrow::Status& failure) {
  const auto info = io::GetHttpFailure(failure);
  if (!info) return false;
  switch (info->step) {
    case io::HttpFailure::kConnect:
    case io::HttpFailure::kSend:
      return true;
    case io::HttpFailure::kReceive:
      return failure.message().find("closed before the end of the status line") !=
             std::string::npos;
    default:
      return false;
  }
}

// Takes random offsets of the first rows and counts rows, `requests` times or until
// the connection fails: every answer is checked, and counts never go down and grow by
// whole appends.
Tally ReadUntilFailure(int port, uint64_t seed, int requests,
                       std::atomic<int64_t>* done) {
  Tally tally;
  Client client(port);
  std::mt19937_64 rng(seed);
  int64_t last_count = kFirstRows;
  for (int i = 0; i < requests; ++i) {
    arrow::Result<io::HttpResponse> response;
    if (i % 4 == 3) {
      response = client.Post("count_rows", "{}");
      if (response.ok()) {
        EXPECT_EQ(response->status, 200) << response->body;
        if (response->status != 200) break;
        const int64_t count = std::stoll(response->body);
        EXPECT_GE(count, last_count);
        EXPECT_EQ((count - kFirstRows) % kAppendRows, 0) << count;
        last_count = count;
      }
    } else {
      std::vector<int64_t> offsets(1 + rng() % 64);
      for (auto& offset : offsets) offset = static_cast<int64_t>(rng() % kFirstRows);
      response = client.Post("query", TakeBody(offsets));
      if (response.ok()) {
        EXPECT_EQ(AnswerIds(*response), offsets);
      }
    }
    if (!response.ok()) {
      ++tally.failed;
      tally.failure = response.status();
      break;
    }
    ++tally.answered;
    done->fetch_add(1, std::memory_order_relaxed);
  }
  return tally;
}

// Appends kAppendRows rows at a time (ids continuing the table's), `requests` times or
// until the connection fails; a 200 says the rows are committed.
Tally AppendUntilFailure(int port, int requests, std::atomic<int64_t>* done) {
  Tally tally;
  Client client(port);
  for (int i = 0; i < requests; ++i) {
    auto response = client.Post(
        "insert", RowsBody(kFirstRows + tally.answered * kAppendRows, kAppendRows),
        "application/vnd.apache.arrow.stream");
    if (!response.ok()) {
      ++tally.failed;
      tally.failure = response.status();
      break;
    }
    EXPECT_EQ(response->status, 200) << response->body;
    ++tally.answered;
    done->fetch_add(1, std::memory_order_relaxed);
  }
  return tally;
}

// (plain_path, busy_poll_us)
class ServerConcurrent : public ::testing::TestWithParam<std::tuple<bool, int>> {
 protected:
  void SetUp() override {
    db_ = Database::Connect(dir_.path()).ValueOrDie();
    ASSERT_OK(db_->CreateTable("t", nullptr, ReaderOf({IdBatch(0, kFirstRows)}).get(),
                               CreateMode::kCreate, false)
                  .status());
  }

  // A server of 4 connection threads, on the request path and with the busy-polling of
  // the test's parameters.
  void Start(ServiceOptions service = {}) {
    ServerOptions options;
    options.threads = 4;
    options.plain_path = std::get<0>(GetParam());
    options.busy_poll_us = std::get<1>(GetParam());
    options.service = service;
    server_ = Server::Start(db_, options).ValueOrDie();
  }

  // The table's ids as the database reads them now.
  std::vector<int64_t> TableIds() {
    return riffledb::testing::Ids(*db_->OpenTable("t").ValueOrDie());
  }

  riffledb::testing::TempDir dir_;
  std::shared_ptr<Database> db_;
  std::unique_ptr<Server> server_;
};

TEST_P(ServerConcurrent, TakesAndCountsWhileAnotherClientAppends) {
  Start();
  constexpr int kReaders = 3;
  constexpr int kReads = 40;
  constexpr int kAppends = 15;
  std::atomic<int64_t> done{0};
  std::vector<Tally> reads(kReaders);
  std::vector<std::thread> threads;
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back(
        [&, r] { reads[r] = ReadUntilFailure(server_->port(), r, kReads, &done); });
  }
  Tally appends;
  threads.emplace_back(
      [&] { appends = AppendUntilFailure(server_->port(), kAppends, &done); });
  for (auto& thread : threads) thread.join();

  for (const Tally& tally : reads) {
    EXPECT_EQ(tally.answered, kReads);
    EXPECT_EQ(tally.failed, 0);
  }
  EXPECT_EQ(appends.answered, kAppends);
  EXPECT_EQ(TableIds(), riffledb::testing::Range(0, kFirstRows + kAppends * kAppendRows));
  // The server's count agrees, on a new connection.
  Client client(server_->port());
  auto count = client.Post("count_rows", "{}");
  ASSERT_OK(count.status());
  EXPECT_EQ(count->body, std::to_string(kFirstRows + kAppends * kAppendRows));
}

// One client drops the table and creates it again, over and over, while others take
// from it: every take is answered with rows of one generation of the table, whole (ids
// 1000 * generation + offset), or 404 while there is none; nothing else.
TEST_P(ServerConcurrent, TakesWhileAnotherClientDropsAndCreates) {
  Start();
  constexpr int64_t kGenerations = 12;
  constexpr int64_t kRows = 100;  // of each generation; the first has kFirstRows
  std::atomic<bool> done{false};
  std::atomic<int64_t> answered{0};
  std::atomic<int64_t> missing{0};
  auto take = [&](uint64_t seed) {
    Client client(server_->port());
    std::mt19937_64 rng(seed);
    while (!done.load()) {
      std::vector<int64_t> offsets(1 + rng() % 32);
      for (auto& offset : offsets) offset = static_cast<int64_t>(rng() % kRows);
      auto response = client.Post("query", TakeBody(offsets));
      ASSERT_OK(response.status());
      if (response->status == 404) {
        ++missing;
        continue;
      }
      // A take that found one generation and opened its files after the next had
      // replaced it is asked again of the new one (Service::Query): never "No such file".
      ASSERT_EQ(response->status, 200) << response->body;
      const std::vector<int64_t> ids = AnswerIds(*response);
      ASSERT_EQ(ids.size(), offsets.size());
      const int64_t generation = ids[0] / 1000;
      for (size_t i = 0; i < ids.size(); ++i) {
        ASSERT_EQ(ids[i], 1000 * generation + offsets[i]) << "at " << i;
      }
      ++answered;
    }
  };
  std::vector<std::thread> readers;
  for (uint64_t r = 0; r < 2; ++r) readers.emplace_back(take, 20 + r);
  // Returns early on a failure, then the readers are stopped all the same.
  auto write = [&] {
    Client writer(server_->port());
    for (int64_t generation = 1; generation <= kGenerations; ++generation) {
      auto dropped = writer.Post("drop", "");
      ASSERT_OK(dropped.status());
      EXPECT_EQ(dropped->status, 200) << dropped->body;
      auto created = writer.Post("create", RowsBody(1000 * generation, kRows),
                                 "application/vnd.apache.arrow.stream");
      ASSERT_OK(created.status());
      EXPECT_EQ(created->status, 200) << created->body;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  };
  write();
  done = true;
  for (auto& reader : readers) reader.join();
  EXPECT_GT(answered.load(), 0);
  RecordProperty("missing", static_cast<int>(missing.load()));
  EXPECT_EQ(TableIds(),
            riffledb::testing::Range(1000 * kGenerations, 1000 * kGenerations + kRows));
}

// Takes of more than 10 rows are streamed (chunked), so that a stop meets both kinds of
// answers being sent.
TEST_P(ServerConcurrent, StopWhileRequestsAreInFlight) {
  ServiceOptions service;
  service.max_buffered_answer_bytes = 512;
  Start(service);
  constexpr int kReaders = 2;
  constexpr int kMany = 1 << 20;  // until the stop
  // Answers each client had, and the clients still running.
  std::atomic<int64_t> done[kReaders + 1] = {};
  std::atomic<int> running{kReaders + 1};
  std::vector<Tally> reads(kReaders);
  std::vector<std::thread> threads;
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      reads[r] = ReadUntilFailure(server_->port(), 10 + r, kMany, &done[r]);
      --running;
    });
  }
  Tally appends;
  threads.emplace_back([&] {
    appends = AppendUntilFailure(server_->port(), kMany, &done[kReaders]);
    --running;
  });
  // Stops once every client has had three answers (or has failed: then the checks
  // below say how), for 60 s at most.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  auto ready = [&] {
    for (const auto& answers : done) {
      if (answers.load() < 3) return false;
    }
    return true;
  };
  while (!ready() && running.load() == kReaders + 1) {
    if (std::chrono::steady_clock::now() > deadline) {
      ADD_FAILURE() << "the clients had no three answers each in 60 s";
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  server_->Stop();
  for (auto& thread : threads) thread.join();

  // Each client failed at the stop, and only there, before an answer began: a request
  // the server had taken was answered whole.
  for (const Tally& tally : reads) {
    EXPECT_GT(tally.answered, 0);
    EXPECT_EQ(tally.failed, 1);
    EXPECT_TRUE(BeforeAnyAnswer(tally.failure)) << tally.failure.ToString();
  }
  EXPECT_GT(appends.answered, 0);
  EXPECT_EQ(appends.failed, 1);
  EXPECT_TRUE(BeforeAnyAnswer(appends.failure)) << appends.failure.ToString();
  // Every insert answered 200 is committed whole, and none that was not.
  const auto ids = TableIds();
  EXPECT_EQ(ids.size(), kFirstRows + appends.answered * kAppendRows)
      << appends.answered << " inserts answered";
  EXPECT_EQ(ids,
            riffledb::testing::Range(0, kFirstRows + appends.answered * kAppendRows));
  EXPECT_FALSE(Client(server_->port()).Post("count_rows", "{}").ok());
}

// A stop before the accept loop has taken a connection, and a second one, return at
// once; the port no longer takes connections.
TEST(ServerStop, RightAfterStartThenAgain) {
  auto server = Server::Start(Database::Connect("memory://").ValueOrDie(), {});
  ASSERT_OK(server.status());
  (*server)->Stop();
  EXPECT_TRUE((*server)->Wait(0));
  (*server)->Stop();
  EXPECT_FALSE(Client((*server)->port()).Post("count_rows", "{}").ok());
}

INSTANTIATE_TEST_SUITE_P(PlainPathAndBusyPoll, ServerConcurrent,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(0, 200)),
                         [](const ::testing::TestParamInfo<std::tuple<bool, int>>& info) {
                           return std::string(std::get<0>(info.param) ? "Plain"
                                                                      : "CppHttplib") +
                                  (std::get<1>(info.param) ? "BusyPoll" : "Blocking");
                         });

}  // namespace
}  // namespace riffledb::remote
