// Manifest JSON (docs/format.md, "Manifests"). Keys, all required unless noted:
//
//   format_version    integer  on-disk format version; readers reject newer ones
//   version           integer  table version, >= 1 (also the file name)
//   timestamp_ms      integer  commit time, milliseconds since the Unix epoch, >= 0
//   operation         string   what made this version ("create", "append", ...)
//   schema            string   base64 of the Arrow IPC schema message (all
//   types/metadata) next_fragment_id  integer  uint32, greater than every fragment id
//   ever used fragments         array    in scan order, each an object:
//     id              integer  uint32, unique, < next_fragment_id
//     path            string   data file, relative to the table directory
//     physical_rows   integer  rows in the file incl. deleted ones, 0..2^32
//     deletion        object   optional (absent or null): the fragment's deletion file
//       path          string   relative to the table directory
//       num_deleted   integer  distinct deleted rows, 0..physical_rows
//
// Unknown keys are ignored so that additions a format-1 reader may skip need no new
// format version.
#include "riffledb/format/manifest.h"

#include <arrow/buffer.h>
#include <arrow/io/memory.h>
#include <arrow/ipc/dictionary.h>
#include <arrow/ipc/reader.h>
#include <arrow/ipc/writer.h>
#include <arrow/util/base64.h>

#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>

#include "riffledb/util/status.h"

namespace riffledb::format {

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

// Nesting deeper than this is not a manifest; rejecting it before parsing bounds the work
// (and stack) spent on hostile input.
constexpr int kMaxJsonDepth = 16;
// Row ids keep the row within its fragment in 32 bits.
constexpr int64_t kMaxFragmentRows = int64_t{1} << 32;

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
arrow::Status ValidateRelativePath(const ManifestError& err, const std::string& path,
                                   const std::string& what) {
  if (path.empty()) return err.Invalid("'", what, "' is empty");
  if (path.front() == '/') {
    return err.Invalid("'", what, "' is '", path,
                       "', must be relative to the table directory");
  }
  if (path.find('\0') != std::string::npos || path.find('\\') != std::string::npos) {
    return err.Invalid("'", what, "' contains a NUL or backslash character");
  }
  size_t begin = 0;
  while (begin <= path.size()) {
    size_t end = path.find('/', begin);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + begin, end - begin);
    if (part.empty() || part == "." || part == "..") {
      return err.Invalid("'", what, "' is '", path,
                         "': a path must not contain empty, '.' or '..' components");
    }
    begin = end + 1;
  }
  return arrow::Status::OK();
}

// Checks the invariants that do not depend on the JSON encoding, so that
// SerializeManifest never writes what ParseManifest would reject.
arrow::Status ValidateManifest(const Manifest& m, const ManifestError& err) {
  if (m.version < 1) return err.Invalid("'version' is 0, must be at least 1");
  if (m.timestamp_ms < 0) {
    return err.Invalid("'timestamp_ms' is ", m.timestamp_ms, ", must be at least 0");
  }
  if (m.schema == nullptr) return err.Invalid("manifest has no schema");
  std::unordered_set<uint32_t> ids;
  int64_t total_rows = 0;
  for (size_t i = 0; i < m.fragments.size(); ++i) {
    const FragmentInfo& f = m.fragments[i];
    std::string at = "fragments[" + std::to_string(i) + "]";
    if (!ids.insert(f.id).second) {
      return err.Invalid("duplicate fragment id ", f.id, " at ", at);
    }
    if (f.id >= m.next_fragment_id) {
      return err.Invalid("'", at, ".id' is ", f.id, ", must be below next_fragment_id (",
                         m.next_fragment_id, ")");
    }
    ARROW_RETURN_NOT_OK(ValidateRelativePath(err, f.path, at + ".path"));
    if (f.physical_rows < 0 || f.physical_rows > kMaxFragmentRows) {
      return err.Invalid("'", at, ".physical_rows' is ", f.physical_rows,
                         ", must be in [0, ", kMaxFragmentRows, "]");
    }
    if (f.deletion) {
      ARROW_RETURN_NOT_OK(
          ValidateRelativePath(err, f.deletion->path, at + ".deletion.path"));
      if (f.deletion->num_deleted < 0 || f.deletion->num_deleted > f.physical_rows) {
        return err.Invalid("'", at, ".deletion.num_deleted' is ", f.deletion->num_deleted,
                           ", must be in [0, physical_rows = ", f.physical_rows, "]");
      }
    }
    // At most 2^32 rows per fragment: overflow needs more than 2^31 fragments, which
    // only a hostile file has.
    if (total_rows > std::numeric_limits<int64_t>::max() - f.physical_rows) {
      return err.Invalid("total row count overflows");
    }
    total_rows += f.physical_rows;
  }
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

arrow::Result<Manifest> ParseJson(std::string_view text, const ManifestError& err) {
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
    return err.Invalid("a manifest must be a JSON object, got ", doc.type_name());
  }

  // format_version first: a newer format may change anything else.
  ARROW_ASSIGN_OR_RAISE(int64_t format_version,
                        GetInt(err, doc, "format_version", "format_version", 1,
                               std::numeric_limits<int64_t>::max()));
  if (format_version > kFormatVersion) {
    return err.Invalid("format_version ", format_version,
                       " is newer than this riffledb supports (", kFormatVersion,
                       "); upgrade riffledb to read this table");
  }

  Manifest m;
  ARROW_ASSIGN_OR_RAISE(m.version, GetUint64(err, doc, "version", 1));
  ARROW_ASSIGN_OR_RAISE(m.timestamp_ms, GetInt(err, doc, "timestamp_ms", "timestamp_ms",
                                               0, std::numeric_limits<int64_t>::max()));
  ARROW_ASSIGN_OR_RAISE(m.operation, GetString(err, doc, "operation", "operation"));
  ARROW_ASSIGN_OR_RAISE(int64_t next_id,
                        GetInt(err, doc, "next_fragment_id", "next_fragment_id", 0,
                               std::numeric_limits<uint32_t>::max()));
  m.next_fragment_id = static_cast<uint32_t>(next_id);

  const Json* fragments = Find(doc, "fragments");
  if (fragments == nullptr) return err.Invalid("missing key 'fragments'");
  if (!fragments->is_array()) {
    return err.Invalid("'fragments' must be an array, got ", fragments->type_name());
  }
  m.fragments.reserve(fragments->size());
  for (size_t i = 0; i < fragments->size(); ++i) {
    const Json& f = (*fragments)[i];
    std::string at = "fragments[" + std::to_string(i) + "]";
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
      info.deletion = std::move(del);
    }
    m.fragments.push_back(std::move(info));
  }

  ARROW_ASSIGN_OR_RAISE(std::string schema, GetString(err, doc, "schema", "schema"));
  ARROW_ASSIGN_OR_RAISE(m.schema, DecodeSchema(err, schema));
  ARROW_RETURN_NOT_OK(ValidateManifest(m, err));
  return m;
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
    OrderedJson doc;
    doc["format_version"] = kFormatVersion;
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
    // Throws (caught below) on invalid UTF-8 in a path: failing beats renaming a file.
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

}  // namespace riffledb::format
