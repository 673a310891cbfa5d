#include "riffledb/remote/service.h"

#include <arrow/api.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <gmock/gmock.h>

#include <atomic>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/ipc_bytes.h"
#include "riffledb/testing/testing.h"

namespace riffledb::remote {
namespace {

using riffledb::testing::IdBatch;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// The batches as an Arrow IPC stream body, LZ4-compressed as LanceDB's client sends it.
std::string StreamBody(const std::vector<std::shared_ptr<arrow::RecordBatch>>& batches,
                       bool lz4 = true) {
  return riffledb::testing::IpcStream(batches, lz4);
}

// The rows of an IPC file reply, as one table.
std::shared_ptr<arrow::Table> FileRows(const Reply& reply) {
  EXPECT_EQ(reply.status, 200) << BodyText(reply);
  EXPECT_EQ(reply.content_type, kArrowFileType);
  auto reader = arrow::ipc::RecordBatchFileReader::Open(
                    std::make_shared<arrow::io::BufferReader>(
                        arrow::Buffer::FromString(BodyText(reply))))
                    .ValueOrDie();
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int i = 0; i < reader->num_record_batches(); ++i) {
    batches.push_back(reader->ReadRecordBatch(i).ValueOrDie());
  }
  return arrow::Table::FromRecordBatches(reader->schema(), batches).ValueOrDie();
}

std::vector<int64_t> Ids(const std::shared_ptr<arrow::Table>& table,
                         const std::string& column = "id") {
  std::vector<int64_t> out;
  for (const auto& chunk : table->GetColumnByName(column)->chunks()) {
    const auto& ints = static_cast<const arrow::Int64Array&>(*chunk);
    for (int64_t i = 0; i < ints.length(); ++i) out.push_back(ints.Value(i));
  }
  return out;
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(auto db, Database::Connect("memory://"));
    ServiceOptions options;
    options.max_batch_rows = 4;
    service_ = std::make_unique<Service>(db, options);
    Reply created = Post("/v1/table/t/create/?mode=create", StreamBody({IdBatch(0, 10)}));
    ASSERT_EQ(created.status, 200) << BodyText(created);
  }
  Reply Post(const std::string& target, std::string body = "") {
    return service_->Handle("POST", target, std::move(body));
  }
  std::unique_ptr<Service> service_;
};

TEST_F(ServiceTest, ListTablesPaginates) {
  ASSERT_EQ(Post("/v1/table/b/create/", StreamBody({IdBatch(0, 1)}, false)).status, 200);
  ASSERT_EQ(Post("/v1/table/a/create/", StreamBody({IdBatch(0, 1)})).status, 200);
  Reply all = service_->Handle("GET", "/v1/table/", "");
  EXPECT_EQ(Json::parse(BodyText(all)), Json::parse(R"({"tables":["a","b","t"]})"));
  Reply page = service_->Handle("GET", "/v1/table/?limit=2", "");
  EXPECT_EQ(Json::parse(BodyText(page)),
            Json::parse(R"({"tables":["a","b"],"page_token":"b"})"));
  page = service_->Handle("GET", "/v1/table/?limit=2&page_token=b", "");
  EXPECT_EQ(Json::parse(BodyText(page)), Json::parse(R"({"tables":["t"]})"));
  page = service_->Handle("GET", "/v1/namespace/$/table/list?page_token=a", "");
  EXPECT_EQ(Json::parse(BodyText(page)), Json::parse(R"({"tables":["b","t"]})"));
  Reply bad = service_->Handle("GET", "/v1/table/?limit=x", "");
  EXPECT_EQ(bad.status, 400);
  EXPECT_THAT(BodyText(bad), HasSubstr("'limit'"));
  EXPECT_EQ(service_->Handle("POST", "/v1/table/", "").status, 405);
}

