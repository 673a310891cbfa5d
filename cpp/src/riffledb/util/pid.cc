#include "riffledb/util/pid.h"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

namespace riffledb {
namespace {

std::atomic<int> g_pid{0};
std::atomic<uint64_t> g_generation{0};

// Runs in the child with only the forking thread alive, before any other child handler
// registered later (ThreadPool's registry calls CurrentPid() before registering its own).
void ChildAfterFork() {
  g_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
  g_generation.fetch_add(1, std::memory_order_relaxed);
}

bool Initialize() {
  g_pid.store(static_cast<int>(::getpid()), std::memory_order_relaxed);
  ::pthread_atfork(nullptr, nullptr, ChildAfterFork);
  return true;
}

// Function-local static: safe to use from other translation units' static initializers.
void EnsureInitialized() {
  static const bool initialized = Initialize();
  (void)initialized;
}

// Also initialize at load time, so that a fork() racing a first call cannot find the
// function-local static's guard held by a thread that is gone.
[[maybe_unused]] const bool g_initialized_at_load = (EnsureInitialized(), true);

struct AbandonedNode {
  std::shared_ptr<void> value;
  AbandonedNode* next;
};
// A lock-free stack: a fork() can never find it half-updated. Never freed.
std::atomic<AbandonedNode*> g_abandoned{nullptr};

}  // namespace

int CurrentPid() {
  EnsureInitialized();
  return g_pid.load(std::memory_order_relaxed);
}

uint64_t ForkGeneration() {
  EnsureInitialized();
  return g_generation.load(std::memory_order_relaxed);
}

namespace internal {

void ForkSafeSpinLock::lock() {
  const uint64_t mine = ForkGeneration() + 1;
  for (;;) {
    uint64_t seen = 0;
    if (word_.compare_exchange_weak(seen, mine, std::memory_order_acquire,
                                    std::memory_order_relaxed)) {
      return;
    }
    if (seen != 0 && seen != mine) {
      // Held by a thread of an ancestor process: that thread does not exist here.
      if (word_.compare_exchange_strong(seen, mine, std::memory_order_acquire,
                                        std::memory_order_relaxed)) {
        return;
      }
      continue;
    }
    ::sched_yield();
  }
}

void AbandonAfterFork(std::shared_ptr<void> value) {
  auto* node =
      new AbandonedNode{std::move(value), g_abandoned.load(std::memory_order_relaxed)};
  while (!g_abandoned.compare_exchange_weak(node->next, node, std::memory_order_release,
                                            std::memory_order_relaxed)) {
  }
}

}  // namespace internal
}  // namespace riffledb
