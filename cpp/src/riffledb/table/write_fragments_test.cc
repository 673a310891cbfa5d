// Distributed writes in two steps: Table::WriteFragments and Table::CommitFragments
// (issue 11, item 6), over both stores.
#include <arrow/compute/cast.h>
#include <gmock/gmock.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/arrow_init.h"

namespace riffledb {
namespace {

using riffledb::testing::IdBatch;
using riffledb::testing::Ids;
using riffledb::testing::Int64Column;
using riffledb::testing::kDayMs;
using riffledb::testing::NowMs;
using riffledb::testing::Range;
using riffledb::testing::ReaderOf;
using riffledb::testing::TempDir;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

std::vector<int64_t> Sorted(std::vector<int64_t> values) {
  std::sort(values.begin(), values.end());
  return values;
}

// A store that forwards to another and runs `before_read` before each ReadManifest:
// what a cleanup (or a failing disk) does to the versions while a commit scans them.
class HookedStore : public Store {
 public:
  explicit HookedStore(std::shared_ptr<Store> inner) : inner_(std::move(inner)) {}

  std::function<arrow::Status(uint64_t version)> before_read;
  const std::shared_ptr<Store>& inner() const { return inner_; }

  const std::string& location() const override { return inner_->location(); }
  arrow::Result<std::vector<uint64_t>> ListVersions() override {
    return inner_->ListVersions();
  }
  arrow::Result<uint64_t> LatestVersion() override { return inner_->LatestVersion(); }
  arrow::Result<format::Manifest> ReadManifest(uint64_t version) override {
    if (before_read) ARROW_RETURN_NOT_OK(before_read(version));
    return inner_->ReadManifest(version);
  }
  arrow::Status Commit(const format::Manifest& manifest) override {
    return inner_->Commit(manifest);
  }
  arrow::Result<std::vector<format::WrittenFragment>> WriteFragments(
      const std::shared_ptr<arrow::Schema>& schema,
      arrow::RecordBatchReader* reader) override {
    return inner_->WriteFragments(schema, reader);
  }
  arrow::Result<std::shared_ptr<const FragmentData>> OpenFragment(
      const format::FragmentInfo& info,
      const std::shared_ptr<arrow::Schema>& schema) override {
    return inner_->OpenFragment(info, schema);
  }
  arrow::Status CheckWrittenFragment(const format::WrittenFragment& fragment,
                                     const arrow::Schema& schema) override {
    return inner_->CheckWrittenFragment(fragment, schema);
  }
  arrow::Result<bool> HasFile(const std::string& path) override {
    return inner_->HasFile(path);
  }
  arrow::Result<format::DeletionFileInfo> WriteDeletionFile(
      const std::vector<uint32_t>& rows) override {
    return inner_->WriteDeletionFile(rows);
  }
  arrow::Result<std::shared_ptr<const std::vector<uint32_t>>> ReadDeletionFile(
      const format::DeletionFileInfo& info, int64_t physical_rows) override {
    return inner_->ReadDeletionFile(info, physical_rows);
  }
  void RemoveUnreferenced(const std::vector<std::string>& paths) override {
    inner_->RemoveUnreferenced(paths);
  }
  arrow::Result<std::vector<StoredFile>> ListFiles() override {
    return inner_->ListFiles();
  }
  arrow::Status RemoveVersion(uint64_t version) override {
    return inner_->RemoveVersion(version);
  }
  arrow::Status RemoveFile(const std::string& path) override {
    return inner_->RemoveFile(path);
  }
  arrow::Status VerifyFile(const std::string& path,
                           const format::FileDigest& digest) override {
    return inner_->VerifyFile(path, digest);
  }

 private:
  const std::shared_ptr<Store> inner_;
};

class WriteFragmentsTest : public ::testing::TestWithParam<bool> {
 protected:
  bool on_disk() const { return GetParam(); }
  std::shared_ptr<Store> MakeStore(const std::string& name = "t") {
    if (on_disk()) {
      return std::make_shared<DirectoryStore>(dir_.path() + "/" + name + ".riffle");
    }
    return std::make_shared<MemoryStore>("memory://" + name);
  }
  // A table "t" with ids [0, rows).
  std::shared_ptr<Table> Create(int64_t rows = 10, const std::string& name = "t") {
    auto data = ReaderOf({IdBatch(0, rows)});
    store_ = MakeStore(name);
    return Table::Create(name, store_, data->schema(), data.get()).ValueOrDie();
  }
  format::WrittenFragments Write(Table& table, int64_t start, int64_t n) {
    auto data = ReaderOf({IdBatch(start, n)});
    return table.WriteFragments(data.get()).ValueOrDie();
  }

