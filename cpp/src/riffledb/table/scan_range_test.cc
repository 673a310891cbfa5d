// Scans of a row range (ScanOptions::range_begin / range_end): what parallel readers
// split one scan into.
#include <gmock/gmock.h>

#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using riffledb::testing::CountingStore;
using riffledb::testing::DeleteWhere;
using riffledb::testing::FilterOf;
using riffledb::testing::IdBatch;
using riffledb::testing::Int64Column;
using riffledb::testing::ReaderOf;
using riffledb::testing::TempDir;
using riffledb::testing::UInt64Column;
using ::testing::ElementsAreArray;

class ScanRangeTest : public ::testing::Test {
 protected:
  // 100 fragments of 10 rows (more than Snapshot::kEagerFragments, so they open
  // lazily), ids 0..999, then the rows with id % 7 == 3 deleted.
  void SetUp() override {
    store_ = std::make_shared<CountingStore>(dir_.path() + "/t.riffle");
    auto first = ReaderOf({IdBatch(0, 10)});
    table_ = Table::Create("t", store_, first->schema(), first.get()).ValueOrDie();
    for (int i = 1; i < 100; ++i) {
      ASSERT_OK(table_->Append(ReaderOf({IdBatch(10 * i, 10)}).get()));
    }
    ASSERT_OK(DeleteWhere(*table_, "id % 7 = 3"));
    for (int64_t id = 0; id < 1000; ++id) {
      if (id % 7 != 3) live_.push_back(id);
    }
  }

  // The ids, row offsets and row ids of a range scan.
  struct Scanned {
    std::vector<int64_t> ids;
    std::vector<uint64_t> offsets;
  };
  Scanned Scan(const Snapshot& snapshot, ScanOptions options) {
    const std::vector<std::string> columns = {"id", "_rowoffset"};
    options.projection =
        Projection::Columns(snapshot.schema(), columns, false).ValueOrDie();
    auto rows = snapshot.Scan(options).ValueOrDie()->ToTable().ValueOrDie();
    if (rows->num_rows() == 0) return {};
    auto batch = rows->CombineChunksToBatch().ValueOrDie();
    return {Int64Column(*batch, "id"), UInt64Column(*batch, "_rowoffset")};
  }

  std::vector<int64_t> Live(int64_t begin, int64_t end) const {
    return {live_.begin() + begin, live_.begin() + end};
  }

  TempDir dir_;
  std::shared_ptr<CountingStore> store_;
  std::shared_ptr<Table> table_;
  std::vector<int64_t> live_;  // ids of the live rows, in scan order
};

TEST_F(ScanRangeTest, RangesPartitionTheScan) {
  ASSERT_OK_AND_ASSIGN(auto snapshot, table_->snapshot());
  const int64_t n = snapshot->num_rows();
  ASSERT_EQ(n, static_cast<int64_t>(live_.size()));
  std::vector<int64_t> all;
  for (int64_t begin :
       {int64_t{0}, int64_t{1}, int64_t{8}, int64_t{9}, int64_t{400}, n - 1}) {
    for (int64_t end : {begin, begin + 1, begin + 17, n}) {
      if (end > n) continue;
      ScanOptions options;
      options.range_begin = begin;
      options.range_end = end;
      auto scanned = Scan(*snapshot, options);
      EXPECT_THAT(scanned.ids, ElementsAreArray(Live(begin, end)))
          << "[" << begin << ", " << end << ")";
      std::vector<uint64_t> offsets;
      for (int64_t o = begin; o < end; ++o) offsets.push_back(o);
      EXPECT_THAT(scanned.offsets, ElementsAreArray(offsets));
    }
  }
  // Past the end, and no end.
  ScanOptions options;
  options.range_begin = n + 5;
  EXPECT_TRUE(Scan(*snapshot, options).ids.empty());
  options.range_begin = n - 3;
  EXPECT_THAT(Scan(*snapshot, options).ids, ElementsAreArray(Live(n - 3, n)));
  options.range_begin = 2;
  options.range_end = n + 100;
  EXPECT_THAT(Scan(*snapshot, options).ids, ElementsAreArray(Live(2, n)));
}

