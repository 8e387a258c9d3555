#include "tools/load/session.h"

#include <algorithm>
#include <cerrno>

#include "tools/load/bulk_conn.h"
#include "tools/load/client_conn.h"
#include "tools/load/request_conns.h"

namespace zrelay::load {

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kRefused:
      return "refused";
    case ErrorKind::kReset:
      return "reset";
    case ErrorKind::kTimeout:
      return "timeout";
    case ErrorKind::kOther:
      return "other";
  }
  return "?";
}

ErrorKind ClassifyErrno(int err) {
  switch (err) {
    case ECONNREFUSED:
      return ErrorKind::kRefused;
    case ECONNRESET:
    case EPIPE:
    case ECONNABORTED:
      return ErrorKind::kReset;
    case ETIMEDOUT:
      return ErrorKind::kTimeout;
    default:
      return ErrorKind::kOther;
  }
}

uint64_t ConnCountOf(const Config& config) {
  switch (config.mode) {
    case Mode::kBulk:
      return config.streams;
    case Mode::kRr:
    case Mode::kConnect:
      return config.conns;
    case Mode::kIdle:
      return config.pairs;
    case Mode::kUdp:
      return config.flows;
    case Mode::kBackend:
      return 0;
  }
  return 0;
}

ClientSession::ClientSession(EventLoop& loop, const RunShared& shared, size_t worker,
                             size_t workers)
    : loop_(loop),
      shared_(shared),
      worker_(worker),
      workers_(workers),
      run_timer_(this),
      scratch_(std::max<size_t>(64 << 10, shared.config->chunk)) {}

ClientSession::~ClientSession() {
  // Connections first: they unregister from the loop and may call back.
  stopping_ = true;
  conns_.clear();
}

uint64_t ClientSession::ShareOf(uint64_t total) const {
  const uint64_t n = ConnCountOf(config());
  uint64_t share = 0;
  for (uint64_t i = worker_; i < n; i += workers_) share += total / n + (i < total % n ? 1 : 0);
  return share;
}

std::unique_ptr<ClientConn> ClientSession::MakeConn(uint64_t id) {
  const Config& c = config();
  switch (c.mode) {
    case Mode::kBulk: {
      uint64_t total = c.bytes.value_or(0);
      uint64_t share = total / c.streams + (id < total % c.streams ? 1 : 0);
      return std::make_unique<BulkConn>(*this, id, share);
    }
    case Mode::kRr:
      return std::make_unique<RrConn>(*this, id);
    case Mode::kConnect:
      return std::make_unique<ConnectConn>(*this, id);
    case Mode::kIdle:
      return std::make_unique<IdleConn>(*this, id);
    case Mode::kUdp:  // udp_flow.h: flows, not connections
    case Mode::kBackend:
      break;
  }
  return nullptr;
}

void ClientSession::Start() {
  const Config& c = config();
  start_ = Clock::now();
  if (c.requests || c.count) {
    counted_budget_ = true;
    budget_ = ShareOf(c.requests ? *c.requests : *c.count);
  }
  for (uint64_t id = worker_; id < ConnCountOf(c); id += workers_) conns_.push_back(MakeConn(id));
  active_ = conns_.size();
  if (active_ == 0) {
    end_ = start_;
    done_.store(true, std::memory_order_release);
    return;
  }
  if (!c.counted() && c.mode != Mode::kIdle) loop_.ArmTimer(run_timer_, c.duration);
  free_slots_ = kOpenWindow;
  --free_slots_;
  ReleaseOpenSlot();
}

void ClientSession::ReleaseOpenSlot() {
  ++free_slots_;
  if (starting_) return;  // the loop below picks it up
  starting_ = true;
  while (free_slots_ > 0 && next_start_ < conns_.size() && !stopping_) {
    --free_slots_;
    conns_[next_start_++]->Start();
  }
  starting_ = false;
}

void ClientSession::OnTimer(Timer&) { Stop(); }

void ClientSession::Stop() {
  if (stopping_) return;
  stopping_ = true;
  loop_.CancelTimer(run_timer_);
  // Index loop: Stop() may finish connections, which never removes them.
  for (size_t i = 0; i < conns_.size(); ++i) {
    if (!conns_[i]->finished()) conns_[i]->Stop();
  }
}

void ClientSession::Abort() {
  stopping_ = true;
  loop_.CancelTimer(run_timer_);
  for (size_t i = 0; i < conns_.size(); ++i) {
    if (!conns_[i]->finished()) conns_[i]->Abort();
  }
}

bool ClientSession::TakeBudget() {
  if (stopping_) return false;
  if (!counted_budget_) return true;
  if (budget_ == 0) return false;
  --budget_;
  return true;
}

void ClientSession::RecordError(ErrorKind kind, const std::string& detail) {
  counters_.errors[static_cast<int>(kind)].Add(1);
  if (first_error_.empty()) first_error_ = detail;
}

void ClientSession::ConnFinished() {
  if (active_ == 0) return;
  if (--active_ == 0) {
    end_ = Clock::now();
    loop_.CancelTimer(run_timer_);
    done_.store(true, std::memory_order_release);
  }
}

}  // namespace zrelay::load