TEST_F(ServiceTest, CreateModes) {
  Reply again = Post("/v1/table/t/create/?mode=create", StreamBody({IdBatch(0, 2)}));
  EXPECT_EQ(again.status, 400);
  EXPECT_THAT(BodyText(again), HasSubstr("already exists"));
  EXPECT_EQ(Post("/v1/table/t/create/?mode=exist_ok", StreamBody({IdBatch(0, 2)})).status,
            200);
  EXPECT_EQ(BodyText(Post("/v1/table/t/count_rows/")), "10");
  EXPECT_EQ(
      Post("/v1/table/t/create/?mode=overwrite", StreamBody({IdBatch(100, 2)})).status,
      200);
  EXPECT_EQ(BodyText(Post("/v1/table/t/count_rows/")), "2");
  Reply mode = Post("/v1/table/t/create/?mode=replace", StreamBody({IdBatch(0, 2)}));
  EXPECT_EQ(mode.status, 400);
  EXPECT_THAT(BodyText(mode), HasSubstr("'mode'"));
  // An empty table: a schema and a zero-row batch.
  EXPECT_EQ(Post("/v1/table/empty/create/", StreamBody({IdBatch(0, 0)})).status, 200);
  EXPECT_EQ(BodyText(Post("/v1/table/empty/count_rows/")), "0");
}

TEST_F(ServiceTest, BadBodiesAre400AndWriteNothing) {
  for (std::string body : {std::string(), std::string("not arrow"),
                           StreamBody({IdBatch(0, 3)}).substr(0, 150)}) {
    Reply reply = Post("/v1/table/t/insert/", body);
    EXPECT_EQ(reply.status, 400) << BodyText(reply);
    EXPECT_THAT(BodyText(reply), HasSubstr("Arrow IPC"));
  }
  Reply created = Post("/v1/table/u/create/", "garbage");
  EXPECT_EQ(created.status, 400);
  EXPECT_EQ(BodyText(Post("/v1/table/t/count_rows/")), "10");
  EXPECT_EQ(Post("/v1/table/u/describe/").status, 404);
}

// Regression: a small LZ4 body declaring large buffers (a decompression bomb) passed
// the body limit and was expanded whole in memory.
TEST_F(ServiceTest, DecompressionBombIs413AndWritesNothing) {
  ASSERT_OK_AND_ASSIGN(auto db, Database::Connect("memory://"));
  ServiceOptions options;
  options.max_decoded_bytes = int64_t{1} << 20;
  Service service(db, options);
  auto schema = arrow::schema({arrow::field("id", arrow::int64())});
  auto small =
      arrow::RecordBatch::Make(schema, 1000,
                               {std::make_shared<arrow::Int64Array>(
                                   1000, arrow::AllocateBuffer(8000).ValueOrDie())});
  std::memset(small->column(0)->data()->buffers[1]->mutable_data(), 0, 8000);
  ASSERT_EQ(service.Handle("POST", "/v1/table/z/create/", StreamBody({small})).status,
            200);
  // 4 Mi zeros: 32 MiB decoded, about 130 KiB compressed.
  const int64_t rows = int64_t{4} << 20;
  ASSERT_OK_AND_ASSIGN(auto zeros, arrow::AllocateBuffer(rows * 8));
  std::memset(zeros->mutable_data(), 0, rows * 8);
  auto bomb = arrow::RecordBatch::Make(
      schema, rows, {std::make_shared<arrow::Int64Array>(rows, std::move(zeros))});
  const std::string body = StreamBody({bomb});
  ASSERT_LT(body.size(), size_t{1} << 20);
  for (const char* target : {"/v1/table/z/insert/", "/v1/table/bomb/create/"}) {
    Reply reply = service.Handle("POST", target, body);
    EXPECT_EQ(reply.status, 413) << target << ": " << BodyText(reply);
    EXPECT_THAT(BodyText(reply), HasSubstr("decompresses to more than 1048576 bytes"));
  }
  EXPECT_EQ(BodyText(service.Handle("POST", "/v1/table/z/count_rows/", "")), "1000");
  EXPECT_EQ(service.Handle("POST", "/v1/table/bomb/describe/", "").status, 404);
  // Within the budget, the same data is accepted (and outlives its request: the memory
  // database keeps the decoded batches).
  Service roomy(db, ServiceOptions{});
  EXPECT_EQ(roomy.Handle("POST", "/v1/table/z/insert/", body).status, 200);
  EXPECT_EQ(BodyText(roomy.Handle("POST", "/v1/table/z/count_rows/", "")),
            std::to_string(rows + 1000));
}

// Tables are cached between requests: reads must still see every commit, whoever made
// it, and a table dropped or created again must not be served from the old handle.
// A service on a directory database holding table `t` (ids 0..9).
class ServiceDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_OK_AND_ASSIGN(db_, Database::Connect(dir_.path()));
    service_ = std::make_unique<Service>(db_);
    ASSERT_EQ(post("/v1/table/t/create/", StreamBody({IdBatch(0, 10)})).status, 200);
  }
  Reply post(const std::string& target, std::string body = "") {
    return service_->Handle("POST", target, std::move(body));
  }
  riffledb::testing::TempDir dir_;
  std::shared_ptr<Database> db_;
  std::unique_ptr<Service> service_;
};

