#include "riffledb/io/filesystem.h"

#include <arrow/filesystem/localfs.h>
#include <arrow/io/file.h>
#include <arrow/io/memory.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "riffledb/io/mapped_file.h"

namespace riffledb::io {

namespace {

arrow::Status ErrnoError(int err, const char* what, const std::string& path) {
  return arrow::Status::IOError(what, " '", path, "': ", std::strerror(err));
}

// Prefixes an error from arrow::fs with what we were doing, unless it names the path
// already (arrow's messages usually do).
arrow::Status Annotate(const arrow::Status& st, const char* what,
                       const std::string& path) {
  if (st.ok() || st.message().find(path) != std::string::npos) return st;
  return st.WithMessage(what, " '", path, "': ", st.message());
}

}  // namespace

// ---------------------------------------------------------------------------------------
// ArrowFileSystem

ArrowFileSystem::ArrowFileSystem(std::shared_ptr<arrow::fs::FileSystem> fs,
                                 std::string kind)
    : fs_(std::move(fs)), kind_(std::move(kind)) {}

arrow::Result<std::shared_ptr<arrow::fs::FileSystem>> ArrowFileSystem::arrow_fs() {
  return fs_;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ArrowFileSystem::ReadFile(
    const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto file, OpenInput(path));
  auto size = file->GetSize();
  if (!size.ok()) return Annotate(size.status(), "Cannot read", path);
  auto data = file->ReadAt(0, *size);
  if (!data.ok()) return Annotate(data.status(), "Cannot read", path);
  return *data;
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ArrowFileSystem::ReadFileOfSize(
    const std::string& path, int64_t size) {
  if (size <= 0) return ReadFile(path);  // an empty object has no byte to range over
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow_fs());
  arrow::fs::FileInfo info(path, arrow::fs::FileType::File);
  info.set_size(size);
  auto file = fs->OpenInputFile(info);
  if (!file.ok()) return Annotate(file.status(), "Cannot open", path);
  auto data = (*file)->ReadAt(0, size);
  if (!data.ok()) return Annotate(data.status(), "Cannot read", path);
  return *data;
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> ArrowFileSystem::OpenInput(
    const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow_fs());
  auto file = fs->OpenInputFile(path);
  if (!file.ok()) return Annotate(file.status(), "Cannot open", path);
  return *file;
}

arrow::Result<EntryType> ArrowFileSystem::Type(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow_fs());
  auto info = fs->GetFileInfo(path);
  if (!info.ok()) return Annotate(info.status(), "Cannot stat", path);
  switch (info->type()) {
    case arrow::fs::FileType::NotFound:
      return EntryType::kNotFound;
    case arrow::fs::FileType::Directory:
      return EntryType::kDirectory;
    default:
      return EntryType::kFile;
  }
}

arrow::Result<std::vector<Entry>> ArrowFileSystem::List(const std::string& dir) {
  arrow::fs::FileSelector selector;
  selector.base_dir = dir;
  selector.allow_not_found = true;
  selector.recursive = false;
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow_fs());
  auto infos = fs->GetFileInfo(selector);
  if (!infos.ok()) return Annotate(infos.status(), "Cannot list", dir);
  std::vector<Entry> entries;
  entries.reserve(infos->size());
  for (const auto& info : *infos) {
    Entry entry;
    entry.name = info.base_name();
    entry.type = info.IsDirectory() ? EntryType::kDirectory : EntryType::kFile;
    entry.size = info.IsDirectory() ? -1 : info.size();
    if (info.mtime() != arrow::fs::kNoTime) {
      entry.mtime_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                           info.mtime().time_since_epoch())
                           .count();
    }
    entries.push_back(std::move(entry));
  }
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return entries;
}

arrow::Result<std::shared_ptr<arrow::io::OutputStream>> ArrowFileSystem::CreateOutput(
    const std::string& path) {
  // Not atomic against a racing create of the same name; callers name new files with
  // RandomId(), so only the exclusive create of commits needs that guarantee.
  ARROW_ASSIGN_OR_RAISE(EntryType type, Type(path));
  if (type != EntryType::kNotFound) {
    return arrow::Status::AlreadyExists("File already exists: '", path, "'");
  }
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow_fs());
  auto stream = fs->OpenOutputStream(path);
  if (!stream.ok()) return Annotate(stream.status(), "Cannot create", path);
  return *stream;
}

