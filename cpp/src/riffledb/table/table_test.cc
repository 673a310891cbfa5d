#include "riffledb/table/table.h"

#include <arrow/compute/cast.h>
#include <gmock/gmock.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/arrow_init.h"

namespace riffledb {
namespace {

using riffledb::testing::CountingStore;
using riffledb::testing::DeleteWhere;
using riffledb::testing::FilterOf;
using riffledb::testing::IdBatch;
using riffledb::testing::Int64Column;
using riffledb::testing::ReaderOf;
using riffledb::testing::TakeColumns;
using riffledb::testing::TempDir;
using riffledb::testing::UInt64Column;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint64_t kFragment1 = uint64_t{1} << 32;

std::vector<int64_t> ScanIds(const Snapshot& snapshot, const ScanOptions& options = {}) {
  auto reader = snapshot.Scan(options).ValueOrDie();
  auto table = reader->ToTable().ValueOrDie();
  std::vector<int64_t> ids;
  if (table->num_rows() == 0) return ids;
  auto batch = table->CombineChunksToBatch().ValueOrDie();
  return Int64Column(*batch, "id");
}

class TableTest : public ::testing::TestWithParam<bool> {
 protected:
  std::shared_ptr<Store> MakeStore() {
    if (GetParam()) return std::make_shared<DirectoryStore>(dir_.path() + "/t.riffle");
    return std::make_shared<MemoryStore>("memory://t");
  }
  std::shared_ptr<Table> CreateWithIds(int64_t n) {
    auto store = MakeStore();
    auto reader = ReaderOf({IdBatch(0, n)});
    return Table::Create("t", store, reader->schema(), reader.get()).ValueOrDie();
  }
  TempDir dir_;
};

TEST_P(TableTest, CreateAndOpenRoundTrip) {
  auto store = MakeStore();
  auto reader = ReaderOf({IdBatch(0, 5)});
  ASSERT_OK_AND_ASSIGN(auto table,
                       Table::Create("t", store, reader->schema(), reader.get()));
  EXPECT_EQ(table->snapshot().ValueOrDie()->version(), 1u);
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 5);
  ASSERT_OK_AND_ASSIGN(auto reopened, Table::Open("t", store));
  EXPECT_THAT(ScanIds(*reopened->snapshot().ValueOrDie()), ElementsAre(0, 1, 2, 3, 4));
}

TEST_P(TableTest, CreateTwiceIsAlreadyExists) {
  auto store = MakeStore();
  auto reader = ReaderOf({IdBatch(0, 5)});
  ASSERT_OK(Table::Create("t", store, reader->schema(), reader.get()));
  auto again = ReaderOf({IdBatch(0, 5)});
  ASSERT_RAISES(AlreadyExists, Table::Create("t", store, again->schema(), again.get()));
}

TEST_P(TableTest, RowIdsAreFragmentAndRow) {
  auto table = CreateWithIds(3);
  auto more = ReaderOf({IdBatch(3, 2)});
  ASSERT_OK_AND_ASSIGN(auto version, table->Append(more.get()));
  EXPECT_EQ(version, 2u);
  auto snapshot = table->snapshot().ValueOrDie();
  ScanOptions options;
  options.projection =
      Projection::All(snapshot->schema(), /*with_row_id=*/true).ValueOrDie();
  auto batch = snapshot->Scan(options)
                   .ValueOrDie()
                   ->ToTable()
                   .ValueOrDie()
                   ->CombineChunksToBatch()
                   .ValueOrDie();
  EXPECT_THAT(UInt64Column(*batch, "_rowid"),
              ElementsAre(0u, 1u, 2u, kFragment1, kFragment1 + 1));
  EXPECT_EQ(batch->schema()->field(2)->name(), "_rowid");
}

TEST_P(TableTest, TakeOffsetsKeepsRequestedOrderAndDuplicates) {
  auto table = CreateWithIds(3);
  auto more = ReaderOf({IdBatch(3, 4)});
  ASSERT_OK(table->Append(more.get()));
  std::vector<int64_t> offsets = {6, 0, 3, 3, 2, 5};
  auto snapshot = table->snapshot().ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto batch,
                       snapshot->TakeOffsets(offsets, TakeColumns(*snapshot, {}, true)));
  EXPECT_THAT(Int64Column(*batch, "id"), ElementsAre(6, 0, 3, 3, 2, 5));
  EXPECT_THAT(
      UInt64Column(*batch, "_rowid"),
      ElementsAre(kFragment1 + 3, 0u, kFragment1, kFragment1, 2u, kFragment1 + 2));
}

