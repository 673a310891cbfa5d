#include "riffledb/io/fault_injection.h"

#include <utility>

namespace riffledb::io {

const char* FaultName(Fault fault) {
  switch (fault) {
    case Fault::kError:
      return "error";
    case Fault::kShortWrite:
      return "short write";
    case Fault::kAfter:
      return "error after the effect";
    case Fault::kCrash:
      return "crash";
  }
  return "?";
}

namespace {

using Action = FaultInjectingFileSystem::Action;

// A stream of the base filesystem whose writes and close are counted operations.
class FaultyOutputStream : public arrow::io::OutputStream {
 public:
  FaultyOutputStream(FaultInjectingFileSystem* fs, std::string path,
                     std::shared_ptr<arrow::io::OutputStream> base)
      : fs_(fs), path_(std::move(path)), base_(std::move(base)) {}

  arrow::Status Close() override {
    if (base_->closed()) return arrow::Status::OK();
    switch (fs_->Count("close", path_)) {
      case Action::kProceed:
        return base_->Close();
      case Action::kFailAfter:
        ARROW_RETURN_NOT_OK(base_->Close());
        return fs_->Injected("close", path_);
      default:
        // A failed close (fsync error) still releases the descriptor.
        (void)base_->Abort();
        return fs_->Injected("close", path_);
    }
  }
  arrow::Status Abort() override { return base_->Abort(); }
  bool closed() const override { return base_->closed(); }
  arrow::Result<int64_t> Tell() const override { return base_->Tell(); }
  arrow::Status Write(const void* data, int64_t nbytes) override {
    switch (fs_->Count("write", path_)) {
      case Action::kProceed:
        return base_->Write(data, nbytes);
      case Action::kShortWrite:
        ARROW_RETURN_NOT_OK(base_->Write(data, nbytes / 2));
        return fs_->Injected("write", path_);
      case Action::kFailAfter:
        ARROW_RETURN_NOT_OK(base_->Write(data, nbytes));
        return fs_->Injected("write", path_);
      case Action::kFail:
        break;
    }
    return fs_->Injected("write", path_);
  }

 private:
  FaultInjectingFileSystem* const fs_;  // outlives its streams (tests keep it alive)
  const std::string path_;
  const std::shared_ptr<arrow::io::OutputStream> base_;
};

}  // namespace

FaultInjectingFileSystem::FaultInjectingFileSystem(std::shared_ptr<FileSystem> base)
    : base_(std::move(base)) {}

void FaultInjectingFileSystem::FailAt(int64_t n, Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_at_ = n;
  fault_ = fault;
  operations_ = 0;
  fired_ = false;
  crashed_ = false;
  log_.clear();
}

void FaultInjectingFileSystem::Disarm() { FailAt(0, Fault::kError); }

int64_t FaultInjectingFileSystem::operations() const {
  std::lock_guard<std::mutex> lock(mu_);
  return operations_;
}

bool FaultInjectingFileSystem::fired() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fired_;
}

std::vector<std::string> FaultInjectingFileSystem::log() const {
  std::lock_guard<std::mutex> lock(mu_);
  return log_;
}

Action FaultInjectingFileSystem::Count(const std::string& what, const std::string& path) {
  std::lock_guard<std::mutex> lock(mu_);
  ++operations_;
  log_.push_back(what + " " + path);
  if (crashed_) return Action::kFail;
  if (fail_at_ == 0 || operations_ != fail_at_) return Action::kProceed;
  fired_ = true;
  log_.back() += "  <-- ";
  log_.back() += FaultName(fault_);
  switch (fault_) {
    case Fault::kError:
      return Action::kFail;
    case Fault::kShortWrite:
      return what == "write" ? Action::kShortWrite : Action::kFail;
    case Fault::kAfter:
      return Action::kFailAfter;
    case Fault::kCrash:
      crashed_ = true;
      return Action::kFail;
  }
  return Action::kFail;
}

arrow::Status FaultInjectingFileSystem::Injected(const std::string& what,
                                                 const std::string& path) const {
  return arrow::Status::IOError("Injected fault: ", what, " '", path, "'");
}

arrow::Result<std::shared_ptr<arrow::Buffer>> FaultInjectingFileSystem::ReadFile(
    const std::string& path) {
  return base_->ReadFile(path);
}

arrow::Result<std::shared_ptr<arrow::Buffer>> FaultInjectingFileSystem::ReadFileOfSize(
    const std::string& path, int64_t size) {
  return base_->ReadFileOfSize(path, size);
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>>
FaultInjectingFileSystem::OpenInput(const std::string& path) {
  return base_->OpenInput(path);
}

arrow::Result<EntryType> FaultInjectingFileSystem::Type(const std::string& path) {
  return base_->Type(path);
}

arrow::Result<std::vector<Entry>> FaultInjectingFileSystem::List(const std::string& dir) {
  return base_->List(dir);
}

arrow::Result<std::shared_ptr<arrow::io::OutputStream>>
FaultInjectingFileSystem::CreateOutput(const std::string& path) {
  Action action = Count("create_output", path);
  if (action == Action::kFail || action == Action::kShortWrite) {
    return Injected("create_output", path);
  }
  ARROW_ASSIGN_OR_RAISE(auto stream, base_->CreateOutput(path));
  if (action == Action::kFailAfter) {
    (void)stream->Abort();  // the file exists, its writer is gone
    return Injected("create_output", path);
  }
  return std::make_shared<FaultyOutputStream>(this, path, std::move(stream));
}

// The common shape of the other mutating operations.
#define RIFFLEDB_FAULTY_OP(what, path, call)                     \
  do {                                                           \
    Action action = Count(what, path);                           \
    if (action == Action::kProceed) return call;                 \
    if (action == Action::kFailAfter) ARROW_RETURN_NOT_OK(call); \
    return Injected(what, path);                                 \
  } while (false)

arrow::Status FaultInjectingFileSystem::CreateExclusive(const std::string& path,
                                                        std::span<const uint8_t> data) {
  RIFFLEDB_FAULTY_OP("create_exclusive", path, base_->CreateExclusive(path, data));
}

arrow::Status FaultInjectingFileSystem::CreateDirs(const std::string& path) {
  RIFFLEDB_FAULTY_OP("create_dirs", path, base_->CreateDirs(path));
}

arrow::Status FaultInjectingFileSystem::SyncDir(const std::string& dir) {
  RIFFLEDB_FAULTY_OP("sync_dir", dir, base_->SyncDir(dir));
}

arrow::Status FaultInjectingFileSystem::DeleteFile(const std::string& path) {
  RIFFLEDB_FAULTY_OP("delete_file", path, base_->DeleteFile(path));
}

arrow::Status FaultInjectingFileSystem::DeleteTree(const std::string& path) {
  RIFFLEDB_FAULTY_OP("delete_tree", path, base_->DeleteTree(path));
}

arrow::Status FaultInjectingFileSystem::RenameNoReplace(const std::string& from,
                                                        const std::string& to) {
  RIFFLEDB_FAULTY_OP("rename", from + " -> " + to, base_->RenameNoReplace(from, to));
}

#undef RIFFLEDB_FAULTY_OP

}  // namespace riffledb::io
