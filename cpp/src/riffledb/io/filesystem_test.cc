#include "riffledb/io/filesystem.h"

#include <arrow/filesystem/mockfs.h>
#include <arrow/io/interfaces.h>
#include <arrow/util/future.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/io/mapped_file.h"
#include "riffledb/testing/files.h"
#include "riffledb/testing/fork.h"
#include "riffledb/testing/testing.h"

namespace riffledb::io {
namespace {

using riffledb::testing::Bytes;

std::string ReadString(const std::string& path) {
  auto buffer = Local()->ReadFile(path);
  EXPECT_TRUE(buffer.ok()) << buffer.status().ToString();
  if (!buffer.ok()) return "";
  return (*buffer)->ToString();
}

class LocalFileSystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/riffledb_io_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { ASSERT_OK(fs_->DeleteTree(dir_)); }
  std::string Path(const std::string& name) const { return JoinPath(dir_, name); }

  std::string dir_;
  std::shared_ptr<FileSystem> fs_ = Local();
};

TEST_F(LocalFileSystemTest, CreateFileExclusiveWritesCompleteContent) {
  std::string content(100000, 'x');
  ASSERT_OK(fs_->CreateExclusive(Path("a"), Bytes(content)));
  EXPECT_EQ(ReadString(Path("a")), content);
  auto names = testing::ListNames(dir_);
  EXPECT_EQ(names, std::vector<std::string>{"a"});  // no temp file left behind
}

TEST_F(LocalFileSystemTest, CreateFileExclusiveFailsIfExists) {
  ASSERT_OK(fs_->CreateExclusive(Path("a"), Bytes("first")));
  ASSERT_RAISES_WITH_MESSAGE(AlreadyExists, Path("a"),
                             fs_->CreateExclusive(Path("a"), Bytes("second")));
  EXPECT_EQ(ReadString(Path("a")), "first");
  auto names = testing::ListNames(dir_);
  EXPECT_EQ(names, std::vector<std::string>{"a"});
}

TEST_F(LocalFileSystemTest, CreateFileExclusiveEmptyFile) {
  ASSERT_OK(fs_->CreateExclusive(Path("empty"), {}));
  EXPECT_EQ(ReadString(Path("empty")), "");
}

TEST_F(LocalFileSystemTest, CreateFileExclusiveThreadsRaceExactlyOneWins) {
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
        results[t] = fs_->CreateExclusive(target, Bytes(content));
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
  auto names = testing::ListNames(dir_);
  EXPECT_EQ(names.size(), 20u);  // temp files are all gone
}

TEST_F(LocalFileSystemTest, CreateFileExclusiveProcessesRaceExactlyOneWins) {
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
        arrow::Status st = fs_->CreateExclusive(target, Bytes(content));
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

TEST_F(LocalFileSystemTest, ListIsSortedWithTypesAndSizes) {
  for (std::string name : {"b", "a", "c10", "c2", ".hidden"}) {
    ASSERT_OK(testing::WriteFile(Path(name), name));
  }
  ASSERT_OK(fs_->CreateDirs(Path("sub/deeper")));
  ASSERT_OK_AND_ASSIGN(auto entries, fs_->List(dir_));
  std::vector<std::string> names;
  for (const auto& entry : entries) names.push_back(entry.name);
  EXPECT_EQ(names, (std::vector<std::string>{".hidden", "a", "b", "c10", "c2", "sub"}));
  EXPECT_EQ(entries[1].type, EntryType::kFile);
  EXPECT_EQ(entries[1].size, 1);
  EXPECT_EQ(entries[3].size, 3);
  EXPECT_GT(entries[1].mtime_ms, 1'600'000'000'000);  // after 2020
  EXPECT_EQ(entries[5].type, EntryType::kDirectory);
  ASSERT_OK_AND_ASSIGN(auto missing, fs_->List(Path("nope")));
  EXPECT_TRUE(missing.empty());
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("a"), fs_->List(Path("a")));

  // File names only (from readdir's d_type, without a stat each), as the base class's
  // ListFileNames derives them from List.
  const std::vector<std::string> files = {".hidden", "a", "b", "c10", "c2"};
  ASSERT_OK_AND_ASSIGN(auto file_names, fs_->ListFileNames(dir_));
  EXPECT_EQ(file_names, files);
  ASSERT_OK_AND_ASSIGN(file_names, fs_->FileSystem::ListFileNames(dir_));
  EXPECT_EQ(file_names, files);
  ASSERT_OK_AND_ASSIGN(file_names, fs_->ListFileNames(Path("nope")));
  EXPECT_TRUE(file_names.empty());
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("a"), fs_->ListFileNames(Path("a")));
}

