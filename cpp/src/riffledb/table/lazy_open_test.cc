// Fragments opened on first read (issue #10, item 8): a version of more than
// Snapshot::kEagerFragments fragments opens only the files a read needs.
#include <gmock/gmock.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/storage/store.h"
#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/status.h"

namespace riffledb {
namespace {

using riffledb::testing::DeleteWhere;
using riffledb::testing::IdBatch;
using riffledb::testing::Int64Column;
using riffledb::testing::ReaderOf;
using riffledb::testing::TakeColumns;
using riffledb::testing::TempDir;
using riffledb::testing::UInt64Column;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kFragments = 80;  // above kEagerFragments
static_assert(kFragments > static_cast<int64_t>(Snapshot::kEagerFragments));

class LazyOpenTest : public ::testing::Test {
 protected:
  // A table of kFragments fragments of 3 rows: ids 0..239, fragment f holds 3f..3f+2.
  void SetUp() override {
    auto first = ReaderOf({IdBatch(0, 3)});
    auto table = Table::Create("t", Store(), first->schema(), first.get()).ValueOrDie();
    for (int64_t f = 1; f < kFragments; ++f) {
      auto more = ReaderOf({IdBatch(3 * f, 3)});
      ASSERT_OK(table->Append(more.get()).status());
    }
  }
  std::shared_ptr<DirectoryStore> Store() {
    return std::make_shared<DirectoryStore>(path_);
  }
  // A fresh handle, as another process would open the table.
  std::shared_ptr<const Snapshot> Fresh() {
    auto table = Table::Open("t", Store()).ValueOrDie();
    return table->snapshot().ValueOrDie();
  }
  std::string DataFile(const Snapshot& snapshot, size_t f) {
    return path_ + "/" + snapshot.manifest().fragments[f].path;
  }

