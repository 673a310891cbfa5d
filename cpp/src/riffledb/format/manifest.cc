// Manifest and segment JSON (docs/format.md, sections 2 and 10). Unknown keys are
// ignored so that additions a reader may skip need no new format version.
#include "riffledb/format/manifest.h"

#include <arrow/buffer.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/dictionary.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/base64.h>

#include <algorithm>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <type_traits>

#include "riffledb/util/crc32c.h"
#include "riffledb/util/status.h"

namespace riffledb::format {

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// Nesting deeper than this is not a manifest; rejecting it before parsing bounds the work
// (and stack) spent on hostile input.
constexpr int kMaxJsonDepth = 16;

// Errors about one manifest, prefixed with its source. While reading, a bad manifest is a
// damaged file (ErrorKind::kCorruption); while writing, it is the writer's bug.
class ManifestError {
 public:
  ManifestError(std::string_view source, bool reading)
      : source_(source), reading_(reading) {}
  template <typename... Args>
  arrow::Status Invalid(Args&&... args) const {
    auto status = arrow::Status::Invalid(source_, ": ", std::forward<Args>(args)...);
    return reading_ ? WithErrorKind(status, ErrorKind::kCorruption) : status;
  }

 private:
  std::string_view source_;
  bool reading_;
};

int MaxJsonDepth(std::string_view text) {
  int depth = 0, max_depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      max_depth = std::max(max_depth, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return max_depth;
}

const Json* Find(const Json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

// Reads an integer key in [min, max]; `what` names it in messages ("fragments[2].id").
arrow::Result<int64_t> GetInt(const ManifestError& err, const Json& object,
                              const char* key, const std::string& what, int64_t min,
                              int64_t max) {
  const Json* value = Find(object, key);
  if (value == nullptr) return err.Invalid("missing key '", what, "'");
  if (value->is_number_unsigned()) {
    uint64_t v = value->get<uint64_t>();
    if (v > static_cast<uint64_t>(max)) {
      return err.Invalid("'", what, "' is ", v, ", must be at most ", max);
    }
    if (static_cast<int64_t>(v) < min) {
      return err.Invalid("'", what, "' is ", v, ", must be at least ", min);
    }
    return static_cast<int64_t>(v);
  }
  if (value->is_number_integer()) {
    int64_t v = value->get<int64_t>();
    if (v < min) return err.Invalid("'", what, "' is ", v, ", must be at least ", min);
    if (v > max) return err.Invalid("'", what, "' is ", v, ", must be at most ", max);
    return v;
  }
  return err.Invalid("'", what, "' must be an integer, got ", value->type_name());
}

arrow::Result<uint64_t> GetUint64(const ManifestError& err, const Json& object,
                                  const char* key, uint64_t min) {
  const Json* value = Find(object, key);
  if (value == nullptr) return err.Invalid("missing key '", key, "'");
  if (value->is_number_unsigned()) {
    uint64_t v = value->get<uint64_t>();
    if (v < min) return err.Invalid("'", key, "' is ", v, ", must be at least ", min);
    return v;
  }
  if (value->is_number_integer()) {
    return err.Invalid("'", key, "' is ", value->get<int64_t>(), ", must be at least ",
                       min);
  }
  return err.Invalid("'", key, "' must be an integer, got ", value->type_name());
}

arrow::Result<std::string> GetString(const ManifestError& err, const Json& object,
                                     const char* key, const std::string& what) {
  const Json* value = Find(object, key);
  if (value == nullptr) return err.Invalid("missing key '", what, "'");
  if (!value->is_string()) {
    return err.Invalid("'", what, "' must be a string, got ", value->type_name());
  }
  return value->get<std::string>();
}

// A relative path inside the table directory: no leading '/', no empty, '.' or '..'
// components, no backslash or NUL (which would mean different things on other systems).
// The name of a key in an error: a string, or a callable returning one, called only on
// error (a manifest of 10,000 fragments is validated at every commit).
template <typename Label>
std::string LabelText(const Label& label) {
  if constexpr (std::is_invocable_v<const Label&>) {
    return label();
  } else {
    return std::string(label);
  }
}

template <typename Label>
arrow::Status ValidateRelativePath(const ManifestError& err, const std::string& path,
                                   const Label& label) {
  auto what = [&] { return LabelText(label); };
  if (path.empty()) return err.Invalid("'", what(), "' is empty");
  if (path.front() == '/') {
    return err.Invalid("'", what(), "' is '", path,
                       "', must be relative to the table directory");
  }
  if (path.find('\0') != std::string::npos || path.find('\\') != std::string::npos) {
    return err.Invalid("'", what(), "' contains a NUL or backslash character");
  }
  size_t begin = 0;
  while (begin <= path.size()) {
    size_t end = path.find('/', begin);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + begin, end - begin);
    if (part.empty() || part == "." || part == "..") {
      return err.Invalid("'", what(), "' is '", path,
                         "': a path must not contain empty, '.' or '..' components");
    }
    begin = end + 1;
  }
  return arrow::Status::OK();
}

// Checks the invariants that do not depend on the JSON encoding, so that
// SerializeManifest never writes what ParseManifest would reject.
// `label` names the entry in errors (see LabelText).
template <typename Label>
arrow::Status ValidateFragment(const ManifestError& err, const FragmentInfo& f,
                               const Label& label) {
  auto at = [&] { return LabelText(label); };
  ARROW_RETURN_NOT_OK(ValidateRelativePath(err, f.path, [&] { return at() + ".path"; }));
  if (f.physical_rows < 0 || f.physical_rows > kMaxFragmentRows) {
    return err.Invalid("'", at(), ".physical_rows' is ", f.physical_rows,
                       ", must be in [0, ", kMaxFragmentRows, "]");
  }
  if (f.digest && f.digest->size < 0) {
    return err.Invalid("'", at(), ".size' is ", f.digest->size, ", must be at least 0");
  }
  // Every batch holds a row: a file of n rows has 1..n batches (0 when empty).
  if (f.num_batches && (*f.num_batches > f.physical_rows ||
                        (*f.num_batches == 0) != (f.physical_rows == 0))) {
    return err.Invalid("'", at(), ".batches' is ", *f.num_batches,
                       ", must be in [1, physical_rows = ", f.physical_rows,
                       "] (0 for an empty file)");
  }
  if (f.deletion) {
    ARROW_RETURN_NOT_OK(ValidateRelativePath(err, f.deletion->path,
                                             [&] { return at() + ".deletion.path"; }));
    if (f.deletion->num_deleted < 0 || f.deletion->num_deleted > f.physical_rows) {
      return err.Invalid("'", at(), ".deletion.num_deleted' is ", f.deletion->num_deleted,
                         ", must be in [0, physical_rows = ", f.physical_rows, "]");
    }
    if (f.deletion->digest && f.deletion->digest->size < 0) {
      return err.Invalid("'", at(), ".deletion.size' is ", f.deletion->digest->size,
                         ", must be at least 0");
    }
  }
  return arrow::Status::OK();
}

template <typename Entry>
arrow::Status ValidateSegments(const ManifestError& err,
                               const std::vector<Segment<Entry>>& segments,
                               size_t list_size, const char* what) {
  int64_t covered = 0;
  for (size_t i = 0; i < segments.size(); ++i) {
    const auto& segment = segments[i];
    std::string at = std::string(what) + ".segments[" + std::to_string(i) + "]";
    ARROW_RETURN_NOT_OK(ValidateRelativePath(err, segment.path, at + ".path"));
    if (segment.count < 1) {
      return err.Invalid("'", at, ".count' is ", segment.count, ", must be at least 1");
    }
    if (segment.digest.size < 0) {
      return err.Invalid("'", at, ".size' is ", segment.digest.size,
                         ", must be at least 0");
    }
    covered += segment.count;
  }
  if (covered > static_cast<int64_t>(list_size)) {
    return err.Invalid("the ", what, " segments hold ", covered,
                       " entries, the list has ", list_size);
  }
  return arrow::Status::OK();
}

// The entries of a list that ValidateManifest must check: those after the stored
// list it extends (Manifest::stored_fragments), or all of them.
template <typename Entry>
size_t FirstUnchecked(const CowVector<Entry>& list, const CowVector<Entry>& stored) {
  return list.extends(stored) ? stored.size() : 0;
}

bool IsTableId(std::string_view id) {
  return id.size() == 32 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

arrow::Status ValidateManifest(const Manifest& m, const ManifestError& err) {
  if (m.version < 1) return err.Invalid("'version' is 0, must be at least 1");
  if (m.timestamp_ms < 0) {
    return err.Invalid("'timestamp_ms' is ", m.timestamp_ms, ", must be at least 0");
  }
  if (m.schema == nullptr) return err.Invalid("manifest has no schema");
  if (!m.table_id.empty() && !IsTableId(m.table_id)) {
    return err.Invalid("'table_id' must be 32 lowercase hexadecimal digits, got '",
                       m.table_id.substr(0, 64), "'");
  }
  // A stored prefix was validated when read or committed: its ids are unique and below
  // stored_next_fragment_id, so appended fragments with ids from there on cannot
  // collide with it. Anything else is checked in full.
  size_t first = FirstUnchecked(m.fragments, m.stored_fragments);
  if (first > 0 && m.next_fragment_id < m.stored_next_fragment_id) first = 0;
  for (size_t i = first; i < m.fragments.size() && first > 0; ++i) {
    if (m.fragments[i].id < m.stored_next_fragment_id) first = 0;
  }
  // Unique ids: sorted, one allocation (a hash set allocates a node per fragment).
  std::vector<uint32_t> ids;
  ids.reserve(m.fragments.size() - first);
  for (size_t i = first; i < m.fragments.size(); ++i) ids.push_back(m.fragments[i].id);
  std::sort(ids.begin(), ids.end());
  if (auto dup = std::adjacent_find(ids.begin(), ids.end()); dup != ids.end()) {
    bool seen = false;
    for (size_t i = 0; i < m.fragments.size(); ++i) {
      if (m.fragments[i].id != *dup) continue;
      if (seen) {
        return err.Invalid("duplicate fragment id ", *dup, " at fragments[", i, "]");
      }
      seen = true;
    }
  }
  for (size_t i = first; i < m.fragments.size(); ++i) {
    const FragmentInfo& f = m.fragments[i];
    if (f.id >= m.next_fragment_id) {
      return err.Invalid("'fragments[", i, "].id' is ", f.id,
                         ", must be below next_fragment_id (", m.next_fragment_id, ")");
    }
    ARROW_RETURN_NOT_OK(
        ValidateFragment(err, f, [i] { return "fragments[" + std::to_string(i) + "]"; }));
  }
  // At most 2^32 rows per fragment (ValidateFragment): the total overflows only with
  // more than 2^31 fragments, which only a hostile file has.
  if (m.fragments.size() >= (size_t{1} << 31)) {
    int64_t total_rows = 0;
    for (const FragmentInfo& f : m.fragments) {
      if (total_rows > std::numeric_limits<int64_t>::max() - f.physical_rows) {
        return err.Invalid("total row count overflows");
      }
      total_rows += f.physical_rows;
    }
  }
  // A stored history ascends; from its last entry on, check that the rest ascends and
  // that all of it stays below this version.
  const size_t stored_history = FirstUnchecked(m.history, m.stored_history);
  for (size_t i = stored_history > 0 ? stored_history - 1 : 0; i < m.history.size();
       ++i) {
    const VersionRecord& r = m.history[i];
    if (r.version < 1 || r.version >= m.version ||
        (i > 0 && r.version <= m.history[i - 1].version)) {
      return err.Invalid("'history[", i, "].version' is ", r.version,
                         ": the history must ascend and stay below version ", m.version);
    }
    if (r.timestamp_ms < 0) {
      return err.Invalid("'history[", i, "].timestamp_ms' is ", r.timestamp_ms,
                         ", must be at least 0");
    }
  }
  ARROW_RETURN_NOT_OK(
      ValidateSegments(err, m.fragment_segments, m.fragments.size(), "fragments"));
  ARROW_RETURN_NOT_OK(
      ValidateSegments(err, m.history_segments, m.history.size(), "history"));
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::Schema>> DecodeSchema(const ManifestError& err,
                                                           const std::string& base64) {
  auto decoded = arrow::util::base64_decode(base64);
  if (!decoded.ok()) {
    return err.Invalid("'schema' is not valid base64: ", decoded.status().message());
  }
  if (decoded->empty()) return err.Invalid("'schema' is empty");
  // A non-owning view: ReadSchema copies names and metadata out of it.
  auto buffer = std::make_shared<arrow::Buffer>(*decoded);
  arrow::io::BufferReader reader(buffer);
  arrow::ipc::DictionaryMemo memo;
  auto schema = arrow::ipc::ReadSchema(&reader, &memo);
  if (!schema.ok()) {
    return err.Invalid("'schema' is not an Arrow IPC schema: ",
                       schema.status().message());
  }
  return std::move(schema).ValueUnsafe();
}

// ---------------------------------------------------------------------------------------
// Entries, shared by manifests (inline) and segment files

arrow::Result<uint32_t> GetCrc(const ManifestError& err, const Json& object,
                               const std::string& what) {
  ARROW_ASSIGN_OR_RAISE(std::string text, GetString(err, object, "crc32c", what));
  auto crc = ParseCrc32cHex(text);
  if (!crc) return err.Invalid("'", what, "' is '", text, "', must be 8 hex digits");
  return *crc;
}

// The optional digest of a referenced file: "size" and "crc32c", both or neither.
arrow::Result<std::optional<FileDigest>> GetDigest(const ManifestError& err,
                                                   const Json& object,
                                                   const std::string& at) {
  const bool has_size = Find(object, "size") != nullptr;
  const bool has_crc = Find(object, "crc32c") != nullptr;
  if (!has_size && !has_crc) return std::nullopt;
  FileDigest digest;
  ARROW_ASSIGN_OR_RAISE(digest.size, GetInt(err, object, "size", at + ".size", 0,
                                            std::numeric_limits<int64_t>::max()));
  ARROW_ASSIGN_OR_RAISE(digest.crc32c, GetCrc(err, object, at + ".crc32c"));
  return digest;
}

arrow::Result<FragmentInfo> ParseFragment(const ManifestError& err, const Json& f,
                                          const std::string& at) {
  if (!f.is_object()) {
    return err.Invalid("'", at, "' must be an object, got ", f.type_name());
  }
  FragmentInfo info;
  ARROW_ASSIGN_OR_RAISE(int64_t id, GetInt(err, f, "id", at + ".id", 0,
                                           std::numeric_limits<uint32_t>::max()));
  info.id = static_cast<uint32_t>(id);
  ARROW_ASSIGN_OR_RAISE(info.path, GetString(err, f, "path", at + ".path"));
  ARROW_ASSIGN_OR_RAISE(
      info.physical_rows,
      GetInt(err, f, "physical_rows", at + ".physical_rows", 0, kMaxFragmentRows));
  ARROW_ASSIGN_OR_RAISE(info.digest, GetDigest(err, f, at));
  if (const Json* batches = Find(f, "batches"); batches != nullptr) {
    ARROW_ASSIGN_OR_RAISE(info.num_batches, GetInt(err, f, "batches", at + ".batches", 0,
                                                   kMaxFragmentRows));
  }
  const Json* deletion = Find(f, "deletion");
  if (deletion != nullptr && !deletion->is_null()) {
    if (!deletion->is_object()) {
      return err.Invalid("'", at, ".deletion' must be an object or null, got ",
                         deletion->type_name());
    }
    DeletionFileInfo del;
    ARROW_ASSIGN_OR_RAISE(del.path,
                          GetString(err, *deletion, "path", at + ".deletion.path"));
    ARROW_ASSIGN_OR_RAISE(del.num_deleted,
                          GetInt(err, *deletion, "num_deleted",
                                 at + ".deletion.num_deleted", 0, kMaxFragmentRows));
    ARROW_ASSIGN_OR_RAISE(del.digest, GetDigest(err, *deletion, at + ".deletion"));
    info.deletion = std::move(del);
  }
  ARROW_RETURN_NOT_OK(ValidateFragment(err, info, at));
  return info;
}

arrow::Result<VersionRecord> ParseRecord(const ManifestError& err, const Json& r,
                                         const std::string& at) {
  if (!r.is_object()) {
    return err.Invalid("'", at, "' must be an object, got ", r.type_name());
  }
  VersionRecord record;
  ARROW_ASSIGN_OR_RAISE(int64_t version, GetInt(err, r, "version", at + ".version", 1,
                                                std::numeric_limits<int64_t>::max()));
  record.version = static_cast<uint64_t>(version);
  ARROW_ASSIGN_OR_RAISE(record.timestamp_ms,
                        GetInt(err, r, "timestamp_ms", at + ".timestamp_ms", 0,
                               std::numeric_limits<int64_t>::max()));
  ARROW_ASSIGN_OR_RAISE(record.operation,
                        GetString(err, r, "operation", at + ".operation"));
  return record;
}

void PutDigest(OrderedJson* object, const std::optional<FileDigest>& digest) {
  if (!digest) return;
  (*object)["size"] = digest->size;
  (*object)["crc32c"] = Crc32cHex(digest->crc32c);
}

OrderedJson FragmentJson(const FragmentInfo& f) {
  OrderedJson fragment;
  fragment["id"] = f.id;
  fragment["path"] = f.path;
  fragment["physical_rows"] = f.physical_rows;
  PutDigest(&fragment, f.digest);
  if (f.num_batches) fragment["batches"] = *f.num_batches;
  if (f.deletion) {
    OrderedJson deletion;
    deletion["path"] = f.deletion->path;
    deletion["num_deleted"] = f.deletion->num_deleted;
    PutDigest(&deletion, f.deletion->digest);
    fragment["deletion"] = std::move(deletion);
  }
  return fragment;
}

OrderedJson RecordJson(const VersionRecord& r) {
  OrderedJson record;
  record["version"] = r.version;
  record["timestamp_ms"] = r.timestamp_ms;
  record["operation"] = r.operation;
  return record;
}

template <typename Entry>
OrderedJson SegmentRefJson(const Segment<Entry>& segment) {
  OrderedJson ref;
  ref["path"] = segment.path;
  ref["count"] = segment.count;
  ref["size"] = segment.digest.size;
  ref["crc32c"] = Crc32cHex(segment.digest.crc32c);
  return ref;
}

// `"[\n<indent>  a,\n<indent>  b\n<indent>]"`: one compact entry per line, so that a
// list of thousands of entries stays small and still reads (and diffs) line by line.
std::string JsonLines(const std::vector<std::string>& items, const std::string& indent) {
  if (items.empty()) return "[]";
  std::string out = "[\n";
  for (size_t i = 0; i < items.size(); ++i) {
    out += indent + "  " + items[i] + (i + 1 < items.size() ? ",\n" : "\n");
  }
  return out + indent + "]";
}

// A format-2 list: `{"segments": [refs], "tail": [entries after them]}`.
template <typename Entry, typename ToJson>
std::string ListJson(const std::vector<Segment<Entry>>& segments,
                     std::span<const Entry> list, ToJson to_json) {
  std::vector<std::string> refs, tail;
  size_t covered = 0;
  for (const auto& segment : segments) {
    refs.push_back(SegmentRefJson(segment).dump());
    covered += static_cast<size_t>(segment.count);
  }
  for (size_t i = covered; i < list.size(); ++i) tail.push_back(to_json(list[i]).dump());
  return "{\n    \"segments\": " + JsonLines(refs, "    ") +
         ",\n    \"tail\": " + JsonLines(tail, "    ") + "\n  }";
}

template <typename Entry, typename Parse>
arrow::Status ParseList(const ManifestError& err, const Json& doc, const char* key,
                        std::vector<Segment<Entry>>* segments, std::vector<Entry>* tail,
                        Parse parse) {
  const Json* list = Find(doc, key);
  if (list == nullptr) return err.Invalid("missing key '", key, "'");
  if (!list->is_object()) {
    return err.Invalid("'", key, "' must be an object, got ", list->type_name());
  }
  const Json* refs = Find(*list, "segments");
  const Json* entries = Find(*list, "tail");
  if (refs == nullptr || !refs->is_array() || entries == nullptr ||
      !entries->is_array()) {
    return err.Invalid("'", key, "' must hold the arrays 'segments' and 'tail'");
  }
  for (size_t i = 0; i < refs->size(); ++i) {
    const Json& ref = (*refs)[i];
    std::string at = std::string(key) + ".segments[" + std::to_string(i) + "]";
    if (!ref.is_object()) {
      return err.Invalid("'", at, "' must be an object, got ", ref.type_name());
    }
    Segment<Entry> segment;
    ARROW_ASSIGN_OR_RAISE(segment.path, GetString(err, ref, "path", at + ".path"));
    ARROW_ASSIGN_OR_RAISE(segment.count, GetInt(err, ref, "count", at + ".count", 1,
                                                std::numeric_limits<uint32_t>::max()));
    ARROW_ASSIGN_OR_RAISE(
        segment.digest.size,
        GetInt(err, ref, "size", at + ".size", 0, std::numeric_limits<int64_t>::max()));
    ARROW_ASSIGN_OR_RAISE(segment.digest.crc32c, GetCrc(err, ref, at + ".crc32c"));
    ARROW_RETURN_NOT_OK(ValidateRelativePath(err, segment.path, at + ".path"));
    segments->push_back(std::move(segment));
  }
  tail->reserve(entries->size());
  for (size_t i = 0; i < entries->size(); ++i) {
    std::string at = std::string(key) + ".tail[" + std::to_string(i) + "]";
    ARROW_ASSIGN_OR_RAISE(auto entry, parse(err, (*entries)[i], at));
    tail->push_back(std::move(entry));
  }
  return arrow::Status::OK();
}

// ---------------------------------------------------------------------------------------
// The checksum header of format 2: the file starts with exactly
//   {\n  "crc32c": "<8 hex digits>",\n
// and the checksum covers every byte after it.

constexpr std::string_view kChecksumOpen = "{\n  \"crc32c\": \"";
constexpr std::string_view kChecksumClose = "\",\n";
constexpr size_t kChecksumHeader = kChecksumOpen.size() + 8 + kChecksumClose.size();

std::string WithChecksumHeader(std::string_view body_after_brace) {
  return std::string(kChecksumOpen) + Crc32cHex(Crc32c(body_after_brace)) +
         std::string(kChecksumClose) + std::string(body_after_brace);
}

// nullopt: no header (format 1); false: a header whose checksum does not match.
std::optional<bool> CheckChecksumHeader(std::string_view text, uint32_t* stored,
                                        uint32_t* actual) {
  if (text.size() < kChecksumHeader ||
      text.substr(0, kChecksumOpen.size()) != kChecksumOpen ||
      text.substr(kChecksumOpen.size() + 8, kChecksumClose.size()) != kChecksumClose) {
    return std::nullopt;
  }
  auto crc = ParseCrc32cHex(text.substr(kChecksumOpen.size(), 8));
  if (!crc) return false;
  *stored = *crc;
  *actual = Crc32c(text.substr(kChecksumHeader));
  return *stored == *actual;
}

arrow::Result<Json> ParseDocument(std::string_view text, const ManifestError& err,
                                  const char* what) {
  if (MaxJsonDepth(text) > kMaxJsonDepth) {
    return err.Invalid("JSON nested deeper than ", kMaxJsonDepth, " levels");
  }
  Json doc;
  try {
    doc = Json::parse(text.begin(), text.end());
  } catch (const Json::parse_error& e) {
    return err.Invalid("invalid JSON: ", e.what());
  }
  if (!doc.is_object()) {
    return err.Invalid("a ", what, " must be a JSON object, got ", doc.type_name());
  }
  return doc;
}

arrow::Result<int64_t> GetFormatVersion(const ManifestError& err, const Json& doc) {
  ARROW_ASSIGN_OR_RAISE(int64_t format_version,
                        GetInt(err, doc, "format_version", "format_version", 1,
                               std::numeric_limits<int64_t>::max()));
  if (format_version > kFormatVersion) {
    return err.Invalid("format_version ", format_version,
                       " is newer than this riffledb supports (", kFormatVersion,
                       "); upgrade riffledb to read this table");
  }
  return format_version;
}

arrow::Result<Manifest> ParseJson(std::string_view text, const ManifestError& err) {
  uint32_t stored = 0, actual = 0;
  const std::optional<bool> checksum = CheckChecksumHeader(text, &stored, &actual);
  if (checksum == false) {
    return err.Invalid("checksum mismatch: the file says crc32c ", Crc32cHex(stored),
                       ", its content has ", Crc32cHex(actual), " (the file is damaged)");
  }
  ARROW_ASSIGN_OR_RAISE(Json doc, ParseDocument(text, err, "manifest"));
  // format_version first: a newer format may change anything else.
  ARROW_ASSIGN_OR_RAISE(int64_t format_version, GetFormatVersion(err, doc));
  if (format_version >= 2 && !checksum) {
    return err.Invalid("a format ", format_version,
                       " manifest must start with its crc32c (the file is damaged)");
  }

  Manifest m;
  m.format_version = static_cast<int>(format_version);
  ARROW_ASSIGN_OR_RAISE(m.version, GetUint64(err, doc, "version", 1));
  ARROW_ASSIGN_OR_RAISE(m.timestamp_ms, GetInt(err, doc, "timestamp_ms", "timestamp_ms",
                                               0, std::numeric_limits<int64_t>::max()));
  ARROW_ASSIGN_OR_RAISE(m.operation, GetString(err, doc, "operation", "operation"));
  ARROW_ASSIGN_OR_RAISE(int64_t next_id,
                        GetInt(err, doc, "next_fragment_id", "next_fragment_id", 0,
                               std::numeric_limits<uint32_t>::max()));
  m.next_fragment_id = static_cast<uint32_t>(next_id);
  if (Find(doc, "table_id") != nullptr) {
    ARROW_ASSIGN_OR_RAISE(m.table_id, GetString(err, doc, "table_id", "table_id"));
  }

  if (format_version == 1) {
    const Json* fragments = Find(doc, "fragments");
    if (fragments == nullptr) return err.Invalid("missing key 'fragments'");
    if (!fragments->is_array()) {
      return err.Invalid("'fragments' must be an array, got ", fragments->type_name());
    }
    m.fragments.reserve(fragments->size());
    for (size_t i = 0; i < fragments->size(); ++i) {
      ARROW_ASSIGN_OR_RAISE(
          auto info,
          ParseFragment(err, (*fragments)[i], "fragments[" + std::to_string(i) + "]"));
      m.fragments.push_back(std::move(info));
    }
  } else {
    std::vector<FragmentInfo> fragments;
    std::vector<VersionRecord> history;
    ARROW_RETURN_NOT_OK(ParseList(err, doc, "fragments", &m.fragment_segments, &fragments,
                                  ParseFragment));
    ARROW_RETURN_NOT_OK(
        ParseList(err, doc, "history", &m.history_segments, &history, ParseRecord));
    m.fragments.assign(std::move(fragments));
    m.history.assign(std::move(history));
  }

  ARROW_ASSIGN_OR_RAISE(std::string schema, GetString(err, doc, "schema", "schema"));
  ARROW_ASSIGN_OR_RAISE(m.schema, DecodeSchema(err, schema));
  // With segments, the lists are complete (and checked) only in ResolveManifest.
  if (m.fragment_segments.empty() && m.history_segments.empty()) {
    ARROW_RETURN_NOT_OK(ValidateManifest(m, err));
    m.MarkStored();
  }
  return m;
}

template <typename Entry, typename Parse>
arrow::Result<std::vector<Entry>> ParseSegment(std::string_view text,
                                               std::string_view source, const char* kind,
                                               Parse parse) {
  ManifestError err(source, /*reading=*/true);
  try {
    ARROW_ASSIGN_OR_RAISE(Json doc, ParseDocument(text, err, "segment"));
    ARROW_ASSIGN_OR_RAISE(int64_t format_version, GetFormatVersion(err, doc));
    if (format_version < 2) return err.Invalid("segments exist from format 2 on");
    ARROW_ASSIGN_OR_RAISE(std::string actual_kind, GetString(err, doc, "kind", "kind"));
    if (actual_kind != kind) {
      return err.Invalid("a '", actual_kind, "' segment where '", kind, "' was expected");
    }
    const Json* entries = Find(doc, "entries");
    if (entries == nullptr || !entries->is_array()) {
      return err.Invalid("'entries' must be an array");
    }
    std::vector<Entry> out;
    out.reserve(entries->size());
    for (size_t i = 0; i < entries->size(); ++i) {
      ARROW_ASSIGN_OR_RAISE(
          auto entry, parse(err, (*entries)[i], "entries[" + std::to_string(i) + "]"));
      out.push_back(std::move(entry));
    }
    return out;
  } catch (const std::exception& e) {
    return err.Invalid("invalid segment: ", e.what());
  }
}

template <typename Entry, typename ToJson>
arrow::Result<std::string> SerializeSegment(const std::vector<Entry>& entries,
                                            const char* kind, ToJson to_json) {
  try {
    std::vector<std::string> lines;
    lines.reserve(entries.size());
    for (const auto& entry : entries) lines.push_back(to_json(entry).dump());
    return "{\"format_version\": " + std::to_string(kFormatVersion) + ", \"kind\": \"" +
           kind + "\", \"entries\": " + JsonLines(lines, "") + "}\n";
  } catch (const std::exception& e) {
    return arrow::Status::Invalid("Cannot serialize a ", kind, " segment: ", e.what());
  }
}

template <typename Entry>
void Resolve(std::vector<Segment<Entry>>* segments, CowVector<Entry>* list) {
  if (segments->empty()) return;
  std::vector<Entry> whole;
  size_t total = list->size();
  for (const auto& segment : *segments) total += segment.entries->size();
  whole.reserve(total);
  for (const auto& segment : *segments) {
    whole.insert(whole.end(), segment.entries->begin(), segment.entries->end());
  }
  whole.insert(whole.end(), list->begin(), list->end());
  list->assign(std::move(whole));
}

}  // namespace

int64_t Manifest::num_rows() const {
  int64_t rows = 0;
  for (const auto& fragment : fragments) rows += fragment.num_rows();
  return rows;
}

arrow::Result<std::string> SerializeManifest(const Manifest& manifest) {
  const std::string source = "manifest version " + std::to_string(manifest.version);
  ManifestError err(source, /*reading=*/false);
  ARROW_RETURN_NOT_OK(ValidateManifest(manifest, err));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> schema,
                        arrow::ipc::SerializeSchema(*manifest.schema));
  try {
    auto line = [](const char* key, const OrderedJson& value) {
      return std::string("  \"") + key + "\": " + value.dump() + ",\n";
    };
    // Everything after the opening brace; the checksum header goes before it.
    std::string body;
    body += line("format_version", kFormatVersion);
    body += line("version", manifest.version);
    body += line("timestamp_ms", manifest.timestamp_ms);
    // Throws (caught below) on invalid UTF-8: failing beats writing a damaged name.
    body += line("operation", manifest.operation);
    body += line("next_fragment_id", manifest.next_fragment_id);
    if (!manifest.table_id.empty()) body += line("table_id", manifest.table_id);
    body +=
        "  \"fragments\": " +
        ListJson(manifest.fragment_segments, manifest.fragments.span(), FragmentJson) +
        ",\n";
    body += "  \"history\": " +
            ListJson(manifest.history_segments, manifest.history.span(), RecordJson) +
            ",\n";
    body += "  \"schema\": " +
            OrderedJson(arrow::util::base64_encode(std::string_view(
                            reinterpret_cast<const char*>(schema->data()),
                            static_cast<size_t>(schema->size()))))
                .dump() +
            "\n}\n";
    return WithChecksumHeader(body);
  } catch (const std::exception& e) {
    return err.Invalid("cannot serialize: ", e.what());
  }
}

arrow::Result<std::string> SerializeManifestV1(const Manifest& manifest) {
  const std::string source = "manifest version " + std::to_string(manifest.version);
  ManifestError err(source, /*reading=*/false);
  ARROW_RETURN_NOT_OK(ValidateManifest(manifest, err));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> schema,
                        arrow::ipc::SerializeSchema(*manifest.schema));
  try {
    OrderedJson doc;
    doc["format_version"] = 1;
    doc["version"] = manifest.version;
    doc["timestamp_ms"] = manifest.timestamp_ms;
    doc["operation"] = manifest.operation;
    doc["next_fragment_id"] = manifest.next_fragment_id;
    OrderedJson fragments = OrderedJson::array();
    for (const FragmentInfo& f : manifest.fragments) {
      OrderedJson fragment;
      fragment["id"] = f.id;
      fragment["path"] = f.path;
      fragment["physical_rows"] = f.physical_rows;
      if (f.deletion) {
        fragment["deletion"] = {{"path", f.deletion->path},
                                {"num_deleted", f.deletion->num_deleted}};
      }
      fragments.push_back(std::move(fragment));
    }
    doc["fragments"] = std::move(fragments);
    doc["schema"] = arrow::util::base64_encode(
        std::string_view(reinterpret_cast<const char*>(schema->data()),
                         static_cast<size_t>(schema->size())));
    return doc.dump(2) + "\n";
  } catch (const std::exception& e) {
    return err.Invalid("cannot serialize: ", e.what());
  }
}

arrow::Result<Manifest> ParseManifest(std::string_view json, std::string_view source) {
  ManifestError err(source, /*reading=*/true);
  try {
    return ParseJson(json, err);
  } catch (const std::exception& e) {
    // nlohmann type errors and allocation failures on hostile input.
    return err.Invalid("invalid manifest: ", e.what());
  }
}

arrow::Result<std::string> SerializeFragmentSegment(
    const std::vector<FragmentInfo>& entries) {
  return SerializeSegment(entries, "fragments", FragmentJson);
}

arrow::Result<std::string> SerializeHistorySegment(
    const std::vector<VersionRecord>& entries) {
  return SerializeSegment(entries, "history", RecordJson);
}

arrow::Result<std::vector<FragmentInfo>> ParseFragmentSegment(std::string_view json,
                                                              std::string_view source) {
  return ParseSegment<FragmentInfo>(json, source, "fragments", ParseFragment);
}

arrow::Result<std::vector<VersionRecord>> ParseHistorySegment(std::string_view json,
                                                              std::string_view source) {
  return ParseSegment<VersionRecord>(json, source, "history", ParseRecord);
}

arrow::Status ResolveManifest(Manifest* manifest, std::string_view source) {
  ManifestError err(source, /*reading=*/true);
  auto check = [&](const auto& segments) -> arrow::Status {
    for (size_t i = 0; i < segments.size(); ++i) {
      const auto& segment = segments[i];
      if (segment.entries == nullptr ||
          static_cast<int64_t>(segment.entries->size()) != segment.count) {
        return err.Invalid("segment '", segment.path, "' holds ",
                           segment.entries ? segment.entries->size() : 0,
                           " entries, the manifest says ", segment.count);
      }
    }
    return arrow::Status::OK();
  };
  ARROW_RETURN_NOT_OK(check(manifest->fragment_segments));
  ARROW_RETURN_NOT_OK(check(manifest->history_segments));
  Resolve(&manifest->fragment_segments, &manifest->fragments);
  Resolve(&manifest->history_segments, &manifest->history);
  ARROW_RETURN_NOT_OK(ValidateManifest(*manifest, err));
  manifest->MarkStored();
  return arrow::Status::OK();
}

std::vector<std::string> ReferencedFiles(const Manifest& manifest) {
  std::vector<std::string> paths;
  paths.reserve(manifest.fragments.size() + manifest.fragment_segments.size() +
                manifest.history_segments.size());
  for (const auto& fragment : manifest.fragments) {
    paths.push_back(fragment.path);
    if (fragment.deletion) paths.push_back(fragment.deletion->path);
  }
  for (const auto& segment : manifest.fragment_segments) paths.push_back(segment.path);
  for (const auto& segment : manifest.history_segments) paths.push_back(segment.path);
  return paths;
}

std::string DataFilePath(std::string_view name) {
  std::string path(kDataDir);
  path += '/';
  path += name;
  return path;
}

bool IsDataFilePath(std::string_view path) {
  return path.size() > kDataDir.size() + 1 && path.starts_with(kDataDir) &&
         path[kDataDir.size()] == '/' &&
         path.find('/', kDataDir.size() + 1) == std::string_view::npos;
}

// ---------------------------------------------------------------------------------------
// Fragment descriptions (Table::WriteFragments / CommitFragments)

namespace {

constexpr std::string_view kDescriptionKind = "riffledb.written_fragments";
constexpr std::string_view kDescriptionSource = "Invalid fragment description";

// The checks FromJson makes beyond the JSON encoding, shared with ToJson so that it
// never writes what FromJson would reject: those of a manifest's fragment entry
// (ValidateFragment, whose messages they are), and what a description adds.
arrow::Status ValidateWrittenFragment(const ManifestError& err, const WrittenFragment& f,
                                      const std::string& at) {
  // A description never reaches a manifest, segment or deletion file.
  if (!IsDataFilePath(f.path)) {
    ARROW_RETURN_NOT_OK(ValidateRelativePath(err, f.path, at + ".path"));
    return err.Invalid("'", at, ".path' is '", f.path,
                       "', must name a file in the table's ", kDataDir, "/ directory");
  }
  // WriteFragments never writes a file without rows (a manifest may list one).
  if (f.physical_rows < 1) {
    return err.Invalid("'", at, ".physical_rows' is ", f.physical_rows,
                       ", must be at least 1");
  }
  FragmentInfo info;
  info.path = f.path;
  info.physical_rows = f.physical_rows;
  info.digest = f.digest;
  info.num_batches = f.num_batches;
  return ValidateFragment(err, info, at);
}

arrow::Status ValidateWrittenFragments(const ManifestError& err,
                                       const WrittenFragments& w) {
  if (w.table.empty()) return err.Invalid("'table' is empty");
  if (w.base_version < 1) {
    return err.Invalid("'base_version' is ", w.base_version, ", must be at least 1");
  }
  if (w.schema == nullptr) return err.Invalid("'schema' is missing");
  // A file named twice, here or across descriptions, is refused by CommitFragments, the
  // one place that sees them all.
  for (size_t i = 0; i < w.fragments.size(); ++i) {
    ARROW_RETURN_NOT_OK(ValidateWrittenFragment(err, w.fragments[i],
                                                "fragments[" + std::to_string(i) + "]"));
  }
  return arrow::Status::OK();
}

}  // namespace

int64_t WrittenFragments::num_rows() const {
  int64_t rows = 0;
  for (const auto& fragment : fragments) rows += fragment.physical_rows;
  return rows;
}

std::vector<WrittenFragments> WrittenFragments::SplitByFile() const {
  if (fragments.size() <= 1) return {*this};
  std::vector<WrittenFragments> split;
  split.reserve(fragments.size());
  for (const auto& fragment : fragments) {
    split.push_back({table, base_version, schema, {fragment}});
  }
  return split;
}

arrow::Result<std::string> WrittenFragments::ToJson() const {
  ManifestError err(kDescriptionSource, /*reading=*/false);
  ARROW_RETURN_NOT_OK(ValidateWrittenFragments(err, *this));
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> ipc_schema,
                        arrow::ipc::SerializeSchema(*schema));
  try {
    OrderedJson doc;
    doc["kind"] = kDescriptionKind;
    doc["format_version"] = kFormatVersion;
    doc["table"] = table;
    doc["base_version"] = base_version;
    doc["schema"] = arrow::util::base64_encode(
        std::string_view(reinterpret_cast<const char*>(ipc_schema->data()),
                         static_cast<size_t>(ipc_schema->size())));
    OrderedJson list = OrderedJson::array();
    for (const auto& f : fragments) {
      OrderedJson fragment;
      fragment["path"] = f.path;
      fragment["physical_rows"] = f.physical_rows;
      fragment["batches"] = f.num_batches;
      PutDigest(&fragment, f.digest);
      list.push_back(std::move(fragment));
    }
    doc["fragments"] = std::move(list);
    // Throws (caught below) on invalid UTF-8 in the table name.
    return doc.dump();
  } catch (const std::exception& e) {
    return err.Invalid("cannot serialize: ", e.what());
  }
}

