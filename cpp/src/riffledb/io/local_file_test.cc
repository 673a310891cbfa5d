#include "riffledb/io/local_file.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/testing/testing.h"

namespace riffledb::io {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string ReadString(const std::string& path) {
  auto buffer = ReadFile(path);
  EXPECT_TRUE(buffer.ok()) << buffer.status().ToString();
  if (!buffer.ok()) return "";
  return (*buffer)->ToString();
}

class LocalFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/riffledb_io_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { ASSERT_OK(RemoveAll(dir_)); }
  std::string Path(const std::string& name) const { return JoinPath(dir_, name); }

  std::string dir_;
};

TEST_F(LocalFileTest, CreateFileExclusiveWritesCompleteContent) {
  std::string content(100000, 'x');
  ASSERT_OK(CreateFileExclusive(Path("a"), Bytes(content)));
  EXPECT_EQ(ReadString(Path("a")), content);
  ASSERT_OK_AND_ASSIGN(auto names, ListDir(dir_));
  EXPECT_EQ(names, std::vector<std::string>{"a"});  // no temp file left behind
}

TEST_F(LocalFileTest, CreateFileExclusiveFailsIfExists) {
  ASSERT_OK(CreateFileExclusive(Path("a"), Bytes("first")));
  ASSERT_RAISES_WITH_MESSAGE(AlreadyExists, Path("a"),
                             CreateFileExclusive(Path("a"), Bytes("second")));
  EXPECT_EQ(ReadString(Path("a")), "first");
  ASSERT_OK_AND_ASSIGN(auto names, ListDir(dir_));
  EXPECT_EQ(names, std::vector<std::string>{"a"});
}

TEST_F(LocalFileTest, CreateFileExclusiveEmptyFile) {
  ASSERT_OK(CreateFileExclusive(Path("empty"), {}));
  EXPECT_EQ(ReadString(Path("empty")), "");
}

TEST_F(LocalFileTest, CreateFileExclusiveThreadsRaceExactlyOneWins) {
  for (int round = 0; round < 20; ++round) {
    const std::string target = Path("race" + std::to_string(round));
    constexpr int kThreads = 8;
    std::atomic<int> ready{0};
    std::vector<arrow::Status> results(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::string content = "writer " + std::to_string(t) + std::string(4096, 'a' + t);
        ready.fetch_add(1);
        while (ready.load() < kThreads) {
        }
        results[t] = CreateFileExclusive(target, Bytes(content));
      });
    }
    for (auto& thread : threads) thread.join();
    int winners = 0, winner = -1;
    for (int t = 0; t < kThreads; ++t) {
      if (results[t].ok()) {
        ++winners;
        winner = t;
      } else {
        EXPECT_TRUE(results[t].IsAlreadyExists()) << results[t].ToString();
      }
    }
    ASSERT_EQ(winners, 1);
    EXPECT_EQ(ReadString(target),
              "writer " + std::to_string(winner) + std::string(4096, 'a' + winner));
  }
  ASSERT_OK_AND_ASSIGN(auto names, ListDir(dir_));
  EXPECT_EQ(names.size(), 20u);  // temp files are all gone
}

TEST_F(LocalFileTest, CreateFileExclusiveProcessesRaceExactlyOneWins) {
  for (int round = 0; round < 5; ++round) {
    const std::string target = Path("commit" + std::to_string(round));
    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    std::vector<pid_t> children;
    for (int c = 0; c < 2; ++c) {
      pid_t pid = ::fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        ::close(go[1]);
        char byte;
        // Both children block until the parent closes the pipe, then race.
        while (::read(go[0], &byte, 1) > 0) {
        }
        std::string content = "process " + std::to_string(c);
        arrow::Status st = CreateFileExclusive(target, Bytes(content));
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
      int code = WEXITSTATUS(status);
      ASSERT_NE(code, 2) << "a child failed with an unexpected error";
      (code == 0 ? wins : losses)++;
    }
    EXPECT_EQ(wins, 1);
    EXPECT_EQ(losses, 1);
    std::string content = ReadString(target);
    EXPECT_TRUE(content == "process 0" || content == "process 1") << content;
  }
}