TEST_F(ServiceDirectoryTest, CachedTablesFollowEveryWriter) {
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/")), "10");
  // Through the service, then by another handle on the same directory.
  ASSERT_EQ(post("/v1/table/t/insert/", StreamBody({IdBatch(10, 5)})).status, 200);
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/")), "15");
  ASSERT_OK_AND_ASSIGN(auto db2, Database::Connect(dir_.path()));
  ASSERT_OK_AND_ASSIGN(auto other, db2->OpenTable("t"));
  auto more = arrow::RecordBatchReader::Make({IdBatch(15, 3)}).ValueOrDie();
  ASSERT_OK(other->Append(more.get()).status());
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/")), "18");
  EXPECT_EQ(Json::parse(BodyText(post("/v1/table/t/describe/")))["version"], 3);
  // An old version, then the newest again.
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/", R"({"version":1})")), "10");
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/")), "18");
  // Overwrite, drop and create again.
  ASSERT_EQ(
      post("/v1/table/t/create/?mode=overwrite", StreamBody({IdBatch(0, 2)})).status,
      200);
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/")), "2");
  ASSERT_EQ(post("/v1/table/t/drop/").status, 200);
  EXPECT_EQ(post("/v1/table/t/count_rows/").status, 404);
  ASSERT_EQ(post("/v1/table/t/create/", StreamBody({IdBatch(0, 7)})).status, 200);
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/")), "7");
  // Dropped by another handle.
  ASSERT_OK(db2->DropTable("t", false));
  EXPECT_EQ(post("/v1/table/t/count_rows/").status, 404);
}

// Appends, by the service or another writer, move the cached handle to the newest
// version without opening the table again (an open reads the version list and every
// fragment's metadata: under a stream of small appends, a reopen at every version took
// most of the server's time). An older newest version (dropped and created again)
// still reopens.
TEST_F(ServiceDirectoryTest, AppendsMoveTheCachedTableWithoutAReopen) {
  const std::string take = R"j({"filter":"_rowoffset in (11,0)","columns":["id"]})j";
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/")), "10");
  const int64_t opens = service_->table_opens();
  EXPECT_EQ(opens, 1);
  ASSERT_OK_AND_ASSIGN(auto db2, Database::Connect(dir_.path()));
  ASSERT_OK_AND_ASSIGN(auto other, db2->OpenTable("t"));
  for (int64_t i = 0; i < 4; ++i) {
    ASSERT_EQ(post("/v1/table/t/insert/", StreamBody({IdBatch(10 + 2 * i, 1)})).status,
              200);
    auto more = arrow::RecordBatchReader::Make({IdBatch(11 + 2 * i, 1)}).ValueOrDie();
    ASSERT_OK(other->Append(more.get()).status());  // another writer
    EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/")), std::to_string(12 + 2 * i));
    EXPECT_EQ(Ids(FileRows(post("/v1/table/t/query/", take))),
              (std::vector<int64_t>{11, 0}));
  }
  EXPECT_EQ(Json::parse(BodyText(post("/v1/table/t/describe/")))["version"], 9);
  EXPECT_EQ(service_->table_opens(), opens);
  // Dropped and created again by another writer: an older newest version, reopened.
  ASSERT_OK(db2->DropTable("t", false));
  auto rows = arrow::RecordBatchReader::Make({IdBatch(0, 3)}).ValueOrDie();
  ASSERT_OK(
      db2->CreateTable("t", nullptr, rows.get(), CreateMode::kCreate, false).status());
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/")), "3");
  EXPECT_GT(service_->table_opens(), opens);
}

