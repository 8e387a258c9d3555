#include "tests/chaos/plan.h"

#include <algorithm>
#include <random>

namespace zrelay::chaos {

const char* FaultName(Fault fault) {
  switch (fault) {
    case Fault::kNone:
      return "none";
    case Fault::kClientReset:
      return "client-reset";
    case Fault::kBackendReset:
      return "backend-reset";
    case Fault::kClientHalfClose:
      return "client-half-close";
    case Fault::kBackendHalfClose:
      return "backend-half-close";
    case Fault::kClientStall:
      return "client-stall";
    case Fault::kBackendStall:
      return "backend-stall";
    case Fault::kTlsGarbage:
      return "tls-garbage";
    case Fault::kTlsHandshakeCut:
      return "tls-handshake-cut";
    case Fault::kTlsNoCloseNotify:
      return "tls-no-close-notify";
    case Fault::kConnectWait:
      return "connect-wait";
    case Fault::kConnectHalfClose:
      return "connect-half-close";
    case Fault::kConnectReset:
      return "connect-reset";
  }
  return "?";
}

const char* ReplyName(Reply reply) {
  switch (reply) {
    case Reply::kEcho:
      return "echo";
    case Reply::kSink:
      return "sink";
    case Reply::kExchange:
      return "exchange";
  }
  return "?";
}

uint64_t Mix64(uint64_t x) {  // splitmix64's finalizer
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

void FillPattern(uint64_t seed, uint64_t offset, char* buf, size_t len) {
  uint64_t block = offset / 8;
  uint64_t word = Mix64(seed ^ Mix64(block));
  for (size_t i = 0; i < len; ++i) {
    uint64_t at = offset + i;
    if (at / 8 != block) {
      block = at / 8;
      word = Mix64(seed ^ Mix64(block));
    }
    buf[i] = static_cast<char>(word >> (8 * (at % 8)));
  }
}

namespace {

void MakeHeader(uint32_t id, char* header) {
  uint64_t check = Mix64(id);
  header[0] = 'Z';
  header[1] = 'C';
  for (int i = 0; i < 4; ++i) header[2 + i] = static_cast<char>(id >> (8 * i));
  header[6] = static_cast<char>(check);
  header[7] = static_cast<char>(check >> 8);
}

}  // namespace

void FillUp(uint32_t id, uint64_t seed, uint64_t offset, char* buf, size_t len) {
  char header[kHeaderBytes];
  MakeHeader(id, header);
  size_t i = 0;
  for (; i < len && offset + i < kHeaderBytes; ++i) buf[i] = header[offset + i];
  if (i < len) FillPattern(seed, offset + i, buf + i, len - i);
}

int64_t ParseHeader(const char* header) {
  uint32_t id = 0;
  for (int i = 0; i < 4; ++i)
    id |= static_cast<uint32_t>(static_cast<uint8_t>(header[2 + i])) << (8 * i);
  char expected[kHeaderBytes];
  MakeHeader(id, expected);
  return std::equal(expected, expected + kHeaderBytes, header) ? static_cast<int64_t>(id) : -1;
}

namespace {

// Stalls start early, so most of a stalled stream is still to come.
constexpr uint64_t kStallPointMax = 64 << 10;

class Draw {
 public:
  explicit Draw(uint64_t seed) : rng_(seed) {}
  uint64_t Between(uint64_t lo, uint64_t hi) {  // inclusive
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }
  // Mostly small payloads, some medium, a few up to `max`.
  uint64_t Payload(uint64_t max) {
    uint64_t r = Between(0, 99);
    if (r < 50) return Between(1, std::min<uint64_t>(2048, max));
    if (r < 85) return Between(1, std::min<uint64_t>(64 << 10, max));
    return Between(1, max);
  }
  template <typename T>
  T Weighted(const std::vector<std::pair<T, int>>& choices) {
    int total = 0;
    for (const auto& c : choices) total += c.second;
    int pick = static_cast<int>(Between(0, static_cast<uint64_t>(total - 1)));
    for (const auto& c : choices) {
      if (pick < c.second) return c.first;
      pick -= c.second;
    }
    return choices.back().first;
  }

 private:
  std::mt19937_64 rng_;
};

std::vector<std::pair<Fault, int>> FaultMix(const PlanOptions& options) {
  if (options.clean_only) {
    return {{Fault::kNone, 2},
            {Fault::kClientHalfClose, 1},
            {Fault::kBackendHalfClose, 1},
            {Fault::kClientStall, 1},
            {Fault::kBackendStall, 1}};
  }
  switch (options.backend) {
    case BackendKind::kBlackHole:
      return {{Fault::kConnectWait, 1}, {Fault::kConnectHalfClose, 1}, {Fault::kConnectReset, 1}};
    case BackendKind::kFlapping:
      return {{Fault::kNone, 1}};
    case BackendKind::kNormal:
      break;
  }
  std::vector<std::pair<Fault, int>> mix = {{Fault::kNone, 30},
                                            {Fault::kClientReset, 10},
                                            {Fault::kBackendReset, 10},
                                            {Fault::kClientHalfClose, 12},
                                            {Fault::kBackendHalfClose, 12},
                                            {Fault::kClientStall, 5},
                                            {Fault::kBackendStall, 5}};
  if (options.tls) {
    mix.insert(
        mix.end(),
        {{Fault::kTlsGarbage, 5}, {Fault::kTlsHandshakeCut, 5}, {Fault::kTlsNoCloseNotify, 5}});
  }
  return mix;
}

}  // namespace

std::vector<PairPlan> MakePlans(const PlanOptions& options, size_t count, uint64_t seed) {
  Draw draw(seed);
  const uint64_t max = std::max<uint64_t>(options.max_payload, 4096);
  const uint64_t stall = std::max<uint64_t>(options.max_stall_payload, 4096);
  const auto mix = FaultMix(options);
  std::vector<PairPlan> plans(count);
  for (size_t i = 0; i < count; ++i) {
    PairPlan& p = plans[i];
    p.id = static_cast<uint32_t>(i);
    p.fault = draw.Weighted(mix);
    p.reply = draw.Weighted<Reply>({{Reply::kEcho, 1}, {Reply::kSink, 1}, {Reply::kExchange, 2}});
    p.up_seed = draw.Between(0, UINT64_MAX);
    p.down_seed = draw.Between(0, UINT64_MAX);
    p.up_bytes = kHeaderBytes + draw.Payload(max);
    p.down_bytes = draw.Payload(max);
    switch (p.fault) {
      case Fault::kClientHalfClose:
      case Fault::kBackendHalfClose:
        // The side that keeps sending after the FIN needs its own stream.
        p.reply = Reply::kExchange;
        break;
      case Fault::kClientStall:
        p.reply = Reply::kExchange;
        p.down_bytes = draw.Between(stall / 2, stall);
        p.fault_at = draw.Between(0, kStallPointMax);
        p.fault_delay = milliseconds(draw.Between(50, 400));
        break;
      case Fault::kBackendStall:
        p.up_bytes = kHeaderBytes + draw.Between(stall / 2, stall);
        p.fault_at = draw.Between(kHeaderBytes, kStallPointMax);
        p.fault_delay = milliseconds(draw.Between(50, 400));
        break;
      case Fault::kClientReset:
        p.fault_at = draw.Between(kHeaderBytes, p.up_bytes);
        break;
      case Fault::kBackendReset:
        if (p.reply == Reply::kSink) p.reply = Reply::kExchange;
        break;
      case Fault::kTlsGarbage:
        p.up_bytes = draw.Between(1, 600);
        break;
      case Fault::kTlsHandshakeCut:
        p.cut_with_reset = draw.Between(0, 1) == 1;
        p.fault_at = draw.Between(0, 1 << 20);  // where the ClientHello is cut
        break;
      case Fault::kConnectHalfClose:
      case Fault::kConnectWait:
        p.up_bytes = kHeaderBytes + draw.Between(0, 4096);
        break;
      case Fault::kConnectReset:
        p.fault_delay = milliseconds(draw.Between(10, 100));
        break;
      case Fault::kNone:
      case Fault::kTlsNoCloseNotify:
        break;
    }
    if (p.reply == Reply::kEcho) p.down_bytes = p.up_bytes;
    if (p.reply == Reply::kSink) p.down_bytes = 0;
    if (p.fault == Fault::kBackendReset) p.fault_at = draw.Between(0, p.down_bytes);
    p.client_split = p.up_bytes;
    p.backend_split = p.down_bytes;
    if (p.fault == Fault::kClientHalfClose) p.backend_split = draw.Between(0, p.down_bytes / 2);
    if (p.fault == Fault::kBackendHalfClose) {
      p.client_split = draw.Between(kHeaderBytes, kHeaderBytes + (p.up_bytes - kHeaderBytes) / 2);
    }
  }
  return plans;
}

}  // namespace zrelay::chaos