TEST_P(TableTest, TakeOutOfRangeNamesTheOffset) {
  auto table = CreateWithIds(10);
  std::vector<int64_t> offsets = {1, 10};
  ASSERT_RAISES_WITH_MESSAGE(IndexError, "Offset 10 at position 1",
                             table->snapshot().ValueOrDie()->TakeOffsets(offsets, {}));
  std::vector<int64_t> negative = {-1};
  ASSERT_RAISES_WITH_MESSAGE(IndexError, "Offset -1",
                             table->snapshot().ValueOrDie()->TakeOffsets(negative, {}));
}

TEST_P(TableTest, TakeEmptyGivesEmptyBatchWithSchema) {
  auto table = CreateWithIds(10);
  ASSERT_OK_AND_ASSIGN(auto batch, table->snapshot().ValueOrDie()->TakeOffsets({}, {}));
  EXPECT_EQ(batch->num_rows(), 0);
  EXPECT_EQ(batch->num_columns(), 2);
}

TEST_P(TableTest, TakeSelectsColumns) {
  auto table = CreateWithIds(10);
  std::vector<int64_t> offsets = {4};
  auto snapshot = table->snapshot().ValueOrDie();
  ASSERT_OK_AND_ASSIGN(
      auto batch,
      snapshot->TakeOffsets(offsets, TakeColumns(*snapshot, {"label", "_rowid"})));
  EXPECT_EQ(batch->schema()->ToString(), "label: int32\n_rowid: uint64 not null");
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Column 'nope' does not exist; available columns: id, label",
      Projection::Columns(snapshot->schema(), std::vector<std::string>{"nope"}));
}

TEST_P(TableTest, DeleteSkipsRowsButKeepsRowIds) {
  auto table = CreateWithIds(10);
  ASSERT_OK_AND_ASSIGN(auto version, DeleteWhere(*table, "id % 3 = 1"));
  EXPECT_EQ(version, 2u);
  auto snapshot = table->snapshot().ValueOrDie();
  EXPECT_EQ(snapshot->num_rows(), 7);
  EXPECT_THAT(ScanIds(*snapshot), ElementsAre(0, 2, 3, 5, 6, 8, 9));
  std::vector<int64_t> offsets = {6, 1, 4};
  ASSERT_OK_AND_ASSIGN(auto batch,
                       snapshot->TakeOffsets(offsets, TakeColumns(*snapshot, {}, true)));
  EXPECT_THAT(Int64Column(*batch, "id"), ElementsAre(9, 2, 6));
  EXPECT_THAT(UInt64Column(*batch, "_rowid"), ElementsAre(9u, 2u, 6u));
  // Deleting more merges with the earlier deletions.
  ASSERT_OK(DeleteWhere(*table, "id >= 8"));
  EXPECT_THAT(ScanIds(*table->snapshot().ValueOrDie()), ElementsAre(0, 2, 3, 5, 6));
  std::vector<uint64_t> gone = {4};
  ASSERT_RAISES_WITH_MESSAGE(IndexError, "Row id 4 at position 0",
                             table->snapshot().ValueOrDie()->TakeRowIds(gone, {}));
}

TEST_P(TableTest, DeleteEverythingInAFragmentDropsIt) {
  auto table = CreateWithIds(3);
  auto more = ReaderOf({IdBatch(3, 3)});
  ASSERT_OK(table->Append(more.get()));
  ASSERT_OK(DeleteWhere(*table, "id < 3"));
  EXPECT_EQ(table->snapshot().ValueOrDie()->manifest().fragments.size(), 1u);
  EXPECT_THAT(ScanIds(*table->snapshot().ValueOrDie()), ElementsAre(3, 4, 5));
}

