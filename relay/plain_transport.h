// PlainTransport: a TCP or unix stream socket, read and written with
// readv/writev, and spliced to and from a kernel pipe
// (plain_transport_pipe.cc), through the loop's syscall seam. On an
// io_uring loop, small writes go through the ring instead (UringSender):
// queued with the turn's other requests, not a syscall each.
#pragma once

#include "engine/event_loop.h"
#include "engine/syscalls.h"
#include "engine/uring_sender.h"
#include "relay/transport.h"

namespace zrelay {

class PlainTransport final : public Transport {
 public:
  PlainTransport(FdWatch& watch, Syscalls& sys) : watch_(watch), sys_(sys), sender_(watch) {}

  IoResult Handshake() override { return {}; }
  IoResult Read(RingBuffer& ring, size_t max) override;
  IoResult Write(RingBuffer& ring) override;
  IoResult ShutdownWrite() override;
  IoResult ReadToPipe(KernelPipe& pipe, size_t max) override;
  IoResult WriteFromPipe(KernelPipe& pipe) override;
  bool ReadReady() const override { return watch_.readable(); }
  // A write through the ring still on its way blocks every other write
  // (the byte order) and the FIN that would overtake it.
  bool WriteReady() const override { return watch_.writable() && !sender_.busy(); }
  bool can_splice() const override { return true; }
  bool close_sends_fin() const override { return !sender_.busy(); }

 private:
  // kWouldBlock while a ring send is on its way (its completion makes the
  // socket writable again), kError once one failed; else nothing (kOk).
  IoResult WaitForSender() const;

  FdWatch& watch_;
  Syscalls& sys_;
  UringSender sender_;
};

}  // namespace zrelay