arrow::Status ArrowFileSystem::CreateExclusive(const std::string& path,
                                               std::span<const uint8_t> data) {
  return arrow::Status::NotImplemented(
      "The '", kind_,
      "' store has no exclusive create, which commits need: cannot "
      "create '",
      path, "' safely against concurrent writers");
}

arrow::Status ArrowFileSystem::CreateDirs(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow_fs());
  return Annotate(fs->CreateDir(path, /*recursive=*/true), "Cannot create directory",
                  path);
}

arrow::Status ArrowFileSystem::SyncDir(const std::string& dir) {
  return arrow::Status::OK();  // object stores: a completed write is durable
}

arrow::Status ArrowFileSystem::DeleteFile(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(EntryType type, Type(path));
  if (type == EntryType::kNotFound) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow_fs());
  return Annotate(fs->DeleteFile(path), "Cannot delete", path);
}

arrow::Status ArrowFileSystem::DeleteTree(const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(EntryType type, Type(path));
  if (type == EntryType::kNotFound) return arrow::Status::OK();
  ARROW_ASSIGN_OR_RAISE(auto fs, arrow_fs());
  if (type == EntryType::kFile)
    return Annotate(fs->DeleteFile(path), "Cannot delete", path);
  return Annotate(fs->DeleteDir(path), "Cannot delete", path);
}

arrow::Status ArrowFileSystem::RenameNoReplace(const std::string& from,
                                               const std::string& to) {
  return arrow::Status::NotImplemented("The '", kind_,
                                       "' store cannot rename without replacing: '", from,
                                       "' to '", to, "'");
}

// ---------------------------------------------------------------------------------------
// LocalFileSystem

namespace {

// Closes a descriptor on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  // Closes now, reporting the error (close can report deferred write errors on some
  // filesystems).
  arrow::Status Close(const std::string& path) {
    int fd = std::exchange(fd_, -1);
    if (::close(fd) != 0) return ErrnoError(errno, "Cannot close", path);
    return arrow::Status::OK();
  }

 private:
  int fd_;
};

arrow::Status WriteAll(int fd, std::span<const uint8_t> data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "Cannot write", path);
    }
    done += static_cast<size_t>(n);
  }
  return arrow::Status::OK();
}

// open(O_CREAT | O_EXCL), creating missing parent directories first if `create_parents`.
arrow::Result<int> CreateNew(LocalFileSystem* fs, const std::string& path,
                             bool create_parents) {
  for (int attempt = 0;; ++attempt) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) return fd;
    int err = errno;
    if (err == ENOENT && attempt == 0 && create_parents) {
      ARROW_RETURN_NOT_OK(fs->CreateDirs(ParentDir(path)));
      continue;
    }
    if (err == EEXIST)
      return arrow::Status::AlreadyExists("File already exists: '", path, "'");
    return ErrnoError(err, "Cannot create", path);
  }
}

// Writes `data` to a new temporary file beside `path` and fsyncs it. The name starts with
// '.' and ends with ".tmp", so listings that look for committed names skip it.
arrow::Result<std::string> WriteTempFile(LocalFileSystem* fs, const std::string& path,
                                         std::span<const uint8_t> data) {
  std::filesystem::path p(path);
  std::string tmp =
      (p.parent_path() / ("." + p.filename().string() + "." + RandomId() + ".tmp"))
          .string();
  // Never creates the directory: a commit racing the removal of its table (a drop
  // renames the table directory away) must fail, not recreate `_versions/` holding a
  // manifest whose files are gone.
  ARROW_ASSIGN_OR_RAISE(int fd, CreateNew(fs, tmp, /*create_parents=*/false));
  FdGuard guard(fd);
  arrow::Status st = WriteAll(fd, data, tmp);
  if (st.ok() && ::fsync(fd) != 0) st = ErrnoError(errno, "Cannot fsync", tmp);
  if (st.ok()) st = guard.Close(tmp);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return tmp;
}

