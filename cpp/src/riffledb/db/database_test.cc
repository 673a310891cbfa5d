#include "riffledb/db/database.h"

#include <gmock/gmock.h>

#include <filesystem>
#include <fstream>

#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/status.h"

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
  EXPECT_EQ(GetErrorKind(db->OpenTable("a").status()), ErrorKind::kTableNotFound);
  EXPECT_EQ(GetErrorKind(db->DropTable("a", false)), ErrorKind::kTableNotFound);
  ASSERT_OK(db->DropTable("a", true));
}

// A handle kept across a drop reads what it had, and fails to write, in memory as in a
// directory (a memory table's handle once went on committing to the dropped table).
TEST_P(DatabaseTest, WritesThroughAHandleOfADroppedTableFail) {
  auto db = Connect();
  auto table = Create(*db, "a");
  ASSERT_OK(db->DropTable("a", false));
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 3);
  auto more = ReaderOf({IdBatch(3, 2)});
  auto appended = table->Append(more.get());
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "was dropped", appended.status());
  EXPECT_EQ(GetErrorKind(appended.status()), ErrorKind::kTableNotFound);
  EXPECT_EQ(table->version(), 1u);
  ASSERT_OK_AND_ASSIGN(auto names, db->TableNames());
  EXPECT_THAT(names, ::testing::IsEmpty());
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
  EXPECT_EQ(GetErrorKind(db->CreateTable("t", reader->schema(), reader.get(),
                                         CreateMode::kCreate, false)
                             .status()),
            ErrorKind::kTableExists);
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

// Names of 249..255 characters passed validation, then failed with "File name too long"
// when the `<name>.riffle` directory was made.
TEST_P(DatabaseTest, LongestTableNameFitsTheFileSystem) {
  auto db = Connect();
  EXPECT_EQ(Database::kMaxTableNameLength, 248u);
  const std::string longest(Database::kMaxTableNameLength, 'x');
  Create(*db, longest, 2);
  ASSERT_OK_AND_ASSIGN(auto table, db->OpenTable(longest));
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 2);
  ASSERT_OK(db->DropTable(longest, false));
  for (size_t length : {249, 255, 256, 1000}) {
    SCOPED_TRACE(length);
    const std::string name(length, 'y');
    const std::string message = "Table name '" + name + "' is " + std::to_string(length) +
                                " characters long; the limit is 248 (its directory, the "
                                "name + '.riffle', must fit the 255-character file name "
                                "limit)";
    auto reader = ReaderOf({IdBatch(0, 1)});
    ASSERT_RAISES_WITH_MESSAGE(Invalid, message,
                               db->CreateTable(name, reader->schema(), reader.get(),
                                               CreateMode::kCreate, false));
    ASSERT_RAISES_WITH_MESSAGE(Invalid, message, db->OpenTable(name));
    ASSERT_RAISES_WITH_MESSAGE(Invalid, message, db->DropTable(name, true));
    ASSERT_OK_AND_ASSIGN(bool has, db->HasTable(name));
    EXPECT_FALSE(has);
  }
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
  ASSERT_RAISES_WITH_MESSAGE(
      NotImplemented,
      "Unsupported database URI 'gs://bucket/db': gs:// is not supported yet",
      Database::Connect("gs://bucket/db"));
  ASSERT_RAISES(NotImplemented, Database::Connect("db://remote-db"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Database path must not be empty",
                             Database::Connect(""));
}

// What fails before any request is sent (tests/test_s3.py connects to a server).
TEST(Database, S3ConnectErrors) {
  for (const char* bad : {"s3://", "s3:///prefix", "s3://bucket//db", "s3://bucket/./db",
                          "s3://bucket/../db", "s3://bucket/db?region=x"}) {
    ASSERT_RAISES_WITH_MESSAGE(Invalid, std::string("Invalid database URI '") + bad,
                               Database::Connect(bad));
  }
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Unknown storage option 'secret'",
                             Database::Connect("s3://bucket/db", {{"secret", "x"}}));
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "allow_http",
      Database::Connect("s3://bucket/db", {{"endpoint", "http://127.0.0.1:9"}}));
}

// "db\0evil" created "db": the OS stops reading a path at its first NUL.
TEST(Database, ConnectRejectsNulBytes) {
  TempDir dir;
  const std::string uri = dir.path() + "/db" + std::string(1, '\0') + "evil";
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Invalid database URI '" + dir.path() +
                                 "/db\\0evil': it contains a NUL byte at position " +
                                 std::to_string(dir.path().size() + 3),
                             Database::Connect(uri));
  EXPECT_FALSE(std::filesystem::exists(dir.path() + "/db"));
  ASSERT_RAISES(Invalid, Database::Connect(std::string("memory://\0", 10)));
}

// "memory:/" created a directory named "memory:".
TEST(Database, ConnectRejectsMalformedUris) {
  TempDir dir;
  // Relative URIs resolve against the working directory: run in an empty one.
  struct RestoreCwd {
    std::filesystem::path old = std::filesystem::current_path();
    ~RestoreCwd() { std::filesystem::current_path(old); }
  } restore;
  std::filesystem::current_path(dir.path());
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Invalid database URI 'memory:/': expected memory://",
                             Database::Connect("memory:/"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Invalid database URI 'memory:': expected memory://",
                             Database::Connect("memory:"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Invalid database URI 'S3:bucket': expected s3://",
                             Database::Connect("S3:bucket"));
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Invalid database URI 'xyz://a/b': unknown scheme 'xyz'; use a directory path or "
      "memory://",
      Database::Connect("xyz://a/b"));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  // What stays valid: memory://, and directory names that merely hold a colon.
  ASSERT_OK_AND_ASSIGN(auto memory, Database::Connect("memory://"));
  EXPECT_TRUE(memory->in_memory());
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Invalid database URI 'file://db': file:// takes an "
                             "absolute path (file:///data/db)",
                             Database::Connect("file://db"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Invalid database URI 'file:db': expected file://",
                             Database::Connect("file:db"));
  ASSERT_OK_AND_ASSIGN(auto file, Database::Connect("file://" + dir.path() + "/f"));
  EXPECT_EQ(file->uri(), dir.path() + "/f");
  ASSERT_OK_AND_ASSIGN(auto colon, Database::Connect("run:3"));
  EXPECT_FALSE(colon->in_memory());
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() + "/run:3"));
  EXPECT_TRUE(std::filesystem::is_directory(dir.path() + "/f"));
}

}  // namespace
}  // namespace riffledb
