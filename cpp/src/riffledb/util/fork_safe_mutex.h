// A mutex that a fork() never catches held (DESIGN.md decision 9).
#pragma once

#include <mutex>

namespace riffledb {

/// A std::mutex for short, leaf critical sections of objects that a forked child keeps
/// using (a Table's snapshot, a store's caches, a database's table list).
///
/// A plain mutex held by another thread at the moment of fork() stays locked forever in
/// the child, where that thread does not exist. A ForkSafeMutex cannot be caught held:
/// every critical section also holds a process-wide fork gate in shared mode, and a
/// pthread_atfork prepare handler takes the gate exclusively, so fork() waits until every
/// critical section in flight has finished and lets no new one start. The parent reopens
/// the gate after fork(); the child re-creates it in place. The data a ForkSafeMutex
/// guards is therefore always consistent in the child.
///
/// Rules, which keep the gate deadlock-free: a critical section is short, never blocks on
/// other threads (no waits, no I/O that can stall), never takes another ForkSafeMutex,
/// and never calls fork(). The gate prefers the writer, so a stream of critical sections
/// cannot starve a fork().
///
/// Meets the Lockable requirements: use it with std::lock_guard / std::unique_lock.
class ForkSafeMutex {
 public:
  ForkSafeMutex() = default;
  ForkSafeMutex(const ForkSafeMutex&) = delete;
  ForkSafeMutex& operator=(const ForkSafeMutex&) = delete;

  void lock();
  bool try_lock();
  void unlock();

 private:
  std::mutex mu_;
};

/// A process-wide std::mutex for leaf critical sections that may run inside a
/// ForkSafeMutex's (a destructor run under one) as well as outside any, where a
/// ForkSafeMutex would deadlock a fork() waiting on the gate (its sections may not nest).
/// fork() takes every such mutex after the gate, once no ForkSafeMutex section is in
/// flight, and releases them in the parent and in the child: a child never finds one
/// held. Its sections are short, take no other lock and never block. For objects that
/// live as long as the process (namespace-scope statics): it registers itself for fork()
/// and stays registered; at most 16 exist.
class ForkSafeLeafMutex {
 public:
  ForkSafeLeafMutex();
  ForkSafeLeafMutex(const ForkSafeLeafMutex&) = delete;
  ForkSafeLeafMutex& operator=(const ForkSafeLeafMutex&) = delete;

  void lock() { mu_.lock(); }
  bool try_lock() { return mu_.try_lock(); }
  void unlock() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

}  // namespace riffledb
