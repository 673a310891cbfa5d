// Atomic drop and create (issue #10, item 6): a fault at any operation of a drop or a
// create leaves the whole table listed or none of it; writers racing a drop get "was
// dropped", never recreate the table, and never report failure for a version they
// committed.
#include <arrow/api.h>
#include <gmock/gmock.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/db/database.h"
#include "riffledb/io/fault_injection.h"
#include "riffledb/table/snapshot.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/status.h"

namespace riffledb {
namespace {

using io::Fault;
using testing::DeleteWhere;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::IdBatch;
using testing::Int64Column;
using ::testing::IsEmpty;
using testing::ReaderOf;
using testing::TempDir;

constexpr Fault kFaults[] = {Fault::kError, Fault::kShortWrite, Fault::kAfter,
                             Fault::kCrash};

std::vector<int64_t> Range(int64_t start, int64_t end) {
  std::vector<int64_t> ids(end - start);
  std::iota(ids.begin(), ids.end(), start);
  return ids;
}

std::vector<int64_t> Ids(Table& table) {
  auto reader = table.snapshot().ValueOrDie()->Scan({}).ValueOrDie();
  auto all = reader->ToTable().ValueOrDie();
  if (all->num_rows() == 0) return {};
  return Int64Column(*all->CombineChunksToBatch().ValueOrDie(), "id");
}

std::vector<std::string> Names(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// The table "t" in `dir`, seen by a fresh connection: either absent, or present with
// versions 1..`versions` where version v holds ids 0..100*v.
void ExpectWholeOrAbsent(const std::string& dir, uint64_t versions,
                         const std::string& context, bool* present) {
  auto db = Database::Connect(dir).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto names, db->TableNames());
  ASSERT_OK_AND_ASSIGN(bool has, db->HasTable("t"));
  EXPECT_EQ(has, !names.empty()) << context;
  *present = has;
  if (!has) {
    EXPECT_THAT(names, IsEmpty()) << context;
    return;
  }
  EXPECT_THAT(names, ElementsAre("t")) << context;
  for (uint64_t v = 1; v <= versions; ++v) {
    auto table = db->OpenTable("t", v);
    ASSERT_TRUE(table.ok()) << context << ": version " << v << ": "
                            << table.status().ToString();
    EXPECT_EQ(Ids(**table), Range(0, 100 * static_cast<int64_t>(v)))
        << context << ": version " << v;
  }
}

// A table "t" at version 3 (ids 0..299) in a database on `fs`.
std::shared_ptr<Database> ThreeVersions(const std::string& dir,
                                        std::shared_ptr<io::FileSystem> fs) {
  auto db = Database::ConnectDirectory(dir, std::move(fs)).ValueOrDie();
  auto first = ReaderOf({IdBatch(0, 100)});
  auto table =
      db->CreateTable("t", first->schema(), first.get(), CreateMode::kCreate, false)
          .ValueOrDie();
  for (int64_t start : {100, 200}) {
    auto more = ReaderOf({IdBatch(start, 100)});
    EXPECT_TRUE(table->Append(more.get()).ok());
  }
  return db;
}

TEST(DropTest, FaultAtEveryOperationLeavesWholeTableOrNone) {
  int64_t operations = 0;
  {
    TempDir dir;
    auto faulty = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
    auto db = ThreeVersions(dir.path() + "/db", faulty);
    faulty->Disarm();
    ASSERT_OK(db->DropTable("t", false));
    operations = faulty->operations();
    ASSERT_GE(operations, 2);  // at least the rename and the delete
  }
  int dropped = 0;
  int kept = 0;
  for (Fault fault : kFaults) {
    for (int64_t n = 1; n <= operations; ++n) {
      const std::string context =
          std::string(io::FaultName(fault)) + " at operation " + std::to_string(n);
      TempDir dir;
      const std::string path = dir.path() + "/db";
      auto faulty = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
      auto db = ThreeVersions(path, faulty);
      faulty->FailAt(n, fault);
      arrow::Status st = db->DropTable("t", false);
      ASSERT_TRUE(faulty->fired()) << context;
      faulty->Disarm();
      bool present = false;
      ExpectWholeOrAbsent(path, 3, context, &present);
      if (st.ok()) {
        EXPECT_FALSE(present) << context << ": a drop that returned OK";
      }
      present ? ++kept : ++dropped;
      // Whatever the fault left, the next drop and connect finish the job: no table
      // and no tombstone.
      ASSERT_OK(db->DropTable("t", /*ignore_missing=*/true));
      ASSERT_OK(Database::Connect(path).status());
      EXPECT_THAT(Names(path), IsEmpty()) << context;
    }
  }
  // Faults before the rename keep the table, those after it do not.
  EXPECT_GT(dropped, 0);
  EXPECT_GT(kept, 0);
}

TEST(DropTest, CrashLeavesTombstoneThatIsNeverListedAndConnectRemoves) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  auto faulty = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
  auto db = ThreeVersions(path, faulty);
  faulty->FailAt(2, Fault::kCrash);  // after the rename, at the directory sync
  ASSERT_RAISES(IOError, db->DropTable("t", false));
  faulty->Disarm();
  auto names = Names(path);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_THAT(names[0], ::testing::StartsWith(Database::kTombstonePrefix));
  // Fixed length, whatever the table name: prefix + 32 hex digits.
  EXPECT_EQ(names[0].size(), sizeof(Database::kTombstonePrefix) - 1 + 32);
  ASSERT_OK_AND_ASSIGN(auto listed, db->TableNames());
  EXPECT_THAT(listed, IsEmpty());
  ASSERT_OK_AND_ASSIGN(bool has, db->HasTable("t"));
  EXPECT_FALSE(has);
  ASSERT_OK(Database::Connect(path).status());
  EXPECT_THAT(Names(path), IsEmpty());
}

TEST(DropTest, LongestNameDrops) {
  TempDir dir;
  auto db = Database::Connect(dir.path()).ValueOrDie();
  const std::string name(Database::kMaxTableNameLength, 'n');
  auto reader = ReaderOf({IdBatch(0, 3)});
  ASSERT_OK(
      db->CreateTable(name, reader->schema(), reader.get(), CreateMode::kCreate, false));
  ASSERT_OK(db->DropTable(name, false));
  ASSERT_OK_AND_ASSIGN(bool has, db->HasTable(name));
  EXPECT_FALSE(has);
  EXPECT_THAT(Names(dir.path()), IsEmpty());
}

TEST(DropTest, WritersOfADroppedTableFailAndNeverRecreateIt) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  auto db = ThreeVersions(path, io::Local());
  ASSERT_OK_AND_ASSIGN(auto table, db->OpenTable("t"));
  ASSERT_OK(db->DropTable("t", false));
  auto more = ReaderOf({IdBatch(300, 10)});
  auto appended = table->Append(more.get());
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "was dropped", appended);
  EXPECT_EQ(GetErrorKind(appended.status()), ErrorKind::kTableNotFound);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "t.riffle", table->Append(more.get()));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "was dropped", DeleteWhere(*table, "id < 5"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "was dropped", table->Restore(1));
  ASSERT_OK_AND_ASSIGN(auto names, db->TableNames());
  EXPECT_THAT(names, IsEmpty());
  EXPECT_THAT(Names(path), IsEmpty());
}

