// A FileSystem that fails on purpose, for tests of what a crash or an I/O error at any
// point of a write leaves behind (issue: "after each injected fault the table opens at
// the previous or the new version, never a partial one").
//
// Every mutating call counts as one operation: CreateOutput, each Write and the Close of
// a stream it returned, CreateExclusive, CreateDirs, SyncDir, DeleteFile, DeleteTree and
// RenameNoReplace. Reads are passed through uncounted. A test runs a commit once to count
// its operations, then once per N with a fault armed at the N-th.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "riffledb/io/filesystem.h"

namespace riffledb::io {

enum class Fault {
  /// The operation fails and has no effect.
  kError,
  /// Writes: the first half of the bytes is written, then the call fails. Other
  /// operations: as kError.
  kShortWrite,
  /// The operation takes effect, then reports failure (an fsync error after the data
  /// reached the disk; a commit whose reply was lost).
  kAfter,
  /// The process dies: the operation and every later one fail without effect, so
  /// nothing is cleaned up.
  kCrash,
};

const char* FaultName(Fault fault);

class FaultInjectingFileSystem : public FileSystem {
 public:
  explicit FaultInjectingFileSystem(std::shared_ptr<FileSystem> base);

  /// Arms `fault` at the `n`-th (1-based) mutating operation from now and resets the
  /// count and the log.
  void FailAt(int64_t n, Fault fault);
  /// No more faults (a crashed filesystem works again); resets the count and the log.
  void Disarm();
  /// Mutating operations since the last FailAt/Disarm.
  int64_t operations() const;
  /// Whether the armed fault has fired.
  bool fired() const;
  /// One line per mutating operation ("create_exclusive <path>"), for failure messages.
  std::vector<std::string> log() const;

  std::string_view kind() const override { return "fault"; }
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFile(
      const std::string& path) override;
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

  /// What to do for the operation being counted now (internal to the streams, too).
  enum class Action { kProceed, kFail, kShortWrite, kFailAfter };
  Action Count(const std::string& what, const std::string& path);
  arrow::Status Injected(const std::string& what, const std::string& path) const;

 private:
  const std::shared_ptr<FileSystem> base_;
  mutable std::mutex mu_;
  // guarded by mu_
  int64_t fail_at_ = 0;  // 0: disarmed
  Fault fault_ = Fault::kError;
  int64_t operations_ = 0;
  bool fired_ = false;
  bool crashed_ = false;
  std::vector<std::string> log_;
};

}  // namespace riffledb::io
