// Faults injected at every mutating operation of every kind of commit (issue #10, item
// 2): after each, the table opens at the previous version or the new one, never a partial
// one; a version that became visible was reported as committed; and no file a committed
// manifest references is ever deleted.
#include <arrow/api.h>
#include <gmock/gmock.h>

#include <filesystem>
#include <functional>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "riffledb/format/table_dir.h"
#include "riffledb/io/fault_injection.h"
#include "riffledb/storage/store.h"
#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/soak.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/status.h"

namespace riffledb {
namespace {

using riffledb::testing::Range;

using io::Fault;
using testing::DeleteWhere;
using testing::IdBatch;
using testing::Int64Column;
using testing::ReaderOf;
using testing::SoakLoop;
using testing::TempDir;

// The ids of the latest version, in scan order.
std::vector<int64_t> LatestIds(const std::string& path) {
  auto table = Table::Open("t", std::make_shared<DirectoryStore>(path)).ValueOrDie();
  auto reader = table->snapshot().ValueOrDie()->Scan({}).ValueOrDie();
  auto all = reader->ToTable().ValueOrDie();
  if (all->num_rows() == 0) return {};
  return Int64Column(*all->CombineChunksToBatch().ValueOrDie(), "id");
}

// Every file that some committed manifest references exists and reads back: the whole
// table scans at every version. Counts the versions read in `soak`, if given.
void ExpectEveryVersionReadable(const std::string& path, const std::string& context,
                                SoakLoop* soak = nullptr) {
  format::TableDir dir(io::Local(), path);
  ASSERT_OK_AND_ASSIGN(auto versions, dir.ListVersions());
  for (uint64_t version : versions) {
    if (soak != nullptr) soak->Add("versions_checked");
    auto table = Table::Open("t", std::make_shared<DirectoryStore>(path), version);
    ASSERT_TRUE(table.ok()) << context << ": version " << version << ": "
                            << table.status().ToString();
    auto reader = (*table)->snapshot().ValueOrDie()->Scan({});
    ASSERT_TRUE(reader.ok()) << context << ": " << reader.status().ToString();
    auto all = (*reader)->ToTable();
    ASSERT_TRUE(all.ok()) << context << ": version " << version << ": "
                          << all.status().ToString();
  }
}

struct Operation {
  std::string name;
  // Runs the operation on a table at version 2 holding ids 0..199 (two appends).
  std::function<arrow::Status(Table&)> run;
  std::vector<int64_t> after;  // the ids once it committed
};

std::vector<Operation> Operations() {
  return {
      {"append",
       [](Table& t) {
         auto more = ReaderOf({IdBatch(200, 50), IdBatch(250, 50)});
         return t.Append(more.get()).status();
       },
       Range(0, 300)},
      {"delete",
       [](Table& t) { return DeleteWhere(t, "id % 2 = 1 OR id >= 150").status(); },
       [] {
         std::vector<int64_t> ids;
         for (int64_t i = 0; i < 150; i += 2) ids.push_back(i);
         return ids;
       }()},
      {"delete all of a fragment",
       [](Table& t) { return DeleteWhere(t, "id < 100").status(); }, Range(100, 200)},
      {"overwrite",
       [](Table& t) {
         auto data = ReaderOf({IdBatch(1000, 30)});
         return t.Overwrite(data.get()).status();
       },
       Range(1000, 1030)},
  };
}

// Creates the table at version 2 with the plain filesystem.
void MakeBase(const std::string& path) {
  auto first = ReaderOf({IdBatch(0, 100)});
  auto table = Table::Create("t", std::make_shared<DirectoryStore>(path), first->schema(),
                             first.get())
                   .ValueOrDie();
  auto second = ReaderOf({IdBatch(100, 100)});
  ASSERT_OK(table->Append(second.get()).status());
}

// The base table (MakeBase) in a fresh directory, opened through a fault-injecting
// filesystem: the start of every faulted commit.
struct FaultedBase {
  FaultedBase() {
    MakeBase(path);
    table = Table::Open("t", std::make_shared<DirectoryStore>(path, fs)).ValueOrDie();
  }
  TempDir dir;
  const std::string path = dir.path() + "/t.riffle";
  std::shared_ptr<io::FaultInjectingFileSystem> fs =
      std::make_shared<io::FaultInjectingFileSystem>(io::Local());
  std::shared_ptr<Table> table;
};

// One sweep: every operation, with `fault` injected at each of its mutating operations
// in turn.
// What a commit on top of version 2 may leave after a fault: version 2 (it did not land)
// or version 3 (it landed; then the commit must not have reported a failure), with
// exactly that version's rows (`after` for 3, ids 0..199 for 2), and every version
// readable. Sets *latest to the newest version.
void ExpectWholeVersionAfterFault(const std::string& path, const arrow::Status& st,
                                  const std::vector<int64_t>& after,
                                  const std::string& context, SoakLoop& soak,
                                  uint64_t* latest) {
  format::TableDir tdir(io::Local(), path);
  ASSERT_OK_AND_ASSIGN(*latest, tdir.LatestVersion());
  // Counted before the assertions below stop the loop, so that the soak reports it.
  if (*latest != 2 && *latest != 3) soak.Add("partial_versions");
  if (st.ok() && *latest != 3) soak.Add("lost_commits");
  ASSERT_TRUE(*latest == 2 || *latest == 3) << context;
  if (st.ok()) {
    ASSERT_EQ(*latest, 3u) << context;
  }
  if (*latest == 3 && !st.ok()) {
    soak.Add("committed_but_failed");
    ADD_FAILURE() << context << ": version 3 is visible but the commit failed";
  }
  std::vector<int64_t> expected = *latest == 3 ? after : Range(0, 200);
  std::vector<int64_t> ids = LatestIds(path);
  soak.Add("rows_checked", static_cast<int64_t>(ids.size()));
  if (ids != expected) soak.Add("partial_versions");
  ASSERT_EQ(ids, expected) << context;
  ExpectEveryVersionReadable(path, context, &soak);
}

void SweepEveryOperation(Fault fault, SoakLoop& soak) {
  for (const Operation& op : Operations()) {
    // A clean run counts the operations of this commit.
    int64_t total = 0;
    {
      FaultedBase base;
      const std::string& path = base.path;
      const auto& fs = base.fs;
      const auto& table = base.table;
      fs->Disarm();
      ASSERT_OK(op.run(*table));
      total = fs->operations();
      ASSERT_GE(total, 1) << op.name;
      ASSERT_EQ(LatestIds(path), op.after) << op.name;
    }
    for (int64_t n = 1; n <= total; ++n) {
      FaultedBase base;
      const std::string& path = base.path;
      const auto& fs = base.fs;
      const auto& table = base.table;
      fs->FailAt(n, fault);
      arrow::Status st = op.run(*table);
      std::vector<std::string> log = fs->log();
      fs->Disarm();
      std::string context = op.name + ", " + io::FaultName(fault) + " at operation " +
                            std::to_string(n) + " of " + std::to_string(total) + " (" +
                            log.at(n - 1) + "): " + st.ToString();
      ASSERT_EQ(fs->operations(), 0);
      soak.Add("faults");
      uint64_t latest = 0;
      ASSERT_NO_FATAL_FAILURE(
          ExpectWholeVersionAfterFault(path, st, op.after, context, soak, &latest));
    }
  }
}

// -- CommitFragments: the second step of a distributed write

// Ten descriptions of one file each (ids 200..299) written through `table`, crossing
// JSON as they do between processes. Twelve fragments are more than a manifest keeps
// inline, so the commit also writes a segment file (more operations to fault).
std::vector<format::WrittenFragments> WriteDescriptions(Table& table) {
  std::vector<format::WrittenFragments> descriptions;
  for (int64_t start = 200; start < 300; start += 10) {
    auto data = ReaderOf({IdBatch(start, 10)});
    auto written = table.WriteFragments(data.get()).ValueOrDie();
    descriptions.push_back(
        format::WrittenFragments::FromJson(written.ToJson().ValueOrDie()).ValueOrDie());
  }
  return descriptions;
}

struct FragmentsCommit {
  std::string name;
  CommitMode mode;
  std::vector<int64_t> after;  // the ids once it committed
};

std::vector<FragmentsCommit> FragmentsCommits() {
  return {{"commit fragments (append)", CommitMode::kAppend, Range(0, 300)},
          {"commit fragments (overwrite)", CommitMode::kOverwrite, Range(200, 300)}};
}

// What the driver of a distributed write does after an error: commit the same
// descriptions again, through a new handle (another process). It lands exactly once:
// refused if the first commit landed, committed otherwise.
void ExpectRetryLandsOnce(const std::string& path,
                          const std::vector<format::WrittenFragments>& descriptions,
                          const FragmentsCommit& commit, bool committed,
                          const std::string& context) {
  auto table = Table::Open("t", std::make_shared<DirectoryStore>(path)).ValueOrDie();
  auto retry = table->CommitFragments(descriptions, commit.mode);
  if (committed) {
    ASSERT_TRUE(retry.status().IsInvalid())
        << context << ": " << retry.status().ToString();
    ASSERT_THAT(retry.status().message(),
                ::testing::HasSubstr("version 3 already references it"))
        << context;
  } else {
    ASSERT_TRUE(retry.ok()) << context << ": " << retry.status().ToString();
    ASSERT_EQ(*retry, 3u) << context;
  }
  ASSERT_EQ(LatestIds(path), commit.after) << context << ", after the retry";
  ExpectEveryVersionReadable(path, context + ", after the retry");
}

// Every commit mode of CommitFragments with `fault` injected at each of its mutating
// operations in turn (the files were written before the fault was armed), then a retry
// of the same descriptions.
void SweepCommitFragments(Fault fault, SoakLoop& soak) {
  for (const FragmentsCommit& commit : FragmentsCommits()) {
    int64_t total = 0;
    {
      FaultedBase base;
      const std::string& path = base.path;
      const auto& fs = base.fs;
      const auto& table = base.table;
      auto descriptions = WriteDescriptions(*table);
      fs->Disarm();
      ASSERT_OK(table->CommitFragments(descriptions, commit.mode));
      total = fs->operations();
      // The segment (create, write, close, directory sync) and the manifest.
      ASSERT_GE(total, 5) << commit.name;
      ASSERT_EQ(LatestIds(path), commit.after) << commit.name;
    }
    for (int64_t n = 1; n <= total; ++n) {
      FaultedBase base;
      const std::string& path = base.path;
      const auto& fs = base.fs;
      const auto& table = base.table;
      auto descriptions = WriteDescriptions(*table);
      fs->FailAt(n, fault);
      arrow::Status st = table->CommitFragments(descriptions, commit.mode).status();
      std::vector<std::string> log = fs->log();
      fs->Disarm();
      std::string context = commit.name + ", " + io::FaultName(fault) + " at operation " +
                            std::to_string(n) + " of " + std::to_string(total) + " (" +
                            log.at(n - 1) + "): " + st.ToString();
      soak.Add("faults");
      uint64_t latest = 0;
      ASSERT_NO_FATAL_FAILURE(
          ExpectWholeVersionAfterFault(path, st, commit.after, context, soak, &latest));
      ExpectRetryLandsOnce(path, descriptions, commit, latest == 3, context);
    }
  }
}

class CommitFaultsTest : public ::testing::TestWithParam<Fault> {};

// In `make soak` (RIFFLEDB_SOAK_SECONDS) the sweep repeats until the time is up. The
// fault points are the same each time; what a repeat can find is what depends on more
// than the operation count: random file names, timestamps, a loaded machine's timing.
TEST_P(CommitFaultsTest, EveryOperationOfEveryCommit) {
  SoakLoop soak(std::string("commit faults: ") + io::FaultName(GetParam()));
  while (soak.Next()) {
    SweepEveryOperation(GetParam(), soak);
    if (HasFatalFailure()) return;
  }
}

TEST_P(CommitFaultsTest, EveryOperationOfCommitFragments) {
  SoakLoop soak(std::string("commit fragments faults: ") + io::FaultName(GetParam()));
  while (soak.Next()) {
    SweepCommitFragments(GetParam(), soak);
    if (HasFatalFailure()) return;
  }
}

INSTANTIATE_TEST_SUITE_P(Faults, CommitFaultsTest,
                         ::testing::Values(Fault::kError, Fault::kShortWrite,
                                           Fault::kAfter, Fault::kCrash),
                         [](const auto& info) {
                           switch (info.param) {
                             case Fault::kError:
                               return std::string("Error");
                             case Fault::kShortWrite:
                               return std::string("ShortWrite");
                             case Fault::kAfter:
                               return std::string("After");
                             case Fault::kCrash:
                               return std::string("Crash");
                           }
                           return std::string("?");
                         });

// The bug the issue found by reading the commit code: the fsync of _versions/ failing
// after the manifest was linked made the writer delete the files that manifest
// references. Now the commit reads the version back and reports success.
TEST(CommitFaults, SyncFailureAfterLinkKeepsTheCommittedFiles) {
  TempDir dir;
  const std::string path = dir.path() + "/t.riffle";
  MakeBase(path);
  auto fs = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
  auto table = Table::Open("t", std::make_shared<DirectoryStore>(path, fs)).ValueOrDie();
  // A dry run of the same append on a twin table finds the manifest's exclusive create.
  {
    TempDir probe_dir;
    const std::string probe = probe_dir.path() + "/t.riffle";
    MakeBase(probe);
    auto pfs = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
    auto ptable =
        Table::Open("t", std::make_shared<DirectoryStore>(probe, pfs)).ValueOrDie();
    pfs->Disarm();
    auto more = ReaderOf({IdBatch(200, 10)});
    ASSERT_OK(ptable->Append(more.get()).status());
    auto log = pfs->log();
    int64_t at = 0;
    for (size_t i = 0; i < log.size(); ++i) {
      if (log[i].rfind("create_exclusive", 0) == 0) at = static_cast<int64_t>(i) + 1;
    }
    ASSERT_GT(at, 0);
    fs->FailAt(at, Fault::kAfter);
  }
  auto more = ReaderOf({IdBatch(200, 10)});
  ASSERT_OK_AND_ASSIGN(uint64_t version, table->Append(more.get()));
  EXPECT_EQ(version, 3u);
  EXPECT_TRUE(fs->fired());
  fs->Disarm();
  EXPECT_EQ(LatestIds(path), Range(0, 210));
  ExpectEveryVersionReadable(path, "after the sync failure");
}

// A store that stops answering once the fault fired (replies lost on a network): its
// reads fail too, so a commit cannot read back what it published, and its outcome is
// unknown. Disarm() reconnects it.
class UnreachableAfterFault : public io::FaultInjectingFileSystem {
 public:
  using FaultInjectingFileSystem::FaultInjectingFileSystem;

  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFile(
      const std::string& path) override {
    ARROW_RETURN_NOT_OK(Reachable(path));
    return FaultInjectingFileSystem::ReadFile(path);
  }
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenInput(
      const std::string& path) override {
    ARROW_RETURN_NOT_OK(Reachable(path));
    return FaultInjectingFileSystem::OpenInput(path);
  }
  arrow::Result<io::EntryType> Type(const std::string& path) override {
    ARROW_RETURN_NOT_OK(Reachable(path));
    return FaultInjectingFileSystem::Type(path);
  }
  arrow::Result<std::vector<io::Entry>> List(const std::string& dir) override {
    ARROW_RETURN_NOT_OK(Reachable(dir));
    return FaultInjectingFileSystem::List(dir);
  }

