#include "riffledb/io/file_cache.h"

#include <fcntl.h>
#include <gmock/gmock.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/io/filesystem.h"
#include "riffledb/testing/files.h"
#include "riffledb/testing/testing.h"

namespace riffledb::io {
namespace {

constexpr int64_t kBlock = 4096;

// A remote file held in memory, recording the ranges asked of it.
struct Remote {
  std::string bytes;
  std::mutex mu;
  std::vector<std::pair<int64_t, int64_t>> asked;  // offset, length
  arrow::Status fail = arrow::Status::OK();
  bool short_reads = false;

  RangeFetcher Fetcher() {
    return [this](ByteRange r) -> arrow::Result<std::string> {
      std::lock_guard<std::mutex> lock(mu);
      if (!fail.ok()) return fail;
      asked.emplace_back(r.offset, r.length);
      const int64_t n = short_reads ? r.length - 1 : r.length;
      return bytes.substr(static_cast<size_t>(r.offset), static_cast<size_t>(n));
    };
  }
  size_t Asked() {
    std::lock_guard<std::mutex> lock(mu);
    return asked.size();
  }
  // The ranges asked, in file order (requests run concurrently).
  std::vector<std::pair<int64_t, int64_t>> Sorted() {
    std::lock_guard<std::mutex> lock(mu);
    auto sorted = asked;
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }
};

class FileCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/riffledb_cache_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    std::mt19937_64 rng(7);
    remote_.bytes.resize(10 * kBlock + 123);
    for (char& c : remote_.bytes) c = static_cast<char>(rng());
  }
  void TearDown() override { ASSERT_OK(Local()->DeleteTree(dir_)); }

  FileCacheOptions Options() const {
    FileCacheOptions options;
    options.dir = dir_;
    options.block_size = kBlock;
    options.coalesce_gap = 0;
    options.max_request = 4 * kBlock;
    return options;
  }
  // remote_'s bytes through `fetch` (default: remote_'s recording fetcher).
  arrow::Result<std::shared_ptr<CachedFile>> Open(const FileCacheOptions& options,
                                                  const std::string& identity = "f1",
                                                  RangeFetcher fetch = nullptr) {
    ARROW_ASSIGN_OR_RAISE(auto cache, FileCache::Make(options));
    return cache->Open("bucket/f", identity, static_cast<int64_t>(remote_.bytes.size()),
                       fetch ? std::move(fetch) : remote_.Fetcher());
  }
  std::string Read(const CachedFile& file, int64_t offset, int64_t length) {
    return std::string(reinterpret_cast<const char*>(file.data()) + offset,
                       static_cast<size_t>(length));
  }
  std::string Source(int64_t offset, int64_t length) {
    return remote_.bytes.substr(static_cast<size_t>(offset), static_cast<size_t>(length));
  }

  // Makes the cache of `data_name` look checked in another boot of the machine.
  void RebootedFor(const std::string& data_name) {
    const std::string meta = data_name.substr(0, data_name.size() - 5) + ".meta";
    const int fd = ::open(JoinPath(dir_, meta).c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, "another-boot", 12, 96), 12);  // MetaHeader::boot_id
    ::close(fd);
  }

  std::string dir_;
  Remote remote_;
};

using Asked = std::vector<std::pair<int64_t, int64_t>>;

TEST_F(FileCacheTest, FetchesTheBlocksOfARangeOnce) {
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  EXPECT_EQ(file->PresentBlocks(), 0);
  const ByteRange range{5000, 10};
  ASSERT_OK(file->Ensure({&range, 1}));
  EXPECT_EQ(remote_.asked, (Asked{{kBlock, kBlock}}));
  EXPECT_EQ(Read(*file, 5000, 10), Source(5000, 10));
  EXPECT_EQ(file->PresentBlocks(), 1);
  ASSERT_OK(file->Ensure({&range, 1}));
  EXPECT_EQ(remote_.Asked(), 1u);
  // The last block is short.
  const ByteRange tail{10 * kBlock + 100, 23};
  ASSERT_OK(file->Ensure({&tail, 1}));
  EXPECT_EQ(remote_.asked.back(), (std::pair<int64_t, int64_t>{10 * kBlock, 123}));
  EXPECT_EQ(Read(*file, 10 * kBlock, 123), Source(10 * kBlock, 123));
}

