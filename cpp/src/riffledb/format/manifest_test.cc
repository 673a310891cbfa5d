#include "riffledb/format/manifest.h"

#include <arrow/type.h>
#include <arrow/util/key_value_metadata.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "riffledb/testing/testing.h"
#include "riffledb/util/crc32c.h"
#include "riffledb/util/status.h"

namespace riffledb::format {
namespace {

using Json = nlohmann::json;

std::shared_ptr<arrow::Schema> EveryTypeSchema() {
  auto field_meta = arrow::key_value_metadata({"unit", "doc"}, {"px", "an image width"});
  std::vector<std::shared_ptr<arrow::Field>> fields = {
      arrow::field("i8", arrow::int8()),
      arrow::field("i16", arrow::int16()),
      arrow::field("i32", arrow::int32(), /*nullable=*/false),
      arrow::field("i64", arrow::int64()),
      arrow::field("u8", arrow::uint8()),
      arrow::field("u16", arrow::uint16()),
      arrow::field("u32", arrow::uint32(), true, field_meta),
      arrow::field("u64", arrow::uint64()),
      arrow::field("f16", arrow::float16()),
      arrow::field("f32", arrow::float32()),
      arrow::field("f64", arrow::float64()),
      arrow::field("flag", arrow::boolean()),
      arrow::field("s", arrow::utf8()),
      arrow::field("ls", arrow::large_utf8()),
      arrow::field("b", arrow::binary()),
      arrow::field("lb", arrow::large_binary()),
      arrow::field("fsb", arrow::fixed_size_binary(16)),
      arrow::field("d", arrow::date32()),
      arrow::field("ts", arrow::timestamp(arrow::TimeUnit::MICRO, "Europe/Paris")),
      arrow::field("dec", arrow::decimal128(38, 9)),
      arrow::field("l", arrow::list(arrow::field("item", arrow::int32(), false))),
      arrow::field("ll", arrow::large_list(arrow::utf8())),
      arrow::field("vec", arrow::fixed_size_list(arrow::float32(), 512)),
      arrow::field("st",
                   arrow::struct_({arrow::field("x", arrow::float64()),
                                   arrow::field("tags", arrow::list(arrow::utf8()))})),
      arrow::field("m", arrow::map(arrow::utf8(), arrow::int64())),
      arrow::field("cat", arrow::dictionary(arrow::int32(), arrow::utf8())),
      arrow::field("ocat",
                   arrow::dictionary(arrow::int8(), arrow::utf8(), /*ordered=*/true)),
      arrow::field("n", arrow::null()),
  };
  return arrow::schema(fields, arrow::key_value_metadata({"riffledb.test", "split_names"},
                                                         {"1", "[\"train\",\"test\"]"}));
}

Manifest SampleManifest() {
  Manifest m;
  m.version = 3;
  m.timestamp_ms = 1700000000123;
  m.operation = "delete";
  m.schema = EveryTypeSchema();
  m.next_fragment_id = 7;
  m.fragments.push_back(
      {0, "data/a.arrow", 100, std::nullopt, std::nullopt, std::nullopt});
  m.fragments.push_back({5, "data/b.arrow", 50,
                         DeletionFileInfo{"_deletions/x.arrow", 3, std::nullopt},
                         std::nullopt, std::nullopt});
  return m;
}

TEST(Manifest, RoundTripEveryType) {
  Manifest m = SampleManifest();
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeManifest(m));
  ASSERT_OK_AND_ASSIGN(Manifest back, ParseManifest(text, "00000000000000000003.json"));
  EXPECT_EQ(back.version, 3u);
  EXPECT_EQ(back.timestamp_ms, 1700000000123);
  EXPECT_EQ(back.operation, "delete");
  EXPECT_EQ(back.next_fragment_id, 7u);
  ASSERT_TRUE(back.schema->Equals(*m.schema, /*check_metadata=*/true))
      << back.schema->ToString(true) << "\nvs\n"
      << m.schema->ToString(true);
  ASSERT_TRUE(back.schema->field(6)->metadata()->Equals(*m.schema->field(6)->metadata()));
  ASSERT_TRUE(back.schema->metadata()->Equals(*m.schema->metadata()));
  EXPECT_TRUE(back.schema->GetFieldByName("cat")->type()->Equals(
      arrow::dictionary(arrow::int32(), arrow::utf8())));
  EXPECT_TRUE(back.schema->GetFieldByName("ocat")->type()->Equals(
      arrow::dictionary(arrow::int8(), arrow::utf8(), true)));
  EXPECT_FALSE(back.schema->GetFieldByName("i32")->nullable());
  ASSERT_EQ(back.fragments.size(), 2u);
  EXPECT_EQ(back.fragments[0].id, 0u);
  EXPECT_EQ(back.fragments[0].path, "data/a.arrow");
  EXPECT_EQ(back.fragments[0].physical_rows, 100);
  EXPECT_FALSE(back.fragments[0].deletion.has_value());
  EXPECT_EQ(back.fragments[1].id, 5u);
  ASSERT_TRUE(back.fragments[1].deletion.has_value());
  EXPECT_EQ(back.fragments[1].deletion->path, "_deletions/x.arrow");
  EXPECT_EQ(back.fragments[1].deletion->num_deleted, 3);
  EXPECT_EQ(back.num_rows(), 147);
  // Serializing again gives the same bytes (stable key order).
  ASSERT_OK_AND_ASSIGN(std::string again, SerializeManifest(back));
  EXPECT_EQ(again, text);
}

TEST(Manifest, DocumentedKeys) {
  Manifest m = SampleManifest();
  m.fragments.update(0, [&](FragmentInfo& f) {
    f.digest = FileDigest{4096, 0xe3069283};
  });
  m.fragments.update(1, [&](FragmentInfo& f) {
    f.deletion->digest = FileDigest{120, 0x0000000a};
  });
  m.history = {{1, 1700000000000, "create"}, {2, 1700000000100, "append"}};
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeManifest(m));
  // The checksum header: exactly these bytes first, covering everything after them.
  const std::string header = "{\n  \"crc32c\": \"";
  ASSERT_EQ(text.substr(0, header.size()), header);
  ASSERT_EQ(text.substr(header.size() + 8, 3), "\",\n");
  EXPECT_EQ(text.substr(header.size(), 8), Crc32cHex(Crc32c(text.substr(26))));
  Json doc = Json::parse(text);
  EXPECT_EQ(doc["format_version"], 2);
  EXPECT_EQ(doc["version"], 3);
  EXPECT_EQ(doc["timestamp_ms"], 1700000000123);
  EXPECT_EQ(doc["operation"], "delete");
  EXPECT_EQ(doc["next_fragment_id"], 7);
  EXPECT_TRUE(doc["schema"].is_string());
  const Json& tail = doc["fragments"]["tail"];
  EXPECT_EQ(doc["fragments"]["segments"], Json::array());
  EXPECT_EQ(tail[0]["id"], 0);
  EXPECT_EQ(tail[0]["path"], "data/a.arrow");
  EXPECT_EQ(tail[0]["physical_rows"], 100);
  EXPECT_EQ(tail[0]["size"], 4096);
  EXPECT_EQ(tail[0]["crc32c"], "e3069283");
  EXPECT_FALSE(tail[0].contains("deletion"));
  EXPECT_FALSE(tail[1].contains("size"));  // a file from a format-1 version: no digest
  EXPECT_EQ(tail[1]["deletion"]["path"], "_deletions/x.arrow");
  EXPECT_EQ(tail[1]["deletion"]["num_deleted"], 3);
  EXPECT_EQ(tail[1]["deletion"]["size"], 120);
  EXPECT_EQ(tail[1]["deletion"]["crc32c"], "0000000a");
  EXPECT_EQ(
      doc["history"]["tail"][1],
      Json({{"version", 2}, {"timestamp_ms", 1700000000100}, {"operation", "append"}}));
  ASSERT_OK_AND_ASSIGN(Manifest back, ParseManifest(text, "v3.json"));
  EXPECT_EQ(back.fragments, m.fragments);
  EXPECT_EQ(back.history, m.history);
  EXPECT_EQ(back.format_version, 2);
}

