#include "riffledb/format/lazy_fragment.h"

#include <arrow/json/from_string.h>
#include <arrow/record_batch.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "riffledb/io/filesystem.h"
#include "riffledb/testing/files.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/status.h"

namespace riffledb::format {
namespace {

constexpr int64_t kRows = 20000;
constexpr int64_t kBlock = 4096;

std::shared_ptr<arrow::Schema> Schema() {
  return arrow::schema({
      arrow::field("id", arrow::int64(), false),
      arrow::field("vec", arrow::fixed_size_list(arrow::float32(), 8)),
      arrow::field("s", arrow::utf8()),
      arrow::field("l", arrow::list(arrow::int32())),
      arrow::field("st", arrow::struct_({arrow::field("a", arrow::int32()),
                                         arrow::field("b", arrow::large_utf8())})),
      arrow::field("flag", arrow::boolean()),
  });
}

// kRows rows whose values all differ, with nulls in every nullable column.
std::shared_ptr<arrow::RecordBatch> Data() {
  std::string id = "[", vec = "[", s = "[", l = "[", st = "[", flag = "[";
  for (int64_t i = 0; i < kRows; ++i) {
    const char* sep = i == 0 ? "" : ",";
    const std::string n = std::to_string(i);
    id += sep + n;
    vec += sep + std::string(i % 11 == 0 ? "null" : "[" + n + ",1,2,3,4,5,6," + n + "]");
    s += sep +
         (i % 7 == 0 ? std::string("null") : "\"" + std::string(i % 40, 'x') + n + "\"");
    l += sep + (i % 5 == 0 ? std::string("null")
                           : "[" + n + (i % 3 == 0 ? "" : "," + n + ",7") + "]");
    st += sep +
          (i % 13 == 0 ? std::string("null") : "{\"a\":" + n + ",\"b\":\"b" + n + "\"}");
    flag += sep + std::string(i % 3 == 0 ? "true" : "false");
  }
  auto schema = Schema();
  arrow::ArrayVector columns;
  for (const auto& [field, json] : std::vector<std::pair<int, std::string>>{
           {0, id}, {1, vec}, {2, s}, {3, l}, {4, st}, {5, flag}}) {
    columns.push_back(
        arrow::json::ArrayFromJSONString(schema->field(field)->type(), json + "]")
            .ValueOrDie());
  }
  return arrow::RecordBatch::Make(schema, kRows, columns);
}

class LazyFragmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/riffledb_lazy_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    ASSERT_OK(io::Local()->CreateDirs(io::JoinPath(dir_, "cache")));
  }
  void TearDown() override { ASSERT_OK(io::Local()->DeleteTree(dir_)); }

  // Writes `batch` as a fragment of batches of 500 rows; returns its description.
  WrittenFragment Write(const std::shared_ptr<arrow::RecordBatch>& batch) {
    auto reader = arrow::RecordBatchReader::Make({batch}, batch->schema()).ValueOrDie();
    FragmentWriteOptions options;
    options.min_rows_per_batch = 500;
    options.max_bytes_per_batch = 1 << 30;
    // Input batches are coalesced, not split: feed slices.
    std::vector<std::shared_ptr<arrow::RecordBatch>> slices;
    for (int64_t at = 0; at < batch->num_rows(); at += 500) {
      slices.push_back(batch->Slice(at, 500));
    }
    reader = arrow::RecordBatchReader::Make(slices, batch->schema()).ValueOrDie();
    auto written =
        WriteFragments(*io::Local(), dir_, batch->schema(), reader.get(), options);
    EXPECT_TRUE(written.ok()) << written.status().ToString();
    EXPECT_EQ(written->size(), 1u);
    return written->at(0);
  }

  // The file `fragment` through a cache of blocks of kBlock whose fetcher reads `path`
  // (default: the fragment's own file).
  std::shared_ptr<io::CachedFile> Cached(const WrittenFragment& fragment,
                                         const std::string& identity,
                                         std::string path = "") {
    if (path.empty()) path = io::JoinPath(dir_, fragment.path);
    io::FileCacheOptions options;
    options.dir = io::JoinPath(dir_, "cache");
    options.block_size = kBlock;
    options.coalesce_gap = 0;
    auto cache = io::FileCache::Make(options).ValueOrDie();
    auto file = cache->Open(fragment.path, identity, fragment.digest->size,
                            [path](io::ByteRange r) -> arrow::Result<std::string> {
                              std::string out(static_cast<size_t>(r.length), '\0');
                              const int fd = ::open(path.c_str(), O_RDONLY);
                              if (fd < 0) return arrow::Status::IOError("open");
                              const ssize_t n = ::pread(fd, out.data(), out.size(),
                                                        static_cast<off_t>(r.offset));
                              ::close(fd);
                              if (n != r.length) return arrow::Status::IOError("short");
                              return out;
                            });
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    return *file;
  }

