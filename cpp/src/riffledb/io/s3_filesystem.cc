#include "riffledb/io/s3_filesystem.h"

#include <arrow/filesystem/s3fs.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <utility>

#include "riffledb/io/file_cache.h"
#include "riffledb/io/http_pool.h"
#include "riffledb/io/s3_internal.h"
#include "riffledb/util/crc32c.h"
#include "riffledb/util/pid.h"

namespace riffledb::io {

namespace {

constexpr std::string_view kAccessKeyId = "aws_access_key_id";
constexpr std::string_view kSecretAccessKey = "aws_secret_access_key";
constexpr std::string_view kSessionToken = "aws_session_token";
constexpr std::string_view kRegion = "region";
constexpr std::string_view kAwsRegion = "aws_region";
constexpr std::string_view kEndpoint = "endpoint";
constexpr std::string_view kAwsEndpoint = "aws_endpoint";
constexpr std::string_view kAllowHttp = "allow_http";
constexpr std::string_view kCacheDir = "cache_dir";
constexpr std::string_view kCacheSize = "cache_size";

constexpr std::array<std::string_view, 10> kKnownOptions = {
    kAccessKeyId, kSecretAccessKey, kSessionToken, kRegion,   kAwsRegion,
    kEndpoint,    kAwsEndpoint,     kAllowHttp,    kCacheDir, kCacheSize};

constexpr int64_t kDefaultCacheSize = int64_t{10} << 30;

constexpr char kDefaultRegion[] = "us-east-1";

std::optional<std::string> GetEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// object_store's spelling of booleans.
arrow::Result<bool> ParseBool(const std::string& value, std::string_view what) {
  const std::string v = Lower(value);
  if (v == "true" || v == "1" || v == "yes" || v == "on" || v == "y") return true;
  if (v == "false" || v == "0" || v == "no" || v == "off" || v == "n") return false;
  return arrow::Status::Invalid("Invalid storage option ", what, "='", value,
                                "': expected true or false");
}

}  // namespace

struct S3FileSystem::Config {
  internal::Endpoint endpoint;
  bool custom_endpoint = false;
  std::string region;
  // Static credentials; empty key id: the AWS SDK's default chain, asked at every
  // conditional PUT through the arrow::fs client (temporary credentials get refreshed).
  internal::Credentials credentials;
  internal::HttpOptions http;
  PerProcess<arrow::fs::FileSystem> arrow_fs;
  FileCacheOptions cache;
  PerProcess<FileCache> file_cache;
  // Keep-alive connections of the ranged GETs (pid-aware: a forked child opens its own).
  // S3 closes a connection idle for about 20 s: one idle longer is not handed out.
  std::shared_ptr<HttpConnectionPool> pool = std::make_shared<HttpConnectionPool>(
      HttpConnectionPool::Options{.max_idle = 16, .idle_timeout_s = 15});

  // What a signed request of ours is sent with. Static credentials, or else the default
  // chain's current ones, through the client arrow::fs built for this process.
  arrow::Result<internal::S3RequestConfig> RequestConfig() {
    internal::S3RequestConfig request;
    request.endpoint = endpoint;
    request.region = region;
    request.http = http;
    request.pool = pool;
    if (!credentials.access_key_id.empty()) {
      request.credentials = credentials;
    } else {
      ARROW_ASSIGN_OR_RAISE(auto fs, arrow_fs.Get([this] { return MakeArrowFs(); }));
      const auto options =
          std::static_pointer_cast<arrow::fs::S3FileSystem>(fs)->options();
      request.credentials = {options.GetAccessKey(), options.GetSecretKey(),
                             options.GetSessionToken()};
    }
    return request;
  }

  arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> MakeArrowFs() const {
    ARROW_RETURN_NOT_OK(arrow::fs::EnsureS3Initialized());
    arrow::fs::S3Options options = arrow::fs::S3Options::Defaults();
    options.region = region;
    if (custom_endpoint) {
      options.endpoint_override = endpoint.HostHeader();
      options.scheme = endpoint.scheme;
    }
    if (!credentials.access_key_id.empty()) {
      options.ConfigureAccessKey(credentials.access_key_id, credentials.secret_access_key,
                                 credentials.session_token);
    }
    auto fs = arrow::fs::S3FileSystem::Make(options);
    if (!fs.ok()) {
      return fs.status().WithMessage("Cannot connect to S3 at ", endpoint.ToString(),
                                     ": ", fs.status().message());
    }
    return std::shared_ptr<arrow::fs::FileSystem>(*fs);
  }
};

bool S3FileSystem::IsKnownOption(std::string_view key) {
  return std::find(kKnownOptions.begin(), kKnownOptions.end(), key) !=
         kKnownOptions.end();
}

arrow::Result<std::shared_ptr<S3FileSystem>> S3FileSystem::Make(
    const StorageOptions& options, const EnvLookup& env_lookup) {
  const EnvLookup env = env_lookup ? env_lookup : EnvLookup(GetEnv);
  for (const auto& [key, value] : options) {
    if (!IsKnownOption(key)) {
      std::string known;
      for (auto name : kKnownOptions)
        known += (known.empty() ? "" : ", ") + std::string(name);
      return arrow::Status::Invalid("Unknown storage option '", key,
                                    "' for s3://; the options are: ", known);
    }
  }
  auto option = [&](std::string_view key) -> std::optional<std::string> {
    auto it = options.find(std::string(key));
    if (it == options.end()) return std::nullopt;
    return it->second;
  };
  // One of two synonyms; Invalid if both are given and differ.
  auto either = [&](std::string_view a,
                    std::string_view b) -> arrow::Result<std::optional<std::string>> {
    auto x = option(a);
    auto y = option(b);
    if (x && y && *x != *y) {
      return arrow::Status::Invalid("Storage options '", a, "' and '", b, "' disagree: '",
                                    *x, "' and '", *y, "'");
    }
    return x ? x : y;
  };

  auto config = std::make_unique<Config>();

  // Credentials: all from the options, or all from the environment, never mixed.
  const auto key_id = option(kAccessKeyId);
  const auto secret = option(kSecretAccessKey);
  const auto token = option(kSessionToken);
  if (key_id.has_value() != secret.has_value()) {
    return arrow::Status::Invalid("Storage option '",
                                  key_id ? kAccessKeyId : kSecretAccessKey, "' needs '",
                                  key_id ? kSecretAccessKey : kAccessKeyId, "' too");
  }
  if (token && !key_id) {
    return arrow::Status::Invalid("Storage option '", kSessionToken, "' needs '",
                                  kAccessKeyId, "' and '", kSecretAccessKey, "' too");
  }
  if (key_id) {
    if (key_id->empty()) {
      return arrow::Status::Invalid("Storage option '", kAccessKeyId, "' is empty");
    }
    config->credentials = {*key_id, *secret, token ? *token : std::string()};
  } else {
    const auto env_key_id = env("AWS_ACCESS_KEY_ID");
    const auto env_secret = env("AWS_SECRET_ACCESS_KEY");
    if (env_key_id && env_secret) {
      config->credentials = {*env_key_id, *env_secret,
                             env("AWS_SESSION_TOKEN").value_or(std::string())};
    }
  }

  ARROW_ASSIGN_OR_RAISE(auto region, either(kRegion, kAwsRegion));
  if (!region) region = env("AWS_REGION");
  if (!region) region = env("AWS_DEFAULT_REGION");
  config->region = region.value_or(kDefaultRegion);
  if (config->region.empty()) {
    return arrow::Status::Invalid("Storage option '", kRegion, "' is empty");
  }

  ARROW_ASSIGN_OR_RAISE(auto endpoint, either(kEndpoint, kAwsEndpoint));
  const char* endpoint_from = "storage option 'endpoint'";
  if (!endpoint) {
    endpoint = env("AWS_ENDPOINT_URL");
    endpoint_from = "AWS_ENDPOINT_URL";
  }
  config->custom_endpoint = endpoint.has_value();
  if (!endpoint) endpoint = "https://s3." + config->region + ".amazonaws.com";
  auto parsed = internal::ParseEndpoint(*endpoint);
  if (!parsed.ok()) {
    return parsed.status().WithMessage(parsed.status().message(), " (from ",
                                       endpoint_from, ")");
  }
  config->endpoint = *parsed;

  bool allow_http = false;
  if (auto value = option(kAllowHttp)) {
    ARROW_ASSIGN_OR_RAISE(allow_http, ParseBool(*value, "'allow_http'"));
  } else if (auto value = env("AWS_ALLOW_HTTP")) {
    ARROW_ASSIGN_OR_RAISE(allow_http, ParseBool(*value, "AWS_ALLOW_HTTP"));
  }
  if (config->endpoint.scheme == "http" && !allow_http) {
    return arrow::Status::Invalid(
        "The endpoint '", *endpoint, "' (", endpoint_from,
        ") is plain http, which sends data unencrypted: pass storage option "
        "allow_http='true' to allow it");
  }
  if (auto dir = option(kCacheDir)) {
    if (dir->empty()) {
      return arrow::Status::Invalid("Storage option '", kCacheDir, "' is empty");
    }
    config->cache.dir = *dir;
  } else if (auto from_env = env("RIFFLEDB_CACHE_DIR")) {
    config->cache.dir = *from_env;
  } else if (auto xdg = env("XDG_CACHE_HOME")) {
    config->cache.dir = *xdg + "/riffledb";
  } else if (auto home = env("HOME")) {
    config->cache.dir = *home + "/.cache/riffledb";
  } else {
    // No home (a service account, a bare container): the user's own temporary one.
    config->cache.dir =
        env("TMPDIR").value_or("/tmp") + "/riffledb-cache-" + std::to_string(::getuid());
  }
  config->cache.capacity = kDefaultCacheSize;
  if (auto value = option(kCacheSize)) {
    int64_t size = 0;
    const bool digits = !value->empty() && value->size() <= 18 &&
                        std::all_of(value->begin(), value->end(),
                                    [](char c) { return c >= '0' && c <= '9'; });
    if (digits) size = std::stoll(*value);
    if (!digits) {
      return arrow::Status::Invalid("Invalid storage option '", kCacheSize, "'='", *value,
                                    "': expected a number of bytes");
    }
    config->cache.capacity = size;
  }
  return std::shared_ptr<S3FileSystem>(new S3FileSystem(std::move(config)));
}

S3FileSystem::S3FileSystem(std::unique_ptr<Config> config)
    : ArrowFileSystem(nullptr, "s3"), config_(std::move(config)) {}

S3FileSystem::~S3FileSystem() = default;

std::string S3FileSystem::endpoint() const { return config_->endpoint.ToString(); }

const std::string& S3FileSystem::region() const { return config_->region; }

arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> S3FileSystem::arrow_fs() {
  return config_->arrow_fs.Get([this] { return config_->MakeArrowFs(); });
}

arrow::Status S3FileSystem::CreateExclusive(const std::string& path,
                                            std::span<const uint8_t> data) {
  const size_t slash = path.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == path.size()) {
    return arrow::Status::Invalid("Cannot create '", path, "': an S3 path is bucket/key");
  }
  // The parent must exist, as a directory does locally (see the header).
  const std::string parent = ParentDir(path);
  ARROW_ASSIGN_OR_RAISE(EntryType parent_type, Type(parent));
  if (parent_type != EntryType::kDirectory) {
    return arrow::Status::IOError("Cannot create '", path, "': its directory '", parent,
                                  "' does not exist");
  }