// A table's id is written when it has one and read back; a manifest without one (written
// before riffledb wrote them) reads as "".
TEST(Manifest, TableIdRoundTripsAndIsOptional) {
  Manifest m = SampleManifest();
  m.table_id = "0123456789abcdef0123456789abcdef";
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeManifest(m));
  EXPECT_EQ(Json::parse(text)["table_id"], m.table_id);
  ASSERT_OK_AND_ASSIGN(Manifest back, ParseManifest(text, "v3.json"));
  EXPECT_EQ(back.table_id, m.table_id);

  m.table_id.clear();
  ASSERT_OK_AND_ASSIGN(text, SerializeManifest(m));
  EXPECT_FALSE(Json::parse(text).contains("table_id"));
  ASSERT_OK_AND_ASSIGN(back, ParseManifest(text, "v3.json"));
  EXPECT_EQ(back.table_id, "");

  m.table_id = "../../etc/passwd";
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "'table_id' must be 32 lowercase hexadecimal digits",
                             SerializeManifest(m));
}

// Format 1 manifests (written before checksums) stay readable.
TEST(Manifest, ReadsFormat1) {
  Manifest m = SampleManifest();
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeManifestV1(m));
  Json doc = Json::parse(text);
  EXPECT_EQ(doc["format_version"], 1);
  EXPECT_TRUE(doc["fragments"].is_array());
  ASSERT_OK_AND_ASSIGN(Manifest back, ParseManifest(text, "v3.json"));
  EXPECT_EQ(back.format_version, 1);
  EXPECT_EQ(back.fragments, m.fragments);
  EXPECT_TRUE(back.history.empty());
  // And written again as format 2, they carry the same content.
  ASSERT_OK_AND_ASSIGN(std::string v2, SerializeManifest(back));
  ASSERT_OK_AND_ASSIGN(Manifest again, ParseManifest(v2, "v3.json"));
  EXPECT_EQ(again.fragments, m.fragments);
}