// Runs `hook` once, at the first exclusive create of a manifest (the commit), before or
// after it takes effect.
class HookFileSystem : public io::FaultInjectingFileSystem {
 public:
  HookFileSystem(std::function<void()> hook, bool after)
      : FaultInjectingFileSystem(io::Local()), hook_(std::move(hook)), after_(after) {}

  arrow::Status CreateExclusive(const std::string& path,
                                std::span<const uint8_t> data) override {
    const bool manifest = path.find("/_versions/") != std::string::npos;
    if (manifest && !after_ && !ran_.exchange(true)) hook_();
    arrow::Status st = FaultInjectingFileSystem::CreateExclusive(path, data);
    if (manifest && after_ && !ran_.exchange(true)) hook_();
    return st;
  }

 private:
  std::function<void()> hook_;
  const bool after_;
  std::atomic<bool> ran_{false};
};

TEST(DropTest, DropBetweenFragmentWriteAndCommitFailsTheCommit) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  ThreeVersions(path, io::Local());
  auto hooked = std::make_shared<HookFileSystem>(
      [&] { ASSERT_OK(Database::Connect(path).ValueOrDie()->DropTable("t", false)); },
      /*after=*/false);
  auto db = Database::ConnectDirectory(path, hooked).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto table, db->OpenTable("t"));
  auto more = ReaderOf({IdBatch(300, 10)});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "was dropped", table->Append(more.get()));
  // The commit did not recreate `t.riffle/_versions/`: no table, nothing on disk.
  ASSERT_OK_AND_ASSIGN(auto names, Database::Connect(path).ValueOrDie()->TableNames());
  EXPECT_THAT(names, IsEmpty());
  EXPECT_THAT(Names(path), IsEmpty());
}

