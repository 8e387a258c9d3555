#include "engine/udp_batch.h"

#include <netinet/udp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace zrelay {
namespace {

#ifndef UDP_GRO
#define UDP_GRO 104  // linux/udp.h; older libc headers lack it
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

// Errors that say the kernel (or the route's device) does not do GSO.
bool GsoRefused(int error) { return error == EINVAL || error == EIO || error == ENOPROTOOPT; }

// Writes one control message at `c` (in `h`'s zeroed control space), adds
// its space to `used`, and returns where the next one goes.
struct cmsghdr* PutControl(struct msghdr& h, struct cmsghdr* c, int level, int type,
                           const void* data, size_t size, size_t& used) {
  c->cmsg_level = level;
  c->cmsg_type = type;
  c->cmsg_len = CMSG_LEN(size);
  std::memcpy(CMSG_DATA(c), data, size);
  used += CMSG_SPACE(size);
  return CMSG_NXTHDR(&h, c);
}

}  // namespace

UdpReceiveBatch::UdpReceiveBatch(size_t slots)
    : slots_(slots),
      data_(new char[slots * kSlotBytes]),
      meta_(new Slot[slots]),
      messages_(slots),
      iovecs_(slots) {
  for (size_t i = 0; i < slots_; ++i) {
    iovecs_[i].iov_base = data_.get() + i * kSlotBytes;
    iovecs_[i].iov_len = kSlotBytes;
  }
}

Result<size_t> UdpReceiveBatch::Receive(int fd) {
  drops_.reset();
  for (size_t i = 0; i < slots_; ++i) {
    struct msghdr& h = messages_[i].msg_hdr;
    h.msg_name = &meta_[i].peer;
    h.msg_namelen = sizeof(meta_[i].peer);
    h.msg_iov = &iovecs_[i];
    h.msg_iovlen = 1;
    h.msg_control = meta_[i].control;
    h.msg_controllen = kControlBytes;
    h.msg_flags = 0;
    messages_[i].msg_len = 0;
  }
  int n;
  do {
    n = ::recvmmsg(fd, messages_.data(), static_cast<unsigned>(slots_), MSG_DONTWAIT, nullptr);
  } while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return size_t{0};
    return Error::FromErrno(errno, "recvmmsg");
  }
  for (int i = 0; i < n; ++i) {
    Slot& slot = meta_[i];
    slot.local = UdpLocal{};
    slot.segment_size = 0;
    struct msghdr& h = messages_[i].msg_hdr;
    for (struct cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        slot.local.family = AF_INET;
        std::memcpy(&slot.local.v4, CMSG_DATA(c), sizeof(slot.local.v4));
        // A reply leaves from the address the request was sent to.
        slot.local.v4.ipi_spec_dst = slot.local.v4.ipi_addr;
        slot.local.v4.ipi_ifindex = 0;
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        slot.local.family = AF_INET6;
        std::memcpy(&slot.local.v6, CMSG_DATA(c), sizeof(slot.local.v6));
      } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
        uint32_t drops = 0;
        std::memcpy(&drops, CMSG_DATA(c), sizeof(drops));
        drops_ = drops;
      } else if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
        int segment = 0;
        std::memcpy(&segment, CMSG_DATA(c), sizeof(segment));
        slot.segment_size = static_cast<uint16_t>(segment);
      }
    }
    // A single datagram reported as a run of one is just a datagram.
    if (slot.segment_size >= messages_[i].msg_len) slot.segment_size = 0;
  }
  return static_cast<size_t>(n);
}

UdpDatagram UdpReceiveBatch::datagram(size_t i) const {
  UdpDatagram d;
  d.data = static_cast<const char*>(iovecs_[i].iov_base);
  d.size = messages_[i].msg_len;
  d.segment_size = meta_[i].segment_size;
  d.peer = reinterpret_cast<const struct sockaddr*>(&meta_[i].peer);
  d.peer_length = messages_[i].msg_hdr.msg_namelen;
  d.local = meta_[i].local;
  return d;
}

UdpSendBatch::UdpSendBatch(size_t capacity)
    : capacity_(capacity), messages_(capacity), iovecs_(capacity) {
  entries_.reserve(capacity);
}

void UdpSendBatch::Add(const char* data, size_t size, uint16_t segment_size,
                       const struct sockaddr* to, socklen_t to_length, const UdpLocal* from) {
  if (!gso_works_ && segment_size > 0 && size > segment_size) {
    // Split now: each datagram is an entry of its own.
    // The batch may grow past its capacity here: Flush() sends it all.
    for (size_t at = 0; at < size; at += segment_size) {
      Add(data + at, std::min<size_t>(segment_size, size - at), 0, to, to_length, from);
    }
    return;
  }
  Entry& e = entries_.emplace_back();
  e.offset = bytes_.size();
  e.size = size;
  e.segment_size = size > segment_size ? segment_size : 0;
  if (to != nullptr) {
    std::memcpy(&e.to, to, to_length);
    e.to_length = to_length;
  }
  if (from != nullptr) e.from = *from;
  bytes_.insert(bytes_.end(), data, data + size);
}

