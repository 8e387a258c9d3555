// The upgrade protocol's framing: one message is a fixed header, a bounded
// payload and, for the listening sockets, file descriptors passed with
// SCM_RIGHTS. Both ends are unix stream sockets of the same machine.
//
//   header (12 bytes):  "ZRUP"  version (1 byte)  type (1 byte)  0 (2 bytes)
//                       payload length (4 bytes, big-endian)
//   payload:            at most kMaxPayload bytes
//   descriptors:        at most kMaxFdsPerMessage, sent with the header's bytes
//
// Every send and receive has a deadline: a peer that stalls, or sends a
// header that promises more than it delivers, fails the call instead of
// holding the other end.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/clock.h"
#include "engine/result.h"
#include "engine/unique_fd.h"

namespace zrelay::upgrade {

inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kHeaderSize = 12;
// Far more than a batch of listening sockets needs (250 entries of a name and
// an address, each under 256 bytes), small enough that a garbage length
// cannot make the receiver allocate much.
inline constexpr size_t kMaxPayload = 128 << 10;
// SCM_MAX_FD, the kernel's limit per message, is 253; a round number below it.
inline constexpr size_t kMaxFdsPerMessage = 250;

// A message as received: it owns the descriptors that came with it.
struct Message {
  uint8_t type = 0;
  std::string payload;
  std::vector<UniqueFd> fds;
};

// poll(2)'s timeout until `deadline`: 0 once it has passed, never more
// than a minute (a loop polls again).
int PollTimeoutMs(TimePoint deadline);

// An error with errno-style `code` (so callers can tell a timeout or a
// closed peer from garbage) and `message` as it is, without strerror's text.
Error CodedError(int code, std::string message);

// Sends one message whole on `fd` (blocking or not) before `deadline`, with
// copies of `fds` (the caller keeps its own). Errors name what failed: a
// payload or fd count over the limits, a timeout, errno.
Status SendMessage(int fd, uint8_t type, std::string_view payload, const std::vector<int>& fds,
                   TimePoint deadline);

// Receives one message from `fd` before `deadline`. Fails on EOF (even
// before the first byte: "peer closed"), a bad magic, version or length,
// descriptors the kernel had to drop (MSG_CTRUNC), a timeout, or when
// `wake_fd` (if >= 0) becomes readable first ("cancelled"). Descriptors
// received with a message that fails are closed.
Result<Message> ReceiveMessage(int fd, TimePoint deadline, int wake_fd = -1);

}  // namespace zrelay::upgrade
