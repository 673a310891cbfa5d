#include "riffledb/format/fragment.h"

#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/record_batch.h>
#include <arrow/scalar.h>
#include <arrow/table.h>
#include <arrow/util/key_value_metadata.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "riffledb/io/filesystem.h"
#include "riffledb/testing/files.h"
#include "riffledb/testing/testing.h"
#include "riffledb/util/status.h"

namespace riffledb::format {
namespace {

// The one comparison of a file with its description (both stores call it): each
// difference, first one first, in exact words.
TEST(CheckDescribedFragment, NamesTheFirstDifference) {
  auto schema = arrow::schema({arrow::field("id", arrow::int64())});
  auto other = arrow::schema({arrow::field("id", arrow::int32())});
  const WrittenFragment described{"data/f.arrow", 10, FileDigest{500, 7}, 2};
  const std::string prefix =
      "Fragment file 'data/f.arrow' does not match its description: ";
  ASSERT_OK(CheckDescribedFragment(described, *schema, {}));
  ASSERT_OK(CheckDescribedFragment(
      described, *schema, {.size = 500, .schema = schema, .num_batches = 2, .rows = 10}));
  auto message = [&](const FragmentFacts& found) {
    return CheckDescribedFragment(described, *schema, found).message();
  };
  EXPECT_EQ(
      message({.size = 499, .schema = nullptr, .num_batches = 3, .rows = std::nullopt}),
      prefix + "it has 499 bytes, the description says 500");
  EXPECT_EQ(message({.size = std::nullopt,
                     .schema = other,
                     .num_batches = 3,
                     .rows = std::nullopt}),
            prefix + "its schema is\nid: int32\nthe description says\nid: int64");
  EXPECT_EQ(
      message({.size = std::nullopt, .schema = nullptr, .num_batches = 3, .rows = 9}),
      prefix + "it has 3 record batches, the description says 2");
  EXPECT_EQ(message({.size = std::nullopt,
                     .schema = nullptr,
                     .num_batches = std::nullopt,
                     .rows = 9}),
            prefix + "it has 9 rows, the description says 10");
  // A description without a digest (a memory table's) has no size to compare.
  WrittenFragment no_digest = described;
  no_digest.digest.reset();
  ASSERT_OK(CheckDescribedFragment(
      no_digest, *schema,
      {.size = 1, .schema = nullptr, .num_batches = std::nullopt, .rows = std::nullopt}));
  EXPECT_EQ(
      DescribedFragmentMissing("data/f.arrow", "memory://t").message(),
      "Fragment file 'data/f.arrow' does not exist in the table at 'memory://t': it "
      "was written for another table, or removed by cleanup_old_versions");
}

class FragmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/riffledb_frag_XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
  }
  void TearDown() override { ASSERT_OK(io::Local()->DeleteTree(dir_)); }

  std::vector<std::string> DataFiles() {
    return testing::ListNames(io::JoinPath(dir_, "data"));
  }

  std::string dir_;
};

std::shared_ptr<arrow::Schema> TestSchema() {
  return arrow::schema(
      {arrow::field("id", arrow::int64(), false), arrow::field("name", arrow::utf8()),
       arrow::field("cat", arrow::dictionary(arrow::int32(), arrow::utf8())),
       arrow::field("vec", arrow::fixed_size_list(arrow::float32(), 4))},
      arrow::key_value_metadata({"k"}, {"v"}));
}

