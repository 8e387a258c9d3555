// PlainTransport: a TCP or unix stream socket, read and written with
// readv/writev, and spliced to and from a kernel pipe
// (plain_transport_pipe.cc), through the loop's syscall seam. On an
// io_uring loop, small writes go through the ring instead (UringSender):
// queued with the turn's other requests, not a syscall each; so do copied
// reads: a recv queued once the socket is readable (UringReceiver), whose
// bytes arrive a loop turn later. A receive that fills up shows a stream,
// which readv then drains in large reads until one comes back short: a
// bulk transfer gains nothing from the ring and would pay a turn per
// 16 KiB.
//
// A splice would overtake the bytes a receive holds, so ReadToPipe runs
// only while receiving_now() is false (the pump copies until then). The
// splices themselves stay syscalls: the kernel hands every IORING_OP_SPLICE
// to an io-wq worker thread, even when the socket has bytes queued, so a
// splice through the ring would cost a thread wake-up where the syscall
// costs none.
#pragma once

#include "engine/event_loop.h"
#include "engine/syscalls.h"
#include "engine/uring_receiver.h"
#include "engine/uring_sender.h"
#include "relay/transport.h"

namespace zrelay {

class PlainTransport final : public Transport {
 public:
  PlainTransport(FdWatch& watch, Syscalls& sys)
      : watch_(watch), sys_(sys), sender_(watch), receiver_(watch) {}

  IoResult Handshake() override { return {}; }
  IoResult Read(RingBuffer& ring, size_t max) override;
  IoResult Write(RingBuffer& ring) override;
  IoResult ShutdownWrite() override;
  IoResult ReadToPipe(KernelPipe& pipe, size_t max) override;
  IoResult WriteFromPipe(KernelPipe& pipe) override;
  // Through the ring: a receive's result waits, or the socket is readable
  // and no receive is on its way.
  bool ReadReady() const override {
    if (receiving()) return receiver_.has_result() || (watch_.readable() && !receiver_.busy());
    return watch_.readable();
  }
  // A write through the ring still on its way blocks every other write
  // (the byte order) and the FIN that would overtake it.
  bool WriteReady() const override { return watch_.writable() && !sender_.busy(); }
  bool can_splice() const override { return true; }
  bool close_sends_fin() const override { return !sender_.busy(); }
  bool receiving_now() const override { return receiver_.busy() || receiver_.has_result(); }

 private:
  // kWouldBlock while a ring send is on its way (its completion makes the
  // socket writable again), kError once one failed; else nothing (kOk).
  IoResult WaitForSender() const;
  bool receiving() const { return receiver_.available(); }
  // Read() through the ring: hands over what a receive brought, or queues
  // the next receive (kWouldBlock until it completes).
  IoResult Receive(RingBuffer& ring, size_t max);

  FdWatch& watch_;
  Syscalls& sys_;
  UringSender sender_;
  UringReceiver receiver_;
  bool streaming_ = false;  // receiving(), but readv until the socket is drained
};

}  // namespace zrelay
