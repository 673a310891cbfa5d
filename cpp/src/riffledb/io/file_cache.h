// A local disk cache of immutable remote files (issue #11, items 3 and 4): random reads
// of an object store fetch only the blocks they need, with ranged GETs, and keep them on
// local disk for the next epoch, the next process and the next run.
//
// A cached file is a pair in the cache directory, named by a hash of the remote file's
// identity (its store, path, size and CRC-32C: table files are immutable and never
// reused under another content, so a name can never hold stale bytes; nothing is ever
// invalidated):
//
//   <hash>.data   a sparse file of the remote file's size, memory-mapped shared; a
//                 block's bytes are written once, through the map, when first fetched.
//   <hash>.meta   a header and, per block, its state (absent or present) and the CRC-32C
//                 of its bytes, memory-mapped shared: every process using the cache sees
//                 the blocks the others fetched.
//
// A fetched block is written to the map, then its CRC is stored, then it is marked
// checked (a release store on the shared map). The header records the boot of the
// machine its checked blocks were checked in: the first process to open the file after
// a reboot (when a crash may have kept a block's state but not its bytes) demotes them,
// and each is checked against its CRC when next read (a block torn or damaged on disk is
// fetched again). Within a boot nothing is checked twice: reads go straight to the map,
// at local speed.
//
// Racing fetches of a block, in threads or processes, write the same bytes: harmless.
// The cache is bounded (least recently opened files are deleted first); deleting a
// file in use is safe (its users keep their maps of the unlinked file).
#pragma once

#include <arrow/buffer.h>
#include <arrow/io/interfaces.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace riffledb::io {

/// `length` bytes at `offset` of a file.
struct ByteRange {
  int64_t offset = 0;
  int64_t length = 0;
};

/// Reads `range` of the remote file: exactly `range.length` bytes (one ranged GET), or
/// an error naming the file. Called from several threads at once.
using RangeFetcher = std::function<arrow::Result<std::string>(ByteRange range)>;

struct FileCacheOptions {
  /// Where cached files live (created if missing).
  std::string dir;
  /// Bytes of disk the cache may use, counted as the blocks its files hold; the least
  /// recently opened files are deleted to stay below it.
  int64_t capacity = int64_t{10} << 30;
  /// The unit fetched and checked. A power of two, at least 4096.
  int64_t block_size = int64_t{64} << 10;
  /// Absent blocks this close together (bytes between them) are fetched by one request:
  /// on an object store a request costs about as much as this many bytes.
  int64_t coalesce_gap = int64_t{1} << 20;
  /// The most bytes one request fetches.
  int64_t max_request = int64_t{16} << 20;
  /// Requests in flight at once for one Ensure.
  int max_concurrency = 16;
};

/// What this process fetched through file caches (riffledb.io_stats()).
struct IoStats {
  int64_t requests = 0;        ///< ranged reads sent
  int64_t bytes = 0;           ///< bytes they returned
  int64_t corrupt_blocks = 0;  ///< cached blocks that failed their CRC (fetched again)
  /// absent blocks a read found another read of this process fetching, and waited for
  /// instead of fetching them again
  int64_t shared_blocks = 0;
};
/// The counters so far; with `reset`, zeroes them too. Thread-safe.
IoStats GetIoStats(bool reset = false);

class CachedFile;

class FileCache : public std::enable_shared_from_this<FileCache> {
 public:
  /// Invalid naming the option if `options` are out of range; IOError naming the
  /// directory if it cannot be created.
  static arrow::Result<std::shared_ptr<FileCache>> Make(FileCacheOptions options);

  /// The cached copy of the remote file `name` (for messages) of `size` bytes, whose
  /// content `identity` names uniquely (hashed into the cache's file names). Creates the
  /// cache files if they do not exist; fetches nothing.
  arrow::Result<std::shared_ptr<CachedFile>> Open(const std::string& name,
                                                  const std::string& identity,
                                                  int64_t size, RangeFetcher fetch);

  const FileCacheOptions& options() const { return options_; }
  /// Bytes the cache's files hold on disk now.
  arrow::Result<int64_t> UsedBytes() const;
  /// Deletes least recently opened files until the cache uses at most its capacity,
  /// never `keep` (a hash; empty: none).
  arrow::Status Evict(const std::string& keep = {});

 private:
  friend class CachedFile;
  explicit FileCache(FileCacheOptions options) : options_(std::move(options)) {}
  // Called by CachedFile after it stored `bytes` new bytes.
  void Added(int64_t bytes, const std::string& hash);
  // Deletes a pair unless it is being opened; whether it did.
  static bool RemovePair(const std::string& meta_path, const std::string& data_path);

  const FileCacheOptions options_;
  std::atomic<int64_t> added_since_evict_{0};
};

/// One remote file through its cache, as a random-access file: ReadAt fetches what is
/// absent and returns a zero-copy slice of the map. Readers that read many small ranges
/// (a take's rows) first Ensure() them all, in one call, then read the map directly.
/// Holds no file descriptor (a process may use more cached files than it may hold open).
/// Thread-safe; survives fork() (its maps are shared with the child, which fetches with
/// its own threads and connections).
class CachedFile : public arrow::io::RandomAccessFile {
 public:
  ~CachedFile() override;

