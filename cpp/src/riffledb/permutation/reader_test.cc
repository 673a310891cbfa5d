#include "riffledb/permutation/reader.h"

#include <arrow/api.h>
#include <gmock/gmock.h>

#include <numeric>
#include <random>

#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using riffledb::testing::IdBatch;
using riffledb::testing::Int64Column;
using riffledb::testing::ReaderOf;
using riffledb::testing::UInt64Column;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

constexpr uint64_t kFragment1 = uint64_t{1} << 32;

std::shared_ptr<Table> MakeTable(
    const std::string& name, std::vector<std::shared_ptr<arrow::RecordBatch>> batches) {
  auto store = std::make_shared<MemoryStore>("memory://" + name);
  auto reader = ReaderOf(batches);
  return Table::Create(name, store, reader->schema(), reader.get()).ValueOrDie();
}

// {id int64 = start.., label int32 = id % 10}.
std::shared_ptr<Table> BaseTable(int64_t n) { return MakeTable("base", {IdBatch(0, n)}); }

// A permutation table: row_id/split_id pairs, stored in batches of `chunk` rows (so that
// a split does not start on a batch boundary).
std::shared_ptr<Table> PermTable(const std::vector<uint64_t>& row_ids,
                                 const std::vector<uint64_t>& split_ids,
                                 int64_t chunk = 64) {
  auto schema = arrow::schema({arrow::field("row_id", arrow::uint64()),
                               arrow::field("split_id", arrow::uint64())});
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (size_t at = 0; at < row_ids.size(); at += chunk) {
    const size_t end = std::min(row_ids.size(), at + chunk);
    arrow::UInt64Builder rows, splits;
    for (size_t i = at; i < end; ++i) {
      (void)rows.Append(row_ids[i]);
      (void)splits.Append(split_ids[i]);
    }
    batches.push_back(arrow::RecordBatch::Make(
        schema, end - at, {rows.Finish().ValueOrDie(), splits.Finish().ValueOrDie()}));
  }
  if (batches.empty()) {
    batches.push_back(arrow::RecordBatch::MakeEmpty(schema).ValueOrDie());
  }
  return MakeTable("perm", batches);
}

std::shared_ptr<const Snapshot> SnapshotOf(const Table& table) {
  return table.snapshot().ValueOrDie();
}

// Split `split` of the permutation table `perm` over `base`, as Permutation opens it.
arrow::Result<std::shared_ptr<const PermutationReader>> OpenSplit(
    std::shared_ptr<const Snapshot> base, std::shared_ptr<const Snapshot> perm,
    uint64_t split) {
  ARROW_ASSIGN_OR_RAISE(auto table, PermutationTable::Open(*perm));
  return PermutationReader::Open(std::move(base), std::move(table), split);
}

std::shared_ptr<const BoundSelection> Bind(
    const Table& base, std::optional<PermutationSelection> selection = {}) {
  return BoundSelection::Make(*SnapshotOf(base)->schema(), selection).ValueOrDie();
}

std::vector<int64_t> Ids(const arrow::RecordBatch& batch) {
  return Int64Column(batch, "id");
}

// Reads the whole stream; returns the batch sizes and the concatenated ids.
std::pair<std::vector<int64_t>, std::vector<int64_t>> ReadAll(
    const PermutationReader& reader, std::shared_ptr<const BoundSelection> selection,
    int64_t batch_size) {
  auto stream = reader.Read(std::move(selection), batch_size).ValueOrDie();
  std::vector<int64_t> sizes, ids;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    EXPECT_OK(stream->ReadNext(&batch));
    if (batch == nullptr) break;
    sizes.push_back(batch->num_rows());
    for (int64_t id : Ids(*batch)) ids.push_back(id);
  }
  return {sizes, ids};
}