TEST(DropTest, CommittedWriteReportsItsVersionWhenTheSnapshotCannotOpen) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  ThreeVersions(path, io::Local());
  auto hooked = std::make_shared<HookFileSystem>(
      [&] { ASSERT_OK(Database::Connect(path).ValueOrDie()->DropTable("t", false)); },
      /*after=*/true);
  auto db = Database::ConnectDirectory(path, hooked).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto table, db->OpenTable("t"));
  auto more = ReaderOf({IdBatch(300, 10)});
  // Version 4 was committed before the drop: the append succeeded.
  ASSERT_OK_AND_ASSIGN(uint64_t version, table->Append(more.get()));
  EXPECT_EQ(version, 4u);
  EXPECT_EQ(table->version(), 4u);
  // Reads report the files the drop removed.
  EXPECT_FALSE(table->snapshot().ok());
}

// Runs `hook` right after the `nth` listing of the table's versions (the first is
// OpenTable's check that it exists), which returns what it found before the hook.
class HookAfterListing : public io::FaultInjectingFileSystem {
 public:
  explicit HookAfterListing(std::function<void()> hook, int nth = 1)
      : FaultInjectingFileSystem(io::Local()), hook_(std::move(hook)), nth_(nth) {}

  arrow::Result<std::vector<std::string>> ListFileNames(const std::string& dir) override {
    auto names = FaultInjectingFileSystem::ListFileNames(dir);
    if (dir.ends_with("/_versions") && ++listings_ == nth_) hook_();
    return names;
  }

 private:
  std::function<void()> hook_;
  const int nth_;
  std::atomic<int> listings_{0};
};

TEST(DropTest, ATableDroppedWhileItOpensIsNotFound) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  ThreeVersions(path, io::Local());
  auto hooked = std::make_shared<HookAfterListing>(
      [&] { ASSERT_OK(Database::Connect(path).ValueOrDie()->DropTable("t", false)); });
  auto db = Database::ConnectDirectory(path, hooked).ValueOrDie();
  // Not "has no committed version": as if the check had come after the drop.
  auto opened = db->OpenTable("t");
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Table 't' was not found", opened.status());
  EXPECT_EQ(GetErrorKind(opened.status()), ErrorKind::kTableNotFound);
}

// Created by another connection between the open's listing of its versions (none) and
// its read of the newest one: the open finds the new table's first version. (It used to
// abort the process: a Result made of the OK status of that read.)
TEST(DropTest, ATableCreatedWhileItOpensIsOpened) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  ASSERT_OK(Database::Connect(path).status());
  auto hooked = std::make_shared<HookAfterListing>([&] {
    auto first = ReaderOf({IdBatch(0, 100)});
    ASSERT_OK(Database::Connect(path).ValueOrDie()->CreateTable(
        "t", first->schema(), first.get(), CreateMode::kCreate, false));
  });
  auto db = Database::ConnectDirectory(path, hooked).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto opened, db->OpenTable("t"));
  EXPECT_EQ(opened->version(), 1u);
  EXPECT_EQ(Ids(*opened), Range(0, 100));
}

