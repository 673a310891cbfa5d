#include "riffledb/format/table_dir.h"

#include <arrow/array.h>
#include <arrow/record_batch.h>
#include <arrow/scalar.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/format/fragment.h"
#include "riffledb/io/fault_injection.h"
#include "riffledb/io/filesystem.h"
#include "riffledb/testing/files.h"
#include "riffledb/testing/testing.h"

namespace riffledb::format {
namespace {

class TableDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/riffledb_table_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    root_ = templ;
    table_ = io::JoinPath(root_, "t.rdb");
  }
  void TearDown() override { ASSERT_OK(io::Local()->DeleteTree(root_)); }

  std::string root_;
  std::string table_;
};

Manifest MakeManifest(uint64_t version, const std::string& operation = "append") {
  Manifest m;
  m.version = version;
  m.timestamp_ms = 1700000000000 + static_cast<int64_t>(version);
  m.operation = operation;
  m.schema = arrow::schema({arrow::field("x", arrow::int64())});
  for (uint32_t i = 0; i < version; ++i) {
    m.fragments.push_back({i, "data/f" + std::to_string(i) + ".arrow", 10, std::nullopt,
                           std::nullopt, std::nullopt});
  }
  m.next_fragment_id = static_cast<uint32_t>(version);
  return m;
}

TEST_F(TableDirTest, CommitListReadLatest) {
  TableDir dir(io::Local(), table_);
  ASSERT_OK_AND_ASSIGN(auto versions, dir.ListVersions());
  EXPECT_TRUE(versions.empty());
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Not a riffledb table", dir.LatestVersion());
  ASSERT_RAISES(Invalid, dir.ReadLatestManifest());

  for (uint64_t v = 1; v <= 3; ++v) ASSERT_OK(dir.Commit(MakeManifest(v)));
  ASSERT_OK_AND_ASSIGN(versions, dir.ListVersions());
  EXPECT_EQ(versions, (std::vector<uint64_t>{1, 2, 3}));
  ASSERT_OK_AND_ASSIGN(uint64_t latest, dir.LatestVersion());
  EXPECT_EQ(latest, 3u);
  ASSERT_OK_AND_ASSIGN(Manifest m, dir.ReadLatestManifest());
  EXPECT_EQ(m.version, 3u);
  EXPECT_EQ(m.fragments.size(), 3u);
  EXPECT_EQ(m.num_rows(), 30);
  ASSERT_OK_AND_ASSIGN(Manifest old, dir.ReadManifest(1));
  EXPECT_EQ(old.version, 1u);
  EXPECT_EQ(old.num_rows(), 10);

  auto names = testing::ListNames(dir.Resolve("_versions"));
  EXPECT_EQ(names, (std::vector<std::string>{"00000000000000000001.json",
                                             "00000000000000000002.json",
                                             "00000000000000000003.json"}));
  EXPECT_EQ(dir.Resolve("data/x.arrow"), table_ + "/data/x.arrow");
}

TEST_F(TableDirTest, CommitExistingVersionIsAlreadyExists) {
  TableDir dir(io::Local(), table_);
  ASSERT_OK(dir.Commit(MakeManifest(1, "create")));
  ASSERT_RAISES_WITH_MESSAGE(AlreadyExists, "Version 1", dir.Commit(MakeManifest(1)));
  ASSERT_OK_AND_ASSIGN(Manifest m, dir.ReadManifest(1));
  EXPECT_EQ(m.operation, "create");  // the first commit stands
}

TEST_F(TableDirTest, MissingVersionMessage) {
  TableDir dir(io::Local(), table_);
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Version 1 does not exist in table " + table_ + "; versions: none",
      dir.ReadManifest(1));
  for (uint64_t v = 1; v <= 3; ++v) ASSERT_OK(dir.Commit(MakeManifest(v)));
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Version 7 does not exist in table " + table_ + "; versions: 1..3",
      dir.ReadManifest(7));
}

TEST_F(TableDirTest, ManifestVersionMustMatchFileName) {
  TableDir dir(io::Local(), table_);
  ASSERT_OK(dir.Commit(MakeManifest(1)));
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeManifest(MakeManifest(1)));
  std::string path = dir.Resolve("_versions/00000000000000000002.json");
  ASSERT_OK(io::Local()->CreateExclusive(
      path, {reinterpret_cast<const uint8_t*>(text.data()), text.size()}));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, path, dir.ReadLatestManifest());
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "says version 1", dir.ReadLatestManifest());
}

