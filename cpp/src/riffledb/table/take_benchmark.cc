// Micro-benchmarks of Snapshot::TakeOffsets against a plain memcpy-gather of the same
// bytes.
//
// The table {id int64, label int32, vec fixed_size_list<float32, 512>} (about 2 GiB for
// 1M rows) is generated once with a fixed seed and cached under
// $TMPDIR/riffledb-bench/<hash of the parameters>/, so later runs only open it. Set
// RIFFLEDB_BENCH_ROWS to use fewer rows (e.g. 262144 on a small or slow disk).
//
// Every iteration takes a fresh set of random offsets from a pre-generated pool. The
// table's pages are touched once before timing (warm page cache and page tables), and the
// baseline reads from a buffer of the same size, also with 4 KiB pages, so both gather
// from memory that is resident but mostly not in the CPU caches.
//
// BM_TakeBlobs takes 256 random rows of a second cached table, {id int64, blob binary}
// with 4096 values of 100 KB +-10% (about 400 MB, 4 fragments), copying the values or
// as binary views (TakeOptions::binary_views), and optionally reads one byte per 4 KiB
// page of every value taken, so that views are not flattered by never touching the
// bytes they reference.
//
//   build/bench/cpp/take_benchmark --benchmark_repetitions=5 \
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
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "riffledb/storage/store.h"
#include "riffledb/table/snapshot.h"
#include "riffledb/table/table.h"
#include "riffledb/util/thread_pool.h"

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
// Takes

// Random offsets in [0, rows), fixed seed; iterations walk through it so consecutive
// takes read different rows.
const std::vector<int64_t>& OffsetPool() {
  static const std::vector<int64_t> pool = [] {
    std::vector<int64_t> offsets(1 << 20);
    const auto rows = static_cast<uint64_t>(BenchRows());
    for (size_t i = 0; i < offsets.size(); ++i) {
      offsets[i] = static_cast<int64_t>(SplitMix(kSeed + 7 * i) % rows);
    }
    return offsets;
  }();
  return pool;
}

class OffsetCursor {
 public:
  explicit OffsetCursor(int64_t take) : take_(take) {}
  std::span<const int64_t> Next() {
    const auto& pool = OffsetPool();
    if (at_ + take_ > static_cast<int64_t>(pool.size())) at_ = 0;
    std::span<const int64_t> out(pool.data() + at_, take_);
    at_ += take_;
    return out;
  }

 private:
  const int64_t take_;
  int64_t at_ = 0;
};

enum Columns : int64_t { kAll = 0, kVecOnly = 1 };

int64_t BytesPerRow(int64_t columns) { return columns == kAll ? kRowBytes : kDim * 4; }

void SetCounters(benchmark::State& state, int64_t take, int64_t columns) {
  state.SetItemsProcessed(state.iterations() * take);
  state.SetBytesProcessed(state.iterations() * take * BytesPerRow(columns));
}

// Args: rows per take, columns (0 all, 1 vec), fragments.
void BM_TakeOffsets(benchmark::State& state) {
  const int64_t take = state.range(0);
  const int64_t columns = state.range(1);
  const Snapshot& snapshot = CachedTable(static_cast<int>(state.range(2)));
  const std::vector<std::string> vec{"vec"};
  OffsetCursor cursor(take);
  for (auto _ : state) {
    // Bound per take, as the bindings do: the figure includes binding the columns.
    auto batch = [&]() -> arrow::Result<std::shared_ptr<arrow::RecordBatch>> {
      TakeOptions options;
      if (columns == kVecOnly) {
        ARROW_ASSIGN_OR_RAISE(options.projection,
                              Projection::Columns(snapshot.schema(), vec));
      }
      return snapshot.TakeOffsets(cursor.Next(), options);
    }();
    if (!batch.ok()) {
      state.SkipWithError(batch.status().ToString().c_str());
      break;
    }
    benchmark::DoNotOptimize(batch->get());
  }
  SetCounters(state, take, columns);
}

// ---------------------------------------------------------------------------------------
// Baseline: the same bytes, gathered with memcpy from plain columnar buffers of all rows.