  TempDir dir_;
  std::shared_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, WriteFragmentsTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Directory" : "Memory";
                         });

TEST_P(WriteFragmentsTest, NothingIsVisibleUntilTheCommit) {
  auto table = Create();
  ASSERT_OK_AND_ASSIGN(auto written,
                       table->WriteFragments(ReaderOf({IdBatch(10, 5)}).get()));
  EXPECT_EQ(written.table, "t");
  EXPECT_EQ(written.base_version, 1u);
  EXPECT_EQ(written.num_rows(), 5);
  ASSERT_EQ(written.fragments.size(), 1u);
  EXPECT_EQ(written.fragments[0].physical_rows, 5);
  EXPECT_EQ(written.fragments[0].num_batches, 1);
  EXPECT_EQ(written.fragments[0].digest.has_value(), on_disk());
  // Both stores name their files in data/, the one directory a description may name.
  EXPECT_TRUE(format::IsDataFilePath(written.fragments[0].path))
      << written.fragments[0].path;
  EXPECT_TRUE(written.schema->Equals(*IdBatch(0, 1)->schema()));

  ASSERT_OK(table->CheckoutLatest());
  EXPECT_EQ(table->version(), 1u);
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 10)));

  ASSERT_OK_AND_ASSIGN(uint64_t version,
                       table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_EQ(version, 2u);
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 15)));
  ASSERT_OK_AND_ASSIGN(auto versions, table->ListVersions());
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(versions[1].operation, "append");
}

TEST_P(WriteFragmentsTest, ManyDescriptionsCommitAsOneVersion) {
  auto table = Create();
  std::vector<format::WrittenFragments> written;
  for (int i = 0; i < 4; ++i) written.push_back(Write(*table, 10 + 7 * i, 7));
  ASSERT_OK_AND_ASSIGN(uint64_t version,
                       table->CommitFragments(written, CommitMode::kAppend));
  EXPECT_EQ(version, 2u);
  // Fragments in the order of the descriptions.
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 38)));
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
  EXPECT_EQ(snapshot->manifest().fragments.size(), 5u);
}

TEST_P(WriteFragmentsTest, DescriptionsCrossAsJson) {
  auto table = Create();
  auto written = Write(*table, 10, 3);
  ASSERT_OK_AND_ASSIGN(std::string json, written.ToJson());
  EXPECT_EQ(json.find('\n'), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto parsed, format::WrittenFragments::FromJson(json));
  EXPECT_EQ(parsed.table, written.table);
  EXPECT_EQ(parsed.base_version, written.base_version);
  EXPECT_EQ(parsed.fragments, written.fragments);
  EXPECT_TRUE(parsed.schema->Equals(*written.schema, /*check_metadata=*/true));
  ASSERT_OK(table->CommitFragments({parsed}, CommitMode::kAppend));
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 13)));
}

TEST_P(WriteFragmentsTest, DataIsAdaptedAsAppendAdaptsIt) {
  ASSERT_OK(EnsureArrowComputeInitialized());
  auto table = Create();
  // Columns swapped and label as int64: matched by name and cast safely.
  auto ids = IdBatch(10, 4);
  auto label64 = arrow::compute::Cast(*ids->column(1), arrow::int64()).ValueOrDie();
  auto swapped = arrow::RecordBatch::Make(
      arrow::schema({arrow::field("label", arrow::int64()), ids->schema()->field(0)}), 4,
      {label64, ids->column(0)});
  ASSERT_OK_AND_ASSIGN(auto written, table->WriteFragments(ReaderOf({swapped}).get()));
  EXPECT_TRUE(written.schema->Equals(*table->snapshot().ValueOrDie()->schema()));
  ASSERT_OK(table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 14)));

  // Data that does not fit: the same error, word for word, as Append's.
  auto bad = arrow::RecordBatch::Make(
      arrow::schema({arrow::field("id", arrow::utf8())}), 1,
      {arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["x"])").ValueOrDie()});
  auto from_write = table->WriteFragments(ReaderOf({bad}).get()).status();
  auto from_append = table->Append(ReaderOf({bad}).get()).status();
  ASSERT_TRUE(from_write.IsInvalid()) << from_write.ToString();
  EXPECT_EQ(from_write.message(), from_append.message());
  EXPECT_EQ(table->version(), 2u);
  if (on_disk()) {
    // Nothing left behind by the failed write.
    ASSERT_OK_AND_ASSIGN(auto files, store_->ListFiles());
    EXPECT_EQ(files.size(), 2u);
  }
}