// Dropped and created again by another process with as many versions (1): the newest
// version number is the cached one's, so only the table's id tells them apart. A
// service checking at every request serves the new table; one checking once an hour
// still serves the old one's files (mapped), the staleness its interval allows.
TEST_F(ServiceDirectoryTest, ATableCreatedAgainWithAsManyVersionsIsServedOnceChecked) {
  const std::string take = R"j({"filter":"_rowoffset in (1,0)","columns":["id"]})j";
  ServiceOptions every_request;
  every_request.table_check_interval_ms = 0;
  Service checking(db_, every_request);
  ServiceOptions hourly;
  hourly.table_check_interval_ms = 3'600'000;
  Service lazy(db_, hourly);
  for (const Service* service : {&checking, &lazy}) {
    EXPECT_EQ(Ids(FileRows(service->Handle("POST", "/v1/table/t/query/", take))),
              (std::vector<int64_t>{1, 0}));
  }
  ASSERT_OK_AND_ASSIGN(auto db2, Database::Connect(dir_.path()));
  ASSERT_OK(db2->DropTable("t", false));
  auto rows = arrow::RecordBatchReader::Make({IdBatch(100, 3)}).ValueOrDie();
  ASSERT_OK(
      db2->CreateTable("t", nullptr, rows.get(), CreateMode::kCreate, false).status());

  EXPECT_EQ(Ids(FileRows(checking.Handle("POST", "/v1/table/t/query/", take))),
            (std::vector<int64_t>{101, 100}));
  EXPECT_EQ(BodyText(checking.Handle("POST", "/v1/table/t/count_rows/", "")), "3");
  EXPECT_EQ(checking.table_opens(), 2);
  EXPECT_EQ(Ids(FileRows(lazy.Handle("POST", "/v1/table/t/query/", take))),
            (std::vector<int64_t>{1, 0}));
  EXPECT_EQ(lazy.table_opens(), 1);
}

// A read of a version that names the table id its describe gave is refused (404) once
// that version is of another table of the name; without an id, as LanceDB's clients
// read, the version is read whatever table it is of.
TEST_F(ServiceDirectoryTest, AReadNamingATableIdIsOfThatTable) {
  const Json described = Json::parse(BodyText(post("/v1/table/t/describe/", "")));
  ASSERT_TRUE(described.contains("table_id")) << described.dump();
  const std::string old_id = described["table_id"];
  ASSERT_EQ(old_id.size(), 32u);
  auto take = [&](const std::string& id) {
    return post("/v1/table/t/query/",
                R"j({"version":1,"filter":"_rowoffset in (1,0)","columns":["id"],)j"
                R"j("table_id":")j" +
                    id + "\"}");
  };
  EXPECT_EQ(Ids(FileRows(take(old_id))), (std::vector<int64_t>{1, 0}));
  ASSERT_EQ(post("/v1/table/t/drop/").status, 200);
  ASSERT_EQ(post("/v1/table/t/create/", StreamBody({IdBatch(100, 3)})).status, 200);
  const Reply refused = take(old_id);
  EXPECT_EQ(refused.status, 404);
  EXPECT_NE(BodyText(refused).find("is of another table than the one read before"),
            std::string::npos)
      << BodyText(refused);
  const std::string read = R"j({"version":1,"table_id":")j" + old_id + "\"}";
  EXPECT_EQ(post("/v1/table/t/count_rows/", read).status, 404);
  EXPECT_EQ(post("/v1/table/t/describe/", read).status, 404);
  const std::string new_id =
      Json::parse(BodyText(post("/v1/table/t/describe/", "")))["table_id"];
  EXPECT_NE(new_id, old_id);
  EXPECT_EQ(Ids(FileRows(take(new_id))), (std::vector<int64_t>{101, 100}));
  EXPECT_EQ(BodyText(post("/v1/table/t/count_rows/", R"({"version":1})")), "3");
}

// A service asking the store for newer versions once an hour (what object storage gets
// by the second, where asking is three requests) serves the version its handle holds
// meanwhile: another writer's append is not seen, its own insert is at once (and brings
// the other writer's along, as the commit rebases). A service asking at every request
// (a directory's default) sees the other writer's append at the next request.
TEST_F(ServiceDirectoryTest, BetweenVersionChecksTheVersionHeldIsServed) {
  ServiceOptions hourly_options;
  hourly_options.version_check_interval_ms = 3'600'000;
  Service hourly(db_, hourly_options);
  Service every(db_);  // a directory: kAutoVersionCheck is every request
  for (const Service* service : {&hourly, &every}) {
    EXPECT_EQ(BodyText(service->Handle("POST", "/v1/table/t/count_rows/", "")), "10");
  }
  ASSERT_OK_AND_ASSIGN(auto db2, Database::Connect(dir_.path()));
  ASSERT_OK_AND_ASSIGN(auto other, db2->OpenTable("t"));
  auto more = arrow::RecordBatchReader::Make({IdBatch(10, 1)}).ValueOrDie();
  ASSERT_OK(other->Append(more.get()).status());
  EXPECT_EQ(BodyText(every.Handle("POST", "/v1/table/t/count_rows/", "")), "11");
  EXPECT_EQ(BodyText(hourly.Handle("POST", "/v1/table/t/count_rows/", "")), "10");
  EXPECT_EQ(Json::parse(
                BodyText(hourly.Handle("POST", "/v1/table/t/describe/", "")))["version"],
            1);
  ASSERT_EQ(
      hourly.Handle("POST", "/v1/table/t/insert/", StreamBody({IdBatch(11, 1)})).status,
      200);
  EXPECT_EQ(BodyText(hourly.Handle("POST", "/v1/table/t/count_rows/", "")), "12");
  EXPECT_EQ(hourly.table_opens(), 1);
}

