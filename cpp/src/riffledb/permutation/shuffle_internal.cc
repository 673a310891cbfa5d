#include "riffledb/permutation/shuffle_internal.h"

#include <arrow/util/logging.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <limits>
#include <numeric>
#include <type_traits>

#include "riffledb/util/random.h"

namespace riffledb::internal {

namespace {

// Rows per unit of parallel work for passes whose result does not depend on how the
// input is cut (copies, stable counting sorts).
constexpr uint64_t kStripeItems = uint64_t{1} << 16;
// Per-stripe histograms are kept below this many counters.
constexpr uint64_t kMaxHistogram = uint64_t{1} << 22;

struct NoTag {};

template <typename T>
std::unique_ptr<T[]> Uninitialized(uint64_t n) {
  return std::make_unique_for_overwrite<T[]>(n);
}

void RunParallel(ThreadPool* pool, uint64_t n, const std::function<void(uint64_t)>& fn) {
  const arrow::Status status =
      pool->ParallelFor(static_cast<int64_t>(n), [&](int64_t i) -> arrow::Status {
        fn(static_cast<uint64_t>(i));
        return arrow::Status::OK();
      });
  ARROW_DCHECK_OK(status);
}

// How many stripes to cut `units` units of work into, each with a histogram of
// `width` counters. Only the speed depends on it, never the result.
uint64_t NumStripes(uint64_t units, uint64_t width, ThreadPool* pool) {
  uint64_t stripes =
      std::min<uint64_t>(units, 4 * static_cast<uint64_t>(pool->num_threads()));
  stripes = std::min<uint64_t>(stripes, kMaxHistogram / std::max<uint64_t>(width, 1));
  return std::max<uint64_t>(stripes, 1);
}

template <typename T>
void ParallelCopy(T* dst, const T* src, uint64_t n, ThreadPool* pool) {
  const uint64_t chunk = 16 * kStripeItems;
  RunParallel(pool, (n + chunk - 1) / chunk, [&](uint64_t c) {
    const uint64_t begin = c * chunk, end = std::min(n, begin + chunk);
    std::memcpy(dst + begin, src + begin, (end - begin) * sizeof(T));
  });
}

std::array<uint64_t, 2> WholeInput(uint64_t m) { return {0, m}; }

struct Buckets {
  std::vector<uint64_t> starts;  // num_buckets + 1 offsets into the distributed array
  std::vector<uint64_t> seeds;   // e_k of builder.h
};

// Steps 1 and 2 of the bucketed shuffle (builder.h): draws each item's bucket and writes
// the items of src, grouped by bucket and in input order within a bucket, to dst.
// `bounds` (S + 1 positions from 0 to m) cuts the input into S consecutive splits; when
// `cells` is given it receives, at [s * B + k], how many items of split s went to bucket
// k. (The cuts change nothing else.)
// `bucket_of` holds m uninitialized items of scratch, or is null: then the scatter draws
// the buckets again (the same generators, so the same draws), which costs a draw a row
// instead of 2 bytes a row of memory. A null `src` stands for the
// positions 0, 1, ..., m - 1 (V must hold m - 1), which need not be stored.
template <typename V, typename Tag>
Buckets Distribute(const V* src, const Tag* src_tags, V* dst, Tag* dst_tags, uint64_t m,
                   uint64_t num_buckets, uint64_t seed, uint64_t block, ThreadPool* pool,
                   std::span<const uint64_t> bounds, std::vector<uint64_t>* cells,
                   uint16_t* bucket_of) {
  ARROW_DCHECK(num_buckets >= 2 && num_buckets <= kShuffleMaxBuckets);
  ARROW_DCHECK(bounds.size() >= 2 && bounds.front() == 0 && bounds.back() == m);
  const uint64_t num_blocks = (m + block - 1) / block;
  Rng master(seed);
  std::vector<uint64_t> block_seeds(num_blocks);
  for (uint64_t& s : block_seeds) s = master.Next();
  Buckets out;
  out.seeds.resize(num_buckets);
  for (uint64_t& s : out.seeds) s = master.Next();

  // Stripes are runs of whole blocks, so each block's generator is used by one thread.
  // A stripe counts its items per bucket separately for each split it overlaps (a
  // "piece").
  const uint64_t num_splits = bounds.size() - 1;
  const uint64_t stripes = NumStripes(num_blocks, num_buckets, pool);
  auto first_item = [&](uint64_t stripe) {
    return std::min(m, num_blocks * stripe / stripes * block);
  };
  auto split_of = [&](uint64_t item) {  // the split holding item (< m)
    return static_cast<uint64_t>(std::upper_bound(bounds.begin(), bounds.end(), item) -
                                 bounds.begin() - 1);
  };
  std::vector<uint64_t> first_piece(stripes + 1, 0), first_split(stripes, 0);
  for (uint64_t t = 0; t < stripes; ++t) {
    const uint64_t a = first_item(t), b = first_item(t + 1);
    uint64_t pieces = 0;
    if (a < b) {
      first_split[t] = split_of(a);
      pieces = split_of(b - 1) - first_split[t] + 1;
    }
    first_piece[t + 1] = first_piece[t] + pieces;
  }
  std::vector<uint64_t> piece_counts(first_piece[stripes] * num_buckets, 0);
  RunParallel(pool, stripes, [&](uint64_t t) {
    // A local, not the captured variable: the counter stores could alias that.
    const uint64_t buckets = num_buckets;
    const uint64_t end_block = num_blocks * (t + 1) / stripes;
    uint64_t s = first_split[t];
    uint64_t* count = piece_counts.data() + first_piece[t] * num_buckets;
    for (uint64_t j = num_blocks * t / stripes; j < end_block; ++j) {
      Rng rng(block_seeds[j]);
      const uint64_t end = std::min(m, (j + 1) * block);
      for (uint64_t i = j * block; i < end;) {
        while (bounds[s + 1] <= i) {  // next split (skipping empty ones)
          ++s;
          count =
              piece_counts.data() + (first_piece[t] + s - first_split[t]) * num_buckets;
        }
        const uint64_t piece_end = std::min(end, bounds[s + 1]);
        for (; i < piece_end; ++i) {
          const auto b = static_cast<uint16_t>(rng.UniformBelow(buckets));
          if (bucket_of != nullptr) bucket_of[i] = b;
          ++count[b];
        }
      }
    }
  });
  // Bucket k starts after buckets < k; within it, stripe t's items follow stripe t-1's.
  std::vector<uint64_t> next(stripes * num_buckets, 0);
  if (cells != nullptr) cells->assign(num_splits * num_buckets, 0);
  for (uint64_t t = 0; t < stripes; ++t) {
    for (uint64_t p = first_piece[t]; p < first_piece[t + 1]; ++p) {
      const uint64_t* count = piece_counts.data() + p * num_buckets;
      uint64_t* sum = next.data() + t * num_buckets;
      for (uint64_t k = 0; k < num_buckets; ++k) sum[k] += count[k];
      if (cells != nullptr) {
        uint64_t* cell =
            cells->data() + (first_split[t] + p - first_piece[t]) * num_buckets;
        for (uint64_t k = 0; k < num_buckets; ++k) cell[k] += count[k];
      }
    }
  }
  std::vector<uint64_t>().swap(piece_counts);
  out.starts.resize(num_buckets + 1);
  uint64_t at = 0;
  for (uint64_t k = 0; k < num_buckets; ++k) {
    out.starts[k] = at;
    for (uint64_t t = 0; t < stripes; ++t) {
      const uint64_t count = next[t * num_buckets + k];
      next[t * num_buckets + k] = at;
      at += count;
    }
  }
  out.starts[num_buckets] = at;
  RunParallel(pool, stripes, [&](uint64_t t) {
    // Locals, not the captured variables: the cursor stores could alias those.
    const uint64_t buckets = num_buckets;
    const V* const from = src;
    V* const to = dst;
    uint64_t* slot = next.data() + t * num_buckets;
    auto put = [&](uint64_t i, uint64_t bucket) {
      const uint64_t p = slot[bucket]++;
      // Each bucket's slots are written in order, but the buckets (~150 at 10M rows)
      // are too many streams for the hardware prefetchers: fetch the cache line after
      // this item's for writing, so it is there when the bucket reaches it. 10M-row
      // split_random + shuffle: 132-142 ms -> 116-124 ms (interleaved runs).
      __builtin_prefetch(to + p + 64 / sizeof(V), 1);
      to[p] = from == nullptr ? static_cast<V>(i) : from[i];
      if constexpr (!std::is_same_v<Tag, NoTag>) dst_tags[p] = src_tags[i];
    };
    if (bucket_of == nullptr) {
      const uint64_t end_block = num_blocks * (t + 1) / stripes;
      for (uint64_t j = num_blocks * t / stripes; j < end_block; ++j) {
        Rng rng(block_seeds[j]);
        const uint64_t end = std::min(m, (j + 1) * block);
        for (uint64_t i = j * block; i < end; ++i) put(i, rng.UniformBelow(buckets));
      }
      return;
    }
    const uint64_t end = first_item(t + 1);
    for (uint64_t i = first_item(t); i < end; ++i) put(i, bucket_of[i]);
  });
  return out;
}

// Step 3: shuffles each bucket with its own generator, then calls finish(begin, end)
// on it while it is still in cache.
template <typename V, typename Tag, typename Finish>
void ShuffleBuckets(V* data, Tag* tags, const Buckets& buckets, ThreadPool* pool,
                    Finish&& finish) {
  RunParallel(pool, buckets.seeds.size(), [&](uint64_t k) {
    const uint64_t begin = buckets.starts[k], end = buckets.starts[k + 1];
    Rng rng(buckets.seeds[k]);
    if constexpr (std::is_same_v<Tag, NoTag>) {
      ShufflePrefetched(rng, std::span<V>(data + begin, end - begin));
    } else {
      ShufflePrefetched(rng, std::span<V>(data + begin, end - begin),
                        std::span<Tag>(tags + begin, end - begin));
    }
    finish(begin, end);
  });
}

// Writes the clumps of src (and tags) in `order` to dst: clump c is items
// [c * clump, min(m, (c + 1) * clump)).
template <typename Tag>
void ExpandClumps(const uint64_t* src, const Tag* src_tags, uint64_t m, uint64_t clump,
                  const std::vector<uint64_t>& order, uint64_t* dst, Tag* dst_tags,
                  ThreadPool* pool) {
  const uint64_t num_clumps = order.size();
  if (num_clumps == 0) return;
  // Every clump is full except perhaps the last one (the runt): clumps placed after it
  // start (clump - runt) items earlier.
  const uint64_t runt = m - (num_clumps - 1) * clump;
  uint64_t runt_at = num_clumps;
  if (runt != clump) {
    runt_at = static_cast<uint64_t>(
        std::find(order.begin(), order.end(), num_clumps - 1) - order.begin());
  }
  const uint64_t per_task = std::max<uint64_t>(1, kStripeItems / clump);
  RunParallel(pool, (num_clumps + per_task - 1) / per_task, [&](uint64_t task) {
    const uint64_t end = std::min(num_clumps, (task + 1) * per_task);
    for (uint64_t q = task * per_task; q < end; ++q) {
      const uint64_t c = order[q];
      const uint64_t from = c * clump, len = std::min(clump, m - from);
      const uint64_t to = q * clump - (q > runt_at ? clump - runt : 0);
      std::memcpy(dst + to, src + from, len * sizeof(uint64_t));
      if constexpr (!std::is_same_v<Tag, NoTag>) {
        std::memcpy(dst_tags + to, src_tags + from, len * sizeof(Tag));
      }
    }
  });
}

// A stable counting sort of src by tag into dst; returns the count of each tag.
template <typename Tag>
std::vector<uint64_t> GroupInto(const uint64_t* src, const Tag* tags, uint64_t m,
                                uint64_t num_splits, uint64_t* dst, ThreadPool* pool) {
  std::vector<uint64_t> counts(num_splits, 0);
  if (num_splits == 1) {
    ParallelCopy(dst, src, m, pool);
    counts[0] = m;
    return counts;
  }
  const uint64_t stripes =
      NumStripes((m + kStripeItems - 1) / kStripeItems, num_splits, pool);
  auto first = [&](uint64_t t) { return m * t / stripes; };
  std::vector<uint64_t> next(stripes * num_splits, 0);
  RunParallel(pool, stripes, [&](uint64_t t) {
    uint64_t* count = next.data() + t * num_splits;
    const uint64_t end = first(t + 1);
    for (uint64_t i = first(t); i < end; ++i) {
      ARROW_DCHECK(static_cast<uint64_t>(tags[i]) < num_splits);
      ++count[tags[i]];
    }
  });
  uint64_t at = 0;
  for (uint64_t s = 0; s < num_splits; ++s) {
    const uint64_t start = at;
    for (uint64_t t = 0; t < stripes; ++t) {
      const uint64_t count = next[t * num_splits + s];
      next[t * num_splits + s] = at;
      at += count;
    }
    counts[s] = at - start;
  }
  RunParallel(pool, stripes, [&](uint64_t t) {
    uint64_t* slot = next.data() + t * num_splits;
    const uint64_t end = first(t + 1);
    for (uint64_t i = first(t); i < end; ++i) dst[slot[tags[i]]++] = src[i];
  });
  return counts;
}

}  // namespace

namespace {

class MappedBuffer : public arrow::MutableBuffer {
 public:
  MappedBuffer(uint8_t* data, int64_t size, size_t length)
      : arrow::MutableBuffer(data, size), mapping_(data), length_(length) {}
  ~MappedBuffer() override { munmap(mapping_, length_); }

