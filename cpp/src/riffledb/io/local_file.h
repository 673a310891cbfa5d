// File access for the table store: reads, durable writes and the exclusive create that
// commits rely on (DESIGN.md, decision 3). Local paths for now; object stores later.
//
// Thread-safe: every function is stateless. Errors are IOError naming the path, except
// CreateFileExclusive's AlreadyExists when the target exists.
#pragma once

#include <arrow/buffer.h>
#include <arrow/io/file.h>
#include <arrow/result.h>
#include <arrow/status.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace riffledb::io {

/// Creates `path` holding exactly `data`, or fails with AlreadyExists if `path` exists.
/// Atomic: the data is written to a temporary file in the same directory, fsynced, and
/// hard-linked to `path` (link fails if it exists), so no reader ever sees a partial file
/// and two racing writers cannot both succeed. The directory is fsynced afterwards.
arrow::Status CreateFileExclusive(const std::string& path, std::span<const uint8_t> data);

/// Writes `path` with `data`, replacing any previous file atomically (temp + fsync +
/// rename).
arrow::Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> data);

/// Reads a whole (small) file.
arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFile(const std::string& path);

/// Opens a file as a read-only memory map (zero-copy reads; shared safely across fork()).
arrow::Result<std::shared_ptr<arrow::io::MemoryMappedFile>> MapFile(
    const std::string& path);

/// Names (not paths) of the entries of a directory, sorted; an empty list if it does not
/// exist.
arrow::Result<std::vector<std::string>> ListDir(const std::string& path);

arrow::Result<bool> Exists(const std::string& path);
arrow::Result<bool> IsDirectory(const std::string& path);
/// Creates the directory and its parents (no error if it exists).
arrow::Status CreateDirs(const std::string& path);
/// Removes a file or a directory tree (no error if it does not exist).
arrow::Status RemoveAll(const std::string& path);
/// fsync()s a directory so that entries created in it survive a crash.
arrow::Status SyncDir(const std::string& path);

/// `a/b` with exactly one separator.
std::string JoinPath(const std::string& a, const std::string& b);

/// A random 128-bit id as 32 hex characters (for file names).
std::string RandomId();

}  // namespace riffledb::io