// The upstream layout of spec §4.4: 1000 rows, split 0 = rows 0..949 reversed, split 1 =
// rows 950..999 in a scrambled order; stored in 64-row batches.
struct TwoSplits {
  std::vector<uint64_t> split0, split1;
  std::shared_ptr<Table> base, perm;
  TwoSplits() {
    for (uint64_t i = 0; i < 950; ++i) split0.push_back(949 - i);
    for (uint64_t i = 0; i < 50; ++i) split1.push_back(950 + (i * 17) % 50);
    std::vector<uint64_t> rows(split0), splits(950, 0);
    rows.insert(rows.end(), split1.begin(), split1.end());
    splits.insert(splits.end(), 50, 1);
    base = BaseTable(1000);
    perm = PermTable(rows, splits);
  }
  std::shared_ptr<const PermutationReader> Open(uint64_t split) const {
    return OpenSplit(SnapshotOf(*base), SnapshotOf(*perm), split).ValueOrDie();
  }
};

std::vector<int64_t> AsInt64(const std::vector<uint64_t>& v) {
  return std::vector<int64_t>(v.begin(), v.end());
}

TEST(PermutationReader, SplitRowsInStoredOrder) {
  TwoSplits t;
  auto reader = t.Open(1);
  EXPECT_EQ(reader->count_rows(), 50);
  EXPECT_FALSE(reader->is_identity());
  auto [sizes, ids] = ReadAll(*reader, Bind(*t.base), 1000);
  EXPECT_THAT(sizes, ElementsAre(50));
  EXPECT_EQ(ids, AsInt64(t.split1));
  ASSERT_OK_AND_ASSIGN(auto row_ids, reader->RowIds());
  EXPECT_EQ(std::vector<uint64_t>(row_ids->raw_values(), row_ids->raw_values() + 50),
            t.split1);
}

// Upstream bug (spec §4.4): batches followed the permutation table's storage, so split 1
// with batch 30 gave 10,30,10 and __iter__ dropped rows.
TEST(PermutationReader, ReadBatchesAreExactlyBatchSizeForNonFirstSplit) {
  TwoSplits t;
  auto reader = t.Open(1);
  auto [sizes30, ids30] = ReadAll(*reader, Bind(*t.base), 30);
  EXPECT_THAT(sizes30, ElementsAre(30, 20));
  EXPECT_EQ(ids30, AsInt64(t.split1));
  auto [sizes7, ids7] = ReadAll(*reader, Bind(*t.base), 7);
  EXPECT_THAT(sizes7, ElementsAre(7, 7, 7, 7, 7, 7, 7, 1));
  EXPECT_EQ(ids7, AsInt64(t.split1));
}

TEST(PermutationReader, ReadBatchesAreExactlyBatchSizeAfterOffset) {
  TwoSplits t;
  ASSERT_OK_AND_ASSIGN(auto reader, t.Open(0)->WithOffsetLimit(5, 50));
  auto [sizes, ids] = ReadAll(*reader, Bind(*t.base), 20);
  EXPECT_THAT(sizes, ElementsAre(20, 20, 10));
  std::vector<int64_t> expected(t.split0.begin() + 5, t.split0.begin() + 55);
  EXPECT_EQ(ids, expected);
}

TEST(PermutationReader, ReadRejectsNonPositiveBatchSize) {
  TwoSplits t;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "batch_size must be at least 1, got 0",
                             t.Open(0)->Read(Bind(*t.base), 0));
}

TEST(PermutationReader, ZeroRowsAfterLimitReadsNothing) {
  TwoSplits t;
  ASSERT_OK_AND_ASSIGN(auto reader, t.Open(1)->WithOffsetLimit(std::nullopt, 0));
  EXPECT_EQ(reader->count_rows(), 0);
  auto [sizes, ids] = ReadAll(*reader, Bind(*t.base), 10);
  EXPECT_TRUE(sizes.empty());
  ASSERT_OK_AND_ASSIGN(auto empty, reader->TakeOffsets({}, *Bind(*t.base)));
  EXPECT_EQ(empty->num_rows(), 0);
}

TEST(PermutationReader, TakeOffsetsInRequestedOrderWithDuplicates) {
  TwoSplits t;
  auto reader = t.Open(1);
  std::vector<int64_t> offsets = {49, 0, 0, 17, 3, 49};
  ASSERT_OK_AND_ASSIGN(auto batch, reader->TakeOffsets(offsets, *Bind(*t.base)));
  std::vector<int64_t> expected;
  for (int64_t o : offsets) expected.push_back(static_cast<int64_t>(t.split1[o]));
  EXPECT_EQ(Ids(*batch), expected);
  EXPECT_EQ(batch->schema()->field_names(), (std::vector<std::string>{"id", "label"}));
}