TEST_F(FileCacheTest, CoalescesAbsentBlocksAcrossSmallGapsUpToMaxRequest) {
  const ByteRange ranges[] = {{3 * kBlock + 1, 1}, {kBlock, 1}, {9 * kBlock, 10}};
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(Options(), "apart"));
    ASSERT_OK(file->Ensure(ranges));
    // No gap allowed: one request per block.
    EXPECT_EQ(remote_.Sorted(),
              (Asked{{kBlock, kBlock}, {3 * kBlock, kBlock}, {9 * kBlock, kBlock}}));
  }
  remote_.asked.clear();
  FileCacheOptions options = Options();
  options.coalesce_gap = kBlock;
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(options, "joined"));
    ASSERT_OK(file->Ensure(ranges));
    // Blocks 1 and 3 are one block apart: one request; block 9 is far.
    EXPECT_EQ(remote_.Sorted(), (Asked{{kBlock, 3 * kBlock}, {9 * kBlock, kBlock}}));
  }
  remote_.asked.clear();
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(options, "long"));
    const ByteRange all{0, static_cast<int64_t>(remote_.bytes.size())};
    ASSERT_OK(file->Ensure({&all, 1}));
    // 11 blocks in requests of at most max_request (4 blocks).
    EXPECT_EQ(remote_.Sorted(), (Asked{{0, 4 * kBlock},
                                       {4 * kBlock, 4 * kBlock},
                                       {8 * kBlock, 2 * kBlock + 123}}));
    EXPECT_EQ(Read(*file, 0, all.length), remote_.bytes);
  }
}

TEST_F(FileCacheTest, AnotherCacheOnTheDirectorySeesWhatWasFetched) {
  const ByteRange range{2 * kBlock, 2 * kBlock};
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
    ASSERT_OK(file->Ensure({&range, 1}));
  }
  EXPECT_EQ(remote_.Asked(), 1u);
  // A restart: a new cache object, the same directory.
  ASSERT_OK_AND_ASSIGN(auto again, Open(Options()));
  EXPECT_EQ(again->PresentBlocks(), 2);
  ASSERT_OK(again->Ensure({&range, 1}));
  EXPECT_EQ(remote_.Asked(), 1u);
  EXPECT_EQ(Read(*again, range.offset, range.length), Source(range.offset, range.length));
  // Another identity is another file.
  ASSERT_OK_AND_ASSIGN(auto other, Open(Options(), "f2"));
  EXPECT_EQ(other->PresentBlocks(), 0);
}

TEST_F(FileCacheTest, AFileCachedWholeIsCheckedOnceThenComplete) {
  const ByteRange all{0, static_cast<int64_t>(remote_.bytes.size())};
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
    const ByteRange some{0, kBlock};
    ASSERT_OK(file->Ensure({&some, 1}));
    EXPECT_FALSE(file->complete());
    ASSERT_OK(file->Ensure({&all, 1}));
    EXPECT_TRUE(file->complete());
  }
  const size_t asked = remote_.Asked();
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  EXPECT_FALSE(file->complete());  // not checked by this process yet
  const ByteRange one{5, 1};
  ASSERT_OK(file->Ensure({&one, 1}));
  EXPECT_TRUE(file->complete());
  EXPECT_EQ(remote_.Asked(), asked);
  const ByteRange outside{all.length, 1};
  EXPECT_TRUE(file->Ensure({&outside, 1}).IsInvalid());
}

TEST_F(FileCacheTest, ABlockThatFailsItsCrcIsFetchedAgain) {
  const ByteRange range{kBlock, 10};
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
    ASSERT_OK(file->Ensure({&range, 1}));
  }
  // Damage the cached block on disk.
  std::vector<std::string> names = testing::ListNames(dir_);
  std::string data_name;
  for (const auto& name : names) {
    if (name.size() > 5 && name.substr(name.size() - 5) == ".data") data_name = name;
  }
  ASSERT_FALSE(data_name.empty());
  const int fd = ::open(JoinPath(dir_, data_name).c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "XYZ", 3, kBlock + 7), 3);
  ::close(fd);
  // Within a boot a block is checked once, when fetched: damage is found after a
  // reboot, which a foreign boot id in the header stands for.
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
    ASSERT_OK(file->Ensure({&range, 1}));
    EXPECT_EQ(remote_.Asked(), 1u);
  }
  RebootedFor(data_name);

  const int64_t corrupt_before = GetIoStats().corrupt_blocks;
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  ASSERT_OK(file->Ensure({&range, 1}));
  EXPECT_EQ(GetIoStats().corrupt_blocks, corrupt_before + 1);
  EXPECT_EQ(remote_.Asked(), 2u);
  EXPECT_EQ(Read(*file, kBlock, kBlock), Source(kBlock, kBlock));
}

