// Fragment descriptions (WrittenFragments::ToJson / FromJson): untrusted text that
// crosses process boundaries in distributed writes.
#include <arrow/type.h>
#include <arrow/util/key_value_metadata.h>
#include <gmock/gmock.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "riffledb/format/manifest.h"
#include "riffledb/testing/testing.h"

namespace riffledb::format {
namespace {

using Json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kPrefix[] = "Invalid fragment description: ";

WrittenFragments Sample() {
  WrittenFragments w;
  w.table = "images";
  w.base_version = 3;
  w.schema = arrow::schema(
      {arrow::field("id", arrow::int64(), /*nullable=*/false),
       arrow::field("vec", arrow::fixed_size_list(arrow::float32(), 4)),
       arrow::field("cat", arrow::dictionary(arrow::int32(), arrow::utf8()))},
      arrow::key_value_metadata({"source"}, {"camera"}));
  w.fragments.push_back({"data/0123456789abcdef0123456789abcdef.arrow", 1000,
                         FileDigest{123456, 0x89abcdef}, 2});
  w.fragments.push_back({"data/fedcba9876543210fedcba9876543210.arrow", 20,
                         FileDigest{4096, 0x01234567}, 1});
  return w;
}

Json SampleJson() { return Json::parse(Sample().ToJson().ValueOrDie()); }

TEST(WrittenFragments, RoundTrips) {
  auto w = Sample();
  ASSERT_OK_AND_ASSIGN(std::string text, w.ToJson());
  EXPECT_EQ(text.find('\n'), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto back, WrittenFragments::FromJson(text));
  EXPECT_EQ(back.table, w.table);
  EXPECT_EQ(back.base_version, w.base_version);
  EXPECT_EQ(back.fragments, w.fragments);
  EXPECT_TRUE(back.schema->Equals(*w.schema, /*check_metadata=*/true));
  EXPECT_EQ(back.num_rows(), 1020);
  // The layout docs/format.md describes.
  Json doc = Json::parse(text);
  EXPECT_EQ(doc["kind"], "riffledb.written_fragments");
  EXPECT_EQ(doc["format_version"], kFormatVersion);
  EXPECT_EQ(doc["fragments"][0],
            Json::parse(R"({"path": "data/0123456789abcdef0123456789abcdef.arrow",
                            "physical_rows": 1000, "batches": 2, "size": 123456,
                            "crc32c": "89abcdef"})"));
  // Memory tables' files have no digest.
  w.fragments[0].digest.reset();
  ASSERT_OK_AND_ASSIGN(back, WrittenFragments::FromJson(w.ToJson().ValueOrDie()));
  EXPECT_EQ(back.fragments, w.fragments);
}

// One owner of the data/ directory's name: what both stores write and what a
// description may name.
TEST(WrittenFragments, DataFilePathsAreDirectlyInData) {
  EXPECT_EQ(kDataDir, "data");
  EXPECT_EQ(DataFilePath("0a1b.arrow"), "data/0a1b.arrow");
  EXPECT_EQ(DataFilePath("7"), "data/7");
  EXPECT_TRUE(IsDataFilePath("data/0a1b.arrow"));
  EXPECT_TRUE(IsDataFilePath(DataFilePath("7")));
  EXPECT_FALSE(IsDataFilePath("data/"));
  EXPECT_FALSE(IsDataFilePath("data"));
  EXPECT_FALSE(IsDataFilePath("data/a/b.arrow"));
  EXPECT_FALSE(IsDataFilePath("database/x.arrow"));
  EXPECT_FALSE(IsDataFilePath("datax.arrow"));
  EXPECT_FALSE(IsDataFilePath("_deletions/x.arrow"));
  EXPECT_FALSE(IsDataFilePath("/data/x.arrow"));
}

TEST(WrittenFragments, SplitsByFile) {
  auto w = Sample();
  auto split = w.SplitByFile();
  ASSERT_EQ(split.size(), 2u);
  EXPECT_EQ(split[1].fragments.size(), 1u);
  EXPECT_EQ(split[1].fragments[0], w.fragments[1]);
  EXPECT_EQ(split[1].table, "images");
  EXPECT_EQ(split[1].schema, w.schema);
  w.fragments.clear();
  split = w.SplitByFile();
  ASSERT_EQ(split.size(), 1u);
  EXPECT_TRUE(split[0].fragments.empty());
}

// Each malformed description is rejected with a message naming the key at fault.
TEST(WrittenFragments, MalformedDescriptionsNameTheField) {
  struct Case {
    std::function<void(Json&)> change;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](Json& d) { d.erase("kind"); }, "missing key 'kind'"},
      {[](Json& d) { d["kind"] = "riffledb.manifest"; },
       "'kind' is 'riffledb.manifest', must be 'riffledb.written_fragments'"},
      {[](Json& d) { d["format_version"] = 99; }, "format_version 99 is newer"},
      {[](Json& d) { d["format_version"] = 1; }, "descriptions start at format 2"},
      {[](Json& d) { d.erase("table"); }, "missing key 'table'"},
      {[](Json& d) { d["table"] = 7; }, "'table' must be a string, got number"},
      {[](Json& d) { d["table"] = ""; }, "'table' is empty"},
      {[](Json& d) { d["base_version"] = 0; }, "'base_version' is 0, must be at least 1"},
      {[](Json& d) { d["base_version"] = -4; }, "'base_version' is -4"},
      {[](Json& d) { d["base_version"] = "3"; }, "'base_version' must be an integer"},
      {[](Json& d) { d["schema"] = "%%%"; }, "'schema' is not valid base64"},
      {[](Json& d) { d["schema"] = "AAAA"; }, "'schema' is not an Arrow IPC schema"},
      {[](Json& d) { d.erase("fragments"); }, "missing key 'fragments'"},
      {[](Json& d) { d["fragments"] = Json::object(); }, "'fragments' must be an array"},
      {[](Json& d) { d["fragments"][1] = 5; }, "'fragments[1]' must be an object"},
      {[](Json& d) { d["fragments"][0].erase("path"); },
       "missing key 'fragments[0].path'"},
      {[](Json& d) { d["fragments"][0]["path"] = "/etc/passwd"; },
       "'fragments[0].path' is '/etc/passwd', must be relative"},
      {[](Json& d) { d["fragments"][0]["path"] = "data/../_versions/x.json"; },
       "'fragments[0].path' is 'data/../_versions/x.json': a path must not contain"},
      {[](Json& d) { d["fragments"][0]["path"] = "_versions/00000000000000000001.json"; },
       "must name a file in the table's data/ directory"},
      {[](Json& d) { d["fragments"][0]["path"] = "data/a/b.arrow"; },
       "must name a file in the table's data/ directory"},
      {[](Json& d) { d["fragments"][0]["physical_rows"] = 0; },
       "'fragments[0].physical_rows' is 0, must be at least 1"},
      {[](Json& d) { d["fragments"][0]["physical_rows"] = int64_t{1} << 40; },
       "'fragments[0].physical_rows' is 1099511627776, must be at most 4294967296"},
      {[](Json& d) { d["fragments"][0]["physical_rows"] = 1.5; },
       "'fragments[0].physical_rows' must be an integer"},
      {[](Json& d) { d["fragments"][0].erase("batches"); },
       "missing key 'fragments[0].batches'"},
      {[](Json& d) { d["fragments"][1]["batches"] = 21; },
       "'fragments[1].batches' is 21, must be in [1, physical_rows = 20]"},
      {[](Json& d) { d["fragments"][0].erase("crc32c"); },
       "missing key 'fragments[0].crc32c'"},
      {[](Json& d) { d["fragments"][0]["crc32c"] = "xyz"; },
       "'fragments[0].crc32c' is 'xyz', must be 8 hex digits"},
      {[](Json& d) { d["fragments"][0]["size"] = -1; },
       "'fragments[0].size' is -1, must be at least 0"},
  };
  for (const auto& c : cases) {
    Json doc = SampleJson();
    c.change(doc);
    auto parsed = WrittenFragments::FromJson(doc.dump());
    ASSERT_FALSE(parsed.ok()) << doc.dump();
    EXPECT_TRUE(parsed.status().IsInvalid());
    EXPECT_THAT(parsed.status().message(), StartsWith(kPrefix));
    EXPECT_THAT(parsed.status().message(), HasSubstr(c.message));
  }
  const std::vector<std::string> garbage = {
      "",
      "[]",
      "null",
      "{",
      "{\"kind\": ",
      std::string(100, '['),
      "{\"a\":" + std::string(20, '[') + std::string(20, ']') + "}"};
  for (const std::string& text : garbage) {
    auto parsed = WrittenFragments::FromJson(text);
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_THAT(parsed.status().message(), StartsWith(kPrefix));
  }
}

