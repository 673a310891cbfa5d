// Micro-benchmarks of Snapshot::Scan and Snapshot::CountRows against plain loops over the
// same bytes.
//
// Uses the same generated table as take_benchmark.cc ({id int64, label int32,
// vec fixed_size_list<float32, 512>}, 1M rows, about 2 GiB, cached under
// $TMPDIR/riffledb-bench/; RIFFLEDB_BENCH_ROWS overrides the row count). A scan is
// zero-copy over the memory map, so every benchmark here also reads what it gets (a sum
// of 64-bit words over each returned value buffer): "scan" means "scan and consume", and
// the baseline consumes the same bytes from plain in-memory columns.
//
//   build/bench/cpp/scan_benchmark --benchmark_repetitions=5 \
//       --benchmark_report_aggregates_only=true

#include <arrow/api.h>
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "riffledb/storage/store.h"
#include "riffledb/table/snapshot.h"
#include "riffledb/table/table.h"

namespace riffledb {
namespace {

// ---------------------------------------------------------------------------------------
// The benchmark table. This section is the same in take_benchmark.cc and
// scan_benchmark.cc, so both binaries share one cached copy on disk.

constexpr int32_t kDim = 512;
constexpr uint64_t kSeed = 20240917;
constexpr int64_t kGenBatchRows = 64 * 1024;
constexpr int64_t kRowBytes = 8 + 4 + kDim * 4;

int64_t BenchRows() {
  if (const char* env = std::getenv("RIFFLEDB_BENCH_ROWS")) {
    const long long rows = std::atoll(env);
    if (rows > 0) return rows;
  }
  return 1'000'000;
}

uint64_t SplitMix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

std::shared_ptr<arrow::Schema> BenchSchema() {
  return arrow::schema(
      {arrow::field("id", arrow::int64(), false),
       arrow::field("label", arrow::int32(), false),
       arrow::field("vec", arrow::fixed_size_list(arrow::float32(), kDim), false)});
}

// Streams rows [begin, end) of the generated table, kGenBatchRows at a time: row i has
// id = i, label = hash(seed, i) % 1000 and 512 pseudo-random floats in [-1, 1).
class GeneratingReader : public arrow::RecordBatchReader {
 public:
  GeneratingReader(int64_t begin, int64_t end) : next_(begin), end_(end) {}
  std::shared_ptr<arrow::Schema> schema() const override { return BenchSchema(); }

  arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
    if (next_ >= end_) {
      *out = nullptr;
      return arrow::Status::OK();
    }
    const int64_t n = std::min(kGenBatchRows, end_ - next_);
    ARROW_ASSIGN_OR_RAISE(auto ids, arrow::AllocateBuffer(n * 8));
    ARROW_ASSIGN_OR_RAISE(auto labels, arrow::AllocateBuffer(n * 4));
    ARROW_ASSIGN_OR_RAISE(auto floats, arrow::AllocateBuffer(n * kDim * 4));
    auto* id = reinterpret_cast<int64_t*>(ids->mutable_data());
    auto* label = reinterpret_cast<int32_t*>(labels->mutable_data());
    auto* vec = reinterpret_cast<float*>(floats->mutable_data());
    for (int64_t r = 0; r < n; ++r) {
      const int64_t row = next_ + r;
      id[r] = row;
      uint64_t state = SplitMix(kSeed ^ static_cast<uint64_t>(row));
      label[r] = static_cast<int32_t>(state % 1000);
      for (int32_t d = 0; d < kDim; d += 2) {
        state = SplitMix(state);
        vec[r * kDim + d] = static_cast<float>(state >> 40) * 0x1p-23f - 1.0f;
        vec[r * kDim + d + 1] =
            static_cast<float>((state >> 8) & 0xffffff) * 0x1p-23f - 1.0f;
      }
    }
    auto values = std::make_shared<arrow::FloatArray>(n * kDim, std::move(floats));
    auto vecs = std::make_shared<arrow::FixedSizeListArray>(
        arrow::fixed_size_list(arrow::float32(), kDim), n, values);
    *out = arrow::RecordBatch::Make(
        BenchSchema(), n,
        {std::make_shared<arrow::Int64Array>(n, std::move(ids)),
         std::make_shared<arrow::Int32Array>(n, std::move(labels)), std::move(vecs)});
    next_ += n;
    return arrow::Status::OK();
  }