TEST_P(WriteFragmentsTest, OverwriteReplacesRowsAndSchema) {
  auto table = Create();
  auto schema = arrow::schema(
      {arrow::field("id", arrow::int64()), arrow::field("name", arrow::utf8())});
  auto batch = arrow::RecordBatch::Make(
      schema, 2,
      {arrow::json::ArrayFromJSONString(arrow::int64(), "[7, 8]").ValueOrDie(),
       arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["a", "b"])").ValueOrDie()});
  ASSERT_OK_AND_ASSIGN(auto written,
                       table->WriteFragments(ReaderOf({batch}).get(), schema));
  // Not the table's schema: it cannot be appended.
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "it was written with the schema",
                             table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_EQ(table->version(), 1u);
  ASSERT_OK_AND_ASSIGN(uint64_t version,
                       table->CommitFragments({written}, CommitMode::kOverwrite));
  EXPECT_EQ(version, 2u);
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
  EXPECT_TRUE(snapshot->schema()->Equals(*schema));
  EXPECT_THAT(Ids(*table), ElementsAreArray({7, 8}));
  EXPECT_EQ(snapshot->manifest().operation, "overwrite");
}

TEST_P(WriteFragmentsTest, NoRowsCarryTheSchema) {
  auto table = Create();
  ASSERT_OK_AND_ASSIGN(auto written, table->WriteFragments(nullptr));
  EXPECT_TRUE(written.fragments.empty());
  ASSERT_OK_AND_ASSIGN(auto json, written.ToJson());
  ASSERT_OK_AND_ASSIGN(auto parsed, format::WrittenFragments::FromJson(json));
  ASSERT_OK_AND_ASSIGN(uint64_t version,
                       table->CommitFragments({parsed}, CommitMode::kOverwrite));
  EXPECT_EQ(version, 2u);
  EXPECT_EQ(table->snapshot().ValueOrDie()->num_rows(), 0);
}

TEST_P(WriteFragmentsTest, CommittingTwiceIsRejected) {
  auto table = Create();
  auto written = Write(*table, 10, 5);
  ASSERT_OK(table->CommitFragments({written}, CommitMode::kAppend));
  const std::string path = written.fragments[0].path;
  for (auto mode : {CommitMode::kAppend, CommitMode::kOverwrite}) {
    auto again = table->CommitFragments({written}, mode);
    ASSERT_RAISES_WITH_MESSAGE(Invalid, "Cannot commit fragment file '" + path, again);
    EXPECT_THAT(again.status().message(), HasSubstr("version 2 already references it"));
  }
  EXPECT_EQ(table->version(), 2u);
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 15)));
}

// A committed file that the newest version no longer references (compacted away) is
// still found: every listed version is looked at.
TEST_P(WriteFragmentsTest, CommittingAgainAfterACompactionIsRejected) {
  auto table = Create();
  auto written = Write(*table, 10, 5);
  ASSERT_OK(table->CommitFragments({written}, CommitMode::kAppend));
  ASSERT_OK_AND_ASSIGN(auto stats, table->Compact());
  ASSERT_EQ(stats.fragments_removed, 2);
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
  for (const auto& fragment : snapshot->manifest().fragments) {
    ASSERT_NE(fragment.path, written.fragments[0].path);
  }
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "version 2 already references it",
                             table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_EQ(table->version(), 3u);
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 15)));
}

