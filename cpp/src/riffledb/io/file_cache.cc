#include "riffledb/io/file_cache.h"

#include <arrow/util/io_util.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <thread>
#include <utility>

#include "riffledb/io/filesystem.h"
#include "riffledb/io/mapped_file.h"
#include "riffledb/io/s3_internal.h"
#include "riffledb/util/crc32c.h"
#include "riffledb/util/pid.h"

namespace riffledb::io {

namespace {

std::atomic<int64_t> g_requests{0};
std::atomic<int64_t> g_bytes{0};
std::atomic<int64_t> g_corrupt_blocks{0};
std::atomic<int64_t> g_shared_blocks{0};
std::atomic<uint64_t> g_tokens{0};

// A claim token (CachedFile::claims_): the process's fork generation in the top 24
// bits, then a counter.
constexpr int kTokenGenerationShift = 40;

uint64_t CurrentGeneration() { return ForkGeneration() & ((uint64_t{1} << 24) - 1); }

// A claim token of this process, never 0.
uint64_t NewToken() {
  const uint64_t serial = (g_tokens.fetch_add(1, std::memory_order_relaxed) + 1) &
                          ((uint64_t{1} << kTokenGenerationShift) - 1);
  return (CurrentGeneration() << kTokenGenerationShift) | std::max<uint64_t>(serial, 1);
}

// Whether `token` is a live claim of this process (not 0, not an ancestor's).
bool LiveClaim(uint64_t token) {
  return token != 0 && (token >> kTokenGenerationShift) == CurrentGeneration();
}

constexpr char kMagic[8] = {'R', 'F', 'L', 'C', 'A', 'C', 'H', '2'};
// Block states. A block is fetched, written, then marked kChecked: its bytes are known
// good for as long as the machine runs. After a reboot (a crash may have persisted the
// state but not the bytes) every kChecked block is demoted to kPresent, which the first
// reader checks against its CRC.
constexpr uint32_t kAbsent = 0;
constexpr uint32_t kPresent = 1;
constexpr uint32_t kChecked = 2;

// The .meta file: this header, then a BlockMeta per block.
struct MetaHeader {
  char magic[8];
  int64_t file_size;
  int64_t block_size;
  int64_t num_blocks;
  char identity_hash[64];  // hex SHA-256 of the identity, as in the file name
  char boot_id[40];        // the boot its kChecked blocks were checked in
};
static_assert(sizeof(MetaHeader) == 136);

// The kernel's id of this boot of the machine (empty if unknown: then blocks are never
// kChecked, and every process checks what it reads).
const std::string& BootId() {
  static const std::string id = [] {
    char buffer[64] = {};
    const int fd = ::open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::string();
    const ssize_t n = ::read(fd, buffer, sizeof(buffer) - 1);
    ::close(fd);
    std::string text(buffer, n > 0 ? static_cast<size_t>(n) : 0);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text.size() < 40 ? text : std::string();
  }();
  return id;
}

arrow::Status Errno(const std::string& what, const std::string& path) {
  return arrow::Status::IOError(what, " '", path, "': ", std::strerror(errno));
}

bool IsPowerOfTwo(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

}  // namespace

IoStats GetIoStats(bool reset) {
  IoStats stats;
  if (reset) {
    stats.requests = g_requests.exchange(0);
    stats.bytes = g_bytes.exchange(0);
    stats.corrupt_blocks = g_corrupt_blocks.exchange(0);
    stats.shared_blocks = g_shared_blocks.exchange(0);
  } else {
    stats.requests = g_requests.load();
    stats.bytes = g_bytes.load();
    stats.corrupt_blocks = g_corrupt_blocks.load();
    stats.shared_blocks = g_shared_blocks.load();
  }
  return stats;
}

struct CachedFile::BlockMeta {
  uint32_t state;
  uint32_t crc;
};

// -- FileCache
// -----------------------------------------------------------------------------

arrow::Result<std::shared_ptr<FileCache>> FileCache::Make(FileCacheOptions options) {
  if (options.dir.empty()) return arrow::Status::Invalid("The cache directory is empty");
  if (options.capacity < 0) {
    return arrow::Status::Invalid("The cache size must be at least 0 bytes, got ",
                                  options.capacity);
  }
  if (!IsPowerOfTwo(options.block_size) || options.block_size < 4096) {
    return arrow::Status::Invalid(
        "The cache block size must be a power of two of at least 4096, got ",
        options.block_size);
  }
  if (options.coalesce_gap < 0 || options.max_request < options.block_size ||
      options.max_concurrency < 1) {
    return arrow::Status::Invalid("Invalid file cache request options");
  }
  struct stat st;
  if (::stat(options.dir.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
    return arrow::Status::IOError("The cache directory '", options.dir,
                                  "' is not a directory");
  }
  ARROW_RETURN_NOT_OK(Local()->CreateDirs(options.dir));
  return std::shared_ptr<FileCache>(new FileCache(std::move(options)));
}

namespace {

struct CacheEntry {
  std::string hash;
  int64_t bytes = 0;  // blocks allocated by the .data file
  int64_t last_open_ns = 0;
};

arrow::Result<std::vector<CacheEntry>> ListEntries(const std::string& dir) {
  std::vector<CacheEntry> entries;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Errno("Cannot list the cache directory", dir);
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    constexpr std::string_view kSuffix = ".meta";
    if (name.size() <= kSuffix.size() ||
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      continue;
    }
    CacheEntry entry;
    entry.hash = name.substr(0, name.size() - kSuffix.size());
    struct stat meta;
    struct stat data;
    if (::stat(JoinPath(dir, name).c_str(), &meta) != 0) continue;  // evicted meanwhile
    entry.last_open_ns = int64_t{meta.st_mtim.tv_sec} * 1000000000 + meta.st_mtim.tv_nsec;
    if (::stat(JoinPath(dir, entry.hash + ".data").c_str(), &data) == 0) {
      entry.bytes = int64_t{data.st_blocks} * 512;
    }
    entry.bytes += int64_t{meta.st_blocks} * 512;
    entries.push_back(std::move(entry));
  }
  ::closedir(d);
  return entries;
}

}  // namespace

arrow::Result<int64_t> FileCache::UsedBytes() const {
  ARROW_ASSIGN_OR_RAISE(auto entries, ListEntries(options_.dir));
  int64_t total = 0;
  for (const auto& e : entries) total += e.bytes;
  return total;
}

arrow::Status FileCache::Evict(const std::string& keep) {
  added_since_evict_.store(0, std::memory_order_relaxed);
  ARROW_ASSIGN_OR_RAISE(auto entries, ListEntries(options_.dir));
  int64_t total = 0;
  for (const auto& e : entries) total += e.bytes;
  if (total <= options_.capacity) return arrow::Status::OK();
  std::sort(entries.begin(), entries.end(), [](const CacheEntry& a, const CacheEntry& b) {
    return a.last_open_ns < b.last_open_ns;
  });
  for (const auto& e : entries) {
    if (total <= options_.capacity) break;
    if (e.hash == keep) continue;
    if (RemovePair(JoinPath(options_.dir, e.hash + ".meta"),
                   JoinPath(options_.dir, e.hash + ".data"))) {
      total -= e.bytes;
    }
  }
  return arrow::Status::OK();
}

bool FileCache::RemovePair(const std::string& meta_path, const std::string& data_path) {
  // Under the .meta lock, which Open holds from opening the .meta to mapping the .data:
  // an Open never sees half a pair, nor maps a .data this removes (it finds its locked
  // .meta unlinked and starts again). A pair being opened is skipped. Processes using
  // the pair keep their maps of the unlinked files.
  const int fd = ::open(meta_path.c_str(), O_RDONLY | O_CLOEXEC);  // flock needs no more
  if (fd < 0) return false;
  struct stat locked, named;
  const bool ours = ::flock(fd, LOCK_EX | LOCK_NB) == 0 && ::fstat(fd, &locked) == 0 &&
                    ::stat(meta_path.c_str(), &named) == 0 &&
                    locked.st_dev == named.st_dev && locked.st_ino == named.st_ino;
  if (ours) {
    // The .data first: a .meta left alone by a crash here is found by Open, which
    // starts a new pair (a .meta whose .data is gone says nothing true).
    ::unlink(data_path.c_str());
    ::unlink(meta_path.c_str());
  }
  ::close(fd);
  return ours;
}

void FileCache::Added(int64_t bytes, const std::string& hash) {
  const int64_t added = added_since_evict_.fetch_add(bytes) + bytes;
  // Checked now and then, not at every fetch: listing the directory costs a stat per
  // file. The cache may exceed its capacity by this much between checks.
  if (added >= std::max<int64_t>(options_.capacity / 16, options_.block_size)) {
    (void)Evict(hash);
  }
}

arrow::Result<std::shared_ptr<CachedFile>> FileCache::Open(const std::string& name,
                                                           const std::string& identity,
                                                           int64_t size,
                                                           RangeFetcher fetch) {
  if (size < 0) return arrow::Status::Invalid("Negative size for '", name, "'");
  const std::string hash = internal::HexEncode(internal::Sha256(identity));
  const int64_t num_blocks = (size + options_.block_size - 1) / options_.block_size;
  const size_t meta_size = sizeof(MetaHeader) + static_cast<size_t>(num_blocks) * 8;
  const std::string meta_path = JoinPath(options_.dir, hash + ".meta");
  const std::string data_path = JoinPath(options_.dir, hash + ".data");

  // Open or create the pair. The .meta file is initialized under an exclusive flock, so
  // of processes opening a new pair at once one writes the header and the others read it.
  int meta_fd = -1;
  bool reset_checks = false;  // checked in another boot: check again
  bool fresh = false;         // this Open wrote the .meta: every block absent
  for (int attempt = 0, removed = 0;; ++attempt) {
    meta_fd = ::open(meta_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (meta_fd < 0) return Errno("Cannot open the cache file", meta_path);
    if (::flock(meta_fd, LOCK_EX) != 0) {
      ::close(meta_fd);
      return Errno("Cannot lock the cache file", meta_path);
    }
    struct stat st;
    if (::fstat(meta_fd, &st) != 0) {
      ::close(meta_fd);
      return Errno("Cannot stat the cache file", meta_path);
    }
    if (st.st_nlink == 0) {  // removed (RemovePair) while this waited for the lock
      ::close(meta_fd);
      if (++removed == 100) {
        return arrow::Status::IOError("Cannot open the cache file '", meta_path,
                                      "': removed again at each of 100 attempts");
      }
      --attempt;
      continue;
    }
    fresh = st.st_size == 0;
    bool valid = false;
    if (st.st_size == 0) {
      MetaHeader header = {};
      std::memcpy(header.magic, kMagic, sizeof(kMagic));
      header.file_size = size;
      header.block_size = options_.block_size;
      header.num_blocks = num_blocks;
      std::memcpy(header.identity_hash, hash.data(), sizeof(header.identity_hash));
      std::memcpy(header.boot_id, BootId().data(), BootId().size());
      // Block states start zeroed (absent): the file is extended with a hole.
      if (::ftruncate(meta_fd, static_cast<off_t>(meta_size)) != 0 ||
          ::pwrite(meta_fd, &header, sizeof(header), 0) !=
              static_cast<ssize_t>(sizeof(header))) {
        ::close(meta_fd);
        return Errno("Cannot write the cache file", meta_path);
      }
      valid = true;
    } else if (st.st_size == static_cast<off_t>(meta_size)) {
      MetaHeader header;
      if (::pread(meta_fd, &header, sizeof(header), 0) ==
          static_cast<ssize_t>(sizeof(header))) {
        valid = std::memcmp(header.magic, kMagic, sizeof(kMagic)) == 0 &&
                header.file_size == size && header.block_size == options_.block_size &&
                header.num_blocks == num_blocks &&
                std::memcmp(header.identity_hash, hash.data(),
                            sizeof(header.identity_hash)) == 0;
      }
    }
    if (valid) {
      MetaHeader header;
      if (::pread(meta_fd, &header, sizeof(header), 0) !=
          static_cast<ssize_t>(sizeof(header))) {
        valid = false;
      } else {
        reset_checks =
            BootId().empty() ||
            std::string(header.boot_id,
                        strnlen(header.boot_id, sizeof(header.boot_id))) != BootId();
      }
    }
    if (valid) break;
    // Damaged, or written with another block size: start a new pair (users of the old
    // one keep their maps of it).
    ::unlink(data_path.c_str());
    ::unlink(meta_path.c_str());
    ::close(meta_fd);
    if (attempt == 2) {
      return arrow::Status::IOError("Cannot initialize the cache file '", meta_path, "'");
    }
  }
  // The last open time, for eviction.
  ::futimens(meta_fd, nullptr);

  auto file = std::shared_ptr<CachedFile>(new CachedFile());
  file->cache_ = shared_from_this();
  file->name_ = name;
  file->hash_ = hash;
  file->fetch_ = std::move(fetch);
  file->size_ = size;
  file->block_size_ = options_.block_size;
  file->num_blocks_ = num_blocks;
  file->meta_size_ = meta_size;
  void* meta = ::mmap(nullptr, meta_size, PROT_READ | PROT_WRITE, MAP_SHARED, meta_fd, 0);
  if (meta == MAP_FAILED) {
    ::close(meta_fd);
    return Errno("Cannot map the cache file", meta_path);
  }
  file->meta_ = static_cast<uint8_t*>(meta);
  if (reset_checks) {
    // Still under the lock: no process of this boot has the file open yet.
    for (int64_t b = 0; b < num_blocks; ++b) {
      std::atomic_ref<uint32_t> state(file->block(b)->state);
      if (state.load() == kChecked) state.store(kPresent);
    }
    char boot_id[40] = {};
    std::memcpy(boot_id, BootId().data(), BootId().size());
    std::memcpy(file->meta_ + offsetof(MetaHeader, boot_id), boot_id, sizeof(boot_id));
  }

  // The data file: sized (a hole) and mapped while the .meta lock is held, so nobody
  // maps it short and the map is of the file the .meta describes. Fetched blocks are
  // written through the (shared, writable) map: no descriptor is held, since a process
  // may cache more files than it may hold open, and a file evicted while in use still
  // takes its blocks (written to the unlinked file its map keeps).
  // A .meta that describes blocks has its .data, unless a removal was cut short
  // between the two unlinks: then the .meta is dropped and the pair started again.
  int data_fd = ::open(data_path.c_str(), O_RDWR | O_CLOEXEC);
  if (data_fd < 0 && errno == ENOENT && !fresh) {
    ::munmap(file->meta_, file->meta_size_);
    file->meta_ = nullptr;
    ::unlink(meta_path.c_str());
    ::close(meta_fd);
    return Open(name, identity, size, std::move(file->fetch_));
  }
  if (data_fd < 0 && errno == ENOENT) {
    data_fd = ::open(data_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  }
  auto unlock = [&] {
    ::flock(meta_fd, LOCK_UN);  // explicitly: the map holds the open .meta file
    ::close(meta_fd);
    if (data_fd >= 0) ::close(data_fd);
  };
  if (data_fd < 0) {
    const arrow::Status error = Errno("Cannot open the cache file", data_path);
    unlock();
    return error;
  }
  struct stat st;
  if (::fstat(data_fd, &st) != 0 ||
      (st.st_size != size && ::ftruncate(data_fd, static_cast<off_t>(size)) != 0)) {
    const arrow::Status error = Errno("Cannot size the cache file", data_path);
    unlock();
    return error;
  }
  if (size > 0) {
    auto map = OpenGuardedMap(data_path, data_fd, MapMode::kReadWrite);
    if (!map.ok()) {
      unlock();
      return map.status();
    }
    file->map_ = *std::move(map);
  }
  unlock();
  if (size > 0) {
    ARROW_ASSIGN_OR_RAISE(auto whole, file->map_->ReadAt(0, size));
    file->data_ = whole->data();
  }
  file->verified_ = std::make_unique<std::atomic<uint8_t>[]>(
      static_cast<size_t>(std::max<int64_t>(num_blocks, 1)));
  file->claims_ = std::make_unique<std::atomic<uint64_t>[]>(
      static_cast<size_t>(std::max<int64_t>(num_blocks, 1)));
  if (num_blocks == 0) file->complete_.store(true);
  const bool whole = num_blocks > 0 && file->PresentBlocks() == num_blocks;
  file->verify_all_.store(whole);
  if (whole) {
    // Cached whole: map every page now, as a local table's open does, rather than fault
    // them in one by one during the first epoch's takes (a warm epoch measured 2,869
    // minor faults and 25% slower than a local one without this). Best effort.
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
    (void)::madvise(const_cast<uint8_t*>(file->data_), static_cast<size_t>(size),
                    MADV_POPULATE_READ);
  }
  (void)Evict(hash);
  return file;
}

// -- CachedFile
// ----------------------------------------------------------------------------

CachedFile::~CachedFile() {
  if (meta_ != nullptr) ::munmap(meta_, meta_size_);
}

CachedFile::BlockMeta* CachedFile::block(int64_t b) const {
  return reinterpret_cast<BlockMeta*>(meta_ + sizeof(MetaHeader)) + b;
}

int64_t CachedFile::BlockLength(int64_t b) const {
  return std::min(block_size_, size_ - b * block_size_);
}

std::optional<int64_t> CachedFile::OffsetOf(const uint8_t* address) const {
  if (data_ == nullptr || address < data_ || address > data_ + size_) return std::nullopt;
  return address - data_;
}

int64_t CachedFile::PresentBlocks() const {
  int64_t n = 0;
  for (int64_t b = 0; b < num_blocks_; ++b) {
    n += std::atomic_ref<uint32_t>(block(b)->state).load(std::memory_order_acquire) !=
         kAbsent;
  }
  return n;
}

bool CachedFile::Verify(int64_t b) {
  if (verified_[b].load(std::memory_order_acquire) != 0) return true;
  BlockMeta* meta = block(b);
  std::atomic_ref<uint32_t> state(meta->state);
  uint32_t seen = state.load(std::memory_order_acquire);
  if (seen == kChecked) {
    MarkVerified(b);
    return true;
  }
  const uint32_t expected = std::atomic_ref<uint32_t>(meta->crc).load();
  if (Crc32c(data_ + b * block_size_, static_cast<size_t>(BlockLength(b))) != expected) {
    g_corrupt_blocks.fetch_add(1);
    state.store(kAbsent, std::memory_order_release);
    return false;
  }
  if (!BootId().empty()) state.compare_exchange_strong(seen, kChecked);
  MarkVerified(b);
  return true;
}

void CachedFile::MarkVerified(int64_t b) {
  if (verified_[b].exchange(1, std::memory_order_acq_rel) == 0 &&
      verified_count_.fetch_add(1, std::memory_order_acq_rel) + 1 == num_blocks_) {
    complete_.store(true, std::memory_order_release);
  }
}

arrow::Status CachedFile::Fetch(int64_t first, int64_t last, uint64_t token) {
  // Whatever happens, the claims of this request go: waiters then find their blocks
  // present, or absent and unclaimed (and fetch them themselves).
  struct Release {
    CachedFile* file;
    int64_t first, last;
    uint64_t token;
    ~Release() { file->Unclaim(first, last, token); }
  } release{this, first, last, token};
  const int64_t offset = first * block_size_;
  const int64_t length = std::min(size_, (last + 1) * block_size_) - offset;
  ARROW_ASSIGN_OR_RAISE(std::string bytes, fetch_(ByteRange{offset, length}));
  g_requests.fetch_add(1, std::memory_order_relaxed);
  g_bytes.fetch_add(static_cast<int64_t>(bytes.size()), std::memory_order_relaxed);
  if (static_cast<int64_t>(bytes.size()) != length) {
    return arrow::Status::IOError("Reading ", length, " bytes at ", offset, " of '",
                                  name_, "' returned ", bytes.size());
  }
  int64_t stored = 0;
  arrow::Status status;
  for (int64_t b = first; b <= last; ++b) {
    BlockMeta* meta = block(b);
    std::atomic_ref<uint32_t> state(meta->state);
    if (state.load(std::memory_order_acquire) != kAbsent) continue;
    const char* src = bytes.data() + (b - first) * block_size_;
    const int64_t n = BlockLength(b);
    status = Store(b, src, n);
    if (!status.ok()) break;
    std::atomic_ref<uint32_t>(meta->crc).store(Crc32c(src, static_cast<size_t>(n)),
                                               std::memory_order_relaxed);
    state.store(BootId().empty() ? kPresent : kChecked, std::memory_order_release);
    MarkVerified(b);
    stored += n;
  }
  // The blocks stored before a failure stay, and count toward the capacity check.
  if (stored > 0) cache_->Added(stored, hash_);
  return status;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace {

// Whether madvise(MADV_POPULATE_WRITE) exists (Linux 5.14): tried once on a page of
// anonymous memory.
bool CanPopulateWrite() {
  static const bool can = [] {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    void* p =
        ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return false;
    const bool ok = ::madvise(p, page, MADV_POPULATE_WRITE) == 0;
    ::munmap(p, page);
    return ok;
  }();
  return can;
}

}  // namespace

arrow::Status CachedFile::Store(int64_t b, const char* src, int64_t n) {
  uint8_t* dst = const_cast<uint8_t*>(data_) + b * block_size_;
  auto failed = [&](const std::string& why) {
    return arrow::Status::IOError("Cannot write to the cache file of '", name_,
                                  "': ", why);
  };
  // The block's pages are made writable first, in one call that reports a failure
  // (the disk full, a file system error) as an error: a plain write to a hole of the
  // map that the file system cannot back raises SIGBUS. Where the call does not exist,
  // and for a page lost meanwhile (a file truncated under the map), the guard
  // (mapped_file.h) turns SIGBUS into an error; the map then stays marked as damaged.
  if (CanPopulateWrite()) {
    static const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto from = reinterpret_cast<uintptr_t>(dst) & ~(page - 1);
    const auto to = reinterpret_cast<uintptr_t>(dst) + static_cast<uintptr_t>(n);
    if (::madvise(reinterpret_cast<void*>(from), to - from, MADV_POPULATE_WRITE) != 0) {
      const int err = errno;
      return failed(err == EFAULT ? "its pages cannot be backed (is the cache's disk "
                                    "full, or the cache file truncated?)"
                                  : std::strerror(err));
    }
  }
  std::memcpy(dst, src, static_cast<size_t>(n));
  const arrow::Status mapped = CheckMapping(*map_);
  if (!mapped.ok()) return failed(mapped.message());
  return arrow::Status::OK();
}

arrow::Status CachedFile::Plan(std::span<const ByteRange> ranges, uint64_t token,
                               std::vector<std::pair<int64_t, int64_t>>* requests,
                               std::vector<int64_t>* waits) {
  if (complete()) {
    for (const ByteRange& r : ranges) {
      if (r.offset < 0 || r.length < 0 || r.offset > size_ - r.length) {
        return arrow::Status::Invalid("Bytes [", r.offset, ", ", r.offset + r.length,
                                      ") are outside '", name_, "' (", size_, " bytes)");
      }
    }
    return arrow::Status::OK();
  }
  if (verify_all_.exchange(false, std::memory_order_acq_rel)) {
    // Every block was present when this process opened the file: check them all in
    // one pass, after which reads of it skip the per-block checks.
    for (int64_t b = 0; b < num_blocks_; ++b) {
      if (std::atomic_ref<uint32_t>(block(b)->state).load(std::memory_order_acquire) !=
          kAbsent) {
        Verify(b);
      }
    }
  }
  // The blocks the ranges cover, as sorted [first, last] intervals.
  std::vector<std::pair<int64_t, int64_t>> spans;
  spans.reserve(ranges.size());
  for (const ByteRange& r : ranges) {
    if (r.offset < 0 || r.length < 0 || r.offset > size_ - r.length) {
      return arrow::Status::Invalid("Bytes [", r.offset, ", ", r.offset + r.length,
                                    ") are outside '", name_, "' (", size_, " bytes)");
    }
    if (r.length == 0) continue;
    spans.emplace_back(r.offset / block_size_, (r.offset + r.length - 1) / block_size_);
  }
  if (spans.empty()) return arrow::Status::OK();
  if (!std::is_sorted(spans.begin(), spans.end())) std::sort(spans.begin(), spans.end());
  // The absent blocks, grouped into requests: runs of blocks, joined across gaps of at
  // most coalesce_gap bytes (present blocks in a gap are fetched again and skipped),
  // each at most max_request bytes.
  const FileCacheOptions& options = cache_->options();
  const int64_t max_blocks = std::max<int64_t>(1, options.max_request / block_size_);
  const int64_t gap_blocks = options.coalesce_gap / block_size_;
  const size_t first_request = requests->size();
  int64_t covered = -1;  // the last block looked at
  for (auto [first, last] : spans) {
    for (int64_t b = std::max(first, covered + 1); b <= last; ++b) {
      const uint32_t state =
          std::atomic_ref<uint32_t>(block(b)->state).load(std::memory_order_acquire);
      if (state != kAbsent && Verify(b)) continue;
      // Claimed by another request of this process: wait for its fetch. A claim that is
      // not live (none, or a forked parent's) is taken for this request.
      uint64_t held = claims_[b].load(std::memory_order_acquire);
      bool claimed = false;
      while (!LiveClaim(held)) {
        if (claims_[b].compare_exchange_weak(held, token, std::memory_order_acq_rel)) {
          claimed = true;
          break;
        }
      }
      if (!claimed) {
        waits->push_back(b);
        continue;
      }
      if (requests->size() > first_request) {
        auto& [start, end] = requests->back();
        if (b - end - 1 <= gap_blocks && b - start < max_blocks) {
          end = b;
          continue;
        }
      }
      requests->emplace_back(b, b);
    }
    covered = std::max(covered, last);
  }
  return arrow::Status::OK();
}

void CachedFile::Unclaim(int64_t first, int64_t last, uint64_t token) {
  for (int64_t b = first; b <= last; ++b) {
    uint64_t held = token;
    claims_[b].compare_exchange_strong(held, 0, std::memory_order_acq_rel);
  }
}

void CachedFile::AwaitClaims(std::span<const int64_t> waits,
                             std::vector<ByteRange>* left) {
  for (int64_t b : waits) {
    while (true) {
      if (std::atomic_ref<uint32_t>(block(b)->state).load(std::memory_order_acquire) !=
          kAbsent) {
        g_shared_blocks.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      if (!LiveClaim(claims_[b].load(std::memory_order_acquire))) {
        left->push_back({b * block_size_, BlockLength(b)});
        break;
      }
      // A fetch takes milliseconds; polling keeps this free of locks a fork could
      // catch held.
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
}

arrow::Status CachedFile::Ensure(std::span<const ByteRange> ranges) {
  std::pair<CachedFile*, std::vector<ByteRange>> one{this, {}};
  one.second.assign(ranges.begin(), ranges.end());
  return EnsureMany({&one, 1});
}

arrow::Status CachedFile::EnsureMany(
    std::span<const std::pair<CachedFile*, std::vector<ByteRange>>> files) {
  struct Request {
    CachedFile* file;
    int64_t first;
    int64_t last;
  };
  // Blocks another request of this process is fetching are waited for; if that fetch
  // fails they are planned again here, in a next round.
  std::vector<std::pair<CachedFile*, std::vector<ByteRange>>> left(files.begin(),
                                                                   files.end());
  while (!left.empty()) {
    const uint64_t token = NewToken();
    std::vector<Request> requests;
    std::vector<std::pair<int64_t, int64_t>> blocks;
    std::vector<std::vector<int64_t>> waits(left.size());
    int concurrency = 1;
    arrow::Status planned;
    for (size_t f = 0; f < left.size() && planned.ok(); ++f) {
      auto& [file, ranges] = left[f];
      blocks.clear();
      planned = file->Plan(ranges, token, &blocks, &waits[f]);
      for (auto [first, last] : blocks) requests.push_back({file, first, last});
      concurrency = std::max(concurrency, file->cache_->options().max_concurrency);
    }
    // Every claimed request is fetched or its claims released: waiters must never wait
    // for a fetch nobody runs.
    if (!planned.ok()) {
      for (const Request& r : requests) r.file->Unclaim(r.first, r.last, token);
      return planned;
    }
    if (requests.size() == 1) {
      ARROW_RETURN_NOT_OK(
          requests[0].file->Fetch(requests[0].first, requests[0].last, token));
    } else if (!requests.empty()) {
      // Several in flight at once, each thread taking the next request.
      const size_t workers = std::min(requests.size(), static_cast<size_t>(concurrency));
      std::atomic<size_t> next_request{0};
      std::vector<uint8_t> started(requests.size(), 0);  // one writer per element
      std::vector<arrow::Status> errors(workers);
      auto work = [&](size_t w) {
        for (size_t i; (i = next_request.fetch_add(1)) < requests.size();) {
          const Request& r = requests[i];
          started[i] = 1;
          arrow::Status st = r.file->Fetch(r.first, r.last, token);
          if (!st.ok()) {
            errors[w] = std::move(st);
            next_request.store(requests.size());  // stop the others early
            return;
          }
        }
      };
      std::vector<std::thread> threads;
      threads.reserve(workers - 1);
      for (size_t w = 1; w < workers; ++w) threads.emplace_back(work, w);
      work(0);
      for (auto& t : threads) t.join();
      for (size_t i = 0; i < requests.size(); ++i) {
        if (!started[i])
          requests[i].file->Unclaim(requests[i].first, requests[i].last, token);
      }
      for (auto& st : errors) {
        if (!st.ok()) return st;
      }
    }
    std::vector<std::pair<CachedFile*, std::vector<ByteRange>>> next;
    for (size_t f = 0; f < left.size(); ++f) {
      if (waits[f].empty()) continue;
      std::vector<ByteRange> absent;
      left[f].first->AwaitClaims(waits[f], &absent);
      if (!absent.empty()) next.emplace_back(left[f].first, std::move(absent));
    }
    left = std::move(next);
  }
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::Buffer>> CachedFile::Slice(int64_t offset,
                                                                int64_t length) {
  if (offset < 0 || length < 0 || offset > size_ - length) {
    return arrow::Status::Invalid("Bytes [", offset, ", ", offset + length,
                                  ") are outside '", name_, "' (", size_, " bytes)");
  }
  if (map_ == nullptr) return std::make_shared<arrow::Buffer>(nullptr, 0);
  return map_->ReadAt(offset, length);
}

arrow::Status CachedFile::Close() { return arrow::Status::OK(); }

arrow::Result<int64_t> CachedFile::Tell() const { return position_.load(); }

arrow::Status CachedFile::Seek(int64_t position) {
  if (position < 0 || position > size_) {
    return arrow::Status::IOError("Seek to ", position, " outside '", name_, "'");
  }
  position_.store(position);
  return arrow::Status::OK();
}

arrow::Result<std::shared_ptr<arrow::Buffer>> CachedFile::ReadAt(int64_t position,
                                                                 int64_t nbytes) {
  if (position < 0 || nbytes < 0 || position > size_) {
    return arrow::Status::IOError("Read of ", nbytes, " bytes at ", position,
                                  " outside '", name_, "' (", size_, " bytes)");
  }
  nbytes = std::min(nbytes, size_ - position);
  const ByteRange range{position, nbytes};
  ARROW_RETURN_NOT_OK(Ensure({&range, 1}));
  return Slice(position, nbytes);
}

arrow::Result<int64_t> CachedFile::ReadAt(int64_t position, int64_t nbytes, void* out) {
  ARROW_ASSIGN_OR_RAISE(auto buffer, ReadAt(position, nbytes));
  if (buffer->size() > 0) std::memcpy(out, buffer->data(), buffer->size());
  return buffer->size();
}

arrow::Result<std::shared_ptr<arrow::Buffer>> CachedFile::Read(int64_t nbytes) {
  const int64_t position = position_.load();
  ARROW_ASSIGN_OR_RAISE(auto buffer, ReadAt(position, nbytes));
  position_.store(position + buffer->size());
  return buffer;
}

arrow::Result<int64_t> CachedFile::Read(int64_t nbytes, void* out) {
  ARROW_ASSIGN_OR_RAISE(auto buffer, Read(nbytes));
  if (buffer->size() > 0) std::memcpy(out, buffer->data(), buffer->size());
  return buffer->size();
}

}  // namespace riffledb::io