TEST(PermutationReader, TakeOffsetsIsRelativeToOffsetAndLimit) {
  TwoSplits t;
  ASSERT_OK_AND_ASSIGN(auto reader, t.Open(1)->WithOffsetLimit(10, 20));
  ASSERT_OK_AND_ASSIGN(
      auto batch, reader->TakeOffsets(std::vector<int64_t>{0, 19, 5}, *Bind(*t.base)));
  EXPECT_THAT(Ids(*batch), ElementsAre(t.split1[10], t.split1[29], t.split1[15]));
  ASSERT_RAISES_WITH_MESSAGE(
      IndexError, "Offset 20 at position 1 is out of range for a permutation of 20 rows",
      reader->TakeOffsets(std::vector<int64_t>{0, 20}, *Bind(*t.base)));
  ASSERT_RAISES_WITH_MESSAGE(
      IndexError, "Offset -1 at position 0 is out of range",
      reader->TakeOffsets(std::vector<int64_t>{-1}, *Bind(*t.base)));
}

// Upstream bug (spec §4.5): identity takes ignored skip/take, sorted, de-duplicated and
// dropped out-of-range offsets.
TEST(PermutationReader, IdentityTakeOffsetsHasTheSameContract) {
  auto base = BaseTable(100);
  ASSERT_OK_AND_ASSIGN(auto identity,
                       PermutationReader::Open(SnapshotOf(*base), nullptr, 0));
  EXPECT_TRUE(identity->is_identity());
  EXPECT_EQ(identity->count_rows(), 100);
  ASSERT_OK_AND_ASSIGN(auto reader, identity->WithOffsetLimit(10, 30));
  ASSERT_OK_AND_ASSIGN(
      auto batch,
      reader->TakeOffsets(std::vector<int64_t>{21, 5, 3, 3, 20, 0}, *Bind(*base)));
  EXPECT_THAT(Ids(*batch), ElementsAre(31, 15, 13, 13, 30, 10));
  ASSERT_RAISES_WITH_MESSAGE(
      IndexError, "Offset 30 at position 1 is out of range for a permutation of 30 rows",
      reader->TakeOffsets(std::vector<int64_t>{5, 30}, *Bind(*base)));
  auto [sizes, ids] = ReadAll(*reader, Bind(*base), 8);
  EXPECT_THAT(sizes, ElementsAre(8, 8, 8, 6));
  std::vector<int64_t> expected(30);
  std::iota(expected.begin(), expected.end(), 10);
  EXPECT_EQ(ids, expected);
  ASSERT_OK_AND_ASSIGN(auto row_ids, reader->RowIds());
  EXPECT_EQ(row_ids->Value(0), 10u);
  EXPECT_EQ(row_ids->length(), 30);
}

TEST(PermutationReader, IdentityRejectsOtherSplits) {
  auto base = BaseTable(3);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "only split 0",
                             PermutationReader::Open(SnapshotOf(*base), nullptr, 1));
}

TEST(PermutationReader, OffsetLimitValidation) {
  TwoSplits t;
  auto reader = t.Open(1);  // 50 rows
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Offset + limit is greater than the number of rows in the permutation table",
      reader->WithOffsetLimit(40, 11));
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Offset is greater than the number of rows in the permutation table",
      reader->WithOffsetLimit(51, std::nullopt));
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Limit is greater than the number of rows in the permutation table",
      reader->WithOffsetLimit(std::nullopt, 51));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Offset must not be negative, got -1",
                             reader->WithOffsetLimit(-1, std::nullopt));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Limit must not be negative, got -2",
                             reader->WithOffsetLimit(std::nullopt, -2));
  ASSERT_OK_AND_ASSIGN(auto all_skipped, reader->WithOffsetLimit(50, std::nullopt));
  EXPECT_EQ(all_skipped->count_rows(), 0);
  ASSERT_OK_AND_ASSIGN(auto both, reader->WithOffsetLimit(40, 10));
  EXPECT_EQ(both->count_rows(), 10);
  // Validated against the whole split, not the previous reader's window.
  ASSERT_OK_AND_ASSIGN(auto narrowed, both->WithOffsetLimit(std::nullopt, 45));
  EXPECT_EQ(narrowed->count_rows(), 45);
  EXPECT_EQ(narrowed->available_rows(), 50);
}