// A read of an asked-for version reads that version, also when it is the newest and
// another request moves the shared cached handle on meanwhile (appends through the
// service, one after the other, beside reads of the version just seen newest).
TEST_F(ServiceTest, AVersionAskedForIsReadWhileAppendsMoveTheCache) {
  std::atomic<bool> done{false};
  std::atomic<int> wrong{0}, reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      const Json newest = Json::parse(BodyText(Post("/v1/table/t/describe/")));
      const uint64_t v = newest["version"];
      const std::string asked = "{\"version\":" + std::to_string(v) + "}";
      // Version v holds 10 + (v - 1) rows: one row an append.
      if (BodyText(Post("/v1/table/t/count_rows/", asked)) != std::to_string(9 + v)) {
        ++wrong;
      }
      if (Json::parse(BodyText(Post("/v1/table/t/describe/", asked)))["version"] != v) {
        ++wrong;
      }
      ++reads;
    }
  });
  for (int64_t i = 0; i < 300; ++i) {
    ASSERT_EQ(Post("/v1/table/t/insert/", StreamBody({IdBatch(10 + i, 1)})).status, 200);
  }
  done = true;
  reader.join();
  EXPECT_EQ(wrong.load(), 0) << "of " << reads.load() << " reads";
  EXPECT_EQ(BodyText(Post("/v1/table/t/count_rows/")), "310");
}

TEST_F(ServiceTest, DescribeCountInsertAndVersions) {
  Reply describe = Post("/v1/table/t/describe/");
  ASSERT_EQ(describe.status, 200);
  Json json = Json::parse(BodyText(describe));
  EXPECT_EQ(json["version"], 1);
  EXPECT_EQ(json["schema"]["fields"][0]["name"], "id");
  EXPECT_EQ(json["schema"]["fields"][1]["type"]["type"], "int32");

  EXPECT_EQ(BodyText(Post("/v1/table/t/count_rows/", R"({"version":null})")), "10");
  EXPECT_EQ(BodyText(Post("/v1/table/t/count_rows/", R"({"predicate":"id >= 7"})")), "3");
  Reply insert = Post("/v1/table/t/insert/", StreamBody({IdBatch(10, 5)}));
  EXPECT_EQ(Json::parse(BodyText(insert)), Json::parse(R"({"version":2})"));
  EXPECT_EQ(BodyText(Post("/v1/table/t/count_rows/")), "15");
  EXPECT_EQ(BodyText(Post("/v1/table/t/count_rows/", R"({"version":1})")), "10");
  Reply old = Post("/v1/table/t/describe/", R"({"version":1})");
  EXPECT_EQ(Json::parse(BodyText(old))["version"], 1);
  EXPECT_EQ(Post("/v1/table/t/describe/", R"({"version":9})").status, 404);

  Reply overwrite =
      Post("/v1/table/t/insert/?mode=overwrite", StreamBody({IdBatch(0, 1)}));
  EXPECT_EQ(Json::parse(BodyText(overwrite)), Json::parse(R"({"version":3})"));
  Json versions = Json::parse(BodyText(Post("/v1/table/t/version/list/")));
  ASSERT_EQ(versions["versions"].size(), 3u);
  EXPECT_EQ(versions["versions"][2]["version"], 3);
  EXPECT_EQ(versions["versions"][2]["metadata"]["operation"], "overwrite");
  EXPECT_THAT(versions["versions"][0]["timestamp"].get<std::string>(), HasSubstr("T"));
}

