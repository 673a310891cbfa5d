// Process identity across fork(), and a holder for per-process handles.
//
// What does not survive fork() — threads, sockets, TLS sessions, HTTP keep-alive pools —
// must be rebuilt by the process that uses it (DESIGN.md decision 9). These helpers let
// an object tell whether it was built in the calling process or inherited from an
// ancestor.
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <type_traits>
#include <utility>

namespace riffledb {

/// The calling process's id. Cached (one atomic load) and refreshed by a pthread_atfork
/// child handler, so it is cheap enough for every call on a hot path. Thread-safe.
///
/// Processes created without running atfork handlers (raw clone(2), glibc's _Fork()) are
/// not seen; fork(), Python's os.fork() and multiprocessing's "fork" start method are.
int CurrentPid();

/// How many fork()s separate the calling process from the first one that loaded riffledb:
/// 0 there, and one more in each forked child than in its parent. Thread-safe, cheap.
///
/// A value stored in memory can only be inherited by descendants, and every descendant
/// has a larger generation, so "stored generation != ForkGeneration()" means "built by an
/// ancestor" — unlike a pid comparison, this is immune to pid reuse.
uint64_t ForkGeneration();

namespace internal {

/// A tiny spin lock that a forked child may use even if a thread of the parent held it at
/// the moment of fork(): the lock word records the holder's ForkGeneration(), and a lock
/// held by an ancestor's thread (which does not exist in this process) is taken over.
/// Whatever it protected may then be half-updated, so the protected data must be treated
/// as garbage after a takeover (PerProcess abandons it). For critical sections of a few
/// instructions only; it yields while spinning.
class ForkSafeSpinLock {
 public:
  void lock();
  void unlock() { word_.store(0, std::memory_order_release); }

 private:
  // 0 when free, else the holder's ForkGeneration() + 1.
  std::atomic<uint64_t> word_{0};
};

/// Keeps `value` alive forever without destroying it. Used for objects built by an
/// ancestor process: their destructors could talk to peers shared with the parent (a TLS
/// close_notify on an inherited socket) or wait for threads that do not exist here.
/// Lock-free, safe to call in a forked child; the objects stay reachable (no leak
/// reports). Never destroys its argument, even an empty one: a pointer torn by a takeover
/// of a ForkSafeSpinLock may look empty and still own a control block.
void AbandonAfterFork(std::shared_ptr<void> value);

}  // namespace internal

/// Holds one `std::shared_ptr<T>` per process: the handle is built on first use, and
/// again in a forked child that inherited this holder (the parent's handle is abandoned,
/// not destroyed — see internal::AbandonAfterFork). For sockets, HTTP pools and anything
/// else that does not survive fork(). Thread-safe: concurrent Get() calls may each run
/// the factory, but exactly one result is kept and returned to all of them.
///
/// The returned shared_ptr stays valid as long as the caller holds it; handing it across
/// a fork() into a child is the caller's responsibility (call Get() again in the child).
template <typename T>
class PerProcess {
 public:
  PerProcess() = default;
  PerProcess(const PerProcess&) = delete;
  PerProcess& operator=(const PerProcess&) = delete;
  ~PerProcess() {
    if (generation_ != ForkGeneration()) internal::AbandonAfterFork(std::move(value_));
  }

  /// Returns this process's handle, building it with `factory()` if this process has none
  /// yet. `factory` returns `arrow::Result<std::shared_ptr<T>>` or `std::shared_ptr<T>`;
  /// it is called without any lock held, and its error (or a null result, as Invalid) is
  /// returned without storing anything.
  template <typename Factory>
  arrow::Result<std::shared_ptr<T>> Get(Factory&& factory) {
    const uint64_t generation = ForkGeneration();
    {
      std::lock_guard<internal::ForkSafeSpinLock> guard(lock_);
      if (value_ != nullptr && generation_ == generation) return value_;
    }
    std::shared_ptr<T> fresh;
    using Returned = std::invoke_result_t<Factory&>;
    if constexpr (std::is_same_v<Returned, std::shared_ptr<T>>) {
      fresh = factory();
    } else {
      ARROW_ASSIGN_OR_RAISE(fresh, factory());
    }
    if (fresh == nullptr)
      return arrow::Status::Invalid("PerProcess factory returned null");
    std::lock_guard<internal::ForkSafeSpinLock> guard(lock_);
    if (value_ != nullptr && generation_ == generation) return value_;  // lost a race
    if (generation_ != generation) {
      // Built by an ancestor, possibly torn by a takeover of lock_: move the bits out
      // without touching the control block, and start from a fresh slot.
      internal::AbandonAfterFork(std::move(value_));
      new (&value_) std::shared_ptr<T>();
    }
    value_ = fresh;
    generation_ = generation;
    pid_ = CurrentPid();
    return value_;
  }

  /// The pid of the process that built the held handle, or 0 if this process has none.
  int built_pid() const {
    std::lock_guard<internal::ForkSafeSpinLock> guard(lock_);
    return (value_ != nullptr && generation_ == ForkGeneration()) ? pid_ : 0;
  }

  /// Drops this process's handle (the next Get() builds a new one). The handle is
  /// destroyed outside the lock, and only if this process built it.
  void Reset() {
    std::shared_ptr<T> old;
    {
      std::lock_guard<internal::ForkSafeSpinLock> guard(lock_);
      if (generation_ != ForkGeneration()) {
        internal::AbandonAfterFork(std::move(value_));
        new (&value_) std::shared_ptr<T>();
        generation_ = ForkGeneration();
      }
      old = std::move(value_);
      pid_ = 0;
    }
  }

 private:
  mutable internal::ForkSafeSpinLock lock_;
  std::shared_ptr<T> value_;  // guarded by lock_
  uint64_t generation_ =
      ForkGeneration();  // guarded by lock_: the builder's, or creator's
  int pid_ = 0;          // guarded by lock_: CurrentPid() of the builder
};

}  // namespace riffledb