TEST_F(LocalFileTest, WriteFileAtomicReplaces) {
  ASSERT_OK(WriteFileAtomic(Path("f"), Bytes("one")));
  EXPECT_EQ(ReadString(Path("f")), "one");
  ASSERT_OK(WriteFileAtomic(Path("f"), Bytes("two two")));
  EXPECT_EQ(ReadString(Path("f")), "two two");
  ASSERT_OK_AND_ASSIGN(auto names, ListDir(dir_));
  EXPECT_EQ(names, std::vector<std::string>{"f"});
}

TEST_F(LocalFileTest, ListDirSortedAndMissingIsEmpty) {
  for (std::string name : {"b", "a", "c10", "c2", ".hidden"}) {
    ASSERT_OK(WriteFileAtomic(Path(name), Bytes(name)));
  }
  ASSERT_OK(CreateDirs(Path("sub/deeper")));
  ASSERT_OK_AND_ASSIGN(auto names, ListDir(dir_));
  EXPECT_EQ(names, (std::vector<std::string>{".hidden", "a", "b", "c10", "c2", "sub"}));
  ASSERT_OK_AND_ASSIGN(auto missing, ListDir(Path("nope")));
  EXPECT_TRUE(missing.empty());
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("a"), ListDir(Path("a")));
}

TEST_F(LocalFileTest, ExistsIsDirectoryCreateRemove) {
  ASSERT_OK_AND_ASSIGN(bool exists, Exists(Path("x")));
  EXPECT_FALSE(exists);
  ASSERT_OK(CreateDirs(Path("x/y/z")));
  ASSERT_OK(CreateDirs(Path("x/y/z")));  // idempotent
  ASSERT_OK_AND_ASSIGN(exists, Exists(Path("x/y/z")));
  EXPECT_TRUE(exists);
  ASSERT_OK_AND_ASSIGN(bool is_dir, IsDirectory(Path("x/y")));
  EXPECT_TRUE(is_dir);
  ASSERT_OK(WriteFileAtomic(Path("x/y/z/file"), Bytes("data")));
  ASSERT_OK_AND_ASSIGN(is_dir, IsDirectory(Path("x/y/z/file")));
  EXPECT_FALSE(is_dir);
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("x/y/z/file"), CreateDirs(Path("x/y/z/file")));
  ASSERT_OK(RemoveAll(Path("x")));
  ASSERT_OK(RemoveAll(Path("x")));  // missing is fine
  ASSERT_OK_AND_ASSIGN(exists, Exists(Path("x")));
  EXPECT_FALSE(exists);
}

TEST_F(LocalFileTest, ErrorsNameThePath) {
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("missing"), ReadFile(Path("missing")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, "No such file", ReadFile(Path("missing")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("missing"), MapFile(Path("missing")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("no/dir"),
                             CreateFileExclusive(Path("no/dir/file"), Bytes("x")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("no/dir"),
                             WriteFileAtomic(Path("no/dir/file"), Bytes("x")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("missing"), SyncDir(Path("missing")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, dir_, ReadFile(dir_));
}

TEST_F(LocalFileTest, MapFileReadsZeroCopy) {
  ASSERT_OK(WriteFileAtomic(Path("m"), Bytes("hello mapped world")));
  ASSERT_OK_AND_ASSIGN(auto file, MapFile(Path("m")));
  ASSERT_OK_AND_ASSIGN(auto size, file->GetSize());
  EXPECT_EQ(size, 18);
  ASSERT_OK_AND_ASSIGN(auto buffer, file->ReadAt(6, 6));
  EXPECT_EQ(buffer->ToString(), "mapped");
  EXPECT_FALSE(buffer->is_mutable());
}

TEST(LocalFile, JoinPath) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("a//", "/b"), "a/b");
  EXPECT_EQ(JoinPath("/", "b"), "/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_EQ(JoinPath("a", ""), "a");
  EXPECT_EQ(JoinPath("/x/y", "data/f.arrow"), "/x/y/data/f.arrow");
}

TEST(LocalFile, RandomIdIsHexAndUnique) {
  std::string a = RandomId(), b = RandomId();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace riffledb::io
