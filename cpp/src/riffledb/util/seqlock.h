// A sequence lock over 64-bit words in memory that several processes may map.
//
// A record is `n` value words followed by one sequence word. Its single writer makes the
// sequence odd, stores the values, and makes it even again; a reader copies the values
// and keeps them only if the sequence was the same even number before and after. The
// fences make that hold on any memory model, not only x86's: the words are atomics
// (std::atomic_ref, lock-free for aligned 64-bit words, so it works across processes on
// shared memory), the values relaxed, ordered by release/acquire on the sequence.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

namespace riffledb::util {

/// Stores `values` into the record at `record` (values.size() value words, then its
/// sequence word). One writer per record at a time: the caller's contract.
inline void SeqlockWrite(int64_t* record, std::span<const int64_t> values) {
  std::atomic_ref<int64_t> seq(record[values.size()]);
  const int64_t before = seq.load(std::memory_order_relaxed);
  seq.store(before + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  for (size_t i = 0; i < values.size(); ++i) {
    std::atomic_ref<int64_t>(record[i]).store(values[i], std::memory_order_relaxed);
  }
  seq.store(before + 2, std::memory_order_release);
}

/// Copies the record's out.size() values into `out` if no write was under way; false
/// if one was (the caller retries).
inline bool SeqlockTryRead(int64_t* record, std::span<int64_t> out) {
  std::atomic_ref<int64_t> seq(record[out.size()]);
  const int64_t before = seq.load(std::memory_order_acquire);
  if (before % 2 != 0) return false;
  for (size_t i = 0; i < out.size(); ++i) {
    out[i] = std::atomic_ref<int64_t>(record[i]).load(std::memory_order_relaxed);
  }
  std::atomic_thread_fence(std::memory_order_acquire);
  return seq.load(std::memory_order_relaxed) == before;
}

}  // namespace riffledb::util