void UdpSendBatch::Clear() {
  entries_.clear();
  bytes_.clear();
}

size_t UdpSendBatch::Segments(const Entry& e) const {
  return e.segment_size == 0 || e.size == 0 ? 1 : (e.size + e.segment_size - 1) / e.segment_size;
}

UdpSendBatch::Outcome UdpSendBatch::Flush(int fd) {
  Outcome outcome;
  const size_t n = entries_.size();
  if (messages_.size() < n) {  // a split GRO run grew it past its capacity
    messages_.resize(n);
    iovecs_.resize(n);
  }
  for (size_t i = 0; i < n; ++i) {
    Entry& e = entries_[i];
    iovecs_[i].iov_base = bytes_.data() + e.offset;
    iovecs_[i].iov_len = e.size;
    struct msghdr& h = messages_[i].msg_hdr;
    std::memset(&h, 0, sizeof(h));
    h.msg_name = e.to_length > 0 ? &e.to : nullptr;
    h.msg_namelen = e.to_length;
    h.msg_iov = &iovecs_[i];
    h.msg_iovlen = 1;
    size_t control = 0;
    // The space is zeroed so CMSG_NXTHDR sees a clean next header.
    std::memset(e.control, 0, sizeof(e.control));
    h.msg_control = e.control;
    h.msg_controllen = sizeof(e.control);
    struct cmsghdr* c = CMSG_FIRSTHDR(&h);
    if (e.from.family == AF_INET) {
      c = PutControl(h, c, IPPROTO_IP, IP_PKTINFO, &e.from.v4, sizeof(e.from.v4), control);
    } else if (e.from.family == AF_INET6) {
      c = PutControl(h, c, IPPROTO_IPV6, IPV6_PKTINFO, &e.from.v6, sizeof(e.from.v6), control);
    }
    if (e.segment_size > 0) {
      const uint16_t segment = e.segment_size;
      PutControl(h, c, IPPROTO_UDP, UDP_SEGMENT, &segment, sizeof(segment), control);
    }
    h.msg_controllen = control;
    if (control == 0) h.msg_control = nullptr;
  }
  size_t at = 0;
  while (at < n) {
    int sent = ::sendmmsg(fd, messages_.data() + at, static_cast<unsigned>(n - at), MSG_DONTWAIT);
    if (sent < 0 && errno == EINTR) continue;
    if (sent > 0) {
      for (size_t i = at; i < at + static_cast<size_t>(sent); ++i) {
        outcome.sent += Segments(entries_[i]);
      }
      at += static_cast<size_t>(sent);
      continue;
    }
    // Entry `at` failed: a GSO run the kernel refuses goes one by one;
    // anything else is dropped (UDP never waits), and the rest go on.
    const int error = sent < 0 ? errno : EIO;
    Entry& e = entries_[at];
    if (e.segment_size > 0 && GsoRefused(error)) {
      gso_works_ = false;
      SendSegments(fd, e, outcome);
    } else {
      outcome.dropped += Segments(e);
      if (outcome.error == 0) outcome.error = error;
    }
    ++at;
  }
  Clear();
  return outcome;
}

void UdpSendBatch::SendSegments(int fd, Entry& e, Outcome& outcome) {
  struct msghdr h = messages_[0].msg_hdr;  // any: rebuilt below
  std::memset(&h, 0, sizeof(h));
  h.msg_name = e.to_length > 0 ? &e.to : nullptr;
  h.msg_namelen = e.to_length;
  // Keep the source address, drop the UDP_SEGMENT that follows it.
  size_t control = e.from.family == AF_INET    ? CMSG_SPACE(sizeof(e.from.v4))
                   : e.from.family == AF_INET6 ? CMSG_SPACE(sizeof(e.from.v6))
                                               : 0;
  h.msg_control = control > 0 ? e.control : nullptr;
  h.msg_controllen = control;
  for (size_t at = 0; at < e.size; at += e.segment_size) {
    struct iovec v {
      bytes_.data() + e.offset + at, std::min<size_t>(e.segment_size, e.size - at)
    };
    h.msg_iov = &v;
    h.msg_iovlen = 1;
    ssize_t r;
    do {
      r = ::sendmsg(fd, &h, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    if (r >= 0) {
      ++outcome.sent;
    } else {
      ++outcome.dropped;
      if (outcome.error == 0) outcome.error = errno;
    }
  }
}

}  // namespace zrelay
