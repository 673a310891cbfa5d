#include "riffledb/permutation/builder.h"

#include <arrow/api.h>
#include <arrow/json/from_string.h>
#include <arrow/util/key_value_metadata.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "riffledb/permutation/shuffle_internal.h"
#include "riffledb/permutation/split_internal.h"
#include "riffledb/table/table.h"
#include "riffledb/table/table_test_util.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/thread_pool.h"

namespace riffledb {
namespace {

using ::riffledb::testing::IdBatch;
using ::riffledb::testing::ReaderOf;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

// A memory table {id int64, label int32 = id % 10} with row ids 0..n-1, in batches.
std::shared_ptr<const Snapshot> IdSnapshot(int64_t n, int64_t batch_rows = 7) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  for (int64_t at = 0; at < n; at += batch_rows) {
    batches.push_back(IdBatch(at, std::min(batch_rows, n - at)));
  }
  auto schema = IdBatch(0, 0)->schema();
  auto reader = ReaderOf(std::move(batches), schema);
  auto store = std::make_shared<MemoryStore>("memory://t");
  auto table = Table::Create("t", store, schema, reader.get()).ValueOrDie();
  return table->snapshot().ValueOrDie();
}

std::shared_ptr<const Snapshot> SnapshotOf(std::shared_ptr<arrow::RecordBatch> batch) {
  auto reader = ReaderOf({batch});
  auto store = std::make_shared<MemoryStore>("memory://t");
  auto table = Table::Create("t", store, batch->schema(), reader.get()).ValueOrDie();
  return table->snapshot().ValueOrDie();
}

struct Built {
  std::vector<uint64_t> row_ids;
  std::vector<uint64_t> split_ids;
  std::shared_ptr<arrow::Table> table;

