#include "riffledb/remote/protocol.h"

#include <arrow/util/key_value_metadata.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <cctype>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "riffledb/db/database.h"

namespace riffledb::remote {

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;

constexpr std::string_view kTablePrefix = "/v1/table";
constexpr std::string_view kNamespacePrefix = "/v1/namespace/";

std::string_view StripSlashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return s;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Dumps untrusted text as JSON; invalid UTF-8 is replaced rather than thrown on.
template <typename J>
std::string Dump(const J& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

// The body parsed as a JSON object (an empty body: an empty object). Invalid naming the
// request for anything else.
arrow::Result<OrderedJson> ParseObject(std::string_view body, std::string_view what) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    return OrderedJson::object();
  }
  // nlohmann's parser would end the input at a NUL byte and ignore what follows.
  const bool nul = body.find('\0') != std::string_view::npos;
  OrderedJson doc = nul ? OrderedJson(OrderedJson::value_t::discarded)
                        : OrderedJson::parse(body.begin(), body.end(), nullptr,
                                             /*allow_exceptions=*/false);
  if (doc.is_discarded()) {
    return arrow::Status::Invalid("Invalid ", what, " request body: not valid JSON");
  }
  if (!doc.is_object()) {
    return arrow::Status::Invalid(
        "Invalid ", what, " request body: expected a JSON object, got ", doc.type_name());
  }
  return doc;
}

// `field`, if present and not null, as a non-negative integer.
arrow::Result<std::optional<uint64_t>> OptionalUnsigned(const OrderedJson& doc,
                                                        const char* field) {
  auto it = doc.find(field);
  if (it == doc.end() || it->is_null()) return std::nullopt;
  if (it->is_number_unsigned()) return it->template get<uint64_t>();
  if (it->is_number_integer()) {
    return arrow::Status::Invalid("Invalid '", field,
                                  "': expected a non-negative integer, got ",
                                  it->template get<int64_t>());
  }
  return arrow::Status::Invalid("Invalid '", field, "': expected an integer, got ",
                                it->type_name());
}

arrow::Result<std::optional<std::string>> OptionalString(const OrderedJson& doc,
                                                         const char* field) {
  auto it = doc.find(field);
  if (it == doc.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    return arrow::Status::Invalid("Invalid '", field, "': expected a string, got ",
                                  it->type_name());
  }
  return it->template get<std::string>();
}

arrow::Result<bool> OptionalBool(const OrderedJson& doc, const char* field) {
  auto it = doc.find(field);
  if (it == doc.end() || it->is_null()) return false;
  if (!it->is_boolean()) {
    return arrow::Status::Invalid("Invalid '", field, "': expected true or false, got ",
                                  it->type_name());
  }
  return it->template get<bool>();
}

const char* TimeUnitName(arrow::TimeUnit::type unit) {
  switch (unit) {
    case arrow::TimeUnit::SECOND:
      return "s";
    case arrow::TimeUnit::MILLI:
      return "ms";
    case arrow::TimeUnit::MICRO:
      return "us";
    case arrow::TimeUnit::NANO:
      return "ns";
  }
  return "?";
}

arrow::Result<Json> FieldJson(const arrow::Field& field, int depth);

Json MetadataJson(const arrow::KeyValueMetadata& metadata) {
  Json out = Json::object();
  for (int64_t i = 0; i < metadata.size(); ++i) out[metadata.key(i)] = metadata.value(i);
  return out;
}

