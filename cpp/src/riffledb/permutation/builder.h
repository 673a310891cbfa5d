// The permutation builder: filter -> split -> shuffle -> group by split (DESIGN.md
// decisions 7 and 8, spec/permutation.md §2 and §3).
#pragma once

#include <arrow/result.h>
#include <arrow/table.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "riffledb/permutation/permutation_table.h"
#include "riffledb/table/snapshot.h"

namespace riffledb {

/// The sizes of a random or sequential split, in one of three forms (spec §3.2).
struct SplitSizes {
  enum class Kind : uint8_t { kRatios, kCounts, kFixed };

  /// Fractions of the filtered rows, each in [0, 1], summing to at most 1.
  static SplitSizes Ratios(std::vector<double> ratios);
  /// Exact row counts, each >= 1, summing to at most the filtered row count.
  static SplitSizes Counts(std::vector<uint64_t> counts);
  /// `num_splits` splits of floor(n / num_splits) rows each (the remainder is dropped).
  static SplitSizes Fixed(uint64_t num_splits);

  /// Number of splits these sizes describe.
  uint64_t num_splits() const;

  /// Validates the sizes against `num_rows` filtered rows and converts them to per-split
  /// row counts (spec §3.2): ratios are rounded half away from zero, an excess is trimmed
  /// cyclically from split 0, and a shortfall is topped up cyclically from split 0 only
  /// when |n - Σp·n| < 0.5; counts are taken as given; fixed k gives k × floor(n/k).
  /// Errors are Invalid with LanceDB's messages ("Invalid input, ..."), plus fixed = 0
  /// and NaN ratios, which LanceDB does not check.
  arrow::Result<std::vector<uint64_t>> ToCounts(uint64_t num_rows) const;