  std::vector<uint64_t> Sizes() const {
    std::vector<uint64_t> sizes;
    for (uint64_t s : split_ids) {
      if (sizes.size() <= s) sizes.resize(s + 1, 0);
      ++sizes[s];
    }
    return sizes;
  }
  std::vector<uint64_t> Split(uint64_t s) const {
    std::vector<uint64_t> out;
    for (size_t i = 0; i < row_ids.size(); ++i) {
      if (split_ids[i] == s) out.push_back(row_ids[i]);
    }
    return out;
  }
};

arrow::Result<Built> Build(const PermutationBuilder& builder) {
  ARROW_ASSIGN_OR_RAISE(auto permutation, builder.Execute());
  ARROW_ASSIGN_OR_RAISE(auto table, permutation->ToArrow());
  Built out;
  out.table = table;
  if (table->num_rows() > 0) {
    ARROW_ASSIGN_OR_RAISE(auto batch, table->CombineChunksToBatch());
    out.row_ids = testing::UInt64Column(*batch, "row_id");
    out.split_ids = testing::UInt64Column(*batch, "split_id");
  }
  return out;
}

std::vector<uint64_t> Iota(uint64_t n, uint64_t from = 0) {
  std::vector<uint64_t> v(n);
  std::iota(v.begin(), v.end(), from);
  return v;
}

// --- split sizes (spec §3.2) -----------------------------------------------------------

std::vector<uint64_t> CountsOf(SplitSizes sizes, uint64_t n) {
  return sizes.ToCounts(n).ValueOrDie();
}

TEST(SplitSizes, RatiosRoundHalfAwayFromZeroAndTrimOrTopUp) {
  EXPECT_THAT(CountsOf(SplitSizes::Ratios({0.3, 0.7}), 100), ElementsAre(30, 70));
  EXPECT_THAT(CountsOf(SplitSizes::Ratios({0.333, 0.333, 0.333}), 100),
              ElementsAre(34, 33, 33));
  EXPECT_THAT(CountsOf(SplitSizes::Ratios({0.3, 0.41}), 70), ElementsAre(21, 29));
  EXPECT_THAT(CountsOf(SplitSizes::Ratios({0.05, 0.30}), 942), ElementsAre(47, 283));
  EXPECT_THAT(CountsOf(SplitSizes::Ratios({0.217, 0.168, 0.17}), 50),
              ElementsAre(11, 8, 9));
  // 0.5 * 5 = 2.5 rounds up to 3 twice; the excess is trimmed from split 0.
  EXPECT_THAT(CountsOf(SplitSizes::Ratios({0.5, 0.5}), 5), ElementsAre(2, 3));
  EXPECT_THAT(CountsOf(SplitSizes::Ratios({1.0}), 10), ElementsAre(10));
}

TEST(SplitSizes, CountsAndFixed) {
  EXPECT_THAT(CountsOf(SplitSizes::Counts({5, 15, 10}), 50), ElementsAre(5, 15, 10));
  EXPECT_THAT(CountsOf(SplitSizes::Fixed(3), 100), ElementsAre(33, 33, 33));
  EXPECT_THAT(CountsOf(SplitSizes::Fixed(4), 100), ElementsAre(25, 25, 25, 25));
  EXPECT_THAT(CountsOf(SplitSizes::Fixed(3), 10), ElementsAre(3, 3, 3));
}

void ExpectInvalid(const arrow::Status& status, const std::string& message) {
  EXPECT_TRUE(status.IsInvalid()) << status.ToString();
  EXPECT_EQ(status.message(), message);
}

TEST(SplitSizes, LanceDbValidationMessages) {
  ExpectInvalid(SplitSizes::Ratios({-0.1, 0.5}).ToCounts(100).status(),
                "Invalid input, Split percentages must be between 0.0 and 1.0");
  ExpectInvalid(SplitSizes::Ratios({1.5}).ToCounts(100).status(),
                "Invalid input, Split percentages must be between 0.0 and 1.0");
  ExpectInvalid(
      SplitSizes::Ratios({0.001}).ToCounts(100).status(),
      "Invalid input, One of the splits has 0.1% of 100 rows which rounds to 0 rows");
  ExpectInvalid(
      SplitSizes::Ratios({0.5, 0.5}).ToCounts(0).status(),
      "Invalid input, One of the splits has 50% of 0 rows which rounds to 0 rows");
  ExpectInvalid(SplitSizes::Ratios({0.7, 0.4}).ToCounts(100).status(),
                "Invalid input, Split percentages must sum to 1.0 or less");
  ExpectInvalid(
      SplitSizes::Counts({60, 50}).ToCounts(100).status(),
      "Invalid input, Split counts specified 110 rows but only 100 are available");
  ExpectInvalid(SplitSizes::Counts({0, 100}).ToCounts(100).status(),
                "Invalid input, Split counts must be greater than 0");
  ExpectInvalid(
      SplitSizes::Fixed(150).ToCounts(100).status(),
      "Invalid input, Split fixed config specified 150 splits but only 100 rows "
      "are available.  Must have at least 1 row per split.");
}

TEST(SplitSizes, RiffledbFixesFixedZeroAndNan) {
  ExpectInvalid(
      SplitSizes::Fixed(0).ToCounts(100).status(),
      "Invalid input, Split fixed config specified 0 splits; it must be at least 1");
  ExpectInvalid(SplitSizes::Ratios({std::nan("")}).ToCounts(100).status(),
                "Invalid input, Split percentages must be between 0.0 and 1.0");
  // Counts whose sum overflows 64 bits are still reported exactly.
  ExpectInvalid(
      SplitSizes::Counts({UINT64_MAX, 2}).ToCounts(100).status(),
      "Invalid input, Split counts specified 18446744073709551617 rows but only "
      "100 are available");
}

TEST(SplitInternal, FormatFloatLikeRust) {
  EXPECT_EQ(internal::FormatFloatLikeRust(50.0), "50");
  EXPECT_EQ(internal::FormatFloatLikeRust(0.001 * 100.0), "0.1");
  EXPECT_EQ(internal::FormatFloatLikeRust(12.5), "12.5");
  EXPECT_EQ(internal::FormatFloatLikeRust(1e-7), "0.0000001");
}

// --- default, sequential, random ------------------------------------------------------

TEST(PermutationBuilder, DefaultIsOneSplitInScanOrder) {
  PermutationBuilder builder(IdSnapshot(20));
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_EQ(r.row_ids, Iota(20));
  EXPECT_EQ(r.split_ids, std::vector<uint64_t>(20, 0));
  EXPECT_EQ(r.table->schema()->ToString(/*show_metadata=*/false),
            "row_id: uint64 not null\nsplit_id: uint64 not null");
  ASSERT_NE(r.table->schema()->metadata(), nullptr);
  EXPECT_THAT(r.table->schema()->metadata()->keys(),
              ElementsAre("riffledb:base_version", "riffledb:split_digests"));
}

TEST(PermutationBuilder, SequentialSplitsInScanOrder) {
  PermutationBuilder builder(IdSnapshot(100));
  builder.SplitSequential(SplitSizes::Ratios({0.333, 0.333, 0.333}));
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_THAT(r.Sizes(), ElementsAre(34, 33, 33));
  EXPECT_EQ(r.row_ids, Iota(100));
}

TEST(PermutationBuilder, FixedDropsRemainder) {
  PermutationBuilder builder(IdSnapshot(100));
  builder.SplitSequential(SplitSizes::Fixed(3));
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_THAT(r.Sizes(), ElementsAre(33, 33, 33));
  EXPECT_EQ(r.row_ids, Iota(99));
}

TEST(PermutationBuilder, RandomSplitExactSizesAndDeterminism) {
  auto snapshot = IdSnapshot(942);
  PermutationBuilder builder(snapshot);
  builder.SplitRandom(SplitSizes::Ratios({0.05, 0.30}), 42);
  ASSERT_OK_AND_ASSIGN(auto a, Build(builder));
  ASSERT_OK_AND_ASSIGN(auto b, Build(builder));
  EXPECT_THAT(a.Sizes(), ElementsAre(47, 283));
  EXPECT_EQ(a.row_ids, b.row_ids);
  EXPECT_NE(a.row_ids, Iota(330));
  // Membership is a random subset of distinct rows.
  std::set<uint64_t> distinct(a.row_ids.begin(), a.row_ids.end());
  EXPECT_EQ(distinct.size(), 330u);
  EXPECT_LT(*distinct.rbegin(), 942u);

  PermutationBuilder other(snapshot);
  other.SplitRandom(SplitSizes::Ratios({0.05, 0.30}), 43);
  ASSERT_OK_AND_ASSIGN(auto c, Build(other));
  EXPECT_NE(a.row_ids, c.row_ids);

  // Same seed, other ratios: the same shuffled prefix.
  PermutationBuilder prefix(snapshot);
  prefix.SplitRandom(SplitSizes::Ratios({0.3, 0.7}), 42);
  ASSERT_OK_AND_ASSIGN(auto d, Build(prefix));
  EXPECT_TRUE(std::equal(a.row_ids.begin(), a.row_ids.end(), d.row_ids.begin()));
}

TEST(PermutationBuilder, RandomSplitIsTheDocumentedShuffle) {
  PermutationBuilder builder(IdSnapshot(50));
  builder.SplitRandom(SplitSizes::Counts({10, 20}), 7);
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  std::vector<uint64_t> expected = Iota(50);
  Rng rng(7);
  Shuffle(std::span<uint64_t>(expected), rng);
  expected.resize(30);
  EXPECT_EQ(r.row_ids, expected);
  EXPECT_THAT(r.Sizes(), ElementsAre(10, 20));
}

TEST(PermutationBuilder, RandomSplitClumpsStayTogether) {
  PermutationBuilder builder(IdSnapshot(100));
  builder.SplitRandom(SplitSizes::Counts({100}), 3, 7);
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  ASSERT_EQ(r.row_ids.size(), 100u);
  // Cut the output into runs of consecutive ids: each run is a clump (or several).
  std::map<uint64_t, std::vector<uint64_t>> clumps;
  for (uint64_t id : r.row_ids) clumps[id / 7].push_back(id);
  // Each clump appears contiguously and in order.
  for (size_t i = 0; i < r.row_ids.size();) {
    const uint64_t clump = r.row_ids[i] / 7;
    const auto& members = clumps[clump];
    for (size_t k = 0; k < members.size(); ++k) {
      ASSERT_EQ(r.row_ids[i + k], clump * 7 + k) << "at " << i + k;
    }
    i += members.size();
  }
  EXPECT_NE(r.row_ids, Iota(100));
  EXPECT_EQ(clumps[14].size(), 2u);  // the runt clump 98, 99
}

TEST(PermutationBuilder, FilterThenSplitUsesFilteredCount) {
  PermutationBuilder builder(IdSnapshot(100));
  builder.Filter("label % 10 != 0").SplitSequential(SplitSizes::Ratios({0.5, 0.5}));
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_THAT(r.Sizes(), ElementsAre(45, 45));
  for (uint64_t id : r.row_ids) EXPECT_NE(id % 10, 0u);

  PermutationBuilder too_many(IdSnapshot(100));
  too_many.Filter("id < 10").SplitSequential(SplitSizes::Counts({20}));
  ExpectInvalid(
      too_many.Execute().status(),
      "Invalid input, Split counts specified 20 rows but only 10 are available");
}

TEST(PermutationBuilder, LastCallWins) {
  PermutationBuilder builder(IdSnapshot(100));
  builder.Filter("id < 10").Filter("id >= 90");
  builder.SplitSequential(SplitSizes::Fixed(2), std::vector<std::string>{"a", "b"});
  builder.SplitSequential(SplitSizes::Counts({4}));
  builder.Shuffle(1).Shuffle(2, 1);
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_FALSE(r.table->schema()->metadata()->Contains("split_names"));  // names replaced
  EXPECT_THAT(r.Sizes(), ElementsAre(4));
  for (uint64_t id : r.row_ids) EXPECT_GE(id, 90u);
}

// --- shuffle --------------------------------------------------------------------------

TEST(PermutationBuilder, ShuffleIsDeterministicPermutationWithinSplits) {
  auto snapshot = IdSnapshot(1000);
  PermutationBuilder builder(snapshot);
  builder.SplitSequential(SplitSizes::Counts({600, 300})).Shuffle(5);
  ASSERT_OK_AND_ASSIGN(auto a, Build(builder));
  ASSERT_OK_AND_ASSIGN(auto b, Build(builder));
  EXPECT_EQ(a.row_ids, b.row_ids);
  EXPECT_THAT(a.Sizes(), ElementsAre(600, 300));
  auto s0 = a.Split(0);
  auto s1 = a.Split(1);
  EXPECT_NE(s0, Iota(600));
  std::sort(s0.begin(), s0.end());
  std::sort(s1.begin(), s1.end());
  EXPECT_EQ(s0, Iota(600));
  EXPECT_EQ(s1, Iota(300, 600));

  PermutationBuilder other(snapshot);
  other.SplitSequential(SplitSizes::Counts({600, 300})).Shuffle(6);
  ASSERT_OK_AND_ASSIGN(auto c, Build(other));
  EXPECT_NE(a.row_ids, c.row_ids);
}

TEST(PermutationBuilder, ShuffleMatchesDocumentedAlgorithm) {
  // Global clump shuffle of the post-split stream, then a stable grouping by split.
  PermutationBuilder builder(IdSnapshot(23));
  builder.SplitSequential(SplitSizes::Counts({10, 12})).Shuffle(9, 3);
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  Rng rng(9);
  auto order = internal::ClumpOrder(22, 3, rng);
  std::vector<uint64_t> stream;
  for (uint64_t c : order) {
    for (uint64_t i = c * 3; i < std::min<uint64_t>(22, c * 3 + 3); ++i)
      stream.push_back(i);
  }
  std::vector<uint64_t> expected;
  for (uint64_t id : stream)
    if (id < 10) expected.push_back(id);
  for (uint64_t id : stream)
    if (id >= 10) expected.push_back(id);
  EXPECT_EQ(r.row_ids, expected);
}

TEST(PermutationBuilder, ShuffleClumpsIntactAnySize) {
  // 1003 rows, clump 10: no batch-divisibility requirement, the runt clump is fine.
  PermutationBuilder builder(IdSnapshot(1003, 64));
  builder.Shuffle(11, 10);
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  ASSERT_EQ(r.row_ids.size(), 1003u);
  for (size_t i = 0; i < r.row_ids.size();) {
    const uint64_t first = r.row_ids[i];
    ASSERT_EQ(first % 10, 0u) << "clump starts at " << first;
    const uint64_t len = std::min<uint64_t>(10, 1003 - first);
    for (uint64_t k = 0; k < len; ++k) ASSERT_EQ(r.row_ids[i + k], first + k);
    i += len;
  }
  auto sorted = r.row_ids;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, Iota(1003));
}