TEST(PermutationReader, EmptySplitIsRejectedAtOpen) {
  TwoSplits t;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, kNoRowsMessage,
                             OpenSplit(SnapshotOf(*t.base), SnapshotOf(*t.perm), 2));
  auto empty_perm = PermTable({}, {});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, kNoRowsMessage,
                             OpenSplit(SnapshotOf(*t.base), SnapshotOf(*empty_perm), 0));
  auto schema = arrow::schema({arrow::field("id", arrow::int64())});
  auto empty_base =
      MakeTable("empty", {arrow::RecordBatch::MakeEmpty(schema).ValueOrDie()});
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, kNoRowsMessage,
      PermutationReader::Open(SnapshotOf(*empty_base), nullptr, 0));
}

TEST(PermutationReader, PermutationTableColumnsAreRequired) {
  auto base = BaseTable(3);
  auto no_row_id = MakeTable("p", {IdBatch(0, 3)});
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Permutation table must contain a column named row_id",
                             OpenSplit(SnapshotOf(*base), SnapshotOf(*no_row_id), 0));
  auto schema = arrow::schema({arrow::field("row_id", arrow::uint64())});
  arrow::UInt64Builder b;
  (void)b.AppendValues({0, 1});
  auto only_rows =
      MakeTable("p2", {arrow::RecordBatch::Make(schema, 2, {b.Finish().ValueOrDie()})});
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Permutation table must contain a column named split_id",
                             OpenSplit(SnapshotOf(*base), SnapshotOf(*only_rows), 0));
}

TEST(PermutationReader, HandBuiltSignedColumnsAreAccepted) {
  auto base = BaseTable(10);
  auto schema = arrow::schema(
      {arrow::field("split_id", arrow::int32()), arrow::field("row_id", arrow::int64())});
  arrow::Int32Builder splits;
  arrow::Int64Builder rows;
  (void)splits.AppendValues({1, 0, 1});
  (void)rows.AppendValues({7, 2, 3});
  auto perm = MakeTable(
      "p", {arrow::RecordBatch::Make(
               schema, 3, {splits.Finish().ValueOrDie(), rows.Finish().ValueOrDie()})});
  ASSERT_OK_AND_ASSIGN(auto reader, OpenSplit(SnapshotOf(*base), SnapshotOf(*perm), 1));
  ASSERT_OK_AND_ASSIGN(auto batch,
                       reader->TakeOffsets(std::vector<int64_t>{1, 0}, *Bind(*base)));
  EXPECT_THAT(Ids(*batch), ElementsAre(3, 7));

  arrow::Int32Builder splits2;
  arrow::Int64Builder rows2;
  (void)splits2.AppendValues({0});
  (void)rows2.AppendValues({-4});
  auto negative = MakeTable(
      "p3",
      {arrow::RecordBatch::Make(
          schema, 1, {splits2.Finish().ValueOrDie(), rows2.Finish().ValueOrDie()})});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "row_id holds a negative value",
                             OpenSplit(SnapshotOf(*base), SnapshotOf(*negative), 0));
}

TEST(PermutationReader, MissingBaseRowIsAnIndexError) {
  auto base = BaseTable(10);
  auto perm = PermTable({3, 12}, {0, 0});
  ASSERT_OK_AND_ASSIGN(auto reader, OpenSplit(SnapshotOf(*base), SnapshotOf(*perm), 0));
  ASSERT_RAISES_WITH_MESSAGE(
      IndexError, "Row id 12 at position 1 is not a row of version 1",
      reader->TakeOffsets(std::vector<int64_t>{0, 1}, *Bind(*base)));
}