  Kind kind = Kind::kFixed;
  std::vector<double> ratios;
  std::vector<uint64_t> counts;
  uint64_t fixed = 0;
};

/// Builds a permutation table over one pinned version of a base table.
///
/// Configuration follows LanceDB's builder: each call replaces the earlier call of its
/// kind (a second Split* replaces strategy and names, a second Filter or Shuffle replaces
/// the first). Nothing is validated until Execute(). Defaults: no filter, one split (id
/// 0) holding every row in scan order, no shuffle.
///
/// Execute() returns a PermutationTable: base `_rowid`s grouped by split id ascending;
/// within a split the order is the permutation order; split names when they were given.
/// Operations run in the order filter -> split -> shuffle -> stable grouping by split.
///
/// Semantics (a stable contract: same seed and same data give the same table on every
/// platform and thread count):
///  - Random split: the filtered row ids, in scan order, are shuffled as clumps of
///    `clump_size` (default 1; see Shuffle below) with Rng(seed), then assigned
///    sequentially: the first c_0 rows go to split 0, the next c_1 to split 1, ...;
///    leftover rows are dropped.
///  - Sequential split: the same assignment over the filtered scan order.
///  - Hash split: h = XXH64(E(row), seed 0) where E(row) concatenates, over `columns` in
///    order, the canonical encoding of each value: a null is the single byte 0x00; a
///    non-null value is 0x01 followed by
///      * booleans: one byte 0 or 1;
///      * signed integers and integer-backed temporal types (date, time, timestamp,
///        duration): the value widened to int64, 8 bytes little-endian;
///      * unsigned integers: widened to uint64, 8 bytes little-endian;
///      * float32/float64: widened to float64 with -0.0 -> +0.0 and every NaN ->
///        0x7ff8000000000000, the IEEE bits as 8 bytes little-endian;
///      * strings and binaries (all widths, views, fixed-size): the byte length as 8
///      bytes
///        little-endian, then the bytes;
///      * decimal128/256: the 16/32 bytes of the two's complement value, little-endian;
///      * dictionary-encoded values: the encoding of the dictionary value.
///    So an int32 5 hashes like an int64 5, and a string like the same large_string.
///    Then r = h mod (Σ split_weights + discard_weight); the row goes to the first split
///    i with r < w_0 + ... + w_i, or is dropped when r >= Σ split_weights.
///  - Calculated split: the SQL expression gives each row's split id. Integer and boolean
///    results (false = 0, true = 1) are used as they are; a float result is accepted when
///    its value is integral and fits uint64. Null, negative, non-integral or out-of-range
///    values, and non-numeric results, are Invalid naming the value and the row (position
///    in the filtered scan and its `_rowid`). Split ids need not be contiguous.
///  - Shuffle: the post-split stream of m rows is cut into clumps [0,c), [c,2c), ... (the
///    last may be short); P = S(identity[0..ceil(m/c)), seed) (the shuffle algorithm
///    below); the stream becomes clumps P[0], P[1], ... with rows in a clump keeping
///    their order. Then rows are grouped by split, stably. No seed means a seed from the
///    OS (SeedFromEntropy). The random split's shuffle is the same S with its own seed.
///
/// Shuffle algorithm S(v, seed) of a list v of m items (util/random.h defines Rng, its
/// UniformBelow and Shuffle = Fisher-Yates from the back). With K = 65536 and
/// B = min(floor(m / K), 65536):
///  - if B < 2 (m < 131072): Shuffle(v, Rng(seed));
///  - otherwise, a bucketed shuffle. R = Rng(seed); the block seeds d_0 .. d_{J-1}
///    (J = ceil(m / K)) are the first J values R.Next(), the bucket seeds e_0 .. e_{B-1}
///    the next B. Item i (0-based) is in block floor(i / K); the items of block j, in
///    order, each draw their bucket with UniformBelow(B) from one Rng(d_j). Bucket k is
///    the list of the items that drew k, in input order, shuffled with
///    Shuffle(bucket k, Rng(e_k)). S(v) is bucket 0, bucket 1, ..., bucket B-1.
/// So S depends only on (seed, m): not on the hardware, the pool or its size (buckets
/// and blocks are processed in parallel, each with its own generator). It is a uniform
/// random permutation: every item's bucket is uniform and independent of the others,
/// and within a bucket every order is equally likely. A bucket (~512 KiB of row ids)
/// fits a core's L2 cache, so the shuffle costs two streaming passes over the rows plus
/// in-cache swaps, instead of a cache and TLB miss per row.
///
/// Memory: without a filter, over a snapshot without deleted rows, a default, random or
/// sequential split whose shuffles have clump size 1 (the common case) scans nothing: a
/// row id follows from its scan position (fragment id << 32 | row), so the builder
/// permutes 4-byte positions and writes the 8-byte row ids only in its last pass, the
/// earlier passes working inside the output's memory plus 4 bytes a row of scratch.
/// Peak use is about 12 bytes a row, of which the returned table keeps 8; the same
/// algorithm S runs, so the result is the same as on the general path below. (First
/// touches of fresh pages, a fault and the kernel zeroing each page, were over half of
/// a 10M-row build: the fewer fresh bytes, the faster.)
/// Otherwise the builder keeps only row ids (8 bytes a row), plus a per-row split index
/// of 1, 2, 4 or 8 bytes when rows are not already grouped (hash and calculated splits,
/// or any of them followed by a shuffle). A bucketed shuffle adds 8 bytes a row of
/// scratch and 2 bytes a row of bucket indexes while it distributes. Peak use is about 18
/// bytes a row for random, sequential or no split (with or without shuffle), and about 18
/// + 2·tag bytes a row for hash and calculated splits followed by a shuffle (20 for up to
/// 256 splits, 22 up to 65536), of which the returned table keeps 16. Large shuffles and
/// groupings run on ThreadPool::Default(), with the same result for any number of
/// threads. Calculated split ids of 2^20 or more cost a temporary sorted copy of the ids
/// (8 bytes a row).
///
/// Thread-safety: configuration calls must not race with anything; Execute() is const and
/// may run concurrently with other Execute() calls. The returned table owns its buffers
/// and stays valid independently of the builder and the snapshot.
class PermutationBuilder {
 public:
  /// Builds over `base`, which the builder keeps alive.
  explicit PermutationBuilder(std::shared_ptr<const Snapshot> base);

