// Memory-mapped inputs that survive their file shrinking under them (issue #10, item 5).
//
// A read of a mapped page beyond the end of a file that was truncated after it was
// mapped (a `cp` over a table, a truncating editor) raises SIGBUS, which kills the
// process. Every map LocalFileSystem hands out is registered here; a process-wide SIGBUS
// handler that finds the faulting address in a registered map replaces the page with a
// zero page, marks the map as damaged, and lets the read finish. Readers then check
// (FaultedMappings() is one atomic load on the take path) and report an error naming the
// file instead of the zeros. Addresses outside registered maps go to the previous
// handler (faulthandler's, or the default action).
//
// A map stays registered while any of its memory is in use (the file object, or any
// buffer read from it: arrays handed out zero-copy keep it guarded). It holds no file
// descriptor (closed once the file is mapped): a table may have more fragments than the
// process may hold files open.
//
// Limits: data handed out zero-copy (binary views, scan batches) and read after the
// check sees zeros; the handler is re-installed on top whenever a new file is mapped, so
// a handler installed later (faulthandler.enable()) is chained below it from then on.
#pragma once

#include <arrow/buffer.h>
#include <arrow/io/file.h>
#include <arrow/io/interfaces.h>
#include <arrow/result.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

namespace riffledb::io {

/// Maps `path` read-only, registered with the SIGBUS guard for its lifetime. IOError
/// "Cannot open '<path>': <the system's reason>" or "Cannot map ...".
arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenGuardedMap(
    const std::string& path);

/// How OpenGuardedMap(path, fd, mode) maps a file.
enum class MapMode {
  kRead,
  /// Shared and writable as well: what is written to the map goes to the file (the file
  /// cache stores fetched blocks this way, without holding a descriptor). A page found
  /// truncated is replaced by a writable zero page, so that a write to it completes.
  kReadWrite,
};

/// Maps the file open as `fd` (which stays open; `fd` must allow `mode`), registered
/// with the guard; `path` names it in messages.
arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenGuardedMap(
    const std::string& path, int fd, MapMode mode);

/// How many mapped pages were found truncated so far in this process (0 almost always:
/// readers skip their checks while it is).
uint64_t FaultedMappings();

/// IOError naming the file if `file` is a guarded map that was found truncated; OK for
/// any other file.
arrow::Status CheckMapping(const arrow::io::RandomAccessFile& file);

namespace internal {
/// For tests: holds the guard's registration lock for `hold`, setting `*held` once it
/// has it (a fork() meanwhile must not leave the child with it held).
void HoldGuardLockForTesting(std::chrono::milliseconds hold, std::atomic<bool>* held);
}  // namespace internal

}  // namespace riffledb::io
