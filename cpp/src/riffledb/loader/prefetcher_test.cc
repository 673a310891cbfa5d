#include "riffledb/loader/prefetcher.h"

#include <arrow/api.h>
#include <gmock/gmock.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"

namespace riffledb::loader {
namespace {

using riffledb::testing::IdBatch;
using riffledb::testing::Int64Column;
using riffledb::testing::ReaderOf;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

struct Fixture {
  std::shared_ptr<const PermutationReader> reader;
  std::shared_ptr<const BoundSelection> selection;
};

// The identity view of a memory table of ids 0 .. n-1.
Fixture Identity(int64_t n) {
  auto store = std::make_shared<MemoryStore>("memory://base");
  auto batches = ReaderOf({IdBatch(0, n)});
  auto table =
      Table::Create("base", store, batches->schema(), batches.get()).ValueOrDie();
  auto snapshot = table->snapshot().ValueOrDie();
  auto selection = BoundSelection::Make(*snapshot->schema(), {}).ValueOrDie();
  return {PermutationReader::Open(snapshot, nullptr, 0).ValueOrDie(), selection};
}

std::vector<Read> Ranges(const Fixture& f, int64_t n, int64_t batch) {
  std::vector<Read> plan;
  for (int64_t start = 0; start < n; start += batch) {
    plan.push_back(
        {f.reader, f.selection, start, std::min(batch, n - start), {}, start / batch});
  }
  return plan;
}

std::vector<int64_t> Range(int64_t from, int64_t to) {
  std::vector<int64_t> out;
  for (int64_t i = from; i < to; ++i) out.push_back(i);
  return out;
}

TEST(PrefetcherTest, DeliversThePlanInOrder) {
  auto f = Identity(1000);
  auto prefetcher = Prefetcher::Start(Ranges(f, 1000, 64), {.threads = 3}).ValueOrDie();
  EXPECT_EQ(prefetcher->size(), 16);
  std::vector<int64_t> ids;
  int64_t expected_index = 0;
  while (true) {
    auto next = prefetcher->Next().ValueOrDie();
    if (!next.has_value()) break;
    EXPECT_EQ(next->index, expected_index);
    EXPECT_EQ(next->tag, expected_index);
    auto batch_ids = Int64Column(*next->batch, "id");
    ids.insert(ids.end(), batch_ids.begin(), batch_ids.end());
    ++expected_index;
  }
  EXPECT_THAT(ids, ElementsAreArray(Range(0, 1000)));
  auto stats = prefetcher->stats();
  EXPECT_EQ(stats.batches, 16);
  EXPECT_EQ(stats.rows, 1000);
  EXPECT_GT(stats.bytes, 8000);  // at least the int64 ids
  EXPECT_GT(stats.read_ns, 0);
  EXPECT_EQ(stats.queued_batches, 0);
  // After the end: nullopt again.
  EXPECT_FALSE(prefetcher->Next().ValueOrDie().has_value());
}

TEST(PrefetcherTest, OffsetsReadsAndAnEmptyPlan) {
  auto f = Identity(100);
  std::vector<Read> plan = {{f.reader, f.selection, 0, 0, {5, 3, 5, 99}, 7}};
  auto prefetcher = Prefetcher::Start(plan).ValueOrDie();
  auto next = prefetcher->Next().ValueOrDie();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->tag, 7);
  EXPECT_THAT(Int64Column(*next->batch, "id"), ElementsAreArray({5, 3, 5, 99}));
  EXPECT_FALSE(prefetcher->Next().ValueOrDie().has_value());

