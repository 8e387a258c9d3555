// ZR_CHECK: an invariant that stays checked in every build.
//
// assert() disappears under -DNDEBUG, which `-c opt` (the build that ships
// and the first CI run) defines. An invariant whose violation would corrupt
// state or spin (a ring consumed past its end, a broken epoll fd, a timer
// armed on two wheels) must not be silently skipped there, so it is a
// ZR_CHECK: on failure it prints file:line, the condition and an optional
// printf-style message to stderr, then aborts.
//
//   ZR_CHECK(bytes <= size_);
//   ZR_CHECK(err == EINTR, "epoll_wait on fd %d: %s", fd, std::strerror(err));
//
// The message arguments are evaluated only when the check fails. Errors that
// can really happen (a peer's reset, EMFILE, bad input) are handled and
// reported, never checked: ZR_CHECK is for zrelay's own bugs.
#pragma once

namespace zrelay::check_internal {

[[noreturn, gnu::cold]] void Fail(const char* file, int line, const char* condition);
[[noreturn, gnu::cold, gnu::format(printf, 4, 5)]] void Fail(const char* file, int line,
                                                             const char* condition,
                                                             const char* format, ...);

}  // namespace zrelay::check_internal

#define ZR_CHECK(condition, ...)                            \
  (__builtin_expect(static_cast<bool>(condition), true)     \
       ? static_cast<void>(0)                               \
       : ::zrelay::check_internal::Fail(__FILE__, __LINE__, \
                                        #condition __VA_OPT__(, ) __VA_ARGS__))