 private:
  arrow::Status Reachable(const std::string& path) const {
    if (!fired()) return arrow::Status::OK();
    return arrow::Status::IOError("Unreachable: '", path, "'");
  }
};

// The operation number of the manifest's exclusive create in a clean run of `commit`
// (found on a twin table).
int64_t ManifestCreateAt(const FragmentsCommit& commit) {
  TempDir dir;
  const std::string path = dir.path() + "/t.riffle";
  MakeBase(path);
  auto fs = std::make_shared<io::FaultInjectingFileSystem>(io::Local());
  auto table = Table::Open("t", std::make_shared<DirectoryStore>(path, fs)).ValueOrDie();
  auto descriptions = WriteDescriptions(*table);
  fs->Disarm();
  EXPECT_OK(table->CommitFragments(descriptions, commit.mode));
  auto log = fs->log();
  for (size_t i = 0; i < log.size(); ++i) {
    if (log[i].rfind("create_exclusive", 0) == 0 &&
        log[i].find("/_versions/") != std::string::npos) {
      return static_cast<int64_t>(i) + 1;
    }
  }
  ADD_FAILURE() << "no exclusive create of a manifest";
  return 0;
}

// A commit of descriptions whose outcome is unknown (the manifest was published, or
// not, and the store stopped answering) keeps its files; the same descriptions
// committed again land exactly once, never duplicating rows.
TEST(CommitFaults, CommitFragmentsRetriedAfterAnUnknownOutcomeLandsOnce) {
  for (const FragmentsCommit& commit : FragmentsCommits()) {
    const int64_t at = ManifestCreateAt(commit);
    ASSERT_GT(at, 0);
    // kAfter: the manifest is published, then the reply is lost. kError: it is not.
    for (Fault fault : {Fault::kAfter, Fault::kError}) {
      const bool published = fault == Fault::kAfter;
      const std::string context = commit.name + ", " + io::FaultName(fault);
      TempDir dir;
      const std::string path = dir.path() + "/t.riffle";
      MakeBase(path);
      auto fs = std::make_shared<UnreachableAfterFault>(io::Local());
      auto table =
          Table::Open("t", std::make_shared<DirectoryStore>(path, fs)).ValueOrDie();
      auto descriptions = WriteDescriptions(*table);
      fs->FailAt(at, fault);
      auto first = table->CommitFragments(descriptions, commit.mode);
      ASSERT_TRUE(fs->fired()) << context;
      fs->Disarm();
      ASSERT_FALSE(first.ok()) << context;
      ASSERT_EQ(GetErrorKind(first.status()), ErrorKind::kCommitOutcomeUnknown)
          << context << ": " << first.status().ToString();
      ASSERT_THAT(first.status().message(),
                  ::testing::HasSubstr("failed and the outcome is unknown"));
      format::TableDir tdir(io::Local(), path);
      ASSERT_OK_AND_ASSIGN(uint64_t latest, tdir.LatestVersion());
      ASSERT_EQ(latest, published ? 3u : 2u) << context;
      // Nothing was removed: every file is there for the retry.
      for (const auto& written : descriptions) {
        for (const auto& fragment : written.fragments) {
          ASSERT_TRUE(std::filesystem::exists(path + "/" + fragment.path)) << context;
        }
      }
      ExpectRetryLandsOnce(path, descriptions, commit, published, context);
      ASSERT_OK_AND_ASSIGN(latest, tdir.LatestVersion());
      EXPECT_EQ(latest, 3u) << context;
    }
  }
}

}  // namespace
}  // namespace riffledb
