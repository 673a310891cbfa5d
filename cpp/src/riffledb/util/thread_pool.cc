#include "riffledb/util/thread_pool.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <new>
#include <system_error>
#include <thread>
#include <vector>

#include "riffledb/util/pid.h"

namespace riffledb {
namespace internal {
namespace {

using Work = std::function<void()>;

// An exception escaping a user callable must not unwind through a pool thread (that would
// be std::terminate); it becomes a status. Forced unwinding (pthread_cancel) is not a
// std::exception and passes through.
template <typename F>
arrow::Status Invoke(const F& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return arrow::Status::UnknownError("exception escaped a thread pool task: ",
                                       e.what());
  }
}

}  // namespace

/// The shared state behind a TaskHandle.
struct TaskState {
  enum Phase : int { kPending, kRunning, kDone };

  explicit TaskState(std::function<arrow::Status()> f)
      : fn(std::move(f)), generation(ForkGeneration()) {}

  // Runs the task unless another thread claimed it first. Returns whether this call ran
  // it.
  bool TryRun() {
    int expected = kPending;
    if (!phase.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel)) {
      return false;
    }
    arrow::Status st = fn ? Invoke(fn) : arrow::Status::Invalid("empty task submitted");
    fn = nullptr;  // release the captures before waking waiters (outside any lock)
    status = std::move(st);
    {
      std::lock_guard<std::mutex> lock(mu);
      phase.store(kDone, std::memory_order_release);
    }
    cv.notify_all();
    return true;
  }

  std::atomic<int> phase{kPending};
  std::function<arrow::Status()> fn;  // owned by the thread that moved phase to kRunning
  arrow::Status status;               // written once, before phase becomes kDone
  const uint64_t generation;          // ForkGeneration() of the submitting process
  // Only for sleeping until kDone, and only used in the process that submitted the task:
  // in a forked child it may have been left locked by a thread that does not exist.
  std::mutex mu;
  std::condition_variable cv;
};

/// The state behind a ThreadPool. Its mutex and condition variable are re-created in
/// place in a forked child (see ResetInChild), so the ThreadPool's address stays valid.
struct PoolState {
  explicit PoolState(int n) : num_threads(n) {}

  // Queues `items` (starting the workers first if this process has none) and wakes
  // workers.
  void Push(std::vector<Work> items);
  void WorkerLoop();
  void EnsureStartedLocked();
  // In a forked child: forget the parent's threads and work; fresh synchronization
  // objects.
  void ResetInChild();

  const int num_threads;
  std::mutex mu;
  std::condition_variable cv;        // signalled when work arrives or stopping is set
  std::deque<Work> queue;            // guarded by mu
  std::vector<std::thread> workers;  // guarded by mu: threads of this process only
  bool started = false;   // guarded by mu: workers were spawned in this process
  bool stopping = false;  // guarded by mu
  int idle_workers = 0;   // guarded by mu: workers waiting on cv
};

namespace {

// Every live pool, so that the atfork handlers can lock and reset them all. Never freed.
struct Registry {
  std::mutex mu;
  std::vector<PoolState*> pools;  // guarded by mu
};

Registry& GetRegistry();

// Lock order: the registry, then each pool in registry order. No code path holds a pool's
// mutex while taking the registry's or another pool's, so this cannot deadlock.
void PrepareFork() {
  Registry& reg = GetRegistry();
  reg.mu.lock();
  for (PoolState* pool : reg.pools) pool->mu.lock();
}

void ParentAfterFork() {
  Registry& reg = GetRegistry();
  for (PoolState* pool : reg.pools) pool->mu.unlock();
  reg.mu.unlock();
}

void ChildAfterFork() {
  Registry& reg = GetRegistry();
  // Only the forking thread exists; it holds every lock (PrepareFork), so the data they
  // guard is consistent. The registry's vector is reused; its mutex is re-created.
  new (&reg.mu) std::mutex();
  for (PoolState* pool : reg.pools) pool->ResetInChild();
}

Registry& GetRegistry() {
  static Registry* const registry = [] {
    // Initialize pid.cc first: its atfork child handler must run before ours (child
    // handlers run in registration order), so that CurrentPid() is right in ours.
    (void)CurrentPid();
    auto* reg = new Registry();
    ::pthread_atfork(PrepareFork, ParentAfterFork, ChildAfterFork);
    return reg;
  }();
  return *registry;
}

// Where a forked child puts what it inherited but must neither use nor destroy: the
// parent's std::thread objects (destroying a joinable one calls std::terminate; joining
// one would wait forever) and the parent's queued work. Only touched by ChildAfterFork,
// when the child has a single thread. Never freed; stays reachable for leak checkers.
struct Graveyard {
  std::vector<std::thread> threads;
  std::vector<std::deque<Work>> queues;
};

Graveyard& GetGraveyard() {
  static Graveyard* const graveyard = new Graveyard();
  return *graveyard;
}

}  // namespace