 private:
  int64_t next_;
  const int64_t end_;
};

// Reads every page of every buffer once, so timed reads hit resident, mapped memory.
arrow::Status TouchAll(const Snapshot& snapshot) {
  ARROW_ASSIGN_OR_RAISE(auto reader, snapshot.Scan(ScanOptions{}));
  const long page = sysconf(_SC_PAGESIZE);
  uint64_t sum = 0;
  std::function<void(const arrow::ArrayData&)> touch = [&](const arrow::ArrayData& data) {
    for (const auto& buffer : data.buffers) {
      if (buffer == nullptr) continue;
      for (int64_t at = 0; at < buffer->size(); at += page) sum += buffer->data()[at];
    }
    for (const auto& child : data.child_data) touch(*child);
  };
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (batch == nullptr) break;
    for (const auto& column : batch->columns()) touch(*column->data());
  }
  benchmark::DoNotOptimize(sum);
  return arrow::Status::OK();
}

// The table with `rows` rows in `fragments` equal appends, built on first use and cached
// on disk by a hash of everything that determines its content.
arrow::Result<std::shared_ptr<const Snapshot>> BenchTable(int64_t rows, int fragments) {
  const uint64_t key = SplitMix(
      SplitMix(SplitMix(kSeed ^ 1 /* layout version */) ^ static_cast<uint64_t>(rows)) ^
      static_cast<uint64_t>(fragments) ^ (uint64_t{kDim} << 32));
  const char* tmp = std::getenv("TMPDIR");
  const std::filesystem::path root =
      std::filesystem::path(tmp != nullptr && *tmp != 0 ? tmp : "/tmp") /
      "riffledb-bench";
  char name[64];
  std::snprintf(name, sizeof(name), "t%lldr-%df-%016llx", static_cast<long long>(rows),
                fragments, static_cast<unsigned long long>(key));
  const auto path = root / name;

  auto open = [&]() -> arrow::Result<std::shared_ptr<const Snapshot>> {
    ARROW_ASSIGN_OR_RAISE(
        auto table, Table::Open(name, std::make_shared<DirectoryStore>(path.string())));
    ARROW_ASSIGN_OR_RAISE(auto snapshot, table->snapshot());
    if (snapshot->num_rows() != rows ||
        static_cast<int>(snapshot->manifest().fragments.size()) != fragments) {
      return arrow::Status::Invalid("stale benchmark table at ", path.string());
    }
    return snapshot;
  };
  std::error_code ec;
  if (std::filesystem::exists(path / "_versions", ec)) {
    auto snapshot = open();
    if (snapshot.ok()) return snapshot;
  }
  // Build in a private directory and rename it into place, so an interrupted build or a
  // concurrent benchmark binary never sees a half-written table.
  std::filesystem::create_directories(root, ec);
  const auto building =
      root / (std::string(name) + ".building-" + std::to_string(::getpid()));
  std::filesystem::remove_all(building, ec);
  std::fprintf(stderr, "building benchmark table %s (%lld rows, %d fragments)...\n",
               path.c_str(), static_cast<long long>(rows), fragments);
  {
    auto store = std::make_shared<DirectoryStore>(building.string());
    GeneratingReader first(0, rows / fragments);
    ARROW_ASSIGN_OR_RAISE(auto table, Table::Create(name, store, BenchSchema(), &first));
    for (int f = 1; f < fragments; ++f) {
      GeneratingReader more(rows * f / fragments, rows * (f + 1) / fragments);
      ARROW_RETURN_NOT_OK(table->Append(&more).status());
    }
  }
  std::filesystem::remove_all(path, ec);
  std::filesystem::rename(building, path, ec);
  if (ec) std::filesystem::remove_all(building, ec);  // another process won the race
  return open();
}

// Opened once per (rows, fragments) for the life of the process, pages touched.
const Snapshot& CachedTable(int fragments) {
  static std::shared_ptr<const Snapshot> tables[8];
  auto& table = tables[fragments];
  if (table == nullptr) {
    auto result = BenchTable(BenchRows(), fragments);
    if (!result.ok()) {
      std::fprintf(stderr, "cannot build the benchmark table: %s\n",
                   result.status().ToString().c_str());
      std::abort();
    }
    table = *std::move(result);
    auto st = TouchAll(*table);
    if (!st.ok()) {
      std::fprintf(stderr, "cannot read the benchmark table: %s\n",
                   st.ToString().c_str());
      std::abort();
    }
  }
  return *table;
}