TEST_P(TableTest, ScanFilterOffsetLimitAndRowOffset) {
  auto table = CreateWithIds(20);
  auto snapshot = table->snapshot().ValueOrDie();
  ScanOptions options;
  options.filter = FilterOf(*snapshot, "label < 5");
  options.offset = 2;
  options.limit = 4;
  EXPECT_THAT(ScanIds(*snapshot, options), ElementsAre(2, 3, 4, 10));
  ScanOptions by_offset;
  by_offset.filter = FilterOf(*snapshot, "_rowoffset >= 18");
  EXPECT_THAT(ScanIds(*snapshot, by_offset), ElementsAre(18, 19));
  ASSERT_OK_AND_ASSIGN(auto count,
                       snapshot->CountRows(FilterOf(*snapshot, "id % 2 = 0")));
  EXPECT_EQ(count, 10);
  ASSERT_OK_AND_ASSIGN(auto all, snapshot->CountRows(nullptr));
  EXPECT_EQ(all, 20);
}

TEST_P(TableTest, ScanProjectionAndBatchSplitting) {
  auto table = CreateWithIds(10);
  auto snapshot = table->snapshot().ValueOrDie();
  ScanOptions options;
  const OutputColumn outputs[] = {{"double_id", "id * 2"}, {"l", "label"}};
  options.projection = Projection::Make(snapshot->schema(), outputs).ValueOrDie();
  options.max_batch_rows = 4;
  ASSERT_OK_AND_ASSIGN(auto reader, snapshot->Scan(options));
  std::vector<int64_t> sizes;
  std::shared_ptr<arrow::RecordBatch> batch;
  while (reader->ReadNext(&batch).ok() && batch) sizes.push_back(batch->num_rows());
  EXPECT_THAT(sizes, ElementsAre(4, 4, 2));
  EXPECT_EQ(reader->schema()->ToString(), "double_id: int64\nl: int32");
}

// The whole scan result as one batch.
std::shared_ptr<arrow::RecordBatch> ScanAll(const Snapshot& snapshot,
                                            const ScanOptions& options) {
  auto table = snapshot.Scan(options).ValueOrDie()->ToTable().ValueOrDie();
  return table->CombineChunksToBatch().ValueOrDie();
}

std::shared_ptr<const Projection> Outputs(const Snapshot& snapshot,
                                          std::vector<OutputColumn> outputs,
                                          bool with_row_id = false) {
  return Projection::Make(snapshot.schema(), outputs, with_row_id).ValueOrDie();
}

TEST_P(TableTest, ScanFiltersOnColumnsItDoesNotReturn) {
  auto table = CreateWithIds(12);
  auto snapshot = table->snapshot().ValueOrDie();
  ScanOptions options;
  options.filter = FilterOf(*snapshot, "label < 2 AND _rowid != 0");
  options.projection = Outputs(*snapshot, {{"x", "id * 10"}}, /*with_row_id=*/true);
  auto batch = ScanAll(*snapshot, options);
  EXPECT_EQ(batch->schema()->ToString(), "x: int64\n_rowid: uint64 not null");
  EXPECT_THAT(Int64Column(*batch, "x"), ElementsAre(10, 100, 110));
  EXPECT_THAT(UInt64Column(*batch, "_rowid"), ElementsAre(1u, 10u, 11u));
}