TEST_F(LocalFileSystemTest, TypeCreateDirsDeleteTree) {
  ASSERT_OK_AND_ASSIGN(auto type, fs_->Type(Path("x")));
  EXPECT_EQ(type, EntryType::kNotFound);
  ASSERT_OK(fs_->CreateDirs(Path("x/y/z")));
  ASSERT_OK(fs_->CreateDirs(Path("x/y/z")));  // idempotent
  ASSERT_OK_AND_ASSIGN(type, fs_->Type(Path("x/y")));
  EXPECT_EQ(type, EntryType::kDirectory);
  ASSERT_OK(testing::WriteFile(Path("x/y/z/file"), "data"));
  ASSERT_OK_AND_ASSIGN(type, fs_->Type(Path("x/y/z/file")));
  EXPECT_EQ(type, EntryType::kFile);
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("x/y/z/file"),
                             fs_->CreateDirs(Path("x/y/z/file")));
  ASSERT_OK(fs_->DeleteTree(Path("x")));
  ASSERT_OK(fs_->DeleteTree(Path("x")));  // missing is fine
  ASSERT_OK_AND_ASSIGN(type, fs_->Type(Path("x")));
  EXPECT_EQ(type, EntryType::kNotFound);
}

// Type is one stat(2): it follows symbolic links, a path through a file is not found,
// and other failures are errors naming the path.
TEST_F(LocalFileSystemTest, TypeFollowsLinksAndNamesThePathOfAFailure) {
  ASSERT_OK(testing::WriteFile(Path("file"), "data"));
  ASSERT_EQ(::symlink(Path("file").c_str(), Path("link").c_str()), 0);
  ASSERT_EQ(::symlink(Path("gone").c_str(), Path("dangling").c_str()), 0);
  ASSERT_EQ(::symlink(dir_.c_str(), Path("dirlink").c_str()), 0);
  ASSERT_EQ(::symlink(Path("loop").c_str(), Path("loop").c_str()), 0);
  const std::vector<std::pair<std::string, EntryType>> cases = {
      {"link", EntryType::kFile},
      {"dangling", EntryType::kNotFound},
      {"dirlink", EntryType::kDirectory},
      {"file/below", EntryType::kNotFound},  // ENOTDIR
      {"loop", EntryType::kNotFound},        // ELOOP, as arrow::fs says
  };
  for (const auto& [name, expected] : cases) {
    ASSERT_OK_AND_ASSIGN(auto type, fs_->Type(Path(name)));
    EXPECT_EQ(type, expected) << name;
  }
  const std::string too_long = Path(std::string(300, 'n'));  // ENAMETOOLONG
  ASSERT_RAISES_WITH_MESSAGE(IOError, too_long, fs_->Type(too_long));
  // Not the path before the NUL (`file`), as stat(2) would see it.
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "NUL byte",
                             fs_->Type(Path("file") + std::string("\0x", 2)));
}

TEST_F(LocalFileSystemTest, CreateOutputIsExclusiveAndMakesParents) {
  ASSERT_OK_AND_ASSIGN(auto out, fs_->CreateOutput(Path("new/dir/f")));
  ASSERT_OK(out->Write("abc", 3));
  ASSERT_OK(out->Write("def", 3));
  ASSERT_OK(out->Close());
  ASSERT_OK(out->Close());  // idempotent
  EXPECT_EQ(ReadString(Path("new/dir/f")), "abcdef");
  ASSERT_RAISES_WITH_MESSAGE(AlreadyExists, Path("new/dir/f"),
                             fs_->CreateOutput(Path("new/dir/f")));
  EXPECT_EQ(ReadString(Path("new/dir/f")), "abcdef");
}

// A commit racing a drop must not recreate the dropped table's `_versions/`.
TEST_F(LocalFileSystemTest, CreateExclusiveNeverMakesParents) {
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("p/q/file"),
                             fs_->CreateExclusive(Path("p/q/file"), Bytes("x")));
  EXPECT_TRUE(testing::ListNames(dir_).empty());
  ASSERT_OK(fs_->CreateDirs(Path("p/q")));
  ASSERT_OK(fs_->CreateExclusive(Path("p/q/file"), Bytes("x")));
  EXPECT_EQ(ReadString(Path("p/q/file")), "x");
  EXPECT_EQ(testing::ListNames(Path("p/q")), std::vector<std::string>{"file"});
}

