// cmr/detail/duration.hpp: turning a user's wait into the runtime's nanoseconds.
//
// Claims invariant 30 of docs/design.md.
//
// Every wait the API takes (Options' timeouts, try_make_for's max_wait) goes through
// saturating_ns, so that the maximum of any duration type means "forever" instead of
// overflowing into a negative deadline. Not part of the API.
#pragma once

#include <chrono>
#include <cstdint>
#include <ratio>
#include <type_traits>

namespace cmr::detail {

// A wait in nanoseconds for the runtime: zero or less (and NaN) is "do not wait", and a
// wait too long for 64-bit nanoseconds is INT64_MAX, which the runtime treats as forever.
template <class Rep, class Period>
constexpr std::int64_t saturating_ns(std::chrono::duration<Rep, Period> d) noexcept {
  using D = std::chrono::duration<Rep, Period>;
  if (!(d > D::zero())) return 0;
  if constexpr (std::is_floating_point_v<Rep>) {
    const long double ns = std::chrono::duration<long double, std::nano>(d).count();
    return ns >= 9.2e18L ? INT64_MAX : static_cast<std::int64_t>(ns);
  } else if constexpr (std::ratio_less_equal_v<Period, std::nano>) {
    // Finer than (or equal to) a nanosecond: the conversion divides and cannot overflow.
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  } else {
    if (d >= std::chrono::duration_cast<D>(std::chrono::nanoseconds::max())) return INT64_MAX;
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }
}

}  // namespace cmr::detail