TEST(PermutationReader, SelectionRenamesReordersAndEvaluates) {
  TwoSplits t;
  auto reader = t.Open(1);
  PermutationSelection selection = {
      {"lbl", "label"}, {"my_row_id", "_rowid"}, {"twice", "id * 2"}, {"id", "id"}};
  ASSERT_OK_AND_ASSIGN(auto bound,
                       BoundSelection::Make(*SnapshotOf(*t.base)->schema(), selection));
  EXPECT_EQ(bound->output_schema()->field_names(),
            (std::vector<std::string>{"lbl", "my_row_id", "twice", "id"}));
  EXPECT_TRUE(bound->output_schema()->field(0)->type()->Equals(arrow::int32()));
  EXPECT_TRUE(bound->output_schema()->field(1)->type()->Equals(arrow::uint64()));
  EXPECT_TRUE(bound->output_schema()->field(2)->type()->Equals(arrow::int64()));
  ASSERT_OK_AND_ASSIGN(auto batch,
                       reader->TakeOffsets(std::vector<int64_t>{2, 1}, *bound));
  ASSERT_TRUE(batch->schema()->Equals(*bound->output_schema()));
  const int64_t a = t.split1[2], b = t.split1[1];
  EXPECT_THAT(Ids(*batch), ElementsAre(a, b));
  EXPECT_THAT(UInt64Column(*batch, "my_row_id"), ElementsAre(a, b));
  EXPECT_THAT(Int64Column(*batch, "twice"), ElementsAre(2 * a, 2 * b));
  auto labels = std::static_pointer_cast<arrow::Int32Array>(batch->column(0));
  EXPECT_EQ(labels->Value(0), a % 10);
}

TEST(PermutationReader, RowIdOfAMultiFragmentTableAfterDeletes) {
  auto base = BaseTable(5);
  auto more = ReaderOf({IdBatch(5, 5)});
  ASSERT_OK(base->Append(more.get()));
  ASSERT_OK(testing::DeleteWhere(*base, "id = 1 OR id = 6"));
  ASSERT_OK_AND_ASSIGN(auto reader,
                       PermutationReader::Open(SnapshotOf(*base), nullptr, 0));
  EXPECT_EQ(reader->count_rows(), 8);
  auto selection = Bind(*base, PermutationSelection{{"_rowid", "_rowid"}, {"id", "id"}});
  ASSERT_OK_AND_ASSIGN(auto batch,
                       reader->TakeOffsets(std::vector<int64_t>{4, 0, 7}, *selection));
  EXPECT_THAT(Ids(*batch), ElementsAre(5, 0, 9));
  EXPECT_THAT(UInt64Column(*batch, "_rowid"), ElementsAre(kFragment1, 0, kFragment1 + 4));

  auto perm = PermTable({kFragment1 + 4, 2, kFragment1}, {0, 0, 0});
  ASSERT_OK_AND_ASSIGN(auto by_ids, OpenSplit(SnapshotOf(*base), SnapshotOf(*perm), 0));
  auto [sizes, ids] = ReadAll(*by_ids, selection, 2);
  EXPECT_THAT(sizes, ElementsAre(2, 1));
  EXPECT_THAT(ids, ElementsAre(9, 2, 5));
}

TEST(PermutationReader, SelectionErrors) {
  auto base = BaseTable(3);
  const auto& schema = *SnapshotOf(*base)->schema();
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Dynamic column id cannot be used to select _rowid",
      BoundSelection::Make(schema, PermutationSelection{{"_rowid", "id"}}));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Must select at least one column",
                             BoundSelection::Make(schema, PermutationSelection{}));
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Column 'nope' does not exist",
      BoundSelection::Make(schema, PermutationSelection{{"x", "nope"}}));
}

TEST(PermutationReader, LiteralExpressionNeedsNoColumn) {
  auto base = BaseTable(4);
  ASSERT_OK_AND_ASSIGN(auto reader,
                       PermutationReader::Open(SnapshotOf(*base), nullptr, 0));
  auto selection = Bind(*base, PermutationSelection{{"one", "1"}});
  ASSERT_OK_AND_ASSIGN(auto batch,
                       reader->TakeOffsets(std::vector<int64_t>{3, 2}, *selection));
  EXPECT_EQ(batch->num_columns(), 1);
  EXPECT_EQ(batch->num_rows(), 2);
}