void PoolState::Push(std::vector<Work> items) {
  {
    std::lock_guard<std::mutex> lock(mu);
    EnsureStartedLocked();
    for (Work& item : items) queue.push_back(std::move(item));
  }
  if (items.size() == 1) {
    cv.notify_one();
  } else {
    cv.notify_all();
  }
}

void PoolState::EnsureStartedLocked() {
  if (started) return;
  // Workers block asynchronous signals, so that signals go to the application's own
  // threads (Python handles them on its main thread). Synchronous ones stay unblocked:
  // blocking them would turn a crash into a silent kill without sanitizer reports. So
  // does SIGPROF, which sampling profilers (gperftools) need on the thread doing the
  // work.
  sigset_t blocked, previous;
  sigfillset(&blocked);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS, SIGPROF}) {
    sigdelset(&blocked, sig);
  }
  pthread_sigmask(SIG_BLOCK, &blocked, &previous);
  try {
    while (static_cast<int>(workers.size()) < num_threads) {
      workers.emplace_back([this] { WorkerLoop(); });
    }
  } catch (const std::system_error&) {
    // Out of threads: run with those we have. With none, callers still make progress:
    // ParallelFor's caller does all the work, TaskHandle::Wait() runs its task, and the
    // destructor runs what is left. Try again on the next call.
  }
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  started = !workers.empty();
}

void PoolState::WorkerLoop() {
  pthread_setname_np(pthread_self(), "riffledb-pool");
  std::unique_lock<std::mutex> lock(mu);
  for (;;) {
    ++idle_workers;
    cv.wait(lock, [this] { return stopping || !queue.empty(); });
    --idle_workers;
    if (queue.empty()) return;  // stopping, and the queue is drained
    Work work = std::move(queue.front());
    queue.pop_front();
    lock.unlock();
    work();
    work = nullptr;  // destroy captures outside the lock too
    lock.lock();
  }
}

void PoolState::ResetInChild() {
  Graveyard& graveyard = GetGraveyard();
  for (std::thread& thread : workers) graveyard.threads.push_back(std::move(thread));
  workers.clear();
  if (!queue.empty()) {
    graveyard.queues.push_back(std::move(queue));
    queue.clear();
  }
  // Waiters that no longer exist may have left these in any state (glibc's condition
  // variable counts its waiters; signalling one with phantom waiters can block forever).
  new (&mu) std::mutex();
  new (&cv) std::condition_variable();
  started = false;
  stopping = false;
  idle_workers = 0;
}

namespace {

/// One ParallelFor call. Shared by the caller and its helper tasks; a helper that starts
/// after the loop finished finds no index left and returns without touching `fn`.
struct ForJob {
  ForJob(int64_t n, int64_t chunk, const std::function<arrow::Status(int64_t)>* fn)
      : n(n), chunk(chunk), fn(fn) {}

  // Claims and runs chunks of indexes until none are left.
  void Run() {
    for (;;) {
      const int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
      if (begin >= n) return;
      const int64_t end = std::min(n, begin + chunk);
      for (int64_t i = begin; i < end && !failed.load(std::memory_order_relaxed); ++i) {
        arrow::Status st = Invoke([&] { return (*fn)(i); });
        if (!st.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (error.ok()) error = std::move(st);
          failed.store(true, std::memory_order_relaxed);
        }
      }
      // Skipped indexes count as finished. After the last one the caller may return and
      // `fn` dangle; `this` stays alive through the helper's shared_ptr.
      if (finished.fetch_add(end - begin, std::memory_order_acq_rel) + (end - begin) ==
          n) {
        {
          std::lock_guard<std::mutex> lock(mu);
        }  // the waiter is asleep or not yet checking
        cv.notify_all();
      }
    }
  }