TEST(PermutationBuilder, ShuffleWithoutSeedDrawsOneWhenConfigured) {
  auto snapshot = IdSnapshot(200);
  PermutationBuilder first(snapshot), second(snapshot);
  first.Shuffle();
  second.Shuffle();
  ASSERT_OK_AND_ASSIGN(auto a, Build(first));
  ASSERT_OK_AND_ASSIGN(auto b, Build(second));
  EXPECT_NE(a.row_ids, b.row_ids);  // two draws from the OS
  // The drawn seed is part of the configuration: the same builder builds the same table,
  // and so does its recipe.
  ASSERT_OK_AND_ASSIGN(auto again, Build(first));
  EXPECT_EQ(a.row_ids, again.row_ids);
  ASSERT_OK_AND_ASSIGN(auto rebuilt,
                       PermutationBuilder::FromRecipe(snapshot, first.Recipe()));
  ASSERT_OK_AND_ASSIGN(auto from_recipe, Build(rebuilt));
  EXPECT_EQ(a.row_ids, from_recipe.row_ids);
}

TEST(PermutationBuilder, ClumpSizeZeroIsInvalid) {
  PermutationBuilder builder(IdSnapshot(10));
  builder.Shuffle(1, 0);
  ExpectInvalid(builder.Execute().status(),
                "Invalid input, clump size must be greater than 0");
  PermutationBuilder random(IdSnapshot(10));
  random.SplitRandom(SplitSizes::Fixed(2), 1, 0);
  ExpectInvalid(random.Execute().status(),
                "Invalid input, clump size must be greater than 0");
}

TEST(PermutationBuilder, FixedZeroIsInvalidNotACrash) {
  PermutationBuilder builder(IdSnapshot(10));
  builder.SplitRandom(SplitSizes::Fixed(0), 1);
  ASSERT_RAISES(Invalid, builder.Execute());
}

TEST(SplitInternal, ShufflePrefetchedEqualsShuffle) {
  for (uint64_t n : {0, 1, 2, 3, 15, 16, 17, 18, 1000}) {
    std::vector<uint64_t> a = Iota(n), b = Iota(n);
    std::vector<uint16_t> tags(n);
    std::iota(tags.begin(), tags.end(), uint16_t{0});
    Rng r1(n), r2(n);
    Shuffle(std::span<uint64_t>(a), r1);
    internal::ShufflePrefetched(r2, std::span<uint64_t>(b), std::span<uint16_t>(tags));
    EXPECT_EQ(a, b) << n;
    for (uint64_t i = 0; i < n; ++i) EXPECT_EQ(tags[i], b[i]);
    EXPECT_EQ(r1.state(), r2.state());
  }
}

// --- the shuffle algorithm (builder.h, "Shuffle algorithm") ---------------------------

// The documented algorithm, written as plainly as the header states it.
std::vector<uint64_t> ReferenceShuffle(std::vector<uint64_t> v, uint64_t seed,
                                       uint64_t k = internal::kShuffleBucketItems) {
  const uint64_t m = v.size();
  const uint64_t num_buckets = std::min<uint64_t>(m / k, 65536);
  if (num_buckets < 2) {
    Rng rng(seed);
    Shuffle(std::span<uint64_t>(v), rng);
    return v;
  }
  Rng master(seed);
  std::vector<uint64_t> block_seeds((m + k - 1) / k), bucket_seeds(num_buckets);
  for (uint64_t& d : block_seeds) d = master.Next();
  for (uint64_t& e : bucket_seeds) e = master.Next();
  std::vector<std::vector<uint64_t>> buckets(num_buckets);
  Rng block_rng(0);
  for (uint64_t i = 0; i < m; ++i) {
    if (i % k == 0) block_rng = Rng(block_seeds[i / k]);
    buckets[block_rng.UniformBelow(num_buckets)].push_back(v[i]);
  }
  std::vector<uint64_t> out;
  for (uint64_t b = 0; b < num_buckets; ++b) {
    Rng rng(bucket_seeds[b]);
    Shuffle(std::span<uint64_t>(buckets[b]), rng);
    out.insert(out.end(), buckets[b].begin(), buckets[b].end());
  }
  return out;
}

// Global shuffle of the stream (clumps of `clump`), then a stable grouping by tag.
std::vector<uint64_t> ReferenceShuffleAndGroup(
    const std::vector<uint64_t>& ids, const std::vector<uint8_t>& tags, uint64_t seed,
    uint64_t clump, uint64_t k = internal::kShuffleBucketItems) {
  const uint64_t m = ids.size();
  auto order = ReferenceShuffle(Iota(m / clump + (m % clump != 0)), seed, k);
  std::vector<uint64_t> stream;
  for (uint64_t c : order) {
    for (uint64_t i = c * clump; i < std::min(m, (c + 1) * clump); ++i)
      stream.push_back(i);
  }
  std::vector<uint64_t> out;
  for (uint8_t t = 0; t <= *std::max_element(tags.begin(), tags.end()); ++t) {
    for (uint64_t i : stream)
      if (tags[i] == t) out.push_back(ids[i]);
  }
  return out;
}

TEST(Shuffle, NumBucketsIsAFunctionOfTheSizeOnly) {
  EXPECT_EQ(internal::ShuffleNumBuckets(131071), 1u);
  EXPECT_EQ(internal::ShuffleNumBuckets(131072), 2u);
  EXPECT_EQ(internal::ShuffleNumBuckets(300000), 4u);
  EXPECT_EQ(internal::ShuffleNumBuckets(100'000'000), 1525u);
  EXPECT_EQ(internal::ShuffleNumBuckets(uint64_t{1} << 40), 65536u);
}

TEST(Shuffle, SmallInputsAreFisherYates) {
  ThreadPool pool(2);
  for (uint64_t n : {0, 1, 2, 17, 1000, 131071}) {
    std::vector<uint64_t> a = Iota(n), b = Iota(n);
    Rng rng(n + 5);
    Shuffle(std::span<uint64_t>(a), rng);
    internal::ShuffleValues(b, n + 5, &pool);
    EXPECT_EQ(a, b) << n;
  }
}

