// The process-wide, fork-safe thread pool (DESIGN.md decision 9).
#pragma once

#include <arrow/status.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace riffledb {

namespace internal {
struct TaskState;
struct PoolState;
}  // namespace internal

/// The result of ThreadPool::Submit: a copyable handle on one task. Thread-safe; copies
/// share the task. A default-constructed handle is invalid (Wait() returns Invalid).
class TaskHandle {
 public:
  TaskHandle() = default;

  /// Waits until the task has run and returns its status. If no pool thread has started
  /// the task yet, the calling thread runs it itself, so waiting from inside a pool task
  /// (or on a pool whose threads are all busy or could not start) never deadlocks.
  /// May be called any number of times, from any thread.
  ///
  /// In a forked child, a task submitted by an ancestor process that had not finished
  /// before fork() returns Cancelled: it never runs in the child (it runs in the parent).
  arrow::Status Wait() const;

  /// True once the task has finished (Wait() would return without blocking or running
  /// it).
  bool done() const;

  bool valid() const { return state_ != nullptr; }

 private:
  friend class ThreadPool;
  explicit TaskHandle(std::shared_ptr<internal::TaskState> state)
      : state_(std::move(state)) {}
  std::shared_ptr<internal::TaskState> state_;
};

/// A fixed-size pool of worker threads, safe across fork().
///
/// Thread-safety: every method may be called concurrently from any thread, including from
/// the pool's own tasks. Worker threads start lazily, on the first call that needs them.
///
/// Fork: pthread_atfork handlers (registered once, for every live pool) take each pool's
/// lock before fork() and release it after. In the child, every pool is reset in place:
/// the parent's worker threads, which do not exist there, are forgotten without joining;
/// work queued by the parent is dropped (abandoned, not destroyed — its destructors could
/// wait for state owned by those threads); the pool's mutex and condition variable are
/// re-created; threads start again on next use. So a ThreadPool* obtained in the parent
/// keeps working in the child. Not supported: fork() from inside a pool task (the child
/// must exec or _exit), and processes created without atfork handlers (_Fork(),
/// clone(2)).
///
/// Callbacks: user functions are never called while a pool lock is held.
class ThreadPool {
 public:
  /// The process-wide pool, never destroyed. Size: DefaultNumThreads() at first call.
  static ThreadPool* Default();

  /// The environment variable RIFFLEDB_NUM_THREADS if it is an integer >= 1, else
  /// std::thread::hardware_concurrency() (at least 1). Reads the environment on each
  /// call.
  static int DefaultNumThreads();

  /// A pool of `num_threads` workers (values < 1 mean 1). No thread starts until needed.
  explicit ThreadPool(int num_threads);

  /// Runs every queued task to completion, then joins the workers. Must not be called
  /// from one of this pool's tasks, nor while another thread is inside ParallelFor() or
  /// Submit() on this pool. Handles from Submit() stay valid.
  ~ThreadPool();

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  /// True if no work is queued and every started worker is waiting for work. A snapshot,
  /// for tests and diagnostics (e.g. to let a pool settle before fork() under
  /// sanitizers).
  bool idle() const;

  /// Runs fn(i) for every i in [0, n) and waits. The calling thread takes part and up to
  /// num_threads() - 1 pool threads help, so nested calls from pool tasks and calls while
  /// the pool is busy never deadlock. Indexes are claimed in chunks in increasing order,
  /// but may run in any order on any participating thread.
  ///
  /// Returns OK, or the first failing status (in time); after a failure the remaining
  /// indexes may be skipped. n <= 1 (and a pool of one thread) runs inline on the caller.
  /// `fn` is only used until ParallelFor returns.
  arrow::Status ParallelFor(int64_t n, const std::function<arrow::Status(int64_t)>& fn);

  /// Queues `task` to run on a pool thread. Never blocks on the task and never fails:
  /// the task runs on a pool thread, in TaskHandle::Wait() if no thread got to it first,
  /// or at the latest when the pool is destroyed.
  TaskHandle Submit(std::function<arrow::Status()> task);

 private:
  const int num_threads_;
  std::unique_ptr<internal::PoolState> state_;
};

}  // namespace riffledb
