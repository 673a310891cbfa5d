// fork() with the thread pool and per-process handles. Every child is reaped by the
// parent with a deadline (and has an alarm() as a backstop), so a hang fails the test
// instead of hanging it. Children report through their exit code; they never use gtest
// assertions.
#include "riffledb/testing/fork.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <initializer_list>
#include <memory>
#include <thread>
#include <vector>

#include "riffledb/testing/testing.h"
#include "riffledb/util/fork_safe_mutex.h"
#include "riffledb/util/pid.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb {
namespace {

using arrow::Status;

// GCC 12's AddressSanitizer runtime is not fork-safe: its allocator has no atfork
// handlers (added upstream in LLVM 18, llvm/llvm-project#75290), so a child deadlocks in
// malloc if another thread of the parent was inside ASan's allocator at the moment of
// fork() (llvm/llvm-project#63224). glibc's malloc has no such problem. Under ASan the
// tests therefore fork only while no other thread can be allocating: pools are idle, or
// every busy thread is parked inside a pool task (ForkWhileThePoolIsBusy):
// kAllocatorIsForkUnsafe (riffledb/testing/testing.h).

// Under ASan, waits (at most 10 s) until `pools` are idle: their workers
// finished freeing the previous task's closures.
void SettleBeforeFork(std::initializer_list<ThreadPool*> pools) {
  if (!kAllocatorIsForkUnsafe) return;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (ThreadPool* pool : pools) {
    while (!pool->idle() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
}

// Runs body() in a forked child, which _exit()s with its result (0 = pass). `settle`:
// the pools to let settle first (see kAllocatorIsForkUnsafe).
int RunInChild(const std::function<int()>& body,
               std::initializer_list<ThreadPool*> settle = {ThreadPool::Default()}) {
  SettleBeforeFork(settle);
  return testing::RunInForkedChild(body);
}

// 0 if ParallelFor(n) on `pool` covers [0, n) once: the sum of indexes is right.
int CheckParallelSum(ThreadPool* pool, int64_t n) {
  std::atomic<int64_t> sum{0};
  Status st = pool->ParallelFor(n, [&](int64_t i) {
    sum.fetch_add(i, std::memory_order_relaxed);
    return Status::OK();
  });
  if (!st.ok()) return 10;
  return sum.load() == n * (n - 1) / 2 ? 0 : 11;
}

int CheckSubmit(ThreadPool* pool) {
  std::atomic<int> ran{0};
  std::vector<TaskHandle> handles;
  for (int i = 0; i < 20; ++i) {
    handles.push_back(pool->Submit([&ran] {
      ran.fetch_add(1);
      return Status::OK();
    }));
  }
  for (const TaskHandle& h : handles) {
    if (!h.Wait().ok()) return 20;
  }
  return ran.load() == 20 ? 0 : 21;
}

TEST(ForkSafety, ChildUsesTheDefaultPoolAfterTheParentUsedIt) {
  ThreadPool* pool = ThreadPool::Default();
  ASSERT_EQ(CheckParallelSum(pool, 100000), 0);
  ASSERT_EQ(CheckSubmit(pool), 0);
  const int parent_pid = CurrentPid();
  EXPECT_EQ(
      RunInChild([&] {
        if (CurrentPid() != static_cast<int>(getpid()) || CurrentPid() == parent_pid) {
          return 1;
        }
        if (ThreadPool::Default() != pool) return 2;
        if (int rc = CheckParallelSum(pool, 100000)) return rc;
        if (int rc = CheckSubmit(pool)) return rc;
        return CheckParallelSum(pool, 1000);
      }),
      0);
  ASSERT_EQ(CheckParallelSum(pool, 100000), 0);  // the parent's pool is untouched
}

// Four parent threads run ParallelFor loops on two pools while the main thread forks 50
// times. Without a sanitizer the loops run freely, so fork() lands at arbitrary points
// (inside queue operations, between tasks, during thread start). Under ASan and TSan
// (see kAllocatorIsForkUnsafe and kThreadSanitizer) each fork happens while every caller
// and every pool worker is parked inside a task, a gate the tasks wait on; the gate opens
// between forks.
TEST(ForkSafety, ForkWhileThePoolIsBusy) {
  const bool gated = kAllocatorIsForkUnsafe || kThreadSanitizer;
  ThreadPool* shared = ThreadPool::Default();
  ThreadPool four(4);
  std::atomic<bool> stop{false};
  std::atomic<bool> gate_closed{false};
  std::atomic<int> parked{0};
  std::atomic<int> parent_failures{0};
  std::atomic<int64_t> parent_rounds{0};
  std::vector<std::thread> busy;
  const int kCallersPerPool = 2;
  for (int t = 0; t < 2 * kCallersPerPool; ++t) {
    ThreadPool* pool = t % 2 == 0 ? shared : &four;
    busy.emplace_back([&, pool] {
      while (!stop.load()) {
        const int64_t n = 1000;
        std::atomic<int64_t> sum{0};
        Status st = pool->ParallelFor(n, [&](int64_t i) {
          if (gate_closed.load()) {
            parked.fetch_add(1);
            while (gate_closed.load())
              std::this_thread::sleep_for(std::chrono::microseconds(50));
            parked.fetch_sub(1);
          }
          sum.fetch_add(i, std::memory_order_relaxed);
          return Status::OK();
        });
        if (!st.ok() || sum.load() != n * (n - 1) / 2) parent_failures.fetch_add(1);
        parent_rounds.fetch_add(1);
      }
    });
  }
  while (parent_rounds.load() < 20) std::this_thread::yield();
  for (int i = 0; i < 50; ++i) {
    if (gated) {
      // Threads that reach a task park; the others end up waiting (a caller whose
      // indexes are all claimed, a worker with nothing to run) without allocating. Wait
      // until the number of parked threads has been stable for 50 ms.
      gate_closed.store(true);
      int last = -1;
      auto stable_since = std::chrono::steady_clock::now();
      const auto deadline = stable_since + std::chrono::seconds(20);
      while (std::chrono::steady_clock::now() < deadline) {
        const int now_parked = parked.load();
        if (now_parked != last) {
          last = now_parked;
          stable_since = std::chrono::steady_clock::now();
        } else if (now_parked > 0 && std::chrono::steady_clock::now() - stable_since >
                                         std::chrono::milliseconds(50)) {
          break;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
    const int rc = RunInChild(
        [&] {
          if (int rc = CheckParallelSum(shared, 10000)) return rc;
          if (int rc = CheckParallelSum(&four, 10000)) return 30 + rc;
          return CheckSubmit(&four);
        },
        /*settle=*/{});
    if (gated) {
      const int64_t rounds = parent_rounds.load();
      gate_closed.store(false);
      while (parent_rounds.load() < rounds + 2) std::this_thread::yield();
    }
    if (rc != 0) {
      ADD_FAILURE() << "fork " << i << ": child exited with " << rc;
      break;
    }
  }
  gate_closed.store(false);
  stop.store(true);
  for (std::thread& t : busy) t.join();
  EXPECT_EQ(parent_failures.load(), 0);
}

TEST(ForkSafety, NestedFork) {
  ThreadPool* pool = ThreadPool::Default();
  ASSERT_EQ(CheckParallelSum(pool, 10000), 0);
  const uint64_t generation = ForkGeneration();
  EXPECT_EQ(RunInChild([&] {
              if (ForkGeneration() != generation + 1) return 1;
              if (int rc = CheckParallelSum(pool, 10000)) return rc;
              const int grandchild = RunInChild([&] {
                if (ForkGeneration() != generation + 2) return 1;
                if (CurrentPid() != static_cast<int>(getpid())) return 2;
                if (int rc = CheckParallelSum(pool, 10000)) return rc;
                return CheckSubmit(pool);
              });
              if (grandchild != 0) return 100 + grandchild % 100;
              return CheckParallelSum(pool, 10000);  // still works after its own fork
            }),
            0);
}

TEST(ForkSafety, PoolsCreatedBeforeAndAfterFork) {
  ThreadPool before(3);
  ASSERT_EQ(CheckParallelSum(&before, 10000), 0);
  ThreadPool never_used(2);
  EXPECT_EQ(
      RunInChild(
          [&] {
            if (int rc = CheckParallelSum(&before, 10000)) return rc;
            if (int rc = CheckSubmit(&before)) return rc;
            if (int rc = CheckParallelSum(&never_used, 10000)) return 30 + rc;
            ThreadPool after(3);
            if (int rc = CheckParallelSum(&after, 10000)) return 40 + rc;
            if (int rc = CheckSubmit(&after)) return 40 + rc;
            return 0;  // `after` is destroyed (its threads joined) before this returns
          },
          {ThreadPool::Default(), &before}),
      0);
  EXPECT_EQ(CheckParallelSum(&before, 10000), 0);
}

TEST(ForkSafety, ChildCanDestroyPoolsInheritedFromTheParent) {
  auto pool = std::make_unique<ThreadPool>(2);
  ASSERT_EQ(CheckParallelSum(pool.get(), 1000), 0);
  EXPECT_EQ(RunInChild(
                [&] {
                  pool.reset();  // must not join the parent's threads
                  ThreadPool fresh(2);
                  return CheckParallelSum(&fresh, 1000);
                },
                {ThreadPool::Default(), pool.get()}),
            0);
  EXPECT_EQ(CheckParallelSum(pool.get(), 1000), 0);
}

TEST(ForkSafety, ParentTasksAreDroppedInTheChild) {
  ThreadPool pool(1);
  std::atomic<bool> release{false};
  std::atomic<bool> started{false};
  std::atomic<int> second_ran{0};
  TaskHandle running = pool.Submit([&] {
    started.store(true);
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return Status::OK();
  });
  while (!started.load()) std::this_thread::yield();
  TaskHandle queued = pool.Submit([&] {
    second_ran.fetch_add(1);
    return Status::OK();
  });
  EXPECT_EQ(RunInChild([&] {
              if (!running.Wait().IsCancelled()) return 1;
              if (!queued.Wait().IsCancelled()) return 2;
              if (int rc = CheckSubmit(&pool)) return rc;
              if (int rc = CheckParallelSum(&pool, 1000)) return rc;
              return second_ran.load() == 0 ? 0 : 3;  // never ran in the child
            }),
            0);
  release.store(true);
  ASSERT_OK(running.Wait());
  ASSERT_OK(queued.Wait());
  EXPECT_EQ(second_ran.load(), 1);
}

TEST(ForkSafety, FinishedParentTasksKeepTheirStatusInTheChild) {
  TaskHandle done = ThreadPool::Default()->Submit([] { return Status::IOError("disk"); });
  ASSERT_RAISES(IOError, done.Wait());
  EXPECT_EQ(RunInChild([&] { return done.Wait().IsIOError() ? 0 : 1; }), 0);
}

struct Connection {
  int built_by;
};

TEST(ForkSafety, PerProcessRebuildsInTheChildOnly) {
  PerProcess<Connection> holder;
  std::atomic<int> builds{0};
  auto factory = [&] {
    builds.fetch_add(1);
    return std::make_shared<Connection>(Connection{CurrentPid()});
  };
  ASSERT_OK_AND_ASSIGN(auto parent_handle, holder.Get(factory));
  EXPECT_EQ(parent_handle->built_by, CurrentPid());
  EXPECT_EQ(holder.built_pid(), CurrentPid());
  EXPECT_EQ(RunInChild([&] {
              const int me = static_cast<int>(getpid());
              if (holder.built_pid() != 0) return 1;  // the parent's handle is not ours
              auto child_handle = holder.Get(factory);
              if (!child_handle.ok()) return 2;
              if ((*child_handle)->built_by != me) return 3;
              if (child_handle->get() == parent_handle.get()) return 4;
              if (builds.load() != 2) return 5;
              auto again = holder.Get(factory);
              if (!again.ok() || again->get() != child_handle->get()) return 6;
              if (holder.built_pid() != me) return 7;
              return 0;
            }),
            0);
  ASSERT_OK_AND_ASSIGN(auto after, holder.Get(factory));
  EXPECT_EQ(after, parent_handle);  // not rebuilt in the parent
  EXPECT_EQ(builds.load(), 1);
}

TEST(ForkSafety, SpinLockHeldByTheParentIsTakenOverInTheChild) {
  internal::ForkSafeSpinLock lock;
  lock.lock();  // held by this thread, which the child does not see as its own
  EXPECT_EQ(RunInChild([&] {
              lock.lock();
              lock.unlock();
              lock.lock();  // and it works normally afterwards
              lock.unlock();
              return 0;
            }),
            0);
  lock.unlock();
}

// Threads hammer a ForkSafeMutex (without allocating, see kAllocatorIsForkUnsafe) while
// the test forks: every child finds it free and the data it guards consistent. A plain
// std::mutex here hangs a child within a few dozen forks.
TEST(ForkSafety, ForkSafeMutexIsNeverInheritedHeld) {
  ForkSafeMutex mu;
  int64_t a = 0;  // guarded by mu: always equal to b outside a critical section
  int64_t b = 0;
  std::atomic<bool> stop{false};
  std::atomic<int64_t> sections{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        std::lock_guard<ForkSafeMutex> lock(mu);
        ++a;
        for (int spin = 0; spin < 50; ++spin)
          asm volatile("" ::: "memory");  // widen the window
        ++b;
        sections.fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  while (sections.load() < 1000) std::this_thread::yield();
  for (int i = 0; i < 50; ++i) {
    const int64_t before = sections.load();
    EXPECT_EQ(RunInChild(
                  [&] {
                    if (!mu.try_lock()) return 1;  // free: nobody holds it here
                    const bool consistent = a == b;
                    mu.unlock();
                    if (!consistent) return 2;
                    std::lock_guard<ForkSafeMutex> lock(mu);  // and usable
                    ++a;
                    ++b;
                    return a == b ? 0 : 3;
                  },
                  {}),
              0)
        << "fork " << i;
    while (sections.load() < before + 100) std::this_thread::yield();  // still running
  }
  stop = true;
  for (auto& thread : threads) thread.join();
  std::lock_guard<ForkSafeMutex> lock(mu);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a, sections.load());
}

}  // namespace
}  // namespace riffledb
