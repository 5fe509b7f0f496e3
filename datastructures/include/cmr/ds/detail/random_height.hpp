// cmr/ds/detail/random_height.hpp: tower heights for skip lists: geometric with p = 1/2 in
// [1, MaxLevel], from a per-thread xorshift64* generator. Each thread's generator is seeded
// distinctly (a shared counter through splitmix64), so threads never build towers in step.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace cmr::ds::detail {

// Distinct seeds for the per-thread generators of every instantiation.
inline std::atomic<std::uint64_t> height_seed_counter{0};

inline std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// One more level per leading zero bit of a xorshift64* output (its high bits are the
// well-mixed ones).
template <std::size_t MaxLevel>
unsigned random_height() noexcept {
  static_assert(MaxLevel >= 1 && MaxLevel <= 64);
  // relaxed: only distinctness of the seeds matters, which the RMW gives.
  thread_local std::uint64_t state =
      splitmix64(height_seed_counter.fetch_add(1, std::memory_order_relaxed) ^
                 reinterpret_cast<std::uintptr_t>(&state)) |
      1;  // xorshift's state must not be zero
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  const std::uint64_t r = state * 0x2545f4914f6cdd1dULL;
  return 1 + static_cast<unsigned>(std::countl_zero(r | (std::uint64_t{1} << (64 - MaxLevel))));
}

}  // namespace cmr::ds::detail
