// Private helpers of the permutation builder: the seeded shuffle (the exact algorithm is
// documented in builder.h, "Shuffle algorithm") and the stable grouping by split.
// Exposed for builder_test.cc and builder_benchmark.cc; not public API.
//
// Every function here gives the same result for any pool and any number of threads: the
// only randomness comes from generators whose seeds and draw order depend on the seed and
// the input size alone; the pool only decides which thread does which (disjoint) part.
#pragma once

#include <arrow/buffer.h>
#include <arrow/result.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "riffledb/permutation/split_internal.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb::internal {

/// Working arrays that successive stages of one build share instead of each allocating
/// (and page-faulting) its own: the distributed copy of the ids and the bucket index of
/// each row. First touches of fresh pages (a fault and the kernel zeroing each 4 KiB
/// page) were ~40% of a 10M-row build; sharing cuts them by a third. Not thread-safe;
/// one per build.
class ShuffleWorkspace {
 public:
  /// At least `n` uninitialized ids, valid until the next call or the workspace's end.
  uint64_t* Ids(uint64_t n);
  /// At least `n` uninitialized bucket indexes, likewise.
  uint16_t* Buckets(uint64_t n);

 private:
  std::unique_ptr<uint64_t[]> ids_;
  uint64_t ids_size_ = 0;
  std::unique_ptr<uint16_t[]> buckets_;
  uint64_t buckets_size_ = 0;
};

/// K in builder.h: items per block of bucket draws, and the target items per bucket
/// (64 Ki items of 8 bytes = 512 KiB, an L2 cache's worth).
inline constexpr uint64_t kShuffleBucketItems = uint64_t{1} << 16;
/// The most buckets (so that a bucket index fits 16 bits).
inline constexpr uint64_t kShuffleMaxBuckets = uint64_t{1} << 16;

/// B(m) of builder.h: min(floor(m / bucket_items), 65536). Fewer than 2 means the shuffle
/// is a plain Fisher-Yates. `bucket_items` is kShuffleBucketItems except in tests, which
/// shrink it to exercise the bucketed path on small inputs.
uint64_t ShuffleNumBuckets(uint64_t m, uint64_t bucket_items = kShuffleBucketItems);

/// Shuffles `values` in place with the documented algorithm and Rng(seed). Temporary
/// memory for the bucketed path: 10 bytes per item, taken from `workspace` when given
/// (a later stage of the same build reuses it).
void ShuffleValues(std::span<uint64_t> values, uint64_t seed, ThreadPool* pool,
                   uint64_t bucket_items = kShuffleBucketItems,
                   ShuffleWorkspace* workspace = nullptr);

/// The clump order of a shuffle of `num_rows` rows in clumps of `clump_size` (>= 1):
/// the documented shuffle of identity[0..ceil(num_rows / clump_size)).
std::vector<uint64_t> ShuffledClumpOrder(uint64_t num_rows, uint64_t clump_size,
                                         uint64_t seed, ThreadPool* pool,
                                         uint64_t bucket_items = kShuffleBucketItems);

/// Reorders `ids` as the documented shuffle in clumps of `clump_size` (>= 1).
void ShuffleIdsInClumps(std::vector<uint64_t>* ids, uint64_t clump_size, uint64_t seed,
                        ThreadPool* pool, uint64_t bucket_items = kShuffleBucketItems,
                        ShuffleWorkspace* workspace = nullptr);

/// Seed and clump size of a shuffle.
struct ShuffleSpec {
  uint64_t seed = 0;
  uint64_t clump_size = 1;
};

/// Groups `ids` by `tags` (split index per row, < num_splits), stably, after an optional
/// documented shuffle of the (id, tag) stream in clumps. Frees the inputs; the result's
/// ids reuse the buffer of `ids`. Temporary memory: 8 bytes + 2 tags per row, plus 2
/// bytes per row (bucket indexes) while a bucketed shuffle distributes rows, plus 8 bytes
/// per clump when clump_size > 1.
template <typename Tag>
Grouped ShuffleAndGroup(std::vector<uint64_t> ids, std::vector<Tag> tags,
                        uint64_t num_splits, const std::optional<ShuffleSpec>& shuffle,
                        ThreadPool* pool, uint64_t bucket_items = kShuffleBucketItems);

