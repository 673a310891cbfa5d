#include "riffledb/permutation/permutation_table.h"

#include <arrow/api.h>
#include <arrow/util/key_value_metadata.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

#include "riffledb/permutation/builder.h"
#include "riffledb/permutation/reader.h"
#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using ::riffledb::testing::IdBatch;
using ::riffledb::testing::Int64Column;
using ::riffledb::testing::ReaderOf;
using ::riffledb::testing::UInt64Column;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

std::shared_ptr<arrow::Array> UInt64s(const std::vector<uint64_t>& values) {
  arrow::UInt64Builder builder;
  EXPECT_TRUE(builder.AppendValues(values).ok());
  return builder.Finish().ValueOrDie();
}

std::shared_ptr<arrow::Table> ArrowPermutation(
    const std::vector<uint64_t>& row_ids, const std::vector<uint64_t>& split_ids,
    std::shared_ptr<const arrow::KeyValueMetadata> metadata = nullptr) {
  auto schema = arrow::schema({arrow::field("row_id", arrow::uint64()),
                               arrow::field("split_id", arrow::uint64())},
                              std::move(metadata));
  return arrow::Table::Make(schema, {UInt64s(row_ids), UInt64s(split_ids)});
}

std::vector<uint64_t> Ids(const PermutationTable& table, uint64_t split) {
  auto rows = table.GetSplit(split).ValueOrDie().row_ids;
  return {rows->raw_values(), rows->raw_values() + rows->length()};
}

std::shared_ptr<Table> CreateTable(std::shared_ptr<Store> store, int64_t n) {
  auto reader = ReaderOf({IdBatch(0, n)});
  return Table::Create("t", std::move(store), reader->schema(), reader.get())
      .ValueOrDie();
}

TEST(PermutationTable, GroupedInputIsSlicedWithoutCopy) {
  auto arrow_table = ArrowPermutation({5, 3, 9, 1, 0}, {0, 0, 2, 2, 2});
  ASSERT_OK_AND_ASSIGN(auto table, PermutationTable::FromArrow(*arrow_table));
  EXPECT_THAT(table->split_ids(), ElementsAre(0, 2));
  EXPECT_THAT(Ids(*table, 0), ElementsAre(5, 3));
  EXPECT_THAT(Ids(*table, 2), ElementsAre(9, 1, 0));
  // A split is a slice of the input's row id buffer.
  const auto* input = arrow_table->column(0)->chunk(0)->data()->GetValues<uint64_t>(1);
  EXPECT_EQ(table->GetSplit(2).ValueOrDie().row_ids->raw_values(), input + 2);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, kNoRowsMessage, table->GetSplit(1));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, kNoRowsMessage, table->GetSplit(3));
}

TEST(PermutationTable, UngroupedInputIsGroupedStably) {
  auto arrow_table = ArrowPermutation({10, 11, 12, 13, 14, 15}, {3, 1, 3, 1, 0, 3});
  ASSERT_OK_AND_ASSIGN(auto table, PermutationTable::FromArrow(*arrow_table));
  EXPECT_THAT(table->split_ids(), ElementsAre(0, 1, 3));
  EXPECT_THAT(Ids(*table, 0), ElementsAre(14));
  EXPECT_THAT(Ids(*table, 1), ElementsAre(11, 13));
  EXPECT_THAT(Ids(*table, 3), ElementsAre(10, 12, 15));
}

TEST(PermutationTable, FromArrowErrors) {
  auto no_split = arrow::Table::Make(
      arrow::schema({arrow::field("row_id", arrow::uint64())}), {UInt64s({1})});
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Permutation table must contain a column named split_id",
                             PermutationTable::FromArrow(*no_split));
  auto names = [](const char* json) {
    return ArrowPermutation({1}, {0}, arrow::key_value_metadata({"split_names"}, {json}));
  };
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "split names are not unique: `a`",
                             PermutationTable::FromArrow(*names(R"(["a","a"])")));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "must be a JSON list of strings",
                             PermutationTable::FromArrow(*names(R"(["a",1])")));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "is not valid JSON",
                             PermutationTable::FromArrow(*names("[nope")));
  ASSERT_OK_AND_ASSIGN(auto named, PermutationTable::FromArrow(*names(R"(["x"])")));
  EXPECT_THAT(*named->split_names(), ElementsAre("x"));
}