// lance's JSON data type (lance::arrow::json::JsonDataType) of `type`.
arrow::Result<Json> TypeJson(const arrow::DataType& type, const std::string& field_name,
                             int depth) {
  using arrow::Type;
  Json out = Json::object();
  auto children = [&]() -> arrow::Result<Json> {
    Json fields = Json::array();
    for (const auto& child : type.fields()) {
      ARROW_ASSIGN_OR_RAISE(auto json, FieldJson(*child, depth + 1));
      fields.push_back(std::move(json));
    }
    return fields;
  };
  switch (type.id()) {
    case Type::NA:
      out["type"] = "null";
      break;
    case Type::BOOL:
      out["type"] = "bool";
      break;
    case Type::INT8:
    case Type::INT16:
    case Type::INT32:
    case Type::INT64:
    case Type::UINT8:
    case Type::UINT16:
    case Type::UINT32:
    case Type::UINT64:
      out["type"] = type.ToString();  // int8 ... uint64, as Arrow names them
      break;
    case Type::HALF_FLOAT:
      out["type"] = "halffloat";
      break;
    case Type::FLOAT:
      out["type"] = "float";
      break;
    case Type::DOUBLE:
      out["type"] = "double";
      break;
    case Type::STRING:
    case Type::STRING_VIEW:
      out["type"] = "string";
      break;
    case Type::LARGE_STRING:
      out["type"] = "large_string";
      break;
    case Type::BINARY:
    case Type::BINARY_VIEW:
      out["type"] = "binary";
      break;
    case Type::LARGE_BINARY:
      out["type"] = "large_binary";
      break;
    case Type::DATE32:
      out["type"] = "date32:day";
      break;
    case Type::DATE64:
      out["type"] = "date64:ms";
      break;
    case Type::TIME32:
      out["type"] = std::string("time32:") +
                    TimeUnitName(static_cast<const arrow::Time32Type&>(type).unit());
      break;
    case Type::TIME64:
      out["type"] = std::string("time64:") +
                    TimeUnitName(static_cast<const arrow::Time64Type&>(type).unit());
      break;
    case Type::DURATION:
      out["type"] = std::string("duration:") +
                    TimeUnitName(static_cast<const arrow::DurationType&>(type).unit());
      break;
    case Type::TIMESTAMP: {
      const auto& ts = static_cast<const arrow::TimestampType&>(type);
      out["type"] = std::string("timestamp:") + TimeUnitName(ts.unit()) + ":" +
                    (ts.timezone().empty() ? "-" : ts.timezone());
      break;
    }
    case Type::DECIMAL128:
    case Type::DECIMAL256: {
      const auto& dec = static_cast<const arrow::DecimalType&>(type);
      out["type"] = "decimal:" + std::to_string(dec.bit_width()) + ":" +
                    std::to_string(dec.precision()) + ":" + std::to_string(dec.scale());
      break;
    }
    case Type::FIXED_SIZE_BINARY:
      out["type"] = "fixed_size_binary";
      out["length"] = static_cast<const arrow::FixedSizeBinaryType&>(type).byte_width();
      break;
    case Type::LIST:
    case Type::LARGE_LIST:
    case Type::FIXED_SIZE_LIST:
    case Type::STRUCT: {
      out["type"] = type.id() == Type::LIST              ? "list"
                    : type.id() == Type::LARGE_LIST      ? "large_list"
                    : type.id() == Type::FIXED_SIZE_LIST ? "fixed_size_list"
                                                         : "struct";
      ARROW_ASSIGN_OR_RAISE(out["fields"], children());
      if (type.id() == Type::FIXED_SIZE_LIST) {
        out["length"] = static_cast<const arrow::FixedSizeListType&>(type).list_size();
      }
      break;
    }
    case Type::DICTIONARY: {
      const auto& dict = static_cast<const arrow::DictionaryType&>(type);
      ARROW_ASSIGN_OR_RAISE(auto value, TypeJson(*dict.value_type(), field_name, depth));
      ARROW_ASSIGN_OR_RAISE(auto index, TypeJson(*dict.index_type(), field_name, depth));
      out["type"] = "dict:" + value["type"].get<std::string>() + ":" +
                    index["type"].get<std::string>() + ":" +
                    (dict.ordered() ? "true" : "false");
      break;
    }
    default:
      return arrow::Status::NotImplemented("Column '", field_name, "' has type ",
                                           type.ToString(),
                                           ", which LanceDB's JSON schema cannot name");
  }
  return out;
}

