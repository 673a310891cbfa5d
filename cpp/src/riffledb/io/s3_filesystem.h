// S3 and S3-compatible object stores on the storage seam (DESIGN.md "Layers", io).
#pragma once

#include <arrow/filesystem/filesystem.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "riffledb/io/filesystem.h"

namespace riffledb::io {

/// Options of an object store connection, by LanceDB's names (docs/object-storage.md).
using StorageOptions = std::map<std::string, std::string>;

/// Looks up an environment variable (std::getenv by default; tests pass their own).
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

/// An S3 bucket (AWS, or any S3-compatible server such as MinIO or moto) through
/// `arrow::fs::S3FileSystem`, plus the exclusive create that commits need, sent as a
/// conditional `PUT` (`If-None-Match: *`). Paths are `bucket/key`; directories are key
/// prefixes (arrow::fs writes an empty `dir/` object for CreateDirs).
///
/// RenameNoReplace stays NotImplemented: object stores cannot rename atomically
/// (Database::DropTable deletes in place instead).
///
/// Thread-safe. Fork-safe: the arrow::fs client (and its HTTP connection pool) is built
/// once per process, so a forked child never shares its parent's connections; the
/// ranged GETs of the cache keep theirs in a pid-aware pool (io/http_pool.h); the
/// conditional PUT opens a connection per request. What the child cannot repair is the
/// AWS SDK's process-wide state, which it inherits as it is (docs/object-storage.md).
class S3FileSystem : public ArrowFileSystem {
 public:
  /// The options riffledb reads; any other key is Invalid naming it.
  ///
  /// - `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token`: static
  ///   credentials (all from the options, or else all from AWS_ACCESS_KEY_ID,
  ///   AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; without them, the AWS SDK's default
  ///   chain: profile files, web identity, instance metadata).
  /// - `region` / `aws_region`: default AWS_REGION, AWS_DEFAULT_REGION, then us-east-1.
  /// - `endpoint` / `aws_endpoint`: `http(s)://host[:port]` (default AWS_ENDPOINT_URL,
  ///   then `https://s3.<region>.amazonaws.com`). Requests are path-style.
  /// - `allow_http`: "true" to allow an http endpoint (default AWS_ALLOW_HTTP, then
  ///   false: an http endpoint without it is Invalid).
  ///
  /// - `cache_dir`: where fragment data read from the bucket is cached (io/file_cache.h;
  ///   default RIFFLEDB_CACHE_DIR, then $XDG_CACHE_HOME/riffledb, then
  ///   ~/.cache/riffledb, then $TMPDIR/riffledb-cache-<uid> without HOME).
  /// - `cache_size`: the most bytes the cache keeps on disk, a decimal integer (default
  ///   10 GiB; "0" keeps only what is in use).
  ///
  /// Options win over the environment. Messages never include a secret or a token.
  static arrow::Result<std::shared_ptr<S3FileSystem>> Make(
      const StorageOptions& options, const EnvLookup& env = nullptr);

  /// Whether `key` is an option name Make() accepts.
  static bool IsKnownOption(std::string_view key);

  /// Creates `path` with a conditional PUT (internal::CreateIfAbsent). A 409
  /// ConditionalRequestConflict (another conditional write to the key in flight, not
  /// applied) is retried a few times; so is an unknown outcome (a 5xx, a lost answer),
  /// and when a retry then finds the object, it is read back: holding our bytes, it is
  /// ours. The
  /// parent "directory" must exist (CreateDirs; any object under the prefix): as on local
  /// disks, a commit racing the drop of its table fails rather than recreate it, except
  /// in the moment between this check and the PUT.
  arrow::Status CreateExclusive(const std::string& path,
                                std::span<const uint8_t> data) override;

  /// Through the cache of `cache_dir`, fetching with ranged GETs of our own
  /// (internal::GetRange: a connection per request, nothing kept across fork()).
  arrow::Result<std::shared_ptr<CachedFile>> OpenCached(const std::string& path,
                                                        int64_t size,
                                                        uint32_t crc) override;

  /// `scheme://host[:port]` requests go to.
  std::string endpoint() const;
  const std::string& region() const;

  ~S3FileSystem() override;

 protected:
  arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> arrow_fs() override;

 private:
  struct Config;
  explicit S3FileSystem(std::unique_ptr<Config> config);

  // Constant after construction (shared with the fetchers of cached files).
  const std::shared_ptr<Config> config_;
};

/// Shuts down what S3FileSystem initialized in this process, if anything (the AWS SDK,
/// through arrow::fs::EnsureS3Finalized; shared with pyarrow, which calls it at exit too,
/// and idempotent). Call at exit, after the last use of S3: no S3 request can be made in
/// this process afterwards (S3FileSystem objects still alive then fail with an error, and
/// may be destroyed safely).
arrow::Status FinalizeS3();

}  // namespace riffledb::io