struct PlainColumns {
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
    // Same page size as the table's file mapping: huge pages would flatter the baseline.
    madvise(map, bytes, MADV_NOHUGEPAGE);
    auto* base = static_cast<uint8_t*>(map);
    PlainColumns c{reinterpret_cast<int64_t*>(base),
                   reinterpret_cast<int32_t*>(base + rows * 8),
                   reinterpret_cast<float*>(base + rows * 12)};
    for (int64_t i = 0; i < rows; ++i) {
      c.id[i] = i;
      c.label[i] = static_cast<int32_t>(i % 1000);
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

void PlainGather(const PlainColumns& in, std::span<const int64_t> rows, int64_t begin,
                 int64_t end, int64_t columns, int64_t* id, int32_t* label, float* vec) {
  if (columns == kAll) {
    for (int64_t i = begin; i < end; ++i) id[i] = in.id[rows[i]];
    for (int64_t i = begin; i < end; ++i) label[i] = in.label[rows[i]];
  }
  for (int64_t i = begin; i < end; ++i) {
    std::memcpy(vec + i * kDim, in.vec + rows[i] * kDim, kDim * sizeof(float));
  }
}

// Args: rows per take, columns (0 all, 1 vec), threads (0: calling thread, 1: the
// riffledb ThreadPool, one contiguous piece per thread).
void BM_MemcpyGather(benchmark::State& state) {
  const int64_t take = state.range(0);
  const int64_t columns = state.range(1);
  ThreadPool* pool = state.range(2) == 0 ? nullptr : ThreadPool::Default();
  const PlainColumns& in = Plain();
  OffsetCursor cursor(take);
  for (auto _ : state) {
    const auto rows = cursor.Next();
    // Fresh outputs each time, as a take returns new arrays; from Arrow's default memory
    // pool, like riffledb's, so both pay the same allocator.
    auto id = Allocate(columns == kAll ? take * 8 : 0);
    auto label = Allocate(columns == kAll ? take * 4 : 0);
    auto vec = Allocate(take * kDim * 4);
    auto* id_out = reinterpret_cast<int64_t*>(id->mutable_data());
    auto* label_out = reinterpret_cast<int32_t*>(label->mutable_data());
    auto* vec_out = reinterpret_cast<float*>(vec->mutable_data());
    if (pool == nullptr) {
      PlainGather(in, rows, 0, take, columns, id_out, label_out, vec_out);
    } else {
      const int64_t pieces = std::min<int64_t>(pool->num_threads(), take);
      auto st = pool->ParallelFor(pieces, [&](int64_t p) {
        PlainGather(in, rows, take * p / pieces, take * (p + 1) / pieces, columns, id_out,
                    label_out, vec_out);
        return arrow::Status::OK();
      });
      if (!st.ok()) std::abort();
    }
    benchmark::DoNotOptimize(vec_out);
    benchmark::ClobberMemory();
  }
  SetCounters(state, take, columns);
}

// ---------------------------------------------------------------------------------------
// Blobs: 100 KB binary values, copied or as views.

constexpr int64_t kBlobRows = 4096;
constexpr int kBlobFragments = 4;
constexpr int64_t kBlobBytes = 100 * 1000;
constexpr int64_t kBlobTake = 256;
constexpr int64_t kPage = 4096;

std::shared_ptr<arrow::Schema> BlobSchema() {
  return arrow::schema(
      {arrow::field("id", arrow::int64(), false), arrow::field("blob", arrow::binary())});
}

// Rows [begin, end): id = i, blob = 100 KB +-10% of pseudo-random bytes, 256 per batch.
arrow::Result<std::shared_ptr<arrow::RecordBatchReader>> BlobRows(int64_t begin,
                                                                  int64_t end) {
  arrow::RecordBatchVector batches;
  for (int64_t start = begin; start < end; start += 256) {
    const int64_t stop = std::min(end, start + 256);
    arrow::Int64Builder ids;
    arrow::BinaryBuilder blobs;
    std::vector<uint64_t> value;
    for (int64_t row = start; row < stop; ++row) {
      uint64_t state = SplitMix(kSeed ^ (static_cast<uint64_t>(row) << 1));
      const int64_t size =
          kBlobBytes * 9 / 10 + static_cast<int64_t>(state % (kBlobBytes / 5));
      value.resize((size + 7) / 8);
      for (auto& word : value) word = state = SplitMix(state);
      ARROW_RETURN_NOT_OK(ids.Append(row));
      ARROW_RETURN_NOT_OK(
          blobs.Append(reinterpret_cast<const uint8_t*>(value.data()), size));
    }
    ARROW_ASSIGN_OR_RAISE(auto id_array, ids.Finish());
    ARROW_ASSIGN_OR_RAISE(auto blob_array, blobs.Finish());
    batches.push_back(
        arrow::RecordBatch::Make(BlobSchema(), stop - start, {id_array, blob_array}));
  }
  return arrow::RecordBatchReader::Make(std::move(batches), BlobSchema());
}

const Snapshot& CachedBlobTable() {
  static const std::shared_ptr<const Snapshot> table = [] {
    const char* tmp = std::getenv("TMPDIR");
    const auto path = std::filesystem::path(tmp != nullptr && *tmp != 0 ? tmp : "/tmp") /
                      "riffledb-bench" /
                      ("blobs-" + std::to_string(kBlobRows) + "r-" +
                       std::to_string(kBlobFragments) + "f-v1");
    auto open = [&]() -> arrow::Result<std::shared_ptr<const Snapshot>> {
      ARROW_ASSIGN_OR_RAISE(
          auto t, Table::Open("blobs", std::make_shared<DirectoryStore>(path.string())));
      ARROW_ASSIGN_OR_RAISE(auto snapshot, t->snapshot());
      if (snapshot->num_rows() != kBlobRows) {
        return arrow::Status::Invalid("stale blob table at ", path.string());
      }
      return snapshot;
    };
    auto build = [&]() -> arrow::Result<std::shared_ptr<const Snapshot>> {
      std::error_code ec;
      const auto building = path.string() + ".building-" + std::to_string(::getpid());
      std::filesystem::create_directories(path.parent_path(), ec);
      std::filesystem::remove_all(building, ec);
      std::fprintf(stderr, "building blob table %s...\n", path.c_str());
      {
        auto store = std::make_shared<DirectoryStore>(building);
        const int64_t per = kBlobRows / kBlobFragments;
        ARROW_ASSIGN_OR_RAISE(auto first, BlobRows(0, per));
        ARROW_ASSIGN_OR_RAISE(auto t,
                              Table::Create("blobs", store, BlobSchema(), first.get()));
        for (int f = 1; f < kBlobFragments; ++f) {
          ARROW_ASSIGN_OR_RAISE(auto more, BlobRows(f * per, (f + 1) * per));
          ARROW_RETURN_NOT_OK(t->Append(more.get()).status());
        }
      }
      std::filesystem::remove_all(path, ec);
      std::filesystem::rename(building, path, ec);
      if (ec) std::filesystem::remove_all(building, ec);
      return open();
    };
    auto result = open();
    if (!result.ok()) result = build();
    if (!result.ok() || !TouchAll(**result).ok()) {
      std::fprintf(stderr, "cannot build the blob table: %s\n",
                   result.status().ToString().c_str());
      std::abort();
    }
    return *std::move(result);
  }();
  return *table;
}

// One byte of every 4 KiB page of every value: the reads a consumer of the bytes makes
// at the least.
template <typename ArrayType>
uint64_t ReadPages(const arrow::Array& column) {
  const auto& array = static_cast<const ArrayType&>(column);
  uint64_t sum = 0;
  for (int64_t i = 0; i < array.length(); ++i) {
    const std::string_view value = array.GetView(i);
    for (size_t at = 0; at < value.size(); at += kPage) {
      sum += static_cast<uint8_t>(value[at]);
    }
  }
  return sum;
}

// Args: views (0: copy the values, 1: binary views), read (1: read one byte per page).
void BM_TakeBlobs(benchmark::State& state) {
  const bool views = state.range(0) != 0;
  const bool read = state.range(1) != 0;
  const Snapshot& snapshot = CachedBlobTable();
  TakeOptions options;
  options.binary_views = views;
  std::vector<int64_t> offsets(kBlobTake);
  uint64_t next = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    for (auto& offset : offsets) {
      offset = static_cast<int64_t>(SplitMix(kSeed + 13 * next++) % kBlobRows);
    }
    auto batch = snapshot.TakeOffsets(offsets, options);
    if (!batch.ok()) {
      state.SkipWithError(batch.status().ToString().c_str());
      break;
    }
    const auto& blob = *(*batch)->column(1);
    if (read) {
      benchmark::DoNotOptimize(views ? ReadPages<arrow::BinaryViewArray>(blob)
                                     : ReadPages<arrow::BinaryArray>(blob));
    }
    // Bytes written for the column: the values, or only the 16-byte views.
    bytes += views ? blob.data()->buffers[1]->size()
                   : static_cast<const arrow::BinaryArray&>(blob).total_values_length();
    benchmark::DoNotOptimize(batch->get());
  }
  state.SetItemsProcessed(state.iterations() * kBlobTake);
  state.counters["written_MB"] = benchmark::Counter(
      static_cast<double>(bytes) / 1e6 / std::max<int64_t>(1, state.iterations()));
}

BENCHMARK(BM_TakeBlobs)
    ->ArgNames({"views", "read"})
    ->ArgsProduct({{0, 1}, {0, 1}})
    ->UseRealTime();

// Rows per take x {all columns, vec only} x `last` (fragments or pool).
void TakeArgs(benchmark::internal::Benchmark* b, std::initializer_list<int64_t> last) {
  for (int64_t l : last) {
    for (int64_t columns : {kAll, kVecOnly}) {
      for (int64_t take : {1, 64, 256, 1024, 4096}) b->Args({take, columns, l});
    }
  }
}

BENCHMARK(BM_TakeOffsets)
    ->ArgNames({"rows", "vec_only", "fragments"})
    ->Apply([](benchmark::internal::Benchmark* b) {
      TakeArgs(b, {1, 4});
    })
    ->UseRealTime();

BENCHMARK(BM_MemcpyGather)
    ->ArgNames({"rows", "vec_only", "pool"})
    ->Apply([](benchmark::internal::Benchmark* b) {
      TakeArgs(b, {0, 1});
    })
    ->UseRealTime();

}  // namespace
}  // namespace riffledb

BENCHMARK_MAIN();