TEST(PermutationTable, ToArrowRoundTripsRowsNamesAndProvenance) {
  auto dir = std::filesystem::temp_directory_path() /
             ("riffledb_ptable_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto base = CreateTable(std::make_shared<DirectoryStore>(dir.string()), 100);
  ASSERT_OK_AND_ASSIGN(auto snapshot, base->snapshot());
  PermutationBuilder builder(snapshot);
  builder.SplitRandom(SplitSizes::Ratios({0.5, 0.3}), 7, std::nullopt,
                      std::vector<std::string>{"train", "test"});
  builder.Shuffle(11);
  ASSERT_OK_AND_ASSIGN(auto built, builder.Execute());
  EXPECT_EQ(built->provenance().recipe, builder.Recipe());
  EXPECT_EQ(built->provenance().base_location, dir.string());
  EXPECT_EQ(built->provenance().base_version, std::optional<uint64_t>(1));

  ASSERT_OK_AND_ASSIGN(auto arrow_table, built->ToArrow());
  ASSERT_OK_AND_ASSIGN(auto batch, arrow_table->CombineChunksToBatch());
  std::vector<uint64_t> splits = UInt64Column(*batch, "split_id");
  EXPECT_EQ(std::count(splits.begin(), splits.end(), 0), 50);
  EXPECT_EQ(std::count(splits.begin(), splits.end(), 1), 30);
  const auto& metadata = *arrow_table->schema()->metadata();
  EXPECT_THAT(metadata.keys(), ElementsAre("split_names", "riffledb:base_version",
                                           "riffledb:split_digests", "riffledb:recipe"));

  ASSERT_OK_AND_ASSIGN(auto again, PermutationTable::FromArrow(*arrow_table));
  EXPECT_EQ(Ids(*again, 0), Ids(*built, 0));
  EXPECT_EQ(Ids(*again, 1), Ids(*built, 1));
  EXPECT_EQ(again->Digest(1), built->Digest(1));
  EXPECT_EQ(again->provenance().recipe, builder.Recipe());
  EXPECT_EQ(again->provenance().base_location, dir.string());
  EXPECT_THAT(*again->split_names(), ElementsAre("train", "test"));

  // Edited rows (the digests no longer match): the recipe is dropped, never trusted.
  auto ids = UInt64Column(*batch, "row_id");
  std::swap(ids[0], ids[1]);
  ASSERT_OK_AND_ASSIGN(auto edited, PermutationTable::FromArrow(*ArrowPermutation(
                                        ids, splits, arrow_table->schema()->metadata())));
  EXPECT_EQ(edited->provenance().recipe, "");
  EXPECT_EQ(edited->provenance().base_version, std::nullopt);
  std::filesystem::remove_all(dir);
}

TEST(PermutationTable, ToArrowSplitIdsAcrossPiecesAndZeroSplit) {
  // ToArrow writes the split id column in pieces of 2^20 rows and leaves split 0's rows
  // to the zero-filled mapping: every row must still carry its split id, across piece
  // boundaries, whether or not split 0 exists.
  const int64_t n = 2'500'000;
  std::vector<uint64_t> ids(n);
  std::iota(ids.begin(), ids.end(), uint64_t{0});
  auto row_ids = std::make_shared<arrow::UInt64Array>(n, arrow::Buffer::FromVector(ids));
  for (const std::vector<uint64_t>& split_ids :
       {std::vector<uint64_t>{0, 5, 9}, std::vector<uint64_t>{2, 5, 9}}) {
    const std::vector<int64_t> starts{0, 1'000'000, 1'048'577, n};
    ASSERT_OK_AND_ASSIGN(
        auto table, PermutationTable::Make(row_ids, split_ids, starts, std::nullopt, {}));
    ASSERT_OK_AND_ASSIGN(auto arrow_table, table->ToArrow());
    ASSERT_OK_AND_ASSIGN(auto batch, arrow_table->CombineChunksToBatch());
    std::vector<uint64_t> expected(n);
    for (size_t g = 0; g < split_ids.size(); ++g) {
      std::fill(expected.begin() + starts[g], expected.begin() + starts[g + 1],
                split_ids[g]);
    }
    EXPECT_EQ(UInt64Column(*batch, "split_id"), expected) << split_ids[0];
    EXPECT_EQ(UInt64Column(*batch, "row_id"), ids);
  }
}

TEST(PermutationTable, MemoryBaseHasNoRecipe) {
  auto base = CreateTable(std::make_shared<MemoryStore>("memory://t"), 10);
  PermutationBuilder builder(base->snapshot().ValueOrDie());
  builder.Shuffle(3);
  ASSERT_OK_AND_ASSIGN(auto built, builder.Execute());
  EXPECT_EQ(built->provenance().recipe, "");
  EXPECT_EQ(built->provenance().base_version, std::optional<uint64_t>(1));
}

TEST(PermutationTable, OpenIsComputedOncePerSnapshot) {
  auto store = std::make_shared<MemoryStore>("memory://p");
  auto perm = ArrowPermutation({4, 2, 0}, {1, 1, 1});
  auto reader = ReaderOf({perm->CombineChunksToBatch().ValueOrDie()});
  auto table = Table::Create("p", store, perm->schema(), reader.get()).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
  ASSERT_OK_AND_ASSIGN(auto first, PermutationTable::Open(*snapshot));
  ASSERT_OK_AND_ASSIGN(auto second, PermutationTable::Open(*snapshot));
  EXPECT_EQ(first.get(), second.get());
  EXPECT_THAT(Ids(*first, 1), ElementsAre(4, 2, 0));
  // Attach replaces what Open returns (the builder's table for its own Arrow form).
  ASSERT_OK_AND_ASSIGN(auto other,
                       PermutationTable::FromArrow(*ArrowPermutation({7}, {0})));
  PermutationTable::Attach(*snapshot, other);
  ASSERT_OK_AND_ASSIGN(auto attached, PermutationTable::Open(*snapshot));
  EXPECT_EQ(attached.get(), other.get());
}

// Every kind of split survives Recipe() -> FromRecipe() with the same result.
TEST(PermutationBuilder, RecipeRebuildsEverySplitKind) {
  auto base = CreateTable(std::make_shared<MemoryStore>("memory://t"), 300);
  auto snapshot = base->snapshot().ValueOrDie();
  std::vector<PermutationBuilder> builders(5, PermutationBuilder(snapshot));
  builders[0].Filter("id > 10").SplitRandom(SplitSizes::Counts({100, 50}), 5, 3);
  builders[1].SplitHash({"label"}, {2, 1}, 1, std::vector<std::string>{"a", "b"});
  builders[2].SplitSequential(SplitSizes::Fixed(3)).Shuffle(std::nullopt, 4);
  builders[3].SplitCalculated("id % 4").Shuffle(9);
  builders[4].SplitRandom(SplitSizes::Ratios({0.1, 0.25}));
  for (size_t i = 0; i < builders.size(); ++i) {
    SCOPED_TRACE(builders[i].Recipe());
    ASSERT_OK_AND_ASSIGN(auto built, builders[i].Execute());
    ASSERT_OK_AND_ASSIGN(auto rebuilt,
                         PermutationBuilder::FromRecipe(snapshot, builders[i].Recipe()));
    EXPECT_EQ(rebuilt.Recipe(), builders[i].Recipe());
    ASSERT_OK_AND_ASSIGN(auto again, rebuilt.Execute());
    ASSERT_EQ(again->split_ids(), built->split_ids());
    for (uint64_t split : built->split_ids()) {
      EXPECT_EQ(Ids(*again, split), Ids(*built, split));
      EXPECT_EQ(again->Digest(split), built->Digest(split));
    }
  }
}

TEST(PermutationBuilder, DamagedRecipesAreInvalid) {
  auto base = CreateTable(std::make_shared<MemoryStore>("memory://t"), 10);
  auto snapshot = base->snapshot().ValueOrDie();
  for (const char* recipe :
       {"", "[1]", "{\"format\":1}", R"({"format":2,"split":{"kind":"random"}})",
        R"({"format":2,"split":{"kind":"hash","columns":"label"}})",
        R"({"format":2,"shuffle":{"seed":"x"}})",
        R"({"format":2,"split":{"kind":"?"}})"}) {
    SCOPED_TRACE(recipe);
    ASSERT_RAISES_WITH_MESSAGE(Invalid, "Unsupported permutation recipe",
                               PermutationBuilder::FromRecipe(snapshot, recipe));
  }
}

// --- the reader's view: offset, limit, repeat, exact-size batches ----------------------

class RepeatedView : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = CreateTable(std::make_shared<MemoryStore>("memory://t"), 20);
    ASSERT_OK_AND_ASSIGN(auto table, PermutationTable::FromArrow(*ArrowPermutation(
                                         {9, 3, 7, 1, 5, 0}, {0, 0, 0, 0, 0, 1})));
    ASSERT_OK_AND_ASSIGN(
        auto reader, PermutationReader::Open(base_->snapshot().ValueOrDie(), table, 0));
    // Rows [1, 4) of split 0 (ids 3, 7, 1), three times.
    ASSERT_OK_AND_ASSIGN(reader, reader->WithOffsetLimit(1, 3));
    ASSERT_OK_AND_ASSIGN(reader_, reader->WithRepeat(3));
    ASSERT_OK_AND_ASSIGN(selection_,
                         BoundSelection::Make(*base_->snapshot().ValueOrDie()->schema(),
                                              PermutationSelection{{"id", "id"}}));
  }
  std::vector<int64_t> Read(const std::shared_ptr<arrow::RecordBatch>& batch) {
    return Int64Column(*batch, "id");
  }
  std::shared_ptr<Table> base_;
  std::shared_ptr<const PermutationReader> reader_;
  std::shared_ptr<const BoundSelection> selection_;
};

