// Batches of datagrams: many received with one recvmmsg, many sent with one
// sendmmsg, with the control messages a datagram relay needs on either side
// (the local address a datagram came to, the socket's drop count, GRO/GSO
// segment sizes).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/result.h"

namespace zrelay {

// The largest UDP payload (65,535 - 8 - 20): a receive slot holds one.
inline constexpr size_t kMaxUdpPayload = 65507;

// The local address a datagram was sent to, kept in the form a reply hands
// back to the kernel so it leaves from that address (IP_PKTINFO or
// IPV6_PKTINFO). family AF_UNSPEC: unknown (the socket's bound address is
// used).
struct UdpLocal {
  int family = AF_UNSPEC;
  struct in_pktinfo v4 {};
  struct in6_pktinfo v6 {};
};

// One datagram as received, or with GRO a run of datagrams of
// `segment_size` bytes each (the last may be shorter) from the same peer.
struct UdpDatagram {
  const char* data = nullptr;
  size_t size = 0;
  uint16_t segment_size = 0;  // 0: one datagram of `size` bytes
  const struct sockaddr* peer = nullptr;
  socklen_t peer_length = 0;
  UdpLocal local;

  // How many datagrams this is (GRO runs count each one).
  size_t count() const {
    return segment_size == 0 || size == 0 ? 1 : (size + segment_size - 1) / segment_size;
  }
};

class UdpReceiveBatch {
 public:
  // `slots` datagrams per Receive(), each up to kMaxUdpPayload bytes (or a
  // GRO run of up to 64 KiB). The memory is only touched as far as the
  // datagrams received reach.
  explicit UdpReceiveBatch(size_t slots);
  UdpReceiveBatch(const UdpReceiveBatch&) = delete;
  UdpReceiveBatch& operator=(const UdpReceiveBatch&) = delete;

  // One recvmmsg(MSG_DONTWAIT) on `fd`: the number of datagrams received
  // (0 when none was waiting), or the error (an ICMP error pending on a
  // connected socket shows here as ECONNREFUSED and the like).
  Result<size_t> Receive(int fd);

  size_t slots() const { return slots_; }
  // Datagram i of the last Receive().
  UdpDatagram datagram(size_t i) const;
  // The socket's drop count as the last Receive()'s datagrams told it
  // (SO_RXQ_OVFL: cumulative, wraps at 2^32); nullopt when none carried it.
  // A datagram carries the count as it stood when the kernel queued it, so
  // drops show with the first datagram queued after them.
  std::optional<uint32_t> drops() const { return drops_; }

 private:
  static constexpr size_t kSlotBytes = 65536;
  static constexpr size_t kControlBytes = 256;
  struct Slot {
    struct sockaddr_storage peer {};
    alignas(struct cmsghdr) char control[kControlBytes];
    UdpLocal local;
    uint16_t segment_size = 0;
  };

  size_t slots_;
  std::unique_ptr<char[]> data_;  // slots_ * kSlotBytes
  std::unique_ptr<Slot[]> meta_;
  std::vector<struct mmsghdr> messages_;
  std::vector<struct iovec> iovecs_;
  std::optional<uint32_t> drops_;
};

// Datagrams queued for one socket and sent with sendmmsg. Add() copies the
// payload, so the caller's buffer may be reused at once.
class UdpSendBatch {
 public:
  explicit UdpSendBatch(size_t capacity);
  UdpSendBatch(const UdpSendBatch&) = delete;
  UdpSendBatch& operator=(const UdpSendBatch&) = delete;

  // Queues `size` bytes for `to` (null on a connected socket), from `from`
  // (null or AF_UNSPEC: the socket's own address). segment_size > 0: the
  // bytes are datagrams of that size (the last may be shorter), sent as one
  // GSO run where the kernel takes it and one by one where it does not.
  void Add(const char* data, size_t size, uint16_t segment_size, const struct sockaddr* to,
           socklen_t to_length, const UdpLocal* from);
  // The caller flushes a full batch before adding more (a GSO run split
  // for a kernel without GSO may take it past its capacity).
  bool full() const { return entries_.size() >= capacity_; }
  bool empty() const { return entries_.empty(); }

  struct Outcome {
    size_t sent = 0;     // datagrams the kernel took
    size_t dropped = 0;  // datagrams a send failed for
    int error = 0;       // the first errno, when any failed
  };
  // Sends everything queued on `fd` (non-blocking: a full socket buffer
  // drops what does not fit, as UDP does) and empties the batch.
  Outcome Flush(int fd);
  // Forgets what is queued (its socket is gone).
  void Clear();

 private:
  struct Entry {
    size_t offset = 0;
    size_t size = 0;
    uint16_t segment_size = 0;
    struct sockaddr_storage to {};
    socklen_t to_length = 0;
    UdpLocal from;
    alignas(struct cmsghdr) char control[128];
  };
  // Sends entry `e` one datagram at a time (a kernel without GSO).
  void SendSegments(int fd, Entry& e, Outcome& outcome);
  size_t Segments(const Entry& e) const;

  size_t capacity_;
  std::vector<Entry> entries_;
  std::vector<char> bytes_;
  std::vector<struct mmsghdr> messages_;
  std::vector<struct iovec> iovecs_;
  bool gso_works_ = true;  // until the kernel refuses UDP_SEGMENT once
};

}  // namespace zrelay
