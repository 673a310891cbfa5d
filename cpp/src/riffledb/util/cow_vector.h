// A vector value whose copies share one buffer, and whose appends share it too.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

namespace riffledb {

/// A vector value whose copies share one buffer. For lists that are copied far more
/// often than changed and mostly changed by appending: a table's manifest holds one
/// FragmentInfo per fragment, and every commit copies the manifest it builds on and
/// appends to it.
///
/// - Copying is a reference count increment.
/// - `push_back` on a copy writes into the shared buffer when no other copy has
///   appended there yet: the copies that share it keep their own sizes, so none of
///   them sees the new element. Otherwise (another copy appended first, or the buffer
///   is full) it copies the elements to a new buffer of twice the size, so a chain
///   of commits, each appending to the copy of the one before, costs O(1) amortized
///   per append.
/// - No element of a buffer ever changes once a CowVector holds it: a change other
///   than an append replaces the whole list (`assign`). So two CowVectors on one buffer
///   agree on every element both hold, and `extends` is exact without comparing.
///
/// Like a std::vector, one CowVector must not be changed while another thread uses it;
/// copies of it may be used and changed by any thread. `T` must be default
/// constructible (a buffer's free slots hold default values).
template <typename T>
class CowVector {
 public:
  using value_type = T;
  using const_iterator = const T*;

  CowVector() = default;
  CowVector(std::vector<T> values) {  // NOLINT(google-explicit-constructor): a value type
    assign(std::move(values));
  }
  CowVector(std::initializer_list<T> values) { assign(std::vector<T>(values)); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const T& operator[](size_t i) const { return buffer_->slots[i]; }
  const T& at(size_t i) const {
    if (i >= size_) throw std::out_of_range("CowVector::at");
    return buffer_->slots[i];
  }
  const T& front() const { return buffer_->slots[0]; }
  const T& back() const { return buffer_->slots[size_ - 1]; }
  const_iterator begin() const { return buffer_ ? buffer_->slots.get() : nullptr; }
  const_iterator end() const { return begin() + size_; }
  /// The elements (valid while this CowVector is unchanged).
  std::span<const T> span() const { return {begin(), size_}; }
  std::vector<T> to_vector() const { return {begin(), end()}; }

  /// Appends `value`; see the class comment for when this copies.
  void push_back(T value) {
    if (buffer_ != nullptr && size_ < buffer_->capacity) {
      size_t expected = size_;
      if (buffer_->claimed.compare_exchange_strong(expected, size_ + 1,
                                                   std::memory_order_acq_rel)) {
        // Slot size_ is this CowVector's alone: no copy holds it (each holds a size at
        // most `expected`), and no other append can claim it.
        buffer_->slots[size_] = std::move(value);
        ++size_;
        return;
      }
    }
    auto grown = std::make_shared<Buffer>(std::max<size_t>(8, 2 * size_ + 1));
    std::copy(begin(), end(), grown->slots.get());
    grown->slots[size_] = std::move(value);
    grown->claimed.store(size_ + 1, std::memory_order_relaxed);
    buffer_ = std::move(grown);
    ++size_;
  }
  /// Replaces the elements (a new buffer: copies of this one keep theirs).
  void assign(std::vector<T> values) {
    if (values.empty()) {
      clear();
      return;
    }
    auto buffer = std::make_shared<Buffer>(values.size());
    std::move(values.begin(), values.end(), buffer->slots.get());
    buffer->claimed.store(values.size(), std::memory_order_relaxed);
    buffer_ = std::move(buffer);
    size_ = values.size();
  }
  /// Changes element `i` by `change(element)`: the list is copied to a new buffer
  /// first (O(size); copies keep theirs). For the rare changes other than appends.
  template <typename Change>
  void update(size_t i, Change&& change) {
    std::vector<T> values = to_vector();
    change(values.at(i));
    assign(std::move(values));
  }
  void clear() {
    buffer_.reset();
    size_ = 0;
  }
  /// Makes room for `n` elements, so that the appends up to there do not copy.
  void reserve(size_t n) {
    if (n <= size_ || (buffer_ != nullptr && n <= buffer_->capacity)) return;
    auto grown = std::make_shared<Buffer>(n);
    std::copy(begin(), end(), grown->slots.get());
    grown->claimed.store(size_, std::memory_order_relaxed);
    buffer_ = std::move(grown);
  }

  /// Whether both are one list on one buffer (then equal without comparing elements).
  bool shares_with(const CowVector& other) const {
    return buffer_ != nullptr && buffer_ == other.buffer_ && size_ == other.size_;
  }
  /// Whether this list begins with every element of `prefix` because both are on one
  /// buffer (no element is compared: false does not mean they differ).
  bool extends(const CowVector& prefix) const {
    return prefix.buffer_ == nullptr ||
           (buffer_ == prefix.buffer_ && size_ >= prefix.size_);
  }

  friend bool operator==(const CowVector& a, const CowVector& b) {
    return a.shares_with(b) || std::equal(a.begin(), a.end(), b.begin(), b.end());
  }

 private:
  struct Buffer {
    explicit Buffer(size_t n) : capacity(n), slots(new T[n]()) {}
    const size_t capacity;
    const std::unique_ptr<T[]> slots;
    // Slots [0, claimed) belong to some CowVector; an append claims the next one.
    std::atomic<size_t> claimed{0};
  };

  std::shared_ptr<Buffer> buffer_;
  size_t size_ = 0;
};

}  // namespace riffledb