TEST_F(LocalFileSystemTest, DeleteFile) {
  ASSERT_OK(testing::WriteFile(Path("f"), "x"));
  ASSERT_OK(fs_->DeleteFile(Path("f")));
  ASSERT_OK(fs_->DeleteFile(Path("f")));  // missing is fine
  EXPECT_TRUE(testing::ListNames(dir_).empty());
}

TEST_F(LocalFileSystemTest, RenameNoReplaceNeverReplaces) {
  ASSERT_OK(testing::WriteFile(Path("a"), "A"));
  ASSERT_OK(testing::WriteFile(Path("b"), "B"));
  ASSERT_RAISES_WITH_MESSAGE(AlreadyExists, Path("b"),
                             fs_->RenameNoReplace(Path("a"), Path("b")));
  EXPECT_EQ(ReadString(Path("b")), "B");
  ASSERT_OK(fs_->RenameNoReplace(Path("a"), Path("c")));
  EXPECT_EQ(ReadString(Path("c")), "A");
  ASSERT_OK(fs_->CreateDirs(Path("d1/x")));
  ASSERT_OK(fs_->CreateDirs(Path("d2/y")));
  ASSERT_RAISES(AlreadyExists, fs_->RenameNoReplace(Path("d1"), Path("d2")));
  ASSERT_OK(fs_->RenameNoReplace(Path("d1"), Path("d3")));
  EXPECT_EQ(testing::ListNames(Path("d3")), std::vector<std::string>{"x"});
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("missing"),
                             fs_->RenameNoReplace(Path("missing"), Path("e")));
}

