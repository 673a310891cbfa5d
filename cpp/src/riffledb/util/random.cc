#include "riffledb/util/random.h"

#include <arrow/util/logging.h>
#include <sys/random.h>

#include <cerrno>
#include <random>

namespace riffledb {

Rng Rng::FromState(const std::array<uint64_t, 4>& state) {
  Rng rng;
  rng.s_ = state;
  if (state == std::array<uint64_t, 4>{0, 0, 0, 0}) rng.s_[0] = 1;
  return rng;
}

uint64_t Rng::UniformBelowZero() {
  ARROW_DCHECK(false) << "Rng::UniformBelow(0): the bound must be at least 1";
  return 0;
}

uint64_t SeedFromEntropy() {
  uint64_t seed = 0;
  ssize_t got;
  do {
    got = ::getrandom(&seed, sizeof(seed), 0);
  } while (got < 0 && errno == EINTR);
  if (got == static_cast<ssize_t>(sizeof(seed))) return seed;
  // getrandom(2) missing (old kernel, seccomp): std::random_device reads /dev/urandom.
  std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) ^ device();
}

}  // namespace riffledb
