// RemoteTakeSource against an in-process mock of a table's query route that answers
// takes in its own order (descending keys, each once), as a server may: the source must
// put the rows in the order asked for, repeat duplicates, evaluate the projection, and
// give the PermutationReader what a local snapshot would.
#include "riffledb/remote/client/remote_take_source.h"

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/json/from_string.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <functional>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/permutation/reader.h"
#include "riffledb/testing/ipc_bytes.h"
#include "riffledb/testing/testing.h"

namespace riffledb::remote {
namespace {

constexpr int64_t kRows = 10;
constexpr uint64_t kFirstId = 100;  // row i has _rowid 100 + i, id i, x i / 2

// The values of `name` for rows `rows`.
std::shared_ptr<arrow::Array> Column(const std::string& name,
                                     const std::vector<int64_t>& rows) {
  if (name == "id") {
    arrow::Int64Builder b;
    for (int64_t r : rows) (void)b.Append(r);
    return b.Finish().ValueOrDie();
  }
  if (name == "x") {
    arrow::DoubleBuilder b;
    for (int64_t r : rows) (void)b.Append(r * 0.5);
    return b.Finish().ValueOrDie();
  }
  arrow::UInt64Builder b;
  for (int64_t r : rows) (void)b.Append(name == "_rowid" ? kFirstId + r : r);
  return b.Finish().ValueOrDie();
}

std::shared_ptr<arrow::DataType> TypeOf(const std::string& name) {
  if (name == "id") return arrow::int64();
  if (name == "x") return arrow::float64();
  return arrow::uint64();
}

std::string IpcFile(const std::vector<std::string>& names,
                    const std::vector<int64_t>& rows) {
  arrow::FieldVector fields;
  arrow::ArrayVector columns;
  for (const auto& name : names) {
    fields.push_back(arrow::field(name, TypeOf(name)));
    columns.push_back(Column(name, rows));
  }
  auto schema = arrow::schema(fields);
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  auto writer = arrow::ipc::MakeFileWriter(sink, schema).ValueOrDie();
  (void)writer->WriteRecordBatch(
      *arrow::RecordBatch::Make(schema, static_cast<int64_t>(rows.size()), columns));
  (void)writer->Close();
  return sink->Finish().ValueOrDie()->ToString();
}

// How the mock answers a take.
enum class Answers {
  kDescendingDistinct,     // its own order: every matching row once, descending
  kAsAsked,                // a riffledb server's: the list's order, repeats repeated, and
                           // the x-riffledb-take-order header on every answer
  kDescendingSaysAsked,    // its own order, but with the header (a server that lies)
  kAskedUntilTheFirstTake  // the header on the count and the schema probe only, then
                           // matching rows once in scan (ascending) order, as
                           // LanceDB's server (another server behind the address)
};

class MockTable {
 public:
  explicit MockTable(Answers answers = Answers::kDescendingDistinct) : answers_(answers) {
    server_.Post("/v1/table/t/count_rows/",
                 [this](const httplib::Request& req, httplib::Response& res) {
                   Record(req);
                   SayOrder(res);
                   res.set_content(std::to_string(kRows), "application/json");
                 });
    server_.Post("/v1/table/t/query/", [this](const httplib::Request& req,
                                              httplib::Response& res) {
      Record(req);
      auto body = nlohmann::json::parse(req.body);
      {
        std::lock_guard<std::mutex> lock(mu_);
        bodies_.push_back(body);
      }
      std::vector<std::string> names = {"id", "x"};
      if (body.contains("columns"))
        names = body["columns"].get<std::vector<std::string>>();
      if (body.value("with_row_id", false) &&
          std::find(names.begin(), names.end(), "_rowid") == names.end()) {
        names.push_back("_rowid");
      }
      std::vector<int64_t> rows;
      if (!body.contains("filter")) {
        rows = {0};  // the schema probe
      } else {
        // "_rowid in (1,2)" or "_rowoffset in (1,2)".
        std::string filter = body["filter"];
        const bool by_id = filter.rfind("_rowid", 0) == 0;
        std::string list = filter.substr(filter.find('(') + 1);
        size_t pos = 0;
        while (pos < list.size() && list[pos] != ')') {
          size_t end = list.find_first_of(",)", pos);
          const uint64_t key = std::stoull(list.substr(pos, end - pos));
          const auto row = static_cast<int64_t>(by_id ? key - kFirstId : key);
          if (row >= 0 && row < kRows && row != missing_row_.load()) rows.push_back(row);
          pos = end + (list[end] == ',' ? 1 : 0);
          if (list[end] == ')') break;
        }
        if (answers_ == Answers::kAskedUntilTheFirstTake) {
          std::sort(rows.begin(), rows.end());
          rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
        } else if (answers_ != Answers::kAsAsked) {
          std::sort(rows.rbegin(), rows.rend());
          rows.erase(std::unique(rows.begin(), rows.end()), rows.end());
        }
      }
      if (answers_ != Answers::kAskedUntilTheFirstTake || !body.contains("filter")) {
        SayOrder(res);
      }
      res.set_content(IpcFile(names, rows), "application/vnd.apache.arrow.file");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~MockTable() {
    server_.stop();
    thread_.join();
  }

  std::shared_ptr<const RemoteTakeSource> Open(
      int64_t max_keys = 8192,
      std::function<arrow::Result<HeaderList>()> header_source = nullptr) {
    ClientOptions options;
    options.base_url = "http://127.0.0.1:" + std::to_string(port_);
    auto client = HttpClient::Make(options).ValueOrDie();
    RemoteTableOptions table;
    table.name = "t";
    table.table_path = "/v1/table/t/";
    table.version = 3;
    table.max_keys_per_request = max_keys;
    table.header_source = std::move(header_source);
    return RemoteTakeSource::Open(std::move(client), std::move(table)).ValueOrDie();
  }
  std::vector<nlohmann::json> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  std::shared_ptr<HttpClient> Client() const {
    ClientOptions options;
    options.base_url = "http://127.0.0.1:" + std::to_string(port_);
    return HttpClient::Make(options).ValueOrDie();
  }
  void Lose(int64_t row) { missing_row_.store(row); }
  // The x-token header of every request so far ("" when it had none).
  std::vector<std::string> tokens() {
    std::lock_guard<std::mutex> lock(mu_);
    return tokens_;
  }

 private:
  void Record(const httplib::Request& req) {
    std::lock_guard<std::mutex> lock(mu_);
    tokens_.push_back(req.get_header_value("x-token"));
  }
  void SayOrder(httplib::Response& res) const {
    if (answers_ != Answers::kDescendingDistinct) {
      res.set_header("X-Riffledb-Take-Order", "asked");
    }
  }

  const Answers answers_;
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::vector<nlohmann::json> bodies_;
  std::vector<std::string> tokens_;
  // Set by the test's thread, read by the server's: TSan does not see the order a
  // request's socket gives them.
  std::atomic<int64_t> missing_row_{-1};
};

// A count_rows request of table `t`.
HttpRequest CountRequest() {
  HttpRequest count;
  count.path = "/v1/table/t/count_rows/";
  count.body = "{}";
  return count;
}

std::vector<int64_t> Ids(const arrow::RecordBatch& batch) {
  const auto& ids = static_cast<const arrow::Int64Array&>(*batch.GetColumnByName("id"));
  return std::vector<int64_t>(ids.raw_values(), ids.raw_values() + ids.length());
}

TEST(RemoteTakeSource, OpensWithSchemaAndCountAtTheVersion) {
  MockTable table;
  auto source = table.Open();
  EXPECT_EQ(source->num_rows(), kRows);
  EXPECT_EQ(source->schema()->ToString(), "id: int64\nx: double");
  EXPECT_EQ(source->ToString(), "remote table 't' version 3");
  EXPECT_EQ(table.bodies().at(0)["k"], 1);
  EXPECT_EQ(table.bodies().at(0)["version"], 3);
}

TEST(RemoteTakeSource, RowIdTakesComeBackInTheOrderAskedForWithDuplicates) {
  MockTable table;
  auto source = table.Open();
  const uint64_t ids[] = {105, 101, 109, 101};
  ASSERT_OK_AND_ASSIGN(auto batch, source->TakeRowIds(ids, TakeOptions{}));
  EXPECT_EQ(Ids(*batch), (std::vector<int64_t>{5, 1, 9, 1}));
  EXPECT_EQ(batch->schema()->ToString(), "id: int64\nx: double");
  auto body = table.bodies().back();
  EXPECT_EQ(body["filter"], "_rowid in (101,105,109)");
  EXPECT_EQ(body["with_row_id"], true);
  EXPECT_EQ(body["version"], 3);
  EXPECT_EQ(body["columns"], nlohmann::json::array({"id", "x"}));
}

TEST(RemoteTakeSource, KeysOfTwentyDigitsAreWrittenWhole) {
  MockTable table;
  auto source = table.Open();
  // Every key of the longest spelling: room for fewer digits would not hold them.
  const uint64_t ids[] = {std::numeric_limits<uint64_t>::max(),
                          10'000'000'000'000'000'000u, 12'345'678'901'234'567'890u,
                          18'000'000'000'000'000'001u};
  (void)source->TakeRowIds(ids, TakeOptions{});  // the mock has none of them
  EXPECT_EQ(table.bodies().back()["filter"],
            "_rowid in (10000000000000000000,12345678901234567890,18000000000000000001,"
            "18446744073709551615)");
}

TEST(RemoteTakeSource, OffsetTakesAskOnlyForNeededColumnsAndProjectHere) {
  MockTable table;
  auto source = table.Open();
  const std::vector<OutputColumn> outputs = {{"double_x", "x * 2"}, {"rid", "_rowid"}};
  TakeOptions options;
  ASSERT_OK_AND_ASSIGN(options.projection, Projection::Make(source->schema(), outputs));
  const int64_t offsets[] = {3, 0, 3};
  ASSERT_OK_AND_ASSIGN(auto batch, source->TakeOffsets(offsets, options));
  EXPECT_EQ(batch->schema()->ToString(), "double_x: double\nrid: uint64 not null");
  EXPECT_EQ(batch->column(0)->ToString(), "[\n  3,\n  0,\n  3\n]");
  EXPECT_EQ(batch->column(1)->ToString(), "[\n  103,\n  100,\n  103\n]");
  auto body = table.bodies().back();
  EXPECT_EQ(body["filter"], "_rowoffset in (0,3)");
  EXPECT_EQ(body["columns"], nlohmann::json::array({"x", "_rowid", "_rowoffset"}));
  EXPECT_FALSE(body.contains("with_row_id"));

  const int64_t out_of_range[] = {1, kRows};
  ASSERT_RAISES_WITH_MESSAGE(IndexError, "Offset 10 at position 1 is out of range",
                             source->TakeOffsets(out_of_range, options));
}

TEST(RemoteTakeSource, LargeTakesAreSplitIntoRequests) {
  MockTable table;
  auto source = table.Open(/*max_keys=*/3);
  const size_t before = table.bodies().size();
  const uint64_t ids[] = {109, 100, 108, 101, 107, 102, 106};
  ASSERT_OK_AND_ASSIGN(auto batch, source->TakeRowIds(ids, TakeOptions{}));
  EXPECT_EQ(Ids(*batch), (std::vector<int64_t>{9, 0, 8, 1, 7, 2, 6}));
  EXPECT_EQ(table.bodies().size() - before, 3u);
}

TEST(RemoteTakeSource, TheHeaderSourceIsAskedBeforeEveryRequest) {
  MockTable table;
  std::atomic<int> calls{0};
  std::atomic<bool> fail{false};
  auto source = table.Open(/*max_keys=*/3, [&]() -> arrow::Result<HeaderList> {
    if (fail) return arrow::Status::Invalid("token expired");
    return HeaderList{{"x-token", std::to_string(++calls)}};
  });
  const uint64_t ids[] = {109, 100, 108, 101, 107, 102, 106};
  ASSERT_OK(source->TakeRowIds(ids, TakeOptions{}).status());
  // The schema probe, the count, then three takes: a fresh token each.
  EXPECT_EQ(table.tokens(), (std::vector<std::string>{"1", "2", "3", "4", "5"}));
  fail = true;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "token expired",
                             source->TakeRowIds(ids, TakeOptions{}));
  EXPECT_EQ(table.tokens().size(), 5u);  // nothing sent without its headers
}

TEST(RemoteTakeSource, AMissingRowIdIsAnIndexErrorAndAnEmptyTakeSendsNothing) {
  MockTable table;
  auto source = table.Open();
  table.Lose(4);
  const uint64_t ids[] = {101, 104};
  ASSERT_RAISES_WITH_MESSAGE(IndexError,
                             "Row id 104 at position 1 is not a row of remote table 't'",
                             source->TakeRowIds(ids, TakeOptions{}));
  const size_t before = table.bodies().size();
  ASSERT_OK_AND_ASSIGN(auto empty,
                       source->TakeRowIds(std::span<const uint64_t>(), TakeOptions{}));
  EXPECT_EQ(empty->num_rows(), 0);
  EXPECT_EQ(empty->schema()->ToString(), "id: int64\nx: double");
  EXPECT_EQ(table.bodies().size(), before);
}

TEST(TakeRemoteRows, ANegativeOffsetIsAnIndexErrorBeforeAnyRequest) {
  MockTable table;
  table.Open();  // the server is up (a MockTable stopped before it listens hangs)
  const size_t before = table.bodies().size();
  RemoteTake take;
  take.name = "t";
  take.table_path = "/v1/table/t/";
  // Offsets come as int64 values seen as unsigned: -2 is 2^64 - 2.
  const uint64_t keys[] = {3, static_cast<uint64_t>(int64_t{-2}), 1};
  ASSERT_RAISES_WITH_MESSAGE(IndexError,
                             "Offset -2 at position 1 is out of range for table 't'",
                             TakeRemoteRows(*table.Client(), take, keys));
  EXPECT_EQ(table.bodies().size(), before);
}

TEST(RemoteTakeSource, AServerThatAnswersAsAskedIsAskedForTheKeysAsTheyAre) {
  MockTable table(Answers::kAsAsked);
  auto source = table.Open();  // the schema probe's answer carries the header
  const uint64_t ids[] = {105, 101, 109, 101};
  ASSERT_OK_AND_ASSIGN(auto batch, source->TakeRowIds(ids, TakeOptions{}));
  EXPECT_EQ(Ids(*batch), (std::vector<int64_t>{5, 1, 9, 1}));
  EXPECT_EQ(batch->schema()->ToString(), "id: int64\nx: double");
  EXPECT_EQ(table.bodies().back()["filter"], "_rowid in (105,101,109,101)");

  const int64_t offsets[] = {3, 0, 3};
  ASSERT_OK_AND_ASSIGN(batch, source->TakeOffsets(offsets, TakeOptions{}));
  EXPECT_EQ(Ids(*batch), (std::vector<int64_t>{3, 0, 3}));
  EXPECT_EQ(table.bodies().back()["filter"], "_rowoffset in (3,0,3)");

  // Split into requests of three keys, as asked, repeats included.
  auto split = table.Open(/*max_keys=*/3);
  const uint64_t many[] = {109, 100, 109, 101, 107};
  ASSERT_OK_AND_ASSIGN(batch, split->TakeRowIds(many, TakeOptions{}));
  EXPECT_EQ(Ids(*batch), (std::vector<int64_t>{9, 0, 9, 1, 7}));
  const auto bodies = table.bodies();
  EXPECT_EQ(bodies[bodies.size() - 2]["filter"], "_rowid in (109,100,109)");
  EXPECT_EQ(bodies.back()["filter"], "_rowid in (101,107)");

  // A lost row is still an IndexError naming its position.
  table.Lose(4);
  const uint64_t lost[] = {101, 104};
  ASSERT_RAISES_WITH_MESSAGE(IndexError,
                             "Row id 104 at position 1 is not a row of remote table 't'",
                             source->TakeRowIds(lost, TakeOptions{}));
}

TEST(RemoteTakeSource, AnAnswerThatIsNotAsAskedAfterAllIsPutInOrderHere) {
  MockTable table(Answers::kDescendingSaysAsked);
  auto source = table.Open();
  const uint64_t ids[] = {105, 101, 109, 101};
  ASSERT_OK_AND_ASSIGN(auto batch, source->TakeRowIds(ids, TakeOptions{}));
  EXPECT_EQ(Ids(*batch), (std::vector<int64_t>{5, 1, 9, 1}));
  EXPECT_EQ(table.bodies().back()["filter"], "_rowid in (105,101,109,101)");
  const int64_t offsets[] = {3, 0, 3};  // the source asks for _rowoffset: matched by it
  ASSERT_OK_AND_ASSIGN(batch, source->TakeOffsets(offsets, TakeOptions{}));
  EXPECT_EQ(Ids(*batch), (std::vector<int64_t>{3, 0, 3}));

  // Without a key column to match by, a row count other than the keys' is an error.
  RemoteTake take;
  take.name = "t";
  take.table_path = "/v1/table/t/";
  take.columns = {"id"};
  auto client = table.Client();
  ASSERT_OK(TakeRemoteRows(*client, take, std::span<const uint64_t>()).status());
  EXPECT_TRUE(client->TakesInAskedOrder());
  const uint64_t keys[] = {3, 0, 3};
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "The server answered 2 rows for a take of 3 offsets of "
                             "table 't'",
                             TakeRemoteRows(*client, take, keys));
}

// A take's own answers must say the order too: if one does not, the take is asked
// again as of any server (distinct keys, ascending), which a take by offset of every
// column (no key column to match by) needs to come back right.
TEST(RemoteTakeSource, ATakeWhoseAnswerDoesNotSayTheOrderIsAskedAgain) {
  MockTable table(Answers::kAskedUntilTheFirstTake);
  table.Open();
  auto client = table.Client();
  ASSERT_OK(client->Send(CountRequest()).status());
  ASSERT_TRUE(client->TakesInAskedOrder());
  RemoteTake take;
  take.name = "t";
  take.table_path = "/v1/table/t/";
  take.columns = {"id"};
  const size_t before = table.bodies().size();
  const uint64_t keys[] = {3, 0, 3, 5};
  ASSERT_OK_AND_ASSIGN(auto rows, TakeRemoteRows(*client, take, keys));
  EXPECT_EQ(Ids(*rows), (std::vector<int64_t>{3, 0, 3, 5}));
  const auto bodies = table.bodies();
  ASSERT_EQ(bodies.size() - before, 2u);
  EXPECT_EQ(bodies[before]["filter"], "_rowoffset in (3,0,3,5)");
  EXPECT_EQ(bodies.back()["filter"], "_rowoffset in (0,3,5)");
}

TEST(RemoteTakeSource, AClientLearnsTheOrderFromAnyAnswer) {
  MockTable plain;
  plain.Open();  // answers without the header
  auto client = plain.Client();
  ASSERT_OK(client->Send(CountRequest()).status());
  EXPECT_FALSE(client->TakesInAskedOrder());
  MockTable asked(Answers::kAsAsked);
  auto learner = asked.Client();
  EXPECT_FALSE(learner->TakesInAskedOrder());
  ASSERT_OK(learner->Send(CountRequest()).status());
  EXPECT_TRUE(learner->TakesInAskedOrder());
  // A take before it knows asks for distinct keys, ascending.
  RemoteTake take;
  take.name = "t";
  take.table_path = "/v1/table/t/";
  take.by_row_id = true;
  const uint64_t keys[] = {103, 101, 103};
  ASSERT_OK(TakeRemoteRows(*asked.Client(), take, keys).status());
  EXPECT_EQ(asked.bodies().back()["filter"], "_rowid in (101,103)");
  ASSERT_OK(TakeRemoteRows(*learner, take, keys).status());
  EXPECT_EQ(asked.bodies().back()["filter"], "_rowid in (103,101,103)");
}

TEST(RemoteTakeSource, APermutationReaderReadsThroughIt) {
  MockTable table;
  auto source = table.Open();
  auto ids = std::make_shared<arrow::UInt64Array>(
      4, arrow::Buffer::FromVector(std::vector<uint64_t>{107, 102, 109, 100}));
  ASSERT_OK_AND_ASSIGN(auto permutation,
                       PermutationTable::Make(ids, {0}, {0, 4}, std::nullopt, {}));
  ASSERT_OK_AND_ASSIGN(auto reader, PermutationReader::Open(source, permutation, 0));
  EXPECT_EQ(reader->base(), nullptr);
  ASSERT_OK_AND_ASSIGN(auto selection,
                       BoundSelection::Make(*source->schema(), std::nullopt));
  ASSERT_OK_AND_ASSIGN(auto batch, reader->ReadBatch(1, 3, false, *selection));
  EXPECT_EQ(Ids(*batch), (std::vector<int64_t>{0}));
  const int64_t offsets[] = {2, 0};
  ASSERT_OK_AND_ASSIGN(batch, reader->TakeOffsets(offsets, *selection));
  EXPECT_EQ(Ids(*batch), (std::vector<int64_t>{9, 7}));

  ASSERT_OK_AND_ASSIGN(auto identity, PermutationReader::Open(source, nullptr, 0));
  ASSERT_OK_AND_ASSIGN(auto row_ids, identity->RowIds());
  EXPECT_EQ(row_ids->length(), kRows);
  EXPECT_EQ(row_ids->Value(3), kFirstId + 3);
}

}  // namespace
}  // namespace riffledb::remote

namespace riffledb::remote {
namespace {

std::string IpcFileOf(const std::shared_ptr<arrow::RecordBatch>& batch) {
  auto sink = arrow::io::BufferOutputStream::Create().ValueOrDie();
  auto writer = arrow::ipc::MakeFileWriter(sink, batch->schema()).ValueOrDie();
  EXPECT_TRUE(writer->WriteRecordBatch(*batch).ok());
  EXPECT_TRUE(writer->Close().ok());
  return sink->Finish().ValueOrDie()->ToString();
}

// A server's answer is untrusted: an IPC file whose string offsets point past its data
// is refused before anything reads it.
TEST(TakeAnswer, AnswersAreValidatedBeforeTheyAreRead) {
  const int32_t offsets[] = {0, 1, 1000};  // the second value ends far past the data
  auto bad = arrow::ArrayData::Make(
      arrow::utf8(), 2,
      {nullptr, arrow::Buffer::Wrap(offsets, 3), arrow::Buffer::FromString("ab")});
  auto schema = arrow::schema({arrow::field("s", arrow::utf8())});
  const std::string body =
      IpcFileOf(arrow::RecordBatch::Make(schema, 2, {arrow::MakeArray(bad)}));
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "The server's answer to a query of table 't' is not valid "
                             "Arrow IPC",
                             ReadQueryAnswer(body, std::nullopt, "table 't'"));
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "is not valid Arrow IPC",
      ReadQueryAnswer("{\"error\": 1}", std::nullopt, "table 't'"));
}

std::shared_ptr<arrow::RecordBatch> BatchOf(const std::string& name,
                                            std::shared_ptr<arrow::DataType> type,
                                            const std::string& json) {
  auto array = arrow::json::ArrayFromJSONString(type, json).ValueOrDie();
  return arrow::RecordBatch::Make(arrow::schema({arrow::field(name, type)}),
                                  array->length(), {array});
}

void ExpectRows(const std::string& body, const arrow::RecordBatch& expected) {
  ASSERT_OK_AND_ASSIGN(auto answer, ReadQueryAnswer(body, std::nullopt, "table 't'"));
  ASSERT_OK_AND_ASSIGN(auto rows, answer->CombineChunksToBatch());
  EXPECT_TRUE(rows->Equals(expected, /*check_metadata=*/true))
      << rows->ToString() << " != " << expected.ToString();
}

// An answer is read from the IPC stream inside the file, with the schema of the answer
// before it when its bytes are the same: answers of other schemas in between, with the
// same names or not, are read with their own.
TEST(TakeAnswer, EachAnswerIsReadWithItsOwnSchema) {
  const auto ints = BatchOf("id", arrow::int64(), "[1, 2, 3]");
  const auto same_name = BatchOf("id", arrow::int32(), "[4, 5]");
  const auto lists =
      BatchOf("v", arrow::fixed_size_list(arrow::float32(), 2), "[[1, 2], null]");
  const auto dictionary =
      BatchOf("d", arrow::dictionary(arrow::int8(), arrow::utf8()), R"(["a", "b", "a"])");
  for (int round = 0; round < 2; ++round) {
    for (const auto& batch : {ints, ints, same_name, lists, dictionary, ints}) {
      ExpectRows(IpcFileOf(batch), *batch);
    }
  }
}

// The file's footer frames its stream: a stream without its end-of-stream marker ends
// where the footer begins, and a footer whose length does not fit leaves the answer to
// the file reader, which says what is wrong.
TEST(TakeAnswer, TheFootersLengthFramesTheStream) {
  const auto batch = BatchOf("id", arrow::int64(), "[7, 8]");
  std::string file = IpcFileOf(batch);
  int32_t footer = 0;
  std::memcpy(&footer, file.data() + file.size() - 10, 4);
  const size_t stream_end = file.size() - 10 - static_cast<size_t>(footer);
  ASSERT_EQ(file.substr(stream_end - 8, 8), std::string("\xff\xff\xff\xff\0\0\0\0", 8));
  ExpectRows(file.substr(0, stream_end - 8) + file.substr(stream_end), *batch);
  // The answer is read from its stream: a footer of zeros (which the file reader
  // refuses) does not matter.
  std::string zeroed = file;
  std::fill(zeroed.begin() + static_cast<std::ptrdiff_t>(stream_end), zeroed.end() - 10,
            '\0');
  ASSERT_FALSE(
      arrow::ipc::RecordBatchFileReader::Open(
          std::make_shared<arrow::io::BufferReader>(arrow::Buffer::FromString(zeroed)))
          .ok());
  ExpectRows(zeroed, *batch);
  for (const int32_t wrong : {-1, static_cast<int32_t>(file.size())}) {
    std::string bad = file;
    std::memcpy(bad.data() + bad.size() - 10, &wrong, 4);
    ASSERT_RAISES_WITH_MESSAGE(Invalid,
                               "The server's answer to a query of table 't' is not "
                               "valid Arrow IPC",
                               ReadQueryAnswer(bad, std::nullopt, "table 't'"));
  }
}

// A server decides where an answer's buffers start: one not aligned for its type (the
// record batch's metadata 4 bytes longer, its body 4 bytes later) is copied to aligned
// memory, never read in place (UBSan found the misaligned reads, take_answer_fuzz).
TEST(TakeAnswer, MisalignedBuffersAreCopiedToAlignedMemory) {
  const auto batch = BatchOf("id", arrow::uint64(), "[5, 6, 7]");
  const std::string shifted =
      riffledb::testing::WithMisalignedBatchBody(IpcFileOf(batch), /*stream_start=*/8);
  ASSERT_FALSE(shifted.empty());
  ASSERT_OK_AND_ASSIGN(auto answer, ReadQueryAnswer(shifted, std::nullopt, "table 't'"));
  ASSERT_OK_AND_ASSIGN(auto rows, answer->CombineChunksToBatch());
  EXPECT_TRUE(rows->Equals(*batch));
  const auto* values = rows->column(0)->data()->buffers[1]->data();
  EXPECT_EQ(reinterpret_cast<uintptr_t>(values) % 8, 0u);
}

TEST(TakeAnswer, RowsComeInTheOrderAskedForWhateverTheServersOrder) {
  arrow::UInt64Builder ids;
  arrow::Int64Builder values;
  for (uint64_t id : {30, 10, 20}) {  // the server's order
    ASSERT_OK(ids.Append(id));
    ASSERT_OK(values.Append(static_cast<int64_t>(id) * 2));
  }
  auto schema = arrow::schema(
      {arrow::field("v", arrow::int64()), arrow::field("_rowid", arrow::uint64())});
  auto batch = arrow::RecordBatch::Make(
      schema, 3, {values.Finish().ValueOrDie(), ids.Finish().ValueOrDie()});
  ASSERT_OK_AND_ASSIGN(auto answer,
                       ReadQueryAnswer(IpcFileOf(batch), std::nullopt, "table 't'"));
  const uint64_t keys[] = {20, 30, 20, 10};
  const KeyRanks ranks = RankKeys(keys);
  EXPECT_EQ(ranks.unique, (std::vector<uint64_t>{10, 20, 30}));
  EXPECT_EQ(ranks.rank, (std::vector<int64_t>{1, 2, 1, 0}));
  ASSERT_OK_AND_ASSIGN(
      auto rows, OrderTakeAnswer(answer, keys, ranks, /*by_row_id=*/true, "table 't'"));
  EXPECT_EQ(rows->column(0)->ToString(), "[\n  40,\n  60,\n  40,\n  20\n]");
  const uint64_t lost[] = {10, 99};
  ASSERT_RAISES_WITH_MESSAGE(
      IndexError, "Row id 99 at position 1 is not a row of table 't'",
      OrderTakeAnswer(answer, lost, RankKeys(lost), /*by_row_id=*/true, "table 't'"));
  // By offset without the key column: the answer must hold one row per distinct key.
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "The server answered 3 rows for a take of 2 distinct offsets",
      OrderTakeAnswer(answer->SelectColumns({0}).ValueOrDie(), lost, RankKeys(lost),
                      /*by_row_id=*/false, "table 't'"));
}

}  // namespace
}  // namespace riffledb::remote
