// Private helpers of the permutation builder: split names, row hashing, clump shuffles
// and the stable grouping by split. Exposed for builder_test.cc; not public API.
#pragma once

#include <arrow/array.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "riffledb/util/random.h"

namespace riffledb::internal {

/// `value` as Rust's `{}` prints an f64: the shortest round-trip digits, fixed notation,
/// no trailing ".0" (50.0 -> "50", 0.1 -> "0.1").
std::string FormatFloatLikeRust(double value);

/// OK if `names` is absent, or has exactly `num_splits` distinct names. Pass
/// num_splits = nullopt to check only for duplicates.
arrow::Status ValidateSplitNames(const std::optional<std::vector<std::string>>& names,
                                 std::optional<uint64_t> num_splits);

/// `names` as a compact JSON array (["a","b"]).
std::string SplitNamesJson(const std::vector<std::string>& names);

/// Appends the canonical encoding (see builder.h) of row `row` of `array` to `out`, or
/// returns NotImplemented for an unsupported type. Per-array setup is cached by
/// RowHasher; this overload exists for tests.
class RowHasher {
 public:
  /// A hasher over `columns` (same length). NotImplemented naming `names[i]` and its
  /// type for a column of an unsupported type.
  static arrow::Result<RowHasher> Make(
      const std::vector<std::shared_ptr<arrow::Array>>& columns,
      const std::vector<std::string>& names);

  /// XXH64 (seed 0) of the row's canonical encoding.
  uint64_t Hash(int64_t row);
  /// The canonical encoding itself (for tests).
  const std::string& Encode(int64_t row);

  struct Encoder;

 private:
  std::vector<std::shared_ptr<Encoder>> encoders_;
  std::string buffer_;
  // A single int64 or uint64 column (the common case: an id) is hashed straight from its
  // values, without the per-value encoder calls: the same bytes, a third of the time.
  const arrow::Array* single_column_ = nullptr;
  const uint64_t* single_values_ = nullptr;
};

/// riffledb::Shuffle(values, rng) with the same draws and result, faster on large arrays:
/// the draws are made a few steps ahead so the rows they swap are prefetched.
template <typename... T>
void ShufflePrefetched(Rng& rng_ref, std::span<T>... values) {
  const uint64_t n = std::get<0>(std::tuple<std::span<T>...>(values...)).size();
  if (n < 2) return;
  // A local copy of the generator, written back at the end: it stays in registers,
  // where `rng_ref`, which may alias anything as far as the compiler knows, was
  // reloaded and stored at every draw (a store-to-load forwarding on each step's
  // critical path).
  Rng rng = rng_ref;
  constexpr uint64_t kAhead = 16;
  uint64_t pending[kAhead];
  // Step k (k = 0, 1, ...) swaps positions n-1-k and j_k, with j_k = UniformBelow(n-k).
  const uint64_t steps = n - 1;
  uint64_t drawn = 0;
  for (; drawn < std::min(kAhead, steps); ++drawn) {
    pending[drawn % kAhead] = rng.UniformBelow(n - drawn);
    (__builtin_prefetch(&values[pending[drawn % kAhead]]), ...);
  }
  for (uint64_t k = 0; k < steps; ++k) {
    const uint64_t j = pending[k % kAhead];
    const uint64_t i = n - 1 - k;
    (std::swap(values[i], values[j]), ...);
    if (drawn < steps) {
      pending[drawn % kAhead] = rng.UniformBelow(n - drawn);
      (__builtin_prefetch(&values[pending[drawn % kAhead]]), ...);
      ++drawn;
    }
  }
  rng_ref = rng;
}

/// The clump order of a shuffle of `num_rows` rows in clumps of `clump_size` (>= 1):
/// Shuffle(identity[0..ceil(num_rows/clump_size)), rng).
std::vector<uint64_t> ClumpOrder(uint64_t num_rows, uint64_t clump_size, Rng& rng);

/// The result of grouping: row ids grouped by split index ascending, and the number of
/// rows of each split index.
struct Grouped {
  std::vector<uint64_t> ids;
  std::vector<uint64_t> counts;
};

}  // namespace riffledb::internal
