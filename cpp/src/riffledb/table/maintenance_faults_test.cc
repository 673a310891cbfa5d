// Faults injected at every mutating operation of cleanup and of compaction (issue #10,
// items 2 and 7): after each, every remaining version reads whole (no file a remaining
// manifest references was deleted), the newest version's rows are unchanged, and a
// second run without faults finishes the job.
#include <gmock/gmock.h>

#include <chrono>
#include <string>
#include <vector>

#include "riffledb/format/table_dir.h"
#include "riffledb/io/fault_injection.h"
#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using riffledb::testing::Ids;
using riffledb::testing::NowMs;

using io::Fault;
using testing::DeleteWhere;
using testing::IdBatch;
using testing::Int64Column;
using testing::ReaderOf;
using testing::TempDir;

// Versions 1-5: create, append, two deletes (the second replaces a deletion file of the
// first), append; returns the newest version's ids.
std::vector<int64_t> MakeTable(const std::string& path) {
  auto store = std::make_shared<DirectoryStore>(path);
  auto first = ReaderOf({IdBatch(0, 5)});
  auto table = Table::Create("t", store, first->schema(), first.get()).ValueOrDie();
  auto more = ReaderOf({IdBatch(5, 5)});
  EXPECT_OK(table->Append(more.get()).status());
  EXPECT_OK(DeleteWhere(*table, "id % 4 = 1").status());
  EXPECT_OK(DeleteWhere(*table, "id = 6").status());
  auto last = ReaderOf({IdBatch(10, 5)});
  EXPECT_OK(table->Append(last.get()).status());
  return Ids(*table);
}

void ExpectEveryVersionReads(const std::string& path, const std::vector<int64_t>& newest,
                             const std::string& context) {
  auto store = std::make_shared<DirectoryStore>(path);
  auto versions = store->ListVersions().ValueOrDie();
  ASSERT_FALSE(versions.empty()) << context;
  for (uint64_t version : versions) {
    auto table = Table::Open("t", store, version);
    ASSERT_TRUE(table.ok()) << context << ": version " << version << ": "
                            << table.status().ToString();
    auto reader = (*table)->snapshot().ValueOrDie()->Scan({});
    ASSERT_TRUE(reader.ok()) << context << ": " << reader.status().ToString();
    auto all = (*reader)->ToTable();
    ASSERT_TRUE(all.ok()) << context << ": version " << version << ": "
                          << all.status().ToString();
  }
  EXPECT_EQ(Ids(*Table::Open("t", store).ValueOrDie()), newest) << context;
}

class MaintenanceFaults : public ::testing::TestWithParam<Fault> {};

INSTANTIATE_TEST_SUITE_P(Kinds, MaintenanceFaults,
                         ::testing::Values(Fault::kError, Fault::kAfter, Fault::kCrash),
                         [](const auto& info) {
                           switch (info.param) {
                             case Fault::kError:
                               return std::string("Error");
                             case Fault::kAfter:
                               return std::string("After");
                             default:
                               return std::string("Crash");
                           }
                         });

TEST_P(MaintenanceFaults, CleanupNeverDeletesAReferencedFile) {
  CleanupOptions options;
  options.older_than_ms = 0;
  int64_t operations = 0;
  {
    TempDir dir;
    const std::string path = dir.path() + "/t.riffle";
    MakeTable(path);
    auto fs = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
    auto table =
        Table::Open("t", std::make_shared<DirectoryStore>(path, fs)).ValueOrDie();
    options.now_ms = NowMs() + 1000;
    ASSERT_OK_AND_ASSIGN(auto stats, table->CleanupOldVersions(options));
    EXPECT_EQ(stats.old_versions, 4);
    EXPECT_EQ(stats.files_removed, 1);  // the deletion file the second delete replaced
    operations = fs->operations();
  }
  ASSERT_GT(operations, 0);
  for (int64_t n = 1; n <= operations; ++n) {
    TempDir dir;
    const std::string path = dir.path() + "/t.riffle";
    const auto newest = MakeTable(path);
    auto fs = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
    auto table =
        Table::Open("t", std::make_shared<DirectoryStore>(path, fs)).ValueOrDie();
    options.now_ms = NowMs() + 1000;
    fs->FailAt(n, GetParam());
    auto result = table->CleanupOldVersions(options);
    const std::string context = std::string(io::FaultName(GetParam())) +
                                " at operation " + std::to_string(n) + " of " +
                                std::to_string(operations);
    EXPECT_TRUE(fs->fired()) << context;
    EXPECT_FALSE(result.ok()) << context;
    ExpectEveryVersionReads(path, newest, context);
    fs->Disarm();
    ASSERT_OK(table->CleanupOldVersions(options).status());
    EXPECT_EQ(std::make_shared<DirectoryStore>(path)->ListVersions()->size(), 1u)
        << context;
    ExpectEveryVersionReads(path, newest, context);
  }
}

TEST_P(MaintenanceFaults, CompactionIsAllOrNothing) {
  int64_t operations = 0;
  {
    TempDir dir;
    const std::string path = dir.path() + "/t.riffle";
    MakeTable(path);
    auto fs = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
    auto table =
        Table::Open("t", std::make_shared<DirectoryStore>(path, fs)).ValueOrDie();
    ASSERT_OK_AND_ASSIGN(auto stats, table->Compact());
    EXPECT_EQ(stats.fragments_removed, 3);
    operations = fs->operations();
  }
  ASSERT_GT(operations, 0);
  for (int64_t n = 1; n <= operations; ++n) {
    TempDir dir;
    const std::string path = dir.path() + "/t.riffle";
    const auto newest = MakeTable(path);
    auto fs = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
    auto table =
        Table::Open("t", std::make_shared<DirectoryStore>(path, fs)).ValueOrDie();
    fs->FailAt(n, GetParam());
    auto result = table->Compact();
    const std::string context = std::string(io::FaultName(GetParam())) +
                                " at operation " + std::to_string(n) + " of " +
                                std::to_string(operations);
    EXPECT_TRUE(fs->fired()) << context;
    fs->Disarm();
    ExpectEveryVersionReads(path, newest, context);
    const auto versions = std::make_shared<DirectoryStore>(path)->ListVersions();
    // The new version is there exactly when Compact says so (a commit whose outcome
    // was unknown is read back).
    EXPECT_EQ(versions->size(), result.ok() ? 6u : 5u) << context;
  }
}

}  // namespace
}  // namespace riffledb