// Regression: an expression or filter that failed on the data said "divide by zero" and
// nothing about which one, nor which table.
TEST_P(TableTest, EvaluationErrorsNameTheExpressionAndTheTable) {
  auto table = CreateWithIds(4);
  auto snapshot = table->snapshot().ValueOrDie();
  const std::string where = " (scanning " + table->store()->location() + " at version 1)";
  ScanOptions options;
  options.filter = FilterOf(*snapshot, "10 / (id - id) > 1");
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Filter '10 / (id - id) > 1' failed: divide by zero" + where,
                             snapshot->Scan(options).ValueOrDie()->ToTable());
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Filter '10 / (id - id) > 1' failed: divide by zero" + where,
                             snapshot->CountRows(options.filter));
  options.filter = nullptr;
  options.projection = Outputs(*snapshot, {{"bad", "id / (id - id)"}});
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Column 'bad' = 'id / (id - id)' failed: divide by zero" + where,
      snapshot->Scan(options).ValueOrDie()->ToTable());
  TakeOptions take;
  take.projection = options.projection;
  const int64_t offsets[] = {1};
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Column 'bad' = 'id / (id - id)' failed: divide by zero "
                             "(taking from " +
                                 table->store()->location() + " at version 1)",
                             snapshot->TakeOffsets(offsets, take));
}

TEST_P(TableTest, ScanOfALiteralCountsRows) {
  auto table = CreateWithIds(7);
  auto snapshot = table->snapshot().ValueOrDie();
  ScanOptions options;
  options.filter = FilterOf(*snapshot, "id >= 3");
  options.projection = Outputs(*snapshot, {{"one", "1"}});
  auto batch = ScanAll(*snapshot, options);
  EXPECT_EQ(batch->num_rows(), 4);
  EXPECT_THAT(Int64Column(*batch, "one"), ElementsAre(1, 1, 1, 1));
}

TEST_P(TableTest, ScanRowOffsetsSkipDeletedRowsAcrossFragments) {
  auto table = CreateWithIds(4);
  auto more = ReaderOf({IdBatch(4, 4)});
  ASSERT_OK(table->Append(more.get()));
  ASSERT_OK(DeleteWhere(*table, "id = 1 OR id = 5"));
  auto snapshot = table->snapshot().ValueOrDie();
  ScanOptions options;
  options.filter = FilterOf(*snapshot, "_rowoffset % 2 = 0");
  options.projection = Outputs(*snapshot, {{"id", "id"}, {"at", "_rowoffset"}});
  auto batch = ScanAll(*snapshot, options);
  EXPECT_THAT(Int64Column(*batch, "id"), ElementsAre(0, 3, 6));
  EXPECT_THAT(UInt64Column(*batch, "at"), ElementsAre(0u, 2u, 4u));
  ASSERT_OK_AND_ASSIGN(auto count,
                       snapshot->CountRows(FilterOf(*snapshot, "_rowoffset >= 4")));
  EXPECT_EQ(count, 2);
}

TEST_P(TableTest, TakesEvaluateProjectionsAndRowOffsets) {
  auto table = CreateWithIds(4);
  auto more = ReaderOf({IdBatch(4, 4)});
  ASSERT_OK(table->Append(more.get()));
  ASSERT_OK(DeleteWhere(*table, "id = 2"));
  auto snapshot = table->snapshot().ValueOrDie();
  TakeOptions options{
      Outputs(*snapshot, {{"at", "_rowoffset"}, {"next", "id + 1"}, {"rid", "_rowid"}})};
  std::vector<uint64_t> ids = {kFragment1 + 2, 3, 0};
  ASSERT_OK_AND_ASSIGN(auto by_id, snapshot->TakeRowIds(ids, options));
  EXPECT_EQ(by_id->schema()->ToString(),
            "at: uint64 not null\nnext: int64\nrid: uint64 not null");
  EXPECT_THAT(UInt64Column(*by_id, "at"), ElementsAre(5u, 2u, 0u));
  EXPECT_THAT(Int64Column(*by_id, "next"), ElementsAre(7, 4, 1));
  EXPECT_THAT(UInt64Column(*by_id, "rid"), ElementsAre(kFragment1 + 2, 3u, 0u));
  std::vector<int64_t> offsets = {5, 2, 0};
  ASSERT_OK_AND_ASSIGN(auto by_offset, snapshot->TakeOffsets(offsets, options));
  EXPECT_TRUE(by_offset->Equals(*by_id));
}

