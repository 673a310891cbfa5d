// Compaction and cleanup of old versions (issue #10, item 7).
#include <gmock/gmock.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>

#include "riffledb/format/references.h"
#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using riffledb::testing::DeleteWhere;
using riffledb::testing::IdBatch;
using riffledb::testing::Ids;
using riffledb::testing::Int64Column;
using riffledb::testing::kDayMs;
using riffledb::testing::NowMs;
using riffledb::testing::Range;
using riffledb::testing::ReaderOf;
using riffledb::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::map<std::string, int64_t> FileSizes(Store& store) {
  std::map<std::string, int64_t> sizes;
  for (const auto& file : store.ListFiles().ValueOrDie()) sizes[file.path] = file.size;
  return sizes;
}

class MaintenanceTest : public ::testing::TestWithParam<bool> {
 protected:
  bool on_disk() const { return GetParam(); }
  std::shared_ptr<Store> MakeStore() {
    if (on_disk()) return std::make_shared<DirectoryStore>(dir_.path() + "/t.riffle");
    return std::make_shared<MemoryStore>("memory://t");
  }
  // A table of `appends` fragments of `rows` rows each, ids 0.. in order.
  std::shared_ptr<Table> Fragmented(int appends, int64_t rows) {
    store_ = MakeStore();
    auto first = ReaderOf({IdBatch(0, rows)});
    auto table = Table::Create("t", store_, first->schema(), first.get()).ValueOrDie();
    for (int i = 1; i < appends; ++i) {
      auto more = ReaderOf({IdBatch(i * rows, rows)});
      EXPECT_OK(table->Append(more.get()).status());
    }
    return table;
  }
  TempDir dir_;
  std::shared_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Stores, MaintenanceTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Dir" : "Memory"; });

TEST(References, FragmentAndDeletionFilesInOrder) {
  format::Manifest manifest;
  manifest.fragments.push_back(
      {0, "data/a.arrow", 3, std::nullopt, std::nullopt, std::nullopt});
  manifest.fragments.push_back(
      {1, "data/b.arrow", 3,
       format::DeletionFileInfo{"_deletions/c.arrow", 1, std::nullopt}, std::nullopt,
       std::nullopt});
  EXPECT_THAT(format::ReferencedFiles(manifest),
              ElementsAre("data/a.arrow", "data/b.arrow", "_deletions/c.arrow"));
  EXPECT_TRUE(format::IsTemporaryFileName(".00000000000000000002.json.abc.tmp"));
  EXPECT_FALSE(format::IsTemporaryFileName("00000000000000000002.json"));
  EXPECT_FALSE(format::IsTemporaryFileName(".tmp"));
  EXPECT_FALSE(format::IsTemporaryFileName("a.tmp"));
}

TEST_P(MaintenanceTest, CleanupRemovesOldVersionsAndOnlyTheirFiles) {
  auto table = Fragmented(1, 10);  // v1: fragment A
  auto replace = ReaderOf({IdBatch(100, 5)});
  ASSERT_OK(table->Overwrite(replace.get()).status());  // v2: fragment B
  auto more = ReaderOf({IdBatch(105, 5)});
  ASSERT_OK(table->Append(more.get()).status());  // v3: B, C
  const auto before = FileSizes(*store_);
  ASSERT_EQ(before.size(), 3u);
  const std::string a = store_->ReadManifest(1)->fragments[0].path;

  CleanupOptions options;
  options.older_than_ms = 60'000;
  options.now_ms = NowMs() + 3600'000;  // every version is an hour old
  ASSERT_OK_AND_ASSIGN(auto stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.old_versions, 2);
  EXPECT_EQ(stats.files_removed, 1);
  EXPECT_EQ(stats.bytes_removed, before.at(a));
  EXPECT_THAT(*store_->ListVersions(), ElementsAre(3u));
  auto after = FileSizes(*store_);
  EXPECT_EQ(after.size(), 2u);
  EXPECT_EQ(after.count(a), 0u);

  // The remaining version reads whole, from a fresh handle too.
  ASSERT_OK_AND_ASSIGN(auto reopened, Table::Open("t", store_));
  EXPECT_EQ(Ids(**reopened->snapshot()), Range(100, 110));
  auto removed = reopened->Checkout(1);
  ASSERT_RAISES(Invalid, removed);
  EXPECT_EQ(removed.message(),
            "Version 1 of table 't' was removed by cleanup_old_versions; versions: 3..3");
  auto never = reopened->Checkout(4);
  EXPECT_THAT(never.message(), HasSubstr("Version 4 of table 't' does not exist"));
  ASSERT_RAISES(Invalid, Table::Open("t", store_, 2));

  // Nothing left to do: a second cleanup removes nothing.
  ASSERT_OK_AND_ASSIGN(auto again, table->CleanupOldVersions(options));
  EXPECT_EQ(again.old_versions, 0);
  EXPECT_EQ(again.files_removed, 0);
  EXPECT_EQ(again.bytes_removed, 0);
}

TEST_P(MaintenanceTest, CleanupKeepsYoungVersionsAndTheNewest) {
  auto table = Fragmented(3, 4);
  // Default: 7 days; nothing is that old.
  ASSERT_OK_AND_ASSIGN(auto stats, table->CleanupOldVersions());
  EXPECT_EQ(stats.old_versions, 0);
  EXPECT_EQ(stats.files_removed, 0);
  EXPECT_THAT(*store_->ListVersions(), ElementsAre(1u, 2u, 3u));
  // Everything a month old: all but the newest go, and it keeps every file (appends
  // carry their fragments forward).
  CleanupOptions options;
  options.older_than_ms = 0;
  options.now_ms = NowMs() + 30 * kDayMs;
  ASSERT_OK_AND_ASSIGN(stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.old_versions, 2);
  EXPECT_EQ(stats.files_removed, 0);
  EXPECT_THAT(*store_->ListVersions(), ElementsAre(3u));
  ASSERT_OK_AND_ASSIGN(auto reopened, Table::Open("t", store_));
  EXPECT_EQ(Ids(**reopened->snapshot()), Range(0, 12));
}

TEST_P(MaintenanceTest, OpenSnapshotOfRemovedVersionKeepsReading) {
  auto table = Fragmented(1, 6);
  auto pinned = table->snapshot().ValueOrDie();  // version 1
  auto replace = ReaderOf({IdBatch(50, 2)});
  ASSERT_OK(table->Overwrite(replace.get()).status());
  CleanupOptions options;
  options.older_than_ms = 0;
  options.now_ms = NowMs() + 1000;
  ASSERT_OK_AND_ASSIGN(auto stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.old_versions, 1);
  EXPECT_EQ(stats.files_removed, 1);
  // Its file is unlinked (or dropped from the memory store) but still mapped / held.
  EXPECT_EQ(Ids(*pinned), Range(0, 6));
}

TEST_P(MaintenanceTest, UnreferencedFilesWaitForTheGracePeriod) {
  auto table = Fragmented(1, 5);
  // A writer that wrote a fragment and never committed it (crashed, or still running).
  auto orphan_data = ReaderOf({IdBatch(1000, 7)});
  ASSERT_OK_AND_ASSIGN(auto orphans,
                       store_->WriteFragments(orphan_data->schema(), orphan_data.get()));
  ASSERT_EQ(orphans.size(), 1u);
  int64_t orphan_bytes = FileSizes(*store_).at(orphans[0].path);
  if (on_disk()) {
    // And the temporary file of an exclusive create that died before its link.
    std::ofstream(dir_.path() + "/t.riffle/_versions/.00000000000000000002.json.x.tmp")
        << "{}";
    orphan_bytes += 2;
  }
  const auto files = FileSizes(*store_).size();

  CleanupOptions options;
  options.older_than_ms = 0;
  options.now_ms = NowMs() + 6 * kDayMs;  // younger than the 7-day grace period
  ASSERT_OK_AND_ASSIGN(auto stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.files_removed, 0);
  EXPECT_EQ(FileSizes(*store_).size(), files);

  // older_than longer than the grace period extends it.
  options.older_than_ms = 10 * kDayMs;
  options.now_ms = NowMs() + 8 * kDayMs;
  ASSERT_OK_AND_ASSIGN(stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.files_removed, 0);

  options.older_than_ms = 0;
  ASSERT_OK_AND_ASSIGN(stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.old_versions, 0);
  EXPECT_EQ(stats.files_removed, on_disk() ? 2 : 1);
  EXPECT_EQ(stats.bytes_removed, orphan_bytes);
  EXPECT_EQ(FileSizes(*store_).size(), 1u);
  EXPECT_EQ(Ids(**Table::Open("t", store_).ValueOrDie()->snapshot()), Range(0, 5));
}

TEST_P(MaintenanceTest, DeleteUnverifiedRemovesYoungOrphans) {
  auto table = Fragmented(2, 5);
  auto orphan_data = ReaderOf({IdBatch(1000, 7)});
  ASSERT_OK(store_->WriteFragments(orphan_data->schema(), orphan_data.get()).status());
  CleanupOptions options;
  options.older_than_ms = kDayMs;  // both versions are young: kept
  options.delete_unverified = true;
  ASSERT_OK_AND_ASSIGN(auto stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.old_versions, 0);
  EXPECT_EQ(stats.files_removed, 1);
  EXPECT_EQ(FileSizes(*store_).size(), 2u);
  ASSERT_OK(table->Checkout(1));
  EXPECT_EQ(Ids(**table->snapshot()), Range(0, 5));
}

TEST_P(MaintenanceTest, CleanupKeepsDeletionFilesOfRemainingVersions) {
  auto table = Fragmented(2, 10);
  ASSERT_OK(DeleteWhere(*table, "id < 3").status());   // v3: deletion file D1
  ASSERT_OK(DeleteWhere(*table, "id = 15").status());  // v4: D1, D2
  ASSERT_OK(DeleteWhere(*table, "id = 4").status());   // v5: D3 replaces D1
  CleanupOptions options;
  options.older_than_ms = 0;
  options.now_ms = NowMs() + 1000;
  ASSERT_OK_AND_ASSIGN(auto stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.old_versions, 4);
  EXPECT_EQ(stats.files_removed, 1);  // D1
  ASSERT_OK_AND_ASSIGN(auto reopened, Table::Open("t", store_));
  std::vector<int64_t> expected;
  for (int64_t i = 0; i < 20; ++i) {
    if (i >= 3 && i != 4 && i != 15) expected.push_back(i);
  }
  EXPECT_EQ(Ids(**reopened->snapshot()), expected);
}

TEST(Maintenance, CleanupRefusesWhenARemainingManifestIsDamaged) {
  TempDir dir;
  auto store = std::make_shared<DirectoryStore>(dir.path() + "/t.riffle");
  auto first = ReaderOf({IdBatch(0, 3)});
  ASSERT_OK_AND_ASSIGN(auto table,
                       Table::Create("t", store, first->schema(), first.get()));
  auto replace = ReaderOf({IdBatch(10, 3)});
  ASSERT_OK(table->Overwrite(replace.get()).status());
  std::ofstream(dir.path() + "/t.riffle/_versions/00000000000000000002.json") << "junk";
  // A fresh store: the writer's store keeps the manifests it committed parsed.
  store = std::make_shared<DirectoryStore>(dir.path() + "/t.riffle");
  ASSERT_OK_AND_ASSIGN(table, Table::Open("t", store));
  CleanupOptions options;
  options.older_than_ms = 0;
  options.now_ms = NowMs() + 1000;
  auto result = table->CleanupOldVersions(options);
  ASSERT_FALSE(result.ok());
  EXPECT_THAT(result.status().message(),
              HasSubstr("Cannot clean up table 't': the files of version 2 are unknown"));
  EXPECT_EQ(store->ListVersions()->size(), 2u);
  EXPECT_EQ(FileSizes(*store).size(), 2u);
}

TEST_P(MaintenanceTest, CompactMergesSmallFragmentsAndMaterialisesDeletions) {
  auto table = Fragmented(5, 10);
  ASSERT_OK(DeleteWhere(*table, "id % 3 = 0").status());  // a deletion file per fragment
  auto before = table->snapshot().ValueOrDie();
  const auto ids = Ids(*before);
  ASSERT_EQ(ids.size(), 33u);

  ASSERT_OK_AND_ASSIGN(auto stats, table->Compact());
  EXPECT_EQ(stats.fragments_removed, 5);
  EXPECT_EQ(stats.fragments_added, 1);
  EXPECT_EQ(stats.files_removed, 10);
  EXPECT_EQ(stats.files_added, 1);
  EXPECT_EQ(table->version(), 7u);
  auto versions = table->ListVersions().ValueOrDie();
  EXPECT_EQ(versions.back().operation, "optimize");
  auto after = table->snapshot().ValueOrDie();
  ASSERT_EQ(after->manifest().fragments.size(), 1u);
  EXPECT_FALSE(after->manifest().fragments[0].deletion.has_value());
  EXPECT_EQ(after->manifest().fragments[0].physical_rows, 33);
  EXPECT_EQ(after->manifest().fragments[0].id, 5u);  // a fresh id
  // Offsets keep their rows: every offset takes the same row as before.
  EXPECT_EQ(Ids(*after), ids);
  std::vector<int64_t> offsets = Range(0, 33);
  auto taken = after->TakeOffsets(offsets, {}).ValueOrDie();
  EXPECT_EQ(Int64Column(*taken, "id"), ids);

  // Compacted already: nothing to do, no version.
  ASSERT_OK_AND_ASSIGN(stats, table->Compact());
  EXPECT_EQ(stats.fragments_removed, 0);
  EXPECT_EQ(table->version(), 7u);
  // The old versions still read: compaction removes no file.
  ASSERT_OK(table->Checkout(5));
  EXPECT_EQ(Ids(**table->snapshot()), Range(0, 50));
}

TEST_P(MaintenanceTest, CompactRespectsTheTargetAndLeavesLargeFragments) {
  auto table = Fragmented(1, 40);  // large: 40 >= target
  for (int i = 1; i <= 6; ++i) {
    auto more = ReaderOf({IdBatch(30 + i * 10, 10)});
    ASSERT_OK(table->Append(more.get()).status());
  }
  CompactionOptions options;
  options.target_rows_per_fragment = 25;
  ASSERT_OK_AND_ASSIGN(auto stats, table->Compact(options));
  EXPECT_EQ(stats.fragments_removed, 6);
  EXPECT_EQ(stats.fragments_added, 3);
  auto snapshot = table->snapshot().ValueOrDie();
  std::vector<int64_t> rows;
  for (const auto& f : snapshot->manifest().fragments) rows.push_back(f.physical_rows);
  EXPECT_THAT(rows, ElementsAre(40, 20, 20, 20));
  EXPECT_EQ(snapshot->manifest().fragments[0].id, 0u);  // untouched
  EXPECT_EQ(Ids(*snapshot), Range(0, 100));
  // The last small fragment takes the new rows in; the others, alone in their group,
  // are left as they are.
  auto last = ReaderOf({IdBatch(100, 3)});
  ASSERT_OK(table->Append(last.get()).status());
  ASSERT_OK_AND_ASSIGN(stats, table->Compact(options));
  EXPECT_EQ(stats.fragments_removed, 2);
  EXPECT_EQ(stats.fragments_added, 1);
  rows.clear();
  snapshot = table->snapshot().ValueOrDie();
  for (const auto& f : snapshot->manifest().fragments) rows.push_back(f.physical_rows);
  EXPECT_THAT(rows, ElementsAre(40, 20, 20, 23));
  EXPECT_EQ(Ids(*snapshot), Range(0, 103));
  ASSERT_OK_AND_ASSIGN(stats, table->Compact(options));
  EXPECT_EQ(stats.fragments_removed, 0);
  options.target_rows_per_fragment = -1;
  ASSERT_RAISES(Invalid, table->Compact(options));
}

TEST_P(MaintenanceTest, CompactKeepsAnAppendThatRacesIt) {
  auto table = Fragmented(3, 10);
  ASSERT_OK_AND_ASSIGN(auto other, Table::Open("t", store_));
  bool appended = false;
  auto progress = [&](std::string_view, int64_t done, int64_t) {
    if (appended || done == 0) return;
    appended = true;
    auto more = ReaderOf({IdBatch(30, 4)});
    ASSERT_OK(other->Append(more.get()).status());  // commits version 4 first
  };
  ASSERT_OK_AND_ASSIGN(auto stats, table->Compact({}, progress));
  EXPECT_TRUE(appended);
  EXPECT_EQ(stats.fragments_removed, 3);
  EXPECT_EQ(table->version(), 5u);
  auto snapshot = table->snapshot().ValueOrDie();
  ASSERT_EQ(snapshot->manifest().fragments.size(), 2u);
  EXPECT_EQ(snapshot->manifest().fragments[1].physical_rows, 4);
  EXPECT_EQ(Ids(*snapshot), Range(0, 34));
}

TEST_P(MaintenanceTest, CompactPlansAgainAfterAConflictingDelete) {
  auto table = Fragmented(3, 10);
  ASSERT_OK_AND_ASSIGN(auto other, Table::Open("t", store_));
  int conflicts = 0;
  auto progress = [&](std::string_view, int64_t done, int64_t) {
    if (done != 0 || conflicts == 1) return;
    ++conflicts;
    ASSERT_OK(DeleteWhere(*other, "id = 12").status());
  };
  ASSERT_OK_AND_ASSIGN(auto stats, table->Compact({}, progress));
  EXPECT_EQ(conflicts, 1);
  EXPECT_EQ(stats.fragments_removed, 3);
  EXPECT_EQ(stats.files_removed, 4);  // three fragments and the delete's file
  auto ids = Ids(**table->snapshot());
  auto expected = Range(0, 30);
  expected.erase(expected.begin() + 12);
  EXPECT_EQ(ids, expected);
}

TEST_P(MaintenanceTest, CompactGivesUpAfterThreeConflicts) {
  // Conflicts every time: gives up, commits nothing, leaves no file behind.
  auto fresh = Fragmented(3, 10);
  ASSERT_OK_AND_ASSIGN(auto writer, Table::Open("t", store_));
  int64_t next = 0;
  auto always = [&](std::string_view, int64_t done, int64_t) {
    if (done != 0) return;
    ASSERT_OK(DeleteWhere(*writer, "id = " + std::to_string(next++)).status());
  };
  const auto files_before = FileSizes(*store_).size();
  auto failed = fresh->Compact({}, always);
  ASSERT_RAISES(Invalid, failed.status());
  EXPECT_THAT(failed.status().message(),
              HasSubstr("Optimize of table 't' gave up after 3 attempts"));
  EXPECT_THAT(failed.status().message(), HasSubstr("was changed by a concurrent write"));
  EXPECT_EQ(FileSizes(*store_).size(), files_before + 3);  // the deletes' files only
  for (const auto& v : fresh->ListVersions().ValueOrDie()) {
    EXPECT_NE(v.operation, "optimize");
  }
}

TEST_P(MaintenanceTest, CompactThenCleanupLeavesOnlyTheCompactedFiles) {
  auto table = Fragmented(4, 5);
  ASSERT_OK(DeleteWhere(*table, "id = 7").status());
  ASSERT_OK(table->Compact().status());
  CleanupOptions options;
  options.older_than_ms = 0;
  options.now_ms = NowMs() + 1000;
  ASSERT_OK_AND_ASSIGN(auto stats, table->CleanupOldVersions(options));
  EXPECT_EQ(stats.old_versions, 5);
  EXPECT_EQ(stats.files_removed, 5);  // four fragments, one deletion file
  EXPECT_EQ(FileSizes(*store_).size(), 1u);
  auto expected = Range(0, 20);
  expected.erase(expected.begin() + 7);
  EXPECT_EQ(Ids(**Table::Open("t", store_).ValueOrDie()->snapshot()), expected);
}

TEST(Maintenance, CompactOnADetachedHandleFails) {
  auto store = std::make_shared<MemoryStore>("memory://t");
  auto first = ReaderOf({IdBatch(0, 3)});
  ASSERT_OK_AND_ASSIGN(auto table,
                       Table::Create("t", store, first->schema(), first.get()));
  auto more = ReaderOf({IdBatch(3, 3)});
  ASSERT_OK(table->Append(more.get()).status());
  ASSERT_OK(table->Checkout(1));
  ASSERT_RAISES(Invalid, table->Compact());
}

}  // namespace
}  // namespace riffledb