 private:
  uint8_t* mapping_;
  size_t length_;
};

}  // namespace

arrow::Result<std::shared_ptr<arrow::MutableBuffer>> MapZeroed(int64_t size) {
  const size_t length = static_cast<size_t>(std::max<int64_t>(size, 1));
  void* data =
      mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (data == MAP_FAILED) {
    return arrow::Status::OutOfMemory("Cannot map ", size,
                                      " bytes: ", std::strerror(errno));
  }
  return std::make_shared<MappedBuffer>(static_cast<uint8_t*>(data), size, length);
}

void PrefaultForWrite(uint8_t* data, int64_t size, ThreadPool* pool) {
#ifndef MADV_POPULATE_WRITE
  constexpr int MADV_POPULATE_WRITE = 23;  // linux/mman.h, Linux 5.14
#endif
  const int64_t page = sysconf(_SC_PAGESIZE);
  const int parts = pool == nullptr ? 1 : pool->num_threads();
  if (size < (int64_t{4} << 20) || parts < 2) return;  // not worth a thread hand-off
  const auto begin = reinterpret_cast<uintptr_t>(data);
  const int64_t part = (size / parts + page - 1) / page * page;
  (void)pool->ParallelFor(parts, [&](int64_t i) {
    const int64_t offset = i * part;
    const int64_t length = std::min(part, size - offset);
    if (length > 0) {
      (void)madvise(reinterpret_cast<void*>(begin + static_cast<uintptr_t>(offset)),
                    static_cast<size_t>(length), MADV_POPULATE_WRITE);
    }
    return arrow::Status::OK();
  });
}

uint64_t* ShuffleWorkspace::Ids(uint64_t n) {
  if (ids_size_ < n) {
    ids_.reset();  // before the new mapping: the old one is not needed any more
    ids_ = Uninitialized<uint64_t>(n);
    ids_size_ = n;
  }
  return ids_.get();
}

uint16_t* ShuffleWorkspace::Buckets(uint64_t n) {
  if (buckets_size_ < n) {
    buckets_.reset();
    buckets_ = Uninitialized<uint16_t>(n);
    buckets_size_ = n;
  }
  return buckets_.get();
}

uint64_t ShuffleNumBuckets(uint64_t m, uint64_t bucket_items) {
  return std::min(m / std::max<uint64_t>(bucket_items, 1), kShuffleMaxBuckets);
}

void ShuffleValues(std::span<uint64_t> values, uint64_t seed, ThreadPool* pool,
                   uint64_t bucket_items, ShuffleWorkspace* workspace) {
  const uint64_t m = values.size();
  const uint64_t num_buckets = ShuffleNumBuckets(m, bucket_items);
  if (num_buckets < 2) {
    Rng rng(seed);
    ShufflePrefetched(rng, values);
    return;
  }
  ShuffleWorkspace local;
  if (workspace == nullptr) workspace = &local;
  uint64_t* scratch = workspace->Ids(m);
  const Buckets buckets = Distribute<uint64_t, NoTag>(
      values.data(), nullptr, scratch, nullptr, m, num_buckets, seed, bucket_items, pool,
      WholeInput(m), nullptr, workspace->Buckets(m));
  ShuffleBuckets<uint64_t, NoTag>(scratch, nullptr, buckets, pool,
                                  [&](uint64_t begin, uint64_t end) {
                                    std::memcpy(values.data() + begin, scratch + begin,
                                                (end - begin) * sizeof(uint64_t));
                                  });
}

std::vector<uint64_t> ShuffledClumpOrder(uint64_t num_rows, uint64_t clump_size,
                                         uint64_t seed, ThreadPool* pool,
                                         uint64_t bucket_items) {
  const uint64_t num_clumps = num_rows / clump_size + (num_rows % clump_size != 0);
  std::vector<uint64_t> order(num_clumps);
  std::iota(order.begin(), order.end(), uint64_t{0});
  ShuffleValues(order, seed, pool, bucket_items);
  return order;
}

void ShuffleIdsInClumps(std::vector<uint64_t>* ids, uint64_t clump_size, uint64_t seed,
                        ThreadPool* pool, uint64_t bucket_items,
                        ShuffleWorkspace* workspace) {
  if (clump_size == 1) {
    ShuffleValues(*ids, seed, pool, bucket_items, workspace);
    return;
  }
  const uint64_t m = ids->size();
  const std::vector<uint64_t> order =
      ShuffledClumpOrder(m, clump_size, seed, pool, bucket_items);
  ShuffleWorkspace local;
  if (workspace == nullptr) workspace = &local;
  uint64_t* scratch = workspace->Ids(m);
  ExpandClumps<NoTag>(ids->data(), nullptr, m, clump_size, order, scratch, nullptr, pool);
  ParallelCopy(ids->data(), scratch, m, pool);
}

template <typename Tag>
Grouped ShuffleAndGroup(std::vector<uint64_t> ids, std::vector<Tag> tags,
                        uint64_t num_splits, const std::optional<ShuffleSpec>& shuffle,
                        ThreadPool* pool, uint64_t bucket_items) {
  ARROW_DCHECK_EQ(ids.size(), tags.size());
  const uint64_t m = ids.size();
  Grouped out;
  auto scratch = Uninitialized<uint64_t>(m);
  if (!shuffle) {
    ParallelCopy(scratch.get(), ids.data(), m, pool);
    out.counts = GroupInto(scratch.get(), tags.data(), m, num_splits, ids.data(), pool);
    out.ids = std::move(ids);
    return out;
  }
  auto scratch_tags = Uninitialized<Tag>(m);
  if (shuffle->clump_size > 1) {
    std::vector<uint64_t> order =
        ShuffledClumpOrder(m, shuffle->clump_size, shuffle->seed, pool, bucket_items);
    ExpandClumps<Tag>(ids.data(), tags.data(), m, shuffle->clump_size, order,
                      scratch.get(), scratch_tags.get(), pool);
  } else {
    const uint64_t num_buckets = ShuffleNumBuckets(m, bucket_items);
    if (num_buckets < 2) {
      ParallelCopy(scratch.get(), ids.data(), m, pool);
      ParallelCopy(scratch_tags.get(), tags.data(), m, pool);
      Rng rng(shuffle->seed);
      ShufflePrefetched(rng, std::span<uint64_t>(scratch.get(), m),
                        std::span<Tag>(scratch_tags.get(), m));
    } else {
      const Buckets buckets = Distribute<uint64_t, Tag>(
          ids.data(), tags.data(), scratch.get(), scratch_tags.get(), m, num_buckets,
          shuffle->seed, bucket_items, pool, WholeInput(m), nullptr,
          Uninitialized<uint16_t>(m).get());
      std::vector<Tag>().swap(tags);
      ShuffleBuckets<uint64_t, Tag>(scratch.get(), scratch_tags.get(), buckets, pool,
                                    [](uint64_t, uint64_t) {});
    }
  }
  std::vector<Tag>().swap(tags);
  out.counts =
      GroupInto(scratch.get(), scratch_tags.get(), m, num_splits, ids.data(), pool);
  out.ids = std::move(ids);
  return out;
}

namespace {

// Whether ShuffleContiguousSplits' algorithm applies to m rows in num_splits splits.
bool ContiguousEligible(uint64_t m, uint64_t num_splits, uint64_t bucket_items) {
  const uint64_t num_buckets = ShuffleNumBuckets(m, bucket_items);
  return num_buckets >= 2 && num_splits >= 2 && num_splits <= kMaxHistogram / num_buckets;
}

// The bucketed shuffle of the stream `src` (m items, consecutive splits cut at `bounds`;
// null: the positions 0..m-1) grouped stably by split, written as out[i] = map(item).
// `scratch` holds m items and `bucket_of` m bucket indexes (or null, see Distribute);
// `out` may overlap `src` (read before `out` is written), not `scratch`.
template <typename V, typename O, typename Map>
void ShuffleContiguousInto(const V* src, std::span<const uint64_t> bounds, uint64_t seed,
                           ThreadPool* pool, uint64_t bucket_items, V* scratch,
                           uint16_t* bucket_of, O* out, const Map& map) {
  const uint64_t m = bounds.back();
  const uint64_t num_splits = bounds.size() - 1;
  const uint64_t num_buckets = ShuffleNumBuckets(m, bucket_items);
  std::vector<uint64_t> cells;
  const Buckets buckets =
      Distribute<V, NoTag>(src, nullptr, scratch, nullptr, m, num_buckets, seed,
                           bucket_items, pool, bounds, &cells, bucket_of);
  // Where bucket k's items of split s go: after split s's items of buckets < k.
  std::vector<uint64_t> next(num_splits * num_buckets);
  for (uint64_t s = 0; s < num_splits; ++s) {
    uint64_t at = bounds[s];
    for (uint64_t k = 0; k < num_buckets; ++k) {
      next[s * num_buckets + k] = at;
      at += cells[s * num_buckets + k];
    }
  }
  // Bucket k holds its items in input order, so split by split. Shuffling the bucket and
  // then grouping it by split is the same as shuffling the positions 0..len-1 (the same
  // draws) and writing the item at each shuffled position to its split's next slot.
  RunParallel(pool, num_buckets, [&](uint64_t k) {
    const uint64_t begin = buckets.starts[k], len = buckets.starts[k + 1] - begin;
    ARROW_DCHECK(len <= std::numeric_limits<uint32_t>::max());
    std::vector<uint64_t> cut(num_splits + 1, 0), slot(num_splits);
    for (uint64_t s = 0; s < num_splits; ++s) {
      cut[s + 1] = cut[s] + cells[s * num_buckets + k];
      slot[s] = next[s * num_buckets + k];
    }
    // Kept by each pool thread across buckets and builds: a fresh vector per bucket was
    // a 256 KiB allocation, zeroed and page-faulted every time.
    thread_local std::vector<uint32_t> positions;
    if (positions.size() < len) positions.resize(len);
    const std::span<uint32_t> order(positions.data(), len);
    std::iota(order.begin(), order.end(), uint32_t{0});
    Rng rng(buckets.seeds[k]);
    ShufflePrefetched(rng, order);
    const V* bucket = scratch + begin;
    // Locals, not the captured variables: the cursor stores could alias those.
    const uint64_t splits = num_splits;
    const uint64_t* cuts = cut.data();
    uint64_t* slots = slot.data();
    O* const to = out;
    // bucket[v] is a random read in L2: fetched a few items ahead, so that the split
    // search's mispredicted branches do not leave it waiting on each one.
    constexpr uint64_t kAhead = 16;
    for (uint64_t i = 0; i < len; ++i) {
      if (i + kAhead < len) __builtin_prefetch(bucket + order[i + kAhead]);
      const uint32_t v = order[i];
      uint64_t s;
      if (splits <= 8) {
        // The number of later splits' starts at or before v (cuts ascend): without
        // branches, which a random v mispredicts (1 in 5 items at 80/10/10).
        s = 0;
        for (uint64_t k = 1; k < splits; ++k) s += v >= cuts[k];
      } else {
        s = static_cast<uint64_t>(std::upper_bound(cuts, cuts + splits + 1, v) - cuts -
                                  1);
      }
      to[slots[s]++] = map(bucket[v]);
    }
  });
}

}  // namespace

bool ShuffleContiguousSplits(std::vector<uint64_t>* ids, std::span<const uint64_t> counts,
                             uint64_t seed, ThreadPool* pool, uint64_t bucket_items,
                             ShuffleWorkspace* workspace) {
  const uint64_t m = ids->size();
  const uint64_t num_splits = counts.size();
  if (!ContiguousEligible(m, num_splits, bucket_items)) return false;
  std::vector<uint64_t> bounds(num_splits + 1, 0);
  for (uint64_t s = 0; s < num_splits; ++s) bounds[s + 1] = bounds[s] + counts[s];
  if (bounds.back() != m) return false;
  ShuffleWorkspace local;
  if (workspace == nullptr) workspace = &local;
  // The ids are free to be overwritten once distributed into the scratch array.
  ShuffleContiguousInto<uint64_t, uint64_t>(ids->data(), bounds, seed, pool, bucket_items,
                                            workspace->Ids(m), workspace->Buckets(m),
                                            ids->data(), [](uint64_t id) { return id; });
  return true;
}

// ---------------------------------------------------------------------------------------
// DenseRowIds and ShuffleDense

DenseRowIds::DenseRowIds(std::vector<Fragment> fragments) {
  starts_.push_back(0);
  for (const Fragment& f : fragments) {
    // Position p of this fragment is its row p - start: id << 32 | (p - start), computed
    // as one addition (modulo 2^64).
    bases_.push_back((uint64_t{f.id} << 32) - starts_.back());
    starts_.push_back(starts_.back() + f.num_rows);
  }
  const uint64_t m = starts_.back();
  first_fragment_.resize((m >> kPageBits) + 1);
  uint32_t f = 0;
  for (uint64_t page = 0; page < first_fragment_.size(); ++page) {
    while (f + 1 < bases_.size() && starts_[f + 1] <= (page << kPageBits)) ++f;
    first_fragment_[page] = f;
  }
}

namespace {

// out[i] = rows(positions[i]) for i < n, where `positions` is the first half of `out`'s
// memory (4 bytes a row read, 8 written over them). Backwards, the write of out[i]
// lands on positions 2i and 2i + 1, already read; so rounds over [ceil(hi / 2), hi),
// from the top down, each write only what earlier rounds read and run in parallel.
void WidenInPlace(uint64_t* out, uint64_t n, const DenseRowIds& rows, ThreadPool* pool) {
  // Both views of one memory: the compiler must not assume they are distinct objects.
  using Position = uint32_t __attribute__((may_alias));
  using Id = uint64_t __attribute__((may_alias));
  const Position* positions = reinterpret_cast<const Position*>(out);
  Id* ids = reinterpret_cast<Id*>(out);
  const DenseRowIds::Lookup lookup = rows.lookup();
  uint64_t hi = n;
  while (hi > kStripeItems) {
    const uint64_t lo = (hi + 1) / 2;
    const uint64_t chunk = 16 * kStripeItems;
    RunParallel(pool, (hi - lo + chunk - 1) / chunk, [&](uint64_t c) {
      const uint64_t begin = lo + c * chunk, end = std::min(hi, begin + chunk);
      const Position* from = positions;
      Id* to = ids;
      for (uint64_t i = begin; i < end; ++i) to[i] = lookup(from[i]);
    });
    hi = lo;
  }
  for (uint64_t i = hi; i-- > 0;) {
    const uint32_t position = positions[i];
    ids[i] = lookup(position);
  }
}

}  // namespace

void ShuffleDense(const DenseRowIds& rows, std::span<const uint64_t> counts,
                  const std::optional<ShuffleSpec>& split_shuffle,
                  const std::optional<ShuffleSpec>& shuffle, ThreadPool* pool,
                  uint64_t* out, uint64_t bucket_items) {
  const uint64_t m = rows.num_rows();
  std::vector<uint64_t> bounds(counts.size() + 1, 0);
  for (size_t s = 0; s < counts.size(); ++s) bounds[s + 1] = bounds[s] + counts[s];
  const uint64_t kept = bounds.back();
  ARROW_DCHECK(ShuffleDenseApplies(rows, counts, split_shuffle, shuffle, bucket_items));
  // Every pass but the last reads and writes 4-byte positions, and the last widens
  // them to row ids in place: the whole build works inside out's memory, whose pages
  // it has to touch anyway (each first touch of a page costs a fault and the kernel
  // zeroing it, once the bulk of a build's time). `low` and `high` are its two halves.
  auto* low = reinterpret_cast<uint32_t*>(out);
  auto* high = reinterpret_cast<uint32_t*>(reinterpret_cast<std::byte*>(out) + 4 * m);
  const uint32_t* stream = nullptr;  // the post-split stream; null: positions 0..kept-1
  if (split_shuffle) {
    const uint64_t num_buckets = ShuffleNumBuckets(m, bucket_items);
    if (num_buckets < 2) {
      std::iota(low, low + m, uint32_t{0});
      Rng rng(split_shuffle->seed);
      ShufflePrefetched(rng, std::span<uint32_t>(low, m));
    } else {
      const Buckets buckets = Distribute<uint32_t, NoTag>(
          nullptr, nullptr, low, nullptr, m, num_buckets, split_shuffle->seed,
          bucket_items, pool, WholeInput(m), nullptr, reinterpret_cast<uint16_t*>(high));
      ShuffleBuckets<uint32_t, NoTag>(low, nullptr, buckets, pool,
                                      [](uint64_t, uint64_t) {});
    }
    stream = low;
  }
  if (shuffle && ShuffleNumBuckets(kept, bucket_items) >= 2) {
    // The stream (in `low`) is distributed into `high`, then the shuffled positions go
    // back to `low`. No room is left for the bucket indexes: they are drawn twice.
    if (counts.size() >= 2) {
      ShuffleContiguousInto<uint32_t, uint32_t>(stream, bounds, shuffle->seed, pool,
                                                bucket_items, high, nullptr, low,
                                                [](uint32_t p) { return p; });
    } else {
      const Buckets buckets = Distribute<uint32_t, NoTag>(
          stream, nullptr, high, nullptr, kept, ShuffleNumBuckets(kept, bucket_items),
          shuffle->seed, bucket_items, pool, WholeInput(kept), nullptr, nullptr);
      ShuffleBuckets<uint32_t, NoTag>(
          high, nullptr, buckets, pool, [&](uint64_t begin, uint64_t end) {
            std::memcpy(low + begin, high + begin, (end - begin) * sizeof(uint32_t));
          });
    }
    WidenInPlace(out, kept, rows, pool);
    return;
  }
  if (shuffle) {  // a plain Fisher-Yates of one small split
    if (stream == nullptr) std::iota(low, low + kept, uint32_t{0});
    Rng rng(shuffle->seed);
    ShufflePrefetched(rng, std::span<uint32_t>(low, kept));
    stream = low;
  }
  if (stream != nullptr) {
    WidenInPlace(out, kept, rows, pool);
    return;
  }
  const uint64_t chunk = 16 * kStripeItems;
  const DenseRowIds::Lookup lookup = rows.lookup();
  RunParallel(pool, (kept + chunk - 1) / chunk, [&](uint64_t c) {
    const uint64_t begin = c * chunk, end = std::min(kept, begin + chunk);
    for (uint64_t i = begin; i < end; ++i) out[i] = lookup(i);
  });
}

bool ShuffleDenseApplies(const DenseRowIds& rows, std::span<const uint64_t> counts,
                         const std::optional<ShuffleSpec>& split_shuffle,
                         const std::optional<ShuffleSpec>& shuffle,
                         uint64_t bucket_items) {
  const uint64_t m = rows.num_rows();
  uint64_t kept = 0;
  for (uint64_t c : counts) kept += c;
  if (m > std::numeric_limits<uint32_t>::max() || kept > m) return false;
  if (split_shuffle && split_shuffle->clump_size != 1) return false;
  if (!shuffle) return true;
  if (shuffle->clump_size != 1) return false;
  return counts.size() <= 1 || ContiguousEligible(kept, counts.size(), bucket_items);
}

template Grouped ShuffleAndGroup(std::vector<uint64_t>, std::vector<uint8_t>, uint64_t,
                                 const std::optional<ShuffleSpec>&, ThreadPool*,
                                 uint64_t);
template Grouped ShuffleAndGroup(std::vector<uint64_t>, std::vector<uint16_t>, uint64_t,
                                 const std::optional<ShuffleSpec>&, ThreadPool*,
                                 uint64_t);
template Grouped ShuffleAndGroup(std::vector<uint64_t>, std::vector<uint32_t>, uint64_t,
                                 const std::optional<ShuffleSpec>&, ThreadPool*,
                                 uint64_t);
template Grouped ShuffleAndGroup(std::vector<uint64_t>, std::vector<uint64_t>, uint64_t,
                                 const std::optional<ShuffleSpec>&, ThreadPool*,
                                 uint64_t);

}  // namespace riffledb::internal
