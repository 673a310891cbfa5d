// A fragment file that shrinks under a reader (a `cp` over a table) is an error naming
// the file, never a SIGBUS that kills the process (issue #10, item 5).
#include <unistd.h>

#include <string>

#include "riffledb/io/mapped_file.h"
#include "riffledb/storage/store.h"
#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using riffledb::testing::IdBatch;
using riffledb::testing::ReaderOf;
using riffledb::testing::TempDir;

TEST(Truncation, ShrunkFragmentIsAnErrorNotACrash) {
  TempDir dir;
  const std::string path = dir.path() + "/t.riffle";
  auto data = ReaderOf({IdBatch(0, 200'000)});
  auto table = Table::Create("t", std::make_shared<DirectoryStore>(path), data->schema(),
                             data.get())
                   .ValueOrDie();
  auto snapshot = table->snapshot().ValueOrDie();
  const std::vector<int64_t> last = {199'999};
  ASSERT_OK(snapshot->TakeOffsets(last, {}).status());
  const uint64_t faults_before = io::FaultedMappings();

  const std::string file = path + "/" + snapshot->manifest().fragments.at(0).path;
  ASSERT_EQ(::truncate(file.c_str(), 4096), 0);
  // The row's page is beyond the new end of the file: reading it faults.
  auto taken = snapshot->TakeOffsets(last, {});
  ASSERT_RAISES_WITH_MESSAGE(IOError, file, taken);
  ASSERT_RAISES_WITH_MESSAGE(IOError, "shrank while mapped", taken);
  EXPECT_GT(io::FaultedMappings(), faults_before);
  // Every later read of the snapshot reports it, even of rows still in the file.
  const std::vector<int64_t> first = {0};
  ASSERT_RAISES_WITH_MESSAGE(IOError, file, snapshot->TakeOffsets(first, {}));
  ScanOptions filtered;
  filtered.filter = testing::FilterOf(*snapshot, "id > 5");
  auto scan = snapshot->Scan(filtered).ValueOrDie();
  ASSERT_RAISES_WITH_MESSAGE(IOError, file, scan->ToTable());
  // Reopening finds the damaged file.
  auto reopened = Table::Open("t", std::make_shared<DirectoryStore>(path));
  ASSERT_TRUE(reopened.ok());
  ASSERT_RAISES_WITH_MESSAGE(Invalid, file, (*reopened)->snapshot());
}

// Arrays handed out zero-copy keep their map guarded after the table, its snapshot and
// the file object are gone: reading them after the file shrank gives zeros, not SIGBUS.
TEST(Truncation, ZeroCopyArraysOutliveTheirTableGuarded) {
  TempDir dir;
  const std::string path = dir.path() + "/t.riffle";
  std::shared_ptr<arrow::Table> rows;
  std::string file;
  {
    auto data = ReaderOf({IdBatch(0, 200'000)});
    auto table = Table::Create("t", std::make_shared<DirectoryStore>(path),
                               data->schema(), data.get())
                     .ValueOrDie();
    auto snapshot = table->snapshot().ValueOrDie();
    file = path + "/" + snapshot->manifest().fragments.at(0).path;
    rows = snapshot->Scan({}).ValueOrDie()->ToTable().ValueOrDie();  // zero-copy
  }
  const uint64_t faults_before = io::FaultedMappings();
  ASSERT_EQ(::truncate(file.c_str(), 4096), 0);
  auto column = rows->GetColumnByName("id");
  ASSERT_EQ(column->num_chunks(), 1);
  auto ids = std::static_pointer_cast<arrow::Int64Array>(column->chunk(0));
  ASSERT_EQ(ids->length(), 200'000);
  // The first values still lie in the file's first page; the rest are beyond its new
  // end and read as zeros instead of raising SIGBUS.
  EXPECT_EQ(ids->Value(1), 1);
  int64_t nonzero_tail = 0;
  for (int64_t i = 100'000; i < ids->length(); ++i) nonzero_tail += ids->Value(i) != 0;
  EXPECT_EQ(nonzero_tail, 0);
  EXPECT_GT(io::FaultedMappings(), faults_before);
}

}  // namespace
}  // namespace riffledb
