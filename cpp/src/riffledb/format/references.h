// Which files a version needs: the one answer that cleanup (table/maintenance.cc) asks
// before it deletes anything (docs/tables.md, "Maintenance").
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "riffledb/format/manifest.h"

namespace riffledb::format {

/// Every file `manifest` references, relative to the table directory: its fragment files
/// and deletion files, in manifest order. A file that no remaining version lists here is
/// garbage once no writer can still commit a reference to it.
std::vector<std::string> ReferencedFiles(const Manifest& manifest);

/// Whether `name` (a base name) is a temporary file of an unfinished write: `.<...>.tmp`
/// (docs/format.md, section 7). Readers ignore these; cleanup removes old ones.
bool IsTemporaryFileName(std::string_view name);

}  // namespace riffledb::format