// The bug: base_version, the writer's word in untrusted JSON, bounded the search for
// versions referencing the files. A description committed at version 2, then
// overwritten at 3, committed again with "base_version": 3 was accepted, and the
// overwritten rows came back.
TEST_P(WriteFragmentsTest, ABaseVersionFromTheJsonIsNotTrusted) {
  auto table = Create();
  auto written = Write(*table, 10, 5);
  ASSERT_OK(table->CommitFragments({written}, CommitMode::kAppend));
  ASSERT_OK(table->Overwrite(ReaderOf({IdBatch(100, 3)}).get()));
  ASSERT_EQ(table->version(), 3u);
  auto edit = [&](uint64_t base_version) {
    auto doc = nlohmann::json::parse(written.ToJson().ValueOrDie());
    doc["base_version"] = base_version;
    return format::WrittenFragments::FromJson(doc.dump()).ValueOrDie();
  };
  const std::string path = written.fragments[0].path;
  for (auto mode : {CommitMode::kAppend, CommitMode::kOverwrite}) {
    auto again = table->CommitFragments({edit(3)}, mode);
    ASSERT_RAISES_WITH_MESSAGE(Invalid,
                               "Cannot commit fragment file '" + path +
                                   "' to table 't': version 2 already references it",
                               again);
  }
  // Above the newest version: refused naming the key.
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Cannot commit fragment file '" + path +
          "' to table 't': its description's 'base_version' is 4, above the table's "
          "newest version (3)",
      table->CommitFragments({edit(4)}, CommitMode::kAppend));
  EXPECT_EQ(table->version(), 3u);
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(100, 103)));
}

// Many versions, the committed file in segments shared by the later ones (format 2
// keeps at most 8 entries inline): still found, at the version that committed it.
TEST_P(WriteFragmentsTest, ACommitFoundInSharedSegmentsIsRejected) {
  auto table = Create();
  for (int i = 1; i <= 12; ++i) {
    ASSERT_OK(table->Append(ReaderOf({IdBatch(10 * i, 10)}).get()));
  }
  auto written = Write(*table, 1000, 5);
  ASSERT_OK_AND_ASSIGN(uint64_t committed,
                       table->CommitFragments({written}, CommitMode::kAppend));
  ASSERT_EQ(committed, 14u);
  for (int i = 0; i < 12; ++i) {
    ASSERT_OK(table->Append(ReaderOf({IdBatch(2000 + 10 * i, 10)}).get()));
  }
  if (on_disk()) {
    ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
    ASSERT_FALSE(snapshot->manifest().fragment_segments.empty());
  }
  ASSERT_OK(table->Overwrite(ReaderOf({IdBatch(7, 1)}).get()));
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Cannot commit fragment file '" + written.fragments[0].path +
                                 "' to table 't': version 14 already references it",
                             table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_EQ(table->version(), 27u);
  EXPECT_THAT(Ids(*table), ElementsAreArray({7}));
  // Fresh descriptions commit: the scan of every version found nothing else.
  auto fresh = Write(*table, 8, 2);
  ASSERT_OK(table->CommitFragments({fresh}, CommitMode::kAppend));
  EXPECT_THAT(Ids(*table), ElementsAreArray({7, 8, 9}));
}

// A version that cannot be read may reference the files: the commit fails with its
// error rather than skipping it. One that is no longer listed (removed by a cleanup
// during the scan) is skipped.
TEST_P(WriteFragmentsTest, AnUnreadableVersionFailsTheCommit) {
  auto data = ReaderOf({IdBatch(0, 10)});
  auto hooked = std::make_shared<HookedStore>(MakeStore());
  auto table = Table::Create("t", hooked, data->schema(), data.get()).ValueOrDie();
  ASSERT_OK(table->Append(ReaderOf({IdBatch(10, 5)}).get()));
  ASSERT_OK(table->Append(ReaderOf({IdBatch(15, 5)}).get()));
  auto written = Write(*table, 20, 5);
  hooked->before_read = [](uint64_t version) {
    return version == 2 ? arrow::Status::IOError("disk on fire") : arrow::Status::OK();
  };
  auto failed = table->CommitFragments({written}, CommitMode::kAppend);
  ASSERT_TRUE(failed.status().IsIOError()) << failed.status().ToString();
  EXPECT_EQ(failed.status().message(),
            "Cannot commit fragment descriptions to table 't': version 2, which may "
            "reference their files, cannot be read: disk on fire");
  EXPECT_EQ(table->version(), 3u);
  // Version 1 removed while the commit scans: it is skipped, and the commit lands.
  hooked->before_read = [&](uint64_t version) {
    if (version == 1) return hooked->inner()->RemoveVersion(1);
    return arrow::Status::OK();
  };
  ASSERT_OK_AND_ASSIGN(uint64_t version,
                       table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_EQ(version, 4u);
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 25)));
  ASSERT_OK_AND_ASSIGN(auto versions, hooked->ListVersions());
  EXPECT_THAT(versions, ElementsAreArray({2u, 3u, 4u}));
}

