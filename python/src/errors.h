// The one place where an arrow::Status becomes a Python exception (DESIGN.md, decision
// 10).
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>
#include <nanobind/nanobind.h>

#include <utility>

namespace riffledb::python {

/// Raises the riffledb.errors exception for a failed status (docs/errors.md): Invalid ->
/// InvalidError (a ValueError; TableNotFoundError / TableExistsError when the status
/// carries that ErrorKind), KeyError -> RiffledbKeyError, IndexError ->
/// RiffledbIndexError, IOError -> RiffledbIOError, NotImplemented -> NotSupportedError,
/// TypeError -> RiffledbTypeError, CapacityError / OutOfMemory -> RiffledbMemoryError,
/// any code with ErrorKind::kCorruption -> CorruptionError, Cancelled ->
/// KeyboardInterrupt, other -> InternalError; a failed request of the remote client
/// (remote::HttpErrorDetail) -> riffledb.remote.errors.HttpError / RetryError. Must hold
/// the GIL.
[[noreturn]] void RaiseStatus(const arrow::Status& status);

inline void ThrowIfError(const arrow::Status& status) {
  if (!status.ok()) RaiseStatus(status);
}

template <typename T>
T ValueOrThrow(arrow::Result<T>&& result) {
  if (!result.ok()) RaiseStatus(result.status());
  return std::move(result).ValueUnsafe();
}

/// Runs `f` with the GIL released and returns its result (Status or Result<T>) unchanged;
/// callers convert it with ThrowIfError / ValueOrThrow after the GIL is back.
template <typename F>
auto WithoutGil(F&& f) -> decltype(f()) {
  nanobind::gil_scoped_release release;
  return f();
}

}  // namespace riffledb::python
