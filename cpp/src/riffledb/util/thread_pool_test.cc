#include "riffledb/util/thread_pool.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "riffledb/testing/testing.h"

namespace riffledb {
namespace {

using arrow::Status;

void ExpectEveryIndexOnce(ThreadPool* pool, int64_t n) {
  std::vector<std::atomic<int>> counts(static_cast<size_t>(n));
  ASSERT_OK(pool->ParallelFor(n, [&](int64_t i) {
    counts[static_cast<size_t>(i)].fetch_add(1, std::memory_order_relaxed);
    return Status::OK();
  }));
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(counts[static_cast<size_t>(i)].load(), 1) << "index " << i << " of " << n;
  }
}

TEST(ThreadPool, ParallelForCoversEveryIndexExactlyOnce) {
  ThreadPool one(1), two(2), four(4);
  for (ThreadPool* pool : {&one, &two, &four, ThreadPool::Default()}) {
    for (int64_t n : {0, 1, 2, 7, 1000, 100000}) {
      SCOPED_TRACE("threads " + std::to_string(pool->num_threads()) + " n " +
                   std::to_string(n));
      ExpectEveryIndexOnce(pool, n);
    }
  }
}

TEST(ThreadPool, ParallelForOfOneRunsOnTheCaller) {
  ThreadPool pool(4);
  std::thread::id ran_on;
  ASSERT_OK(pool.ParallelFor(1, [&](int64_t) {
    ran_on = std::this_thread::get_id();
    return Status::OK();
  }));
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  ASSERT_OK(
      pool.ParallelFor(-5, [](int64_t) { return Status::Invalid("never called"); }));
}

TEST(ThreadPool, ParallelForReturnsTheFirstError) {
  ThreadPool pool(4);
  Status st = pool.ParallelFor(10000, [](int64_t i) {
    if (i % 1000 == 937) return Status::IndexError("bad index ", i);
    return Status::OK();
  });
  ASSERT_TRUE(st.IsIndexError()) << st.ToString();
  EXPECT_NE(st.message().find("937"), std::string::npos) << st.message();

  // Inline (a pool of one): exactly the first failing index, and nothing after it runs.
  ThreadPool single(1);
  int64_t calls = 0;
  st = single.ParallelFor(100, [&](int64_t i) {
    ++calls;
    return i == 10 ? Status::Invalid("at ", i) : Status::OK();
  });
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "at 10", st);
  EXPECT_EQ(calls, 11);
}

TEST(ThreadPool, ExceptionsBecomeStatuses) {
  ThreadPool pool(2);
  Status st = pool.ParallelFor(100, [](int64_t i) -> Status {
    if (i == 42) throw std::runtime_error("boom");
    return Status::OK();
  });
  ASSERT_RAISES_WITH_MESSAGE(UnknownError, "boom", st);
  TaskHandle h = pool.Submit([]() -> Status { throw std::runtime_error("bang"); });
  ASSERT_RAISES_WITH_MESSAGE(UnknownError, "bang", h.Wait());
}

TEST(ThreadPool, NestedParallelForDoesNotDeadlock) {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    std::atomic<int64_t> leaves{0};
    ASSERT_OK(pool.ParallelFor(8, [&](int64_t) {
      return pool.ParallelFor(8, [&](int64_t) {
        return pool.ParallelFor(8, [&](int64_t) {
          leaves.fetch_add(1);
          return Status::OK();
        });
      });
    }));
    EXPECT_EQ(leaves.load(), 512) << threads << " threads";
  }
}