  /// Only rows where the SQL boolean expression `sql` is true are permuted.
  PermutationBuilder& Filter(std::string sql);

  /// Random split (spec §3.3). `clump_size` 0 is Invalid at Execute(); no seed means a
  /// seed drawn from the OS now (see Recipe()).
  PermutationBuilder& SplitRandom(
      SplitSizes sizes, std::optional<uint64_t> seed = std::nullopt,
      std::optional<uint64_t> clump_size = std::nullopt,
      std::optional<std::vector<std::string>> split_names = std::nullopt);

  /// Hash split over `columns` (spec §3.4, hash defined above).
  PermutationBuilder& SplitHash(
      std::vector<std::string> columns, std::vector<uint64_t> split_weights,
      uint64_t discard_weight = 0,
      std::optional<std::vector<std::string>> split_names = std::nullopt);

  /// Sequential split in filtered scan order (spec §3.5).
  PermutationBuilder& SplitSequential(
      SplitSizes sizes,
      std::optional<std::vector<std::string>> split_names = std::nullopt);

  /// Split id computed per row by the SQL expression `sql` (spec §3.5; policy above).
  /// With names, every split id must be below the number of names.
  PermutationBuilder& SplitCalculated(
      std::string sql,
      std::optional<std::vector<std::string>> split_names = std::nullopt);

  /// Shuffles the post-split stream in clumps (spec §3.6). `clump_size` 0 is Invalid at
  /// Execute(); absent means 1. No seed means a seed drawn from the OS now.
  PermutationBuilder& Shuffle(std::optional<uint64_t> seed = std::nullopt,
                              std::optional<uint64_t> clump_size = std::nullopt);

  /// Builds the permutation table (one scan of the base snapshot). Its provenance holds
  /// the base version and, when the base table can be reopened by location (not
  /// memory://), Recipe().
  ///
  /// Errors: Invalid with LanceDB's messages for split sizes and hash settings (spec
  /// §3.2, §3.4); Invalid for clump_size 0, fixed 0, split names whose number differs
  /// from the number of splits (naming both counts) or that repeat a name (naming it),
  /// and calculated split values outside the policy above; the filter's and
  /// expressions' parse and bind errors; NotImplemented for a hash column of an
  /// unsupported type (lists, structs, ...).
  arrow::Result<std::shared_ptr<const PermutationTable>> Execute() const;

  /// The configuration as JSON, every seed explicit (a seed not given is drawn from the
  /// OS when the split or shuffle is configured, and recorded): FromRecipe over the same
  /// base version builds the same table (DESIGN.md decision 8). Names the base table by
  /// its store's location.
  std::string Recipe() const;

  /// A builder configured by `recipe` (what Recipe() returned) over `base`.
  /// Invalid if the recipe is not one this version wrote.
  static arrow::Result<PermutationBuilder> FromRecipe(
      std::shared_ptr<const Snapshot> base, const std::string& recipe);

  const std::shared_ptr<const Snapshot>& base() const { return base_; }

 private:
  enum class SplitKind : uint8_t { kNone, kRandom, kHash, kSequential, kCalculated };
  struct ShuffleOptions {
    uint64_t seed = 0;  // drawn when configured if not given (see Recipe())
    std::optional<uint64_t> clump_size;
  };

  std::shared_ptr<const Snapshot> base_;
  std::optional<std::string> filter_;
  SplitKind split_kind_ = SplitKind::kNone;
  SplitSizes sizes_;                       // random, sequential
  ShuffleOptions split_shuffle_;           // random
  std::vector<std::string> hash_columns_;  // hash
  std::vector<uint64_t> hash_weights_;
  uint64_t hash_discard_ = 0;
  std::string calculation_;  // calculated
  std::optional<std::vector<std::string>> split_names_;
  std::optional<ShuffleOptions> shuffle_;
};

}  // namespace riffledb