TEST(Shuffle, BucketedPathMatchesTheDocumentedAlgorithm) {
  ThreadPool pool(3);
  // The production bucket size (B = 4 at 300k rows), and a tiny one on small inputs.
  for (auto [n, k] : std::vector<std::pair<uint64_t, uint64_t>>{
           {300'000, internal::kShuffleBucketItems}, {1000, 7}, {64, 2}, {9, 3}}) {
    for (uint64_t seed : {0, 1, 42}) {
      std::vector<uint64_t> values = Iota(n, 1000);
      internal::ShuffleValues(values, seed, &pool, k);
      ASSERT_EQ(values, ReferenceShuffle(Iota(n, 1000), seed, k)) << n << " " << seed;
    }
  }
}

TEST(Shuffle, BucketedGoldenOrder) {
  // Pins the algorithm: changing it changes every user's seeded permutations.
  std::vector<uint64_t> values = Iota(300'000);
  internal::ShuffleValues(values, 42, ThreadPool::Default());
  EXPECT_THAT(std::vector<uint64_t>(values.begin(), values.begin() + 8),
              ElementsAre(141486, 109953, 293763, 218845, 293088, 72972, 124831, 91790));
  auto sorted = values;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(sorted, Iota(300'000));
}

TEST(Shuffle, SameResultForAnyPoolSize) {
  ThreadPool one(1), four(4);
  const uint64_t n = 300'003;
  std::vector<uint64_t> a = Iota(n), b = Iota(n);
  internal::ShuffleValues(a, 9, &one);
  internal::ShuffleValues(b, 9, &four);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, Iota(n));
  // Shuffle and group, with and without clumps, through the tag path and the contiguous
  // path: all equal the reference whatever the pool.
  std::vector<uint8_t> tags(n);
  const std::vector<uint64_t> counts{200'000, 70'000, 30'003};
  for (uint64_t i = 0; i < n; ++i) tags[i] = i < 200'000 ? 0 : (i < 270'000 ? 1 : 2);
  const std::vector<uint64_t> ids = Iota(n, 1u << 20);
  for (uint64_t clump : {1, 3}) {
    const auto expected = ReferenceShuffleAndGroup(ids, tags, 11, clump, 1024);
    for (ThreadPool* pool : {&one, &four}) {
      auto grouped = internal::ShuffleAndGroup(
          ids, tags, 3, internal::ShuffleSpec{11, clump}, pool, 1024);
      EXPECT_EQ(grouped.ids, expected) << clump << " " << pool->num_threads();
      EXPECT_THAT(grouped.counts, ElementsAreArray(counts));
      if (clump == 1) {
        std::vector<uint64_t> contiguous = ids;
        ASSERT_TRUE(
            internal::ShuffleContiguousSplits(&contiguous, counts, 11, pool, 1024));
        EXPECT_EQ(contiguous, expected) << pool->num_threads();
      }
    }
  }
  // Clump shuffles of ids alone.
  std::vector<uint64_t> c1 = Iota(n), c4 = Iota(n);
  internal::ShuffleIdsInClumps(&c1, 5, 3, &one, 1024);
  internal::ShuffleIdsInClumps(&c4, 5, 3, &four, 1024);
  EXPECT_EQ(c1, c4);
}

// The grouped scatter finds an item's split by counting the split starts at or before
// it (up to 8 splits) or by binary search (more): empty splits anywhere, and both ways.
TEST(Shuffle, ContiguousSplitsWithEmptyAndManySplits) {
  ThreadPool pool(2);
  const uint64_t n = 50'003;
  const std::vector<std::vector<uint64_t>> cases = {
      {0, 20'000, 0, 30'003},
      {25'000, 25'003, 0},
      {5'000, 5'000, 5'000, 5'000, 5'000, 5'000, 5'000, 5'000, 5'000, 5'003},
      {0, 10'000, 0, 10'000, 10'000, 0, 10'000, 0, 10'003, 0, 0}};
  for (const auto& counts : cases) {
    std::vector<uint8_t> tags;
    for (uint64_t s = 0; s < counts.size(); ++s) tags.insert(tags.end(), counts[s], s);
    ASSERT_EQ(tags.size(), n);
    const std::vector<uint64_t> ids = Iota(n, 1u << 20);
    std::vector<uint64_t> grouped = ids;
    ASSERT_TRUE(internal::ShuffleContiguousSplits(&grouped, counts, 3, &pool, 1024));
    EXPECT_EQ(grouped, ReferenceShuffleAndGroup(ids, tags, 3, 1, 1024)) << counts.size();
  }
}

TEST(Shuffle, SharedWorkspaceGivesTheSameResults) {
  // A build runs the split's shuffle and the final shuffle through one workspace; the
  // second stage must not depend on what the first left in the shared arrays.
  ThreadPool pool(2);
  const uint64_t n = 300'003;
  const std::vector<uint64_t> counts{200'000, 70'000, 30'003};
  std::vector<uint64_t> alone = Iota(n, 1u << 20);
  internal::ShuffleValues(alone, 5, &pool, 1024);
  std::vector<uint64_t> alone_grouped = alone;
  ASSERT_TRUE(internal::ShuffleContiguousSplits(&alone_grouped, counts, 11, &pool, 1024));

  internal::ShuffleWorkspace workspace;
  std::vector<uint64_t> shared = Iota(n, 1u << 20);
  internal::ShuffleValues(shared, 5, &pool, 1024, &workspace);
  EXPECT_EQ(shared, alone);
  ASSERT_TRUE(
      internal::ShuffleContiguousSplits(&shared, counts, 11, &pool, 1024, &workspace));
  EXPECT_EQ(shared, alone_grouped);
  // A smaller input reuses the larger arrays.
  std::vector<uint64_t> small = Iota(n / 2), small_alone = Iota(n / 2);
  internal::ShuffleIdsInClumps(&small, 3, 4, &pool, 1024, &workspace);
  internal::ShuffleIdsInClumps(&small_alone, 3, 4, &pool, 1024);
  EXPECT_EQ(small, small_alone);
}

// Row ids of fragments {id 0: 100'000 rows, id 3: none, id 5: 200'003 rows}, by scan
// position, written out longhand (the fragments cross DenseRowIds' 2^16-row pages).
std::vector<uint64_t> ThreeFragmentIds() {
  std::vector<uint64_t> ids = Iota(100'000);
  for (uint64_t row = 0; row < 200'003; ++row) ids.push_back((uint64_t{5} << 32) | row);
  return ids;
}

TEST(Shuffle, DenseRowIdsMapPositionsAcrossFragments) {
  const internal::DenseRowIds rows({{0, 100'000}, {3, 0}, {5, 200'003}});
  const std::vector<uint64_t> expected = ThreeFragmentIds();
  ASSERT_EQ(rows.num_rows(), expected.size());
  for (uint64_t p = 0; p < expected.size(); ++p) ASSERT_EQ(rows(p), expected[p]) << p;
  EXPECT_EQ(
      internal::DenseRowIds(std::vector<internal::DenseRowIds::Fragment>{}).num_rows(),
      0u);
}

TEST(Shuffle, DenseEqualsShufflingTheScannedIds) {
  // ShuffleDense must give exactly what the scanned-ids path gives (the builder takes
  // either, depending on the table), for every configuration it accepts and any pool.
  ThreadPool one(1), four(4);
  const internal::DenseRowIds rows({{0, 100'000}, {3, 0}, {5, 200'003}});
  const uint64_t n = rows.num_rows();
  using Spec = std::optional<internal::ShuffleSpec>;
  struct Case {
    std::vector<uint64_t> counts;
    Spec split, shuffle;
  };
  const std::vector<uint64_t> three{200'000, 70'000, 30'000};  // 3 rows left over
  const std::vector<Case> cases = {
      {{n}, std::nullopt, std::nullopt},
      {{n}, std::nullopt, internal::ShuffleSpec{7, 1}},
      {three, internal::ShuffleSpec{5, 1}, std::nullopt},
      {three, internal::ShuffleSpec{5, 1}, internal::ShuffleSpec{11, 1}},
      {three, std::nullopt, internal::ShuffleSpec{11, 1}},
      {{n - 1}, internal::ShuffleSpec{5, 1}, internal::ShuffleSpec{11, 1}},
      {{1000}, internal::ShuffleSpec{5, 1}, internal::ShuffleSpec{11, 1}},  // small
  };
  for (size_t c = 0; c < cases.size(); ++c) {
    const Case& k = cases[c];
    ASSERT_TRUE(internal::ShuffleDenseApplies(rows, k.counts, k.split, k.shuffle, 1024));
    std::vector<uint64_t> expected = ThreeFragmentIds();
    if (k.split) internal::ShuffleIdsInClumps(&expected, 1, k.split->seed, &one, 1024);
    uint64_t kept = 0;
    for (uint64_t count : k.counts) kept += count;
    expected.resize(kept);
    if (k.shuffle && k.counts.size() > 1) {
      ASSERT_TRUE(internal::ShuffleContiguousSplits(&expected, k.counts, k.shuffle->seed,
                                                    &one, 1024));
    } else if (k.shuffle) {
      internal::ShuffleIdsInClumps(&expected, 1, k.shuffle->seed, &one, 1024);
    }
    for (ThreadPool* pool : {&one, &four}) {
      std::vector<uint64_t> out(n, ~uint64_t{0});
      internal::ShuffleDense(rows, k.counts, k.split, k.shuffle, pool, out.data(), 1024);
      out.resize(kept);
      EXPECT_EQ(out, expected) << "case " << c << ", " << pool->num_threads();
    }
  }
  // A small input of one split is a plain Fisher-Yates of the positions.
  const internal::DenseRowIds small({{2, 500}});
  std::vector<uint64_t> expected(500);
  for (uint64_t i = 0; i < 500; ++i) expected[i] = (uint64_t{2} << 32) | i;
  Rng rng(3);
  Shuffle(std::span<uint64_t>(expected), rng);
  std::vector<uint64_t> out(500);
  internal::ShuffleDense(small, std::vector<uint64_t>{500}, std::nullopt,
                         internal::ShuffleSpec{3, 1}, &one, out.data(), 1024);
  EXPECT_EQ(out, expected);
}

TEST(Shuffle, DenseDeclinesClumpsAndSmallMultiSplitShuffles) {
  const internal::DenseRowIds rows({{0, 300'000}});
  const std::vector<uint64_t> three{200'000, 70'000, 30'000};
  const internal::ShuffleSpec clumps{1, 2}, plain{1, 1};
  EXPECT_FALSE(internal::ShuffleDenseApplies(rows, three, clumps, std::nullopt, 1024));
  EXPECT_FALSE(internal::ShuffleDenseApplies(rows, three, std::nullopt, clumps, 1024));
  EXPECT_TRUE(internal::ShuffleDenseApplies(rows, three, plain, plain, 1024));
  // Below 2 buckets the grouping of several splits needs tags: not handled.
  EXPECT_FALSE(internal::ShuffleDenseApplies(rows, three, plain, plain, 1 << 20));
  EXPECT_TRUE(internal::ShuffleDenseApplies(rows, std::vector<uint64_t>{300'000}, plain,
                                            plain, 1 << 20));
  // More rows kept than exist.
  EXPECT_FALSE(internal::ShuffleDenseApplies(rows, std::vector<uint64_t>{300'001}, plain,
                                             plain, 1024));
}

TEST(ShuffleWorkspace, ReusesItsArraysAndGrowsOnDemand) {
  internal::ShuffleWorkspace workspace;
  uint64_t* ids = workspace.Ids(1000);
  ASSERT_NE(ids, nullptr);
  EXPECT_EQ(workspace.Ids(10), ids);
  EXPECT_EQ(workspace.Ids(1000), ids);
  uint16_t* buckets = workspace.Buckets(1 << 22);
  ASSERT_NE(buckets, nullptr);
  EXPECT_EQ(workspace.Buckets(5), buckets);
  // Growing gives a usable array of the new size.
  uint64_t* grown = workspace.Ids(1 << 20);
  grown[0] = 1;
  grown[(1 << 20) - 1] = 2;
  EXPECT_EQ(grown[0] + grown[(1 << 20) - 1], 3u);
}

TEST(Shuffle, ClumpsStayIntactOnTheBucketedPath) {
  ThreadPool pool(4);
  const uint64_t n = 300'007, clump = 10;  // 30001 clumps, 29 buckets of 1024
  std::vector<uint64_t> ids = Iota(n);
  internal::ShuffleIdsInClumps(&ids, clump, 8, &pool, 1024);
  std::vector<uint64_t> order;
  for (size_t i = 0; i < n;) {
    const uint64_t first = ids[i];
    ASSERT_EQ(first % clump, 0u) << "clump starts at " << first;
    const uint64_t len = std::min<uint64_t>(clump, n - first);
    for (uint64_t k = 0; k < len; ++k) ASSERT_EQ(ids[i + k], first + k);
    order.push_back(first / clump);
    i += len;
  }
  EXPECT_EQ(order, ReferenceShuffle(Iota(30'001), 8, 1024));
}

// Pearson's chi-square of observed counts against equal expectations.
double ChiSquare(const std::vector<uint64_t>& observed) {
  double total = 0;
  for (uint64_t o : observed) total += static_cast<double>(o);
  const double expected = total / static_cast<double>(observed.size());
  double chi = 0;
  for (uint64_t o : observed) chi += (o - expected) * (o - expected) / expected;
  return chi;
}

TEST(Shuffle, PositionsAreUniform) {
  // For n = 8 over seeds 0..19999 (deterministic: no flakes), the position of every
  // element is uniform: chi-square with 7 degrees of freedom below 24.3 (p = 0.001),
  // both for Fisher-Yates and for the bucketed path (buckets of 2 -> B = 4).
  ThreadPool pool(2);
  for (uint64_t k : {internal::kShuffleBucketItems, uint64_t{2}, uint64_t{3}}) {
    std::vector<std::vector<uint64_t>> position(8, std::vector<uint64_t>(8, 0));
    for (uint64_t seed = 0; seed < 20000; ++seed) {
      std::vector<uint64_t> values = Iota(8);
      internal::ShuffleValues(values, seed, &pool, k);
      for (uint64_t p = 0; p < 8; ++p) ++position[values[p]][p];
    }
    for (uint64_t e = 0; e < 8; ++e) {
      EXPECT_LT(ChiSquare(position[e]), 24.3) << "element " << e << ", bucket size " << k;
    }
  }
}

TEST(PermutationBuilder, BucketedShuffleThroughTheBuilder) {
  // 300k rows: both the random split's shuffle and the shuffle after it are bucketed.
  const uint64_t n = 300'000;
  auto snapshot = IdSnapshot(n, 4096);
  PermutationBuilder builder(snapshot);
  builder.SplitRandom(SplitSizes::Ratios({0.8, 0.1, 0.05}), 42).Shuffle(7);
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  ASSERT_OK_AND_ASSIGN(auto again, Build(builder));
  EXPECT_EQ(r.row_ids, again.row_ids);
  EXPECT_THAT(r.Sizes(), ElementsAre(240'000, 30'000, 15'000));
  std::vector<uint64_t> split = ReferenceShuffle(Iota(n), 42);
  split.resize(285'000);
  std::vector<uint8_t> tags(285'000);
  for (uint64_t i = 0; i < tags.size(); ++i)
    tags[i] = i < 240'000 ? 0 : (i < 270'000 ? 1 : 2);
  EXPECT_EQ(r.row_ids, ReferenceShuffleAndGroup(split, tags, 7, 1));
  auto sorted = r.row_ids;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::unique(sorted.begin(), sorted.end()), sorted.end());

  // A hash split then a shuffle goes through the tag path: still a permutation of each
  // split's members.
  PermutationBuilder plain(snapshot), shuffled(snapshot);
  plain.SplitHash({"id"}, {1, 1, 1});
  shuffled.SplitHash({"id"}, {1, 1, 1}).Shuffle(3);
  ASSERT_OK_AND_ASSIGN(auto a, Build(plain));
  ASSERT_OK_AND_ASSIGN(auto b, Build(shuffled));
  EXPECT_EQ(a.split_ids, b.split_ids);
  for (uint64_t s = 0; s < 3; ++s) {
    auto x = a.Split(s), y = b.Split(s);
    EXPECT_NE(x, y);
    std::sort(y.begin(), y.end());
    EXPECT_EQ(x, y);
  }
}

// --- hash split ------------------------------------------------------------------------

TEST(PermutationBuilder, HashValidationMessages) {
  auto snapshot = IdSnapshot(10);
  PermutationBuilder no_columns(snapshot);
  no_columns.SplitHash({}, {1});
  ExpectInvalid(no_columns.Execute().status(),
                "Invalid input, Hash strategy requires at least one column");
  PermutationBuilder no_weights(snapshot);
  no_weights.SplitHash({"id"}, {});
  ExpectInvalid(no_weights.Execute().status(),
                "Invalid input, Hash strategy requires at least one split weight");
  PermutationBuilder zero(snapshot);
  zero.SplitHash({"id"}, {1, 0});
  ExpectInvalid(zero.Execute().status(),
                "Invalid input, Split weights must be greater than 0");
  PermutationBuilder unknown(snapshot);
  unknown.SplitHash({"nope"}, {1});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "nope", unknown.Execute());
}

TEST(PermutationBuilder, HashSplitIsStablePerValueAndRoughlyWeighted) {
  const int64_t n = 20000;
  auto snapshot = IdSnapshot(n, 1000);
  PermutationBuilder builder(snapshot);
  builder.SplitHash({"id"}, {1, 3});  // discard defaults to 0
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  ASSERT_EQ(r.row_ids.size(), static_cast<size_t>(n));
  auto sizes = r.Sizes();
  EXPECT_NEAR(sizes[0], n / 4.0, n * 0.02);
  EXPECT_NEAR(sizes[1], n * 3 / 4.0, n * 0.02);
  // Grouped by split, each split in scan order (stable).
  EXPECT_TRUE(std::is_sorted(r.split_ids.begin(), r.split_ids.end()));
  auto s0 = r.Split(0);
  EXPECT_TRUE(std::is_sorted(s0.begin(), s0.end()));
  // The documented hash: XXH64 of 0x01 + int64 LE, mod 4, split 0 iff residue < 1.
  for (uint64_t i = 0; i < r.row_ids.size(); ++i) {
    const int64_t id = static_cast<int64_t>(r.row_ids[i]);
    unsigned char bytes[9] = {1};
    for (int b = 0; b < 8; ++b) bytes[1 + b] = static_cast<unsigned char>(id >> (8 * b));
    const uint64_t residue = XXH64(bytes, 9, 0) % 4;
    ASSERT_EQ(r.split_ids[i], residue < 1 ? 0u : 1u) << "id " << id;
  }
  // The label column has 10 values: rows with the same label share a split.
  PermutationBuilder by_label(snapshot);
  by_label.SplitHash({"label"}, {1, 1});
  ASSERT_OK_AND_ASSIGN(auto l, Build(by_label));
  std::map<uint64_t, uint64_t> split_of_label;
  for (size_t i = 0; i < l.row_ids.size(); ++i) {
    auto [it, inserted] = split_of_label.emplace(l.row_ids[i] % 10, l.split_ids[i]);
    EXPECT_EQ(it->second, l.split_ids[i]);
  }
  // Stable when rows are removed: a filtered build assigns the same splits.
  PermutationBuilder filtered(snapshot);
  filtered.Filter("id % 3 = 0").SplitHash({"id"}, {1, 3});
  ASSERT_OK_AND_ASSIGN(auto f, Build(filtered));
  std::map<uint64_t, uint64_t> full;
  for (size_t i = 0; i < r.row_ids.size(); ++i) full[r.row_ids[i]] = r.split_ids[i];
  for (size_t i = 0; i < f.row_ids.size(); ++i) {
    EXPECT_EQ(full[f.row_ids[i]], f.split_ids[i]);
  }
}

TEST(PermutationBuilder, HashSplitOfLargeBatchesInParallelPiecesIsTheSerialOne) {
  // Batches of 2^15 rows and more are hashed in pieces on the pool: the same rows and
  // splits, in the same order, as batches small enough to be hashed in one piece, with
  // the documented residues, discarded rows included.
  const int64_t n = 200000;
  auto build = [&](int64_t batch_rows) {
    PermutationBuilder builder(IdSnapshot(n, batch_rows));
    builder.SplitHash({"id"}, {2, 1, 3}, 2);
    return Build(builder);
  };
  ASSERT_OK_AND_ASSIGN(auto whole, build(n));
  ASSERT_OK_AND_ASSIGN(auto pieces, build(100000));
  ASSERT_OK_AND_ASSIGN(auto small, build(1000));
  EXPECT_EQ(whole.row_ids, small.row_ids);
  EXPECT_EQ(whole.split_ids, small.split_ids);
  EXPECT_EQ(pieces.row_ids, small.row_ids);
  EXPECT_EQ(pieces.split_ids, small.split_ids);
  std::vector<uint64_t> expected_ids[3];
  for (int64_t id = 0; id < n; ++id) {
    unsigned char bytes[9] = {1};
    for (int b = 0; b < 8; ++b) bytes[1 + b] = static_cast<unsigned char>(id >> (8 * b));
    const uint64_t residue = XXH64(bytes, 9, 0) % 8;
    if (residue < 6) expected_ids[residue < 2 ? 0 : residue < 3 ? 1 : 2].push_back(id);
  }
  for (uint64_t split = 0; split < 3; ++split) {
    EXPECT_EQ(small.Split(split), expected_ids[split]) << "split " << split;
  }
}

TEST(RowHasher, SingleIntegerColumnFastPathHashesTheCanonicalEncoding) {
  // One int64 or uint64 column is hashed from its values directly; it must give XXH64 of
  // the same canonical bytes as every other column set, nulls and slice offsets included.
  auto ints = arrow::json::ArrayFromJSONString(arrow::int64(),
                                               "[7, null, -1, 0, 9223372036854775807]")
                  .ValueOrDie();
  auto uints =
      arrow::json::ArrayFromJSONString(arrow::uint64(), "[18446744073709551615, null, 3]")
          .ValueOrDie();
  for (const auto& column : {ints, ints->Slice(1), uints, uints->Slice(2)}) {
    ASSERT_OK_AND_ASSIGN(auto hasher, internal::RowHasher::Make({column}, {"c"}));
    for (int64_t row = 0; row < column->length(); ++row) {
      const std::string bytes = hasher.Encode(row);
      EXPECT_EQ(hasher.Hash(row), XXH64(bytes.data(), bytes.size(), 0))
          << column->ToString() << " row " << row;
    }
  }
  // The documented bytes of -1: tag 0x01, then eight 0xff.
  ASSERT_OK_AND_ASSIGN(auto hasher, internal::RowHasher::Make({ints}, {"c"}));
  const unsigned char minus_one[9] = {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  EXPECT_EQ(hasher.Hash(2), XXH64(minus_one, 9, 0));
  const char null_tag = 0;
  EXPECT_EQ(hasher.Hash(1), XXH64(&null_tag, 1, 0));
}

TEST(PermutationBuilder, HashDiscard) {
  const int64_t n = 20000;
  PermutationBuilder builder(IdSnapshot(n, 1000));
  builder.SplitHash({"id", "label"}, {1, 2}, 1);
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_NEAR(static_cast<double>(r.row_ids.size()), n * 0.75, n * 0.02);
  auto sizes = r.Sizes();
  EXPECT_NEAR(sizes[0], n * 0.25, n * 0.02);
  EXPECT_NEAR(sizes[1], n * 0.5, n * 0.02);
}

TEST(SplitInternal, CanonicalEncoding) {
  auto ints =
      arrow::json::ArrayFromJSONString(arrow::int32(), "[5, null, -1]").ValueOrDie();
  auto longs =
      arrow::json::ArrayFromJSONString(arrow::int64(), "[5, null, -1]").ValueOrDie();
  auto strings =
      arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["ab", null, ""])").ValueOrDie();
  auto large =
      arrow::json::ArrayFromJSONString(arrow::large_utf8(), R"(["ab", null, ""])")
          .ValueOrDie();
  auto doubles =
      arrow::json::ArrayFromJSONString(arrow::float64(), "[0.0, -0.0, NaN]").ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto a, internal::RowHasher::Make({ints, strings}, {"i", "s"}));
  ASSERT_OK_AND_ASSIGN(auto b, internal::RowHasher::Make({longs, large}, {"i", "s"}));
  for (int64_t row = 0; row < 3; ++row) EXPECT_EQ(a.Hash(row), b.Hash(row)) << row;
  EXPECT_EQ(a.Encode(0),
            std::string("\x01\x05\0\0\0\0\0\0\0\x01\x02\0\0\0\0\0\0\0ab", 20));
  EXPECT_EQ(a.Encode(1), std::string("\0\0", 2));
  ASSERT_OK_AND_ASSIGN(auto d, internal::RowHasher::Make({doubles}, {"d"}));
  EXPECT_EQ(d.Hash(0), d.Hash(1));  // -0.0 == +0.0
  EXPECT_EQ(d.Encode(2), std::string("\x01\0\0\0\0\0\0\xf8\x7f", 9));
  // A null string and an empty string differ.
  EXPECT_NE(a.Hash(1), a.Hash(2));
  // Unsupported types are NotImplemented, naming the column.
  auto lists =
      arrow::json::ArrayFromJSONString(arrow::list(arrow::int32()), "[[1]]").ValueOrDie();
  ASSERT_RAISES_WITH_MESSAGE(NotImplemented, "'l'",
                             internal::RowHasher::Make({lists}, {"l"}));
  // Dictionary values hash like the plain values, a null entry like a null.
  auto dict_type = arrow::dictionary(arrow::int8(), arrow::utf8());
  auto dict_values =
      arrow::json::ArrayFromJSONString(arrow::utf8(), R"(["ab", null])").ValueOrDie();
  auto indices =
      arrow::json::ArrayFromJSONString(arrow::int8(), "[0, 1, null]").ValueOrDie();
  auto dict =
      arrow::DictionaryArray::FromArrays(dict_type, indices, dict_values).ValueOrDie();
  ASSERT_OK_AND_ASSIGN(auto e, internal::RowHasher::Make({dict}, {"s"}));
  ASSERT_OK_AND_ASSIGN(auto p, internal::RowHasher::Make({strings}, {"s"}));
  EXPECT_EQ(e.Hash(0), p.Hash(0));
  EXPECT_EQ(e.Hash(1), p.Hash(1));
  EXPECT_EQ(e.Hash(2), p.Hash(1));
}

TEST(PermutationBuilder, HashSplitWithShuffleKeepsMembership) {
  auto snapshot = IdSnapshot(500, 50);
  PermutationBuilder plain(snapshot);
  plain.SplitHash({"id"}, {1, 1, 1});
  ASSERT_OK_AND_ASSIGN(auto a, Build(plain));
  PermutationBuilder shuffled(snapshot);
  shuffled.SplitHash({"id"}, {1, 1, 1}).Shuffle(3, 4);
  ASSERT_OK_AND_ASSIGN(auto b, Build(shuffled));
  EXPECT_EQ(a.split_ids, b.split_ids);
  for (uint64_t s = 0; s < 3; ++s) {
    auto x = a.Split(s), y = b.Split(s);
    EXPECT_NE(x, y);
    std::sort(y.begin(), y.end());
    EXPECT_EQ(x, y);
  }
}

// --- calculated split ------------------------------------------------------------------

TEST(PermutationBuilder, CalculatedSplitCastsIntegersGroupsStably) {
  PermutationBuilder builder(IdSnapshot(30));
  builder.SplitCalculated("id % 3");
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_THAT(r.Sizes(), ElementsAre(10, 10, 10));
  EXPECT_THAT(r.Split(1), ElementsAre(1, 4, 7, 10, 13, 16, 19, 22, 25, 28));
  EXPECT_TRUE(std::is_sorted(r.split_ids.begin(), r.split_ids.end()));

  // Booleans are 0 / 1; integral floats are accepted; gaps are allowed.
  PermutationBuilder boolean(IdSnapshot(10));
  boolean.SplitCalculated("id >= 7");
  ASSERT_OK_AND_ASSIGN(auto b, Build(boolean));
  EXPECT_THAT(b.Sizes(), ElementsAre(7, 3));
  PermutationBuilder floats(IdSnapshot(10));
  floats.SplitCalculated("CAST(id AS DOUBLE) * 2.0");
  ASSERT_OK_AND_ASSIGN(auto f, Build(floats));
  EXPECT_EQ(f.split_ids, (std::vector<uint64_t>{0, 2, 4, 6, 8, 10, 12, 14, 16, 18}));
}

TEST(PermutationBuilder, CalculatedSplitLargeIds) {
  PermutationBuilder builder(IdSnapshot(6));
  builder.SplitCalculated("(id % 2) * 5000000000 + 7");
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_EQ(r.split_ids,
            (std::vector<uint64_t>{7, 7, 7, 5000000007, 5000000007, 5000000007}));
  EXPECT_EQ(r.row_ids, (std::vector<uint64_t>{0, 2, 4, 1, 3, 5}));
}

TEST(PermutationBuilder, CalculatedSplitRejections) {
  auto snapshot = IdSnapshot(10);
  PermutationBuilder negative(snapshot);
  negative.SplitCalculated("id - 3");
  ExpectInvalid(
      negative.Execute().status(),
      "Invalid input, split_calculated 'id - 3' gave -3 at row 0 (_rowid 0): split "
      "ids must be non-negative integers");
  PermutationBuilder fraction(snapshot);
  fraction.Filter("id > 2").SplitCalculated("CAST(id AS DOUBLE) / 2.0");
  ExpectInvalid(
      fraction.Execute().status(),
      "Invalid input, split_calculated 'CAST(id AS DOUBLE) / 2.0' gave 1.5 at row 0 "
      "(_rowid 3): split ids must be non-negative integers");
  PermutationBuilder string(snapshot);
  string.SplitCalculated("'a'");
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "has type string", string.Execute());
  PermutationBuilder bad_sql(snapshot);
  bad_sql.SplitCalculated("nope + 1");
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "nope", bad_sql.Execute());
  PermutationBuilder unnamed(snapshot);
  unnamed.SplitCalculated("id % 3", std::vector<std::string>{"a", "b"});
  ExpectInvalid(
      unnamed.Execute().status(),
      "Invalid input, split_calculated 'id % 3' gave split id 2 at row 2 (_rowid 2) "
      "but only 2 split names were given");
}

TEST(PermutationBuilder, CalculatedSplitNullIsInvalid) {
  auto batch = arrow::RecordBatch::Make(
      arrow::schema({arrow::field("s", arrow::int64())}), 3,
      {arrow::json::ArrayFromJSONString(arrow::int64(), "[0, null, 1]").ValueOrDie()});
  PermutationBuilder builder(SnapshotOf(batch));
  builder.SplitCalculated("s");
  ExpectInvalid(
      builder.Execute().status(),
      "Invalid input, split_calculated 's' gave null at row 1 (_rowid 1): split ids "
      "must be non-negative integers");
}

// --- names, metadata, empty results ----------------------------------------------------

TEST(PermutationBuilder, SplitNamesMetadataJson) {
  PermutationBuilder builder(IdSnapshot(10));
  builder.SplitRandom(SplitSizes::Ratios({0.5, 0.5}), 1, std::nullopt,
                      std::vector<std::string>{"train", "te\"st"});
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  ASSERT_NE(r.table->schema()->metadata(), nullptr);
  EXPECT_EQ(r.table->schema()->metadata()->Get("split_names").ValueOrDie(),
            R"(["train","te\"st"])");
}

// XXH3-64 of the ids' little-endian bytes, as 16 lowercase hex digits.
std::string ExpectedDigest(const std::vector<uint64_t>& ids) {
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx",
                static_cast<unsigned long long>(
                    XXH3_64bits(ids.data(), ids.size() * sizeof(uint64_t))));
  return hex;
}

TEST(PermutationBuilder, BaseVersionAndSplitDigestsMetadata) {
  auto snapshot = IdSnapshot(30);
  PermutationBuilder builder(snapshot);
  builder.SplitRandom(SplitSizes::Counts({10, 5}), 3).Shuffle(4);
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  const auto& metadata = *r.table->schema()->metadata();
  EXPECT_EQ(metadata.Get("riffledb:base_version").ValueOrDie(),
            std::to_string(snapshot->version()));
  std::vector<uint64_t> split0(r.row_ids.begin(), r.row_ids.begin() + 10);
  std::vector<uint64_t> split1(r.row_ids.begin() + 10, r.row_ids.end());
  EXPECT_EQ(metadata.Get("riffledb:split_digests").ValueOrDie(),
            R"({"0":")" + ExpectedDigest(split0) + R"(","1":")" + ExpectedDigest(split1) +
                R"("})");
}

TEST(PermutationBuilder, SplitDigestsNameCalculatedSplitIds) {
  PermutationBuilder builder(IdSnapshot(10));
  builder.SplitCalculated("(id % 2) * 5 + 2");
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_EQ(r.table->schema()->metadata()->Get("riffledb:split_digests").ValueOrDie(),
            R"({"2":")" + ExpectedDigest({0, 2, 4, 6, 8}) + R"(","7":")" +
                ExpectedDigest({1, 3, 5, 7, 9}) + R"("})");
}

TEST(PermutationBuilder, RowIdDigestFedInPiecesEqualsOneShot) {
  const std::vector<uint64_t> ids = {5, 1, 9, 1ULL << 40, 0, 77, 3};
  RowIdDigest pieces;
  pieces.Update(std::span<const uint64_t>(ids.data(), 2));
  pieces.Update(std::span<const uint64_t>(ids.data() + 2, 0));
  pieces.Update(std::span<const uint64_t>(ids.data() + 2, 5));
  EXPECT_EQ(pieces.Hex(), ExpectedDigest(ids));
  EXPECT_EQ(RowIdDigest().Hex(), ExpectedDigest({}));
  EXPECT_EQ(ExpectedDigest({}), "2d06800538d394c2");  // XXH3-64 of no bytes, seed 0
}

TEST(PermutationBuilder, SplitNamesValidated) {
  PermutationBuilder mismatch(IdSnapshot(10));
  mismatch.SplitSequential(SplitSizes::Fixed(2), std::vector<std::string>{"only_one"});
  ExpectInvalid(mismatch.Execute().status(),
                "Invalid input, 1 split names were given for 2 splits");
  PermutationBuilder duplicate(IdSnapshot(10));
  duplicate.SplitHash({"id"}, {1, 1}, 0, std::vector<std::string>{"a", "a"});
  ExpectInvalid(duplicate.Execute().status(),
                "Invalid input, split name 'a' is given more than once");
}

TEST(PermutationBuilder, EmptyResultsAllowedForDefaultHashCalculated) {
  auto snapshot = IdSnapshot(10);
  for (int kind = 0; kind < 3; ++kind) {
    PermutationBuilder builder(snapshot);
    builder.Filter("id > 100");
    if (kind == 1) builder.SplitHash({"id"}, {1, 1});
    if (kind == 2) builder.SplitCalculated("id % 2");
    builder.Shuffle(1);
    ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
    EXPECT_EQ(r.table->num_rows(), 0) << kind;
    EXPECT_EQ(r.table->num_columns(), 2);
  }
  PermutationBuilder ratios(snapshot);
  ratios.Filter("id > 100").SplitRandom(SplitSizes::Ratios({0.5, 0.5}), 1);
  ExpectInvalid(
      ratios.Execute().status(),
      "Invalid input, One of the splits has 50% of 0 rows which rounds to 0 rows");
}

TEST(PermutationBuilder, RowIdsOfLaterFragmentsAndDeletes) {
  auto store = std::make_shared<MemoryStore>("memory://t");
  auto reader = ReaderOf({IdBatch(0, 3)});
  ASSERT_OK_AND_ASSIGN(auto table,
                       Table::Create("t", store, reader->schema(), reader.get()));
  auto more = ReaderOf({IdBatch(3, 2)});
  ASSERT_OK(table->Append(more.get()));
  ASSERT_OK(testing::DeleteWhere(*table, "id = 1"));
  ASSERT_OK_AND_ASSIGN(auto snapshot, table->snapshot());
  PermutationBuilder builder(snapshot);
  ASSERT_OK_AND_ASSIGN(auto r, Build(builder));
  EXPECT_EQ(r.row_ids,
            (std::vector<uint64_t>{0, 2, uint64_t{1} << 32, (uint64_t{1} << 32) + 1}));
}

// The output of a dense shuffle is faulted in on both threads before the
// (single-threaded) scatter writes it: still all zeros, writable to the last byte, and
// resident.
TEST(PrefaultForWrite, LeavesZeroedResidentPages) {
  ThreadPool pool(2);
  const int64_t size = (int64_t{8} << 20) + 123;
  ASSERT_OK_AND_ASSIGN(auto buffer, internal::MapZeroed(size));
  uint8_t* data = buffer->mutable_data();
  internal::PrefaultForWrite(data, size, &pool);
  EXPECT_EQ(std::count(data, data + size, uint8_t{0}), size);
  data[size - 1] = 7;
  data[0] = 9;
  EXPECT_EQ(data[size - 1] + data[0], 16);
  const int64_t page = sysconf(_SC_PAGESIZE);
  std::vector<unsigned char> resident(static_cast<size_t>((size + page - 1) / page));
  ASSERT_EQ(mincore(data, static_cast<size_t>(size), resident.data()), 0);
  // A kernel before 5.14 has no MADV_POPULATE_WRITE: then only the touched pages are in.
  if (madvise(data, static_cast<size_t>(page), 23 /* MADV_POPULATE_WRITE */) == 0) {
    EXPECT_EQ(std::count_if(resident.begin(), resident.end(),
                            [](unsigned char r) { return (r & 1) != 0; }),
              static_cast<int64_t>(resident.size()));
  }
}

}  // namespace
}  // namespace riffledb
