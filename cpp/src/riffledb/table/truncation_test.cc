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

}  // namespace
}  // namespace riffledb