TEST_F(ScanRangeTest, FilterOffsetAndLimitApplyWithinTheRange) {
  ASSERT_OK_AND_ASSIGN(auto snapshot, table_->snapshot());
  ScanOptions options;
  options.range_begin = 100;
  options.range_end = 300;
  options.filter = FilterOf(*snapshot, "id % 2 = 0");
  std::vector<int64_t> expected;
  for (int64_t id : Live(100, 300)) {
    if (id % 2 == 0) expected.push_back(id);
  }
  EXPECT_THAT(Scan(*snapshot, options).ids, ElementsAreArray(expected));
  ASSERT_OK_AND_ASSIGN(int64_t counted, [&]() -> arrow::Result<int64_t> {
    ScanOptions count = options;
    ARROW_ASSIGN_OR_RAISE(auto reader, snapshot->Scan(count));
    ARROW_ASSIGN_OR_RAISE(auto rows, reader->ToTable());
    return rows->num_rows();
  }());
  EXPECT_EQ(counted, static_cast<int64_t>(expected.size()));
  options.offset = 3;
  options.limit = 5;
  EXPECT_THAT(
      Scan(*snapshot, options).ids,
      ElementsAreArray(std::vector<int64_t>(expected.begin() + 3, expected.begin() + 8)));
}

TEST_F(ScanRangeTest, FragmentsOutsideTheRangeAreNotOpened) {
  // A fresh handle: nothing opened yet.
  ASSERT_OK_AND_ASSIGN(auto table, Table::Open("t", store_));
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
  const int before = store_->opened.load();
  ScanOptions options;
  options.range_begin = 500;
  options.range_end = 520;
  EXPECT_THAT(Scan(*snapshot, options).ids, ElementsAreArray(Live(500, 520)));
  // The rows of 20 live offsets span at most 4 fragments of 8 or 9 live rows.
  EXPECT_LE(store_->opened.load() - before, 4);
}

// What the docs say of a range on a small version: at most kEagerFragments fragments
// are all opened with the snapshot, so a range saves no opening there.
TEST(ScanRange, ASmallVersionOpensEveryFragmentWithItsSnapshot) {
  TempDir dir;
  auto store = std::make_shared<CountingStore>(dir.path() + "/t.riffle");
  auto first = ReaderOf({IdBatch(0, 10)});
  auto table = Table::Create("t", store, first->schema(), first.get()).ValueOrDie();
  for (int i = 1; i < 10; ++i) {
    ASSERT_OK(table->Append(ReaderOf({IdBatch(10 * i, 10)}).get()));
  }
  static_assert(10 <= Snapshot::kEagerFragments);
  auto fresh = std::make_shared<CountingStore>(dir.path() + "/t.riffle");
  ASSERT_OK_AND_ASSIGN(auto reopened, Table::Open("t", fresh));
  ASSERT_OK_AND_ASSIGN(auto snapshot, reopened->snapshot());
  EXPECT_EQ(fresh->opened.load(), 10);
  ScanOptions options;
  options.range_begin = 95;
  options.range_end = 100;
  auto rows = snapshot->Scan(options).ValueOrDie()->ToTable().ValueOrDie();
  EXPECT_EQ(rows->num_rows(), 5);
  EXPECT_EQ(fresh->opened.load(), 10);  // nothing more, and nothing was saved
}

TEST_F(ScanRangeTest, BadRangesAreInvalid) {
  ASSERT_OK_AND_ASSIGN(auto snapshot, table_->snapshot());
  ScanOptions options;
  options.range_begin = -1;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Scan range must satisfy 0 <= begin <= end",
                             snapshot->Scan(options));
  options.range_begin = 5;
  options.range_end = 4;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "got [5, 4)", snapshot->Scan(options));
}

}  // namespace
}  // namespace riffledb