TEST_F(FileCacheTest, ADamagedMetaFileStartsANewPair) {
  const ByteRange range{0, 10};
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
    ASSERT_OK(file->Ensure({&range, 1}));
  }
  for (const auto& name : testing::ListNames(dir_)) {
    if (name.size() > 5 && name.substr(name.size() - 5) == ".meta") {
      ASSERT_OK(testing::WriteFile(JoinPath(dir_, name), "garbage"));
    }
  }
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  EXPECT_EQ(file->PresentBlocks(), 0);
  ASSERT_OK(file->Ensure({&range, 1}));
  EXPECT_EQ(remote_.Asked(), 2u);
  EXPECT_EQ(Read(*file, 0, 10), Source(0, 10));
}

TEST_F(FileCacheTest, ErrorsLeaveBlocksAbsentAndNameTheRange) {
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  const ByteRange outside{static_cast<int64_t>(remote_.bytes.size()) - 1, 2};
  auto st = file->Ensure({&outside, 1});
  EXPECT_TRUE(st.IsInvalid()) << st.ToString();
  EXPECT_NE(st.message().find("bucket/f"), std::string::npos) << st.ToString();

  remote_.fail = arrow::Status::IOError("connection refused");
  const ByteRange range{0, 10};
  st = file->Ensure({&range, 1});
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_EQ(file->PresentBlocks(), 0);

  remote_.fail = arrow::Status::OK();
  remote_.short_reads = true;
  st = file->Ensure({&range, 1});
  EXPECT_TRUE(st.IsIOError()) << st.ToString();
  EXPECT_EQ(file->PresentBlocks(), 0);

  remote_.short_reads = false;
  ASSERT_OK(file->Ensure({&range, 1}));
  EXPECT_EQ(Read(*file, 0, 10), Source(0, 10));
}

TEST_F(FileCacheTest, ReadAtFetchesAndSlicesTheMap) {
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  ASSERT_OK_AND_ASSIGN(auto buffer, file->ReadAt(100, 50));
  EXPECT_EQ(buffer->ToString(), Source(100, 50));
  EXPECT_EQ(file->OffsetOf(buffer->data()), 100);
  // Past the end: truncated, as a file read is.
  ASSERT_OK_AND_ASSIGN(auto tail, file->ReadAt(file->file_size() - 3, 10));
  EXPECT_EQ(tail->ToString(), Source(file->file_size() - 3, 3));
}

TEST_F(FileCacheTest, ConcurrentEnsuresStoreEveryByteOnce) {
  FileCacheOptions options = Options();
  options.max_concurrency = 4;
  ASSERT_OK_AND_ASSIGN(auto file, Open(options));
  std::vector<std::thread> threads;
  std::vector<arrow::Status> results(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 50 && results[t].ok(); ++i) {
        std::vector<ByteRange> ranges;
        for (int k = 0; k < 3; ++k) {
          const int64_t offset = rng() % (remote_.bytes.size() - 100);
          ranges.push_back({offset, 1 + static_cast<int64_t>(rng() % 100)});
        }
        results[t] = file->Ensure(ranges);
      }
    });
  }
  for (auto& t : threads) t.join();
  for (auto& st : results) ASSERT_OK(st);
  const ByteRange all{0, file->file_size()};
  ASSERT_OK(file->Ensure({&all, 1}));
  EXPECT_EQ(Read(*file, 0, all.length), remote_.bytes);
}