// The cleanup gap: a cleanup removes the version that committed a file, then the file.
// A retry whose scan no longer sees the version is refused once the file is gone,
// however the two interleave with the scan.
TEST_P(WriteFragmentsTest, ARetryRacingACleanupIsRefused) {
  auto data = ReaderOf({IdBatch(0, 10)});
  auto hooked = std::make_shared<HookedStore>(MakeStore());
  auto table = Table::Create("t", hooked, data->schema(), data.get()).ValueOrDie();
  auto written = Write(*table, 10, 5);
  ASSERT_OK(table->CommitFragments({written}, CommitMode::kAppend));  // version 2
  ASSERT_OK(table->Overwrite(ReaderOf({IdBatch(100, 3)}).get()));     // version 3
  ASSERT_OK(table->Append(ReaderOf({IdBatch(103, 2)}).get()));        // version 4
  const std::string path = written.fragments[0].path;
  // The cleanup removes versions 1-3 (the newest is kept) and then the file only
  // version 2 referenced, just as the retry's scan reaches version 2.
  hooked->before_read = [&](uint64_t version) {
    if (version != 2) return arrow::Status::OK();
    for (uint64_t v : {1, 2, 3}) ARROW_RETURN_NOT_OK(hooked->inner()->RemoveVersion(v));
    return hooked->inner()->RemoveFile(path);
  };
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Fragment file '" + path + "' does not exist in the table at '" +
          hooked->location() +
          "': it was written for another table, or removed by cleanup_old_versions",
      table->CommitFragments({written}, CommitMode::kAppend));
  hooked->before_read = nullptr;
  ASSERT_OK(table->CheckoutLatest());
  EXPECT_EQ(table->version(), 4u);
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(100, 105)));
}

TEST_P(WriteFragmentsTest, OneBadDescriptionCommitsNothing) {
  auto table = Create();
  auto good = Write(*table, 10, 5);
  auto other = Write(*table, 15, 5);
  auto tampered = other;
  tampered.fragments[0].physical_rows = 6;
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Fragment file '" + other.fragments[0].path + "' does not match its description",
      table->CommitFragments({good, tampered}, CommitMode::kAppend));
  EXPECT_EQ(table->version(), 1u);
  // Nothing was removed: the good ones still commit.
  ASSERT_OK(table->CommitFragments({good, other}, CommitMode::kAppend));
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 20)));
}

// Both stores compare a file with its description in one place, with one message.
TEST_P(WriteFragmentsTest, FilesThatDifferFromTheirDescriptionAreNamedAlike) {
  auto table = Create();
  auto written = Write(*table, 10, 5);
  const std::string path = written.fragments[0].path;
  const std::string prefix =
      "Fragment file '" + path + "' does not match its description: ";
  auto commit = [&](auto change) {
    auto copy = written;
    change(copy);
    return table->CommitFragments({copy}, CommitMode::kOverwrite).status().message();
  };
  EXPECT_EQ(commit([](auto& w) { w.fragments[0].physical_rows = 6; }),
            prefix + "it has 5 rows, the description says 6");
  EXPECT_EQ(commit([](auto& w) { w.fragments[0].num_batches = 2; }),
            prefix + "it has 1 record batches, the description says 2");
  auto narrow = arrow::schema({arrow::field("id", arrow::int64())});
  EXPECT_EQ(commit([&](auto& w) { w.schema = narrow; }),
            prefix + "its schema is\n" + written.schema->ToString() +
                "\nthe description says\n" + narrow->ToString());
  EXPECT_EQ(commit([](auto& w) {
              w.fragments[0].path = "data/0123456789abcdef0123456789abcdef.arrow";
            }),
            "Fragment file 'data/0123456789abcdef0123456789abcdef.arrow' does not exist "
            "in the table at '" +
                store_->location() +
                "': it was written for another table, or removed by "
                "cleanup_old_versions");
  EXPECT_EQ(table->version(), 1u);
}

