#include "riffledb/io/mapped_file.h"

#include <arrow/io/memory.h>
#include <arrow/util/future.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "riffledb/util/fork_safe_mutex.h"

namespace riffledb::io {

namespace {

// Registered maps, read by the signal handler without locks: a slot is published by
// storing `end` last (release) and retired by zeroing `end` first.
struct Slot {
  std::atomic<uintptr_t> start{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<bool> faulted{false};
  std::atomic<bool> writable{false};  // set before `end` is published
};

constexpr size_t kMaxSlots = 1 << 16;
std::array<Slot, kMaxSlots> g_slots;
std::atomic<size_t> g_high_water{0};  // slots [0, g_high_water) may be in use
std::atomic<uint64_t> g_faults{0};
uintptr_t g_page_size = 4096;

// Slot allocation and installation, never in the handler. A leaf lock fork() takes: a
// thread mapping or unmapping a file at the moment another forks must not leave it held
// in the child (which maps files too), and a map's last buffer can be released inside a
// ForkSafeMutex section (a table's snapshot replaced).
ForkSafeLeafMutex g_mu;
std::vector<size_t> g_free;   // guarded by g_mu
struct sigaction g_previous;  // guarded by g_mu; read by the handler
bool g_installed = false;     // guarded by g_mu

void ChainToPrevious(int sig, siginfo_t* info, void* context) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction != nullptr) {
      g_previous.sa_sigaction(sig, info, context);
      return;
    }
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // The default action: restore it, and the faulting instruction faults again on return.
  struct sigaction dfl = {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  sigaction(sig, &dfl, nullptr);
}

void OnSigbus(int sig, siginfo_t* info, void* context) {
  if (info != nullptr && info->si_code == BUS_ADRERR) {
    const auto addr = reinterpret_cast<uintptr_t>(info->si_addr);
    const size_t n = g_high_water.load(std::memory_order_acquire);
    for (size_t i = 0; i < n; ++i) {
      const uintptr_t end = g_slots[i].end.load(std::memory_order_acquire);
      const uintptr_t start = g_slots[i].start.load(std::memory_order_relaxed);
      if (addr < start || addr >= end) continue;
      // A zero page over the missing one: the read (or write) completes; the map is
      // marked.
      void* page = reinterpret_cast<void*>(addr & ~(g_page_size - 1));
      const int prot = g_slots[i].writable.load(std::memory_order_relaxed)
                           ? PROT_READ | PROT_WRITE
                           : PROT_READ;
      if (mmap(page, g_page_size, prot, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) !=
          MAP_FAILED) {
        g_slots[i].faulted.store(true, std::memory_order_release);
        g_faults.fetch_add(1, std::memory_order_acq_rel);
        return;
      }
      break;
    }
  }
  ChainToPrevious(sig, info, context);
}

// Puts OnSigbus on top unless it is there already. Caller holds g_mu.
void InstallLocked() {
  struct sigaction current = {};
  sigaction(SIGBUS, nullptr, &current);
  if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == OnSigbus) return;
  struct sigaction ours = {};
  ours.sa_sigaction = OnSigbus;
  ours.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&ours.sa_mask);
  if (!g_installed) g_page_size = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  // The handler may run between these two calls with the old g_previous: harmless,
  // it only chains to it.
  g_previous = current;
  sigaction(SIGBUS, &ours, nullptr);
  g_installed = true;
}

// One registered map: its slot is retired when the last user of the mapped memory is
// gone (the file object and every buffer read from it), not before, since arrays that
// outlive the file object still read the map.
class Registration {
 public:
  explicit Registration(size_t slot) : slot_(slot) {}
  ~Registration() {
    if (slot_ == kNoSlot) return;
    std::lock_guard<ForkSafeLeafMutex> lock(g_mu);
    g_slots[slot_].end.store(0, std::memory_order_release);
    g_slots[slot_].start.store(0, std::memory_order_relaxed);
    g_slots[slot_].faulted.store(false, std::memory_order_relaxed);
    g_slots[slot_].writable.store(false, std::memory_order_relaxed);
    g_free.push_back(slot_);
  }
  Registration(const Registration&) = delete;
  Registration& operator=(const Registration&) = delete;

  static constexpr size_t kNoSlot = ~size_t{0};
  bool faulted() const {
    return slot_ != kNoSlot && g_slots[slot_].faulted.load(std::memory_order_acquire);
  }