  TempDir dir_;
  std::string path_ = dir_.path() + "/t.riffle";
};

TEST_F(LazyOpenTest, OpensOnlyTheFragmentsRead) {
  auto snapshot = Fresh();
  EXPECT_EQ(snapshot->unopened_fragments(), static_cast<size_t>(kFragments));
  EXPECT_EQ(snapshot->num_rows(), 3 * kFragments);
  EXPECT_EQ(*snapshot->CountRows(nullptr), 3 * kFragments);
  EXPECT_EQ(snapshot->unopened_fragments(), static_cast<size_t>(kFragments));

  std::vector<int64_t> offsets = {212, 5, 4, 212};
  ASSERT_OK_AND_ASSIGN(auto batch,
                       snapshot->TakeOffsets(offsets, TakeColumns(*snapshot, {}, true)));
  EXPECT_THAT(Int64Column(*batch, "id"), ElementsAre(212, 5, 4, 212));
  EXPECT_THAT(UInt64Column(*batch, "_rowid"),
              ElementsAre((70ull << 32) | 2, (1ull << 32) | 2, (1ull << 32) | 1,
                          (70ull << 32) | 2));
  EXPECT_EQ(snapshot->unopened_fragments(), static_cast<size_t>(kFragments - 2));

  // A scan opens the rest, in order.
  ASSERT_OK_AND_ASSIGN(auto reader, snapshot->Scan({}));
  ASSERT_OK_AND_ASSIGN(auto all, reader->ToTable());
  auto ids = Int64Column(*all->CombineChunksToBatch().ValueOrDie(), "id");
  std::vector<int64_t> expected(3 * kFragments);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(ids, expected);
  EXPECT_EQ(snapshot->unopened_fragments(), 0u);
  // Every fragment open: the same rows again.
  ASSERT_OK_AND_ASSIGN(batch, snapshot->TakeOffsets(offsets, {}));
  EXPECT_THAT(Int64Column(*batch, "id"), ElementsAre(212, 5, 4, 212));
}

TEST_F(LazyOpenTest, SmallVersionsOpenEverything) {
  TempDir other;
  auto store = std::make_shared<DirectoryStore>(other.path() + "/s.riffle");
  auto first = ReaderOf({IdBatch(0, 3)});
  auto table = Table::Create("s", store, first->schema(), first.get()).ValueOrDie();
  for (size_t f = 1; f < Snapshot::kEagerFragments; ++f) {
    auto more = ReaderOf({IdBatch(3 * f, 3)});
    ASSERT_OK(table->Append(more.get()).status());
  }
  ASSERT_OK_AND_ASSIGN(
      table,
      Table::Open("s", std::make_shared<DirectoryStore>(other.path() + "/s.riffle")));
  EXPECT_EQ(table->snapshot().ValueOrDie()->unopened_fragments(), 0u);
}

TEST_F(LazyOpenTest, TakesAndRowIdsMatchAnEagerRead) {
  auto table = Table::Open("t", Store()).ValueOrDie();
  ASSERT_OK(DeleteWhere(*table, "id % 7 = 3").status());  // deletion files on most
  auto eager = table->snapshot().ValueOrDie();
  ASSERT_OK(eager->Scan({}).ValueOrDie()->ToTable().status());  // opens every fragment
  ASSERT_EQ(eager->unopened_fragments(), 0u);
  auto lazy = Fresh();
  ASSERT_EQ(lazy->unopened_fragments(), static_cast<size_t>(kFragments));
  ASSERT_EQ(lazy->num_rows(), eager->num_rows());

  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> pick(0, lazy->num_rows() - 1);
  for (int round = 0; round < 20; ++round) {
    std::vector<int64_t> offsets(9);
    for (auto& offset : offsets) offset = pick(rng);
    ASSERT_OK_AND_ASSIGN(auto want,
                         eager->TakeOffsets(offsets, TakeColumns(*eager, {}, true)));
    ASSERT_OK_AND_ASSIGN(auto got,
                         lazy->TakeOffsets(offsets, TakeColumns(*lazy, {}, true)));
    ASSERT_TRUE(got->Equals(*want)) << got->ToString() << want->ToString();
    ASSERT_OK_AND_ASSIGN(auto ids, lazy->RowIdsOfOffsets(offsets));
    EXPECT_EQ(ids, UInt64Column(*want, "_rowid"));
  }
  // By row id, on a fresh snapshot: deleted rows are not rows, wherever they are.
  auto by_id = Fresh();
  std::vector<uint64_t> ids = {(40ull << 32) | 1, 0, (79ull << 32) | 2};
  ASSERT_OK_AND_ASSIGN(auto rows, by_id->TakeRowIds(ids, {}));
  EXPECT_THAT(Int64Column(*rows, "id"), ElementsAre(121, 0, 239));
  std::vector<uint64_t> deleted = {(1ull << 32) | 0};  // id 3
  ASSERT_RAISES_WITH_MESSAGE(IndexError, "is not a row of version",
                             by_id->TakeRowIds(deleted, {}));
}

TEST_F(LazyOpenTest, AMissingFileFailsOnlyTheReadsThatNeedIt) {
  auto snapshot = Fresh();
  const std::string missing = DataFile(*snapshot, 10);
  std::filesystem::remove(missing);
  // Opening a table does not open this file; reads of other fragments work.
  auto fresh = Fresh();
  std::vector<int64_t> elsewhere = {0, 100};
  ASSERT_OK_AND_ASSIGN(auto batch, fresh->TakeOffsets(elsewhere, {}));
  EXPECT_THAT(Int64Column(*batch, "id"), ElementsAre(0, 100));
  std::vector<int64_t> there = {31};
  auto failed = fresh->TakeOffsets(there, {});
  ASSERT_RAISES_WITH_MESSAGE(IOError, missing, failed);
  EXPECT_THAT(failed.status().message(),
              HasSubstr("Reading version " + std::to_string(kFragments) + " of "));
  // The failure is not remembered as an opened fragment: it fails again, and the rest
  // of the snapshot still reads.
  ASSERT_RAISES_WITH_MESSAGE(IOError, missing, fresh->TakeOffsets(there, {}));
  ASSERT_OK_AND_ASSIGN(batch, fresh->TakeOffsets(elsewhere, {}));
  ASSERT_OK_AND_ASSIGN(auto reader, fresh->Scan({}));
  ASSERT_RAISES_WITH_MESSAGE(IOError, missing, reader->ToTable());
}

TEST_F(LazyOpenTest, ABatchCountOtherThanTheManifestsIsCorruption) {
  auto store = Store();
  auto table = Table::Open("t", store).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto manifest, store->ReadManifest(table->version()));
  manifest.fragments.update(5, [&](auto& f) { f.num_batches = 2; });  // the file has one
  manifest.version += 1;
  ASSERT_OK(store->Commit(manifest));
  auto snapshot = Fresh();
  ASSERT_EQ(snapshot->version(), manifest.version);
  std::vector<int64_t> offsets = {16};
  auto taken = snapshot->TakeOffsets(offsets, {});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "it has 1 record batches, the manifest says 2",
                             taken);
  EXPECT_EQ(GetErrorKind(taken.status()), ErrorKind::kCorruption);