  auto empty = Prefetcher::Start({}).ValueOrDie();
  EXPECT_FALSE(empty->Next().ValueOrDie().has_value());
  bool end = false;
  EXPECT_FALSE(empty->TryNext(&end).ValueOrDie().has_value());
  EXPECT_TRUE(end);
}

TEST(PrefetcherTest, ReadsAheadNoFurtherThanTheBounds) {
  auto f = Identity(4096);
  auto prefetcher =
      Prefetcher::Start(Ranges(f, 4096, 64), {.threads = 4, .max_batches = 3})
          .ValueOrDie();
  // Without a consumer the queue fills to max_batches and stops there.
  for (int i = 0; i < 200 && prefetcher->stats().queued_batches < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(prefetcher->stats().queued_batches, 3);
  bool end = false;
  auto first = prefetcher->TryNext(&end).ValueOrDie();
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->index, 0);

  // A byte bound below one batch: one batch at a time, never more.
  auto one =
      Prefetcher::Start(Ranges(f, 4096, 64), {.threads = 4, .max_bytes = 1}).ValueOrDie();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LE(one->stats().queued_batches, 1);
  int64_t batches = 0;
  while (one->Next().ValueOrDie().has_value()) {
    EXPECT_LE(one->stats().queued_batches, 1);
    ++batches;
  }
  EXPECT_EQ(batches, 64);
}

TEST(PrefetcherTest, TryNextNeverWaits) {
  auto f = Identity(1 << 16);
  auto prefetcher =
      Prefetcher::Start(Ranges(f, 1 << 16, 1 << 12), {.threads = 1}).ValueOrDie();
  int64_t got = 0;
  bool end = false;
  while (!end) {
    auto next = prefetcher->TryNext(&end).ValueOrDie();
    if (next.has_value()) {
      EXPECT_EQ(next->index, got);
      ++got;
    }
  }
  EXPECT_EQ(got, 16);
  EXPECT_EQ(prefetcher->stats().wait_ns, 0);
}

TEST(PrefetcherTest, NextWithinWaitsAsleepAndKeepsTheOrder) {
  auto f = Identity(1 << 15);
  auto prefetcher =
      Prefetcher::Start(Ranges(f, 1 << 15, 1 << 10), {.threads = 1}).ValueOrDie();
  int64_t got = 0;
  bool end = false;
  while (!end) {
    auto next = prefetcher->NextWithin(std::chrono::microseconds(500), &end).ValueOrDie();
    if (next.has_value()) {
      EXPECT_EQ(next->index, got);
      EXPECT_EQ(next->batch->num_rows(), 1 << 10);
      ++got;
    }
  }
  EXPECT_EQ(got, 32);
  // After the end, and with no time to wait: the end at once.
  EXPECT_FALSE(prefetcher->NextWithin(std::chrono::microseconds(0), &end)
                   .ValueOrDie()
                   .has_value());
  EXPECT_TRUE(end);
}

TEST(PrefetcherTest, AFailingReadComesInOrderAndStopsThePrefetcher) {
  auto f = Identity(100);
  std::vector<Read> plan = {{f.reader, f.selection, 0, 10, {}, 0},
                            {f.reader, f.selection, 0, 0, {3, 100}, 1},
                            {f.reader, f.selection, 10, 10, {}, 2}};
  auto prefetcher = Prefetcher::Start(plan).ValueOrDie();
  auto first = prefetcher->Next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->tag, 0);
  auto second = prefetcher->Next();
  ASSERT_FALSE(second.ok());
  EXPECT_TRUE(second.status().IsIndexError()) << second.status();
  EXPECT_THAT(second.status().message(), HasSubstr("100"));
  // Stopped: the same error again.
  EXPECT_EQ(prefetcher->Next().status().message(), second.status().message());
}

TEST(PrefetcherTest, RejectsBadPlansAndOptions) {
  auto f = Identity(100);
  auto out_of_range = Prefetcher::Start({{f.reader, f.selection, 90, 20, {}, 0}});
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_THAT(out_of_range.status().message(),
              HasSubstr("read 0 asks for rows [90, 110) of a view of 100 rows"));
  auto no_reader = Prefetcher::Start({{nullptr, f.selection, 0, 1, {}, 0}});
  EXPECT_THAT(no_reader.status().message(), HasSubstr("has no reader"));
  EXPECT_THAT(Prefetcher::Start({}, {.threads = 0}).status().message(),
              HasSubstr("threads must be at least 1, got 0"));
  EXPECT_THAT(Prefetcher::Start({}, {.max_batches = 0}).status().message(),
              HasSubstr("max_batches must be at least 1, got 0"));
  EXPECT_THAT(Prefetcher::Start({}, {.max_bytes = 0}).status().message(),
              HasSubstr("max_bytes must be at least 1, got 0"));
}

TEST(PrefetcherTest, CloseMidwayStopsAndEnds) {
  auto f = Identity(1 << 16);
  auto prefetcher =
      Prefetcher::Start(Ranges(f, 1 << 16, 256), {.threads = 2}).ValueOrDie();
  ASSERT_TRUE(prefetcher->Next().ValueOrDie().has_value());
  prefetcher->Close();
  prefetcher->Close();  // idempotent
  EXPECT_FALSE(prefetcher->Next().ValueOrDie().has_value());
  EXPECT_EQ(prefetcher->stats().queued_batches, 0);
  // Destroying a prefetcher with reads under way closes it.
  auto busy = Prefetcher::Start(Ranges(f, 1 << 16, 256), {.threads = 2}).ValueOrDie();
  busy.reset();
}

TEST(PrefetcherTest, AForkedChildGetsAnErrorAndTheParentCarriesOn) {
  auto f = Identity(1 << 14);
  auto prefetcher =
      Prefetcher::Start(Ranges(f, 1 << 14, 128), {.threads = 2}).ValueOrDie();
  ASSERT_TRUE(prefetcher->Next().ValueOrDie().has_value());
  const pid_t child = ::fork();
  if (child == 0) {
    auto next = prefetcher->Next();
    bool end = false;
    auto tried = prefetcher->TryNext(&end);
    const bool ok =
        !next.ok() &&
        next.status().message().find("another process") != std::string::npos &&
        !tried.ok();
    prefetcher.reset();  // must neither block nor crash
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  int64_t batches = 1;
  while (prefetcher->Next().ValueOrDie().has_value()) ++batches;
  EXPECT_EQ(batches, 128);
}

}  // namespace
}  // namespace riffledb::loader
