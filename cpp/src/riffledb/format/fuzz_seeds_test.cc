// Regenerates the committed seed corpora of the fuzz targets (testdata/fuzz/<target>/).
// Disabled: run once by hand after a format change with
//   format_test --gtest_also_run_disabled_tests --gtest_filter='FuzzSeeds.*'
// and check that the seeds still pass the targets.
#include <arrow/array.h>
#include <arrow/builder.h>
#include <arrow/record_batch.h>
#include <arrow/util/key_value_metadata.h>

#include <filesystem>
#include <fstream>

#include "riffledb/format/fragment.h"
#include "riffledb/format/manifest.h"
#include "riffledb/io/filesystem.h"
#include "riffledb/testing/files.h"
#include "riffledb/testing/testing.h"

namespace riffledb::format {
namespace {

const std::filesystem::path kFuzzDir =
    std::filesystem::path(RIFFLEDB_COMPONENT_DIR) / "testdata" / "fuzz";

void WriteSeed(const std::string& target, const std::string& name,
               const std::string& bytes) {
  std::filesystem::create_directories(kFuzzDir / target);
  std::ofstream(kFuzzDir / target / name, std::ios::binary | std::ios::trunc) << bytes;
  ASSERT_LT(bytes.size(), 20u * 1024) << name;
}

std::shared_ptr<arrow::Schema> RichSchema() {
  return arrow::schema(
      {arrow::field("id", arrow::int64(), false), arrow::field("f16", arrow::float16()),
       arrow::field("s", arrow::utf8()), arrow::field("lb", arrow::large_binary()),
       arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MILLI, "UTC")),
       arrow::field("dec", arrow::decimal128(10, 2)),
       arrow::field("l", arrow::list(arrow::int32())),
       arrow::field("vec", arrow::fixed_size_list(arrow::float32(), 512)),
       arrow::field("st", arrow::struct_({arrow::field("a", arrow::boolean()),
                                          arrow::field("b", arrow::utf8())})),
       arrow::field("m", arrow::map(arrow::utf8(), arrow::int64())),
       arrow::field("cat", arrow::dictionary(arrow::int32(), arrow::utf8()))},
      arrow::key_value_metadata({"riffledb"}, {"seed"}));
}