// Rows [start, start + n) with a dictionary of its own per batch (so coalescing must
// unify).
std::shared_ptr<arrow::RecordBatch> MakeBatch(int64_t start, int64_t n) {
  arrow::Int64Builder ids;
  arrow::StringBuilder names;
  arrow::StringDictionary32Builder cats;
  arrow::FixedSizeListBuilder vecs(arrow::default_memory_pool(),
                                   std::make_shared<arrow::FloatBuilder>(), 4);
  auto* floats = static_cast<arrow::FloatBuilder*>(vecs.value_builder());
  for (int64_t i = start; i < start + n; ++i) {
    EXPECT_OK(ids.Append(i));
    if (i % 7 == 0) {
      EXPECT_OK(names.AppendNull());
    } else {
      EXPECT_OK(names.Append("row" + std::to_string(i)));
    }
    EXPECT_OK(cats.Append("c" + std::to_string((i * 13) % 5)));
    EXPECT_OK(vecs.Append());
    for (int k = 0; k < 4; ++k) EXPECT_OK(floats->Append(static_cast<float>(i * 4 + k)));
  }
  std::shared_ptr<arrow::Array> a, b, c, d;
  EXPECT_OK(ids.Finish(&a));
  EXPECT_OK(names.Finish(&b));
  EXPECT_OK(cats.Finish(&c));
  EXPECT_OK(vecs.Finish(&d));
  return arrow::RecordBatch::Make(TestSchema(), n, {a, b, c, d});
}

std::shared_ptr<arrow::RecordBatchReader> MakeReader(
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches,
    std::shared_ptr<arrow::Schema> schema = TestSchema()) {
  return *arrow::RecordBatchReader::Make(std::move(batches), std::move(schema));
}

// Checks that `fragment` holds rows [start, start + n) of MakeBatch's data.
void ExpectRows(const FragmentData& fragment, int64_t start, int64_t n) {
  ASSERT_EQ(fragment.num_rows(), n);
  ASSERT_OK_AND_ASSIGN(auto table, arrow::Table::FromRecordBatches(fragment.batches));
  ASSERT_OK_AND_ASSIGN(auto expected,
                       arrow::Table::FromRecordBatches({MakeBatch(start, n)}));
  // Dictionaries differ in layout; compare decoded values through the id column and a
  // cast.
  ASSERT_TRUE(table->column(0)->Equals(*expected->column(0)));
  ASSERT_TRUE(table->column(1)->Equals(*expected->column(1)));
  ASSERT_TRUE(table->column(3)->Equals(*expected->column(3)));
  int64_t row = 0;
  for (const auto& chunk : table->column(2)->chunks()) {
    const auto& dict = static_cast<const arrow::DictionaryArray&>(*chunk);
    const auto& values = static_cast<const arrow::StringArray&>(*dict.dictionary());
    for (int64_t i = 0; i < dict.length(); ++i, ++row) {
      ASSERT_EQ(values.GetString(dict.GetValueIndex(i)),
                "c" + std::to_string(((start + row) * 13) % 5));
    }
  }
}

// Regression (issue #10): a chunked `binary` column of more than 2 GiB in small batches
// could not be written, because its batches were concatenated past the 2 GiB that 32-bit
// offsets address. Coalescing now stops at max_bytes_per_batch; shown here with a small
// bound.
TEST(BatchCoalescer, StopsAtTheByteBound) {
  auto schema = arrow::schema({arrow::field("blob", arrow::binary())});
  auto blobs = [&](int64_t n, size_t bytes) {
    arrow::BinaryBuilder builder;
    for (int64_t i = 0; i < n; ++i) EXPECT_OK(builder.Append(std::string(bytes, 'x')));
    return arrow::RecordBatch::Make(schema, n, {builder.Finish().ValueOrDie()});
  };
  FragmentWriteOptions options;
  options.min_rows_per_batch = 1000;
  options.max_bytes_per_batch = 10'000;
  std::vector<int64_t> emitted;
  int fragments = 0;
  BatchCoalescer coalescer(
      options,
      [&](std::shared_ptr<arrow::RecordBatch> batch) {
        EXPECT_OK(batch->ValidateFull());
        emitted.push_back(batch->num_rows());
        return arrow::Status::OK();
      },
      [&] {
        ++fragments;
        return arrow::Status::OK();
      });
  // 3 rows of 1,000 bytes per input batch: three inputs fit in 10,000 bytes, a fourth
  // would not.
  for (int i = 0; i < 7; ++i) ASSERT_OK(coalescer.Add(blobs(3, 1000)));
  // One input batch above the bound alone is kept whole, not split.
  ASSERT_OK(coalescer.Add(blobs(20, 1000)));
  ASSERT_OK(coalescer.Finish());
  EXPECT_EQ(emitted, (std::vector<int64_t>{9, 9, 3, 20}));
  EXPECT_EQ(fragments, 1);
}