TEST_P(TableTest, ReadsRejectWhatWasBoundToAnotherSchema) {
  auto table = CreateWithIds(3);
  auto snapshot = table->snapshot().ValueOrDie();
  auto other = arrow::schema({arrow::field("id", arrow::int32())});
  ScanOptions scan;
  scan.projection = Projection::All(other).ValueOrDie();
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "The scan projection was bound to another schema",
                             snapshot->Scan(scan));
  ScanOptions filtered;
  filtered.filter = Filter::Make(other, "id > 1").ValueOrDie();
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "The scan filter was bound to another schema",
                             snapshot->Scan(filtered));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "The scan filter was bound to another schema",
                             snapshot->CountRows(filtered.filter));
  std::vector<int64_t> offsets = {0};
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "The take projection was bound to another schema",
                             snapshot->TakeOffsets(offsets, {scan.projection}));
}

// A delete's filter is bound again to the version each commit attempt builds on: a schema
// change by another writer (here an overwrite) does not make it read the wrong columns.
TEST_P(TableTest, DeleteRebindsItsFilterToTheNewestSchema) {
  auto table = CreateWithIds(5);
  auto filter = FilterOf(*table->snapshot().ValueOrDie(), "id >= 3");
  auto schema = arrow::schema(
      {arrow::field("other", arrow::int32()), arrow::field("id", arrow::int64())});
  auto batch = arrow::RecordBatch::Make(
      schema, 4,
      {arrow::json::ArrayFromJSONString(arrow::int32(), "[7, 8, 9, 10]").ValueOrDie(),
       arrow::json::ArrayFromJSONString(arrow::int64(), "[1, 2, 3, 4]").ValueOrDie()});
  auto data = ReaderOf({batch});
  ASSERT_OK(table->Overwrite(data.get()));
  ASSERT_OK(table->Delete(*filter));
  EXPECT_THAT(ScanIds(*table->snapshot().ValueOrDie()), ElementsAre(1, 2));
}

TEST_P(TableTest, FilterErrors) {
  auto table = CreateWithIds(10);
  auto schema = table->snapshot().ValueOrDie()->schema();
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Column 'nope' does not exist; available columns: id, label",
                             Filter::Make(schema, "nope > 1"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "position", Filter::Make(schema, "id >"));
}

TEST_P(TableTest, SchemaMismatchWritesNothing) {
  auto table = CreateWithIds(5);
  auto wrong = arrow::RecordBatch::Make(
      arrow::schema({arrow::field("id", arrow::utf8())}), 1,
      {arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["x"])").ValueOrDie()});
  auto reader = ReaderOf({wrong});
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Cannot cast column 'id' of the data (string) to int64 for table 't' without loss: "
      "value x at row 0",
      table->Append(reader.get()));
  EXPECT_EQ(table->snapshot().ValueOrDie()->version(), 1u);
  ASSERT_OK_AND_ASSIGN(auto versions, table->ListVersions());
  EXPECT_EQ(versions.size(), 1u);
}

// Ten batches whose fifth holds a value that does not fit `label` (int32).
std::shared_ptr<arrow::RecordBatchReader> StreamFailingAtBatchFive() {
  auto schema = arrow::schema(
      {arrow::field("label", arrow::int64()), arrow::field("id", arrow::int64())});
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int64_t b = 0; b < 10; ++b) {
    arrow::Int64Builder ids, labels;
    for (int64_t i = 0; i < 1000; ++i) {
      (void)ids.Append(100 + b * 1000 + i);
      (void)labels.Append(b == 4 && i == 7 ? int64_t{1} << 40 : i % 10);
    }
    batches.push_back(arrow::RecordBatch::Make(
        schema, 1000, {labels.Finish().ValueOrDie(), ids.Finish().ValueOrDie()}));
  }
  return ReaderOf(batches);
}

std::set<std::string> FilesUnder(const std::string& dir) {
  std::set<std::string> files;
  if (!std::filesystem::exists(dir)) return files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    files.insert(entry.path().string());
  }
  return files;
}

