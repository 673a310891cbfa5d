// What cleanup (table/maintenance.cc) asks before it deletes anything
// (docs/tables.md, "Maintenance"): which files a version needs (ReferencedFiles, in
// manifest.h) and which files are leftovers of an unfinished write.
#pragma once

#include <string_view>

#include "riffledb/format/manifest.h"

namespace riffledb::format {

/// Whether `name` (a base name) is a temporary file of an unfinished write: `.<...>.tmp`
/// (docs/format.md, section 7). Readers ignore these; cleanup removes old ones.
bool IsTemporaryFileName(std::string_view name);

}  // namespace riffledb::format