TEST_F(TableDirTest, CorruptManifestNamesTheFile) {
  TableDir dir(io::Local(), table_);
  ASSERT_OK(io::Local()->CreateDirs(dir.Resolve("_versions")));
  std::string path = dir.Resolve("_versions/00000000000000000001.json");
  ASSERT_OK(testing::WriteFile(path, "{\"vers"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, path + ": invalid JSON", dir.ReadLatestManifest());
}

// Counts the reads and type lookups that reach the file system.
class CountingFileSystem : public io::FaultInjectingFileSystem {
 public:
  CountingFileSystem() : FaultInjectingFileSystem(io::Local()) {}
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFile(
      const std::string& path) override {
    ++reads;
    return FaultInjectingFileSystem::ReadFile(path);
  }
  arrow::Result<io::EntryType> Type(const std::string& path) override {
    ++types;
    return FaultInjectingFileSystem::Type(path);
  }
  int reads = 0;
  int types = 0;
};

TEST_F(TableDirTest, ReadTableIdIsOneReadOfAnExistingVersion) {
  auto fs = std::make_shared<CountingFileSystem>();
  TableDir dir(fs, table_);
  Manifest m = MakeManifest(1, "create");
  m.table_id = "0123456789abcdef0123456789abcdef";
  ASSERT_OK(dir.Commit(m));
  ASSERT_OK(dir.Commit(MakeManifest(2)));  // written before table ids: none
  fs->reads = fs->types = 0;
  ASSERT_OK_AND_ASSIGN(auto id, dir.ReadTableId(1));
  EXPECT_EQ(id, std::optional<std::string>(m.table_id));
  ASSERT_OK_AND_ASSIGN(id, dir.ReadTableId(2));
  EXPECT_EQ(id, std::optional<std::string>(""));
  // Each commit reads its base's id: the read alone, no type lookup before it.
  EXPECT_EQ(fs->reads, 2);
  EXPECT_EQ(fs->types, 0);
  ASSERT_OK_AND_ASSIGN(id, dir.ReadTableId(3));
  EXPECT_EQ(id, std::nullopt);
  EXPECT_EQ(fs->types, 1);  // a failed read is told apart from a missing version
  // A version there but unreadable or damaged is an error, not "missing".
  ASSERT_OK(io::Local()->CreateDirs(dir.Resolve("_versions/00000000000000000003.json")));
  EXPECT_FALSE(dir.ReadTableId(3).ok());
  ASSERT_OK(testing::WriteFile(dir.Resolve("_versions/00000000000000000002.json"), "{"));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "invalid JSON", dir.ReadTableId(2));
}

TEST_F(TableDirTest, ThreadsRacingOneVersionExactlyOneWins) {
  TableDir dir(io::Local(), table_);
  ASSERT_OK(dir.Commit(MakeManifest(1, "create")));
  constexpr int kThreads = 8;
  for (uint64_t version = 2; version <= 6; ++version) {
    std::atomic<int> ready{0};
    std::vector<arrow::Status> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        Manifest m = MakeManifest(version, "writer" + std::to_string(t));
        ready.fetch_add(1);
        while (ready.load() < kThreads) {
        }
        results[t] = dir.Commit(m);
      });
    }
    for (auto& thread : threads) thread.join();
    int wins = 0;
    std::string winner;
    for (int t = 0; t < kThreads; ++t) {
      if (results[t].ok()) {
        ++wins;
        winner = "writer" + std::to_string(t);
      } else {
        EXPECT_TRUE(results[t].IsAlreadyExists()) << results[t].ToString();
      }
    }
    ASSERT_EQ(wins, 1);
    ASSERT_OK_AND_ASSIGN(Manifest m, dir.ReadLatestManifest());
    EXPECT_EQ(m.version, version);
    EXPECT_EQ(m.operation, winner);
  }
}