TEST_F(LocalFileSystemTest, ErrorsNameThePath) {
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("missing"), fs_->ReadFile(Path("missing")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, "No such file", fs_->ReadFile(Path("missing")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("missing"), fs_->OpenInput(Path("missing")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("missing"), fs_->SyncDir(Path("missing")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, dir_, fs_->ReadFile(dir_));
  ASSERT_RAISES_WITH_MESSAGE(IOError, dir_, fs_->OpenInput(dir_));
  ASSERT_RAISES_WITH_MESSAGE(IOError,
                             "Cannot open '" + Path("missing") + "': No such file",
                             fs_->OpenInput(Path("missing")));
  ASSERT_RAISES_WITH_MESSAGE(IOError, "Cannot map '" + dir_ + "': Is a directory",
                             fs_->OpenInput(dir_));
  ASSERT_OK(testing::WriteFile(Path("file"), "x"));
  ASSERT_RAISES_WITH_MESSAGE(IOError, Path("file"),
                             fs_->CreateExclusive(Path("file/under"), Bytes("x")));
}

TEST_F(LocalFileSystemTest, OpenInputMapsZeroCopy) {
  ASSERT_OK(testing::WriteFile(Path("m"), "hello mapped world"));
  ASSERT_OK_AND_ASSIGN(auto file, fs_->OpenInput(Path("m")));
  ASSERT_OK_AND_ASSIGN(auto size, file->GetSize());
  EXPECT_EQ(size, 18);
  ASSERT_OK_AND_ASSIGN(auto buffer, file->ReadAt(6, 6));
  EXPECT_EQ(buffer->ToString(), "mapped");
  EXPECT_FALSE(buffer->is_mutable());
  EXPECT_TRUE(file->supports_zero_copy());
}

TEST_F(LocalFileSystemTest, AWriteToATruncatedPageOfAWritableMapCompletes) {
  // The guard's zero page over a page lost to truncation is writable for a writable
  // map: the write completes (a read-only one would fault again, SIGSEGV) and the map
  // reports the truncation.
  const std::string path = Path("w");
  ASSERT_OK(testing::WriteFile(path, std::string(3 * 4096, 'x')));
  const int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  auto map = OpenGuardedMap(path, fd, MapMode::kReadWrite);
  ::close(fd);
  ASSERT_OK(map.status());
  ASSERT_OK_AND_ASSIGN(auto whole, (*map)->ReadAt(0, 3 * 4096));
  auto* bytes = const_cast<uint8_t*>(whole->data());
  bytes[0] = 'a';  // through the map to the file
  ASSERT_OK(CheckMapping(**map));
  ASSERT_EQ(::truncate(path.c_str(), 4096), 0);
  bytes[2 * 4096 + 5] = 'b';  // beyond the file's new end
  EXPECT_EQ(bytes[2 * 4096 + 5], 'b');
  ASSERT_RAISES_WITH_MESSAGE(IOError, "shrank while mapped", CheckMapping(**map));
  ASSERT_OK_AND_ASSIGN(auto back, fs_->ReadFile(path));
  EXPECT_EQ(back->ToString(), "a" + std::string(4095, 'x'));
}

// A map holds no file descriptor: a process may keep more files mapped than it may hold
// open (a table of 1,100 one-row appends could not be read under `ulimit -n` 1024).
TEST_F(LocalFileSystemTest, MapsHoldNoFileDescriptor) {
  constexpr int kFiles = 200;
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_OK(
        testing::WriteFile(Path("f" + std::to_string(i)), "file " + std::to_string(i)));
  }
  const int before = testing::OpenFileDescriptors();
  std::vector<std::shared_ptr<arrow::io::RandomAccessFile>> maps;
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_OK_AND_ASSIGN(auto file, fs_->OpenInput(Path("f" + std::to_string(i))));
    maps.push_back(std::move(file));
  }
  EXPECT_EQ(testing::OpenFileDescriptors(), before);
  // The maps keep their bytes, the files' names gone or not.
  ASSERT_OK(fs_->DeleteFile(Path("f7")));
  ASSERT_OK_AND_ASSIGN(auto bytes, maps[7]->ReadAt(0, 100));
  EXPECT_EQ(bytes->ToString(), "file 7");
  maps.clear();
  EXPECT_EQ(testing::OpenFileDescriptors(), before);
  // An empty file maps to no bytes.
  ASSERT_OK(testing::WriteFile(Path("empty"), ""));
  ASSERT_OK_AND_ASSIGN(auto empty, fs_->OpenInput(Path("empty")));
  ASSERT_OK_AND_ASSIGN(auto size, empty->GetSize());
  EXPECT_EQ(size, 0);
  ASSERT_OK_AND_ASSIGN(bytes, empty->ReadAt(0, 10));
  EXPECT_EQ(bytes->size(), 0);
}

// A fork while another thread holds the SIGBUS guard's registration lock (it maps a
// file, or drops a map's last buffer) waits for it: the child, which maps files too,
// never finds it held. It was a plain mutex: the child hung (test_fork.py's
// shared-table scenario, once in a few runs of 300 forks). Not under the sanitizers,
// whose allocators can hang a child forked while another thread allocates (testing.h).
TEST_F(LocalFileSystemTest, AChildForkedWhileAnotherThreadMapsCanMap) {
  if (kAllocatorIsForkUnsafe || kThreadSanitizer) {
    GTEST_SKIP() << "fork() at an arbitrary point of another thread under a sanitizer";
  }
  ASSERT_OK(testing::WriteFile(Path("m"), std::string(8192, 'm')));
  std::atomic<bool> held{false};
  std::thread holder(
      [&] { internal::HoldGuardLockForTesting(std::chrono::milliseconds(300), &held); });
  while (!held.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::fflush(nullptr);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto map = fs_->OpenInput(Path("m"));
    _exit(map.ok() && (*map)->ReadAt(8191, 1).ValueOr(nullptr) != nullptr ? 0 : 1);
  }
  holder.join();
  const int code = testing::ReapWithDeadline(pid, std::chrono::seconds(10));
  EXPECT_EQ(code, 0) << (code == testing::kChildTimedOut ? "the child hung" : "");
}

// Arrow's IPC reader reads a file's footer with ReadAsync: on a map it must complete in
// the caller, not as a task of Arrow's I/O pool (two thread switches a fragment opened).
TEST_F(LocalFileSystemTest, AsyncReadsOfAMapCompleteInTheCaller) {
  ASSERT_OK(testing::WriteFile(Path("m"), "hello mapped world"));
  ASSERT_OK_AND_ASSIGN(auto file, fs_->OpenInput(Path("m")));
  const auto& context = arrow::io::default_io_context();
  auto read = file->ReadAsync(context, 6, 6);
  ASSERT_TRUE(read.is_finished());
  ASSERT_OK_AND_ASSIGN(auto buffer, read.result());
  EXPECT_EQ(buffer->ToString(), "mapped");

  auto tail = file->ReadAsync(context, 13, 10, /*allow_short_read=*/true);
  ASSERT_TRUE(tail.is_finished());
  ASSERT_OK_AND_ASSIGN(buffer, tail.result());
  EXPECT_EQ(buffer->ToString(), "world");
  auto short_read = file->ReadAsync(context, 13, 10, /*allow_short_read=*/false);
  ASSERT_TRUE(short_read.is_finished());
  ASSERT_RAISES_WITH_MESSAGE(IOError, "10 bytes wanted at offset 13, 5 read",
                             short_read.result());
}

// A store without an exclusive create fails at the first commit, naming itself.
TEST(ArrowFileSystem, NoExclusiveCreateFailsClearly) {
  ArrowFileSystem fs(
      std::make_shared<arrow::fs::internal::MockFileSystem>(arrow::fs::TimePoint{}),
      "mock");
  ASSERT_OK(fs.CreateDirs("bucket/t"));
  ASSERT_RAISES_WITH_MESSAGE(NotImplemented, "'mock' store has no exclusive create",
                             fs.CreateExclusive("bucket/t/v1", Bytes("x")));
  ASSERT_RAISES(NotImplemented, fs.RenameNoReplace("bucket/t", "bucket/u"));
  // Everything else works through arrow::fs.
  ASSERT_OK_AND_ASSIGN(auto out, fs.CreateOutput("bucket/t/f"));
  ASSERT_OK(out->Write("data", 4));
  ASSERT_OK(out->Close());
  ASSERT_RAISES(AlreadyExists, fs.CreateOutput("bucket/t/f"));
  ASSERT_OK_AND_ASSIGN(auto data, fs.ReadFile("bucket/t/f"));
  EXPECT_EQ(data->ToString(), "data");
  ASSERT_OK_AND_ASSIGN(auto entries, fs.List("bucket/t"));
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].name, "f");
  EXPECT_EQ(entries[0].size, 4);
  ASSERT_OK(fs.DeleteFile("bucket/t/f"));
  ASSERT_OK(fs.DeleteFile("bucket/t/f"));
  ASSERT_OK_AND_ASSIGN(auto type, fs.Type("bucket/t/f"));
  EXPECT_EQ(type, EntryType::kNotFound);
  ASSERT_OK(fs.DeleteTree("bucket"));
  ASSERT_OK(fs.DeleteTree("bucket"));
}

