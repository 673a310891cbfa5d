#include "riffledb/format/references.h"

namespace riffledb::format {

std::vector<std::string> ReferencedFiles(const Manifest& manifest) {
  std::vector<std::string> paths;
  paths.reserve(manifest.fragments.size());
  for (const auto& fragment : manifest.fragments) {
    paths.push_back(fragment.path);
    if (fragment.deletion.has_value()) paths.push_back(fragment.deletion->path);
  }
  return paths;
}

bool IsTemporaryFileName(std::string_view name) {
  constexpr std::string_view kSuffix = ".tmp";
  return name.size() > 1 + kSuffix.size() && name.front() == '.' &&
         name.substr(name.size() - kSuffix.size()) == kSuffix;
}

}  // namespace riffledb::format