 private:
  const size_t slot_;
};

// A zero-copy slice of the map (its parent) that keeps the registration alive as long as
// the slice, and so the mapped memory, is in use.
class GuardedBuffer : public arrow::Buffer {
 public:
  GuardedBuffer(std::shared_ptr<arrow::Buffer> slice,
                std::shared_ptr<const Registration> registration)
      : arrow::Buffer(slice, 0, slice->size()), registration_(std::move(registration)) {}

 private:
  std::shared_ptr<const Registration> registration_;
};

// A map of a whole file, unmapped when the last buffer sliced from it is gone.
// The file's descriptor is closed as soon as it is mapped: a process may map far more
// files than it may hold open (a table of 1,100 one-row appends could not be read under
// the usual `ulimit -n` of 1024 while each map kept its descriptor, as
// arrow::io::MemoryMappedFile does).
class MappedRegion final : public arrow::Buffer {
 public:
  MappedRegion(const uint8_t* data, int64_t size) : arrow::Buffer(data, size) {}
  ~MappedRegion() override {
    ::munmap(const_cast<uint8_t*>(data_), static_cast<size_t>(size_));
  }
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;
};

arrow::Status MapError(int err, const char* what, const std::string& path) {
  return arrow::Status::IOError(what, " '", path, "': ", std::strerror(err));
}

// The bytes of the file open as `fd` (`path` names it in messages), mapped: an empty
// buffer for an empty file. `fd` stays open.
arrow::Result<std::shared_ptr<arrow::Buffer>> MapDescriptor(const std::string& path,
                                                            int fd, MapMode mode) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return MapError(errno, "Cannot stat", path);
  if (S_ISDIR(st.st_mode)) return MapError(EISDIR, "Cannot map", path);
  if (st.st_size == 0) return std::make_shared<arrow::Buffer>(std::string_view());
  const int prot = mode == MapMode::kReadWrite ? PROT_READ | PROT_WRITE : PROT_READ;
  void* data = ::mmap(nullptr, static_cast<size_t>(st.st_size), prot, MAP_SHARED, fd, 0);
  if (data == MAP_FAILED) return MapError(errno, "Cannot map", path);
  return std::make_shared<MappedRegion>(static_cast<const uint8_t*>(data),
                                        static_cast<int64_t>(st.st_size));
}

// The bytes of the file at `path`, mapped read-only; its descriptor is closed (the map
// keeps the file).
arrow::Result<std::shared_ptr<arrow::Buffer>> MapWholeFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return MapError(errno, "Cannot open", path);
  auto mapped = MapDescriptor(path, fd, MapMode::kRead);
  ::close(fd);
  return mapped;
}

// A memory-mapped file whose region stays registered while any of its memory is in use.
class GuardedMap : public arrow::io::RandomAccessFile {
 public:
  GuardedMap(std::string path, std::shared_ptr<arrow::io::BufferReader> file,
             std::shared_ptr<const Registration> registration)
      : path_(std::move(path)),
        file_(std::move(file)),
        registration_(std::move(registration)) {}

  const std::string& path() const { return path_; }
  bool faulted() const { return registration_->faulted(); }

