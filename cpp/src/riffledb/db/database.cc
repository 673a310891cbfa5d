#include "riffledb/db/database.h"

#include <algorithm>
#include <filesystem>
#include <string_view>

#include "riffledb/format/table_dir.h"
#include "riffledb/io/filesystem.h"
#include "riffledb/io/s3_filesystem.h"
#include "riffledb/util/status.h"

namespace riffledb {

namespace {

// Schemes that riffledb will serve but does not yet: NotImplemented rather than Invalid.
constexpr std::string_view kPlannedSchemes[] = {"gs", "az", "db"};
constexpr std::string_view kMemoryScheme = "memory";
constexpr std::string_view kFileScheme = "file";
constexpr std::string_view kS3Scheme = "s3";

// `uri` for a message, a NUL byte written as \0 so that the text after it is not lost.
std::string Printable(std::string_view uri) {
  std::string out;
  for (char c : uri) {
    if (c == '\0') {
      out += "\\0";
    } else {
      out += c;
    }
  }
  return out;
}

// The scheme `uri` starts with, lower-cased (RFC 3986: ALPHA *(ALPHA / DIGIT / "+" /
// "-" / ".") then ':'), or empty if it does not start with one.
std::string SchemeOf(std::string_view uri) {
  const size_t colon = uri.find(':');
  if (colon == 0 || colon == std::string_view::npos) return "";
  std::string scheme;
  for (size_t i = 0; i < colon; ++i) {
    const char c = uri[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    const bool other = (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
    if (!alpha && !(i > 0 && other)) return "";
    scheme += static_cast<char>(alpha && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return scheme;
}

bool IsKnownScheme(std::string_view scheme) {
  if (scheme == kMemoryScheme || scheme == kFileScheme || scheme == kS3Scheme)
    return true;
  for (auto planned : kPlannedSchemes) {
    if (scheme == planned) return true;
  }
  return false;
}

// `bucket/prefix` of `s3://bucket/prefix[/]`: a bucket and zero or more plain key
// segments (no empty, "." or ".." segment, no query or fragment).
arrow::Result<std::string> S3Path(const std::string& uri) {
  std::string_view path = std::string_view(uri).substr(kS3Scheme.size() + 3);
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  auto invalid = [&](std::string_view why) {
    return arrow::Status::Invalid("Invalid database URI '", uri, "': ", why);
  };
  if (path.empty()) return invalid("expected s3://bucket or s3://bucket/prefix");
  if (path.find_first_of("?#") != std::string_view::npos) {
    return invalid("a query or fragment is not allowed; pass storage_options");
  }
  size_t begin = 0;
  while (begin <= path.size()) {
    size_t end = path.find('/', begin);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(begin, end - begin);
    if (segment.empty() || segment == "." || segment == "..") {
      return invalid(begin == 0 ? "no bucket name"
                                : "empty, '.' and '..' path segments are not allowed");
    }
    begin = end + 1;
  }
  return std::string(path);
}

}  // namespace

arrow::Result<std::shared_ptr<Database>> Database::Connect(
    const std::string& uri, const io::StorageOptions& options) {
  if (uri.empty()) return arrow::Status::Invalid("Database path must not be empty");
  // The OS reads a path up to its first NUL: "db\0evil" would silently open "db".
  if (const size_t nul = uri.find('\0'); nul != std::string::npos) {
    return arrow::Status::Invalid("Invalid database URI '", Printable(uri),
                                  "': it contains a NUL byte at position ", nul);
  }
  const std::string scheme = SchemeOf(uri);
  const bool has_authority = !scheme.empty() && uri.compare(scheme.size(), 3, "://") == 0;
  std::string local = uri;  // the directory
  if (has_authority && scheme == kFileScheme) {
    // file:///data/db is the directory /data/db, as in LanceDB; there is no host part.
    local = uri.substr(scheme.size() + 3);
    if (local.empty() || local[0] != '/') {
      return arrow::Status::Invalid(
          "Invalid database URI '", uri,
          "': file:// takes an absolute path (file:///data/db)");
    }
  } else if (has_authority) {
    if (scheme == kMemoryScheme) {
      return std::shared_ptr<Database>(
          new Database(kMemoryUri, kMemoryUri, true, nullptr));
    }
    if (scheme == kS3Scheme) {
      ARROW_ASSIGN_OR_RAISE(std::string path, S3Path(uri));
      ARROW_ASSIGN_OR_RAISE(auto fs, io::S3FileSystem::Make(options));
      std::string s3_uri = "s3://" + path;
      return Open(std::move(s3_uri), std::move(path), std::move(fs));
    }
    for (auto planned : kPlannedSchemes) {
      if (scheme == planned) {
        return arrow::Status::NotImplemented("Unsupported database URI '", uri,
                                             "': ", scheme,
                                             ":// is not supported yet; use a "
                                             "directory path or memory://");
      }
    }
    return arrow::Status::Invalid("Invalid database URI '", uri, "': unknown scheme '",
                                  scheme, "'; use a directory path or memory://");
  }
  // "memory:/" or "s3:bucket" is a mistyped URI, not a directory to create: a directory
  // name with a colon is legal, so only schemes riffledb knows are caught.
  if (!has_authority && IsKnownScheme(scheme)) {
    return arrow::Status::Invalid("Invalid database URI '", uri, "': expected ", scheme,
                                  "://");
  }
  std::error_code error;
  std::string path = std::filesystem::absolute(local, error).lexically_normal().string();
  if (error) return arrow::Status::IOError("Cannot resolve database path '", uri, "'");
  if (path.size() > 1 && path.back() == '/') path.pop_back();
  return ConnectDirectory(std::move(path), io::Local());
}

arrow::Result<std::shared_ptr<Database>> Database::ConnectDirectory(
    std::string path, std::shared_ptr<io::FileSystem> fs) {
  std::string uri = path;
  return Open(std::move(uri), std::move(path), std::move(fs));
}

arrow::Result<std::shared_ptr<Database>> Database::Open(
    std::string uri, std::string path, std::shared_ptr<io::FileSystem> fs) {
  // Listed first: a database with tables is then known to be a directory, and the
  // listing is the one RemoveTombstones needs. Only when nothing is listed (a file, no
  // directory, an empty one) is the type asked. On object storage, one LIST instead of
  // a HEAD and two LISTs (arrow::fs's type of a prefix is a HEAD and a LIST).
  auto entries = fs->List(path);
  if (!entries.ok() || entries->empty()) {
    ARROW_ASSIGN_OR_RAISE(io::EntryType type, fs->Type(path));
    if (type == io::EntryType::kFile) {
      return arrow::Status::IOError("Database path '", uri,
                                    "' exists and is not a directory");
    }
    if (type == io::EntryType::kNotFound) ARROW_RETURN_NOT_OK(fs->CreateDirs(path));
    // A listing that failed before the directory was there (or made): once more.
    if (!entries.ok()) entries = fs->List(path);
  }
  std::shared_ptr<Database> db(
      new Database(std::move(uri), std::move(path), false, std::move(fs)));
  if (entries.ok()) db->RemoveTombstones(*entries);
  return db;
}

void Database::RemoveTombstones() const {
  auto entries = fs_->List(path_);
  if (!entries.ok()) return;  // best effort: a later drop or connect tries again
  RemoveTombstones(*entries);
}

void Database::RemoveTombstones(const std::vector<io::Entry>& entries) const {
  const std::string_view prefix = kTombstonePrefix;
  for (const auto& entry : entries) {
    if (entry.type != io::EntryType::kDirectory || !entry.name.starts_with(prefix)) {
      continue;
    }
    // Possibly another process's drop still deleting it: racing deletes are harmless,
    // a tombstone is never read again.
    (void)fs_->DeleteTree(io::JoinPath(path_, entry.name));
  }
}

arrow::Status Database::ValidateTableName(const std::string& name) {
  if (name.empty()) return arrow::Status::Invalid("Table name must not be empty");
  if (name.size() > kMaxTableNameLength) {
    return arrow::Status::Invalid(
        "Table name '", name, "' is ", name.size(), " characters long; the limit is ",
        kMaxTableNameLength, " (its directory, the name + '", kTableSuffix,
        "', must fit the ", kMaxFileNameLength, "-character file name limit)");
  }
  if (name[0] == '.') {
    return arrow::Status::Invalid("Invalid table name '", name,
                                  "': it must not start with '.'");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
    if (!ok) {
      return arrow::Status::Invalid(
          "Invalid table name '", name,
          "': only letters, digits, '_', '-' and '.' are allowed (no path separators)");
    }
  }
  return arrow::Status::OK();
}

std::string Database::TablePath(const std::string& name) const {
  return io::JoinPath(path_, name + kTableSuffix);
}

arrow::Status Database::NotFound(const std::string& name) const {
  return WithErrorKind(
      arrow::Status::Invalid("Table '", name, "' was not found in database '", uri_, "'"),
      ErrorKind::kTableNotFound);
}

arrow::Result<std::vector<std::string>> Database::TableNames() const {
  std::vector<std::string> names;
  if (in_memory_) {
    std::lock_guard<ForkSafeMutex> lock(mu_);
    for (const auto& [name, store] : memory_tables_) names.push_back(name);
    return names;
  }
  ARROW_ASSIGN_OR_RAISE(auto entries, fs_->List(path_));
  const std::string suffix = kTableSuffix;
  for (const auto& listed : entries) {
    const std::string& entry = listed.name;
    if (entry.size() <= suffix.size() ||
        entry.compare(entry.size() - suffix.size(), suffix.size(), suffix) != 0) {
      continue;
    }
    std::string name = entry.substr(0, entry.size() - suffix.size());
    if (!ValidateTableName(name).ok()) continue;
    ARROW_ASSIGN_OR_RAISE(bool has, HasTable(name));
    if (has) names.push_back(std::move(name));
  }
  std::sort(names.begin(), names.end());  // "a-2.riffle" sorts before "a.riffle" on disk
  return names;
}

arrow::Result<bool> Database::HasTable(const std::string& name) const {
  // No table can have an invalid name; looking one up on disk could fail instead
  // ("File name too long") or look outside the database.
  if (!ValidateTableName(name).ok()) return false;
  if (in_memory_) {
    std::lock_guard<ForkSafeMutex> lock(mu_);
    return memory_tables_.count(name) > 0;
  }
  DirectoryStore store(TablePath(name), fs_);
  ARROW_ASSIGN_OR_RAISE(auto versions, store.ListVersions());
  return !versions.empty();
}

arrow::Result<std::shared_ptr<Table>> Database::CreateTable(
    const std::string& name, std::shared_ptr<arrow::Schema> schema,
    arrow::RecordBatchReader* data, CreateMode mode, bool exist_ok) {
  ARROW_RETURN_NOT_OK(ValidateTableName(name));
  if (schema == nullptr && data == nullptr) {
    return arrow::Status::Invalid("Cannot create table '", name,
                                  "': pass data, a schema, or both");
  }
  ARROW_ASSIGN_OR_RAISE(bool exists, HasTable(name));
  if (exists) {
    if (mode == CreateMode::kOverwrite) {
      ARROW_ASSIGN_OR_RAISE(auto table, OpenTable(name));
      if (data != nullptr) {
        ARROW_RETURN_NOT_OK(table->Overwrite(data, schema).status());
      } else {
        ARROW_ASSIGN_OR_RAISE(auto empty, arrow::RecordBatchReader::Make({}, schema));
        ARROW_RETURN_NOT_OK(table->Overwrite(empty.get()).status());
      }
      return table;
    }
    if (exist_ok) return OpenTable(name);
    return WithErrorKind(
        arrow::Status::Invalid("Table '", name, "' already exists in database '", uri_,
                               "'"),
        ErrorKind::kTableExists);
  }
  std::shared_ptr<Store> store;
  if (in_memory_) {
    store = std::make_shared<MemoryStore>(std::string(kMemoryUri) + name);
  } else {
    store = std::make_shared<DirectoryStore>(TablePath(name), fs_);
  }
  auto created = Table::Create(name, store, std::move(schema), data);
  if (created.status().IsAlreadyExists()) {
    // Another process created it between our check and our commit.
    if (exist_ok) return OpenTable(name);
    return WithErrorKind(
        arrow::Status::Invalid("Table '", name, "' already exists in database '", uri_,
                               "'"),
        ErrorKind::kTableExists);
  }
  ARROW_RETURN_NOT_OK(created.status());
  if (in_memory_) {
    std::shared_ptr<MemoryStore> existing;  // another thread's table of the same name
    {
      std::lock_guard<ForkSafeMutex> lock(mu_);
      auto [it, inserted] =
          memory_tables_.emplace(name, std::static_pointer_cast<MemoryStore>(store));
      if (!inserted) existing = it->second;
    }
    if (existing != nullptr) {
      if (exist_ok) return Table::Open(name, std::move(existing));
      return WithErrorKind(
          arrow::Status::Invalid("Table '", name, "' already exists in database '", uri_,
                                 "'"),
          ErrorKind::kTableExists);
    }
  }
  return created;
}

arrow::Result<std::shared_ptr<Table>> Database::OpenTable(
    const std::string& name, std::optional<uint64_t> version) const {
  ARROW_RETURN_NOT_OK(ValidateTableName(name));
  if (in_memory_) {
    std::shared_ptr<MemoryStore> store;
    {
      std::lock_guard<ForkSafeMutex> lock(mu_);
      auto it = memory_tables_.find(name);
      if (it == memory_tables_.end()) return NotFound(name);
      store = it->second;
    }
    return Table::Open(name, std::move(store), version);
  }
  // Opened without asking first whether the table exists (a listing of its versions,
  // which the open lists again): a failure asks. Missing, or dropped during the open:
  // not found, not "has no committed version" or a missing manifest. There after all
  // (created meanwhile, its first version committed since the open looked): its newest
  // version is opened again, once, as when the check came first (a version asked for
  // that is not there stays an error).
  auto open = [&] {
    return Table::Open(name, std::make_shared<DirectoryStore>(TablePath(name), fs_),
                       version);
  };
  auto table = open();
  for (int attempt = 0; !table.ok(); ++attempt) {
    auto exists = HasTable(name);
    if (exists.ok() && !*exists) return NotFound(name);
    if (!exists.ok() || attempt == 1 || version.has_value()) break;
    table = open();
  }
  return table;
}

arrow::Status Database::DropTable(const std::string& name, bool ignore_missing) {
  ARROW_RETURN_NOT_OK(ValidateTableName(name));
  if (in_memory_) {
    std::shared_ptr<MemoryStore> dropped;
    {
      std::lock_guard<ForkSafeMutex> lock(mu_);
      auto it = memory_tables_.find(name);
      if (it == memory_tables_.end()) {
        return ignore_missing ? arrow::Status::OK() : NotFound(name);
      }
      dropped = std::move(it->second);
      memory_tables_.erase(it);
    }
    // Outside mu_: ForkSafeMutex sections may not nest. Handles still holding the store
    // no longer commit.
    dropped->MarkDropped();
    return arrow::Status::OK();
  }
  RemoveTombstones();
  ARROW_ASSIGN_OR_RAISE(bool exists, HasTable(name));
  auto missing = [&] { return ignore_missing ? arrow::Status::OK() : NotFound(name); };
  if (!exists) return missing();
  // The rename is the drop: atomic, so the table is listed whole until it happens and
  // not at all after. Deleting the files in place instead would leave, if killed or
  // raced by an appender, a listed table whose versions reference deleted files.
  const std::string tombstone =
      io::JoinPath(path_, std::string(kTombstonePrefix) + io::RandomId());
  arrow::Status renamed = fs_->RenameNoReplace(TablePath(name), tombstone);
  if (renamed.IsNotImplemented()) return DropInPlace(name, ignore_missing);
  if (!renamed.ok()) {
    // The rename may have happened before the error (a lost reply): then the drop is
    // ours.
    auto ours = fs_->Type(tombstone);
    if (ours.ok() && *ours == io::EntryType::kDirectory) renamed = arrow::Status::OK();
  }
  if (!renamed.ok()) {
    // Another drop won the race: the table is gone either way.
    auto type = fs_->Type(TablePath(name));
    if (type.ok() && *type == io::EntryType::kNotFound) return missing();
    return renamed.WithMessage("Cannot drop table '", name, "': ", renamed.message());
  }
  // Durable before we say so: a crash after returning must not bring the table back.
  arrow::Status synced = fs_->SyncDir(path_);
  // The table is dropped whatever the delete does; a tombstone it leaves is deleted by
  // the next drop or connect.
  (void)fs_->DeleteTree(tombstone);
  if (!synced.ok()) {
    return synced.WithMessage(
        "Table '", name,
        "' was dropped, but the drop may not survive a crash: ", synced.message());
  }
  return arrow::Status::OK();
}

arrow::Status Database::DropInPlace(const std::string& name, bool ignore_missing) {
  const format::TableDir dir(fs_, TablePath(name));
  // A writer committing meanwhile can add a version after the listing: list again after
  // deleting, a few times (see DropTable).
  constexpr int kRounds = 3;
  for (int round = 0; round < kRounds; ++round) {
    ARROW_ASSIGN_OR_RAISE(std::vector<uint64_t> versions, dir.ListVersions());
    if (versions.empty()) {
      if (round > 0) return arrow::Status::OK();
      // Another drop got there first.
      return ignore_missing ? arrow::Status::OK() : NotFound(name);
    }
    // Oldest first: until the newest goes, the table is whole at its newest version.
    for (uint64_t version : versions) {
      arrow::Status removed = dir.RemoveVersion(version);
      if (!removed.ok()) {
        return removed.WithMessage("Cannot drop table '", name, "': ", removed.message());
      }
    }
    arrow::Status deleted = fs_->DeleteTree(TablePath(name));
    if (!deleted.ok()) {
      // The table is gone (no version is left); its files are garbage now.
      return deleted.WithMessage(
          "Table '", name,
          "' was dropped, but deleting its files failed: ", deleted.message());
    }
  }
  ARROW_ASSIGN_OR_RAISE(std::vector<uint64_t> left, dir.ListVersions());
  if (left.empty()) return arrow::Status::OK();
  return arrow::Status::IOError("Cannot drop table '", name,
                                "': writers keep committing ", "new versions to it");
}

}  // namespace riffledb
