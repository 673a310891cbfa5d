// Takes with TakeOptions::binary_views from memory:// and directory tables: the views
// equal the copied values, reference the table's own value buffers, and keep them alive.
#include <arrow/compute/cast.h>

#include <filesystem>
#include <optional>
#include <random>
#include <set>

#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/arrow_init.h"

namespace riffledb {
namespace {

using riffledb::testing::ReaderOf;
using riffledb::testing::TempDir;

std::shared_ptr<arrow::Schema> BlobSchema() {
  return arrow::schema({arrow::field("id", arrow::int64()),
                        arrow::field("s", arrow::utf8()),
                        arrow::field("b", arrow::binary(), /*nullable=*/true,
                                     arrow::key_value_metadata({"k"}, {"v"})),
                        arrow::field("ls", arrow::large_utf8()),
                        arrow::field("lb", arrow::large_binary())});
}

// Row i's value in every binary column: null every 7th row, empty every 5th, inline
// (<= 12 bytes) for most, long (13 bytes to a few KB) every 3rd.
std::optional<std::string> ValueOf(int64_t i) {
  if (i % 7 == 3) return std::nullopt;
  if (i % 5 == 0) return std::string();
  std::string value = "v" + std::to_string(i);
  if (i % 3 == 0)
    value += std::string(13 + (i * 37) % 3000, static_cast<char>('a' + i % 26));
  return value;
}

std::shared_ptr<arrow::RecordBatch> BlobBatch(int64_t start, int64_t n) {
  arrow::Int64Builder ids;
  arrow::StringBuilder s;
  arrow::BinaryBuilder b;
  arrow::LargeStringBuilder ls;
  arrow::LargeBinaryBuilder lb;
  for (int64_t i = start; i < start + n; ++i) {
    (void)ids.Append(i);
    if (auto value = ValueOf(i)) {
      (void)s.Append(*value);
      (void)b.Append(*value);
      (void)ls.Append(*value);
      (void)lb.Append(*value);
    } else {
      (void)s.AppendNull();
      (void)b.AppendNull();
      (void)ls.AppendNull();
      (void)lb.AppendNull();
    }
  }
  return arrow::RecordBatch::Make(
      BlobSchema(), n,
      {ids.Finish().ValueOrDie(), s.Finish().ValueOrDie(), b.Finish().ValueOrDie(),
       ls.Finish().ValueOrDie(), lb.Finish().ValueOrDie()});
}

class BinaryViewsTest : public ::testing::TestWithParam<bool> {
 protected:
  // Three fragments (three appends), the first of two stored batches.
  std::shared_ptr<Table> CreateBlobTable() {
    std::shared_ptr<Store> store;
    if (GetParam()) {
      store = std::make_shared<DirectoryStore>(dir_.path() + "/t.riffle");
    } else {
      store = std::make_shared<MemoryStore>("memory://t");
    }
    auto reader = ReaderOf({BlobBatch(0, 40), BlobBatch(40, 30)});
    auto table = Table::Create("t", store, BlobSchema(), reader.get()).ValueOrDie();
    auto second = ReaderOf({BlobBatch(70, 50)});
    EXPECT_OK(table->Append(second.get()));
    auto third = ReaderOf({BlobBatch(120, 25)});
    EXPECT_OK(table->Append(third.get()));
    return table;
  }
  TempDir dir_;
};

// The value buffers of every stored batch, as a plain scan (a zero-copy pass-through of
// the stored arrays) returns them.
std::set<const uint8_t*> StoredValueBuffers(const Snapshot& snapshot, int column) {
  std::set<const uint8_t*> buffers;
  auto reader = snapshot.Scan({}).ValueOrDie();
  for (auto batch : *reader) {
    buffers.insert(batch.ValueOrDie()->column(column)->data()->buffers[2]->data());
  }
  return buffers;
}

TEST_P(BinaryViewsTest, ViewsEqualTheCopyAndReferenceTheStoredBuffers) {
  ASSERT_OK(EnsureArrowComputeInitialized());
  auto table = CreateBlobTable();
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
  ASSERT_EQ(snapshot->manifest().fragments.size(), 3u);
  std::mt19937 rng(3);
  std::vector<int64_t> offsets;
  for (int i = 0; i < 400; ++i) offsets.push_back(rng() % snapshot->num_rows());

  TakeOptions plain_options;
  ASSERT_OK_AND_ASSIGN(plain_options.projection,
                       Projection::All(snapshot->schema(), /*with_row_id=*/true));
  TakeOptions view_options = plain_options;
  view_options.binary_views = true;
  ASSERT_OK_AND_ASSIGN(auto plain, snapshot->TakeOffsets(offsets, plain_options));
  ASSERT_OK_AND_ASSIGN(auto views, snapshot->TakeOffsets(offsets, view_options));
  ASSERT_OK(views->ValidateFull());
  EXPECT_EQ(
      views->schema()->ToString(),
      "id: int64\ns: string_view\nb: binary_view\nls: string_view\nlb: binary_view\n"
      "_rowid: uint64 not null");
  // Field metadata is kept.
  EXPECT_TRUE(views->schema()->field(2)->metadata()->Equals(
      *arrow::key_value_metadata({"k"}, {"v"})));
  EXPECT_TRUE(views->column(0)->Equals(*plain->column(0)));
  EXPECT_TRUE(views->column(5)->Equals(*plain->column(5)));
  for (int c = 1; c <= 4; ++c) {
    ASSERT_OK_AND_ASSIGN(
        auto expected, arrow::compute::Cast(*plain->column(c), views->column(c)->type()));
    EXPECT_TRUE(views->column(c)->Equals(*expected)) << views->schema()->field(c)->name();
    // No copy: every data buffer is one of the stored batches' value buffers.
    const auto stored = StoredValueBuffers(*snapshot, c);
    const auto& buffers = views->column(c)->data()->buffers;
    ASSERT_GT(buffers.size(), 2u);
    for (size_t k = 2; k < buffers.size(); ++k) {
      EXPECT_TRUE(stored.count(buffers[k]->data()))
          << views->schema()->field(c)->name() << " data buffer " << k;
    }
  }
  const auto ids = riffledb::testing::Int64Column(*views, "id");
  const auto& s = static_cast<const arrow::StringViewArray&>(*views->column(1));
  for (int64_t i = 0; i < views->num_rows(); ++i) {
    const auto value = ValueOf(ids[i]);
    ASSERT_EQ(s.IsNull(i), !value.has_value()) << "row " << i;
    if (value) {
      EXPECT_EQ(s.GetView(i), *value) << "row " << i;
    }
  }

  // By row id, with a selection: the same views.
  const auto row_ids = riffledb::testing::UInt64Column(*plain, "_rowid");
  TakeOptions selected;
  const std::vector<std::string> names = {"lb", "id"};
  ASSERT_OK_AND_ASSIGN(selected.projection,
                       Projection::Columns(snapshot->schema(), names));
  selected.binary_views = true;
  ASSERT_OK_AND_ASSIGN(auto by_id, snapshot->TakeRowIds(row_ids, selected));
  EXPECT_EQ(by_id->schema()->ToString(), "lb: binary_view\nid: int64");
  EXPECT_TRUE(by_id->column(0)->Equals(*views->column(4)));
}

TEST_P(BinaryViewsTest, EmptyTakeHasTheViewSchema) {
  auto table = CreateBlobTable();
  TakeOptions options;
  options.binary_views = true;
  ASSERT_OK_AND_ASSIGN(auto batch,
                       table->snapshot().ValueOrDie()->TakeOffsets({}, options));
  EXPECT_EQ(batch->num_rows(), 0);
  EXPECT_EQ(batch->schema()->field(1)->type()->id(), arrow::Type::STRING_VIEW);
  EXPECT_EQ(batch->schema()->field(4)->type()->id(), arrow::Type::BINARY_VIEW);
}

TEST_P(BinaryViewsTest, ViewsOutliveTheTableSnapshotAndStore) {
  auto table = CreateBlobTable();
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
  std::vector<int64_t> offsets = {6, 144, 69, 6, 99};  // long values (multiples of 3)
  TakeOptions options;
  options.binary_views = true;
  const std::vector<std::string> names = {"lb"};
  ASSERT_OK_AND_ASSIGN(options.projection,
                       Projection::Columns(snapshot->schema(), names));
  ASSERT_OK_AND_ASSIGN(auto batch, snapshot->TakeOffsets(offsets, options));
  snapshot.reset();
  table.reset();
  // The files may even disappear: the views hold the mapping, not the path.
  std::filesystem::remove_all(dir_.path() + "/t.riffle");
  const auto& lb = static_cast<const arrow::BinaryViewArray&>(*batch->column(0));
  for (size_t i = 0; i < offsets.size(); ++i) {
    ASSERT_GT(lb.GetView(i).size(), 12u);
    EXPECT_EQ(lb.GetView(i), *ValueOf(offsets[i])) << "row " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, BinaryViewsTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Directory" : "Memory";
                         });

}  // namespace
}  // namespace riffledb