// Beyond LanceDB (spec §4.3, §8 #16): a reader keeps reading the versions it opened.
TEST(PermutationReader, WritesAfterOpenChangeNothing) {
  auto base = BaseTable(20);
  auto perm = PermTable({19, 3, 7}, {0, 0, 0});
  ASSERT_OK_AND_ASSIGN(auto reader, OpenSplit(SnapshotOf(*base), SnapshotOf(*perm), 0));
  ASSERT_OK_AND_ASSIGN(auto identity,
                       PermutationReader::Open(SnapshotOf(*base), nullptr, 0));
  ASSERT_OK(testing::DeleteWhere(*base, "id = 3"));
  auto more = ReaderOf({IdBatch(100, 10)});
  ASSERT_OK(base->Append(more.get()));
  ASSERT_OK(perm->Overwrite(ReaderOf({IdBatch(0, 1)}).get()));

  auto selection = Bind(*base);
  ASSERT_OK_AND_ASSIGN(auto batch,
                       reader->TakeOffsets(std::vector<int64_t>{0, 1, 2}, *selection));
  EXPECT_THAT(Ids(*batch), ElementsAre(19, 3, 7));
  EXPECT_EQ(identity->count_rows(), 20);
  auto [sizes, ids] = ReadAll(*identity, selection, 7);
  EXPECT_THAT(sizes, ElementsAre(7, 7, 6));
  std::vector<int64_t> expected(20);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(ids, expected);
}

// Property: for random splits, batch sizes and offsets, the stream equals TakeOffsets of
// every offset, which equals the base rows of the split's row ids.
TEST(PermutationReader, StreamEqualsTakeOfAllOffsetsRandomized) {
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 20; ++trial) {
    const int64_t n = 1 + static_cast<int64_t>(rng() % 300);
    const int splits = 1 + static_cast<int>(rng() % 4);
    std::vector<uint64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    std::vector<uint64_t> split_of(n);
    for (auto& s : split_of) s = rng() % splits;
    // Grouped by split, as the builder stores them.
    std::vector<uint64_t> rows, ids_of_split;
    std::vector<uint64_t> split_ids;
    for (int s = 0; s < splits; ++s) {
      for (int64_t i = 0; i < n; ++i) {
        if (split_of[i] == static_cast<uint64_t>(s)) {
          rows.push_back(order[i]);
          split_ids.push_back(s);
        }
      }
    }
    auto base = BaseTable(n);
    auto perm = PermTable(rows, split_ids, 1 + static_cast<int64_t>(rng() % 50));
    auto selection = Bind(*base);
    for (int s = 0; s < splits; ++s) {
      std::vector<int64_t> expected;
      for (size_t i = 0; i < rows.size(); ++i) {
        if (split_ids[i] == static_cast<uint64_t>(s)) expected.push_back(rows[i]);
      }
      auto opened = OpenSplit(SnapshotOf(*base), SnapshotOf(*perm), s);
      if (expected.empty()) {
        ASSERT_RAISES(Invalid, opened);
        continue;
      }
      auto reader = opened.ValueOrDie();
      const int64_t a = static_cast<int64_t>(expected.size());
      const int64_t offset = static_cast<int64_t>(rng() % (a + 1));
      const int64_t limit = static_cast<int64_t>(rng() % (a - offset + 1));
      ASSERT_OK_AND_ASSIGN(reader, reader->WithOffsetLimit(offset, limit));
      expected = std::vector<int64_t>(expected.begin() + offset,
                                      expected.begin() + offset + limit);
      const int64_t batch_size = 1 + static_cast<int64_t>(rng() % 40);
      auto [sizes, ids] = ReadAll(*reader, selection, batch_size);
      EXPECT_EQ(ids, expected);
      for (size_t i = 0; i + 1 < sizes.size(); ++i) EXPECT_EQ(sizes[i], batch_size);
      if (!sizes.empty()) {
        EXPECT_EQ(sizes.back(), (limit - 1) % batch_size + 1);
      }
      std::vector<int64_t> all(limit);
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      ASSERT_OK_AND_ASSIGN(auto taken, reader->TakeOffsets(all, *selection));
      for (int64_t i = 0; i < limit; ++i) EXPECT_EQ(Ids(*taken)[i], expected[all[i]]);
    }
  }
}

}  // namespace
}  // namespace riffledb