// A new local file written through Arrow's FileOutputStream, fsynced on Close() so that
// "closed" means "durable", as the seam promises.
class DurableOutputStream : public arrow::io::OutputStream {
 public:
  DurableOutputStream(std::string path, std::shared_ptr<arrow::io::FileOutputStream> file)
      : path_(std::move(path)), file_(std::move(file)) {}

  arrow::Status Close() override {
    if (file_->closed()) return arrow::Status::OK();
    if (::fsync(file_->file_descriptor()) != 0) {
      arrow::Status st = ErrnoError(errno, "Cannot fsync", path_);
      (void)file_->Close();
      return st;
    }
    return Annotate(file_->Close(), "Cannot close", path_);
  }
  arrow::Status Abort() override { return file_->Abort(); }
  bool closed() const override { return file_->closed(); }
  arrow::Result<int64_t> Tell() const override { return file_->Tell(); }
  arrow::Status Write(const void* data, int64_t nbytes) override {
    return Annotate(file_->Write(data, nbytes), "Cannot write", path_);
  }
  arrow::Status Write(const std::shared_ptr<arrow::Buffer>& data) override {
    return Annotate(file_->Write(data), "Cannot write", path_);
  }

 private:
  const std::string path_;
  std::shared_ptr<arrow::io::FileOutputStream> file_;
};

}  // namespace

LocalFileSystem::LocalFileSystem()
    : ArrowFileSystem(std::make_shared<arrow::fs::LocalFileSystem>(), "file") {}

arrow::Result<std::shared_ptr<arrow::Buffer>> LocalFileSystem::ReadFile(
    const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "Cannot open", path);
  FdGuard guard(fd);
  struct stat st;
  if (::fstat(fd, &st) != 0) return ErrnoError(errno, "Cannot stat", path);
  if (S_ISDIR(st.st_mode)) return ErrnoError(EISDIR, "Cannot read", path);
  ARROW_ASSIGN_OR_RAISE(std::unique_ptr<arrow::ResizableBuffer> buffer,
                        arrow::AllocateResizableBuffer(st.st_size + 1));
  int64_t size = 0;
  while (true) {
    if (size == buffer->size()) {
      // The file grew since fstat (the extra byte lets the common case see EOF first).
      ARROW_RETURN_NOT_OK(buffer->Resize(std::max<int64_t>(4096, size * 2)));
    }
    ssize_t n = ::read(fd, buffer->mutable_data() + size, buffer->size() - size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "Cannot read", path);
    }
    if (n == 0) break;
    size += n;
  }
  ARROW_RETURN_NOT_OK(buffer->Resize(size, /*shrink_to_fit=*/false));
  return std::shared_ptr<arrow::Buffer>(std::move(buffer));
}

arrow::Result<EntryType> LocalFileSystem::Type(const std::string& path) {
  if (path.find('\0') != std::string::npos) {
    return arrow::Status::Invalid("Cannot stat '", path, "': the path has a NUL byte");
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    // As arrow::fs's: a path through a file, or a loop of links, is not there.
    if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
      return EntryType::kNotFound;
    }
    return ErrnoError(errno, "Cannot stat", path);
  }
  return S_ISDIR(st.st_mode) ? EntryType::kDirectory : EntryType::kFile;
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> LocalFileSystem::OpenInput(
    const std::string& path) {
  // Guarded: a file truncated under its readers is an error, not a SIGBUS. Its errors
  // are "Cannot open '<path>': <reason>" and "Cannot map ...".
  return OpenGuardedMap(path);
}