TEST(WrittenFragments, ToJsonRejectsWhatFromJsonWould) {
  auto w = Sample();
  w.fragments[0].path = "data/../x";
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'fragments[0].path'", w.ToJson());
  w = Sample();
  w.base_version = 0;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'base_version' is 0", w.ToJson());
  // The rules of a manifest's fragment entry, with its messages (ValidateFragment)...
  w = Sample();
  w.fragments[1].num_batches = 21;
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Invalid fragment description: 'fragments[1].batches' is 21, "
      "must be in [1, physical_rows = 20] (0 for an empty file)",
      w.ToJson());
  w = Sample();
  w.fragments[0].physical_rows = (int64_t{1} << 32) + 1;
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Invalid fragment description: 'fragments[0].physical_rows' "
                             "is 4294967297, must be in [0, 4294967296]",
                             w.ToJson());
  w = Sample();
  w.fragments[0].digest->size = -1;
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Invalid fragment description: 'fragments[0].size' is -1, must be at least 0",
      w.ToJson());
  // ... and what a description adds: a file of data/, with rows.
  w = Sample();
  w.fragments[0].physical_rows = 0;
  w.fragments[0].num_batches = 0;
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "Invalid fragment description: 'fragments[0].physical_rows' "
                             "is 0, must be at least 1",
                             w.ToJson());
  w = Sample();
  w.fragments[0].path = "_deletions/x.arrow";
  ASSERT_RAISES_WITH_MESSAGE(
      Invalid,
      "Invalid fragment description: 'fragments[0].path' is "
      "'_deletions/x.arrow', must name a file in the table's data/ "
      "directory",
      w.ToJson());
}

