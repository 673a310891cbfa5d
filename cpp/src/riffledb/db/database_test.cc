#include "riffledb/db/database.h"

#include <gmock/gmock.h>

#include <filesystem>
#include <fstream>

#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using riffledb::testing::IdBatch;
using riffledb::testing::ReaderOf;
using riffledb::testing::TempDir;
using ::testing::ElementsAre;

class DatabaseTest : public ::testing::TestWithParam<bool> {
 protected:
  std::shared_ptr<Database> Connect() {
    return Database::Connect(GetParam() ? dir_.path() + "/db" : "memory://").ValueOrDie();
  }
  std::shared_ptr<Table> Create(Database& db, const std::string& name, int64_t rows = 3,
                                CreateMode mode = CreateMode::kCreate,
                                bool exist_ok = false) {
    auto reader = ReaderOf({IdBatch(0, rows)});
    return db.CreateTable(name, reader->schema(), reader.get(), mode, exist_ok)
        .ValueOrDie();
  }
  TempDir dir_;
};

TEST_P(DatabaseTest, CreateListOpenDrop) {
  auto db = Connect();
  Create(*db, "b");
  Create(*db, "a-2");
  Create(*db, "a");
  ASSERT_OK_AND_ASSIGN(auto names, db->TableNames());
  EXPECT_THAT(names, ElementsAre("a", "a-2", "b"));
  ASSERT_OK_AND_ASSIGN(auto table, db->OpenTable("a"));
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 3);
  ASSERT_OK(db->DropTable("a", false));
  ASSERT_OK_AND_ASSIGN(names, db->TableNames());
  EXPECT_THAT(names, ElementsAre("a-2", "b"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Table 'a' was not found in database",
                             db->OpenTable("a"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Table 'a' was not found",
                             db->DropTable("a", false));
  ASSERT_OK(db->DropTable("a", true));
}

TEST_P(DatabaseTest, OpenTableAtAVersion) {
  auto db = Connect();
  auto table = Create(*db, "t", 3);
  auto more = ReaderOf({IdBatch(3, 4)});
  ASSERT_OK(table->Append(more.get()));
  ASSERT_OK_AND_ASSIGN(auto old, db->OpenTable("t", 1));
  EXPECT_EQ(old->version(), 1u);
  EXPECT_TRUE(old->detached());
  EXPECT_EQ(old->snapshot().ValueOrDie()->num_rows(), 3);
  ASSERT_OK_AND_ASSIGN(auto latest, db->OpenTable("t", std::nullopt));
  EXPECT_EQ(latest->version(), 2u);
  EXPECT_EQ(latest->snapshot().ValueOrDie()->num_rows(), 7);
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Version 5 of table 't' does not exist; versions: 1..2",
                             db->OpenTable("t", 5));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Table 'nope' was not found",
                             db->OpenTable("nope", 1));
}

TEST_P(DatabaseTest, CreateWithSchemaAdaptsTheData) {
  auto db = Connect();
  auto reader = ReaderOf({IdBatch(0, 3)});  // {id int64, label int32}
  auto schema = arrow::schema(
      {arrow::field("label", arrow::int64()), arrow::field("id", arrow::int32())});
  ASSERT_OK_AND_ASSIGN(
      auto table, db->CreateTable("t", schema, reader.get(), CreateMode::kCreate, false));
  EXPECT_TRUE(table->snapshot().ValueOrDie()->schema()->Equals(*schema));
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 3);

  auto bad = ReaderOf({IdBatch(0, 3)});
  auto narrow = arrow::schema({arrow::field("id", arrow::int64())});
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "The data does not match the schema of table 'u': extra columns: 'label'",
      db->CreateTable("u", narrow, bad.get(), CreateMode::kCreate, false));
  ASSERT_OK_AND_ASSIGN(bool has, db->HasTable("u"));
  EXPECT_FALSE(has);
}

TEST_P(DatabaseTest, CreateModes) {
  auto db = Connect();
  Create(*db, "t", 3);
  auto reader = ReaderOf({IdBatch(0, 5)});
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Table 't' already exists",
      db->CreateTable("t", reader->schema(), reader.get(), CreateMode::kCreate, false));
  auto existing = Create(*db, "t", 5, CreateMode::kCreate, /*exist_ok=*/true);
  EXPECT_EQ(existing->snapshot().ValueOrDie()->num_rows(), 3);
  auto replaced = Create(*db, "t", 5, CreateMode::kOverwrite);
  EXPECT_EQ(replaced->snapshot().ValueOrDie()->num_rows(), 5);
  EXPECT_EQ(replaced->version(), 2u);
}

TEST_P(DatabaseTest, InvalidNamesAreRejected) {
  auto db = Connect();
  const std::vector<std::string> names = {"",
                                          "../x",
                                          "a/b",
                                          "a\\b",
                                          ".hidden",
                                          std::string(256, 'x'),
                                          std::string("a\0b", 3),
                                          "sp ace"};
  for (const auto& name : names) {
    SCOPED_TRACE(name);
    ASSERT_RAISES(Invalid, db->OpenTable(name));
    auto reader = ReaderOf({IdBatch(0, 1)});
    ASSERT_RAISES(Invalid, db->CreateTable(name, reader->schema(), reader.get(),
                                           CreateMode::kCreate, false));
  }
  ASSERT_OK(Database::ValidateTableName("ok_name-1.v2"));
}

INSTANTIATE_TEST_SUITE_P(Databases, DatabaseTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "Directory" : "Memory";
                         });

TEST(Database, MemoryDatabasesArePrivate) {
  auto a = Database::Connect("memory://").ValueOrDie();
  auto b = Database::Connect("memory://").ValueOrDie();
  auto reader = ReaderOf({IdBatch(0, 1)});
  ASSERT_OK(
      a->CreateTable("t", reader->schema(), reader.get(), CreateMode::kCreate, false));
  ASSERT_OK_AND_ASSIGN(auto names, b->TableNames());
  EXPECT_TRUE(names.empty());
}

TEST(Database, DirectoryTablesAreSharedBetweenConnections) {
  TempDir dir;
  auto a = Database::Connect(dir.path()).ValueOrDie();
  auto reader = ReaderOf({IdBatch(0, 4)});
  ASSERT_OK(
      a->CreateTable("t", reader->schema(), reader.get(), CreateMode::kCreate, false));
  auto b = Database::Connect(dir.path() + "/").ValueOrDie();
  EXPECT_EQ(b->uri(), a->uri());
  ASSERT_OK_AND_ASSIGN(auto table, b->OpenTable("t"));
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 4);
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() + "/t.riffle/_versions"));
}

TEST(Database, ConnectErrors) {
  TempDir dir;
  const std::string file = dir.path() + "/plain-file";
  { std::ofstream(file) << "x"; }
  ASSERT_RAISES_WITH_MESSAGE(IOError, "is not a directory", Database::Connect(file));
  ASSERT_RAISES(NotImplemented, Database::Connect("s3://bucket/db"));
  ASSERT_RAISES(Invalid, Database::Connect(""));
}

}  // namespace
}  // namespace riffledb