  std::shared_ptr<FragmentData> Local(const WrittenFragment& fragment) {
    return OpenFragmentFile(*io::Local(), io::JoinPath(dir_, fragment.path), Schema(),
                            kRows, fragment.digest)
        .ValueOrDie();
  }

  std::string dir_;
};

int64_t Blocks(int64_t size) { return (size + kBlock - 1) / kBlock; }

TEST_F(LazyFragmentTest, OpenFetchesTheFooterAndMetadataOnly) {
  const WrittenFragment fragment = Write(Data());
  ASSERT_EQ(fragment.num_batches, 40);
  auto file = Cached(fragment, "open");
  ASSERT_OK_AND_ASSIGN(auto data, OpenCachedFragmentFile(file, fragment.path, Schema(),
                                                         kRows, *fragment.digest));
  EXPECT_EQ(data->cached, file);
  EXPECT_EQ(data->num_rows(), kRows);
  ASSERT_EQ(data->columns.size(), 40u);
  EXPECT_EQ(data->columns[0].size(), 6u);
  // The head, the trailer, the footer and each batch's metadata: at most two blocks
  // each for the footer and the metadata (they may straddle a block boundary).
  EXPECT_LE(file->PresentBlocks(), 2 + 2 + 2 * 40);
  EXPECT_GT(Blocks(fragment.digest->size), 3 * file->PresentBlocks());
}

TEST_F(LazyFragmentTest, ATakeFetchesItsRowsAndReadsWhatALocalReadReads) {
  const WrittenFragment fragment = Write(Data());
  auto file = Cached(fragment, "take");
  ASSERT_OK_AND_ASSIGN(auto data, OpenCachedFragmentFile(file, fragment.path, Schema(),
                                                         kRows, *fragment.digest));
  const auto local = Local(fragment);
  const int64_t opened = file->PresentBlocks();
  const std::vector<int64_t> rows = {0, 1, 777, 15000, 19999, 1234, 14, 2600};
  RowFetchPlan plan;
  for (int64_t row : rows) {
    const int64_t b = row / 500;
    for (const auto& column : data->columns[b]) {
      plan.AddRows(file.get(), column->data(), std::vector<int64_t>{row % 500});
    }
  }
  ASSERT_OK(plan.Run());
  for (int64_t row : rows) {
    const int64_t b = row / 500;
    for (size_t c = 0; c < data->columns[b].size(); ++c) {
      const auto& got = data->columns[b][c];
      const auto& want = local->columns[b][c];
      EXPECT_TRUE(got->RangeEquals(*want, row % 500, row % 500 + 1, row % 500))
          << "row " << row << " column " << c << ": "
          << got->Slice(row % 500, 1)->ToString() << " vs "
          << want->Slice(row % 500, 1)->ToString();
    }
  }
  // 8 rows of 6 columns (18 buffers): a fraction of the file.
  EXPECT_GT(file->PresentBlocks(), opened);
  EXPECT_LT(file->PresentBlocks(), Blocks(fragment.digest->size) / 2);
}

TEST_F(LazyFragmentTest, FetchingEveryRowGivesTheFile) {
  const WrittenFragment fragment = Write(Data());
  auto file = Cached(fragment, "all");
  ASSERT_OK_AND_ASSIGN(auto data, OpenCachedFragmentFile(file, fragment.path, Schema(),
                                                         kRows, *fragment.digest));
  RowFetchPlan plan;
  for (const auto& batch : data->columns) {
    for (const auto& column : batch) plan.AddAll(file.get(), column->data());
  }
  ASSERT_OK(plan.Run());
  const auto local = Local(fragment);
  for (size_t b = 0; b < data->batches.size(); ++b) {
    ASSERT_OK(data->batches[b]->ValidateFull());
    EXPECT_TRUE(data->batches[b]->Equals(*local->batches[b])) << "batch " << b;
  }
}