// ---------------------------------------------------------------------------------------
// What every benchmark does with the bytes it gets.

uint64_t SumWords(const uint8_t* data, int64_t bytes) {
  uint64_t sum = 0;
  int64_t at = 0;
  for (; at + 8 <= bytes; at += 8) {
    uint64_t word;
    std::memcpy(&word, data + at, 8);
    sum += word;
  }
  for (; at < bytes; ++at) sum += data[at];
  return sum;
}

// Sums the value bytes of a fixed-width array (or fixed-size list of one).
uint64_t SumArray(const arrow::ArrayData& data) {
  if (data.type->id() == arrow::Type::FIXED_SIZE_LIST) {
    const int32_t size =
        static_cast<const arrow::FixedSizeListType&>(*data.type).list_size();
    auto child = data.child_data[0]->Slice(data.offset * size, data.length * size);
    return SumArray(*child);
  }
  const int width = static_cast<const arrow::FixedWidthType&>(*data.type).bit_width() / 8;
  return SumWords(data.buffers[1]->data() + data.offset * width, data.length * width);
}

enum Columns : int64_t { kAll = 0, kIdLabel = 1 };

int64_t BytesPerRow(int64_t columns) { return columns == kAll ? kRowBytes : 12; }

constexpr char kFilter[] = "label % 10 != 0";

// ---------------------------------------------------------------------------------------
// riffledb

arrow::Result<uint64_t> ScanAndSum(const Snapshot& snapshot, const ScanOptions& options) {
  ARROW_ASSIGN_OR_RAISE(auto reader, snapshot.Scan(options));
  uint64_t sum = 0;
  while (true) {
    std::shared_ptr<arrow::RecordBatch> batch;
    ARROW_RETURN_NOT_OK(reader->ReadNext(&batch));
    if (batch == nullptr) return sum;
    for (const auto& column : batch->columns()) sum += SumArray(*column->data());
  }
}