// Drops "t" in `path` and creates it again with `versions` versions, through a connection
// of its own (as another process would): version v holds ids 1000..1000 + 100 * v.
void Recreate(const std::string& path, int64_t versions) {
  auto db = Database::Connect(path).ValueOrDie();
  ASSERT_OK(db->DropTable("t", false));
  auto first = ReaderOf({IdBatch(1000, 100)});
  ASSERT_OK_AND_ASSIGN(auto table, db->CreateTable("t", first->schema(), first.get(),
                                                   CreateMode::kCreate, false));
  for (int64_t v = 2; v <= versions; ++v) {
    auto more = ReaderOf({IdBatch(1000 + 100 * (v - 1), 100)});
    ASSERT_OK(table->Append(more.get()).status());
  }
}

// A table dropped and created again under its name is another table: a handle of the old
// one never writes the old table's files into the new one's versions, whichever has more
// versions (the handle's store had the old one's manifests cached).
class RecreateWithVersionsTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(RecreateWithVersionsTest, AnAppendThroughAHandleOfTheOldTableGoesToTheNewOne) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  auto db = ThreeVersions(path, io::Local());
  ASSERT_OK_AND_ASSIGN(auto old, db->OpenTable("t"));
  const int64_t versions = GetParam();
  ASSERT_NO_FATAL_FAILURE(Recreate(path, versions));
  auto more = ReaderOf({IdBatch(300, 10)});
  ASSERT_OK_AND_ASSIGN(uint64_t version, old->Append(more.get()));
  EXPECT_EQ(version, static_cast<uint64_t>(versions + 1));

  auto fresh = Database::Connect(path).ValueOrDie();
  for (int64_t v = 1; v <= versions; ++v) {
    ASSERT_OK_AND_ASSIGN(auto table, fresh->OpenTable("t", v));
    EXPECT_EQ(Ids(*table), Range(1000, 1000 + 100 * v)) << "version " << v;
  }
  ASSERT_OK_AND_ASSIGN(auto latest, fresh->OpenTable("t"));
  EXPECT_EQ(latest->version(), static_cast<uint64_t>(versions + 1));
  std::vector<int64_t> expected = Range(1000, 1000 + 100 * versions);
  for (int64_t id : Range(300, 310)) expected.push_back(id);
  EXPECT_EQ(Ids(*latest), expected);
}

INSTANTIATE_TEST_SUITE_P(NewTableVersions, RecreateWithVersionsTest,
                         ::testing::Values(1, 3, 5));

// Checkouts through handles of the old table, of a version or the newest (the new table
// having as many versions as the old one), are of the new table, not of the manifests the
// handles' store had cached (the old one's, whose files it still maps).
TEST(RecreateTest, CheckoutsThroughHandlesOfTheOldTableAreOfTheNewOne) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  auto db = ThreeVersions(path, io::Local());
  ASSERT_OK_AND_ASSIGN(auto at_version, db->OpenTable("t"));
  ASSERT_OK_AND_ASSIGN(auto at_latest, db->OpenTable("t"));
  ASSERT_NO_FATAL_FAILURE(Recreate(path, 3));
  ASSERT_OK(at_version->Checkout(3));  // the version the handle opened, cached
  EXPECT_EQ(Ids(*at_version), Range(1000, 1300));
  ASSERT_OK(at_version->Checkout(2));
  EXPECT_EQ(Ids(*at_version), Range(1000, 1200));
  ASSERT_OK(at_latest->CheckoutLatest());
  EXPECT_EQ(Ids(*at_latest), Range(1000, 1300));
}

// A restore through a handle of the old table, which still maps the old table's files
// (its snapshot), restores the new table's version: never the old one's fragments,
// whose files are gone, as the new table's newest version.
TEST(RecreateTest, ARestoreThroughAHandleOfTheOldTableRestoresTheNewOnesVersion) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  auto db = ThreeVersions(path, io::Local());
  ASSERT_OK_AND_ASSIGN(auto old, db->OpenTable("t"));
  for (int64_t start : {300, 400}) {  // versions 4 and 5, cached by the handle's store
    auto more = ReaderOf({IdBatch(start, 100)});
    ASSERT_OK(old->Append(more.get()).status());
  }
  ASSERT_OK_AND_ASSIGN(auto held, old->snapshot());  // keeps the old files mapped
  ASSERT_NO_FATAL_FAILURE(Recreate(path, 5));
  ASSERT_OK_AND_ASSIGN(uint64_t restored, old->Restore(4));
  EXPECT_EQ(restored, 6u);
  auto fresh = Database::Connect(path).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto latest, fresh->OpenTable("t"));
  EXPECT_EQ(latest->version(), 6u);
  EXPECT_EQ(Ids(*latest), Range(1000, 1400));
  EXPECT_EQ(held->num_rows(), 500);
}