TEST(ThreadPool, ManyThreadsCallParallelForConcurrently) {
  ThreadPool pool(3);
  std::atomic<int> failures{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t) {
    callers.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        const int64_t n = 500 + t * 37 + round;
        std::atomic<int64_t> sum{0};
        Status st = pool.ParallelFor(n, [&](int64_t i) {
          sum.fetch_add(i, std::memory_order_relaxed);
          return Status::OK();
        });
        if (!st.ok() || sum.load() != n * (n - 1) / 2) failures.fetch_add(1);
      }
    });
  }
  for (std::thread& caller : callers) caller.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(ThreadPool, SubmitAndWait) {
  ThreadPool pool(3);
  std::vector<TaskHandle> handles;
  std::atomic<int> ran{0};
  for (int i = 0; i < 100; ++i) {
    handles.push_back(pool.Submit([&ran, i]() -> Status {
      ran.fetch_add(1);
      if (i % 10 == 3) return Status::Invalid("task ", i);
      return Status::OK();
    }));
  }
  for (int i = 0; i < 100; ++i) {
    Status st = handles[i].Wait();
    if (i % 10 == 3) {
      ASSERT_RAISES_WITH_MESSAGE(Invalid, "task " + std::to_string(i), st);
    } else {
      ASSERT_OK(st);
    }
    EXPECT_TRUE(handles[i].done());
    TaskHandle copy = handles[i];
    EXPECT_EQ(copy.Wait().ok(), st.ok());  // waiting again returns the same status
  }
  EXPECT_EQ(ran.load(), 100);
  ASSERT_RAISES(Invalid, TaskHandle().Wait());
  EXPECT_FALSE(TaskHandle().valid());
  ASSERT_RAISES(Invalid, pool.Submit(nullptr).Wait());
}

TEST(ThreadPool, WaitOnATaskFromInsideATaskDoesNotDeadlock) {
  ThreadPool pool(1);  // the only worker waits for a task queued behind it
  TaskHandle outer = pool.Submit([&pool]() -> Status {
    TaskHandle inner = pool.Submit([] { return Status::OK(); });
    return inner.Wait();
  });
  ASSERT_OK(outer.Wait());
}

TEST(ThreadPool, ManyThreadsWaitOnOneTask) {
  ThreadPool pool(2);
  std::atomic<bool> go{false};
  TaskHandle slow = pool.Submit([&go] {
    while (!go.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return Status::OK();
  });
  std::atomic<int> ok{0};
  std::vector<std::thread> waiters;
  for (int i = 0; i < 6; ++i) {
    waiters.emplace_back([&] { ok.fetch_add(slow.Wait().ok() ? 1 : 0); });
  }
  go.store(true);
  for (std::thread& w : waiters) w.join();
  EXPECT_EQ(ok.load(), 6);
}

TEST(ThreadPool, DestructionRunsQueuedWork) {
  std::atomic<int> ran{0};
  std::vector<TaskHandle> handles;
  {
    ThreadPool pool(2);
    for (int i = 0; i < 200; ++i) {
      handles.push_back(pool.Submit([&ran] {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
        ran.fetch_add(1);
        return Status::OK();
      }));
    }
  }  // most of the 200 tasks are still queued here
  EXPECT_EQ(ran.load(), 200);
  for (const TaskHandle& h : handles) {
    EXPECT_TRUE(h.done());
    ASSERT_OK(h.Wait());
  }
  ThreadPool unused(3);  // never started: nothing to join
}

TEST(ThreadPool, BecomesIdleWhenWorkIsDone) {
  ThreadPool pool(2);
  EXPECT_TRUE(pool.idle());  // nothing started yet
  ASSERT_OK(pool.ParallelFor(1000, [](int64_t) { return Status::OK(); }));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pool.idle() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_TRUE(pool.idle());
}

TEST(ThreadPool, DefaultIsASingleton) {
  ThreadPool* pool = ThreadPool::Default();
  EXPECT_EQ(pool, ThreadPool::Default());
  EXPECT_GE(pool->num_threads(), 1);
  EXPECT_EQ(ThreadPool(0).num_threads(), 1);
}

TEST(ThreadPool, DefaultNumThreadsReadsTheEnvironment) {
  const int hardware = std::max(1u, std::thread::hardware_concurrency());
  ASSERT_EQ(setenv("RIFFLEDB_NUM_THREADS", "3", 1), 0);
  EXPECT_EQ(ThreadPool::DefaultNumThreads(), 3);
  for (const char* bad : {"0", "-2", "abc", "4x", ""}) {
    ASSERT_EQ(setenv("RIFFLEDB_NUM_THREADS", bad, 1), 0);
    EXPECT_EQ(ThreadPool::DefaultNumThreads(), hardware) << "'" << bad << "'";
  }
  ASSERT_EQ(unsetenv("RIFFLEDB_NUM_THREADS"), 0);
  EXPECT_EQ(ThreadPool::DefaultNumThreads(), hardware);
}

}  // namespace
}  // namespace riffledb