TEST(BatchCoalescer, ValidatesOptions) {
  FragmentWriteOptions options;
  options.max_bytes_per_batch = 0;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "max_bytes_per_batch",
                             BatchCoalescer::Validate(options));
  options = {};
  options.max_rows_per_fragment = 0;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "max_rows_per_fragment",
                             BatchCoalescer::Validate(options));
}

TEST_F(FragmentTest, RoundTripCoalescesTinyBatches) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> input;
  int64_t rows = 0;
  for (int i = 0; i < 300; ++i) {
    int64_t n = i % 3;  // 0, 1 or 2 rows: includes empty batches
    input.push_back(MakeBatch(rows, n));
    rows += n;
  }
  FragmentWriteOptions options;
  options.min_rows_per_batch = 64;
  auto reader = MakeReader(input);
  ASSERT_OK_AND_ASSIGN(auto written, WriteFragments(*io::Local(), dir_, TestSchema(),
                                                    reader.get(), options));
  ASSERT_EQ(written.size(), 1u);  // differing dictionaries were unified, not split
  EXPECT_EQ(written[0].physical_rows, rows);
  EXPECT_EQ(written[0].path.rfind("data/", 0), 0u);
  EXPECT_EQ(written[0].path.size(), 5 + 32 + 6u);

  ASSERT_OK_AND_ASSIGN(auto fragment,
                       OpenFragmentFile(*io::Local(), io::JoinPath(dir_, written[0].path),
                                        TestSchema(), rows));
  ExpectRows(*fragment, 0, rows);
  // Coalesced: every batch but the last has at least 64 rows.
  ASSERT_EQ(fragment->batches.size(), static_cast<size_t>((rows + 63) / 64));
  for (size_t i = 0; i + 1 < fragment->batches.size(); ++i) {
    EXPECT_GE(fragment->batches[i]->num_rows(), 64);
    EXPECT_EQ(fragment->batch_offsets[i + 1] - fragment->batch_offsets[i],
              fragment->batches[i]->num_rows());
  }
  EXPECT_EQ(fragment->batch_offsets.back(), rows);
  // The schema written is the table schema, metadata included.
  EXPECT_TRUE(fragment->batches[0]->schema()->Equals(*TestSchema(), true));
}

TEST_F(FragmentTest, SplitsAtMaxRowsPerFragment) {
  std::vector<std::shared_ptr<arrow::RecordBatch>> input;
  for (int64_t start = 0; start < 1000; start += 90) {
    input.push_back(MakeBatch(start, std::min<int64_t>(90, 1000 - start)));
  }
  FragmentWriteOptions options;
  options.max_rows_per_fragment = 300;
  options.min_rows_per_batch = 100;
  auto reader = MakeReader(input);
  ASSERT_OK_AND_ASSIGN(auto written, WriteFragments(*io::Local(), dir_, TestSchema(),
                                                    reader.get(), options));
  ASSERT_EQ(written.size(), 4u);
  std::vector<int64_t> sizes;
  int64_t start = 0;
  for (const auto& w : written) {
    sizes.push_back(w.physical_rows);
    ASSERT_OK_AND_ASSIGN(auto fragment,
                         OpenFragmentFile(*io::Local(), io::JoinPath(dir_, w.path),
                                          TestSchema(), w.physical_rows));
    ExpectRows(*fragment, start, w.physical_rows);
    start += w.physical_rows;
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{300, 300, 300, 100}));
  EXPECT_EQ(DataFiles().size(), 4u);
}

TEST_F(FragmentTest, LargeBatchIsNotCopied) {
  auto batch = MakeBatch(0, 500);
  auto reader = MakeReader({batch});
  ASSERT_OK_AND_ASSIGN(auto written,
                       WriteFragments(*io::Local(), dir_, TestSchema(), reader.get()));
  ASSERT_EQ(written.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto fragment,
                       OpenFragmentFile(*io::Local(), io::JoinPath(dir_, written[0].path),
                                        TestSchema(), 500));
  EXPECT_EQ(fragment->batches.size(), 1u);
  ExpectRows(*fragment, 0, 500);
}

