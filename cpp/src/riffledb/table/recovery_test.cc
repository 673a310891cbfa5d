// Recovery (issue #10, item 4): a damaged or foreign manifest never hides the intact
// versions.
#include <gmock/gmock.h>

#include <string>
#include <vector>

#include "riffledb/io/filesystem.h"
#include "riffledb/storage/store.h"
#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/files.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/status.h"

namespace riffledb {
namespace {

using riffledb::testing::IdBatch;
using riffledb::testing::Ids;
using riffledb::testing::Int64Column;
using riffledb::testing::Range;
using riffledb::testing::ReaderOf;
using riffledb::testing::TempDir;
using ::testing::HasSubstr;

std::string ManifestPath(const std::string& table, uint64_t version) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020llu.json",
                static_cast<unsigned long long>(version));
  return table + "/_versions/" + name;
}

class RecoveryTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Versions 1 (ids 0..9), 2 (0..19), 3 (0..29); then version 3's manifest is replaced
  // by the damage under test (or a foreign version 4 is added).
  void SetUp() override {
    path_ = dir_.path() + "/t.riffle";
    auto first = ReaderOf({IdBatch(0, 10)});
    auto table = Table::Create("t", Store(), first->schema(), first.get()).ValueOrDie();
    for (int64_t start : {10, 20}) {
      auto more = ReaderOf({IdBatch(start, 10)});
      ASSERT_OK(table->Append(more.get()).status());
    }
    const std::string& damage = GetParam();
    if (damage == "garbage") {
      ASSERT_OK(
          testing::WriteFile(ManifestPath(path_, 3), "{\"format_version\": 1, \"ver"));
    } else if (damage == "non-utf8") {
      ASSERT_OK(testing::WriteFile(ManifestPath(path_, 3), "{\"op\xff\xfe\": 1}"));
    } else if (damage == "empty") {
      ASSERT_OK(testing::WriteFile(ManifestPath(path_, 3), ""));
    } else if (damage == "foreign") {
      // Another program's file named like the next manifest: version 4.
      ASSERT_OK(testing::WriteFile(ManifestPath(path_, 4), "hello"));
    }
    damaged_ = damage == "foreign" ? 4 : 3;
    intact_ = damage == "foreign" ? 3 : 2;
  }
  std::shared_ptr<DirectoryStore> Store() {
    return std::make_shared<DirectoryStore>(path_);
  }

  TempDir dir_;
  std::string path_;
  uint64_t damaged_ = 0;
  uint64_t intact_ = 0;
};

TEST_P(RecoveryTest, OpensListsAndNamesTheDamage) {
  ASSERT_OK_AND_ASSIGN(auto table, Table::Open("t", Store()));
  EXPECT_EQ(table->version(), damaged_);
  auto snapshot = table->snapshot();
  ASSERT_FALSE(snapshot.ok());
  EXPECT_EQ(GetErrorKind(snapshot.status()), ErrorKind::kCorruption);
  EXPECT_THAT(snapshot.status().message(),
              HasSubstr("Version " + std::to_string(damaged_) + " of table 't'"));
  EXPECT_THAT(snapshot.status().message(), HasSubstr(ManifestPath(path_, damaged_)));
  EXPECT_THAT(snapshot.status().message(), HasSubstr("restore(n)"));

  ASSERT_OK_AND_ASSIGN(auto versions, table->ListVersions());
  ASSERT_EQ(versions.size(), damaged_);
  for (uint64_t v = 1; v <= damaged_; ++v) {
    const auto& info = versions[v - 1];
    EXPECT_EQ(info.version, v);
    if (v == damaged_) {
      EXPECT_THAT(info.damage, HasSubstr(ManifestPath(path_, v)));
      EXPECT_EQ(info.timestamp_ms, -1);
    } else {
      EXPECT_EQ(info.damage, "");
      EXPECT_GT(info.timestamp_ms, 0);
    }
  }
  // Writes on top of the damaged version fail, naming it.
  auto more = ReaderOf({IdBatch(100, 1)});
  auto appended = table->Append(more.get());
  ASSERT_FALSE(appended.ok());
  EXPECT_EQ(GetErrorKind(appended.status()), ErrorKind::kCorruption);
  EXPECT_THAT(appended.status().message(), HasSubstr(ManifestPath(path_, damaged_)));
}

TEST_P(RecoveryTest, CheckoutAndOpenReachTheIntactVersions) {
  ASSERT_OK_AND_ASSIGN(auto table, Table::Open("t", Store()));
  ASSERT_OK(table->Checkout(intact_));
  EXPECT_EQ(Ids(*table), Range(0, 10 * static_cast<int64_t>(intact_)));
  ASSERT_OK(table->Checkout(1));
  EXPECT_EQ(Ids(*table), Range(0, 10));
  ASSERT_OK_AND_ASSIGN(auto pinned, Table::Open("t", Store(), intact_));
  EXPECT_EQ(Ids(*pinned), Range(0, 10 * static_cast<int64_t>(intact_)));
  auto damaged = Table::Open("t", Store(), damaged_);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(GetErrorKind(damaged.status()), ErrorKind::kCorruption);
}

