// The upgrade conversation, over wire.h's messages. A new zrelayd (the
// client) takes the listening sockets of the running one (the server):
//
//   client                         server
//   kRequest            ->
//                       <-         kSockets  (a batch: <= 250 entries + their fds)
//                       <-         ...       (as many batches as needed)
//                       <-         kSocketsEnd (total count, server pid)
//   (builds its listeners on them)
//   kReady (client pid) ->
//                                  closes its listening upgrade socket, then
//                       <-         kReadyAck
//                                  drains, as on SIGTERM
//   (binds the upgrade socket path itself)
//
// Instead of the sockets the server may answer kRefused (text: why, e.g.
// another upgrade is in progress). A client that goes away before kReady
// leaves the server serving as before.
//
// Payloads (integers big-endian):
//   kSockets:    count (u16, 1..250), then per entry: listener name length
//                (u8), name, address length (u8), address text; the
//                message carries exactly `count` fds, in entry order
//   kSocketsEnd: total sockets (u32), server pid (u32)
//   kReady:      client pid (u32)
//   kRequest, kReadyAck: empty.  kRefused: text, at most 1024 bytes
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "engine/clock.h"
#include "engine/result.h"
#include "engine/unique_fd.h"
#include "tools/upgrade/wire.h"

namespace zrelay::upgrade {

enum MessageType : uint8_t {
  kRequest = 1,
  kSockets = 2,
  kSocketsEnd = 3,
  kReady = 4,
  kReadyAck = 5,
  kRefused = 6,
};

// A listening socket handed from one process to the other.
struct HandedSocket {
  std::string listener;  // the listener's name in the old process (for logs)
  std::string address;   // as bound ("127.0.0.1:8080", "unix:/run/a.sock")
  UniqueFd fd;
};

struct Handover {
  pid_t from = 0;  // the old process
  std::vector<HandedSocket> sockets;
};

// Server side. SendSockets sends `sockets` in batches of at most
// kMaxFdsPerMessage, then kSocketsEnd. Names and addresses longer than 255
// bytes are cut to 255: they only label log lines.
Status SendSockets(int fd, const std::vector<HandedSocket>& sockets, TimePoint deadline);
Status SendRefused(int fd, const std::string& why, TimePoint deadline);
Status SendReadyAck(int fd, TimePoint deadline);
// The pid of a kReady message; an error for anything else.
Result<pid_t> ReadyPid(const Message& message);
// Ok for a well-formed kRequest; an error naming what is wrong otherwise.
Status CheckRequest(const Message& message);

// Client side.
Status SendRequest(int fd, TimePoint deadline);
// Receives the batches up to kSocketsEnd; kRefused is an error with its
// text and code EBUSY.
Result<Handover> ReceiveSockets(int fd, TimePoint deadline);
Status SendReady(int fd, pid_t pid, TimePoint deadline);
Status ReceiveReadyAck(int fd, TimePoint deadline);

}  // namespace zrelay::upgrade