arrow::Result<Json> FieldJson(const arrow::Field& field, int depth) {
  // Schemas come from stored tables (bounded nesting already), but stay safe.
  if (depth > 64) {
    return arrow::Status::NotImplemented("Column '", field.name(),
                                         "' is nested too deep");
  }
  Json out = Json::object();
  out["name"] = field.name();
  ARROW_ASSIGN_OR_RAISE(out["type"], TypeJson(*field.type(), field.name(), depth));
  out["nullable"] = field.nullable();
  if (field.metadata() != nullptr && field.metadata()->size() > 0) {
    out["metadata"] = MetadataJson(*field.metadata());
  }
  return out;
}

}  // namespace

arrow::Result<std::string> PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      const bool complete = i + 2 < text.size();
      const int hi = complete ? HexValue(text[i + 1]) : -1;
      const int lo = complete ? HexValue(text[i + 2]) : -1;
      if (hi < 0 || lo < 0) {
        return arrow::Status::Invalid("bad percent escape at position ", i + 1);
      }
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    } else if (c == '+' && plus_is_space) {
      c = ' ';
    }
    if (c == '\0') {
      return arrow::Status::Invalid("NUL byte (%00) at position ", i + 1);
    }
    out.push_back(c);
  }
  return out;
}

arrow::Result<std::vector<std::pair<std::string, std::string>>> ParseQueryString(
    std::string_view query) {
  std::vector<std::pair<std::string, std::string>> params;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view piece = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    std::string_view raw_key = piece.substr(0, eq);
    std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1);
    auto key = PercentDecode(raw_key, /*plus_is_space=*/true);
    if (!key.ok()) {
      return arrow::Status::Invalid("Invalid query string: parameter name: ",
                                    key.status().message());
    }
    auto value = PercentDecode(raw_value, /*plus_is_space=*/true);
    if (!value.ok()) {
      return arrow::Status::Invalid("Invalid query string: parameter '", *key,
                                    "': ", value.status().message());
    }
    // A parameter given twice would be read one way here (the last) and maybe another
    // by a proxy or gateway in front (`mode=create&mode=overwrite`): refused.
    if (!key->empty() && std::any_of(params.begin(), params.end(),
                                     [&](const auto& p) { return p.first == *key; })) {
      return arrow::Status::Invalid("Invalid query string: parameter '", *key,
                                    "' is given more than once");
    }
    params.emplace_back(std::move(*key), std::move(*value));
  }
  return params;
}

std::optional<std::string> FindParam(
    const std::vector<std::pair<std::string, std::string>>& params,
    std::string_view name) {
  std::optional<std::string> found;
  for (const auto& [key, value] : params) {
    if (key == name) found = value;
  }
  return found;
}

arrow::Result<Route> ParseRoute(std::string_view target) {
  size_t question = target.find('?');
  std::string_view path = target.substr(0, question);
  Route route;
  if (question != std::string_view::npos) {
    ARROW_ASSIGN_OR_RAISE(route.params, ParseQueryString(target.substr(question + 1)));
  }
  auto no_route = [&] {
    return arrow::Status::KeyError("No such route: '", std::string(path.substr(0, 200)),
                                   "'");
  };
  // One spelling per route: `/v1/table//t/drop/` or a fragment is what a path rule of a
  // proxy in front would not match.
  if (path.find("//") != std::string_view::npos ||
      path.find('#') != std::string_view::npos) {
    return no_route();
  }
  if (path.starts_with(kNamespacePrefix)) {
    // `/v1/namespace/{id}/table/list`: only the root namespace (the delimiter, `$`).
    std::string_view rest = path.substr(kNamespacePrefix.size());
    size_t slash = rest.find('/');
    if (slash == std::string_view::npos ||
        StripSlashes(rest.substr(slash)) != "table/list") {
      return no_route();
    }
    ARROW_ASSIGN_OR_RAISE(auto id, PercentDecode(rest.substr(0, slash), false));
    if (id != "$") {
      return arrow::Status::KeyError("No such namespace: '", id.substr(0, 200),
                                     "' (riffledb serves the root namespace '$' only)");
    }
    route.kind = Route::Kind::kListTables;
    return route;
  }
  if (!path.starts_with(kTablePrefix)) return no_route();
  std::string_view rest = path.substr(kTablePrefix.size());
  if (!rest.empty() && rest.front() != '/') return no_route();
  rest = StripSlashes(rest);
  if (rest.empty()) {
    route.kind = Route::Kind::kListTables;
    return route;
  }
  size_t slash = rest.find('/');
  std::string_view raw_name = rest.substr(0, slash);
  std::string_view action = slash == std::string_view::npos
                                ? std::string_view()
                                : StripSlashes(rest.substr(slash));
  auto name = PercentDecode(raw_name, /*plus_is_space=*/false);
  if (!name.ok()) {
    return arrow::Status::Invalid("Invalid table name in the path: ",
                                  name.status().message());
  }
  ARROW_RETURN_NOT_OK(Database::ValidateTableName(*name));
  if (action.empty()) return no_route();
  route.kind = Route::Kind::kTable;
  route.table = std::move(*name);
  route.action = std::string(action);
  return route;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Equal-length digests, compared by OpenSSL's constant-time memcmp: the time depends
  // on neither where the keys differ nor the length of the secret.
  unsigned char da[SHA256_DIGEST_LENGTH];
  unsigned char db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, SHA256_DIGEST_LENGTH) == 0 && a.size() == b.size();
}

