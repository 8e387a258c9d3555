#include "tools/upgrade/wire.h"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace zrelay::upgrade {
namespace {

constexpr char kMagic[4] = {'Z', 'R', 'U', 'P'};
constexpr size_t kFdSpace = CMSG_SPACE(kMaxFdsPerMessage * sizeof(int));

// Waits until `fd` has `events`, before `deadline`; `wake_fd` readable first
// is an error too.
Status WaitFor(int fd, short events, TimePoint deadline, int wake_fd) {
  for (;;) {
    pollfd fds[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
    int ready = ::poll(fds, wake_fd >= 0 ? 2 : 1, PollTimeoutMs(deadline));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) return Error::FromErrno(errno, "poll");
    if (wake_fd >= 0 && fds[1].revents != 0) return CodedError(ECANCELED, "cancelled");
    if (fds[0].revents != 0) return Status::Ok();
    if (Clock::now() >= deadline) return CodedError(ETIMEDOUT, "timed out");
  }
}

// Takes every descriptor of `msg`'s control data into `fds`, so none leaks
// whatever happens next.
Status TakeFds(msghdr& msg, std::vector<UniqueFd>& fds) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(received);
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    return Error::Invalid("descriptors cut short (more than " +
                          std::to_string(kMaxFdsPerMessage) + " in one message)");
  }
  if (fds.size() > kMaxFdsPerMessage) {
    return Error::Invalid("more than " + std::to_string(kMaxFdsPerMessage) +
                          " descriptors in one message");
  }
  return Status::Ok();
}

// Reads exactly `size` bytes into `data`, collecting descriptors on the way.
// `message_start`: the first byte of a message (an EOF there is a clean close).
Status ReadExact(int fd, char* data, size_t size, TimePoint deadline, int wake_fd,
                 std::vector<UniqueFd>& fds, bool message_start) {
  size_t done = 0;
  while (done < size) {
    alignas(cmsghdr) char control[kFdSpace];
    iovec iov{data + done, size - done};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (Status s = WaitFor(fd, POLLIN, deadline, wake_fd); !s.ok()) return s;
      continue;
    }
    if (n < 0) return Error::FromErrno(errno, "recvmsg");
    if (Status s = TakeFds(msg, fds); !s.ok()) return s;
    if (n == 0) {
      return CodedError(ECONNRESET, message_start && done == 0
                                        ? "peer closed before a message"
                                        : "peer closed in the middle of a message");
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

uint32_t LoadBigEndian32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}

}  // namespace

int PollTimeoutMs(TimePoint deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left + 1, 60'000));
}

Error CodedError(int code, std::string message) {
  return Error(std::error_code(code, std::generic_category()), std::move(message));
}

Status SendMessage(int fd, uint8_t type, std::string_view payload, const std::vector<int>& fds,
                   TimePoint deadline) {
  if (payload.size() > kMaxPayload) {
    return Error::Invalid("payload of " + std::to_string(payload.size()) + " bytes, at most " +
                          std::to_string(kMaxPayload));
  }
  if (fds.size() > kMaxFdsPerMessage) {
    return Error::Invalid(std::to_string(fds.size()) + " descriptors, at most " +
                          std::to_string(kMaxFdsPerMessage) + " per message");
  }
  std::string bytes(kHeaderSize, '\0');
  std::memcpy(bytes.data(), kMagic, sizeof(kMagic));
  bytes[4] = static_cast<char>(kWireVersion);
  bytes[5] = static_cast<char>(type);
  const auto size = static_cast<uint32_t>(payload.size());
  for (int i = 0; i < 4; ++i) bytes[8 + i] = static_cast<char>(size >> (24 - 8 * i));
  bytes += payload;

  alignas(cmsghdr) char control[kFdSpace];
  size_t sent = 0;
  while (sent < bytes.size()) {
    iovec iov{bytes.data() + sent, bytes.size() - sent};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    // The descriptors ride with the first byte; later pieces carry none.
    if (sent == 0 && !fds.empty()) {
      msg.msg_control = control;
      msg.msg_controllen = CMSG_SPACE(fds.size() * sizeof(int));
      std::memset(control, 0, msg.msg_controllen);
      cmsghdr* c = CMSG_FIRSTHDR(&msg);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(fds.size() * sizeof(int));
      std::memcpy(CMSG_DATA(c), fds.data(), fds.size() * sizeof(int));
    }
    ssize_t n = ::sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      if (Status s = WaitFor(fd, POLLOUT, deadline, -1); !s.ok()) return s;
      continue;
    }
    if (n < 0) return Error::FromErrno(errno, "sendmsg");
    sent += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<Message> ReceiveMessage(int fd, TimePoint deadline, int wake_fd) {
  Message message;
  char header[kHeaderSize];
  if (Status s = ReadExact(fd, header, kHeaderSize, deadline, wake_fd, message.fds,
                           /*message_start=*/true);
      !s.ok()) {
    return s.error();
  }
  if (std::memcmp(header, kMagic, sizeof(kMagic)) != 0) {
    return Error::Invalid("not an upgrade message (bad magic)");
  }
  if (static_cast<uint8_t>(header[4]) != kWireVersion) {
    return Error::Invalid("protocol version " + std::to_string(static_cast<uint8_t>(header[4])) +
                          ", expected " + std::to_string(kWireVersion));
  }
  if (header[6] != 0 || header[7] != 0) return Error::Invalid("reserved header bytes not zero");
  const uint32_t size = LoadBigEndian32(header + 8);
  if (size > kMaxPayload) {
    return Error::Invalid("payload of " + std::to_string(size) + " bytes announced, at most " +
                          std::to_string(kMaxPayload));
  }
  message.type = static_cast<uint8_t>(header[5]);
  message.payload.resize(size);
  if (Status s = ReadExact(fd, message.payload.data(), size, deadline, wake_fd, message.fds,
                           /*message_start=*/false);
      !s.ok()) {
    return s.error();
  }
  return message;
}

}  // namespace zrelay::upgrade