TEST_F(FragmentTest, EmptyInputWritesNothing) {
  auto reader = MakeReader({MakeBatch(0, 0)});
  ASSERT_OK_AND_ASSIGN(auto written,
                       WriteFragments(*io::Local(), dir_, TestSchema(), reader.get()));
  EXPECT_TRUE(written.empty());
  EXPECT_TRUE(DataFiles().empty());
}

TEST_F(FragmentTest, SchemaMismatchRemovesWrittenFiles) {
  auto other = arrow::schema({arrow::field("id", arrow::int32())});
  auto bad = arrow::RecordBatch::Make(
      other, 1, {*arrow::MakeArrayFromScalar(arrow::Int32Scalar(1), 1)});
  // The reader claims the table schema but yields a different batch after some data.
  class LyingReader : public arrow::RecordBatchReader {
   public:
    explicit LyingReader(std::vector<std::shared_ptr<arrow::RecordBatch>> batches)
        : batches_(std::move(batches)) {}
    std::shared_ptr<arrow::Schema> schema() const override { return TestSchema(); }
    arrow::Status ReadNext(std::shared_ptr<arrow::RecordBatch>* out) override {
      *out = next_ < batches_.size() ? batches_[next_++] : nullptr;
      return arrow::Status::OK();
    }

   private:
    std::vector<std::shared_ptr<arrow::RecordBatch>> batches_;
    size_t next_ = 0;
  };
  FragmentWriteOptions options;
  options.max_rows_per_fragment = 100;
  options.min_rows_per_batch = 10;
  LyingReader reader({MakeBatch(0, 250), bad});
  auto result = WriteFragments(*io::Local(), dir_, TestSchema(), &reader, options);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, TestSchema()->ToString(), result);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, other->ToString(), result);
  // Bad input to a write is not a damaged file.
  EXPECT_EQ(GetErrorKind(result.status()), std::nullopt);
  EXPECT_TRUE(DataFiles().empty());

  // A reader whose declared schema differs fails before writing anything.
  auto reader2 = MakeReader({bad}, other);
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "id: int32",
      WriteFragments(*io::Local(), dir_, TestSchema(), reader2.get()));
  EXPECT_TRUE(DataFiles().empty());

  // Nullability counts.
  auto non_null = arrow::schema({arrow::field("id", arrow::int32(), false)});
  auto reader3 = MakeReader({}, non_null);
  ASSERT_RAISES(Invalid, WriteFragments(*io::Local(), dir_, other, reader3.get()));
}

TEST_F(FragmentTest, RejectsBatchWhoseColumnsContradictItsSchema) {
  // RecordBatch::Make does not check: int8 dictionary indices under an int32 schema.
  arrow::StringDictionaryBuilder adaptive;  // picks int8 indices
  ASSERT_OK(adaptive.Append("a"));
  std::shared_ptr<arrow::Array> cat;
  ASSERT_OK(adaptive.Finish(&cat));
  auto good = MakeBatch(0, 1);
  auto lying = arrow::RecordBatch::Make(
      TestSchema(), 1, {good->column(0), good->column(1), cat, good->column(3)});
  auto reader = MakeReader({good, lying});
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid, "Invalid input batch",
      WriteFragments(*io::Local(), dir_, TestSchema(), reader.get()));
  EXPECT_TRUE(DataFiles().empty());
}

TEST_F(FragmentTest, RejectsBadOptions) {
  auto reader = MakeReader({MakeBatch(0, 1)});
  FragmentWriteOptions options;
  options.max_rows_per_fragment = 0;
  ASSERT_RAISES(Invalid,
                WriteFragments(*io::Local(), dir_, TestSchema(), reader.get(), options));
  options.max_rows_per_fragment = (int64_t{1} << 32) + 1;
  ASSERT_RAISES(Invalid,
                WriteFragments(*io::Local(), dir_, TestSchema(), reader.get(), options));
  options = {};
  options.min_rows_per_batch = 0;
  ASSERT_RAISES(Invalid,
                WriteFragments(*io::Local(), dir_, TestSchema(), reader.get(), options));
}