  arrow::Status Close() override { return file_->Close(); }
  bool closed() const override { return file_->closed(); }
  arrow::Result<int64_t> Tell() const override { return file_->Tell(); }
  arrow::Status Seek(int64_t position) override { return file_->Seek(position); }
  arrow::Result<int64_t> GetSize() override { return file_->GetSize(); }
  bool supports_zero_copy() const override { return true; }
  arrow::Result<int64_t> Read(int64_t nbytes, void* out) override {
    return file_->Read(nbytes, out);
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> Read(int64_t nbytes) override {
    ARROW_ASSIGN_OR_RAISE(auto slice, file_->Read(nbytes));
    return Guard(std::move(slice));
  }
  arrow::Result<int64_t> ReadAt(int64_t position, int64_t nbytes, void* out) override {
    return file_->ReadAt(position, nbytes, out);
  }
  arrow::Result<std::shared_ptr<arrow::Buffer>> ReadAt(int64_t position,
                                                       int64_t nbytes) override {
    ARROW_ASSIGN_OR_RAISE(auto slice, file_->ReadAt(position, nbytes));
    return Guard(std::move(slice));
  }
  // A read of a map is a memcpy-free slice: done here, as MemoryMappedFile does. The
  // default would hand each read to Arrow's I/O thread pool and wait for it (the IPC
  // file reader reads its footer this way): two thread switches per read, ~100 us a
  // fragment opened.
  arrow::Future<std::shared_ptr<arrow::Buffer>> ReadAsync(const arrow::io::IOContext&,
                                                          int64_t position,
                                                          int64_t nbytes) override {
    return arrow::Future<std::shared_ptr<arrow::Buffer>>::MakeFinished(
        ReadAt(position, nbytes));
  }
  arrow::Future<std::shared_ptr<arrow::Buffer>> ReadAsync(
      const arrow::io::IOContext&, int64_t position, int64_t nbytes,
      bool allow_short_read) override {
    auto read = ReadAt(position, nbytes);
    if (read.ok() && !allow_short_read && (*read)->size() < nbytes) {
      read = arrow::Status::IOError("Short read of '", path_, "': ", nbytes,
                                    " bytes wanted at offset ", position, ", ",
                                    (*read)->size(), " read");
    }
    return arrow::Future<std::shared_ptr<arrow::Buffer>>::MakeFinished(std::move(read));
  }

 private:
  std::shared_ptr<arrow::Buffer> Guard(std::shared_ptr<arrow::Buffer> slice) const {
    return std::make_shared<GuardedBuffer>(std::move(slice), registration_);
  }

  const std::string path_;
  const std::shared_ptr<arrow::io::BufferReader> file_;
  const std::shared_ptr<const Registration> registration_;
};

// `whole`, the map of `path`, registered with the guard.
std::shared_ptr<arrow::io::RandomAccessFile> Guarded(const std::string& path,
                                                     std::shared_ptr<arrow::Buffer> whole,
                                                     MapMode mode) {
  const int64_t size = whole->size();
  const auto start = reinterpret_cast<uintptr_t>(whole->data());
  auto file = std::make_shared<arrow::io::BufferReader>(std::move(whole));
  size_t slot = Registration::kNoSlot;
  if (size > 0) {
    std::lock_guard<ForkSafeLeafMutex> lock(g_mu);
    InstallLocked();
    if (!g_free.empty()) {
      slot = g_free.back();
      g_free.pop_back();
    } else if (g_high_water.load(std::memory_order_relaxed) < kMaxSlots) {
      slot = g_high_water.load(std::memory_order_relaxed);
    }
    // With every slot taken the map works unguarded (as any map did before).
    if (slot != Registration::kNoSlot) {
      g_slots[slot].faulted.store(false, std::memory_order_relaxed);
      g_slots[slot].writable.store(mode == MapMode::kReadWrite,
                                   std::memory_order_relaxed);
      g_slots[slot].start.store(start, std::memory_order_relaxed);
      g_slots[slot].end.store(start + static_cast<uintptr_t>(size),
                              std::memory_order_release);
      if (slot == g_high_water.load(std::memory_order_relaxed)) {
        g_high_water.store(slot + 1, std::memory_order_release);
      }
    }
  }
  return std::make_shared<GuardedMap>(path, std::move(file),
                                      std::make_shared<const Registration>(slot));
}

}  // namespace

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenGuardedMap(
    const std::string& path) {
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> whole, MapWholeFile(path));
  return Guarded(path, std::move(whole), MapMode::kRead);
}

arrow::Result<std::shared_ptr<arrow::io::RandomAccessFile>> OpenGuardedMap(
    const std::string& path, int fd, MapMode mode) {
  ARROW_ASSIGN_OR_RAISE(std::shared_ptr<arrow::Buffer> whole,
                        MapDescriptor(path, fd, mode));
  return Guarded(path, std::move(whole), mode);
}

uint64_t FaultedMappings() { return g_faults.load(std::memory_order_acquire); }

arrow::Status CheckMapping(const arrow::io::RandomAccessFile& file) {
  const auto* map = dynamic_cast<const GuardedMap*>(&file);
  if (map == nullptr || !map->faulted()) return arrow::Status::OK();
  return arrow::Status::IOError(
      "File '", map->path(),
      "' shrank while mapped (truncated or overwritten in place): its rows can no "
      "longer be read. Reopen the table");
}

namespace internal {
void HoldGuardLockForTesting(std::chrono::milliseconds hold, std::atomic<bool>* held) {
  std::lock_guard<ForkSafeLeafMutex> lock(g_mu);
  held->store(true);
  std::this_thread::sleep_for(hold);
}
}  // namespace internal

}  // namespace riffledb::io