// A local read of a file of known size reads the whole file, whatever the size says:
// a file that grew or shrank is seen at its size, which the digest check then refuses.
TEST_F(LocalFileSystemTest, ReadFileOfSizeReadsTheWholeFile) {
  ASSERT_OK(fs_->CreateExclusive(Path("a"), Bytes("0123456789")));
  for (int64_t size : {10, 4, 20}) {
    ASSERT_OK_AND_ASSIGN(auto data, fs_->ReadFileOfSize(Path("a"), size));
    EXPECT_EQ(data->ToString(), "0123456789") << size;
  }
  ASSERT_RAISES(IOError, fs_->ReadFileOfSize(Path("missing"), 10));
}

// Through arrow::fs, the bytes [0, size) (asked for without the size lookup object
// stores would send a request for); a size of 0 reads the whole (empty) file.
TEST(ArrowFileSystem, ReadFileOfSizeReadsThatManyBytes) {
  ArrowFileSystem fs(
      std::make_shared<arrow::fs::internal::MockFileSystem>(arrow::fs::TimePoint{}),
      "mock");
  ASSERT_OK(fs.CreateDirs("bucket/t"));
  for (const auto& [name, content] :
       {std::pair<std::string, std::string>{"f", "0123456789"}, {"empty", ""}}) {
    ASSERT_OK_AND_ASSIGN(auto out, fs.CreateOutput("bucket/t/" + name));
    ASSERT_OK(out->Write(content.data(), static_cast<int64_t>(content.size())));
    ASSERT_OK(out->Close());
  }
  ASSERT_OK_AND_ASSIGN(auto whole, fs.ReadFileOfSize("bucket/t/f", 10));
  EXPECT_EQ(whole->ToString(), "0123456789");
  ASSERT_OK_AND_ASSIGN(auto first, fs.ReadFileOfSize("bucket/t/f", 4));
  EXPECT_EQ(first->ToString(), "0123");
  ASSERT_OK_AND_ASSIGN(auto empty, fs.ReadFileOfSize("bucket/t/empty", 0));
  EXPECT_EQ(empty->size(), 0);
  ASSERT_RAISES(IOError, fs.ReadFileOfSize("bucket/t/missing", 10));
}

TEST(Paths, JoinPath) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("a//", "/b"), "a/b");
  EXPECT_EQ(JoinPath("/", "b"), "/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_EQ(JoinPath("a", ""), "a");
  EXPECT_EQ(JoinPath("/x/y", "data/f.arrow"), "/x/y/data/f.arrow");
}

TEST(Paths, RandomIdIsHexAndUnique) {
  std::string a = RandomId(), b = RandomId();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(a, b);
}

}  // namespace
}  // namespace riffledb::io
