// The deterministic, portable PRNG behind seeded shuffles and random splits
// (DESIGN.md decision 8).
//
// The exact algorithms below are a stable contract: the same seed gives the same numbers
// and the same shuffles on every platform, compiler, standard library and thread count.
// Changing any of them changes users' permutations; golden tests in random_test.cc pin
// the outputs.
//
//   SplitMix64 (Steele, Lea, Flood 2014; Vigna's splitmix64.c), 64-bit state x:
//     x += 0x9e3779b97f4a7c15; z = x;
//     z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
//     z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
//     return z ^ (z >> 31);
//
//   Rng is xoshiro256** 1.0 (Blackman and Vigna 2018), state s[0..3]:
//     result = rotl(s[1] * 5, 7) * 9;
//     t = s[1] << 17;
//     s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
//     s[2] ^= t; s[3] = rotl(s[3], 45);
//     return result;
//   Seeding Rng(seed): a SplitMix64 with state `seed` fills s[0], s[1], s[2], s[3] in
//   that order with its first four outputs (the seeding recommended by the authors; the
//   same as Rust rand_xoshiro's Xoshiro256StarStar::seed_from_u64).
//
//   UniformBelow(bound), bound >= 1 (Lemire 2019, "Fast random integer generation in an
//   interval", with rejection, so exactly uniform):
//     m = Next() * bound as a 128-bit product; low = low 64 bits of m;
//     if low < bound:
//       threshold = (2^64 - bound) mod bound;
//       while low < threshold: m = Next() * bound; low = low 64 bits of m;
//     return high 64 bits of m;
//
//   Shuffle(values, rng), n = values.size() (Fisher-Yates / Durstenfeld, from the back):
//     for i = n - 1 down to 1: j = rng.UniformBelow(i + 1); swap(values[i], values[j]);
//   It draws exactly n - 1 bounded numbers (plus rejections) and never uses std::shuffle
//   or std::uniform_int_distribution, whose algorithms differ between standard libraries.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <utility>

namespace riffledb {

namespace internal {
/// The high 64 bits of a * b, the low 64 bits in *low, without a 128-bit type.
inline uint64_t MulWidePortable(uint64_t a, uint64_t b, uint64_t* low) {
  const uint64_t a_lo = a & 0xffffffffULL, a_hi = a >> 32;
  const uint64_t b_lo = b & 0xffffffffULL, b_hi = b >> 32;
  const uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi;
  const uint64_t cross = (lo_lo >> 32) + (hi_lo & 0xffffffffULL) + lo_hi;  // < 2^64
  *low = (cross << 32) | (lo_lo & 0xffffffffULL);
  return a_hi * b_hi + (hi_lo >> 32) + (cross >> 32);
}
}  // namespace internal

/// SplitMix64: expands one 64-bit seed into a stream of well-mixed 64-bit values. Used to
/// seed Rng; cheap enough to derive sub-seeds. Not thread-safe (a value type).
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t state) : state_(state) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

 private:
  uint64_t state_;
};

/// xoshiro256**: the generator for every seeded operation in riffledb. 256 bits of state,
/// period 2^256 - 1. Not cryptographic. Not thread-safe (a value type: copy it to fork
/// the stream, give each thread its own).
class Rng {
 public:
  /// The state is the first four outputs of SplitMix64(seed) (see the file comment).
  /// Inline so that a generator seeded in a hot loop can live in registers: constructed
  /// out of line, its address escapes, and every store through a uint64_t pointer in
  /// the loop could then alias its state, which the compiler would reload and store at
  /// every draw.
  explicit Rng(uint64_t seed) {
    SplitMix64 expand(seed);
    for (uint64_t& word : s_) word = expand.Next();
  }

  /// An Rng with exactly this state (for reference tests). The all-zero state is a fixed
  /// point of the generator; it is replaced by {1, 0, 0, 0}.
  static Rng FromState(const std::array<uint64_t, 4>& state);

  /// The next 64 uniformly distributed bits.
  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  /// A uniformly distributed integer in [0, bound), exactly unbiased (Lemire's method
  /// with rejection). `bound` must be >= 1; 0 is a programming error (ARROW_DCHECK;
  /// returns 0 in release builds without drawing).
  uint64_t UniformBelow(uint64_t bound) {
    if (bound == 0) return UniformBelowZero();
    uint64_t low;
    uint64_t high = MulWide(Next(), bound, &low);
    if (low < bound) {
      const uint64_t threshold = (0 - bound) % bound;  // (2^64 - bound) mod bound
      while (low < threshold) high = MulWide(Next(), bound, &low);
    }
    return high;
  }

  const std::array<uint64_t, 4>& state() const { return s_; }

 private:
  Rng() = default;
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  // Returns the high 64 bits of a * b and stores the low 64 bits in *low.
  static uint64_t MulWide(uint64_t a, uint64_t b, uint64_t* low) {
#if defined(__SIZEOF_INT128__)
    const unsigned __int128 m = static_cast<unsigned __int128>(a) * b;
    *low = static_cast<uint64_t>(m);
    return static_cast<uint64_t>(m >> 64);
#else
    return internal::MulWidePortable(a, b, low);
#endif
  }
  static uint64_t UniformBelowZero();

  std::array<uint64_t, 4> s_;
};

/// A seed from the operating system's entropy source (getrandom(2), else
/// std::random_device), for operations the user did not seed. Thread-safe.
uint64_t SeedFromEntropy();

/// Shuffles `values` in place with Fisher-Yates from the back (see the file comment): the
/// result depends only on the input order and the Rng's state, on every platform.
template <typename T>
void Shuffle(std::span<T> values, Rng& rng) {
  using std::swap;
  // A local copy of the generator, written back at the end: `rng` may alias `values`
  // as far as the compiler knows, so it would otherwise be reloaded and stored at every
  // step.
  Rng local = rng;
  for (size_t i = values.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(local.UniformBelow(static_cast<uint64_t>(i)));
    swap(values[i - 1], values[j]);
  }
  rng = local;
}

}  // namespace riffledb