TEST(Manifest, EveryBitFlipIsDetected) {
  Manifest m = SampleManifest();
  m.schema = arrow::schema({arrow::field("x", arrow::int64())});  // a shorter text
  m.history = {{1, 5, "create"}, {2, 6, "append"}};
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeManifest(m));
  for (size_t bit = 0; bit < text.size() * 8; ++bit) {
    std::string damaged = text;
    damaged[bit / 8] = static_cast<char>(damaged[bit / 8] ^ (1 << (bit % 8)));
    auto result = ParseManifest(damaged, "v3.json");
    ASSERT_FALSE(result.ok()) << "bit " << bit << " of byte '" << text[bit / 8] << "'";
    ASSERT_EQ(GetErrorKind(result.status()), ErrorKind::kCorruption) << bit;
  }
}

TEST(Manifest, Format2WithoutItsChecksumIsDamaged) {
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeManifest(SampleManifest()));
  Json doc = Json::parse(text);
  doc.erase("crc32c");
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "must start with its crc32c",
                             ParseManifest(doc.dump(2), "v3.json"));
  // The checksum of other bytes: the message gives both.
  std::string other = text;
  other[text.size() - 3] = other[text.size() - 3] == 'A' ? 'B' : 'A';
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "checksum mismatch: the file says crc32c",
                             ParseManifest(other, "v3.json"));
}

