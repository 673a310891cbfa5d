// Micro-benchmarks of PermutationReader: random takes (a DataLoader's __getitems__) and
// batched iteration, over a shuffled permutation of an in-memory table.
#include <arrow/api.h>
#include <benchmark/benchmark.h>

#include <numeric>
#include <random>

#include "riffledb/permutation/reader.h"
#include "riffledb/table/table.h"

namespace riffledb {
namespace {

constexpr int64_t kRows = 1 << 20;
constexpr int kDim = 64;

// {id int64, emb fixed_size_list<float32, 64>} of kRows rows, and a permutation of all
// rows in a seeded random order (split 0).
struct Fixture {
  std::shared_ptr<const Snapshot> base;
  std::shared_ptr<const PermutationTable> perm;
  Fixture() {
    arrow::Int64Builder ids;
    arrow::FloatBuilder values;
    (void)ids.Reserve(kRows);
    (void)values.Reserve(kRows * kDim);
    for (int64_t i = 0; i < kRows; ++i) {
      ids.UnsafeAppend(i);
      for (int d = 0; d < kDim; ++d) values.UnsafeAppend(static_cast<float>(i + d));
    }
    auto emb = arrow::FixedSizeListArray::FromArrays(values.Finish().ValueOrDie(), kDim)
                   .ValueOrDie();
    auto schema = arrow::schema(
        {arrow::field("id", arrow::int64()), arrow::field("emb", emb->type())});
    auto batch =
        arrow::RecordBatch::Make(schema, kRows, {ids.Finish().ValueOrDie(), emb});
    base = Make("base", batch);

    std::vector<uint64_t> order(kRows);
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937_64(7));
    arrow::UInt64Builder rows, splits;
    (void)rows.AppendValues(order);
    (void)splits.AppendValues(std::vector<uint64_t>(kRows, 0));
    auto perm_schema = arrow::schema({arrow::field("row_id", arrow::uint64()),
                                      arrow::field("split_id", arrow::uint64())});
    perm = PermutationTable::Open(
               *Make("perm", arrow::RecordBatch::Make(perm_schema, kRows,
                                                      {rows.Finish().ValueOrDie(),
                                                       splits.Finish().ValueOrDie()})))
               .ValueOrDie();
  }
  static std::shared_ptr<const Snapshot> Make(const std::string& name,
                                              std::shared_ptr<arrow::RecordBatch> batch) {
    auto store = std::make_shared<MemoryStore>("memory://" + name);
    auto reader = arrow::RecordBatchReader::Make({batch}).ValueOrDie();
    auto table = Table::Create(name, store, batch->schema(), reader.get()).ValueOrDie();
    return table->snapshot().ValueOrDie();
  }
};

const Fixture& GetFixture() {
  static const Fixture fixture;
  return fixture;
}

void BM_OpenSplit(benchmark::State& state) {
  const auto& f = GetFixture();
  for (auto _ : state) {
    auto reader = PermutationReader::Open(f.base, f.perm, 0).ValueOrDie();
    benchmark::DoNotOptimize(reader);
  }
  state.SetItemsProcessed(state.iterations() * kRows);
}
BENCHMARK(BM_OpenSplit)->Unit(benchmark::kMillisecond);

void BM_TakeRandomOffsets(benchmark::State& state) {
  const auto& f = GetFixture();
  const bool identity = state.range(1) != 0;
  auto reader =
      PermutationReader::Open(f.base, identity ? nullptr : f.perm, 0).ValueOrDie();
  auto selection = BoundSelection::Make(*f.base->schema(), std::nullopt).ValueOrDie();
  std::mt19937_64 rng(1);
  std::vector<int64_t> offsets(state.range(0));
  for (auto _ : state) {
    for (auto& o : offsets) o = static_cast<int64_t>(rng() % kRows);
    auto batch = reader->TakeOffsets(offsets, *selection).ValueOrDie();
    benchmark::DoNotOptimize(batch);
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_TakeRandomOffsets)
    ->ArgsProduct({{256, 4096}, {0, 1}})
    ->ArgNames({"offsets", "identity"});

void BM_ReadAll(benchmark::State& state) {
  const auto& f = GetFixture();
  auto reader = PermutationReader::Open(f.base, f.perm, 0).ValueOrDie();
  auto selection = BoundSelection::Make(*f.base->schema(), std::nullopt).ValueOrDie();
  for (auto _ : state) {
    auto stream = reader->Read(selection, state.range(0)).ValueOrDie();
    std::shared_ptr<arrow::RecordBatch> batch;
    int64_t rows = 0;
    while (stream->ReadNext(&batch).ok() && batch != nullptr) rows += batch->num_rows();
    benchmark::DoNotOptimize(rows);
  }
  state.SetItemsProcessed(state.iterations() * kRows);
}
BENCHMARK(BM_ReadAll)->Arg(256)->Arg(4096)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace riffledb

BENCHMARK_MAIN();
