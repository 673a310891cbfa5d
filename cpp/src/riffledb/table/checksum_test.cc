// Format 2 at the table level (issue #10, items 3 and 8): checksums found by reads and by
// Verify, segments and history across many commits, format-1 tables still readable.
#include <gmock/gmock.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "riffledb/format/manifest.h"
#include "riffledb/format/table_dir.h"
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
using riffledb::testing::ReaderOf;
using riffledb::testing::TempDir;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

int64_t CountRows(const Table& table) {
  auto snapshot = table.snapshot();
  if (!snapshot.ok()) return -1;
  return (*snapshot)->num_rows();
}

std::vector<std::string> FilesIn(const std::string& dir) {
  std::vector<std::string> paths;
  if (!fs::exists(dir)) return paths;
  for (const auto& entry : fs::directory_iterator(dir)) paths.push_back(entry.path());
  std::sort(paths.begin(), paths.end());
  return paths;
}

uint64_t BytesIn(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& path : FilesIn(dir)) total += fs::file_size(path);
  return total;
}

void FlipBit(const std::string& path, uint64_t byte, int bit) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(byte));
  char c = 0;
  f.get(c);
  c = static_cast<char>(c ^ (1 << bit));
  f.seekp(static_cast<std::streamoff>(byte));
  f.put(c);
}

class Format2Test : public ::testing::Test {
 protected:
  std::shared_ptr<DirectoryStore> Store() {
    return std::make_shared<DirectoryStore>(path_);
  }
  std::shared_ptr<Table> Create(int64_t rows) {
    auto data = ReaderOf({IdBatch(0, rows)});
    return Table::Create("t", Store(), data->schema(), data.get()).ValueOrDie();
  }

  TempDir dir_;
  std::string path_ = dir_.path() + "/t.riffle";
};

TEST_F(Format2Test, ManyCommitsKeepManifestsSmallAndTheHistoryWhole) {
  auto table = Create(1);
  constexpr int kAppends = 300;
  for (int i = 1; i <= kAppends; ++i) {
    auto one = ReaderOf({IdBatch(i, 1)});
    ASSERT_OK(table->Append(one.get()).status());
    if (i % 100 == 0)
      ASSERT_OK(testing::DeleteWhere(*table, "id = " + std::to_string(i)));
  }
  const uint64_t latest = kAppends + 3 + 1;
  ASSERT_EQ(table->version(), latest);
  // Every manifest is small: at most 8 inline entries per list and O(log n) segments.
  for (const auto& manifest : FilesIn(path_ + "/_versions")) {
    EXPECT_LT(fs::file_size(manifest), 4096u) << manifest;
  }
  // Metadata grows linearly: a few hundred bytes per version, segments included.
  const uint64_t metadata = BytesIn(path_ + "/_versions") + BytesIn(path_ + "/_segments");
  EXPECT_LT(metadata, latest * 3000) << metadata;

  // A fresh handle lists every version from the history of the newest manifest.
  ASSERT_OK_AND_ASSIGN(auto reopened, Table::Open("t", Store()));
  ASSERT_OK_AND_ASSIGN(auto versions, reopened->ListVersions());
  ASSERT_EQ(versions.size(), latest);
  for (uint64_t v = 1; v <= latest; ++v) {
    ASSERT_EQ(versions[v - 1].version, v);
    EXPECT_TRUE(versions[v - 1].damage.empty());
    EXPECT_GT(versions[v - 1].timestamp_ms, 0);
  }
  EXPECT_EQ(versions[0].operation, "create");
  EXPECT_EQ(versions[1].operation, "append");
  EXPECT_EQ(versions[101].operation, "delete");  // after the 100th append
  EXPECT_EQ(CountRows(*reopened), 1 + kAppends - 3);
  // Old versions read back whole through the segments they share.
  ASSERT_OK(reopened->Checkout(51));
  std::vector<int64_t> expected;
  for (int64_t i = 0; i <= 50; ++i) expected.push_back(i);
  EXPECT_EQ(Ids(*reopened), expected);
  ASSERT_OK(reopened->Verify());
  ASSERT_OK(reopened->Verify(latest));
}

