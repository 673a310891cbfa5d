// Status helpers: the precise kind of a failure, beyond its arrow::StatusCode.
#pragma once

#include <arrow/status.h>

#include <optional>
#include <string>

namespace riffledb {

/// Kinds a caller may need to tell apart among statuses of one code (the first
/// three are Invalid: the bindings raise a more specific exception for each,
/// docs/errors.md).
enum class ErrorKind {
  /// The named table does not exist in the database.
  kTableNotFound,
  /// A table of that name already exists.
  kTableExists,
  /// A committed file (manifest, fragment, deletion file) is damaged; the message names
  /// it.
  kCorruption,
  /// A commit failed in a way that leaves its outcome unknown (the store may have
  /// published the version): the writer keeps every file it wrote, since a committed
  /// manifest may reference them; cleanup removes them later if not.
  kCommitOutcomeUnknown,
};

/// The arrow::StatusDetail carrying an ErrorKind. Immutable, so thread-safe.
class ErrorKindDetail : public arrow::StatusDetail {
 public:
  static constexpr const char* kTypeId = "riffledb::ErrorKindDetail";

  explicit ErrorKindDetail(ErrorKind kind) : kind_(kind) {}

  const char* type_id() const override { return kTypeId; }
  std::string ToString() const override;
  ErrorKind kind() const { return kind_; }

 private:
  const ErrorKind kind_;
};

/// `status` with `kind` attached (an OK status stays OK).
arrow::Status WithErrorKind(const arrow::Status& status, ErrorKind kind);

/// The kind attached by WithErrorKind, if any.
std::optional<ErrorKind> GetErrorKind(const arrow::Status& status);

}  // namespace riffledb