class CorruptFragmentTest : public FragmentTest {
 protected:
  void SetUp() override {
    FragmentTest::SetUp();
    auto reader = MakeReader({MakeBatch(0, 200)});
    FragmentWriteOptions options;
    options.min_rows_per_batch = 50;
    auto written =
        WriteFragments(*io::Local(), dir_, TestSchema(), reader.get(), options);
    ASSERT_TRUE(written.ok());
    path_ = io::JoinPath(dir_, (*written)[0].path);
    auto data = io::Local()->ReadFile(path_);
    ASSERT_TRUE(data.ok());
    bytes_ = (*data)->ToString();
  }
  std::string Write(const std::string& bytes) {
    std::string path = io::JoinPath(dir_, "corrupt.arrow");
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    return path;
  }

  std::string path_;
  std::string bytes_;
};

TEST_F(CorruptFragmentTest, WrongRowCount) {
  ASSERT_OK(OpenFragmentFile(*io::Local(), path_, TestSchema(), 200).status());
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "has 200 rows, the manifest says 201",
                             OpenFragmentFile(*io::Local(), path_, TestSchema(), 201));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, path_,
                             OpenFragmentFile(*io::Local(), path_, TestSchema(), 201));
  EXPECT_EQ(
      GetErrorKind(OpenFragmentFile(*io::Local(), path_, TestSchema(), 201).status()),
      ErrorKind::kCorruption);
}

TEST_F(CorruptFragmentTest, WrongSchema) {
  auto other = arrow::schema({arrow::field("id", arrow::int64(), false)});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, path_,
                             OpenFragmentFile(*io::Local(), path_, other, 200));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "does not match",
                             OpenFragmentFile(*io::Local(), path_, other, 200));
  EXPECT_EQ(GetErrorKind(OpenFragmentFile(*io::Local(), path_, other, 200).status()),
            ErrorKind::kCorruption);
  // Metadata is ignored.
  ASSERT_OK(
      OpenFragmentFile(*io::Local(), path_, TestSchema()->WithMetadata(nullptr), 200)
          .status());
}

TEST_F(CorruptFragmentTest, MissingFile) {
  ASSERT_RAISES_WITH_MESSAGE(
      IOError, "nope.arrow",
      OpenFragmentFile(*io::Local(), io::JoinPath(dir_, "nope.arrow"), TestSchema(), 1));
}

TEST_F(CorruptFragmentTest, TruncatedFiles) {
  for (size_t size : {size_t{0}, size_t{4}, size_t{10}, bytes_.size() / 3,
                      bytes_.size() / 2, bytes_.size() - 10, bytes_.size() - 1}) {
    SCOPED_TRACE(size);
    std::string path = Write(bytes_.substr(0, size));
    auto result = OpenFragmentFile(*io::Local(), path, TestSchema(), 200);
    ASSERT_FALSE(result.ok());
    EXPECT_NE(result.status().message().find(path), std::string::npos)
        << result.status().ToString();
    EXPECT_EQ(GetErrorKind(result.status()), ErrorKind::kCorruption)
        << result.status().ToString();
  }
}

// Regression (issue #10): the leading ARROW1 magic was not checked, so a file whose head
// was overwritten was read from its footer alone.
TEST_F(CorruptFragmentTest, LeadingMagicIsChecked) {
  std::string corrupt = bytes_;
  corrupt[0] = 'X';
  std::string path = Write(corrupt);
  auto result = OpenFragmentFile(*io::Local(), path, TestSchema(), 200);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "does not start with the Arrow IPC file magic",
                             result);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, path, result);
  EXPECT_EQ(GetErrorKind(result.status()), ErrorKind::kCorruption);
}