TEST(Manifest, SegmentsRoundTrip) {
  std::vector<FragmentInfo> fragments;
  for (uint32_t i = 0; i < 20; ++i) {
    fragments.push_back({i, "data/f" + std::to_string(i) + ".arrow", i + 1, std::nullopt,
                         FileDigest{100 + i, i * 7}, std::nullopt});
  }
  fragments[3].deletion = DeletionFileInfo{"_deletions/d.arrow", 2, FileDigest{9, 1}};
  fragments[5].num_batches = 3;  // recorded by newer writers, absent from older entries
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeFragmentSegment(fragments));
  EXPECT_NE(text.find("\"batches\":3"), std::string::npos);
  ASSERT_OK_AND_ASSIGN(auto back, ParseFragmentSegment(text, "_segments/s.json"));
  EXPECT_EQ(back, fragments);
  // One entry per line.
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 22);
  ASSERT_RAISES_WITH_MESSAGE(Invalid,
                             "a 'fragments' segment where 'history' was expected",
                             ParseHistorySegment(text, "_segments/s.json"));
  std::vector<VersionRecord> history = {{1, 10, "create"}, {4, 11, "restore"}};
  ASSERT_OK_AND_ASSIGN(text, SerializeHistorySegment(history));
  ASSERT_OK_AND_ASSIGN(auto records, ParseHistorySegment(text, "_segments/h.json"));
  EXPECT_EQ(records, history);
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "_segments/h.json: ",
                             ParseHistorySegment(text.substr(0, 30), "_segments/h.json"));
}

TEST(Manifest, SegmentReferencesResolve) {
  Manifest m = SampleManifest();
  m.history = {{1, 5, "create"}, {2, 6, "append"}};
  auto first = std::make_shared<const std::vector<FragmentInfo>>(
      std::vector<FragmentInfo>{m.fragments[0]});
  m.fragment_segments.push_back({"_segments/a.json", FileDigest{10, 0xabc}, 1, first});
  auto records =
      std::make_shared<const std::vector<VersionRecord>>(m.history.to_vector());
  m.history_segments.push_back({"_segments/h.json", FileDigest{20, 0xdef}, 2, records});
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeManifest(m));
  Json doc = Json::parse(text);
  EXPECT_EQ(doc["fragments"]["segments"][0], Json({{"path", "_segments/a.json"},
                                                   {"count", 1},
                                                   {"size", 10},
                                                   {"crc32c", "00000abc"}}));
  EXPECT_EQ(doc["fragments"]["tail"].size(), 1u);
  EXPECT_EQ(doc["history"]["tail"].size(), 0u);
  EXPECT_EQ(ReferencedFiles(m), (std::vector<std::string>{
                                    "data/a.arrow", "data/b.arrow", "_deletions/x.arrow",
                                    "_segments/a.json", "_segments/h.json"}));

  ASSERT_OK_AND_ASSIGN(Manifest back, ParseManifest(text, "v3.json"));
  ASSERT_EQ(back.fragments.size(), 1u);  // the tail only, until resolved
  ASSERT_EQ(back.fragment_segments.size(), 1u);
  EXPECT_EQ(back.fragment_segments[0].entries, nullptr);
  back.fragment_segments[0].entries = first;
  back.history_segments[0].entries = records;
  ASSERT_OK(ResolveManifest(&back, "v3.json"));
  EXPECT_EQ(back.fragments, m.fragments);
  EXPECT_EQ(back.history, m.history);

  // A segment holding another number of entries than its reference says is damage.
  ASSERT_OK_AND_ASSIGN(back, ParseManifest(text, "v3.json"));
  back.fragment_segments[0].entries = std::make_shared<const std::vector<FragmentInfo>>();
  back.history_segments[0].entries = records;
  auto st = ResolveManifest(&back, "v3.json");
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "segment '_segments/a.json' holds 0 entries", st);
  EXPECT_EQ(GetErrorKind(st), ErrorKind::kCorruption);
}

TEST(Manifest, HistoryMustAscendBelowTheVersion) {
  Manifest m = SampleManifest();
  m.history = {{1, 5, "create"}, {3, 6, "append"}};
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'history[1].version' is 3", SerializeManifest(m));
  m.history = {{2, 5, "create"}, {1, 6, "append"}};
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "the history must ascend", SerializeManifest(m));
}

