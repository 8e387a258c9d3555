// PlainTransport: a TCP or unix stream socket, read and written with
// readv/writev through the loop's syscall seam.
#pragma once

#include "engine/event_loop.h"
#include "engine/syscalls.h"
#include "relay/transport.h"

namespace zrelay {

class PlainTransport final : public Transport {
 public:
  PlainTransport(FdWatch& watch, Syscalls& sys) : watch_(watch), sys_(sys) {}

  IoResult Handshake() override { return {}; }
  IoResult Read(RingBuffer& ring) override;
  IoResult Write(RingBuffer& ring) override;
  IoResult ShutdownWrite() override;
  bool ReadReady() const override { return watch_.readable(); }
  bool WriteReady() const override { return watch_.writable(); }
  bool can_splice() const override { return true; }
  bool close_sends_fin() const override { return true; }

 private:
  FdWatch& watch_;
  Syscalls& sys_;
};

}  // namespace zrelay
