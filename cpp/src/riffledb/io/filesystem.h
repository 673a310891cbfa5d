// The storage seam (DESIGN.md "Layers", io): one interface through which every byte of a
// table is read and written, as LevelDB's `Env` is for LevelDB. The format layer and the
// stores above it never call open/fsync/link themselves, so a table works on any
// implementation: local files now, object storage next, and a fault-injecting wrapper in
// tests (fault_injection.h).
//
// Implementations sit on `arrow::fs::FileSystem` and add the two primitives it lacks:
// durable writes (fsync) and the exclusive create that commits rely on.
//
// Paths are the implementation's own (absolute local paths, `bucket/key` on object
// stores); directories are created implicitly where a store has none. Every error is an
// arrow::Status naming the path. Implementations are thread-safe and survive fork():
// they hold no state that a child could inherit half-updated.
#pragma once

#include <arrow/buffer.h>
#include <arrow/filesystem/filesystem.h>
#include <arrow/io/interfaces.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace riffledb::io {

class CachedFile;

enum class EntryType { kNotFound, kFile, kDirectory };

/// One entry of a directory listing.
struct Entry {
  std::string name;  ///< the base name, not the path
  EntryType type = EntryType::kFile;
  int64_t size = -1;      ///< bytes, for files
  int64_t mtime_ms = -1;  ///< last modification, ms since the Unix epoch; -1 if unknown
};

class FileSystem {
 public:
  virtual ~FileSystem() = default;

  /// "file", "s3", "fault" ...: for messages.
  virtual std::string_view kind() const = 0;

  // -- Reads
  // ------------------------------------------------------------------------------

  /// Reads a whole (small) file.
  virtual arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFile(
      const std::string& path) = 0;
  /// Reads a whole (small) file that should have `size` bytes (a manifest's digest says
  /// so): where asking a file's size is a request of its own (object storage: arrow::fs
  /// sends a HEAD before the GET), it is not asked, and at most `size` bytes are read;
  /// elsewhere the whole file is (ReadFile). Callers check what comes back against the
  /// digest's size and CRC: from object storage it is `size` bytes whatever the object
  /// holds (a longer object's first `size` bytes; a shorter one's bytes and then a tail
  /// that is not the object's, which arrow::fs's ranged read cannot tell apart: the
  /// CRC finds it).
  virtual arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFileOfSize(
      const std::string& path, int64_t size) {
    return ReadFile(path);
  }
  /// Opens a file for random access. Local files are memory-mapped: reads are zero-copy
  /// and the map is safe to share across fork().
  virtual arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenInput(
      const std::string& path) = 0;
  virtual arrow::Result<EntryType> Type(const std::string& path) = 0;
  /// The entries of a directory, sorted by name; empty if it does not exist.
  virtual arrow::Result<std::vector<Entry>> List(const std::string& dir) = 0;
  /// The names of the regular files in a directory, sorted; empty if it does not exist.
  /// What listing versions needs, and cheaper than List where sizes and times cost a
  /// call per entry (a local directory of thousands of manifests).
  virtual arrow::Result<std::vector<std::string>> ListFileNames(const std::string& dir);
  /// The immutable file at `path`, of `size` bytes and CRC-32C `crc`, through a local
  /// cache that fetches only the ranges read (io/file_cache.h): what remote stores
  /// return, so that a take reads the rows it needs and not whole files. Null (the
  /// default) where files are read locally: OpenInput maps them.
  virtual arrow::Result<std::shared_ptr<CachedFile>> OpenCached(const std::string& path,
                                                                int64_t size,
                                                                uint32_t crc) {
    return nullptr;
  }

  // -- Writes
  // -----------------------------------------------------------------------------

  /// Creates a new file (AlreadyExists if `path` exists) written as a stream. Its content
  /// is durable once Close() returns OK; a stream dropped without Close() leaves a file
  /// that the caller deletes.
  virtual arrow::Result<std::shared_ptr<arrow::io::OutputStream>> CreateOutput(
      const std::string& path) = 0;
  /// The commit primitive: creates `path` holding exactly `data` unless it exists
  /// (AlreadyExists). Of racing writers, in any process or on any machine, exactly one
  /// wins, and no reader ever sees a partial file.
  ///
  /// Unlike CreateOutput, it never creates the parent directory (an error naming `path`
  /// if it is missing; CreateDirs first): a commit racing the drop of its table fails
  /// instead of recreating the table with a manifest whose files were deleted.
  ///
  /// Any other error leaves the outcome unknown, as a timed-out request to an object
  /// store does: the file may have been created. Callers that must know read it back
  /// (`Table` compares the bytes) and never delete what it references until they do.
  virtual arrow::Status CreateExclusive(const std::string& path,
                                        std::span<const uint8_t> data) = 0;
  /// Creates a directory and its parents; OK if it exists.
  virtual arrow::Status CreateDirs(const std::string& path) = 0;
  /// Makes the entries created in `dir` durable (fsync of the directory locally).
  virtual arrow::Status SyncDir(const std::string& dir) = 0;
  /// Deletes a file; OK if it does not exist.
  virtual arrow::Status DeleteFile(const std::string& path) = 0;
  /// Deletes a directory and everything under it; OK if it does not exist.
  virtual arrow::Status DeleteTree(const std::string& path) = 0;
  /// Renames a file or directory; AlreadyExists if `to` exists (never replaces it).
  virtual arrow::Status RenameNoReplace(const std::string& from,
                                        const std::string& to) = 0;
};