TEST_P(TableTest, CastErrorMidStreamWritesNothing) {
  // On disk, rows of the batches before the bad one are already in a fragment file when
  // it arrives: that file must go too.
  auto table = CreateWithIds(5);
  const auto files_before = FilesUnder(dir_.path());
  auto reader = StreamFailingAtBatchFive();
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Cannot cast column 'label' of the data (int64) to int32 for "
      "table 't' without loss: value 1099511627776 at row 4007",
      table->Append(reader.get()));
  EXPECT_EQ(table->version(), 1u);
  ASSERT_OK_AND_ASSIGN(auto versions, table->ListVersions());
  EXPECT_EQ(versions.size(), 1u);
  EXPECT_THAT(ScanIds(*table->snapshot().ValueOrDie()), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(FilesUnder(dir_.path()), files_before);
}

TEST_P(TableTest, AppendReordersAndCastsByName) {
  auto table = CreateWithIds(2);
  auto reader = StreamFailingAtBatchFive();
  std::shared_ptr<arrow::RecordBatch> first;
  ASSERT_OK(reader->ReadNext(&first));  // a batch with the good values only
  auto only_first = ReaderOf({first});
  ASSERT_OK_AND_ASSIGN(auto version, table->Append(only_first.get()));
  EXPECT_EQ(version, 2u);
  auto snapshot = table->snapshot().ValueOrDie();
  EXPECT_EQ(snapshot->schema()->ToString(), "id: int64\nlabel: int32");
  EXPECT_EQ(snapshot->num_rows(), 1002);
  auto ids = ScanIds(*snapshot);
  EXPECT_EQ(ids[2], 100);
  EXPECT_EQ(ids.back(), 1099);
}

TEST_P(TableTest, CreateWithoutSchemaOrDataIsInvalid) {
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Cannot create table 't': pass data, a schema",
                             Table::Create("t", MakeStore(), nullptr, nullptr));
}

TEST_P(TableTest, OpenAtAVersion) {
  auto table = CreateWithIds(3);
  auto more = ReaderOf({IdBatch(3, 2)});
  ASSERT_OK(table->Append(more.get()));
  ASSERT_OK_AND_ASSIGN(auto old, Table::Open("t", table->store(), 1));
  EXPECT_EQ(old->version(), 1u);
  EXPECT_TRUE(old->detached());
  EXPECT_THAT(ScanIds(*old->snapshot().ValueOrDie()), ElementsAre(0, 1, 2));
  ASSERT_OK_AND_ASSIGN(auto latest, Table::Open("t", table->store(), 2));
  EXPECT_FALSE(latest->detached());
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Version 3 of table 't' does not exist; versions: 1..2",
                             Table::Open("t", table->store(), 3));
}

TEST_P(TableTest, CheckoutReadsOldVersionAndRefusesWrites) {
  auto table = CreateWithIds(5);
  auto more = ReaderOf({IdBatch(5, 5)});
  ASSERT_OK(table->Append(more.get()));
  ASSERT_OK(table->Checkout(1));
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 5);
  auto again = ReaderOf({IdBatch(10, 1)});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "checkout_latest", table->Append(again.get()));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Version 7", table->Checkout(7));
  ASSERT_OK(table->CheckoutLatest());
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 10);
}

TEST_P(TableTest, SnapshotIsUnchangedByLaterWrites) {
  auto table = CreateWithIds(5);
  auto pinned = table->snapshot().ValueOrDie();
  auto more = ReaderOf({IdBatch(5, 5)});
  ASSERT_OK(table->Append(more.get()));
  ASSERT_OK(DeleteWhere(*table, "id = 0"));
  EXPECT_THAT(ScanIds(*pinned), ElementsAre(0, 1, 2, 3, 4));
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 9);
}

TEST_P(TableTest, OverwriteReplacesRowsAndSchema) {
  auto table = CreateWithIds(5);
  auto other = arrow::RecordBatch::Make(
      arrow::schema({arrow::field("name", arrow::utf8())}), 2,
      {arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["a", "b"])").ValueOrDie()});
  auto reader = ReaderOf({other});
  ASSERT_OK_AND_ASSIGN(auto version, table->Overwrite(reader.get()));
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(table->snapshot().ValueOrDie()->schema()->ToString(), "name: string");
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 2);
}