TEST_F(LazyFragmentTest, OffsetsOutsideTheirValuesAreCorruptionNamingTheFile) {
  const WrittenFragment fragment = Write(Data());
  std::shared_ptr<arrow::Buffer> offsets;
  int64_t offsets_at = 0;
  {
    auto file = Cached(fragment, "find");
    ASSERT_OK_AND_ASSIGN(auto data, OpenCachedFragmentFile(file, fragment.path, Schema(),
                                                           kRows, *fragment.digest));
    offsets = data->columns[1][2]->data()->buffers[1];  // batch 1, column s
    offsets_at = *file->OffsetOf(offsets->data());
  }
  // A copy of the file whose row 3 of batch 1 ends far past the values.
  const std::string bad = io::JoinPath(dir_, "bad.arrow");
  ASSERT_OK_AND_ASSIGN(auto bytes,
                       io::Local()->ReadFile(io::JoinPath(dir_, fragment.path)));
  std::string copy = bytes->ToString();
  const int32_t huge = 1 << 30;
  std::memcpy(copy.data() + offsets_at + 4 * 4, &huge, 4);
  ASSERT_OK(testing::WriteFile(bad, copy));

  auto file = Cached(fragment, "bad", bad);
  ASSERT_OK_AND_ASSIGN(auto data, OpenCachedFragmentFile(file, fragment.path, Schema(),
                                                         kRows, *fragment.digest));
  RowFetchPlan fine;
  fine.AddRows(file.get(), data->columns[1][2]->data(), std::vector<int64_t>{10, 20});
  ASSERT_OK(fine.Run());
  RowFetchPlan plan;
  plan.AddRows(file.get(), data->columns[1][2]->data(), std::vector<int64_t>{3});
  auto st = plan.Run();
  ASSERT_TRUE(st.IsInvalid()) << st.ToString();
  EXPECT_EQ(GetErrorKind(st), ErrorKind::kCorruption);
  EXPECT_NE(st.message().find(fragment.path), std::string::npos) << st.ToString();
}

TEST_F(LazyFragmentTest, DictionariesAreReadWholeAndValidated) {
  auto schema = arrow::schema(
      {arrow::field("d", arrow::dictionary(arrow::int32(), arrow::utf8()))});
  auto dict = arrow::json::DictArrayFromJSONString(
                  arrow::dictionary(arrow::int32(), arrow::utf8()), "[0, 1, 0, null]",
                  "[\"x\", \"y\"]")
                  .ValueOrDie();
  auto batch = arrow::RecordBatch::Make(schema, 4, {dict});
  auto reader = arrow::RecordBatchReader::Make({batch}, schema).ValueOrDie();
  auto written = WriteFragments(*io::Local(), dir_, schema, reader.get());
  ASSERT_OK(written.status());
  const WrittenFragment& fragment = written->at(0);
  auto file = Cached(fragment, "dict");
  ASSERT_OK_AND_ASSIGN(auto data, OpenCachedFragmentFile(file, fragment.path, schema, 4,
                                                         *fragment.digest));
  EXPECT_EQ(data->cached, nullptr);  // every byte is readable
  EXPECT_EQ(file->PresentBlocks(), Blocks(fragment.digest->size));
  ASSERT_EQ(data->batches.size(), 1u);
  EXPECT_TRUE(data->batches[0]->Equals(*batch));
}

TEST_F(LazyFragmentTest, ASizeOrSchemaMismatchIsCorruption) {
  const WrittenFragment fragment = Write(Data());
  auto file = Cached(fragment, "mismatch");
  FileDigest wrong = *fragment.digest;
  wrong.size += 1;
  auto opened = OpenCachedFragmentFile(file, fragment.path, Schema(), kRows, wrong);
  EXPECT_EQ(GetErrorKind(opened.status()), ErrorKind::kCorruption)
      << opened.status().ToString();
  auto other = arrow::schema({arrow::field("id", arrow::int64(), false)});
  opened = OpenCachedFragmentFile(file, fragment.path, other, kRows, *fragment.digest);
  EXPECT_EQ(GetErrorKind(opened.status()), ErrorKind::kCorruption);
  EXPECT_NE(opened.status().message().find("schema"), std::string::npos);
  opened =
      OpenCachedFragmentFile(file, fragment.path, Schema(), kRows + 1, *fragment.digest);
  EXPECT_EQ(GetErrorKind(opened.status()), ErrorKind::kCorruption);
}

TEST(ParseIpcFooter, RejectsWhatDoesNotFit) {
  const std::vector<uint8_t> empty;
  EXPECT_TRUE(ParseIpcFooter(empty, 100).status().IsInvalid());
  // A root table offset past the end.
  const std::vector<uint8_t> root = {200, 0, 0, 0, 0, 0, 0, 0};
  EXPECT_TRUE(ParseIpcFooter(root, 100).status().IsInvalid());
}

}  // namespace
}  // namespace riffledb::format