TEST(Manifest, EmptyTableAndUnknownKeys) {
  Manifest m;
  m.version = 1;
  m.operation = "create";
  m.schema = arrow::schema({arrow::field("x", arrow::int64())});
  ASSERT_OK_AND_ASSIGN(std::string text, SerializeManifestV1(m));
  Json doc = Json::parse(text);
  doc["some_future_key"] = {{"a", 1}};
  doc["fragments"] = Json::array();
  ASSERT_OK_AND_ASSIGN(Manifest back, ParseManifest(doc.dump(), "v1.json"));
  EXPECT_EQ(back.num_rows(), 0);
  EXPECT_TRUE(back.fragments.empty());
  // `deletion: null` is the same as no deletion file.
  doc["next_fragment_id"] = 1;
  doc["fragments"] = Json::array({{{"id", 0},
                                   {"path", "data/x.arrow"},
                                   {"physical_rows", 4},
                                   {"deletion", nullptr}}});
  ASSERT_OK_AND_ASSIGN(back, ParseManifest(doc.dump(), "v1.json"));
  EXPECT_FALSE(back.fragments[0].deletion.has_value());
  EXPECT_EQ(back.num_rows(), 4);
}

// A commit that only appends to a stored list (read or committed: MarkStored) checks
// the appended entries, and falls back to checking everything when the appended ids
// could collide with stored ones or the list was changed otherwise.
TEST(Manifest, SerializeChecksWhatWasAppendedToAStoredList) {
  Manifest stored = SampleManifest();
  stored.history = {{1, 1700000000000, "create"}, {2, 1700000000001, "append"}};
  stored.MarkStored();
  ASSERT_OK(SerializeManifest(stored).status());

  Manifest m = stored;
  m.next_fragment_id = 9;
  m.fragments.push_back({7, "data/c.arrow", 1, std::nullopt, std::nullopt, std::nullopt});
  EXPECT_TRUE(m.fragments.extends(m.stored_fragments));
  ASSERT_OK(SerializeManifest(m).status());
  m.fragments.push_back({8, "../up.arrow", 1, std::nullopt, std::nullopt, std::nullopt});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "fragments[3].path", SerializeManifest(m));

  m = stored;  // an appended id below the stored next_fragment_id: checked in full
  m.fragments.push_back({5, "data/c.arrow", 1, std::nullopt, std::nullopt, std::nullopt});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "duplicate fragment id 5 at fragments[2]",
                             SerializeManifest(m));
  m = stored;  // two appended ids alike
  m.next_fragment_id = 9;
  m.fragments.push_back({8, "data/c.arrow", 1, std::nullopt, std::nullopt, std::nullopt});
  m.fragments.push_back({8, "data/d.arrow", 1, std::nullopt, std::nullopt, std::nullopt});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "duplicate fragment id 8 at fragments[3]",
                             SerializeManifest(m));
  m = stored;
  m.fragments.push_back({7, "data/c.arrow", 1, std::nullopt, std::nullopt, std::nullopt});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'fragments[2].id' is 7, must be below",
                             SerializeManifest(m));
  m = stored;  // a stored entry changed: no longer the stored list, checked in full
  m.fragments.update(0, [](FragmentInfo& f) { f.path = "/abs.arrow"; });
  EXPECT_FALSE(m.fragments.extends(m.stored_fragments));
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "fragments[0].path", SerializeManifest(m));

  m = stored;  // history: appended entries ascend, and all stay below the version
  m.history.push_back({2, 1700000000002, "append"});
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'history[2].version' is 2", SerializeManifest(m));
  m = stored;
  m.version = 2;  // the stored history's last entry is not below it
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'history[1].version' is 2", SerializeManifest(m));
}

TEST(Manifest, SerializeRejectsInvalidManifests) {
  Manifest m = SampleManifest();
  m.fragments.update(1, [&](FragmentInfo& f) { f.id = 0; });
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "duplicate fragment id", SerializeManifest(m));
  m = SampleManifest();
  m.schema = nullptr;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "schema", SerializeManifest(m));
  m = SampleManifest();
  m.fragments.update(0, [&](FragmentInfo& f) { f.path = "../escape.arrow"; });
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "..", SerializeManifest(m));
  m = SampleManifest();
  m.next_fragment_id = 5;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "next_fragment_id", SerializeManifest(m));
  m = SampleManifest();
  m.fragments.update(
      0, [&](FragmentInfo& f) { f.num_batches = m.fragments[0].physical_rows + 1; });
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "'fragments[0].batches' is", SerializeManifest(m));
  m.fragments.update(0, [&](FragmentInfo& f) { f.num_batches = 0; });
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "must be in [1, physical_rows",
                             SerializeManifest(m));
  m = SampleManifest();
  m.version = 0;
  ASSERT_RAISES_WITH_MESSAGE(Invalid, "version", SerializeManifest(m));
  // A manifest rejected while writing is the writer's bug, not a damaged file.
  EXPECT_EQ(GetErrorKind(SerializeManifest(m).status()), std::nullopt);
}