namespace {

// Calls `visit(dir_fd, entry)` for each entry of `dir` but "." and "..", in readdir
// order; `visit` returns 0 or an errno that stops the walk. A missing `dir` has no
// entries. Errors name the directory.
template <typename Visit>
arrow::Status ForEachDirEntry(const std::string& dir, Visit visit) {
  DIR* handle = ::opendir(dir.c_str());
  if (handle == nullptr) {
    if (errno == ENOENT) return arrow::Status::OK();
    return ErrnoError(errno, "Cannot list", dir);
  }
  const int dir_fd = ::dirfd(handle);
  int err = 0;
  while (err == 0) {
    errno = 0;
    struct dirent* entry = ::readdir(handle);
    if (entry == nullptr) {
      err = errno;
      break;
    }
    std::string_view name(entry->d_name);
    if (name == "." || name == "..") continue;
    err = visit(dir_fd, *entry);
  }
  ::closedir(handle);
  if (err != 0) return ErrnoError(err, "Cannot list", dir);
  return arrow::Status::OK();
}

// fstatat of a directory entry: 0, ENOENT (removed since readdir saw it) or an errno.
int StatEntry(int dir_fd, const struct dirent& entry, struct stat* st) {
  if (::fstatat(dir_fd, entry.d_name, st, AT_SYMLINK_NOFOLLOW) == 0) return 0;
  return errno;
}

}  // namespace

arrow::Result<std::vector<Entry>> LocalFileSystem::List(const std::string& dir) {
  std::vector<Entry> entries;
  ARROW_RETURN_NOT_OK(ForEachDirEntry(dir, [&](int dir_fd, const struct dirent& entry) {
    struct stat st;
    const int err = StatEntry(dir_fd, entry, &st);
    if (err != 0) return err == ENOENT ? 0 : err;
    Entry out;
    out.name = entry.d_name;
    out.type = S_ISDIR(st.st_mode) ? EntryType::kDirectory : EntryType::kFile;
    out.size = S_ISDIR(st.st_mode) ? -1 : static_cast<int64_t>(st.st_size);
    out.mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 +
                   static_cast<int64_t>(st.st_mtim.tv_nsec) / 1'000'000;
    entries.push_back(std::move(out));
    return 0;
  }));
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return entries;
}

arrow::Result<std::vector<std::string>> FileSystem::ListFileNames(
    const std::string& dir) {
  ARROW_ASSIGN_OR_RAISE(auto entries, List(dir));
  std::vector<std::string> names;
  for (auto& entry : entries) {
    if (entry.type == EntryType::kFile) names.push_back(std::move(entry.name));
  }
  return names;
}

arrow::Result<std::vector<std::string>> LocalFileSystem::ListFileNames(
    const std::string& dir) {
  std::vector<std::string> names;
  ARROW_RETURN_NOT_OK(ForEachDirEntry(dir, [&](int dir_fd, const struct dirent& entry) {
    bool file = entry.d_type == DT_REG;
    if (entry.d_type == DT_UNKNOWN) {  // filesystems that do not fill d_type
      struct stat st;
      const int err = StatEntry(dir_fd, entry, &st);
      if (err != 0) return err == ENOENT ? 0 : err;
      file = S_ISREG(st.st_mode);
    }
    if (file) names.emplace_back(entry.d_name);
    return 0;
  }));
  std::sort(names.begin(), names.end());
  return names;
}

arrow::Result<std::shared_ptr<arrow::io::OutputStream>> LocalFileSystem::CreateOutput(
    const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(int fd, CreateNew(this, path, /*create_parents=*/true));
  auto file = arrow::io::FileOutputStream::Open(fd);  // owns fd from here on
  if (!file.ok()) {
    ::close(fd);
    ::unlink(path.c_str());
    return Annotate(file.status(), "Cannot create", path);
  }
  return std::make_shared<DurableOutputStream>(path, *file);
}

