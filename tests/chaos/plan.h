// What each chaos pair does: its payloads, how the backend answers, and the
// one fault it carries. Plans come from a seed, so a run is reproducible
// from its seed alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/clock.h"

namespace zrelay::chaos {

// The backend zrelayd relays to, for a whole run.
enum class BackendKind {
  kNormal,     // accepts everything at once
  kBlackHole,  // its accept queue is full: connects hang until zrelayd gives up
  kFlapping,   // its listener is closed and reopened on the same port, over and over
};

enum class Fault {
  kNone,              // byte-exact both ways, FIN both ways
  kClientReset,       // the client resets (SO_LINGER 0) once the backend got N bytes
  kBackendReset,      // the backend resets once the client got N bytes
  kClientHalfClose,   // the client sends FIN early; the backend keeps sending after it
  kBackendHalfClose,  // the backend sends FIN early; the client keeps sending after it
  kClientStall,       // the client stops reading for a while, mid-stream
  kBackendStall,      // the backend stops reading for a while, mid-stream
  kTlsGarbage,        // TLS listener: bytes that are not a ClientHello
  kTlsHandshakeCut,   // TLS listener: the client leaves after (part of) its ClientHello
  kTlsNoCloseNotify,  // TLS listener: the client ends with FIN but no close_notify
  kConnectWait,       // black hole: the client waits for zrelayd's connect timeout
  kConnectHalfClose,  // black hole: the client sends and FINs while zrelayd connects
  kConnectReset,      // black hole: the client resets while zrelayd connects
};
const char* FaultName(Fault fault);

// How the backend answers a pair's upstream bytes.
enum class Reply {
  kEcho,      // sends back every byte it gets, FIN after the client's FIN
  kSink,      // sends nothing, FIN after the client's FIN
  kExchange,  // sends its own pattern stream, independent of the client's
};
const char* ReplyName(Reply reply);

// Every upstream stream starts with this header: the backend learns from it
// which pair an accepted connection belongs to.
inline constexpr size_t kHeaderBytes = 8;

struct PairPlan {
  uint32_t id = 0;
  Fault fault = Fault::kNone;
  Reply reply = Reply::kExchange;
  uint64_t up_seed = 0;
  uint64_t down_seed = 0;
  uint64_t up_bytes = 0;    // what the client sends, header included
  uint64_t down_bytes = 0;  // what the backend sends (echo: up_bytes; sink: 0)
  // The client (backend) sends this many bytes, then waits for the other
  // side's FIN before it sends the rest: half-close must not be a full close.
  uint64_t client_split = 0;
  uint64_t backend_split = 0;
  uint64_t fault_at = 0;        // reset and stall trigger, in bytes received; ClientHello cut
  Duration fault_delay{};       // stall length; connect-phase faults: delay before acting
  bool cut_with_reset = false;  // kTlsHandshakeCut: RST instead of FIN
};

struct PlanOptions {
  BackendKind backend = BackendKind::kNormal;
  bool tls = false;  // zrelayd terminates TLS: the TLS faults join the mix
  // Only faults after which a pair still ends normally: none, half-close, stall.
  bool clean_only = false;
  uint64_t max_payload = 1 << 20;
  // What a stalled reader is sent: more than the sockets on both sides of
  // zrelayd hold (zrelayd's send buffer alone starts at megabytes with
  // loopback's 64 KiB segments), so the bytes back up into its own pipes
  // and rings.
  uint64_t max_stall_payload = 8 << 20;
};

// `count` plans drawn from `seed`, faults mixed per the options.
std::vector<PairPlan> MakePlans(const PlanOptions& options, size_t count, uint64_t seed);

// The deterministic byte streams pairs send and check.
uint64_t Mix64(uint64_t x);
// Byte `offset` of the upstream of pair `id` (header, then pattern `seed`).
void FillUp(uint32_t id, uint64_t seed, uint64_t offset, char* buf, size_t len);
// Bytes [offset, offset + len) of pattern `seed`.
void FillPattern(uint64_t seed, uint64_t offset, char* buf, size_t len);
// The pair id in a header, or -1 when the bytes are not a header.
int64_t ParseHeader(const char* header);

}  // namespace zrelay::chaos