  const std::string& name() const { return name_; }
  /// The first byte of the map: byte i of the file is data()[i] once Ensure()d.
  const uint8_t* data() const { return data_; }
  int64_t file_size() const { return size_; }
  /// The offset in the file of `address` if it points into the map.
  std::optional<int64_t> OffsetOf(const uint8_t* address) const;

  /// Makes every byte of `ranges` readable from the map: absent blocks are fetched
  /// (coalesced into requests, several in flight at once) and stored; blocks not checked
  /// since the machine booted are checked against their CRC. Ranges may overlap and
  /// come in any order; each must lie in the file (Invalid naming it otherwise).
  arrow::Status Ensure(std::span<const ByteRange> ranges);
  /// Ensure() for several files at once, their requests sharing one bound on those in
  /// flight (the largest max_concurrency of their caches).
  static arrow::Status EnsureMany(
      std::span<const std::pair<CachedFile*, std::vector<ByteRange>>> files);
  /// A buffer over [offset, offset + length) of the map, without fetching: for data
  /// whose reads are Ensure()d later. Keeps the map alive.
  arrow::Result<std::shared_ptr<arrow::Buffer>> Slice(int64_t offset, int64_t length);
  /// The guarded map (io/mapped_file.h), for CheckMapping.
  const std::shared_ptr<arrow::io::RandomAccessFile>& map() const { return map_; }
  /// Blocks present in the cache (any process's).
  int64_t PresentBlocks() const;
  /// Whether every block is present and was checked by this process: then Ensure only
  /// checks its ranges' bounds, and readers may skip it. One load.
  bool complete() const { return complete_.load(std::memory_order_acquire); }

  // arrow::io::RandomAccessFile. ReadAt and Read Ensure() what they return.
  arrow::Status Close() override;
  bool closed() const override { return false; }
  arrow::Result<int64_t> Tell() const override;
  arrow::Status Seek(int64_t position) override;
  arrow::Result<int64_t> Read(int64_t nbytes, void* out) override;
  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(int64_t nbytes) override;
  arrow::Result<int64_t> ReadAt(int64_t position, int64_t nbytes, void* out) override;
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t position,
                                                       int64_t nbytes) override;
  arrow::Result<int64_t> GetSize() override { return size_; }
  bool supports_zero_copy() const override { return true; }

 private:
  friend class FileCache;
  CachedFile() = default;
  struct BlockMeta;
  BlockMeta* block(int64_t b) const;
  int64_t BlockLength(int64_t b) const;
  // Checks present block `b` against its CRC, once per process; false if it failed
  // (it is then marked absent).
  bool Verify(int64_t b);
  // Fetches blocks [first, last], stores the absent ones, and releases the claims of
  // `token` on them (whether or not the fetch succeeded).
  arrow::Status Fetch(int64_t first, int64_t last, uint64_t token);
  // Writes the `n` bytes of block `b` at `src` into the map; IOError naming the file if
  // its file system cannot store them.
  arrow::Status Store(int64_t b, const char* src, int64_t n);
  // Appends to `requests` the [first, last] blocks to fetch for `ranges`, claiming their
  // absent blocks for `token`, and to `waits` the absent blocks another request of this
  // process has claimed (being fetched: wait for them rather than fetch them again).
  arrow::Status Plan(std::span<const ByteRange> ranges, uint64_t token,
                     std::vector<std::pair<int64_t, int64_t>>* requests,
                     std::vector<int64_t>* waits);
  // Releases the claims of `token` on blocks [first, last].
  void Unclaim(int64_t first, int64_t last, uint64_t token);
  // Waits until each block of `waits` is present or its claim is gone (its fetch
  // failed, or it was a forked parent's); appends the absent ones as ranges to `left`.
  void AwaitClaims(std::span<const int64_t> waits, std::vector<ByteRange>* left);

  std::shared_ptr<FileCache> cache_;
  std::string name_;
  std::string hash_;
  RangeFetcher fetch_;
  int64_t size_ = 0;
  int64_t block_size_ = 0;
  int64_t num_blocks_ = 0;
  // The shared, writable map of the .data file (no descriptor is kept).
  std::shared_ptr<arrow::io::RandomAccessFile> map_;
  const uint8_t* data_ = nullptr;
  uint8_t* meta_ = nullptr;  // the shared map of the .meta file
  size_t meta_size_ = 0;
  // verified_[b]: this process checked block b (inherited across fork: same bytes).
  std::unique_ptr<std::atomic<uint8_t>[]> verified_;
  std::atomic<int64_t> verified_count_{0};
  std::atomic<bool> complete_{false};
  // Every block was present at open: the first Ensure checks them all.
  std::atomic<bool> verify_all_{false};
  void MarkVerified(int64_t b);
  // claims_[b]: the token of the request of this process fetching block b (0: none). A
  // token carries its process's ForkGeneration(): a forked child's inherited claims,
  // whose fetching threads are gone, are stale and taken over.
  std::unique_ptr<std::atomic<uint64_t>[]> claims_;
  std::atomic<int64_t> position_{0};
};

}  // namespace riffledb::io