TEST_P(TableTest, ConcurrentAppendsFromThreadsLoseNothing) {
  auto table = CreateWithIds(0 + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        auto reader = ReaderOf({IdBatch(1000 * (t + 1) + 10 * i, 10)});
        ASSERT_OK(table->Append(reader.get()));
      }
    });
  }
  for (auto& thread : threads) thread.join();
  ASSERT_OK(table->CheckoutLatest());
  auto ids = ScanIds(*table->snapshot().ValueOrDie());
  EXPECT_EQ(ids.size(), 401u);
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 401u);
}

// Commits through one handle may finish out of order (one commits version 5, another 6
// and moves the handle first): the handle never goes back, and ends at the newest.
TEST_P(TableTest, ConcurrentAppendsFromThreadsNeverMoveTheHandleBack) {
  auto table = CreateWithIds(1);
  std::atomic<bool> done{false};
  std::atomic<int> backwards{0};
  std::thread watcher([&] {
    uint64_t seen = 0;
    while (!done.load()) {
      const uint64_t now = table->version();
      if (now < seen) ++backwards;
      seen = std::max(seen, now);
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        auto reader = ReaderOf({IdBatch(1000 * (t + 1) + i, 1)});
        ASSERT_OK(table->Append(reader.get()));
        ASSERT_OK(table->CheckoutLatest());
      }
    });
  }
  for (auto& thread : threads) thread.join();
  done = true;
  watcher.join();
  EXPECT_EQ(backwards.load(), 0);
  EXPECT_EQ(table->version(), 201u);
}

// A handle's appends move it to each new version while other threads read through it:
// every snapshot a reader gets is one whole version (its rows are exactly the first
// `version` ids), and a reader never sees the versions go backwards.
TEST_P(TableTest, ConcurrentReadersDuringAppendsSeeWholeVersions) {
  auto table = CreateWithIds(1);
  constexpr int kAppends = 60;
  std::atomic<bool> done{false};
  std::vector<std::thread> readers;
  std::vector<int> bad(2, 0), seen(2, 0);
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r] {
      uint64_t last = 0;
      while (!done.load()) {
        auto snapshot = table->snapshot().ValueOrDie();
        const uint64_t version = snapshot->version();
        bad[r] += version < last || snapshot->num_rows() != static_cast<int64_t>(version);
        if (++seen[r] % 8 == 0) {
          auto ids = ScanIds(*snapshot);
          for (size_t i = 0; i < ids.size(); ++i)
            bad[r] += ids[i] != static_cast<int64_t>(i);
        }
        last = version;
      }
    });
  }
  for (int64_t i = 1; i <= kAppends; ++i) {
    auto reader = ReaderOf({IdBatch(i, 1)});
    ASSERT_OK(table->Append(reader.get()));
  }
  done = true;
  for (auto& thread : readers) thread.join();
  EXPECT_THAT(bad, ElementsAre(0, 0));
  auto latest = table->snapshot().ValueOrDie();
  EXPECT_EQ(latest->version(), kAppends + 1u);
  EXPECT_EQ(ScanIds(*latest).size(), kAppends + 1u);
}

INSTANTIATE_TEST_SUITE_P(Stores, TableTest, ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "Directory" : "Memory";
                         });