TEST(FuzzSeeds, DISABLED_Generate) {
  // Manifests.
  Manifest m;
  m.version = 1;
  m.timestamp_ms = 1700000000000;
  m.operation = "create";
  m.schema = arrow::schema({arrow::field("x", arrow::int64())});
  ASSERT_OK_AND_ASSIGN(auto text, SerializeManifest(m));
  WriteSeed("manifest_fuzz", "empty_table.json", text);
  m.version = 4;
  m.operation = "delete";
  m.schema = RichSchema();
  m.next_fragment_id = 3;
  m.fragments = {{0, "data/0123456789abcdef0123456789abcdef.arrow", 1000, std::nullopt,
                  std::nullopt, std::nullopt},
                 {2, "data/fedcba9876543210fedcba9876543210.arrow", 20,
                  DeletionFileInfo{"_deletions/00112233445566778899aabbccddeeff.arrow", 2,
                                   std::nullopt},
                  std::nullopt, std::nullopt}};
  ASSERT_OK_AND_ASSIGN(text, SerializeManifest(m));
  WriteSeed("manifest_fuzz", "rich_schema.json", text);
  ASSERT_OK_AND_ASSIGN(text, SerializeManifestV1(m));
  WriteSeed("manifest_fuzz", "v1_rich_schema.json", text);
  // Format 2's body after its checksum header (the target signs it), with digests and
  // history; a segment file of each kind.
  m.fragments.update(0, [&](FragmentInfo& f) {
    f.digest = FileDigest{123456, 0x89abcdef};
  });
  m.history = {{1, 1700000000000, "create"}, {3, 1700000000001, "append"}};
  ASSERT_OK_AND_ASSIGN(text, SerializeManifest(m));
  WriteSeed("manifest_fuzz", "v2_body.json", text.substr(26));
  ASSERT_OK_AND_ASSIGN(text, SerializeFragmentSegment(m.fragments.to_vector()));
  WriteSeed("manifest_fuzz", "fragment_segment.json", text);
  ASSERT_OK_AND_ASSIGN(text, SerializeHistorySegment(m.history.to_vector()));
  WriteSeed("manifest_fuzz", "history_segment.json", text);

  // Fragments.
  auto schema = RichSchema();
  std::vector<std::shared_ptr<arrow::RecordBatch>> batches;
  // Build with builders: small, two batches so the file has a dictionary delta.
  for (int b = 0; b < 2; ++b) {
    std::vector<std::shared_ptr<arrow::Array>> columns;
    for (const auto& field : schema->fields()) {
      std::unique_ptr<arrow::ArrayBuilder> builder;
      ASSERT_OK_AND_ASSIGN(builder, arrow::MakeBuilder(field->type()));
      for (int i = 0; i < 3; ++i) {
        int64_t v = b * 3 + i;
        if (field->nullable() && v % 4 == 3) {
          ASSERT_OK(builder->AppendNull());
          continue;
        }
        std::shared_ptr<arrow::Scalar> scalar;
        switch (field->type()->id()) {
          case arrow::Type::INT64:
            scalar = arrow::MakeScalar(v);
            break;
          case arrow::Type::STRING:
            scalar = arrow::MakeScalar("s" + std::to_string(v));
            break;
          case arrow::Type::DICTIONARY: {
            auto dict =
                static_cast<arrow::DictionaryBuilder<arrow::StringType>*>(builder.get());
            ASSERT_OK(dict->Append("cat" + std::to_string(v % (2 + b))));
            continue;
          }
          default:
            ASSERT_OK(builder->AppendEmptyValue());
            continue;
        }
        ASSERT_OK(builder->AppendScalar(*scalar));
      }
      std::shared_ptr<arrow::Array> array;
      ASSERT_OK(builder->Finish(&array));
      columns.push_back(array);
    }
    batches.push_back(arrow::RecordBatch::Make(schema, 3, columns));
    ASSERT_OK(batches.back()->ValidateFull());
  }
  std::string dir = (kFuzzDir / "tmp").string();
  ASSERT_OK(io::Local()->DeleteTree(dir));
  FragmentWriteOptions options;
  options.min_rows_per_batch = 3;
  auto reader = *arrow::RecordBatchReader::Make(batches, schema);
  ASSERT_OK_AND_ASSIGN(auto written,
                       WriteFragments(*io::Local(), dir, schema, reader.get(), options));
  ASSERT_EQ(written.size(), 1u);
  ASSERT_OK_AND_ASSIGN(auto bytes,
                       io::Local()->ReadFile(io::JoinPath(dir, written[0].path)));
  WriteSeed("fragment_fuzz", "rich_types.arrow", bytes->ToString());

  auto simple = arrow::schema(
      {arrow::field("x", arrow::int32()), arrow::field("y", arrow::utf8())});
  arrow::Int32Builder xs;
  arrow::StringBuilder ys;
  for (int i = 0; i < 10; ++i) {
    ASSERT_OK(xs.Append(i));
    ASSERT_OK(i % 3 ? ys.Append(std::string(i, 'y')) : ys.AppendNull());
  }
  auto batch = arrow::RecordBatch::Make(simple, 10, {*xs.Finish(), *ys.Finish()});
  reader = *arrow::RecordBatchReader::Make({batch}, simple);
  ASSERT_OK_AND_ASSIGN(written,
                       WriteFragments(*io::Local(), dir, simple, reader.get(), options));
  ASSERT_OK_AND_ASSIGN(bytes, io::Local()->ReadFile(io::JoinPath(dir, written[0].path)));
  WriteSeed("fragment_fuzz", "simple.arrow", bytes->ToString());

  std::string deletion = io::JoinPath(dir, "deletion.arrow");
  ASSERT_OK(WriteDeletionFile(*io::Local(), deletion, {1, 4, 5, 9}));
  ASSERT_OK_AND_ASSIGN(bytes, io::Local()->ReadFile(deletion));
  WriteSeed("fragment_fuzz", "deletion.arrow", bytes->ToString());
  ASSERT_OK(io::Local()->DeleteTree(dir));
}

TEST(FuzzSeeds, DISABLED_GenerateWrittenFragments) {
  WrittenFragments w;
  w.table = "images";
  w.base_version = 3;
  w.schema = RichSchema();
  w.fragments = {{"data/0123456789abcdef0123456789abcdef.arrow", 1000,
                  FileDigest{123456, 0x89abcdef}, 2},
                 {"data/fedcba9876543210fedcba9876543210.arrow", 20,
                  FileDigest{4096, 0x01234567}, 1}};
  ASSERT_OK_AND_ASSIGN(auto text, w.ToJson());
  WriteSeed("written_fragments_fuzz", "two_files.json", text);
  w.schema = arrow::schema({arrow::field("x", arrow::int64())});
  w.fragments = {{"data/0", 5, std::nullopt, 1}};
  ASSERT_OK_AND_ASSIGN(text, w.ToJson());
  WriteSeed("written_fragments_fuzz", "memory_file.json", text);
  w.fragments.clear();
  ASSERT_OK_AND_ASSIGN(text, w.ToJson());
  WriteSeed("written_fragments_fuzz", "no_file.json", text);
}

}  // namespace
}  // namespace riffledb::format