TEST_F(Format2Test, Format1TablesStayReadableAndWritable) {
  auto table = Create(10);
  for (int64_t start : {10, 20}) {
    auto more = ReaderOf({IdBatch(start, 10)});
    ASSERT_OK(table->Append(more.get()).status());
  }
  ASSERT_OK(testing::DeleteWhere(*table, "id = 5"));
  // Rewrite all four manifests as a format-1 writer wrote them.
  format::TableDir dir(io::Local(), path_);
  for (uint64_t v = 1; v <= 4; ++v) {
    ASSERT_OK_AND_ASSIGN(auto manifest, dir.ReadManifest(v));
    ASSERT_OK_AND_ASSIGN(auto text, format::SerializeManifestV1(manifest));
    char name[32];
    std::snprintf(name, sizeof(name), "/%020llu.json",
                  static_cast<unsigned long long>(v));
    ASSERT_OK(testing::WriteFile(path_ + "/_versions" + name, text));
  }
  ASSERT_OK_AND_ASSIGN(auto old, Table::Open("t", Store()));
  EXPECT_EQ(CountRows(*old), 29);
  ASSERT_OK_AND_ASSIGN(auto versions, old->ListVersions());
  ASSERT_EQ(versions.size(), 4u);
  EXPECT_EQ(versions[3].operation, "delete");
  ASSERT_OK(old->Verify());  // no checksums: the structural checks only

  auto more = ReaderOf({IdBatch(30, 5)});
  ASSERT_OK(old->Append(more.get()).status());
  ASSERT_OK_AND_ASSIGN(auto manifest, dir.ReadManifest(5));
  EXPECT_EQ(manifest.format_version, 2);
  EXPECT_EQ(manifest.history.size(), 1u);  // from its base on: older ones are format 1
  EXPECT_FALSE(manifest.fragments[0].digest.has_value());
  EXPECT_TRUE(manifest.fragments[3].digest.has_value());
  ASSERT_OK_AND_ASSIGN(versions, old->ListVersions());
  ASSERT_EQ(versions.size(), 5u);
  EXPECT_EQ(versions[0].operation, "create");
  EXPECT_EQ(versions[4].operation, "append");
  EXPECT_EQ(CountRows(*old), 34);
}

TEST_F(Format2Test, VerifyFindsAFlippedBitInAFragment) {
  auto table = Create(1000);
  ASSERT_OK(table->Verify());
  auto data = FilesIn(path_ + "/data");
  ASSERT_EQ(data.size(), 1u);
  // A bit inside the id values: reads return a wrong id, no structural check fails.
  FlipBit(data[0], fs::file_size(data[0]) / 2, 3);
  ASSERT_OK_AND_ASSIGN(auto fresh, Table::Open("t", Store()));
  auto st = fresh->Verify();
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Version 1 of table 't' is damaged", st);
  EXPECT_THAT(st.message(), HasSubstr(data[0]));
  EXPECT_THAT(st.message(), HasSubstr("checksum mismatch"));
  EXPECT_EQ(GetErrorKind(st), ErrorKind::kCorruption);
}

TEST_F(Format2Test, ReadsFindADamagedDeletionFileOrSegment) {
  auto table = Create(100);
  ASSERT_OK(testing::DeleteWhere(*table, "id < 3"));
  auto deletions = FilesIn(path_ + "/_deletions");
  ASSERT_EQ(deletions.size(), 1u);
  FlipBit(deletions[0], fs::file_size(deletions[0]) - 20, 0);
  ASSERT_OK_AND_ASSIGN(auto fresh, Table::Open("t", Store()));
  auto snapshot = fresh->snapshot();
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "checksum mismatch", snapshot);
  EXPECT_THAT(snapshot.status().message(), HasSubstr(deletions[0]));

  // Enough appends to write segments; then damage the segments the latest version uses.
  for (int i = 0; i < 20; ++i) {
    auto one = ReaderOf({IdBatch(1000 + i, 1)});
    ASSERT_OK(fresh->Restore(1).status());
    ASSERT_OK(fresh->Append(one.get()).status());
  }
  auto segments = FilesIn(path_ + "/_segments");
  ASSERT_FALSE(segments.empty());
  for (const auto& segment : segments) FlipBit(segment, 5, 1);
  ASSERT_OK_AND_ASSIGN(auto damaged, Table::Open("t", Store()));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "its segment '_segments/", damaged->snapshot());
  ASSERT_OK_AND_ASSIGN(auto versions, damaged->ListVersions());
  EXPECT_THAT(versions.back().damage, HasSubstr("_segments/"));
  EXPECT_TRUE(versions.front().damage.empty());
}