arrow::Status LocalFileSystem::CreateExclusive(const std::string& path,
                                               std::span<const uint8_t> data) {
  auto written = WriteTempFile(this, path, data);
  if (!written.ok()) {
    // Name the file the caller asked for, not only our temporary one.
    return written.status().WithMessage(written.status().message(), " (creating '", path,
                                        "')");
  }
  const std::string& tmp = *written;
  // link() fails with EEXIST if `path` exists, atomically: of racing writers (threads or
  // processes) exactly one wins, and `path` appears with its complete content.
  int rc = ::link(tmp.c_str(), path.c_str());
  int err = rc == 0 ? 0 : errno;
  if (rc != 0 && (err == EPERM || err == ENOTSUP || err == EOPNOTSUPP || err == ENOSYS)) {
    // Filesystems without hard links: renameat2(RENAME_NOREPLACE) gives the same
    // guarantee.
    rc = ::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE);
    err = rc == 0 ? 0 : errno;
  }
  ::unlink(tmp.c_str());  // after a successful rename this is a harmless ENOENT
  if (rc != 0) {
    if (err == EEXIST)
      return arrow::Status::AlreadyExists("File already exists: '", path, "'");
    return ErrnoError(err, "Cannot create", path);
  }
  // From here on `path` exists: a failure is "outcome unknown" to the caller.
  return SyncDir(ParentDir(path));
}

arrow::Status LocalFileSystem::CreateDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec)
    return arrow::Status::IOError("Cannot create directory '", path, "': ", ec.message());
  // create_directories succeeds if `path` exists as a file on some standard libraries.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "Cannot stat", path);
  if (!S_ISDIR(st.st_mode)) return ErrnoError(ENOTDIR, "Cannot create directory", path);
  return arrow::Status::OK();
}

arrow::Status LocalFileSystem::SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "Cannot open directory", dir);
  FdGuard guard(fd);
  // EINVAL: the filesystem does not support syncing directories (nothing more to do).
  if (::fsync(fd) != 0 && errno != EINVAL) return ErrnoError(errno, "Cannot fsync", dir);
  return guard.Close(dir);
}

arrow::Status LocalFileSystem::DeleteFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoError(errno, "Cannot delete", path);
  }
  return arrow::Status::OK();
}

arrow::Status LocalFileSystem::DeleteTree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return arrow::Status::IOError("Cannot delete '", path, "': ", ec.message());
  return arrow::Status::OK();
}

arrow::Status LocalFileSystem::RenameNoReplace(const std::string& from,
                                               const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
    return arrow::Status::OK();
  }
  int err = errno;
  if (err == EEXIST || err == ENOTEMPTY) {
    return arrow::Status::AlreadyExists("Cannot rename '", from, "' to '", to,
                                        "': the target exists");
  }
  return arrow::Status::IOError("Cannot rename '", from, "' to '", to,
                                "': ", std::strerror(err));
}

const std::shared_ptr<FileSystem>& Local() {
  // Leaked on purpose: usable from static destructors and never torn down under a
  // thread that still writes.
  static const auto* local =
      new std::shared_ptr<FileSystem>(std::make_shared<LocalFileSystem>());
  return *local;
}

// ---------------------------------------------------------------------------------------
// Paths and names

std::string JoinPath(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  size_t a_end = a.find_last_not_of('/');
  size_t b_begin = b.find_first_not_of('/');
  std::string head = a_end == std::string::npos ? "" : a.substr(0, a_end + 1);
  std::string tail = b_begin == std::string::npos ? "" : b.substr(b_begin);
  return head + "/" + tail;
}

std::string ParentDir(const std::string& path) {
  std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

std::string RandomId() {
  // From the kernel on every call: a user-space generator would repeat its sequence in
  // both the parent and a fork()ed child, and two processes would pick the same names.
  uint8_t bytes[16];
  size_t got = 0;
  while (got < sizeof(bytes)) {
    ssize_t n = ::getrandom(bytes + got, sizeof(bytes) - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    got += static_cast<size_t>(n);
  }
  if (got < sizeof(bytes)) {
    // No getrandom (very old kernels): pid, clock and a counter are still unique.
    static std::atomic<uint64_t> counter{0};
    uint64_t a = static_cast<uint64_t>(::getpid()) << 32 ^ counter.fetch_add(1);
    uint64_t b = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count());
    std::memcpy(bytes, &a, 8);
    std::memcpy(bytes + 8, &b, 8);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (size_t i = 0; i < sizeof(bytes); ++i) {
    id[2 * i] = kHex[bytes[i] >> 4];
    id[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return id;
}

}  // namespace riffledb::io
