// The prefetching pipeline (DESIGN.md layer "loader"): reads of permutation views run on
// threads of their own ahead of the consumer, into a queue bounded in batches and bytes.
#pragma once

#include <arrow/record_batch.h>
#include <arrow/result.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "riffledb/permutation/reader.h"

namespace riffledb::loader {

/// One read of a plan: rows [start, start + length) of a view (PermutationReader::
/// TakeRange), or, when `offsets` is not empty, the rows at those offsets (TakeOffsets),
/// projected through `selection`. `tag` is the caller's (which split a read is of, say)
/// and comes back with the batch.
struct Read {
  std::shared_ptr<const PermutationReader> reader;
  std::shared_ptr<const BoundSelection> selection;
  int64_t start = 0;
  int64_t length = 0;
  std::vector<int64_t> offsets;
  int64_t tag = 0;
};

struct PrefetchOptions {
  /// Reads running at once (each on a thread of the prefetcher's own; a read's gather
  /// also uses the process-wide pool). At least 1.
  int threads = 2;
  /// Batches read but not yet taken by the consumer, at most (at least 1).
  int64_t max_batches = 8;
  /// Bytes of those batches, at most: no new read starts while the batches read and the
  /// reads under way (at the bytes per row seen so far; until the first read ends, only
  /// one runs) come to this many. The next batch is always read, however large.
  int64_t max_bytes = int64_t{256} << 20;
};

/// What a prefetcher has done so far. Times are nanoseconds; `read_ns` is summed over
/// the reading threads, `wait_ns` is the consumer's time blocked in Next().
struct PrefetchStats {
  int64_t batches = 0;  // taken by the consumer
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t read_ns = 0;
  int64_t wait_ns = 0;
  int64_t queued_batches = 0;  // read, waiting for the consumer
  int64_t queued_rows = 0;
  int64_t queued_bytes = 0;
};

/// A batch of the plan, in plan order.
struct Prefetched {
  std::shared_ptr<arrow::RecordBatch> batch;
  int64_t tag = 0;
  int64_t index = 0;  // its position in the plan
};

/// Reads a plan of batches ahead of its consumer, and hands them over in plan order.
///
/// Thread-safety: one consumer thread calls Next/TryNext; stats() and Close() may be
/// called from any thread. Reads never need Python's GIL, so the consumer can release it
/// while it waits (or never take it: see TryNext).
///
/// Errors: a failing read is returned by the Next() that reaches it, after the batches
/// before it; the prefetcher then stops (later calls return the same error).
///
/// Fork: a prefetcher belongs to the process that started it. In a forked child, Next()
/// returns Invalid (its reads run in the parent), and destroying it neither waits nor
/// joins (the pool of its threads is reset at fork, util/thread_pool.h).
class Prefetcher {
 public:
  static arrow::Result<std::unique_ptr<Prefetcher>> Start(std::vector<Read> plan,
                                                          PrefetchOptions options = {});
  /// Close()s.
  ~Prefetcher();

  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  /// The next batch of the plan, waiting for its read; nullopt after the last one (and
  /// after Close()).
  arrow::Result<std::optional<Prefetched>> Next();

  /// The next batch if it has been read, else nullopt without waiting (nor counting as
  /// waiting). `*end` is set when the plan is over.
  arrow::Result<std::optional<Prefetched>> TryNext(bool* end);

  /// The next batch if it is read within `timeout`, else nullopt, waiting on a
  /// condition variable (the calling thread sleeps: a caller holding Python's GIL keeps
  /// it, and leaves its CPU to the reads). `*end` is set when the plan is over.
  arrow::Result<std::optional<Prefetched>> NextWithin(std::chrono::microseconds timeout,
                                                      bool* end);

  /// Stops: reads not started are dropped, the ones running finish (their results are
  /// discarded), and the call returns when no read runs. Idempotent.
  void Close();

  PrefetchStats stats() const;
  int64_t size() const;  // batches in the plan

 private:
  struct State;
  explicit Prefetcher(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

}  // namespace riffledb::loader