// Args: columns (0 all, 1 id+label), filtered (0, 1: label % 10 != 0).
void BM_Scan(benchmark::State& state) {
  const int64_t columns = state.range(0);
  const Snapshot& snapshot = CachedTable(1);
  const bool filtered = state.range(1) != 0;
  const OutputColumn id_label[] = {{"id", "id"}, {"label", "label"}};
  for (auto _ : state) {
    // Bound per scan, as the bindings do: the figure includes parsing and binding.
    auto sum = [&]() -> arrow::Result<uint64_t> {
      ScanOptions options;
      if (columns == kIdLabel) {
        ARROW_ASSIGN_OR_RAISE(options.projection,
                              Projection::Make(snapshot.schema(), id_label));
      }
      if (filtered) {
        ARROW_ASSIGN_OR_RAISE(options.filter, Filter::Make(snapshot.schema(), kFilter));
      }
      return ScanAndSum(snapshot, options);
    }();
    if (!sum.ok()) {
      state.SkipWithError(sum.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(*sum);
  }
  state.SetItemsProcessed(state.iterations() * snapshot.num_rows());
  state.SetBytesProcessed(state.iterations() * snapshot.num_rows() *
                          BytesPerRow(columns));
}

void BM_CountRows(benchmark::State& state) {
  const Snapshot& snapshot = CachedTable(1);
  for (auto _ : state) {
    auto count = [&]() -> arrow::Result<int64_t> {
      ARROW_ASSIGN_OR_RAISE(auto filter, Filter::Make(snapshot.schema(), kFilter));
      return snapshot.CountRows(filter);
    }();
    if (!count.ok()) {
      state.SkipWithError(count.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(*count);
  }
  // The filter only needs label.
  state.SetItemsProcessed(state.iterations() * snapshot.num_rows());
  state.SetBytesProcessed(state.iterations() * snapshot.num_rows() * 4);
}

// ---------------------------------------------------------------------------------------
// Baseline: plain columnar buffers of all rows (4 KiB pages, like the table's file map),
// labels generated as in the table so the filter keeps the same rows.

struct PlainColumns {
  int64_t rows;
  int64_t* id;
  int32_t* label;
  float* vec;
};

const PlainColumns& Plain() {
  static const PlainColumns columns = [] {
    const int64_t rows = BenchRows();
    const size_t bytes = static_cast<size_t>(rows * kRowBytes);
    void* map =
        mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) std::abort();
    madvise(map, bytes, MADV_NOHUGEPAGE);
    auto* base = static_cast<uint8_t*>(map);
    PlainColumns c{rows, reinterpret_cast<int64_t*>(base),
                   reinterpret_cast<int32_t*>(base + rows * 8),
                   reinterpret_cast<float*>(base + rows * 12)};
    for (int64_t i = 0; i < rows; ++i) {
      c.id[i] = i;
      c.label[i] =
          static_cast<int32_t>(SplitMix(kSeed ^ static_cast<uint64_t>(i)) % 1000);
    }
    for (int64_t i = 0; i < rows * kDim; ++i) c.vec[i] = static_cast<float>(i & 0xffff);
    return c;
  }();
  return columns;
}

std::unique_ptr<arrow::Buffer> Allocate(int64_t bytes) {
  auto buffer = arrow::AllocateBuffer(bytes);
  if (!buffer.ok()) std::abort();
  return *std::move(buffer);
}

// Args: columns (0 all, 1 id+label), filtered (0, 1: label % 10 != 0). Unfiltered: sums
// the columns in blocks of kGenBatchRows rows. Filtered: per block, copies the selected
// rows of the columns into fresh buffers (a scan returns new batches) and sums those.
void BM_PlainScan(benchmark::State& state) {
  const int64_t columns = state.range(0);
  const bool filtered = state.range(1) != 0;
  const PlainColumns& in = Plain();
  std::vector<int32_t> selected;
  selected.reserve(kGenBatchRows);
  for (auto _ : state) {
    uint64_t sum = 0;
    for (int64_t begin = 0; begin < in.rows; begin += kGenBatchRows) {
      const int64_t n = std::min(kGenBatchRows, in.rows - begin);
      const int64_t* id = in.id + begin;
      const int32_t* label = in.label + begin;
      const float* vec = in.vec + begin * kDim;
      // Outputs from Arrow's default memory pool, like riffledb's.
      std::unique_ptr<arrow::Buffer> id_buf, label_buf, vec_buf;
      int64_t kept = n;
      if (filtered) {
        selected.clear();
        for (int32_t i = 0; i < n; ++i) {
          if (label[i] % 10 != 0) selected.push_back(i);
        }
        kept = static_cast<int64_t>(selected.size());
        id_buf = Allocate(kept * 8);
        label_buf = Allocate(kept * 4);
        auto* id_out = reinterpret_cast<int64_t*>(id_buf->mutable_data());
        auto* label_out = reinterpret_cast<int32_t*>(label_buf->mutable_data());
        for (int64_t i = 0; i < kept; ++i) id_out[i] = id[selected[i]];
        for (int64_t i = 0; i < kept; ++i) label_out[i] = label[selected[i]];
        id = id_out;
        label = label_out;
        if (columns == kAll) {
          vec_buf = Allocate(kept * kDim * 4);
          auto* vec_out = reinterpret_cast<float*>(vec_buf->mutable_data());
          for (int64_t i = 0; i < kept; ++i) {
            std::memcpy(vec_out + i * kDim, vec + selected[i] * kDim, kDim * 4);
          }
          vec = vec_out;
        }
      }
      sum += SumWords(reinterpret_cast<const uint8_t*>(id), kept * 8);
      sum += SumWords(reinterpret_cast<const uint8_t*>(label), kept * 4);
      if (columns == kAll)
        sum += SumWords(reinterpret_cast<const uint8_t*>(vec), kept * kDim * 4);
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * in.rows);
  state.SetBytesProcessed(state.iterations() * in.rows * BytesPerRow(columns));
}

void BM_PlainCount(benchmark::State& state) {
  const PlainColumns& in = Plain();
  for (auto _ : state) {
    int64_t count = 0;
    for (int64_t i = 0; i < in.rows; ++i) count += in.label[i] % 10 != 0;
    benchmark::DoNotOptimize(count);
  }
  state.SetItemsProcessed(state.iterations() * in.rows);
  state.SetBytesProcessed(state.iterations() * in.rows * 4);
}

void ScanArgs(benchmark::internal::Benchmark* b) {
  for (int64_t filtered : {0, 1}) {
    for (int64_t columns : {kAll, kIdLabel}) b->Args({columns, filtered});
  }
}

BENCHMARK(BM_Scan)
    ->ArgNames({"id_label_only", "filtered"})
    ->Apply(ScanArgs)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlainScan)
    ->ArgNames({"id_label_only", "filtered"})
    ->Apply(ScanArgs)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CountRows)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_PlainCount)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace riffledb

BENCHMARK_MAIN();
