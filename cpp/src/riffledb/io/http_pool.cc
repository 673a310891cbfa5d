#include "riffledb/io/http_pool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <unordered_set>
#include <utility>
#include <vector>

#include "riffledb/util/fork_safe_mutex.h"
#include "riffledb/util/pid.h"

namespace riffledb::io {

namespace {

using Clock = std::chrono::steady_clock;

// The socket's device and inode.
std::pair<uint64_t, uint64_t> SocketIdentity(int fd) {
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0) return {0, 0};
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

}  // namespace

// One connection, with the inode of its socket, so that a forked child can close its
// copy of exactly that socket and nothing else.
struct HttpConnectionPool::Entry {
  std::unique_ptr<HttpConnection> http;
  uint64_t dev = 0;
  uint64_t ino = 0;
  Clock::time_point idle_since;
  BusyPoll::Stats counted;  // its busy-polls already added to the stats
};

HttpConnectionPool::Lease::Lease(Impl* owner, std::unique_ptr<Entry> entry, bool reused)
    : owner_(owner), entry_(std::move(entry)), reused_(reused) {}

HttpConnectionPool::Lease::Lease(Lease&& other) noexcept
    : owner_(other.owner_), entry_(std::move(other.entry_)), reused_(other.reused_) {}

HttpConnectionPool::Lease& HttpConnectionPool::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    GiveBack();
    owner_ = other.owner_;
    entry_ = std::move(other.entry_);
    reused_ = other.reused_;
  }
  return *this;
}

HttpConnectionPool::Lease::~Lease() { GiveBack(); }

HttpConnection& HttpConnectionPool::Lease::connection() const { return *entry_->http; }

struct HttpConnectionPool::Impl {
  explicit Impl(Options options) : options(options) {}

  const Options options;
  // A ForkSafeMutex: fork() waits for a critical section in flight, so a child always
  // finds these consistent. Critical sections do no I/O but the child's close() of
  // inherited sockets and the liveness peek of a pooled connection.
  mutable ForkSafeMutex mu;
  uint64_t generation = ForkGeneration();    // guarded by mu
  std::vector<std::unique_ptr<Entry>> idle;  // guarded by mu
  std::unordered_set<Entry*> live;           // guarded by mu
  HttpPoolStats stats;                       // guarded by mu

  // Closes this process's copy of `entry`'s socket if `entry` still names it.
  static bool CloseInherited(const Entry& entry) {
    const int fd = entry.http->fd();
    if (fd < 0) return false;
    struct stat st;
    if (::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
        static_cast<uint64_t>(st.st_dev) == entry.dev &&
        static_cast<uint64_t>(st.st_ino) == entry.ino) {
      ::close(fd);  // never shutdown(): that would cut the parent's connection
      return true;
    }
    return false;
  }

  // In a process that inherited the pool, forgets it: closes this process's copies of
  // the inherited sockets (after checking each fd is still that socket) without
  // shutdown, and never frees an inherited TLS session or sends its close_notify.
  // Requires mu.
  void AdoptLocked() {
    const uint64_t current = ForkGeneration();
    if (generation == current) return;
    HttpPoolStats fresh;
    // Every connection, idle or handed out to a thread of an ancestor (whose object
    // nothing here owns), once.
    for (Entry* entry : live) {
      if (CloseInherited(*entry)) ++fresh.abandoned_fds;
      ++fresh.abandoned_conns;
    }
    for (auto& entry : idle) entry->http->Abandon();  // now safe to destroy
    idle.clear();
    live.clear();
    generation = current;
    stats = fresh;
  }

  void GiveBack(std::unique_ptr<Entry> entry) {
    const bool keep = entry->http->reusable();
    {
      std::lock_guard<ForkSafeMutex> lock(mu);
      AdoptLocked();
      if (live.count(entry.get()) == 0) {
        // Not this process's (cannot happen: a thread stays in its process); never
        // close or free what may be an ancestor's.
        entry->http->Abandon();
        return;
      }
      const BusyPoll::Stats polled = entry->http->busy_poll_stats();
      stats.busy_polls += polled.spins - entry->counted.spins;
      stats.busy_poll_hits += polled.hits - entry->counted.hits;
      entry->counted = polled;
      if (keep && static_cast<int>(idle.size()) < options.max_idle) {
        entry->idle_since = Clock::now();
        idle.push_back(std::move(entry));
        return;
      }
      live.erase(entry.get());
    }
    entry.reset();  // this process's own: closed normally
  }
};

HttpConnectionPool::HttpConnectionPool(Options options)
    : impl_(std::make_unique<Impl>(options)) {}

HttpConnectionPool::~HttpConnectionPool() {
  // Destroyed in a process that inherited it, the pool must not close the parent's
  // connections: adopt first. The idle ones left are this process's, closed normally.
  std::vector<std::unique_ptr<Entry>> idle;
  {
    std::lock_guard<ForkSafeMutex> lock(impl_->mu);
    impl_->AdoptLocked();
    idle = std::move(impl_->idle);
    impl_->idle.clear();
    impl_->live.clear();
  }
}

arrow::Result<HttpConnectionPool::Lease> HttpConnectionPool::Acquire(const Opener& open,
                                                                     bool fresh) {
  Impl& impl = *impl_;
  std::vector<std::unique_ptr<Entry>> dropped;  // destroyed outside the lock
  {
    std::lock_guard<ForkSafeMutex> lock(impl.mu);
    impl.AdoptLocked();
    const auto now = Clock::now();
    const auto max_idle = std::chrono::duration<double>(impl.options.idle_timeout_s);
    while (!fresh && !impl.idle.empty()) {
      std::unique_ptr<Entry> candidate = std::move(impl.idle.back());
      impl.idle.pop_back();
      // The server may have closed it (its keep-alive timeout, a request limit).
      if (now - candidate->idle_since > max_idle || !candidate->http->StillOpen()) {
        impl.live.erase(candidate.get());
        dropped.push_back(std::move(candidate));
        continue;
      }
      ++impl.stats.requests;
      ++impl.stats.reused;
      return Lease(&impl, std::move(candidate), /*reused=*/true);
    }
    ++impl.stats.requests;
  }
  auto entry = std::make_unique<Entry>();
  ARROW_ASSIGN_OR_RAISE(entry->http, open());
  std::tie(entry->dev, entry->ino) = SocketIdentity(entry->http->fd());
  std::lock_guard<ForkSafeMutex> lock(impl.mu);
  impl.AdoptLocked();
  impl.live.insert(entry.get());
  ++impl.stats.connections;
  return Lease(&impl, std::move(entry), /*reused=*/false);
}

void HttpConnectionPool::Lease::GiveBack() {
  if (entry_ != nullptr) owner_->GiveBack(std::move(entry_));
}

HttpPoolStats HttpConnectionPool::stats() const {
  std::lock_guard<ForkSafeMutex> lock(impl_->mu);
  impl_->AdoptLocked();
  return impl_->stats;
}

}  // namespace riffledb::io