TEST_P(WriteFragmentsTest, ForeignDescriptionsAreRejected) {
  auto table = Create(10, "t");
  auto other = Create(10, "u");
  auto written = Write(*other, 10, 5);
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Cannot commit fragment file '" + written.fragments[0].path +
                                 "' to table 't': it was written for table 'u'",
                             table->CommitFragments({written}, CommitMode::kAppend));
  // Named as this table, but written elsewhere: its file is not here.
  written.table = "t";
  if (on_disk()) {
    ASSERT_RAISES_WITH_MESSAGE(
        Invalid, "Fragment file '" + written.fragments[0].path + "' does not exist",
        table->CommitFragments({written}, CommitMode::kAppend));
  }
  written.fragments[0].path = "data/0123456789abcdef0123456789abcdef.arrow";
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Fragment file 'data/0123456789abcdef0123456789abcdef.arrow' does not exist",
      table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_EQ(table->version(), 1u);
}

TEST_P(WriteFragmentsTest, InconsistentDescriptionsAreRejected) {
  auto table = Create();
  auto written = Write(*table, 10, 5);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "No fragment descriptions to commit to table 't'",
                             table->CommitFragments({}, CommitMode::kAppend));
  const std::string twice = "Cannot commit fragment file '" + written.fragments[0].path +
                            "' to table 't': the descriptions name it twice";
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, twice, table->CommitFragments({written, written}, CommitMode::kAppend));
  // One description naming a file twice parses (the commit is the one owner of the
  // check) and is refused the same way.
  auto doubled = written;
  doubled.fragments.push_back(written.fragments[0]);
  ASSERT_OK_AND_ASSIGN(auto parsed,
                       format::WrittenFragments::FromJson(doubled.ToJson().ValueOrDie()));
  ASSERT_EQ(parsed.fragments.size(), 2u);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, twice,
                             table->CommitFragments({parsed}, CommitMode::kAppend));
  auto other_schema = Write(*table, 20, 1);
  other_schema.schema = arrow::schema({arrow::field("id", arrow::int64())});
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "they were written with different schemas",
      table->CommitFragments({written, other_schema}, CommitMode::kAppend));
  EXPECT_EQ(table->version(), 1u);
}

TEST_P(WriteFragmentsTest, AppendFailsIfTheSchemaChangedSinceTheWrite) {
  auto table = Create();
  auto written = Write(*table, 10, 5);
  auto narrow = arrow::RecordBatch::Make(
      arrow::schema({arrow::field("id", arrow::int64())}), 1,
      {arrow::json::ArrayFromJSONString(arrow::int64(), "[99]").ValueOrDie()});
  ASSERT_OK(table->Overwrite(ReaderOf({narrow}).get()));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "and the table's schema is now",
                             table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_EQ(table->version(), 2u);
}

TEST_P(WriteFragmentsTest, DetachedHandlesWriteButDoNotCommit) {
  auto table = Create();
  ASSERT_OK(table->Append(ReaderOf({IdBatch(10, 1)}).get()));
  ASSERT_OK(table->Checkout(1));
  auto written = Write(*table, 11, 2);
  EXPECT_EQ(written.base_version, 2u);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "call checkout_latest() before writing",
                             table->CommitFragments({written}, CommitMode::kAppend));
  ASSERT_OK(table->CheckoutLatest());
  ASSERT_OK(table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 13)));
}

// Two processes' worth of writers commit at once: both commits land (one rebased on the
// other), with exactly their rows, as racing appends do.
TEST_P(WriteFragmentsTest, RacingCommitsBothLand) {
  auto table = Create(0);
  constexpr int kWriters = 4;
  constexpr int64_t kRows = 100;
  std::vector<std::thread> threads;
  std::vector<arrow::Status> results(kWriters);
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      // Each writer has its own handle, as another process would.
      auto handle = Table::Open("t", store_);
      if (!handle.ok()) {
        results[w] = handle.status();
        return;
      }
      std::vector<format::WrittenFragments> written;
      for (int part = 0; part < 3; ++part) {
        const int64_t start = (w * 3 + part) * kRows;
        auto one = (*handle)->WriteFragments(ReaderOf({IdBatch(start, kRows)}).get());
        if (!one.ok()) {
          results[w] = one.status();
          return;
        }
        written.push_back(*one);
      }
      results[w] = (*handle)->CommitFragments(written, CommitMode::kAppend).status();
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) ASSERT_OK(result);
  ASSERT_OK(table->CheckoutLatest());
  EXPECT_EQ(table->version(), 1u + kWriters);
  EXPECT_THAT(Sorted(Ids(*table)), ElementsAreArray(Range(0, kWriters * 3 * kRows)));
}