TEST_F(RepeatedView, CountsAndTakesWrap) {
  EXPECT_EQ(reader_->count_rows(), 9);
  EXPECT_EQ(reader_->rows_per_repeat(), 3);
  EXPECT_EQ(reader_->offset(), std::optional<int64_t>(1));
  ASSERT_OK_AND_ASSIGN(auto batch,
                       reader_->TakeOffsets(std::vector<int64_t>{8, 0, 4}, *selection_));
  EXPECT_THAT(Read(batch), ElementsAre(1, 3, 7));
  ASSERT_RAISES_WITH_MESSAGE(
      IndexError, "Offset 9 at position 1 is out of range for a permutation of 9 rows",
      reader_->TakeOffsets(std::vector<int64_t>{0, 9}, *selection_));
  ASSERT_OK_AND_ASSIGN(batch, reader_->TakeRange(2, 5, *selection_));  // wraps twice
  EXPECT_THAT(Read(batch), ElementsAre(1, 3, 7, 1, 3));
  ASSERT_RAISES(IndexError, reader_->TakeRange(5, 5, *selection_));
  // WithOffsetLimit keeps the repeat; WithRepeat replaces it.
  EXPECT_EQ(reader_->WithOffsetLimit(0, 2).ValueOrDie()->count_rows(), 6);
  EXPECT_EQ(reader_->WithRepeat(1).ValueOrDie()->count_rows(), 3);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "times must be at least 1, got 0",
                             reader_->WithRepeat(0));
  ASSERT_RAISES(Invalid, reader_->WithRepeat(int64_t{1} << 62));
}

