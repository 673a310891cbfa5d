#include "riffledb/util/seqlock.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <thread>

namespace riffledb::util {
namespace {

TEST(Seqlock, ReadsWhatWasWrittenAndRefusesAWriteUnderWay) {
  std::array<int64_t, 4> record{};  // three values, then the sequence
  SeqlockWrite(record.data(), std::array<int64_t, 3>{7, 8, 9});
  EXPECT_EQ(record[3], 2);
  std::array<int64_t, 3> out{};
  ASSERT_TRUE(SeqlockTryRead(record.data(), out));
  EXPECT_EQ(out, (std::array<int64_t, 3>{7, 8, 9}));

  record[3] = 3;  // a writer stopped half-way (odd sequence)
  EXPECT_FALSE(SeqlockTryRead(record.data(), out));
}

// Every write stores (k, k, k): a read that mixes two writes would see unequal values.
void ExpectNoTornReads(int64_t* record, const std::atomic<bool>& writing) {
  int64_t reads = 0;
  int64_t last = 0;
  while (writing.load() || reads == 0) {
    std::array<int64_t, 3> out{};
    if (!SeqlockTryRead(record, out)) continue;
    ASSERT_EQ(out[0], out[1]);
    ASSERT_EQ(out[1], out[2]);
    ASSERT_GE(out[0], last);  // one writer, increasing k: reads never go back
    last = out[0];
    ++reads;
  }
}

TEST(Seqlock, ConcurrentReadsNeverSeeATornRecord) {
  std::array<int64_t, 4> record{};
  std::atomic<bool> writing{true};
  std::thread writer([&] {
    for (int64_t k = 1; k <= 200000; ++k) {
      SeqlockWrite(record.data(), std::array<int64_t, 3>{k, k, k});
    }
    writing = false;
  });
  ExpectNoTornReads(record.data(), writing);
  writer.join();
  std::array<int64_t, 3> out{};
  ASSERT_TRUE(SeqlockTryRead(record.data(), out));
  EXPECT_EQ(out[0], 200000);
}

TEST(Seqlock, AWriterInAnotherProcessOverSharedMemory) {
  // What multiprocessing's RawArray is: an anonymous shared mapping that fork() keeps.
  void* mapping =
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mapping, MAP_FAILED);
  auto* record = static_cast<int64_t*>(mapping);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (int64_t k = 1; k <= 100000; ++k) {
      SeqlockWrite(record, std::array<int64_t, 3>{k, k, k});
    }
    _exit(0);
  }
  int64_t seen = 0;
  while (seen < 100000) {
    std::array<int64_t, 3> out{};
    if (!SeqlockTryRead(record, out)) continue;
    ASSERT_EQ(out[0], out[1]);
    ASSERT_EQ(out[1], out[2]);
    ASSERT_GE(out[0], seen);
    seen = out[0];
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  munmap(mapping, 4096);
}

}  // namespace
}  // namespace riffledb::util