  arrow::Status Wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [this] { return finished.load(std::memory_order_acquire) == n; });
    return error;
  }

  const int64_t n;
  const int64_t chunk;
  const std::function<arrow::Status(int64_t)>* const fn;  // valid while finished < n
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> finished{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::condition_variable cv;  // signalled when finished reaches n
  arrow::Status error;         // guarded by mu: the first failure
};

}  // namespace
}  // namespace internal

arrow::Status TaskHandle::Wait() const {
  using internal::TaskState;
  if (state_ == nullptr) return arrow::Status::Invalid("Wait() on an invalid TaskHandle");
  TaskState& task = *state_;
  if (task.phase.load(std::memory_order_acquire) == TaskState::kDone) return task.status;
  if (task.generation != ForkGeneration()) {
    return arrow::Status::Cancelled(
        "the task was submitted before fork() and had not finished; it runs only in the "
        "process that submitted it");
  }
  if (task.TryRun()) return task.status;
  std::unique_lock<std::mutex> lock(task.mu);
  task.cv.wait(lock, [&task] {
    return task.phase.load(std::memory_order_acquire) == TaskState::kDone;
  });
  return task.status;
}

bool TaskHandle::done() const {
  return state_ != nullptr &&
         state_->phase.load(std::memory_order_acquire) == internal::TaskState::kDone;
}

ThreadPool* ThreadPool::Default() {
  static ThreadPool* const pool = new ThreadPool(DefaultNumThreads());  // never destroyed
  return pool;
}

int ThreadPool::DefaultNumThreads() {
  if (const char* env = std::getenv("RIFFLEDB_NUM_THREADS"); env != nullptr && *env) {
    char* end = nullptr;
    errno = 0;
    const long value = std::strtol(env, &end, 10);
    if (errno == 0 && *end == '\0' && value >= 1) {
      return static_cast<int>(std::min<long>(value, 4096));
    }
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool::ThreadPool(int num_threads)
    : num_threads_(std::max(1, num_threads)),
      state_(std::make_unique<internal::PoolState>(num_threads_)) {
  internal::Registry& reg = internal::GetRegistry();
  std::lock_guard<std::mutex> lock(reg.mu);
  reg.pools.push_back(state_.get());
}

ThreadPool::~ThreadPool() {
  {
    // Unregister first: from here on a fork() does not touch this pool.
    internal::Registry& reg = internal::GetRegistry();
    std::lock_guard<std::mutex> lock(reg.mu);
    std::erase(reg.pools, state_.get());
  }
  internal::PoolState& s = *state_;
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    s.stopping = true;
    workers.swap(s.workers);
  }
  s.cv.notify_all();
  for (std::thread& worker : workers) worker.join();  // they drain the queue first
  std::deque<internal::Work> leftover;  // only if no worker could ever start
  {
    std::lock_guard<std::mutex> lock(s.mu);
    leftover.swap(s.queue);
  }
  for (internal::Work& work : leftover) work();
}

bool ThreadPool::idle() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->queue.empty() &&
         state_->idle_workers == static_cast<int>(state_->workers.size());
}

arrow::Status ThreadPool::ParallelFor(int64_t n,
                                      const std::function<arrow::Status(int64_t)>& fn) {
  if (n <= 0) return arrow::Status::OK();
  if (n == 1 || num_threads_ == 1) {
    for (int64_t i = 0; i < n; ++i) {
      ARROW_RETURN_NOT_OK(internal::Invoke([&] { return fn(i); }));
    }
    return arrow::Status::OK();
  }
  const int helpers = static_cast<int>(std::min<int64_t>(n - 1, num_threads_ - 1));
  // About eight chunks per participant: balances uneven work, keeps the counters cold.
  const int64_t chunk = std::max<int64_t>(1, n / (8 * int64_t{helpers + 1}));
  auto job = std::make_shared<internal::ForJob>(n, chunk, &fn);
  std::vector<internal::Work> work(helpers, [job] { job->Run(); });
  state_->Push(std::move(work));
  job->Run();
  return job->Wait();
}

TaskHandle ThreadPool::Submit(std::function<arrow::Status()> task) {
  auto state = std::make_shared<internal::TaskState>(std::move(task));
  std::vector<internal::Work> work;
  work.push_back([state] { state->TryRun(); });
  state_->Push(std::move(work));
  return TaskHandle(std::move(state));
}

}  // namespace riffledb
