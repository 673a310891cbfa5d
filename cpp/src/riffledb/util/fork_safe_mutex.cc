#include "riffledb/util/fork_safe_mutex.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

namespace riffledb {
namespace {

// The fork gate: shared by every critical section, exclusive in the atfork prepare
// handler. Never destroyed (a static destructor could run while another thread uses it).
pthread_rwlock_t* NewGate() {
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  // Writer preference: once fork() waits, new critical sections wait behind it.
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  auto* gate = new pthread_rwlock_t;
  if (pthread_rwlock_init(gate, &attr) != 0) std::abort();
  pthread_rwlockattr_destroy(&attr);
  return gate;
}

pthread_rwlock_t* Gate();

// The ForkSafeLeafMutexes, in the order they registered (constant-initialized: a leaf
// constructed during another file's static initialization finds them ready).
constexpr int kMaxLeaves = 16;
std::atomic<ForkSafeLeafMutex*> g_leaves[kMaxLeaves] = {};
std::atomic<int> g_leaf_count{0};
// What the last PrepareFork locked, for the handlers after fork().
ForkSafeLeafMutex* g_locked[kMaxLeaves] = {};
int g_locked_count = 0;

void PrepareFork() {
  pthread_rwlock_wrlock(Gate());
  // No ForkSafeMutex section is in flight now, so no leaf section inside one: the
  // leaves' holders are sections that wait on nothing.
  const int count = std::min(g_leaf_count.load(std::memory_order_acquire), kMaxLeaves);
  g_locked_count = 0;
  for (int i = 0; i < count; ++i) {
    ForkSafeLeafMutex* leaf = g_leaves[i].load(std::memory_order_acquire);
    if (leaf == nullptr) continue;  // still registering: not in use yet
    leaf->lock();
    g_locked[g_locked_count++] = leaf;
  }
}

void UnlockLeaves() {
  while (g_locked_count > 0) g_locked[--g_locked_count]->unlock();
}

void ParentAfterFork() {
  UnlockLeaves();
  pthread_rwlock_unlock(Gate());
}

void ChildAfterFork() {
  // The child's only thread is the one that locked the leaves (a plain mutex has no
  // owner check): unlocked, they are free.
  UnlockLeaves();
  // Only the forking thread exists, and it holds the gate: re-create it, free.
  pthread_rwlock_t* gate = Gate();
  gate->~pthread_rwlock_t();
  new (gate) pthread_rwlock_t;
  pthread_rwlockattr_t attr;
  pthread_rwlockattr_init(&attr);
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(gate, &attr);
  pthread_rwlockattr_destroy(&attr);
}

pthread_rwlock_t* Gate() {
  static pthread_rwlock_t* const gate = [] {
    pthread_rwlock_t* g = NewGate();
    ::pthread_atfork(PrepareFork, ParentAfterFork, ChildAfterFork);
    return g;
  }();
  return gate;
}

// Initialize at load time, so that a fork() racing the first lock cannot find the
// function-local static's guard held by a thread that is gone.
[[maybe_unused]] const bool g_initialized_at_load = (Gate(), true);

}  // namespace

ForkSafeLeafMutex::ForkSafeLeafMutex() {
  Gate();  // the fork handlers are registered
  const int i = g_leaf_count.fetch_add(1, std::memory_order_acq_rel);
  if (i >= kMaxLeaves) std::abort();
  g_leaves[i].store(this, std::memory_order_release);
}

void ForkSafeMutex::lock() {
  pthread_rwlock_rdlock(Gate());
  mu_.lock();
}

bool ForkSafeMutex::try_lock() {
  if (pthread_rwlock_tryrdlock(Gate()) != 0) return false;
  if (!mu_.try_lock()) {
    pthread_rwlock_unlock(Gate());
    return false;
  }
  return true;
}

void ForkSafeMutex::unlock() {
  mu_.unlock();
  pthread_rwlock_unlock(Gate());
}

}  // namespace riffledb