// Runs `write` through a handle of "t" (three versions) opened on a file system made by
// `hooked` from a hook that drops "t" and creates it again with `versions` versions: the
// write fails with kTableNotFound saying `message`, and leaves the new table as created.
void ExpectRacedWriteFails(
    const std::function<std::shared_ptr<io::FileSystem>(std::function<void()>)>& hooked,
    int64_t versions, const std::function<arrow::Status(Table&)>& write,
    const std::string& message) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  ThreeVersions(path, io::Local());
  auto db = Database::ConnectDirectory(
                path, hooked([&] { ASSERT_NO_FATAL_FAILURE(Recreate(path, versions)); }))
                .ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto old, db->OpenTable("t"));
  const arrow::Status st = write(*old);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, message, st);
  EXPECT_EQ(GetErrorKind(st), ErrorKind::kTableNotFound);
  auto fresh = Database::Connect(path).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto latest, fresh->OpenTable("t"));
  EXPECT_EQ(latest->version(), static_cast<uint64_t>(versions));
  EXPECT_EQ(Ids(*latest), Range(1000, 1000 + 100 * versions));
}

// At the commit's exclusive create.
std::shared_ptr<io::FileSystem> HookAtCommit(std::function<void()> hook) {
  return std::make_shared<HookFileSystem>(std::move(hook), /*after=*/false);
}

// The table dropped and created again (with more versions) between a write's files and
// its commit. An append's files went with the old directory: it fails, rather than
// rebase on the new table and commit a version naming files it does not have. A restore
// fails too, rather than restore the old table's version into the new one.
TEST(RecreateTest, WritesRacingADropAndCreateFail) {
  ASSERT_NO_FATAL_FAILURE(ExpectRacedWriteFails(
      HookAtCommit, 5,
      [](Table& t) {
        auto more = ReaderOf({IdBatch(300, 10)});
        return t.Append(more.get()).status();
      },
      "was dropped and created again during this write"));
  ASSERT_NO_FATAL_FAILURE(ExpectRacedWriteFails(
      HookAtCommit, 5, [](Table& t) { return t.Restore(2).status(); },
      "dropped and created again meanwhile"));
}

// The same for a restore, the new table having fewer versions than the version restored
// (no later version to tell it by): it fails at once, not after every commit attempt.
TEST(RecreateTest, ARestoreRacingADropAndCreateOfFewerVersionsFails) {
  // After the restore's second listing (OpenTable lists once; the restore's first is
  // its check that the version exists, before it reads it).
  auto third_listing = [](std::function<void()> hook) -> std::shared_ptr<io::FileSystem> {
    return std::make_shared<HookAfterListing>(std::move(hook), /*nth=*/3);
  };
  ASSERT_NO_FATAL_FAILURE(ExpectRacedWriteFails(
      third_listing, 1, [](Table& t) { return t.Restore(2).status(); },
      "dropped and created again meanwhile"));
}

// A read of the old table whose files are opened after the new one took its name (a
// snapshot of more than Snapshot::kEagerFragments fragments opens them as rows are read)
// is not "No such file": it says what happened, and the newest version is the new one's.
TEST(RecreateTest, AReadOfTheOldTablesFilesSaysItWasDroppedAndCreatedAgain) {
  TempDir dir;
  const std::string path = dir.path() + "/db";
  auto db = Database::Connect(path).ValueOrDie();
  auto first = ReaderOf({IdBatch(0, 1)});
  ASSERT_OK_AND_ASSIGN(auto table, db->CreateTable("t", first->schema(), first.get(),
                                                   CreateMode::kCreate, false));
  constexpr int64_t kFragments = Snapshot::kEagerFragments + 1;
  for (int64_t id = 1; id < kFragments; ++id) {
    auto more = ReaderOf({IdBatch(id, 1)});
    ASSERT_OK(table->Append(more.get()).status());
  }
  ASSERT_OK_AND_ASSIGN(auto old, db->OpenTable("t"));
  ASSERT_OK_AND_ASSIGN(auto snapshot, old->snapshot());  // no file opened yet
  ASSERT_NO_FATAL_FAILURE(Recreate(path, 1));
  auto read = snapshot->Scan({});
  arrow::Status st = read.status();
  if (read.ok()) st = (*read)->ToTable().status();
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "' was dropped and created again since it was read",
                             st);
  EXPECT_EQ(GetErrorKind(st), ErrorKind::kTableNotFound);
  ASSERT_OK(old->CheckoutLatest());
  EXPECT_EQ(Ids(*old), Range(1000, 1100));
}