TEST_F(CorruptFragmentTest, FlippedBytesNeverCrash) {
  // Every byte position flipped (step keeps the test quick): either the file still reads
  // as 200 valid rows (the flip hit padding or a value) or the error names the file.
  int failures = 0;
  for (size_t pos = 0; pos < bytes_.size(); pos += 5) {
    std::string corrupt = bytes_;
    corrupt[pos] = static_cast<char>(corrupt[pos] ^ 0x5a);
    std::string path = Write(corrupt);
    auto result = OpenFragmentFile(*io::Local(), path, TestSchema(), 200);
    if (!result.ok()) {
      ++failures;
      EXPECT_NE(result.status().message().find(path), std::string::npos)
          << result.status().ToString();
    } else {
      EXPECT_EQ((*result)->num_rows(), 200);
    }
  }
  EXPECT_GT(failures, 0);
}

TEST_F(FragmentTest, DeletionFileRoundTrip) {
  std::string path = io::JoinPath(dir_, "_deletions/d1.arrow");
  std::vector<uint32_t> rows = {0, 3, 4, 99, 4000000000u};
  // An exclusive create never makes its directory (a table's store does).
  ASSERT_OK(io::Local()->CreateDirs(io::JoinPath(dir_, "_deletions")));
  ASSERT_OK(WriteDeletionFile(*io::Local(), path, rows));
  ASSERT_OK_AND_ASSIGN(auto back,
                       ReadDeletionFile(*io::Local(), path, int64_t{1} << 32, 5));
  EXPECT_EQ(back, rows);
  // Exclusive: a second write of the same path fails.
  ASSERT_RAISES(AlreadyExists, WriteDeletionFile(*io::Local(), path, {1}));
  // Empty deletion file.
  std::string empty = io::JoinPath(dir_, "_deletions/empty.arrow");
  ASSERT_OK(WriteDeletionFile(*io::Local(), empty, {}));
  ASSERT_OK_AND_ASSIGN(back, ReadDeletionFile(*io::Local(), empty, 10, 0));
  EXPECT_TRUE(back.empty());
}

TEST_F(FragmentTest, DeletionFileValidation) {
  std::string path = io::JoinPath(dir_, "_deletions/d.arrow");
  ASSERT_OK(io::Local()->CreateDirs(io::JoinPath(dir_, "_deletions")));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "strictly increasing",
                             WriteDeletionFile(*io::Local(), path, {3, 3}));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "strictly increasing",
                             WriteDeletionFile(*io::Local(), path, {5, 2}));
  ASSERT_OK(WriteDeletionFile(*io::Local(), path, {1, 2, 7}));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "row 7 is beyond the fragment's 7 rows",
                             ReadDeletionFile(*io::Local(), path, 7, 3));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "the manifest says 4",
                             ReadDeletionFile(*io::Local(), path, 8, 4));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, path, ReadDeletionFile(*io::Local(), path, 8, 4));
  ASSERT_RAISES_WITH_MESSAGE(
      IOError, "missing.arrow",
      ReadDeletionFile(*io::Local(), io::JoinPath(dir_, "missing.arrow"), 8, 1));

  // A fragment file is not a deletion file.
  auto reader = MakeReader({MakeBatch(0, 3)});
  ASSERT_OK_AND_ASSIGN(auto written,
                       WriteFragments(*io::Local(), dir_, TestSchema(), reader.get()));
  std::string fragment = io::JoinPath(dir_, written[0].path);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "Corrupt deletion file",
                             ReadDeletionFile(*io::Local(), fragment, 8, 3));

  // Truncated and flipped deletion files give errors naming the file.
  ASSERT_OK_AND_ASSIGN(auto data, io::Local()->ReadFile(path));
  std::string bytes = data->ToString();
  for (size_t pos = 0; pos < bytes.size(); ++pos) {
    for (bool truncate : {false, true}) {
      std::string corrupt = truncate ? bytes.substr(0, pos) : bytes;
      if (!truncate) corrupt[pos] = static_cast<char>(corrupt[pos] ^ 0xff);
      std::string bad = io::JoinPath(dir_, "bad.arrow");
      std::ofstream(bad, std::ios::binary | std::ios::trunc) << corrupt;
      auto result = ReadDeletionFile(*io::Local(), bad, 8, 3);
      if (!result.ok()) {
        EXPECT_NE(result.status().message().find(bad), std::string::npos)
            << result.status().ToString();
      }
    }
  }
}

}  // namespace
}  // namespace riffledb::format