  // Every checksum matches: verify finds it by opening every fragment, and restore
  // refuses to make the version the newest again.
  auto fresh = Table::Open("t", Store()).ValueOrDie();
  auto st = fresh->Verify();
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "the manifest says 2", st);
  EXPECT_EQ(GetErrorKind(st), ErrorKind::kCorruption);
  ASSERT_OK(fresh->Verify(manifest.version - 1));
  ASSERT_OK(fresh->Restore(manifest.version - 1).status());
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "the manifest says 2",
                             fresh->Restore(manifest.version));
}

TEST_F(LazyOpenTest, ConcurrentFirstReadsAgree) {
  auto snapshot = Fresh();
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  std::vector<std::vector<int64_t>> results(kThreads);
  std::vector<arrow::Status> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Every thread reads every row, starting at a different fragment.
      std::vector<int64_t> offsets(3 * kFragments);
      for (int64_t i = 0; i < 3 * kFragments; ++i) {
        offsets[i] = (i + 30 * t) % (3 * kFragments);
      }
      auto batch = snapshot->TakeOffsets(offsets, {});
      if (!batch.ok()) {
        errors[t] = batch.status();
        return;
      }
      results[t] = Int64Column(**batch, "id");
      for (int64_t i = 0; i < 3 * kFragments; ++i) {
        if (results[t][i] != offsets[i]) errors[t] = arrow::Status::Invalid("row ", i);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_OK(errors[t]);
  EXPECT_EQ(snapshot->unopened_fragments(), 0u);
}

TEST_F(LazyOpenTest, AForkedChildOpensWhatTheParentDidNot) {
  auto snapshot = Fresh();
  std::vector<int64_t> first = {0};
  ASSERT_OK(snapshot->TakeOffsets(first, {}).status());
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<int64_t> offsets = {239, 120, 1};
    auto batch = snapshot->TakeOffsets(offsets, {});
    const bool ok = batch.ok() && Int64Column(**batch, "id") == offsets &&
                    snapshot->unopened_fragments() == kFragments - 3;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(snapshot->unopened_fragments(), static_cast<size_t>(kFragments - 1));
}

TEST_F(LazyOpenTest, ACommitKeepsWhatThePreviousSnapshotOpened) {
  auto table = Table::Open("t", Store()).ValueOrDie();
  auto before = table->snapshot().ValueOrDie();
  std::vector<int64_t> offsets = {0, 3, 6};
  ASSERT_OK(before->TakeOffsets(offsets, {}).status());
  ASSERT_EQ(before->unopened_fragments(), static_cast<size_t>(kFragments - 3));
  auto more = ReaderOf({IdBatch(1000, 2)});
  ASSERT_OK(table->Append(more.get()).status());
  auto after = table->snapshot().ValueOrDie();
  // The 77 not opened stay so, and so does the new one.
  EXPECT_EQ(after->unopened_fragments(), static_cast<size_t>(kFragments - 3 + 1));
  std::vector<int64_t> last = {3 * kFragments + 1, 3};
  ASSERT_OK_AND_ASSIGN(auto batch, after->TakeOffsets(last, {}));
  EXPECT_THAT(Int64Column(*batch, "id"), ElementsAre(1001, 3));
}

// A memory table records its batch counts too: a large version opens lazily there.
TEST(LazyOpenMemory, ALargeMemoryVersionOpensOnFirstRead) {
  auto store = std::make_shared<MemoryStore>("memory://m");
  auto first = ReaderOf({IdBatch(0, 3)});
  auto table = Table::Create("m", store, first->schema(), first.get()).ValueOrDie();
  for (int64_t f = 1; f < kFragments; ++f) {
    auto more = ReaderOf({IdBatch(3 * f, 3)});
    ASSERT_OK(table->Append(more.get()).status());
  }
  ASSERT_OK_AND_ASSIGN(auto reopened, Table::Open("m", store));
  auto snapshot = reopened->snapshot().ValueOrDie();
  EXPECT_EQ(snapshot->unopened_fragments(), static_cast<size_t>(kFragments));
  std::vector<int64_t> offsets = {239, 0, 100};
  ASSERT_OK_AND_ASSIGN(auto batch, snapshot->TakeOffsets(offsets, {}));
  EXPECT_THAT(Int64Column(*batch, "id"), ElementsAre(239, 0, 100));
  EXPECT_EQ(snapshot->unopened_fragments(), static_cast<size_t>(kFragments - 3));
  ASSERT_OK(snapshot->OpenAll());
  EXPECT_EQ(snapshot->unopened_fragments(), 0u);
}

}  // namespace
}  // namespace riffledb
