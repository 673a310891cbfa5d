// GoogleTest helpers for arrow::Status / arrow::Result, shared by every component's
// tests.
#pragma once

#include <arrow/result.h>
#include <arrow/status.h>
#include <gtest/gtest.h>

#define RIFFLEDB_CONCAT_INNER(a, b) a##b
#define RIFFLEDB_CONCAT(a, b) RIFFLEDB_CONCAT_INNER(a, b)

#define ASSERT_OK(expr)                                              \
  do {                                                               \
    ::arrow::Status _st = ::arrow::ToStatus(expr);                   \
    ASSERT_TRUE(_st.ok()) << #expr << " failed: " << _st.ToString(); \
  } while (false)

#define EXPECT_OK(expr)                                              \
  do {                                                               \
    ::arrow::Status _st = ::arrow::ToStatus(expr);                   \
    EXPECT_TRUE(_st.ok()) << #expr << " failed: " << _st.ToString(); \
  } while (false)

#define ASSERT_OK_AND_ASSIGN_IMPL(tmp, lhs, rexpr)                           \
  auto tmp = (rexpr);                                                        \
  ASSERT_TRUE(tmp.ok()) << #rexpr << " failed: " << tmp.status().ToString(); \
  lhs = std::move(tmp).ValueUnsafe();

#define ASSERT_OK_AND_ASSIGN(lhs, rexpr) \
  ASSERT_OK_AND_ASSIGN_IMPL(RIFFLEDB_CONCAT(_result_, __COUNTER__), lhs, rexpr)

// Asserts that `expr` fails with status code `code` (e.g. Invalid, IndexError).
#define ASSERT_RAISES(code, expr)                                   \
  do {                                                              \
    ::arrow::Status _st = ::arrow::ToStatus(expr);                  \
    ASSERT_TRUE(_st.Is##code())                                     \
        << #expr << ": expected " #code ", got " << _st.ToString(); \
  } while (false)

// Like ASSERT_RAISES, and the message contains `substr`.
#define ASSERT_RAISES_WITH_MESSAGE(code, substr, expr)                   \
  do {                                                                   \
    ::arrow::Status _st = ::arrow::ToStatus(expr);                       \
    ASSERT_TRUE(_st.Is##code())                                          \
        << #expr << ": expected " #code ", got " << _st.ToString();      \
    ASSERT_NE(_st.message().find(substr), std::string::npos)             \
        << "message '" << _st.message() << "' lacks '" << substr << "'"; \
  } while (false)

namespace riffledb {

// GCC 12 has no __has_feature (clang's way to ask for a sanitizer).
#if defined(__has_feature)
#define RIFFLEDB_HAS_FEATURE(x) __has_feature(x)
#else
#define RIFFLEDB_HAS_FEATURE(x) 0
#endif

/// Whether this build's allocator deadlocks a forked child when another thread of the
/// parent was inside it at the fork: GCC 12's AddressSanitizer runtime has no atfork
/// handlers for its allocator (added upstream in LLVM 18, llvm/llvm-project#75290; see
/// llvm/llvm-project#63224). Tests fork only while no other thread can allocate then.
#if defined(__SANITIZE_ADDRESS__) || RIFFLEDB_HAS_FEATURE(address_sanitizer)
inline constexpr bool kAllocatorIsForkUnsafe = true;
#else
inline constexpr bool kAllocatorIsForkUnsafe = false;
#endif

/// Whether this is a ThreadSanitizer build. GCC 12's TSan runtime can hang a child
/// forked while another thread of the parent holds one of its internal locks (its
/// malloc and thread interceptors): ForkSafety.ForkWhileThePoolIsBusy forks only while
/// every busy thread is parked, as under ASan. (Gating every fork as under ASan would
/// not do: TSan then reports "dup thread with used id" when a child's new thread reuses
/// the stack of one of the parent's, in ForkSafety.PoolsCreatedBeforeAndAfterFork.)
#if defined(__SANITIZE_THREAD__) || RIFFLEDB_HAS_FEATURE(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif

}  // namespace riffledb
