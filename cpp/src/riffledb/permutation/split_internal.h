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
};

/// Fisher-Yates from the back over `n` positions with the exact draws of
/// riffledb::Shuffle, calling swap(a, b) instead of swapping one array, so several
/// parallel arrays can be permuted together.
template <typename Swap>
void ShuffleIndexes(uint64_t n, Rng& rng, Swap&& swap) {
  for (uint64_t i = n; i > 1; --i) {
    const uint64_t j = rng.UniformBelow(i);
    swap(i - 1, j);
  }
}

/// The clump order of a shuffle of `num_rows` rows in clumps of `clump_size` (>= 1):
/// Shuffle(identity[0..ceil(num_rows/clump_size)), rng).
std::vector<uint64_t> ClumpOrder(uint64_t num_rows, uint64_t clump_size, Rng& rng);

/// Reorders `ids` as the shuffle in clumps (in place for clump_size 1).
void ShuffleInClumps(std::vector<uint64_t>* ids, uint64_t clump_size, Rng& rng);

/// The result of grouping: row ids grouped by split index ascending, and the number of
/// rows of each split index.
struct Grouped {
  std::vector<uint64_t> ids;
  std::vector<uint64_t> counts;
};

/// Groups `ids` by `tags` (split index per row, < num_splits), stably, after an optional
/// clump shuffle of the (id, tag) stream. Frees the inputs. A counting sort: one extra
/// buffer of row ids, plus the clump order (8 bytes per clump) when clump_size > 1.
template <typename Tag>
Grouped GroupBySplit(
    std::vector<uint64_t> ids, std::vector<Tag> tags, uint64_t num_splits,
    std::optional<std::pair<uint64_t, uint64_t>> shuffle_seed_and_clump) {
  Grouped out;
  out.counts.assign(num_splits, 0);
  for (Tag t : tags) ++out.counts[t];
  std::vector<uint64_t> next(num_splits, 0);
  for (uint64_t s = 1; s < num_splits; ++s) next[s] = next[s - 1] + out.counts[s - 1];
  const uint64_t n = ids.size();
  out.ids.resize(n);
  uint64_t clump = 1;
  std::vector<uint64_t> order;
  if (shuffle_seed_and_clump) {
    Rng rng(shuffle_seed_and_clump->first);
    clump = shuffle_seed_and_clump->second;
    if (clump == 1) {
      ShuffleIndexes(n, rng, [&](uint64_t a, uint64_t b) {
        std::swap(ids[a], ids[b]);
        std::swap(tags[a], tags[b]);
      });
    } else {
      order = ClumpOrder(n, clump, rng);
    }
  }
  if (order.empty()) {
    for (uint64_t i = 0; i < n; ++i) out.ids[next[tags[i]]++] = ids[i];
  } else {
    for (uint64_t c : order) {
      const uint64_t end = std::min(n, (c + 1) * clump);
      for (uint64_t i = c * clump; i < end; ++i) out.ids[next[tags[i]]++] = ids[i];
    }
  }
  return out;
}

}  // namespace riffledb::internal