arrow::Result<WrittenFragments> WrittenFragments::FromJson(std::string_view json) {
  ManifestError err(kDescriptionSource, /*reading=*/false);
  ARROW_ASSIGN_OR_RAISE(Json doc, ParseDocument(json, err, "fragment description"));
  ARROW_ASSIGN_OR_RAISE(std::string kind, GetString(err, doc, "kind", "kind"));
  if (kind != kDescriptionKind) {
    return err.Invalid("'kind' is '", kind, "', must be '", kDescriptionKind, "'");
  }
  ARROW_ASSIGN_OR_RAISE(int64_t format_version, GetFormatVersion(err, doc));
  if (format_version < 2) {
    return err.Invalid("'format_version' is ", format_version,
                       ", descriptions start at format 2");
  }
  WrittenFragments w;
  ARROW_ASSIGN_OR_RAISE(w.table, GetString(err, doc, "table", "table"));
  ARROW_ASSIGN_OR_RAISE(w.base_version, GetUint64(err, doc, "base_version", 1));
  ARROW_ASSIGN_OR_RAISE(std::string schema, GetString(err, doc, "schema", "schema"));
  ARROW_ASSIGN_OR_RAISE(w.schema, DecodeSchema(err, schema));
  const Json* fragments = Find(doc, "fragments");
  if (fragments == nullptr) return err.Invalid("missing key 'fragments'");
  if (!fragments->is_array()) {
    return err.Invalid("'fragments' must be an array, got ", fragments->type_name());
  }
  w.fragments.reserve(fragments->size());
  for (size_t i = 0; i < fragments->size(); ++i) {
    const Json& f = (*fragments)[i];
    const std::string at = "fragments[" + std::to_string(i) + "]";
    if (!f.is_object()) {
      return err.Invalid("'", at, "' must be an object, got ", f.type_name());
    }
    WrittenFragment fragment;
    ARROW_ASSIGN_OR_RAISE(fragment.path, GetString(err, f, "path", at + ".path"));
    ARROW_ASSIGN_OR_RAISE(
        fragment.physical_rows,
        GetInt(err, f, "physical_rows", at + ".physical_rows", 1, kMaxFragmentRows));
    ARROW_ASSIGN_OR_RAISE(fragment.num_batches, GetInt(err, f, "batches", at + ".batches",
                                                       1, kMaxFragmentRows));
    ARROW_ASSIGN_OR_RAISE(fragment.digest, GetDigest(err, f, at));
    w.fragments.push_back(std::move(fragment));
  }
  ARROW_RETURN_NOT_OK(ValidateWrittenFragments(err, w));
  return w;
}

}  // namespace riffledb::format