arrow::Result<ReadRequest> ParseReadRequest(std::string_view body) {
  ARROW_ASSIGN_OR_RAISE(auto doc, ParseObject(body, "read"));
  ReadRequest request;
  ARROW_ASSIGN_OR_RAISE(request.version, OptionalUnsigned(doc, "version"));
  ARROW_ASSIGN_OR_RAISE(request.predicate, OptionalString(doc, "predicate"));
  ARROW_ASSIGN_OR_RAISE(request.table_id, OptionalString(doc, "table_id"));
  return request;
}

namespace {

// The end of the JSON string whose opening quote is at `open` (its closing quote's
// index; npos if it has none), and whether it is plain: printable ASCII, no escape.
size_t EndOfString(std::string_view text, size_t open, bool* plain) {
  *plain = true;
  size_t i = open + 1;
  // Eight bytes at a time while none is a quote, a backslash, a control or non-ASCII
  // byte (SWAR: a byte's high bit set in `special` marks one of those).
  constexpr uint64_t kOnes = 0x0101010101010101ULL, kHigh = 0x8080808080808080ULL;
  while (i + 8 <= text.size()) {
    uint64_t word;
    std::memcpy(&word, text.data() + i, 8);
    const uint64_t quote = word ^ (kOnes * '"'), slash = word ^ (kOnes * '\\');
    const uint64_t special = ((quote - kOnes) & ~quote) | ((slash - kOnes) & ~slash) |
                             (word - kOnes * 0x20) | word;
    if ((special & kHigh) != 0) break;
    i += 8;
  }
  for (; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"') return i;
    if (c == '\\') {
      *plain = false;
      ++i;  // the escaped character
    } else if (c < 0x20 || c >= 0x80) {
      *plain = false;
    }
  }
  return std::string_view::npos;
}

size_t SkipJsonSpace(std::string_view text, size_t i) {
  while (i < text.size() &&
         (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r')) {
    ++i;
  }
  return i;
}

arrow::Result<QueryRequest> ParseQueryRequestFrom(std::string_view body, bool lift) {
  std::optional<internal::LiftedFilter> lifted;
  if (lift) lifted = internal::LiftFilter(body);
  ARROW_ASSIGN_OR_RAISE(
      auto doc, ParseObject(lifted ? std::string_view(lifted->rest) : body, "query"));
  QueryRequest request;
  ARROW_ASSIGN_OR_RAISE(request.version, OptionalUnsigned(doc, "version"));
  // k: the limit. isize::MAX (or anything past int64) and 0 mean none (spec §6.1).
  if (auto k = doc.find("k"); k != doc.end() && !k->is_null()) {
    if (k->is_number_unsigned()) {
      uint64_t value = k->get<uint64_t>();
      if (value != 0 &&
          value < static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        request.limit = static_cast<int64_t>(value);
      }
    } else if (k->is_number_integer()) {
      return arrow::Status::Invalid("Invalid 'k': expected a non-negative integer, got ",
                                    k->get<int64_t>());
    } else {
      return arrow::Status::Invalid("Invalid 'k': expected an integer, got ",
                                    k->type_name());
    }
  }
  ARROW_ASSIGN_OR_RAISE(auto offset, OptionalUnsigned(doc, "offset"));
  if (offset) {
    if (*offset > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return arrow::Status::Invalid("Invalid 'offset': ", *offset, " is too large");
    }
    request.offset = static_cast<int64_t>(*offset);
  }
  ARROW_ASSIGN_OR_RAISE(request.filter, OptionalString(doc, "filter"));
  if (lifted) request.filter = std::string(lifted->filter);  // was "" in `rest`
  ARROW_ASSIGN_OR_RAISE(request.table_id, OptionalString(doc, "table_id"));
  ARROW_ASSIGN_OR_RAISE(request.with_row_id, OptionalBool(doc, "with_row_id"));
  if (auto columns = doc.find("columns"); columns != doc.end() && !columns->is_null()) {
    if (columns->is_array()) {
      for (size_t i = 0; i < columns->size(); ++i) {
        const auto& name = (*columns)[i];
        if (!name.is_string()) {
          return arrow::Status::Invalid("Invalid 'columns[", i,
                                        "]': expected a column name, got ",
                                        name.type_name());
        }
        request.columns.emplace_back(name.get<std::string>(), name.get<std::string>());
      }
    } else if (columns->is_object()) {
      request.columns_are_names = false;
      for (const auto& [alias, sql] : columns->items()) {
        if (!sql.is_string()) {
          return arrow::Status::Invalid("Invalid 'columns.", alias.substr(0, 200),
                                        "': expected a SQL expression string, got ",
                                        sql.type_name());
        }
        request.columns.emplace_back(alias, sql.get<std::string>());
      }
    } else {
      return arrow::Status::Invalid(
          "Invalid 'columns': expected a list of names or an object of expressions, "
          "got ",
          columns->type_name());
    }
  }
  if (auto vector = doc.find("vector"); vector != doc.end() && !vector->is_null()) {
    if (!vector->is_array()) {
      return arrow::Status::Invalid("Invalid 'vector': expected a list, got ",
                                    vector->type_name());
    }
    if (!vector->empty()) {
      return arrow::Status::NotImplemented(
          "Vector search ('vector') is not supported by riffledb serve");
    }
  }
  if (auto fts = doc.find("full_text_query"); fts != doc.end() && !fts->is_null()) {
    return arrow::Status::NotImplemented(
        "Full-text search ('full_text_query') is not supported by riffledb serve");
  }
  if (auto order = doc.find("order_by"); order != doc.end() && !order->is_null()) {
    if (!order->is_array() || !order->empty()) {
      return arrow::Status::NotImplemented(
          "Ordering ('order_by') is not supported by riffledb serve");
    }
  }
  return request;
}

}  // namespace

arrow::Result<QueryRequest> ParseQueryRequest(std::string_view body) {
  return ParseQueryRequestFrom(body, /*lift=*/true);
}

namespace internal {

arrow::Result<QueryRequest> ParseQueryRequestWhole(std::string_view body) {
  return ParseQueryRequestFrom(body, /*lift=*/false);
}

std::optional<LiftedFilter> LiftFilter(std::string_view body) {
  constexpr std::string_view kKey = "filter";
  size_t value_open = std::string_view::npos, value_close = 0;
  int depth = 0;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == '"') {
      bool plain = false;
      const size_t close = EndOfString(body, i, &plain);
      if (close == std::string_view::npos) return std::nullopt;
      if (depth == 1) {
        if (!plain) return std::nullopt;
        const size_t colon = SkipJsonSpace(body, close + 1);
        if (body.substr(i + 1, close - i - 1) == kKey && colon < body.size() &&
            body[colon] == ':') {
          const size_t open = SkipJsonSpace(body, colon + 1);
          if (open >= body.size() || body[open] != '"') return std::nullopt;
          if (value_open != std::string_view::npos) return std::nullopt;  // twice
          const size_t end = EndOfString(body, open, &plain);
          if (end == std::string_view::npos || !plain) return std::nullopt;
          value_open = open;
          value_close = end;
          i = end;
          continue;
        }
      }
      i = close;
    }
  }
  if (value_open == std::string_view::npos) return std::nullopt;
  LiftedFilter lifted;
  lifted.rest.reserve(body.size() - (value_close - value_open - 1));
  lifted.rest.append(body.substr(0, value_open + 1));
  lifted.rest.append(body.substr(value_close));
  lifted.filter = body.substr(value_open + 1, value_close - value_open - 1);
  return lifted;
}

}  // namespace internal