// Two processes append concurrently with the rebase-and-retry loop of docs/format.md:
// every commit succeeds eventually, no version is lost or written twice.
TEST_F(TableDirTest, ForkedWritersRaceAndRetry) {
  TableDir dir(io::Local(), table_);
  ASSERT_OK(dir.Commit(MakeManifest(1, "create")));
  constexpr int kProcesses = 2;
  constexpr int kCommitsEach = 10;
  int go[2];
  ASSERT_EQ(::pipe(go), 0);
  std::vector<pid_t> children;
  for (int c = 0; c < kProcesses; ++c) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      ::close(go[1]);
      char byte;
      while (::read(go[0], &byte, 1) > 0) {
      }
      int lost_races = 0;
      for (int i = 0; i < kCommitsEach; ++i) {
        while (true) {
          auto latest = dir.ReadLatestManifest();
          if (!latest.ok()) ::_exit(3);
          Manifest next = *latest;
          next.version += 1;
          next.operation = "p" + std::to_string(c);
          next.fragments.push_back({next.next_fragment_id, "data/x.arrow", 1,
                                    std::nullopt, std::nullopt, std::nullopt});
          next.next_fragment_id += 1;
          arrow::Status st = dir.Commit(next);
          if (st.ok()) break;
          if (!st.IsAlreadyExists()) ::_exit(2);
          ++lost_races;
        }
      }
      ::_exit(0);
    }
    children.push_back(pid);
  }
  ::close(go[0]);
  ::close(go[1]);
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
  }
  ASSERT_OK_AND_ASSIGN(auto versions, dir.ListVersions());
  ASSERT_EQ(versions.size(), 1u + kProcesses * kCommitsEach);
  ASSERT_OK_AND_ASSIGN(Manifest m, dir.ReadLatestManifest());
  EXPECT_EQ(m.version, 1u + kProcesses * kCommitsEach);
  // Every commit's fragment survived the rebases: ids are consecutive.
  ASSERT_EQ(m.fragments.size(), 1u + kProcesses * kCommitsEach);
  for (size_t i = 0; i < m.fragments.size(); ++i) EXPECT_EQ(m.fragments[i].id, i);
}

TEST_F(TableDirTest, ForkedCommitsOfOneVersionExactlyOneWins) {
  TableDir dir(io::Local(), table_);
  for (uint64_t version = 1; version <= 5; ++version) {
    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    std::vector<pid_t> children;
    for (int c = 0; c < 2; ++c) {
      pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::close(go[1]);
        char byte;
        while (::read(go[0], &byte, 1) > 0) {
        }
        arrow::Status st = dir.Commit(MakeManifest(version, "p" + std::to_string(c)));
        ::_exit(st.ok() ? 0 : st.IsAlreadyExists() ? 1 : 2);
      }
      children.push_back(pid);
    }
    ::close(go[0]);
    ::close(go[1]);
    int wins = 0, losses = 0;
    for (pid_t pid : children) {
      int status = 0;
      ASSERT_EQ(::waitpid(pid, &status, 0), pid);
      ASSERT_TRUE(WIFEXITED(status));
      ASSERT_NE(WEXITSTATUS(status), 2);
      (WEXITSTATUS(status) == 0 ? wins : losses)++;
    }
    EXPECT_EQ(wins, 1);
    EXPECT_EQ(losses, 1);
  }
  ASSERT_OK_AND_ASSIGN(auto versions, dir.ListVersions());
  EXPECT_EQ(versions, (std::vector<uint64_t>{1, 2, 3, 4, 5}));
}

// A writer killed mid-commit leaves a temp manifest and an unreferenced fragment file;
// the table still reads as its last committed version.
TEST_F(TableDirTest, CrashLeftoversAreIgnored) {
  TableDir dir(io::Local(), table_);
  ASSERT_OK(dir.Commit(MakeManifest(1, "create")));
  ASSERT_OK(dir.Commit(MakeManifest(2)));

  // An unreferenced fragment written by the dead writer.
  auto schema = arrow::schema({arrow::field("x", arrow::int64())});
  auto batch = arrow::RecordBatch::Make(
      schema, 3, {*arrow::MakeArrayFromScalar(arrow::Int64Scalar(7), 3)});
  auto reader = *arrow::RecordBatchReader::Make({batch}, schema);
  ASSERT_OK_AND_ASSIGN(auto written,
                       WriteFragments(*io::Local(), table_, schema, reader.get()));
  ASSERT_EQ(written.size(), 1u);
  // A partially written temporary manifest for version 3, and other strays.
  std::string partial = "{\"format_version\": 1, \"vers";
  for (std::string name :
       {".00000000000000000003.json.0123456789abcdef.tmp",
        "00000000000000000003.json.tmp", "notes.txt", "0000000000000000004.json",
        "0000000000000000000x.json", "00000000000000000000.json"}) {
    ASSERT_OK(testing::WriteFile(dir.Resolve("_versions/" + name), partial));
  }
  ASSERT_OK_AND_ASSIGN(auto versions, dir.ListVersions());
  EXPECT_EQ(versions, (std::vector<uint64_t>{1, 2}));
  ASSERT_OK_AND_ASSIGN(Manifest m, dir.ReadLatestManifest());
  EXPECT_EQ(m.version, 2u);
  // The next commit proceeds normally.
  ASSERT_OK(dir.Commit(MakeManifest(3)));
  ASSERT_OK_AND_ASSIGN(m, dir.ReadLatestManifest());
  EXPECT_EQ(m.version, 3u);
}

}  // namespace
}  // namespace riffledb::format