// Golden rejections: each corrupt manifest fails with Invalid, the message begins with
// the source name and contains the expected fragment.
struct Corruption {
  const char* name;
  std::function<std::string(Json)> corrupt;  // from a valid manifest's JSON to bad text
  const char* message;
};

std::string Set(Json doc, const std::string& pointer, Json value) {
  doc[Json::json_pointer(pointer)] = std::move(value);
  return doc.dump();
}
std::string Erase(Json doc, const std::string& pointer) {
  Json::json_pointer p(pointer);
  doc[p.parent_pointer()].erase(p.back());
  return doc.dump();
}

// On format 1 (no checksum) so that each case reaches the check it is about; format 2
// shares the entry checks and is rejected earlier by its checksum.
TEST(Manifest, GoldenRejections) {
  ASSERT_OK_AND_ASSIGN(std::string valid, SerializeManifestV1(SampleManifest()));
  const Json doc = Json::parse(valid);
  const std::vector<Corruption> cases = {
      {"truncated", [&](Json) { return valid.substr(0, valid.size() / 2); },
       "invalid JSON"},
      {"empty", [](Json) { return std::string(); }, "invalid JSON"},
      {"not json", [](Json) { return std::string("version: 1"); }, "invalid JSON"},
      {"array", [](Json) { return std::string("[1, 2]"); },
       "must be a JSON object, got array"},
      {"deep nesting",
       [](Json) { return std::string(10000, '[') + std::string(10000, ']'); },
       "nested deeper"},
      {"missing version", [](Json d) { return Erase(d, "/version"); },
       "missing key 'version'"},
      {"missing schema", [](Json d) { return Erase(d, "/schema"); },
       "missing key 'schema'"},
      {"missing fragments", [](Json d) { return Erase(d, "/fragments"); },
       "missing key 'fragments'"},
      {"missing fragment path", [](Json d) { return Erase(d, "/fragments/1/path"); },
       "missing key 'fragments[1].path'"},
      {"version string", [](Json d) { return Set(d, "/version", "3"); },
       "'version' must be an integer, got string"},
      {"version float", [](Json d) { return Set(d, "/version", 3.5); },
       "'version' must be an integer, got number"},
      {"version zero", [](Json d) { return Set(d, "/version", 0); },
       "must be at least 1"},
      {"fragments object", [](Json d) { return Set(d, "/fragments", Json::object()); },
       "'fragments' must be an array"},
      {"fragment not object", [](Json d) { return Set(d, "/fragments/0", 17); },
       "'fragments[0]' must be an object"},
      {"negative rows", [](Json d) { return Set(d, "/fragments/0/physical_rows", -1); },
       "'fragments[0].physical_rows' is -1"},
      {"too many rows",
       [](Json d) { return Set(d, "/fragments/0/physical_rows", int64_t{1} << 33); },
       "must be at most 4294967296"},
      {"negative deleted",
       [](Json d) { return Set(d, "/fragments/1/deletion/num_deleted", -2); },
       "'fragments[1].deletion.num_deleted' is -2"},
      {"more deleted than rows",
       [](Json d) { return Set(d, "/fragments/1/deletion/num_deleted", 51); },
       "must be in [0, physical_rows = 50]"},
      {"deletion not object", [](Json d) { return Set(d, "/fragments/1/deletion", "x"); },
       "'fragments[1].deletion' must be an object or null"},
      {"duplicate ids", [](Json d) { return Set(d, "/fragments/1/id", 0); },
       "duplicate fragment id 0"},
      {"more batches than rows",
       [](Json d) { return Set(d, "/fragments/1/batches", 51); },
       "'fragments[1].batches' is 51, must be in [1, physical_rows = 50]"},
      {"batches not an integer",
       [](Json d) { return Set(d, "/fragments/1/batches", "2"); },
       "'fragments[1].batches' must be an integer"},
      {"id too large for uint32",
       [](Json d) { return Set(d, "/fragments/1/id", int64_t{1} << 32); },
       "fragments[1].id"},
      {"id beyond next_fragment_id",
       [](Json d) { return Set(d, "/next_fragment_id", 5); },
       "must be below next_fragment_id (5)"},
      {"dotdot path",
       [](Json d) { return Set(d, "/fragments/0/path", "data/../../etc"); },
       "'..' components"},
      {"absolute path", [](Json d) { return Set(d, "/fragments/0/path", "/etc/passwd"); },
       "must be relative"},
      {"empty path", [](Json d) { return Set(d, "/fragments/0/path", ""); }, "is empty"},
      {"dotdot deletion path",
       [](Json d) { return Set(d, "/fragments/1/deletion/path", ".."); },
       "'fragments[1].deletion.path'"},
      {"format_version 99", [](Json d) { return Set(d, "/format_version", 99); },
       "format_version 99 is newer than this riffledb supports (2)"},
      {"format_version 0", [](Json d) { return Set(d, "/format_version", 0); },
       "'format_version' is 0"},
      {"missing format_version", [](Json d) { return Erase(d, "/format_version"); },
       "missing key 'format_version'"},
      {"negative timestamp", [](Json d) { return Set(d, "/timestamp_ms", -5); },
       "'timestamp_ms' is -5"},
      {"operation number", [](Json d) { return Set(d, "/operation", 1); },
       "'operation' must be a string"},
      {"table_id number", [](Json d) { return Set(d, "/table_id", 5); },
       "'table_id' must be a string, got number"},
      {"table_id upper case",
       [](Json d) { return Set(d, "/table_id", "0123456789ABCDEF0123456789abcdef"); },
       "'table_id' must be 32 lowercase hexadecimal digits, got "
       "'0123456789ABCDEF0123456789abcdef'"},
      {"table_id short", [](Json d) { return Set(d, "/table_id", "abc"); },
       "'table_id' must be 32 lowercase hexadecimal digits, got 'abc'"},
      {"bad base64", [](Json d) { return Set(d, "/schema", "!!!not base64!!!"); },
       "not valid base64"},
      {"empty schema", [](Json d) { return Set(d, "/schema", ""); }, "'schema' is empty"},
      {"bad digest", [](Json d) { return Set(d, "/fragments/0/crc32c", "xyz"); },
       "missing key 'fragments[0].size'"},
      {"bad crc",
       [](Json d) {
         d["fragments"][0]["size"] = 5;
         return Set(d, "/fragments/0/crc32c", "ABCDEF01");
       },
       "'fragments[0].crc32c' is 'ABCDEF01', must be 8 hex digits"},
      {"negative size",
       [](Json d) {
         d["fragments"][0]["crc32c"] = "00000000";
         return Set(d, "/fragments/0/size", -1);
       },
       "'fragments[0].size' is -1"},
      {"base64 of garbage", [](Json d) { return Set(d, "/schema", "AAECAwQFBgcICQ=="); },
       "not an Arrow IPC schema"},
      {"truncated IPC schema",
       [](Json d) {
         std::string s = d["schema"];
         return Set(d, "/schema", s.substr(0, s.size() / 2 / 4 * 4));
       },
       "not an Arrow IPC schema"},
  };
  for (const Corruption& c : cases) {
    SCOPED_TRACE(c.name);
    std::string text = c.corrupt(doc);
    auto result = ParseManifest(text, "_versions/00000000000000000003.json");
    ASSERT_RAISES_WITH_MESSAGE(Invalid, c.message, result);
    EXPECT_EQ(GetErrorKind(result.status()), ErrorKind::kCorruption);
    EXPECT_EQ(result.status().message().rfind("_versions/00000000000000000003.json: ", 0),
              0u)
        << result.status().message();
  }
}

}  // namespace
}  // namespace riffledb::format
