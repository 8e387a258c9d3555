#include "tools/upgrade/protocol.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string_view>

namespace zrelay::upgrade {
namespace {

constexpr size_t kMaxRefusal = 1024;
constexpr size_t kMaxLabel = 255;

void PutInteger(std::string& out, uint64_t value, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(value >> (8 * i)));
}

void PutLabel(std::string& out, const std::string& text) {
  const size_t size = std::min(text.size(), kMaxLabel);
  out.push_back(static_cast<char>(size));
  out.append(text, 0, size);
}

// Reads a payload front to back; every read checks what is left, so a
// short or lying payload is an error, never a read past its end.
class PayloadReader {
 public:
  explicit PayloadReader(std::string_view payload) : rest_(payload) {}

  bool Integer(int bytes, uint64_t* value) {
    if (rest_.size() < static_cast<size_t>(bytes)) return false;
    *value = 0;
    for (int i = 0; i < bytes; ++i) *value = (*value << 8) | static_cast<unsigned char>(rest_[i]);
    rest_.remove_prefix(bytes);
    return true;
  }
  bool Label(std::string* text) {
    uint64_t size;
    if (!Integer(1, &size) || rest_.size() < size) return false;
    text->assign(rest_.substr(0, size));
    rest_.remove_prefix(size);
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

const char* TypeName(uint8_t type) {
  switch (type) {
    case kRequest:
      return "request";
    case kSockets:
      return "sockets";
    case kSocketsEnd:
      return "sockets-end";
    case kReady:
      return "ready";
    case kReadyAck:
      return "ready-ack";
    case kRefused:
      return "refused";
  }
  return "unknown";
}

Error Unexpected(const Message& message, const char* expected) {
  return Error::Invalid(std::string("expected a ") + expected + " message, got type " +
                        std::to_string(message.type) + " (" + TypeName(message.type) + ")");
}

// Ok when `message` is `type` with an empty payload and no descriptors.
Status CheckEmpty(const Message& message, MessageType type) {
  if (message.type != type) return Unexpected(message, TypeName(type));
  if (!message.payload.empty() || !message.fds.empty()) {
    return Error::Invalid(std::string("a ") + TypeName(type) + " message carries nothing");
  }
  return Status::Ok();
}

// Appends the entries of one kSockets message to `handover`.
Status TakeBatch(Message& message, Handover& handover) {
  PayloadReader reader(message.payload);
  uint64_t count;
  if (!reader.Integer(2, &count) || count == 0 || count > kMaxFdsPerMessage) {
    return Error::Invalid("sockets message: bad count");
  }
  if (message.fds.size() != count) {
    return Error::Invalid("sockets message: " + std::to_string(count) + " entries but " +
                          std::to_string(message.fds.size()) + " descriptors");
  }
  for (size_t i = 0; i < count; ++i) {
    HandedSocket socket;
    if (!reader.Label(&socket.listener) || !reader.Label(&socket.address)) {
      return Error::Invalid("sockets message: entry " + std::to_string(i) + " cut short");
    }
    socket.fd = std::move(message.fds[i]);
    handover.sockets.push_back(std::move(socket));
  }
  if (!reader.done()) return Error::Invalid("sockets message: bytes after the last entry");
  return Status::Ok();
}

// The pid of a kSocketsEnd, after checking its total against what came.
Result<pid_t> EndOfSockets(const Message& message, size_t received) {
  PayloadReader reader(message.payload);
  uint64_t total, pid;
  if (!reader.Integer(4, &total) || !reader.Integer(4, &pid) || !reader.done() ||
      !message.fds.empty()) {
    return Error::Invalid("sockets-end message: malformed");
  }
  if (total != received) {
    return Error::Invalid("sockets-end message: " + std::to_string(total) + " sockets announced, " +
                          std::to_string(received) + " received");
  }
  return static_cast<pid_t>(pid);
}

}  // namespace

Status SendSockets(int fd, const std::vector<HandedSocket>& sockets, TimePoint deadline) {
  for (size_t first = 0; first < sockets.size(); first += kMaxFdsPerMessage) {
    const size_t count = std::min(kMaxFdsPerMessage, sockets.size() - first);
    std::string payload;
    PutInteger(payload, count, 2);
    std::vector<int> fds;
    for (size_t i = first; i < first + count; ++i) {
      PutLabel(payload, sockets[i].listener);
      PutLabel(payload, sockets[i].address);
      fds.push_back(sockets[i].fd.get());
    }
    if (Status s = SendMessage(fd, kSockets, payload, fds, deadline); !s.ok()) return s;
  }
  std::string end;
  PutInteger(end, sockets.size(), 4);
  PutInteger(end, static_cast<uint64_t>(::getpid()), 4);
  return SendMessage(fd, kSocketsEnd, end, {}, deadline);
}

Status SendRefused(int fd, const std::string& why, TimePoint deadline) {
  return SendMessage(fd, kRefused, std::string_view(why).substr(0, kMaxRefusal), {}, deadline);
}

Status SendReadyAck(int fd, TimePoint deadline) {
  return SendMessage(fd, kReadyAck, {}, {}, deadline);
}

Result<pid_t> ReadyPid(const Message& message) {
  if (message.type != kReady) return Unexpected(message, "ready");
  PayloadReader reader(message.payload);
  uint64_t pid;
  if (!reader.Integer(4, &pid) || !reader.done() || pid == 0 || !message.fds.empty()) {
    return Error::Invalid("ready message: malformed");
  }
  return static_cast<pid_t>(pid);
}

Status CheckRequest(const Message& message) { return CheckEmpty(message, kRequest); }

Status SendRequest(int fd, TimePoint deadline) {
  return SendMessage(fd, kRequest, {}, {}, deadline);
}

Result<Handover> ReceiveSockets(int fd, TimePoint deadline) {
  Handover handover;
  for (;;) {
    Result<Message> message = ReceiveMessage(fd, deadline);
    if (!message.ok()) return message.error();
    if (message->type == kRefused) {
      if (message->payload.size() > kMaxRefusal) return Error::Invalid("refused message: too long");
      return CodedError(EBUSY, "refused: " + message->payload);
    }
    if (message->type == kSocketsEnd) {
      Result<pid_t> from = EndOfSockets(message.value(), handover.sockets.size());
      if (!from.ok()) return from.error();
      handover.from = from.value();
      return handover;
    }
    if (message->type != kSockets) return Unexpected(message.value(), "sockets");
    if (Status s = TakeBatch(message.value(), handover); !s.ok()) return s.error();
  }
}

Status SendReady(int fd, pid_t pid, TimePoint deadline) {
  std::string payload;
  PutInteger(payload, static_cast<uint64_t>(pid), 4);
  return SendMessage(fd, kReady, payload, {}, deadline);
}

Status ReceiveReadyAck(int fd, TimePoint deadline) {
  Result<Message> message = ReceiveMessage(fd, deadline);
  if (!message.ok()) return message.error();
  return CheckEmpty(message.value(), kReadyAck);
}

}  // namespace zrelay::upgrade