  ARROW_ASSIGN_OR_RAISE(internal::S3RequestConfig request, config_->RequestConfig());
  return internal::CreateIfAbsent(request, path.substr(0, slash), path.substr(slash + 1),
                                  data);
}

arrow::Result<std::shared_ptr<CachedFile>> S3FileSystem::OpenCached(
    const std::string& path, int64_t size, uint32_t crc) {
  const size_t slash = path.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == path.size()) {
    return arrow::Status::Invalid("Cannot read '", path, "': an S3 path is bucket/key");
  }
  ARROW_ASSIGN_OR_RAISE(auto cache, config_->file_cache.Get([this] {
    return FileCache::Make(config_->cache);
  }));
  // The file's identity: where it is and what it holds (table files are immutable).
  const std::string identity = "s3\n" + config_->endpoint.ToString() + "\n" + path +
                               "\n" + std::to_string(size) + "\n" + Crc32cHex(crc);
  std::string bucket = path.substr(0, slash);
  std::string key = path.substr(slash + 1);
  std::shared_ptr<Config> config = config_;
  return cache->Open(
      path, identity, size,
      [config, bucket = std::move(bucket),
       key = std::move(key)](ByteRange range) -> arrow::Result<std::string> {
        ARROW_ASSIGN_OR_RAISE(internal::S3RequestConfig request, config->RequestConfig());
        return internal::GetRange(request, bucket, key, range.offset, range.length);
      });
}

arrow::Status FinalizeS3() { return arrow::fs::EnsureS3Finalized(); }

}  // namespace riffledb::io