// Fuzz-style: deterministic byte flips, truncations, insertions and splices of valid
// descriptions never crash, and every rejection is an Invalid starting with the prefix;
// whatever parses serialises back to the same description.
TEST(WrittenFragments, MutatedTextNeverCrashes) {
  std::vector<std::string> seeds = {Sample().ToJson().ValueOrDie()};
  auto one = Sample();
  one.fragments.resize(1);
  one.fragments[0].digest.reset();
  seeds.push_back(one.ToJson().ValueOrDie());
  std::mt19937_64 rng(20261211);
  const std::string alphabet = "{}[]\":,0123456789-.eE aZ/\\\x00\xff";
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text = seeds[rng() % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      const size_t at = rng() % text.size();
      switch (rng() % 4) {
        case 0:
          text[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          text.resize(at);
          break;
        case 2:
          text.insert(at, 1, alphabet[rng() % alphabet.size()]);
          break;
        default: {
          const std::string& other = seeds[rng() % seeds.size()];
          const size_t from = rng() % other.size();
          text = text.substr(0, at) + other.substr(from);
        }
      }
    }
    auto result = WrittenFragments::FromJson(text);
    if (!result.ok()) {
      ASSERT_TRUE(result.status().IsInvalid()) << result.status().ToString();
      ASSERT_THAT(result.status().message(), StartsWith(kPrefix));
      continue;
    }
    ++parsed;
    ASSERT_OK_AND_ASSIGN(auto again, result->ToJson());
    ASSERT_OK_AND_ASSIGN(auto back, WrittenFragments::FromJson(again));
    ASSERT_EQ(back.fragments, result->fragments);
    ASSERT_EQ(back.table, result->table);
  }
  EXPECT_GT(parsed, 0);  // some mutations (inside strings, digits) stay valid
}

}  // namespace
}  // namespace riffledb::format