TEST(TableDirectory, ConcurrentAppendsFromProcessesLoseNothing) {
  TempDir dir;
  const std::string path = dir.path() + "/t.riffle";
  {
    auto reader = ReaderOf({IdBatch(0, 1)});
    ASSERT_OK(Table::Create("t", std::make_shared<DirectoryStore>(path), reader->schema(),
                            reader.get()));
  }
  std::vector<pid_t> children;
  for (int p = 0; p < 3; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto table = Table::Open("t", std::make_shared<DirectoryStore>(path)).ValueOrDie();
      for (int i = 0; i < 20; ++i) {
        auto reader = ReaderOf({IdBatch(1000 * (p + 1) + 10 * i, 10)});
        if (!table->Append(reader.get()).ok()) _exit(1);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  ASSERT_OK_AND_ASSIGN(auto table,
                       Table::Open("t", std::make_shared<DirectoryStore>(path)));
  auto ids = ScanIds(*table->snapshot().ValueOrDie());
  EXPECT_EQ(ids.size(), 601u);
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 601u);
  EXPECT_EQ(table->snapshot().ValueOrDie()->version(), 61u);
}

TEST(TableMemory, StreamFailingAfterAWholeFragmentKeepsNoFragment) {
  ASSERT_OK(EnsureArrowComputeInitialized());
  auto store = std::make_shared<MemoryStore>("memory://t");
  auto first = ReaderOf({IdBatch(0, 1)});
  ASSERT_OK_AND_ASSIGN(auto table,
                       Table::Create("t", store, first->schema(), first.get()));
  // One whole fragment (2^20 rows, the default fragment size) is stored as "data/1"
  // before the second batch fails its cast.
  auto big = IdBatch(0, int64_t{1} << 20);
  auto bad = arrow::RecordBatch::Make(
      big->schema()->SetField(1, arrow::field("label", arrow::int64())).ValueOrDie(), 1,
      {arrow::json::ArrayFromJSONString(arrow::int64(), "[1]").ValueOrDie(),
       arrow::json::ArrayFromJSONString(arrow::int64(), "[4294967296]").ValueOrDie()});
  auto good_as_int64 = arrow::RecordBatch::Make(
      bad->schema(), big->num_rows(),
      {big->column(0),
       arrow::compute::Cast(*big->column(1), arrow::int64()).ValueOrDie()});
  auto reader = ReaderOf({good_as_int64, bad});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "value 4294967296 at row 1048576",
                             table->Append(reader.get()));
  format::FragmentInfo orphan;
  orphan.path = "data/1";
  orphan.physical_rows = int64_t{1} << 20;
  ASSERT_RAISES(IOError, store->OpenFragment(orphan, bad->schema()));
}

// Writes that read nothing open no snapshot (its layout costs O(fragments)): the first
// read after them opens the newest version, sharing what the one before had opened.
TEST(TableDirectory, AppendsOpenNothingUntilARead) {
  TempDir dir;
  auto store = std::make_shared<CountingStore>(dir.path() + "/t.riffle");
  auto first = ReaderOf({IdBatch(0, 1)});
  auto table = Table::Create("t", store, first->schema(), first.get()).ValueOrDie();
  EXPECT_EQ(store->opened.load(), 1);
  for (int64_t i = 1; i <= 5; ++i) {
    auto row = ReaderOf({IdBatch(i, 1)});
    ASSERT_OK_AND_ASSIGN(uint64_t version, table->Append(row.get()));
    EXPECT_EQ(table->version(), version);
  }
  EXPECT_EQ(store->opened.load(), 1);
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
  EXPECT_EQ(snapshot->version(), 6u);
  EXPECT_THAT(ScanIds(*snapshot), ElementsAre(0, 1, 2, 3, 4, 5));
  EXPECT_EQ(store->opened.load(), 6);  // the five new fragments, once each
  ASSERT_OK_AND_ASSIGN(auto again, table->snapshot());
  EXPECT_EQ(again, snapshot);
  EXPECT_EQ(store->opened.load(), 6);
  // A checkout moves the handle away from the unopened version for good.
  auto row = ReaderOf({IdBatch(6, 1)});
  ASSERT_OK(table->Append(row.get()));
  ASSERT_OK(table->Checkout(2));
  EXPECT_EQ(table->snapshot().ValueOrDie()->version(), 2u);
  EXPECT_EQ(table->version(), 2u);
}

TEST(TableDirectory, ReservedColumnNamesAreRejected) {
  TempDir dir;
  auto schema = arrow::schema({arrow::field("_rowid", arrow::int64())});
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "reserved",
      Table::Create("t", std::make_shared<DirectoryStore>(dir.path() + "/t.riffle"),
                    schema, nullptr));
}

}  // namespace
}  // namespace riffledb