// Files whose descriptions are never committed are orphans: cleanup removes them once
// they are older than the grace period, not before.
TEST_P(WriteFragmentsTest, UncommittedFilesAreRemovedAfterTheGracePeriod) {
  auto table = Create();
  auto written = Write(*table, 10, 5);
  CleanupOptions options;
  options.older_than_ms = 0;
  options.now_ms = NowMs() + kDayMs;
  ASSERT_OK_AND_ASSIGN(auto stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.files_removed, 0);
  options.now_ms = NowMs() + 8 * kDayMs;
  ASSERT_OK_AND_ASSIGN(stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.files_removed, 1);
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Fragment file '" + written.fragments[0].path + "' does not exist",
      table->CommitFragments({written}, CommitMode::kAppend));
  EXPECT_THAT(Ids(*table), ElementsAreArray(Range(0, 10)));
}

// -- what only a directory has

class WriteFragmentsDirectoryTest : public ::testing::Test {
 protected:
  std::shared_ptr<Table> Create() {
    auto data = ReaderOf({IdBatch(0, 10)});
    store_ = std::make_shared<DirectoryStore>(dir_.path() + "/t.riffle");
    return Table::Create("t", store_, data->schema(), data.get()).ValueOrDie();
  }
  std::string Path(const std::string& relative) const {
    return dir_.path() + "/t.riffle/" + relative;
  }
  TempDir dir_;
  std::shared_ptr<DirectoryStore> store_;
};

TEST_F(WriteFragmentsDirectoryTest, FilesAreCheckedAgainstTheirDescription) {
  auto table = Create();
  ASSERT_OK_AND_ASSIGN(auto written,
                       table->WriteFragments(ReaderOf({IdBatch(10, 5)}).get()));
  const std::string path = written.fragments[0].path;
  auto with = [&](auto change) {
    auto copy = written;
    change(copy.fragments[0]);
    return table->CommitFragments({copy}, CommitMode::kAppend).status();
  };
  EXPECT_THAT(with([](auto& f) { f.digest->size += 1; }).message(),
              HasSubstr("' does not match its description: it has "));
  EXPECT_THAT(with([](auto& f) { f.num_batches = 2; }).message(),
              HasSubstr("it has 1 record batches, the description says 2"));
  EXPECT_THAT(with([](auto& f) { f.physical_rows = 4; }).message(),
              HasSubstr("it has 5 rows, the description says 4"));
  EXPECT_THAT(with([](auto& f) { f.digest.reset(); }).message(),
              HasSubstr("has no size and crc32c in its description"));
  // A file of another schema under the name of a data file.
  auto schema_changed = written;
  schema_changed.schema = arrow::schema(
      {arrow::field("id", arrow::int64()), arrow::field("label", arrow::int64())});
  EXPECT_THAT(
      table->CommitFragments({schema_changed}, CommitMode::kOverwrite).status().message(),
      HasSubstr("does not match its description: its schema is"));
  // Not an Arrow file at all (same size).
  {
    std::ofstream out(Path(path), std::ios::binary | std::ios::trunc);
    out << std::string(static_cast<size_t>(written.fragments[0].digest->size), 'x');
  }
  EXPECT_THAT(table->CommitFragments({written}, CommitMode::kAppend).status().message(),
              HasSubstr("it is not an Arrow IPC file"));
  std::filesystem::remove(Path(path));
  EXPECT_THAT(table->CommitFragments({written}, CommitMode::kAppend).status().message(),
              HasSubstr("does not exist in the table at"));
  EXPECT_EQ(table->version(), 1u);
}

}  // namespace
}  // namespace riffledb