/// Reads, listings and deletes through any `arrow::fs::FileSystem`; writes that are
/// durable when the store's own close is (object stores). Has no exclusive create:
/// CreateExclusive and RenameNoReplace are NotImplemented, naming the store kind, so a
/// store without conditional writes fails at the first commit rather than risk a lost
/// update.
class ArrowFileSystem : public FileSystem {
 public:
  ArrowFileSystem(std::shared_ptr<arrow::fs::FileSystem> fs, std::string kind);

  std::string_view kind() const override { return kind_; }
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFile(
      const std::string& path) override;
  /// One GET of bytes [0, size) (no HEAD first: the size is given).
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFileOfSize(const std::string& path,
                                                               int64_t size) override;
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenInput(
      const std::string& path) override;
  arrow::Result<EntryType> Type(const std::string& path) override;
  arrow::Result<std::vector<Entry>> List(const std::string& dir) override;
  arrow::Result<std::shared_ptr<arrow::io::OutputStream>> CreateOutput(
      const std::string& path) override;
  arrow::Status CreateExclusive(const std::string& path,
                                std::span<const uint8_t> data) override;
  arrow::Status CreateDirs(const std::string& path) override;
  arrow::Status SyncDir(const std::string& dir) override;
  arrow::Status DeleteFile(const std::string& path) override;
  arrow::Status DeleteTree(const std::string& path) override;
  arrow::Status RenameNoReplace(const std::string& from, const std::string& to) override;

 protected:
  /// The arrow::fs filesystem every call goes through: the one given to the constructor,
  /// unless a subclass builds its own (S3FileSystem: one per process, since a client's
  /// connection pool must not be shared with a forked child).
  virtual arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> arrow_fs();

 private:
  const std::shared_ptr<arrow::fs::FileSystem> fs_;
  const std::string kind_;
};

/// Local files: `arrow::fs::LocalFileSystem` with memory-mapped inputs, plus POSIX for
/// what it lacks: fsync on close, directory fsync, and the exclusive create (a fsynced
/// temporary file hard-linked to its name, or renameat2(RENAME_NOREPLACE)).
class LocalFileSystem : public ArrowFileSystem {
 public:
  LocalFileSystem();

  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFile(
      const std::string& path) override;
  /// The whole file, as ReadFile: a size asks for nothing more here.
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFileOfSize(const std::string& path,
                                                               int64_t size) override {
    return ReadFile(path);
  }
  arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenInput(
      const std::string& path) override;
  /// One stat(2), as arrow::fs's GetFileInfo does, without building its FileInfo: a
  /// served table's version check makes two per request.
  arrow::Result<EntryType> Type(const std::string& path) override;
  /// One opendir: a directory created or removed while it is listed is listed
  /// complete or empty (arrow::fs's listing stats it first and can fail in between).
  arrow::Result<std::vector<Entry>> List(const std::string& dir) override;
  /// From the directory entries' types alone, without a stat per entry.
  arrow::Result<std::vector<std::string>> ListFileNames(const std::string& dir) override;
  arrow::Result<std::shared_ptr<arrow::io::OutputStream>> CreateOutput(
      const std::string& path) override;
  arrow::Status CreateExclusive(const std::string& path,
                                std::span<const uint8_t> data) override;
  arrow::Status CreateDirs(const std::string& path) override;
  arrow::Status SyncDir(const std::string& dir) override;
  arrow::Status DeleteFile(const std::string& path) override;
  arrow::Status DeleteTree(const std::string& path) override;
  arrow::Status RenameNoReplace(const std::string& from, const std::string& to) override;
};

/// The process's local filesystem (stateless; shared).
const std::shared_ptr<FileSystem>& Local();

/// `a/b` with exactly one separator.
std::string JoinPath(const std::string& a, const std::string& b);
/// The directory part of `path` ("." for a bare name).
std::string ParentDir(const std::string& path);
/// A random 128-bit id as 32 hex characters (for file names). Drawn from the kernel on
/// every call, so a forked child never repeats its parent's names.
std::string RandomId();

}  // namespace riffledb::io
