// Micro-benchmarks of PermutationBuilder::Execute over a memory table {id int64,
// label int32 = id % 10} of 10M and 100M rows: random split + shuffle, hash split, and a
// filter before the random split.
//
// CPU time is the whole process's (the builder uses the thread pool).
// Besides time, each benchmark reports the builder's own peak memory: the process's peak
// RSS (VmHWM, reset through /proc/self/clear_refs before each run) minus the RSS before
// the run, in MB and in bytes per row of the base table; and, per build, the page faults
// (minor faults of the process: first touches of fresh pages, ~40% of a build's time
// once) and the system CPU time, most of which is their handling and page zeroing.
//
//   build/bench/cpp/builder_benchmark --benchmark_filter=10000000
#include <arrow/api.h>
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "riffledb/permutation/builder.h"
#include "riffledb/storage/store.h"
#include "riffledb/table/table.h"

namespace riffledb {
namespace {

constexpr int64_t kGenBatchRows = 64 * 1024;

std::shared_ptr<arrow::Schema> BenchSchema() {
  return arrow::schema({arrow::field("id", arrow::int64(), false),
                        arrow::field("label", arrow::int32(), false)});
}

// Streams rows [0, n): id = i, label = i % 10.
class GeneratingReader : public arrow::RecordBatchReader {
 public:
  explicit GeneratingReader(int64_t n) : end_(n) {}
  std::shared_ptr<arrow::Schema> schema() const override { return BenchSchema(); }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (next_ >= end_) {
      *out = nullptr;
      return arrow::Status::OK();
    }
    const int64_t rows = std::min(kGenBatchRows, end_ - next_);
    ARROW_ASSIGN_OR_RAISE(auto ids, arrow::AllocateBuffer(rows * 8));
    ARROW_ASSIGN_OR_RAISE(auto labels, arrow::AllocateBuffer(rows * 4));
    auto* id = reinterpret_cast<int64_t*>(ids->mutable_data());
    auto* label = reinterpret_cast<int32_t*>(labels->mutable_data());
    for (int64_t i = 0; i < rows; ++i) {
      id[i] = next_ + i;
      label[i] = static_cast<int32_t>((next_ + i) % 10);
    }
    next_ += rows;
    *out = arrow::RecordBatch::Make(
        BenchSchema(), rows,
        {std::make_shared<arrow::Int64Array>(rows, std::move(ids)),
         std::make_shared<arrow::Int32Array>(rows, std::move(labels))});
    return arrow::Status::OK();
  }

 private:
  int64_t next_ = 0;
  const int64_t end_;
};

// One cached table at a time (the 100M table is 1.2 GB).
std::shared_ptr<const Snapshot> BenchSnapshot(int64_t rows) {
  static int64_t cached_rows = 0;
  static std::shared_ptr<const Snapshot> cached;
  if (cached_rows != rows) {
    cached.reset();
    GeneratingReader reader(rows);
    auto store = std::make_shared<MemoryStore>("memory://bench");
    auto table = Table::Create("bench", store, BenchSchema(), &reader).ValueOrDie();
    cached = table->snapshot().ValueOrDie();
    cached_rows = rows;
  }
  return cached;
}

int64_t StatusKb(const char* key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + std::strlen(key));
  }
  return -1;
}

void ResetPeakRss() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
}

double SystemSeconds(const rusage& usage) {
  return static_cast<double>(usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_stime.tv_usec) * 1e-6;
}

template <typename Configure>
void RunBuilder(benchmark::State& state, Configure&& configure) {
  const int64_t rows = state.range(0);
  auto snapshot = BenchSnapshot(rows);
  int64_t peak_extra_kb = 0;
  int64_t out_rows = 0;
  double faults = 0, system_seconds = 0;
  for (auto _ : state) {
    ResetPeakRss();
    const int64_t before_kb = StatusKb("VmRSS:");
    rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    PermutationBuilder builder(snapshot);
    configure(builder);
    auto table = builder.Execute().ValueOrDie();
    getrusage(RUSAGE_SELF, &after);
    faults += static_cast<double>(after.ru_minflt - before.ru_minflt);
    system_seconds += SystemSeconds(after) - SystemSeconds(before);
    out_rows = table->num_rows();
    peak_extra_kb = std::max(peak_extra_kb, StatusKb("VmHWM:") - before_kb);
    benchmark::DoNotOptimize(table);
  }
  state.counters["out_rows"] = static_cast<double>(out_rows);
  state.counters["page_faults"] =
      benchmark::Counter(faults, benchmark::Counter::kAvgIterations);
  state.counters["system_s"] =
      benchmark::Counter(system_seconds, benchmark::Counter::kAvgIterations);
  state.counters["peak_extra_MB"] = peak_extra_kb / 1024.0;
  state.counters["peak_B_per_row"] = peak_extra_kb * 1024.0 / static_cast<double>(rows);
  state.SetItemsProcessed(state.iterations() * rows);
}

void BM_SplitRandomShuffle(benchmark::State& state) {
  RunBuilder(state, [](PermutationBuilder& b) {
    b.SplitRandom(SplitSizes::Ratios({0.8, 0.1, 0.1}), 42).Shuffle(7);
  });
}

void BM_SplitHash(benchmark::State& state) {
  RunBuilder(state, [](PermutationBuilder& b) { b.SplitHash({"id"}, {8, 1, 1}); });
}

void BM_FilterSplitRandomShuffle(benchmark::State& state) {
  RunBuilder(state, [](PermutationBuilder& b) {
    b.Filter("label % 10 != 0")
        .SplitRandom(SplitSizes::Ratios({0.8, 0.1, 0.1}), 42)
        .Shuffle(7);
  });
}

void BM_Default(benchmark::State& state) {
  RunBuilder(state, [](PermutationBuilder&) {});
}

// Grouped by size so that each table is generated once.
BENCHMARK(BM_Default)
    ->Arg(10'000'000)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK(BM_SplitRandomShuffle)
    ->Arg(10'000'000)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK(BM_SplitHash)
    ->Arg(10'000'000)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK(BM_FilterSplitRandomShuffle)
    ->Arg(10'000'000)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Iterations(3);
BENCHMARK(BM_Default)
    ->Arg(100'000'000)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_SplitRandomShuffle)
    ->Arg(100'000'000)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_SplitHash)
    ->Arg(100'000'000)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Iterations(1);
BENCHMARK(BM_FilterSplitRandomShuffle)
    ->Arg(100'000'000)
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()
    ->UseRealTime()
    ->Iterations(1);

}  // namespace
}  // namespace riffledb

BENCHMARK_MAIN();