// The store keeps the manifests it committed parsed; verify and cleanup must read the
// file as it is on disk now, or damage since the commit goes unseen.
TEST_F(Format2Test, VerifyAndCleanupReadTheManifestFromDiskNotTheCache) {
  auto store = Store();
  auto data = ReaderOf({IdBatch(0, 10)});
  auto table = Table::Create("t", store, data->schema(), data.get()).ValueOrDie();
  auto more = ReaderOf({IdBatch(10, 10)});
  ASSERT_OK(table->Append(more.get()).status());
  ASSERT_OK(table->Verify(1));
  const std::string first = path_ + "/_versions/00000000000000000001.json";
  FlipBit(first, fs::file_size(first) - 4, 2);

  auto st = table->Verify(1);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Version 1 of table 't' is damaged", st);
  EXPECT_EQ(GetErrorKind(st), ErrorKind::kCorruption);
  ASSERT_OK(table->Verify(2));

  // Version 1 would stay (newer than the cutoff): its files are unknown, so nothing goes.
  CleanupOptions options;
  options.older_than_ms = 60'000;
  auto cleaned = table->CleanupOldVersions(options);
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Cannot clean up table 't': the files of version 1 are unknown", cleaned);
  EXPECT_EQ(store->ListVersions()->size(), 2u);
}

TEST_F(Format2Test, AFragmentOfTheWrongSizeIsDamage) {
  auto table = Create(100);
  auto data = FilesIn(path_ + "/data");
  ASSERT_EQ(data.size(), 1u);
  fs::resize_file(data[0], fs::file_size(data[0]) + 8);  // appended to: footer intact
  ASSERT_OK_AND_ASSIGN(auto fresh, Table::Open("t", Store()));
  auto snapshot = fresh->snapshot();
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "bytes, the manifest says", snapshot);
  EXPECT_EQ(GetErrorKind(snapshot.status()), ErrorKind::kCorruption);
}

}  // namespace
}  // namespace riffledb

namespace riffledb {
namespace {

// The store keeps the newest manifests parsed; a table dropped and created again under
// the same name must not be read through them.
TEST(ManifestCache, ATableCreatedAgainIsReadFromDisk) {
  TempDir dir;
  const std::string path = dir.path() + "/t.riffle";
  auto store = std::make_shared<DirectoryStore>(path);
  auto data = ReaderOf({IdBatch(0, 10)});
  auto table = Table::Create("t", store, data->schema(), data.get()).ValueOrDie();
  for (int64_t start : {10, 20, 30}) {
    auto more = ReaderOf({IdBatch(start, 10)});
    ASSERT_OK(table->Append(more.get()).status());
  }
  ASSERT_EQ(table->version(), 4u);
  // Another process drops the table and creates a new one of 3 rows.
  std::filesystem::remove_all(path);
  auto other = ReaderOf({IdBatch(100, 3)});
  ASSERT_OK(Table::Create("t", std::make_shared<DirectoryStore>(path), other->schema(),
                          other.get())
                .status());
  ASSERT_OK(table->CheckoutLatest());
  EXPECT_EQ(table->version(), 1u);
  EXPECT_EQ(Ids(*table), (std::vector<int64_t>{100, 101, 102}));
}

}  // namespace
}  // namespace riffledb
