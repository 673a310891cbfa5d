#include "riffledb/format/references.h"

namespace riffledb::format {

bool IsTemporaryFileName(std::string_view name) {
  constexpr std::string_view kSuffix = ".tmp";
  return name.size() > 1 + kSuffix.size() && name.front() == '.' &&
         name.substr(name.size() - kSuffix.size()) == kSuffix;
}

}  // namespace riffledb::format