std::optional<TakeFilter> MatchTakeFilter(std::string_view filter) {
  // ASCII classes, inline: the list of a 1024-row take is some 7,000 characters.
  auto is_space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  size_t i = 0;
  auto skip_space = [&] {
    while (i < filter.size() && is_space(filter[i])) ++i;
  };
  auto word = [&](std::string_view w, bool ignore_case) {
    if (filter.size() - i < w.size()) return false;
    for (size_t j = 0; j < w.size(); ++j) {
      char c = filter[i + j];
      if (ignore_case && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
      if (c != w[j]) return false;
    }
    i += w.size();
    return true;
  };
  TakeFilter take;
  skip_space();
  if (word("_rowoffset", false)) {
    take.row_ids = false;
  } else if (word("_rowid", false)) {
    take.row_ids = true;
  } else {
    return std::nullopt;
  }
  // The column name must end here (not `_rowidx`).
  if (i >= filter.size() || !is_space(filter[i])) return std::nullopt;
  skip_space();
  if (!word("in", true)) return std::nullopt;
  skip_space();
  if (i >= filter.size() || filter[i] != '(') return std::nullopt;
  ++i;
  skip_space();
  if (i < filter.size() && filter[i] == ')') {
    ++i;
  } else {
    // At most one value per two characters left ("1,"): one allocation for the lists
    // of usual takes, whatever a huge filter holds.
    take.values.reserve(std::min<size_t>((filter.size() - i) / 2 + 1, size_t{1} << 16));
    for (;;) {
      skip_space();
      if (i >= filter.size() || !is_digit(filter[i])) return std::nullopt;
      uint64_t value = 0;
      while (i < filter.size() && is_digit(filter[i])) {
        uint64_t digit = static_cast<uint64_t>(filter[i] - '0');
        if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
          return std::nullopt;  // out of range: left to the filter language's error
        }
        value = value * 10 + digit;
        ++i;
      }
      take.values.push_back(value);
      skip_space();
      if (i < filter.size() && filter[i] == ',') {
        ++i;
        continue;
      }
      if (i < filter.size() && filter[i] == ')') {
        ++i;
        break;
      }
      return std::nullopt;
    }
  }
  skip_space();
  if (i != filter.size()) return std::nullopt;
  return take;
}

arrow::Result<std::string> SchemaToJson(const arrow::Schema& schema) {
  Json fields = Json::array();
  for (const auto& field : schema.fields()) {
    ARROW_ASSIGN_OR_RAISE(auto json, FieldJson(*field, 0));
    fields.push_back(std::move(json));
  }
  Json out = Json::object();
  out["fields"] = std::move(fields);
  if (schema.metadata() != nullptr && schema.metadata()->size() > 0) {
    out["metadata"] = MetadataJson(*schema.metadata());
  }
  return Dump(out);
}

std::string ErrorJson(std::string_view message) {
  Json out = Json::object();
  out["error"] = std::string(message);
  return Dump(out);
}

}  // namespace riffledb::remote