/// The shuffle and stable grouping of ShuffleAndGroup (clump size 1) for a stream laid
/// out as consecutive splits of `counts` rows, without tags: returns false, doing
/// nothing, unless the shuffle is bucketed, there are 2 or more splits and fewer than
/// 2^22 / B of them, and the counts sum to ids->size(). Temporary memory: 10 bytes per
/// row.
bool ShuffleContiguousSplits(std::vector<uint64_t>* ids, std::span<const uint64_t> counts,
                             uint64_t seed, ThreadPool* pool,
                             uint64_t bucket_items = kShuffleBucketItems,
                             ShuffleWorkspace* workspace = nullptr);

/// A zero-filled buffer of `size` bytes on its own anonymous mapping, in base pages.
/// Pages never written cost nothing (no fault, no zeroing; a read maps the shared zero
/// page). Base pages, not the huge pages that Arrow's allocator asks for: on the VMs we
/// measured, the first touch of a transparent huge page cost several times that of 512
/// base pages (a 100M-row build spent 80% of its time zeroing them).
arrow::Result<std::shared_ptr<arrow::MutableBuffer>> MapZeroed(int64_t size);

/// Faults in (zeroes) the pages of [data, data + size) that are to be written, split
/// across `pool`'s threads (MADV_POPULATE_WRITE), so that a single-threaded writer does
/// not pay every page's first-touch zeroing itself. Best effort: a kernel without
/// MADV_POPULATE_WRITE (before 5.14) leaves the pages to be faulted on write.
void PrefaultForWrite(uint8_t* data, int64_t size, ThreadPool* pool);

/// Row ids by scan position for a table without deleted rows (and no filter): position p
/// of fragment f, the fragments in scan order, is row (id_f << 32) | (p - start_f). Lets
/// the builder permute 4-byte positions and skip the scan of `_rowid`s.
class DenseRowIds {
 public:
  struct Fragment {
    uint32_t id = 0;
    uint64_t num_rows = 0;
  };
  explicit DenseRowIds(std::vector<Fragment> fragments);

  uint64_t num_rows() const { return starts_.back(); }

  /// The lookup by plain pointers to the tables, valid while this object is: a loop
  /// holding one keeps them in registers, where calls of operator() reload them after
  /// every store that could alias the vectors (a uint64_t or may_alias store).
  struct Lookup {
    const uint64_t* starts;
    const uint64_t* bases;
    const uint32_t* first_fragment;
    /// The row id at `position` (< num_rows()).
    uint64_t operator()(uint64_t position) const {
      uint64_t f = first_fragment[position >> kPageBits];
      while (position >= starts[f + 1]) ++f;
      return bases[f] + position;
    }
  };
  Lookup lookup() const {
    return {starts_.data(), bases_.data(), first_fragment_.data()};
  }

  /// The row id at `position` (< num_rows()).
  uint64_t operator()(uint64_t position) const { return lookup()(position); }

 private:
  // A page of 2^16 positions starts in fragment first_fragment_[page]: a lookup is that
  // plus a step per fragment boundary inside the page.
  static constexpr int kPageBits = 16;
  std::vector<uint64_t> starts_;  // of each fragment, plus the total
  std::vector<uint64_t> bases_;   // (id << 32) - start, so that a row id is base + p
  std::vector<uint32_t> first_fragment_;
};

/// Whether ShuffleDense handles this configuration: fewer than 2^32 rows, clump size 1
/// for both shuffles, counts summing to at most the rows, and with a shuffle either one
/// split or splits ShuffleContiguousSplits would take.
bool ShuffleDenseApplies(const DenseRowIds& rows, std::span<const uint64_t> counts,
                         const std::optional<ShuffleSpec>& split_shuffle,
                         const std::optional<ShuffleSpec>& shuffle,
                         uint64_t bucket_items = kShuffleBucketItems);

/// The random, sequential or default split of all rows of `rows`, then the optional
/// shuffle and the grouping, written to `out` as row ids: the same result as scanning
/// the row ids and running ShuffleIdsInClumps (split_shuffle, when given), truncating to
/// Σ counts, then ShuffleIdsInClumps or ShuffleContiguousSplits (shuffle), but permuting
/// 4-byte positions. `out` holds rows.num_rows() uninitialized ids, of which the first
/// Σ counts are written; its memory is the working space of every pass (positions in
/// its two halves, widened to row ids in place at the end), so the build touches no
/// other memory of size proportional to the rows. Requires ShuffleDenseApplies().
void ShuffleDense(const DenseRowIds& rows, std::span<const uint64_t> counts,
                  const std::optional<ShuffleSpec>& split_shuffle,
                  const std::optional<ShuffleSpec>& shuffle, ThreadPool* pool,
                  uint64_t* out, uint64_t bucket_items = kShuffleBucketItems);

}  // namespace riffledb::internal