TEST_F(ServiceTest, QueryScansFiltersProjectsAndChunks) {
  auto rows = FileRows(
      Post("/v1/table/t/query/",
           R"({"version":null,"prefilter":true,"k":9223372036854775807,"vector":[]})"));
  EXPECT_EQ(Ids(rows), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_EQ(rows->column(0)->num_chunks(), 3);  // max_batch_rows 4
  rows = FileRows(Post("/v1/table/t/query/",
                       R"({"k":2,"offset":1,"filter":"id > 3","columns":["id"],)"
                       R"("with_row_id":true,"vector":[]})"));
  EXPECT_EQ(rows->schema()->ToString(), "id: int64\n_rowid: uint64 not null");
  EXPECT_EQ(Ids(rows), (std::vector<int64_t>{5, 6}));
  rows = FileRows(
      Post("/v1/table/t/query/", R"({"k":1,"columns":{"double":"id * 2","l":"label"}})"));
  EXPECT_EQ(rows->schema()->field(0)->name(), "double");
  EXPECT_EQ(Ids(rows, "double"), (std::vector<int64_t>{0}));
  // No rows: a file with the schema and no batch.
  rows = FileRows(Post("/v1/table/t/query/", R"({"filter":"id > 100"})"));
  EXPECT_EQ(rows->num_rows(), 0);
  EXPECT_EQ(rows->num_columns(), 2);
}

TEST_F(ServiceTest, TakesKeepTheRequestedOrder) {
  auto rows =
      FileRows(Post("/v1/table/t/query/",
                    R"j({"k":9223372036854775807,"filter":"_rowoffset in (7,2,2)",)j"
                    R"j("columns":{"id":"id"},"vector":[]})j"));
  EXPECT_EQ(Ids(rows), (std::vector<int64_t>{7, 2, 2}));
  rows = FileRows(Post("/v1/table/t/query/",
                       R"j({"filter":"_rowid IN (9, 0)","columns":{"id":"id"},)j"
                       R"j("with_row_id":true})j"));
  EXPECT_EQ(Ids(rows), (std::vector<int64_t>{9, 0}));
  EXPECT_EQ(rows->schema()->field(1)->name(), "_rowid");
  rows = FileRows(Post("/v1/table/t/query/", R"j({"filter":"_rowoffset IN (1, 2, 3)",)j"
                                             R"j("k":1,"offset":1})j"));
  EXPECT_EQ(Ids(rows), (std::vector<int64_t>{2}));
  rows =
      FileRows(Post("/v1/table/t/query/",
                    R"j({"filter":"_rowoffset IN (4)","columns":["id","_rowoffset"]})j"));
  EXPECT_EQ(rows->schema()->field(1)->name(), "_rowoffset");
  Reply out_of_range = Post("/v1/table/t/query/", R"j({"filter":"_rowoffset IN (10)"})j");
  EXPECT_EQ(out_of_range.status, 400);
  EXPECT_THAT(BodyText(out_of_range), HasSubstr("10"));
}

// The body of a streamed reply, as the transport would send it; `status` is what
// WriteTo returned.
std::string Drain(const Reply& reply, arrow::Status* status) {
  std::string out;
  EXPECT_NE(reply.stream, nullptr);
  if (reply.stream == nullptr) return out;
  *status = reply.stream->WriteTo([&](std::string_view piece) {
    EXPECT_FALSE(piece.empty());
    out.append(piece);
    return true;
  });
  return out;
}

// service_'s database behind a service that streams every answer after its first batch.
Service StreamingService(const Service& whole) {
  ServiceOptions options;
  options.max_batch_rows = 4;
  options.max_buffered_answer_bytes = 1;
  return Service(whole.database(), options);
}

TEST_F(ServiceTest, StreamedAnswersAreTheFilesSentWhole) {
  Service streaming = StreamingService(*service_);
  for (const char* body : {
           R"({"k":9223372036854775807,"vector":[]})",
           R"({"k":7,"offset":2,"filter":"id > 0","columns":{"x":"id * 3"}})",
           R"j({"filter":"_rowoffset IN (9,8,7,6,5,4,3,2,1,0,9)","columns":["id"]})j",
           R"j({"filter":"_rowid in (1,3,5,7,9,0)","k":4,"offset":1})j",
       }) {
    SCOPED_TRACE(body);
    Reply whole = Post("/v1/table/t/query/", body);
    ASSERT_EQ(whole.status, 200) << BodyText(whole);
    ASSERT_EQ(whole.stream, nullptr);
    Reply streamed = streaming.Handle("POST", "/v1/table/t/query/", body);
    ASSERT_EQ(streamed.status, 200) << BodyText(streamed);
    EXPECT_EQ(streamed.content_type, kArrowFileType);
    EXPECT_TRUE(streamed.body.empty());
    arrow::Status status;
    EXPECT_EQ(Drain(streamed, &status), BodyText(whole));
    EXPECT_OK(status);
  }
  // An answer that ends within the bound is whole, also there.
  Reply none = streaming.Handle("POST", "/v1/table/t/query/", R"({"filter":"id < 0"})");
  EXPECT_EQ(none.stream, nullptr);
  EXPECT_EQ(FileRows(none)->num_rows(), 0);
}

TEST_F(ServiceTest, AFailureAfterTheFirstByteFailsTheStream) {
  // Two fragments; division by zero at id 12, in the second.
  ASSERT_EQ(Post("/v1/table/two/create/", StreamBody({IdBatch(0, 8)})).status, 200);
  ASSERT_EQ(Post("/v1/table/two/insert/", StreamBody({IdBatch(8, 8)})).status, 200);
  const std::string body = R"({"filter":"100 / (12 - id) > 0"})";
  Reply whole = Post("/v1/table/two/query/", body);
  EXPECT_EQ(whole.status, 400);
  EXPECT_THAT(BodyText(whole), HasSubstr("divide by zero"));

  Service streaming = StreamingService(*service_);
  Reply streamed = streaming.Handle("POST", "/v1/table/two/query/", body);
  ASSERT_EQ(streamed.status, 200) << BodyText(streamed);
  arrow::Status status;
  const std::string sent = Drain(streamed, &status);
  EXPECT_THAT(status.message(), HasSubstr("divide by zero"));
  EXPECT_FALSE(sent.empty());
  // What was sent is no IPC file (no footer).
  auto buffer = arrow::Buffer::FromString(sent);
  EXPECT_FALSE(arrow::ipc::RecordBatchFileReader::Open(
                   std::make_shared<arrow::io::BufferReader>(buffer))
                   .ok());

  // A client that stops reading ends the writes.
  streamed = streaming.Handle("POST", "/v1/table/t/query/", R"({})");
  int calls = 0;
  status = streamed.stream->WriteTo([&](std::string_view) { return ++calls < 2; });
  EXPECT_TRUE(status.IsIOError()) << status;
  EXPECT_EQ(calls, 2);
}

TEST_F(ServiceTest, TakesCheckEveryIdBeforeTheFirstByte) {
  // Takes of more ids than a batch are taken a batch at a time; an id the version does
  // not have is still a 400 naming it, wherever it is, also outside offset and limit.
  Service streaming = StreamingService(*service_);
  for (const char* body : {
           R"j({"filter":"_rowoffset IN (0,1,2,3,4,5,6,7,8,12)"})j",
           R"j({"filter":"_rowid IN (0,1,2,3,4,5,6,7,8,12)"})j",
           R"j({"filter":"_rowoffset IN (0,1,12)","k":1})j",
           R"j({"filter":"_rowid IN (0,1,12)","offset":1,"k":1})j",
       }) {
    SCOPED_TRACE(body);
    for (const Service* service : {service_.get(), &streaming}) {
      Reply reply = service->Handle("POST", "/v1/table/t/query/", body);
      EXPECT_EQ(reply.status, 400);
      EXPECT_EQ(reply.stream, nullptr);
      EXPECT_THAT(BodyText(reply), HasSubstr("12"));
    }
  }
}

TEST_F(ServiceTest, ErrorsNameWhatIsWrong) {
  Reply reply = Post("/v1/table/t/query/", R"({"filter":"nope > 1"})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(BodyText(reply), HasSubstr("nope"));
  reply = Post("/v1/table/t/count_rows/", R"({"predicate":"id >"})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(BodyText(reply), HasSubstr("Invalid filter"));
  reply = Post("/v1/table/t/query/", R"({"k":"ten"})");
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(BodyText(reply), HasSubstr("'k'"));
  reply = Post("/v1/table/t/query/", R"({"vector":[1.0]})");
  EXPECT_EQ(reply.status, 501);
  reply = Post("/v1/table/missing/count_rows/");
  EXPECT_EQ(reply.status, 404);
  EXPECT_THAT(BodyText(reply), HasSubstr("'missing'"));
  reply = Post("/v1/table/t/merge_insert/");
  EXPECT_EQ(reply.status, 501);
  reply = Post("/v1/table/..%2Fx/describe/");
  EXPECT_EQ(reply.status, 400);
  EXPECT_EQ(service_->Handle("POST", "/nowhere", "").status, 404);
  EXPECT_EQ(service_->Handle("GET", "/v1/table/t/describe/", "").status, 405);
  EXPECT_EQ(BodyText(Post("/v1/table/t/get_lsm_write_spec/")),
            R"({"lsm_write_spec":null})");
}

TEST_F(ServiceTest, Drop) {
  EXPECT_EQ(Post("/v1/table/t/drop/").status, 200);
  EXPECT_EQ(Post("/v1/table/t/describe/").status, 404);
  EXPECT_EQ(Post("/v1/table/t/drop/").status, 404);
}

TEST(ServiceDirectory, MessagesDoNotRevealTheDatabasePath) {
  riffledb::testing::TempDir dir;
  ASSERT_OK_AND_ASSIGN(auto db, Database::Connect(dir.path()));
  Service service(db);
  Reply reply = service.Handle("POST", "/v1/table/missing/describe/", "");
  EXPECT_EQ(reply.status, 404);
  EXPECT_THAT(BodyText(reply), ::testing::Not(HasSubstr(dir.path())));
  EXPECT_THAT(BodyText(reply), HasSubstr("<db>"));
}

}  // namespace
}  // namespace riffledb::remote

namespace riffledb::remote {
namespace {

// A client decides where a body's buffers start: a record batch whose body starts 4 bytes
// late (its metadata said 4 bytes longer) is read from aligned copies.
TEST(CreateBody, MisalignedBuffersAreCopiedToAlignedMemory) {
  const std::string shifted = riffledb::testing::WithMisalignedBatchBody(
      StreamBody({IdBatch(0, 5)}, /*lz4=*/false), /*stream_start=*/0);
  ASSERT_FALSE(shifted.empty());
  ASSERT_OK_AND_ASSIGN(auto db, Database::Connect("memory://"));
  Service service(db);
  Reply created = service.Handle("POST", "/v1/table/t/create/", shifted);
  ASSERT_EQ(created.status, 200) << BodyText(created);
  auto rows = FileRows(service.Handle("POST", "/v1/table/t/query/", R"({"k":10})"));
  EXPECT_THAT(Ids(rows, "id"), ElementsAre(0, 1, 2, 3, 4));
}

// A take's large buffers (8 KiB and more) are pieces of the reply as the take gathered
// them, not copied into it; small ones and the IPC metadata are copied together.
TEST(QueryAnswer, LargeBuffersAreSentFromWhereTheTakePutThem) {
  constexpr int32_t kDim = 64;
  arrow::FloatBuilder values;
  for (int i = 0; i < 100 * kDim; ++i) ASSERT_OK(values.Append(static_cast<float>(i)));
  ASSERT_OK_AND_ASSIGN(auto vec, arrow::FixedSizeListArray::FromArrays(
                                     values.Finish().ValueOrDie(), kDim));
  auto ids = IdBatch(0, 100)->column(0);
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64()), arrow::field("vec", vec->type())});
  auto batch = arrow::RecordBatch::Make(schema, 100, {ids, vec});
  ASSERT_OK_AND_ASSIGN(auto db, Database::Connect("memory://"));
  Service service(db);
  ASSERT_EQ(service.Handle("POST", "/v1/table/t/create/", StreamBody({batch})).status,
            200);
  for (const int rows : {2, 40}) {
    std::string list;
    for (int i = 0; i < rows; ++i) {
      if (i > 0) list += ',';
      list += std::to_string(99 - i);
    }
    Reply reply =
        service.Handle("POST", "/v1/table/t/query/",
                       R"({"k":1000,"filter":"_rowoffset in ()" + list + ")\"}");
    auto table = FileRows(reply);
    ASSERT_EQ(table->num_rows(), rows);
    EXPECT_EQ(Ids(table, "id").front(), 99);
    const int64_t vec_bytes = int64_t{rows} * kDim * 4;
    if (vec_bytes < 8192) {
      EXPECT_EQ(reply.body.size(), 1u);  // all copied together
    } else {
      // metadata and ids, the gathered vectors, the footer
      ASSERT_EQ(reply.body.size(), 3u);
      EXPECT_EQ(reply.body[1]->size(), vec_bytes);
      const auto* floats = reinterpret_cast<const float*>(reply.body[1]->data());
      EXPECT_EQ(floats[0], 99.0f * kDim);  // row 99's first value
    }
  }
}

}  // namespace
}  // namespace riffledb::remote
