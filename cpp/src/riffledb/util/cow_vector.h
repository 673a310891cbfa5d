// A std::vector shared between copies until one of them changes it.
#pragma once

#include <atomic>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <utility>
#include <vector>

namespace riffledb {

/// A vector value whose copies share one buffer until a copy is changed (copy on
/// write). For lists that are copied far more often than changed: a table's manifest
/// holds one FragmentInfo per fragment, and every commit copies the manifest it builds
/// on. Copying is a reference count increment; `mutate()` copies the elements first if
/// another CowVector shares them.
///
/// Reads go through const members only, so that reading a non-const CowVector never
/// copies; changes are explicit (`push_back`, `clear`, `reserve`, `mutate()`). Like a
/// std::vector, one CowVector must not be changed while another thread uses it; copies
/// of it may be used and changed by any thread.
template <typename T>
class CowVector {
 public:
  using value_type = T;
  using const_iterator = typename std::vector<T>::const_iterator;

  CowVector() = default;
  CowVector(std::vector<T> values)  // NOLINT(google-explicit-constructor): a value type
      : values_(std::make_shared<std::vector<T>>(std::move(values))) {}
  CowVector(std::initializer_list<T> values)
      : values_(std::make_shared<std::vector<T>>(values)) {}

  /// The elements, as a std::vector (shared: valid until this CowVector changes).
  const std::vector<T>& vector() const { return values_ ? *values_ : Empty(); }

  size_t size() const { return values_ ? values_->size() : 0; }
  bool empty() const { return size() == 0; }
  const T& operator[](size_t i) const { return (*values_)[i]; }
  const T& at(size_t i) const { return vector().at(i); }
  const T& front() const { return values_->front(); }
  const T& back() const { return values_->back(); }
  const_iterator begin() const { return vector().begin(); }
  const_iterator end() const { return vector().end(); }

  /// The elements, for changing them: copied first if another CowVector shares them.
  std::vector<T>& mutate() {
    if (values_ == nullptr) {
      values_ = std::make_shared<std::vector<T>>();
    } else if (values_.use_count() > 1) {
      values_ = std::make_shared<std::vector<T>>(*values_);
    } else {
      // The last other owner may have just let go in another thread: see its reads
      // before writing (its release of the count pairs with this fence). ThreadSanitizer
      // does not model fences (-Wtsan); there the hand-over of a CowVector between
      // threads goes through a lock, which orders it anyway.
#if !defined(__SANITIZE_THREAD__)
      std::atomic_thread_fence(std::memory_order_acquire);
#endif
    }
    return *values_;
  }
  void push_back(T value) { mutate().push_back(std::move(value)); }
  void clear() { values_.reset(); }
  void reserve(size_t n) { mutate().reserve(n); }

  /// Whether both share one buffer (then they are equal without comparing elements).
  bool shares_with(const CowVector& other) const {
    return values_ != nullptr && values_ == other.values_;
  }

  friend bool operator==(const CowVector& a, const CowVector& b) {
    return a.shares_with(b) || a.vector() == b.vector();
  }

 private:
  static const std::vector<T>& Empty() {
    static const std::vector<T> empty;
    return empty;
  }

  std::shared_ptr<std::vector<T>> values_;
};

}  // namespace riffledb