TEST_F(RepeatedView, BatchesHaveExactSizesAcrossRepetitions) {
  ASSERT_OK_AND_ASSIGN(int64_t keep, reader_->NumBatches(4, false));
  ASSERT_OK_AND_ASSIGN(int64_t drop, reader_->NumBatches(4, true));
  EXPECT_EQ(keep, 3);
  EXPECT_EQ(drop, 2);
  std::vector<int64_t> all;
  for (int64_t i = 0; i < keep; ++i) {
    ASSERT_OK_AND_ASSIGN(auto batch, reader_->ReadBatch(i, 4, false, *selection_));
    EXPECT_EQ(batch->num_rows(), i < 2 ? 4 : 1);
    for (int64_t id : Read(batch)) all.push_back(id);
  }
  EXPECT_THAT(all, ElementsAre(3, 7, 1, 3, 7, 1, 3, 7, 1));
  ASSERT_RAISES_WITH_MESSAGE(IndexError, "Batch 2 is out of range: there are 2 batches",
                             reader_->ReadBatch(2, 4, true, *selection_));
  ASSERT_RAISES(Invalid, reader_->NumBatches(0, false));
  // The stream yields the same batches.
  ASSERT_OK_AND_ASSIGN(auto stream, reader_->Read(selection_, 4, true));
  ASSERT_OK_AND_ASSIGN(auto table, stream->ToTable());
  EXPECT_EQ(table->num_rows(), 8);
}

}  // namespace
}  // namespace riffledb