// A fetcher whose first `held` requests wait at a gate (outside any lock, so that a
// forked child can fetch through its copy while a parent thread waits there).
struct GatedRemote {
  const std::string* bytes;
  std::atomic<int> held{1};
  std::atomic<bool> open{false};
  std::atomic<int> asked{0};
  std::atomic<int> waiting{0};  // requests at the gate
  bool fail_held = false;       // the held requests fail once the gate opens
  RangeFetcher Fetcher() {
    return [this](ByteRange r) -> arrow::Result<std::string> {
      asked.fetch_add(1);
      if (held.fetch_sub(1) > 0) {
        waiting.fetch_add(1);
        while (!open.load()) std::this_thread::sleep_for(std::chrono::microseconds(50));
        if (fail_held) return arrow::Status::IOError("the held request failed");
      }
      return bytes->substr(static_cast<size_t>(r.offset), static_cast<size_t>(r.length));
    };
  }
};

// Polls `done` for up to 10 s.
bool Eventually(const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  return true;
}

TEST_F(FileCacheTest, AReadWaitsForTheFetchUnderWayOfTheSameBlocks) {
  GatedRemote remote{&remote_.bytes};
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options(), "g1", remote.Fetcher()));
  GetIoStats(/*reset=*/true);
  const ByteRange range{2 * kBlock + 5, 2 * kBlock};  // blocks 2..4
  arrow::Status first;
  std::thread a([&] { first = file->Ensure({&range, 1}); });
  ASSERT_TRUE(Eventually([&] { return remote.waiting.load() == 1; }));
  // The second read of the same blocks finds them claimed and waits: no request.
  arrow::Status second;
  std::thread b([&] { second = file->Ensure({&range, 1}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(remote.asked.load(), 1);
  remote.open = true;
  a.join();
  b.join();
  ASSERT_OK(first);
  ASSERT_OK(second);
  EXPECT_EQ(remote.asked.load(), 1);
  EXPECT_EQ(GetIoStats().shared_blocks, 3);
  EXPECT_EQ(Read(*file, range.offset, range.length), Source(range.offset, range.length));
}

TEST_F(FileCacheTest, AWaitingReadFetchesWhatAFailedFetchLeft) {
  GatedRemote remote{&remote_.bytes};
  remote.fail_held = true;
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options(), "g2", remote.Fetcher()));
  const ByteRange range{kBlock, kBlock};
  arrow::Status first;
  std::thread a([&] { first = file->Ensure({&range, 1}); });
  ASSERT_TRUE(Eventually([&] { return remote.waiting.load() == 1; }));
  arrow::Status second;
  std::thread b([&] { second = file->Ensure({&range, 1}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  remote.open = true;
  a.join();
  b.join();
  EXPECT_FALSE(first.ok());
  EXPECT_THAT(first.message(), ::testing::HasSubstr("the held request failed"));
  ASSERT_OK(second);  // it waited, found the block absent and unclaimed, and fetched it
  EXPECT_EQ(remote.asked.load(), 2);
  EXPECT_EQ(Read(*file, range.offset, range.length), Source(range.offset, range.length));
}

TEST_F(FileCacheTest, AForkedChildTakesOverClaimsOfItsParentsThreads) {
  GatedRemote remote{&remote_.bytes};
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options(), "g3", remote.Fetcher()));
  const ByteRange range{5 * kBlock, kBlock};
  arrow::Status parent;
  std::thread a([&] { parent = file->Ensure({&range, 1}); });
  ASSERT_TRUE(Eventually([&] { return remote.waiting.load() == 1; }));
  // The claim's thread does not exist in the child: its fetch never ends there.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    const bool ok =
        file->Ensure({&range, 1}).ok() &&
        Read(*file, range.offset, range.length) == Source(range.offset, range.length);
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  remote.open = true;
  a.join();
  ASSERT_OK(parent);
  EXPECT_EQ(Read(*file, range.offset, range.length), Source(range.offset, range.length));
}

TEST_F(FileCacheTest, AForkedChildFetchesForItsParent) {
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  const ByteRange first{0, 10};
  ASSERT_OK(file->Ensure({&first, 1}));
  const ByteRange range{6 * kBlock, 2 * kBlock};
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child's fetcher is its inherited copy; what it stores, the parent sees.
    const bool ok =
        file->Ensure({&range, 1}).ok() &&
        Read(*file, range.offset, range.length) == Source(range.offset, range.length);
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(remote_.Asked(), 1u);  // the child's request went through its own copy
  EXPECT_EQ(file->PresentBlocks(), 3);
  ASSERT_OK(file->Ensure({&range, 1}));
  EXPECT_EQ(remote_.Asked(), 1u);
  EXPECT_EQ(Read(*file, range.offset, range.length), Source(range.offset, range.length));
}

TEST_F(FileCacheTest, EvictsTheLeastRecentlyOpenedFilesBeyondItsCapacity) {
  FileCacheOptions options = Options();
  // Room for two files of 4 fetched blocks (and their small .meta), not three.
  options.capacity = 12 * kBlock;
  ASSERT_OK_AND_ASSIGN(auto cache, FileCache::Make(options));
  const int64_t size = static_cast<int64_t>(remote_.bytes.size());
  const ByteRange four{0, 4 * kBlock};
  std::vector<std::shared_ptr<CachedFile>> files;
  for (const char* name : {"a", "b", "c"}) {
    ::usleep(20000);  // distinct open times
    ASSERT_OK_AND_ASSIGN(auto file, cache->Open(name, name, size, remote_.Fetcher()));
    ASSERT_OK(file->Ensure({&four, 1}));
    files.push_back(file);
  }
  // `c`'s fetch went over: `a`'s pair (the oldest) is deleted, `b` and `c` are kept.
  EXPECT_EQ(testing::ListNames(dir_).size(), 4u);
  ASSERT_OK_AND_ASSIGN(int64_t used, cache->UsedBytes());
  EXPECT_LE(used, options.capacity);
  // `a` still reads from its map of the deleted file.
  EXPECT_EQ(Read(*files[0], 0, 4 * kBlock), Source(0, 4 * kBlock));
  EXPECT_EQ(files[1]->PresentBlocks(), 4);
  ASSERT_OK_AND_ASSIGN(auto a_again, cache->Open("a", "a", size, remote_.Fetcher()));
  EXPECT_EQ(a_again->PresentBlocks(), 0);
  ASSERT_OK_AND_ASSIGN(auto b_again, cache->Open("b", "b", size, remote_.Fetcher()));
  EXPECT_EQ(b_again->PresentBlocks(), 4);
}

TEST_F(FileCacheTest, HoldsNoFileDescriptorPerFile) {
  // A table on an object store may have more fragments than a process may hold files
  // open (often 1,024): each cached file used to keep its .data file open to write the
  // blocks it fetched.
  ASSERT_OK_AND_ASSIGN(auto cache, FileCache::Make(Options()));
  const int64_t size = static_cast<int64_t>(remote_.bytes.size());
  const ByteRange some{kBlock + 5, 3 * kBlock};
  const int before = testing::OpenFileDescriptors();
  std::vector<std::shared_ptr<CachedFile>> files;
  for (int i = 0; i < 100; ++i) {
    const std::string name = "f" + std::to_string(i);
    ASSERT_OK_AND_ASSIGN(auto file, cache->Open(name, name, size, remote_.Fetcher()));
    ASSERT_OK(file->Ensure({&some, 1}));
    files.push_back(std::move(file));
  }
  EXPECT_EQ(testing::OpenFileDescriptors(), before);
  for (const auto& file : files) {
    EXPECT_EQ(file->PresentBlocks(), 4);
    EXPECT_EQ(Read(*file, some.offset, some.length), Source(some.offset, some.length));
  }
  // What was written through the maps is in the files: another cache reads it.
  ASSERT_OK_AND_ASSIGN(auto again, Open(Options(), "f42"));
  EXPECT_EQ(again->PresentBlocks(), 4);
  const size_t asked = remote_.Asked();
  ASSERT_OK(again->Ensure({&some, 1}));
  EXPECT_EQ(remote_.Asked(), asked);
  EXPECT_EQ(Read(*again, some.offset, some.length), Source(some.offset, some.length));
}

TEST_F(FileCacheTest, AFileDeletedWhileInUseStillStoresWhatItFetches) {
  // Evicted by another process (or this one) while in use: its blocks go to the
  // unlinked file its map keeps, and nothing is created under its names again.
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  const ByteRange first{0, kBlock};
  ASSERT_OK(file->Ensure({&first, 1}));
  for (const std::string& name : testing::ListNames(dir_)) {
    ASSERT_EQ(::unlink(JoinPath(dir_, name).c_str()), 0) << name;
  }
  const ByteRange later{6 * kBlock + 7, 2 * kBlock};
  ASSERT_OK(file->Ensure({&later, 1}));
  EXPECT_EQ(file->PresentBlocks(), 4);
  EXPECT_EQ(Read(*file, later.offset, later.length), Source(later.offset, later.length));
  EXPECT_EQ(Read(*file, 0, kBlock), Source(0, kBlock));
  EXPECT_TRUE(testing::ListNames(dir_).empty());
}

// Whether a page is a block: then truncating a cache file at a block boundary makes the
// pages of the blocks after it unwritable (with larger pages, the rest of the page past
// the new end would still be written).
bool PagesAreBlocks() { return ::sysconf(_SC_PAGESIZE) == kBlock; }

TEST_F(FileCacheTest, ACacheFileTruncatedUnderItsMapIsAnErrorNotACrash) {
  if (!PagesAreBlocks()) GTEST_SKIP() << "needs pages of kBlock bytes";
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  const ByteRange first{0, kBlock};
  ASSERT_OK(file->Ensure({&first, 1}));
  const auto names = testing::ListNames(dir_);
  const auto data = std::find_if(names.begin(), names.end(), [](const std::string& n) {
    return n.ends_with(".data");
  });
  ASSERT_NE(data, names.end());
  ASSERT_EQ(::truncate(JoinPath(dir_, *data).c_str(), kBlock), 0);
  // Block 6 lies beyond the file's new end: its pages cannot be written.
  const ByteRange later{6 * kBlock, kBlock};
  ASSERT_RAISES_WITH_MESSAGE(IOError, "Cannot write to the cache file of 'bucket/f'",
                             file->Ensure({&later, 1}));
  EXPECT_EQ(file->PresentBlocks(), 1);
  EXPECT_EQ(Read(*file, 0, kBlock), Source(0, kBlock));
}

// A fetch whose blocks fail to store partway keeps those stored before, and counts them
// toward the capacity: the eviction check they reach runs (until a fix, a failed fetch
// counted nothing, and the cache could grow past its capacity by failed fetches).
TEST_F(FileCacheTest, BlocksStoredBeforeAFailureCountTowardTheCapacity) {
  if (!PagesAreBlocks()) GTEST_SKIP() << "needs pages of kBlock bytes";
  const int64_t size = static_cast<int64_t>(remote_.bytes.size());
  const ByteRange one{0, kBlock};
  {
    ASSERT_OK_AND_ASSIGN(auto filler, FileCache::Make(Options()));
    ASSERT_OK_AND_ASSIGN(auto a, filler->Open("a", "a", size, remote_.Fetcher()));
    ASSERT_OK(a->Ensure({&one, 1}));
  }
  const auto a_names = testing::ListNames(dir_);
  ASSERT_EQ(a_names.size(), 2u);
  // A cache whose capacity is what `a` and an empty `b` hold: opening `b` evicts nothing.
  FileCacheOptions options = Options();
  ASSERT_OK_AND_ASSIGN(auto sizer, FileCache::Make(options));
  { ASSERT_OK_AND_ASSIGN(auto b, sizer->Open("b", "b", size, remote_.Fetcher())); }
  ASSERT_OK_AND_ASSIGN(options.capacity, sizer->UsedBytes());
  ASSERT_OK_AND_ASSIGN(auto cache, FileCache::Make(options));
  ASSERT_OK_AND_ASSIGN(auto b, cache->Open("b", "b", size, remote_.Fetcher()));
  ASSERT_EQ(testing::ListNames(dir_).size(), 4u);
  std::string b_data;
  for (const std::string& name : testing::ListNames(dir_)) {
    if (name.ends_with(".data") && !std::ranges::count(a_names, name)) b_data = name;
  }
  ASSERT_FALSE(b_data.empty());
  // Blocks 0 and 1 of `b` can be stored, block 2 lies beyond its file's new end.
  ASSERT_EQ(::truncate(JoinPath(dir_, b_data).c_str(), 2 * kBlock), 0);
  const ByteRange four{0, 4 * kBlock};
  ASSERT_RAISES_WITH_MESSAGE(IOError, "Cannot write to the cache file of 'b'",
                             b->Ensure({&four, 1}));
  EXPECT_EQ(b->PresentBlocks(), 2);
  EXPECT_EQ(Read(*b, kBlock, kBlock), Source(kBlock, kBlock));
  // The two blocks stored took the cache past its capacity and reached the check
  // (a block's worth), which evicted `a`, the older pair.
  const auto left = testing::ListNames(dir_);
  for (const std::string& name : a_names) {
    EXPECT_FALSE(std::ranges::count(left, name)) << name << " was not evicted";
  }
  EXPECT_EQ(left.size(), 2u);
}

// The pair's files in dir_: {meta, data}.
std::pair<std::string, std::string> PairOf(const std::string& dir) {
  std::string meta, data;
  for (const std::string& name : testing::ListNames(dir)) {
    (name.ends_with(".meta") ? meta : data) = JoinPath(dir, name);
  }
  return {meta, data};
}

TEST_F(FileCacheTest, EvictionSkipsAPairBeingOpened) {
  FileCacheOptions options = Options();
  options.capacity = 0;  // keeps only what it must
  ASSERT_OK_AND_ASSIGN(auto cache, FileCache::Make(options));
  const int64_t size = static_cast<int64_t>(remote_.bytes.size());
  const ByteRange four{0, 4 * kBlock};
  ASSERT_OK_AND_ASSIGN(auto a, cache->Open("a", "a", size, remote_.Fetcher()));
  ASSERT_OK(a->Ensure({&four, 1}));
  ASSERT_EQ(testing::ListNames(dir_).size(), 2u);
  const auto [meta, data] = PairOf(dir_);
  // An Open of `a` elsewhere holds its .meta lock (from opening it to mapping its .data).
  const int fd = ::open(meta.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  ASSERT_OK(cache->Evict());
  EXPECT_EQ(testing::ListNames(dir_).size(), 2u);
  ::close(fd);
  ASSERT_OK(cache->Evict());
  EXPECT_TRUE(testing::ListNames(dir_).empty());
}

TEST_F(FileCacheTest, AnOpenThatFindsItsPairRemovedStartsANewOne) {
  const ByteRange four{0, 4 * kBlock};
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
    ASSERT_OK(file->Ensure({&four, 1}));
  }
  const auto [meta, data] = PairOf(dir_);
  // A removal holds the lock while an Open waits for it, and deletes the pair.
  const int fd = ::open(meta.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  std::promise<std::shared_ptr<CachedFile>> opened;
  std::thread opener([&] { opened.set_value(Open(Options()).ValueOrDie()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_EQ(::unlink(data.c_str()), 0);
  ASSERT_EQ(::unlink(meta.c_str()), 0);
  ::close(fd);
  opener.join();
  const auto file = opened.get_future().get();
  // A new pair: the removed .meta's blocks are not taken as present in a new .data.
  EXPECT_EQ(file->PresentBlocks(), 0);
  ASSERT_OK(file->Ensure({&four, 1}));
  EXPECT_EQ(Read(*file, 0, 4 * kBlock), Source(0, 4 * kBlock));
  EXPECT_EQ(testing::ListNames(dir_).size(), 2u);
}

TEST_F(FileCacheTest, AMetaFileWithoutItsDataStartsANewPair) {
  // A removal cut short between its two unlinks (the .data goes first).
  const ByteRange four{0, 4 * kBlock};
  {
    ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
    ASSERT_OK(file->Ensure({&four, 1}));
  }
  ASSERT_EQ(::unlink(PairOf(dir_).second.c_str()), 0);
  ASSERT_OK_AND_ASSIGN(auto file, Open(Options()));
  EXPECT_EQ(file->PresentBlocks(), 0);
  ASSERT_OK(file->Ensure({&four, 1}));
  EXPECT_EQ(Read(*file, 0, 4 * kBlock), Source(0, 4 * kBlock));
  EXPECT_EQ(testing::ListNames(dir_).size(), 2u);
}

TEST_F(FileCacheTest, RejectsBadOptions) {
  FileCacheOptions options = Options();
  options.block_size = 1000;
  EXPECT_TRUE(FileCache::Make(options).status().IsInvalid());
  options = Options();
  options.capacity = -1;
  EXPECT_TRUE(FileCache::Make(options).status().IsInvalid());
  options = Options();
  options.dir = "";
  EXPECT_TRUE(FileCache::Make(options).status().IsInvalid());
}

}  // namespace
}  // namespace riffledb::io
