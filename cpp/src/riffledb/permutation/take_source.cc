#include "riffledb/permutation/take_source.h"

namespace riffledb {

std::string SnapshotTakeSource::ToString() const {
  return "table at " + snapshot_->store()->location() + " version " +
         std::to_string(snapshot_->version());
}

}  // namespace riffledb
