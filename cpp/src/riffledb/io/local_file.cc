#include "riffledb/io/local_file.h"

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

namespace riffledb::io {

namespace {

arrow::Status ErrnoError(int err, const char* what, const std::string& path) {
  return arrow::Status::IOError(what, " '", path, "': ", std::strerror(err));
}

std::string ParentDir(const std::string& path) {
  std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

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
  // Closes now, reporting the error (close can report deferred write errors on some
  // filesystems).
  arrow::Status Close(const std::string& path) {
    int fd = fd_;
    fd_ = -1;
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

// Writes `data` to a new temporary file beside `path` and fsyncs it. The name starts with
// '.' and ends with ".tmp", so directory listings that look for committed names skip it.
arrow::Result<std::string> WriteTempFile(const std::string& path,
                                         std::span<const uint8_t> data) {
  std::filesystem::path p(path);
  std::string tmp =
      (p.parent_path() / ("." + p.filename().string() + "." + RandomId() + ".tmp"))
          .string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, "Cannot create", tmp);
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

}  // namespace

arrow::Status CreateFileExclusive(const std::string& path,
                                  std::span<const uint8_t> data) {
  ARROW_ASSIGN_OR_RAISE(std::string tmp, WriteTempFile(path, data));
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
  return SyncDir(ParentDir(path));
}

arrow::Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> data) {
  ARROW_ASSIGN_OR_RAISE(std::string tmp, WriteTempFile(path, data));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoError(err, "Cannot replace", path);
  }
  return SyncDir(ParentDir(path));
}

arrow::Result<std::shared_ptr<arrow::Buffer>> ReadFile(const std::string& path) {
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

arrow::Result<std::shared_ptr<arrow::io::MemoryMappedFile>> MapFile(
    const std::string& path) {
  // Check first so that the common failures get our uniform message.
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return ErrnoError(errno, "Cannot open", path);
  if (S_ISDIR(st.st_mode)) return ErrnoError(EISDIR, "Cannot map", path);
  auto result = arrow::io::MemoryMappedFile::Open(path, arrow::io::FileMode::READ);
  if (!result.ok()) {
    return arrow::Status::IOError("Cannot map '", path, "': ", result.status().message());
  }
  return result;
}

arrow::Result<std::vector<std::string>> ListDir(const std::string& path) {
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    if (errno == ENOENT) return names;
    return ErrnoError(errno, "Cannot list", path);
  }
  while (true) {
    errno = 0;
    struct dirent* entry = ::readdir(dir);
    if (entry == nullptr) break;
    std::string_view name(entry->d_name);
    if (name == "." || name == "..") continue;
    names.emplace_back(name);
  }
  int err = errno;
  ::closedir(dir);
  if (err != 0) return ErrnoError(err, "Cannot list", path);
  std::sort(names.begin(), names.end());
  return names;
}

arrow::Result<bool> Exists(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return true;
  if (errno == ENOENT || errno == ENOTDIR) return false;
  return ErrnoError(errno, "Cannot stat", path);
}

arrow::Result<bool> IsDirectory(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) return S_ISDIR(st.st_mode);
  if (errno == ENOENT || errno == ENOTDIR) return false;
  return ErrnoError(errno, "Cannot stat", path);
}

arrow::Status CreateDirs(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec)
    return arrow::Status::IOError("Cannot create directory '", path, "': ", ec.message());
  // create_directories succeeds if `path` exists as a file on some standard libraries.
  ARROW_ASSIGN_OR_RAISE(bool is_dir, IsDirectory(path));
  if (!is_dir) return ErrnoError(ENOTDIR, "Cannot create directory", path);
  return arrow::Status::OK();
}

arrow::Status RemoveAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) return arrow::Status::IOError("Cannot remove '", path, "': ", ec.message());
  return arrow::Status::OK();
}

arrow::Status SyncDir(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "Cannot open directory", path);
  FdGuard guard(fd);
  // EINVAL: the filesystem does not support syncing directories (nothing more to do).
  if (::fsync(fd) != 0 && errno != EINVAL) return ErrnoError(errno, "Cannot fsync", path);
  return guard.Close(path);
}

std::string JoinPath(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  size_t a_end = a.find_last_not_of('/');
  size_t b_begin = b.find_first_not_of('/');
  std::string head = a_end == std::string::npos ? "" : a.substr(0, a_end + 1);
  std::string tail = b_begin == std::string::npos ? "" : b.substr(b_begin);
  return head + "/" + tail;
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