TEST_P(RecoveryTest, RestoreCommitsAnIntactVersionOnTop) {
  ASSERT_OK_AND_ASSIGN(auto table, Table::Open("t", Store()));
  ASSERT_OK_AND_ASSIGN(uint64_t restored, table->Restore(intact_));
  EXPECT_EQ(restored, damaged_ + 1);
  EXPECT_EQ(table->version(), restored);
  EXPECT_FALSE(table->detached());
  const auto expected = Range(0, 10 * static_cast<int64_t>(intact_));
  EXPECT_EQ(Ids(*table), expected);
  // A fresh handle opens the restored version; writes work again.
  ASSERT_OK_AND_ASSIGN(auto reopened, Table::Open("t", Store()));
  EXPECT_EQ(Ids(*reopened), expected);
  auto more = ReaderOf({IdBatch(500, 5)});
  ASSERT_OK_AND_ASSIGN(uint64_t appended, reopened->Append(more.get()));
  EXPECT_EQ(appended, restored + 1);
  ASSERT_OK_AND_ASSIGN(auto versions, reopened->ListVersions());
  EXPECT_EQ(versions[restored - 1].operation, "restore");
  // The damaged version is kept, still listed as damaged.
  EXPECT_NE(versions[damaged_ - 1].damage, "");
}

TEST_P(RecoveryTest, RestoreRefusesMissingOrDamagedVersions) {
  ASSERT_OK_AND_ASSIGN(auto table, Table::Open("t", Store()));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "version 9 of table 't': it does not exist",
                             table->Restore(9));
  auto damaged = table->Restore(damaged_);
  ASSERT_FALSE(damaged.ok());
  EXPECT_EQ(GetErrorKind(damaged.status()), ErrorKind::kCorruption);
}

INSTANTIATE_TEST_SUITE_P(Damage, RecoveryTest,
                         ::testing::Values("garbage", "non-utf8", "empty", "foreign"));

// Restore continues fragment ids after every later version's, so row ids never repeat
// within a table.
TEST(Restore, FragmentIdsNeverRepeat) {
  TempDir dir;
  auto store = std::make_shared<DirectoryStore>(dir.path() + "/t.riffle");
  auto first = ReaderOf({IdBatch(0, 10)});
  auto table = Table::Create("t", store, first->schema(), first.get()).ValueOrDie();
  auto more = ReaderOf({IdBatch(10, 10)});
  ASSERT_OK(table->Append(more.get()).status());  // fragment 1
  ASSERT_OK(table->Restore(1).status());          // version 3 = version 1
  auto again = ReaderOf({IdBatch(20, 10)});
  ASSERT_OK(table->Append(again.get()).status());  // must be fragment 2, not 1
  auto snapshot = table->snapshot().ValueOrDie();
  ASSERT_EQ(snapshot->manifest().fragments.size(), 2u);
  EXPECT_EQ(snapshot->manifest().fragments[0].id, 0u);
  EXPECT_EQ(snapshot->manifest().fragments[1].id, 2u);
}

// A restore commits the old version's fragment list over a newer one's segments, and
// the appends after it extend the restored list: what a fresh reader finds on disk is
// exactly the restored fragments, then the appended ones (format 2 segments, issue #10).
TEST(Restore, ALongListReadsBackFromDiskAfterMoreAppends) {
  TempDir dir;
  const std::string path = dir.path() + "/t.riffle";
  auto store = std::make_shared<DirectoryStore>(path);
  auto first = ReaderOf({IdBatch(0, 1)});
  auto table = Table::Create("t", store, first->schema(), first.get()).ValueOrDie();
  for (int64_t i = 1; i < 60; ++i) {  // 60 fragments: several segments and a tail
    auto row = ReaderOf({IdBatch(i, 1)});
    ASSERT_OK(table->Append(row.get()).status());
  }
  ASSERT_OK(table->Restore(25).status());  // fragments 0..24
  for (int64_t i = 0; i < 12; ++i) {
    auto row = ReaderOf({IdBatch(100 + i, 1)});
    ASSERT_OK(table->Append(row.get()).status());
  }
  std::vector<uint32_t> expected;
  for (uint32_t id = 0; id < 25; ++id) expected.push_back(id);
  for (uint32_t id = 60; id < 72; ++id) expected.push_back(id);

  auto fresh = std::make_shared<DirectoryStore>(path);
  ASSERT_OK_AND_ASSIGN(auto manifest, fresh->ReadManifest(60 + 1 + 12));
  std::vector<uint32_t> ids;
  for (const auto& fragment : manifest.fragments) ids.push_back(fragment.id);
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(manifest.history.size(), 72u);  // versions 1..72
  auto reopened = Table::Open("t", fresh).ValueOrDie();
  ASSERT_OK(reopened->Verify());
}

}  // namespace
}  // namespace riffledb