TEST(CreateTest, FaultAtEveryOperationLeavesNoTableOrACompleteOne) {
  auto create = [](Database& db) {
    auto reader = ReaderOf({IdBatch(0, 50), IdBatch(50, 50)});
    return db.CreateTable("t", reader->schema(), reader.get(), CreateMode::kCreate, false)
        .status();
  };
  int64_t operations = 0;
  {
    TempDir dir;
    auto faulty = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
    auto db = Database::ConnectDirectory(dir.path(), faulty).ValueOrDie();
    faulty->Disarm();
    ASSERT_OK(create(*db));
    operations = faulty->operations();
    ASSERT_GE(operations, 3);
  }
  int created = 0;
  int none = 0;
  for (Fault fault : kFaults) {
    for (int64_t n = 1; n <= operations; ++n) {
      const std::string context =
          std::string(io::FaultName(fault)) + " at operation " + std::to_string(n);
      TempDir dir;
      auto faulty = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
      auto db = Database::ConnectDirectory(dir.path(), faulty).ValueOrDie();
      faulty->FailAt(n, fault);
      arrow::Status st = create(*db);
      ASSERT_TRUE(faulty->fired()) << context;
      faulty->Disarm();
      bool present = false;
      ExpectWholeOrAbsent(dir.path(), 1, context, &present);
      if (st.ok()) {
        EXPECT_TRUE(present) << context << ": a create that returned OK";
      }
      present ? ++created : ++none;
      // What a failed create left does not get in the way of the next one.
      if (!present) {
        arrow::Status again = create(*db);
        ASSERT_TRUE(again.ok()) << context << ": " << again.ToString();
        ExpectWholeOrAbsent(dir.path(), 1, context + ", created again", &present);
        EXPECT_TRUE(present) << context;
      }
    }
  }
  EXPECT_GT(created, 0);
  EXPECT_GT(none, 0);
}

TEST(CreateTest, RacingCreatorsWithExistOkGetTheSameTable) {
  constexpr int kThreads = 8;
  for (int round = 0; round < 5; ++round) {
    TempDir dir;
    auto db = Database::Connect(dir.path()).ValueOrDie();
    std::vector<std::shared_ptr<Table>> tables(kThreads);
    std::vector<arrow::Status> errors(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        auto reader = ReaderOf({IdBatch(1000 * i, 10)});
        auto table = db->CreateTable("t", reader->schema(), reader.get(),
                                     CreateMode::kCreate, /*exist_ok=*/true);
        if (table.ok()) {
          tables[i] = *table;
        } else {
          errors[i] = table.status();
        }
      });
    }
    for (auto& thread : threads) thread.join();
    std::vector<int64_t> first;
    for (int i = 0; i < kThreads; ++i) {
      ASSERT_OK(errors[i]);
      EXPECT_EQ(tables[i]->version(), 1u);
      auto ids = Ids(*tables[i]);
      if (i == 0) first = ids;
      EXPECT_EQ(ids, first) << "creator " << i;
    }
    ASSERT_EQ(first.size(), 10u);
    ASSERT_OK_AND_ASSIGN(auto versions,
                         DirectoryStore(dir.path() + "/t.riffle").ListVersions());
    EXPECT_THAT(versions, ElementsAre(1u));
    // The losers removed the fragments they wrote: only the winner's remains.
    EXPECT_EQ(Names(dir.path() + "/t.riffle/data").size(), 1u);
  }
}

}  // namespace
}  // namespace riffledb
