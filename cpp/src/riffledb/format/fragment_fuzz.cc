// Fuzz target: arbitrary bytes as a fragment file (and as a deletion file). The bytes are
// written to a per-process temporary file and opened through the memory-map path the
// table uses; a file that opens has every value read.
#include <arrow/io/memory.h>
#include <arrow/ipc/reader.h>
#include <arrow/record_batch.h>
#include <arrow/scalar.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "riffledb/format/fragment.h"

namespace {

const std::string& TempPath() {
  static const std::string path = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string p = std::string(tmp && *tmp ? tmp : "/tmp") + "/riffledb_fragment_fuzz_" +
                    std::to_string(::getpid()) + ".arrow";
    std::atexit([] { std::remove(TempPath().c_str()); });
    return p;
  }();
  return path;
}

void TouchEveryValue(const riffledb::format::FragmentData& fragment) {
  size_t hash = 0;
  for (const auto& batch : fragment.batches) {
    for (const auto& column : batch->columns()) {
      for (int64_t i = 0; i < column->length(); ++i) {
        auto scalar = column->GetScalar(i);
        if (!scalar.ok()) std::abort();  // validated arrays must be readable
        hash ^= (*scalar)->hash() + (*scalar)->ToString().size();
      }
    }
  }
  volatile size_t sink = hash;
  (void)sink;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = TempPath();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) std::abort();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);

  // Take schema and row count from the file itself so that mutated files get past the
  // manifest checks and reach batch validation.
  std::shared_ptr<arrow::Schema> schema =
      arrow::schema({arrow::field("row", arrow::uint32(), /*nullable=*/false)});
  int64_t rows = 0;
  auto buffer = std::make_shared<arrow::Buffer>(data, static_cast<int64_t>(size));
  auto reader = arrow::ipc::RecordBatchFileReader::Open(
      std::make_shared<arrow::io::BufferReader>(buffer));
  if (reader.ok()) {
    schema = (*reader)->schema();
    auto count = (*reader)->CountRows();
    if (count.ok()) rows = *count;
  }

  auto fragment =
      riffledb::format::OpenFragmentFile(*riffledb::io::Local(), path, schema, rows);
  if (fragment.ok()) {
    TouchEveryValue(**fragment);
  } else if (fragment.status().message().find(path) == std::string::npos) {
    std::abort();  // errors must name the file
  }
  auto deleted =
      riffledb::format::ReadDeletionFile(*riffledb::io::Local(), path, rows, rows);
  (void)deleted;
  return 0;
}
