#include "riffledb/util/status.h"

#include <cstring>
#include <memory>

namespace riffledb {

std::string ErrorKindDetail::ToString() const {
  switch (kind_) {
    case ErrorKind::kTableNotFound:
      return "table not found";
    case ErrorKind::kTableExists:
      return "table exists";
    case ErrorKind::kCorruption:
      return "corrupt file";
    case ErrorKind::kCommitOutcomeUnknown:
      return "commit outcome unknown";
  }
  return "unknown error kind";
}

arrow::Status WithErrorKind(const arrow::Status& status, ErrorKind kind) {
  if (status.ok()) return status;
  return status.WithDetail(std::make_shared<ErrorKindDetail>(kind));
}

std::optional<ErrorKind> GetErrorKind(const arrow::Status& status) {
  const auto& detail = status.detail();
  // Compared by content, not address: each shared library holding this code has its own
  // copy of the literal.
  if (detail == nullptr ||
      std::strcmp(detail->type_id(), ErrorKindDetail::kTypeId) != 0) {
    return std::nullopt;
  }
  return static_cast<const ErrorKindDetail&>(*detail).kind();
}

}  // namespace riffledb
