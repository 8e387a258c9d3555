#include "tools/load/backend.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <optional>

#include "engine/socket.h"
#include "tools/load/exchange.h"
#include "tools/load/pattern.h"

namespace zrelay::load {
namespace {

constexpr size_t kBudget = 1 << 20;      // bytes per direction per Pump()
constexpr size_t kReadSize = 256 << 10;  // one read into the worker's scratch
constexpr uint64_t kMaxOwed = 4 << 20;   // fixed: stop reading past this backlog
std::atomic<int> g_mismatch_logs{0};     // verify: log the first few bad streams
constexpr int kMaxMismatchLogs = 10;

}  // namespace

struct Backend::WorkerState {
  explicit WorkerState(EventLoop& l, size_t index) : loop(l), worker(index), scratch(kReadSize) {}
  EventLoop& loop;
  size_t worker;
  std::vector<uint8_t> scratch;
  Conn* head = nullptr;  // intrusive list of live connections
  uint64_t next_key = 0;
  Counter accepted, closed, bytes_in, bytes_out, verified, mismatches, resets;
};

class Backend::Conn final : public FdHandler, public ReadyHandler, public Deferrable {
 public:
  Conn(WorkerState& w, const Config& c, UniqueFd fd, uint64_t key)
      : w_(w), config_(c), mode_(c.backend_mode), fd_(std::move(fd)), writer_(key) {}
  ~Conn() override { watch_.Unregister(); }

  Status Register() { return watch_.Register(w_.loop, fd_.get(), this); }
  // Unlinks and closes now; the memory goes at the end of the turn.
  // `count`: a reset counts in the totals (not when Stop() closes it).
  void Close(bool reset, bool count = true);

  Conn* prev = nullptr;
  Conn* next = nullptr;

 private:
  void OnFdEvent(FdWatch&, uint32_t) override { Pump(); }
  void OnReady() override { Pump(); }
  void Pump();
  bool HasOutput() const;
  bool WantsInput() const;
  bool ReadSome(size_t* budget);
  bool WriteSome(size_t* budget);
  // Sends what it can of [data, data+len); returns bytes taken, or -1 after
  // closing on an error.
  ssize_t Send(const uint8_t* data, size_t len);
  void OnInput(const uint8_t* data, size_t len);
  void OnEof();
  void LogMismatch() const;

  WorkerState& w_;
  const Config& config_;
  BackendMode mode_;
  UniqueFd fd_;
  FdWatch watch_;  // after fd_: unregistered before the fd closes
  bool closed_ = false;
  bool read_eof_ = false;
  std::vector<uint8_t> pending_;  // echo: bytes read but not yet sent
  size_t pending_off_ = 0;
  uint64_t owed_ = 0;                     // fixed: response bytes still to send
  uint64_t partial_ = 0;                  // fixed: request bytes toward the next --req
  StreamWriter writer_;                   // source
  std::optional<StreamChecker> checker_;  // verify
  uint8_t report_[kVerifyReportSize] = {};
  size_t report_off_ = kVerifyReportSize;  // verify: report bytes sent (all: none due)
};

void Backend::Conn::Close(bool reset, bool count) {
  if (closed_) return;
  closed_ = true;
  if (reset) {
    // Source connections end on the client's reset by design.
    if (count && mode_ != BackendMode::kSource) w_.resets.Add(1);
    (void)SetLingerZero(fd_.get());
  }
  w_.loop.UnscheduleReady(this);
  watch_.Unregister();
  fd_.Reset();
  if (prev)
    prev->next = next;
  else
    w_.head = next;
  if (next) next->prev = prev;
  prev = next = nullptr;
  w_.closed.Add(1);
  w_.loop.DeferDelete(std::unique_ptr<Deferrable>(this));
}

bool Backend::Conn::HasOutput() const {
  switch (mode_) {
    case BackendMode::kEcho:
      return pending_off_ < pending_.size();
    case BackendMode::kFixed:
      return owed_ > 0;
    case BackendMode::kVerify:
      return report_off_ < kVerifyReportSize;
    case BackendMode::kSource:
      return !read_eof_;
    case BackendMode::kSink:
      return false;
  }
  return false;
}

bool Backend::Conn::WantsInput() const {
  if (read_eof_) return false;
  if (mode_ == BackendMode::kEcho) return pending_off_ >= pending_.size();  // backpressure
  if (mode_ == BackendMode::kFixed) return owed_ < kMaxOwed;
  return true;
}

void Backend::Conn::Pump() {
  if (closed_) return;
  if (watch_.error()) {
    int err = SocketError(fd_.get());
    if (err != 0) {
      Close(/*reset=*/true);
      return;
    }
  }
  size_t read_budget = kBudget;
  size_t write_budget = kBudget;
  bool progress = true;
  while (progress && !closed_) {
    progress = false;
    if (HasOutput() && watch_.writable() && write_budget > 0) progress |= WriteSome(&write_budget);
    if (closed_) return;
    if (WantsInput() && watch_.readable() && read_budget > 0) progress |= ReadSome(&read_budget);
    if (closed_) return;
    if (read_eof_ && !HasOutput()) {
      if (mode_ == BackendMode::kVerify && checker_ && checker_->mismatches() == 0) {
        w_.verified.Add(1);
      }
      Close(/*reset=*/false);
      return;
    }
  }
  if ((write_budget == 0 && HasOutput() && watch_.writable()) ||
      (read_budget == 0 && WantsInput() && watch_.readable())) {
    w_.loop.ScheduleReady(this);
  }
}

ssize_t Backend::Conn::Send(const uint8_t* data, size_t len) {
  for (;;) {
    SysResult r = w_.loop.sys().Send(fd_.get(), data, len);
    if (r.rc >= 0) {
      if (r.rc == 0) watch_.clear_writable();
      w_.bytes_out.Add(static_cast<uint64_t>(r.rc));
      return r.rc;
    }
    if (r.err == EINTR) continue;
    if (r.would_block()) {
      watch_.clear_writable();
      return 0;
    }
    Close(/*reset=*/true);
    return -1;
  }
}

bool Backend::Conn::WriteSome(size_t* budget) {
  const uint8_t* data = nullptr;
  size_t len = 0;
  switch (mode_) {
    case BackendMode::kEcho:
      data = pending_.data() + pending_off_;
      len = pending_.size() - pending_off_;
      break;
    case BackendMode::kFixed:
      data = Filler();
      len = static_cast<size_t>(std::min<uint64_t>(owed_, kFillerSize));
      break;
    case BackendMode::kVerify:
      data = report_ + report_off_;
      len = kVerifyReportSize - report_off_;
      break;
    case BackendMode::kSource:
      data = writer_.Next(std::min(*budget, kReadSize), &len);
      break;
    case BackendMode::kSink:
      return false;
  }
  ssize_t n = Send(data, std::min(len, *budget));
  if (n <= 0) return false;
  const size_t sent = static_cast<size_t>(n);
  *budget -= std::min(*budget, sent);
  switch (mode_) {
    case BackendMode::kEcho:
      pending_off_ += sent;
      if (pending_off_ == pending_.size()) {
        pending_.clear();
        pending_.shrink_to_fit();  // idle connections hold no buffer
        pending_off_ = 0;
      }
      break;
    case BackendMode::kFixed:
      owed_ -= sent;
      break;
    case BackendMode::kVerify:
      report_off_ += sent;
      break;
    case BackendMode::kSource:
      writer_.Advance(sent);
      break;
    case BackendMode::kSink:
      break;
  }
  return true;
}

bool Backend::Conn::ReadSome(size_t* budget) {
  for (;;) {
    size_t want = std::min(w_.scratch.size(), *budget);
    SysResult r = w_.loop.sys().Read(fd_.get(), w_.scratch.data(), want);
    if (r.rc > 0) {
      w_.bytes_in.Add(static_cast<uint64_t>(r.rc));
      *budget -= std::min(*budget, static_cast<size_t>(r.rc));
      OnInput(w_.scratch.data(), static_cast<size_t>(r.rc));
      return true;
    }
    if (r.rc == 0) {
      OnEof();
      return true;
    }
    if (r.err == EINTR) continue;
    if (r.would_block()) {
      watch_.clear_readable();
      return false;
    }
    Close(/*reset=*/true);
    return false;
  }
}

void Backend::Conn::OnInput(const uint8_t* data, size_t len) {
  switch (mode_) {
    case BackendMode::kSink:
    case BackendMode::kSource:
      return;
    case BackendMode::kVerify: {
      if (!checker_) checker_.emplace();
      uint64_t before = checker_->mismatches();
      checker_->Feed(data, len);
      w_.mismatches.Add(checker_->mismatches() - before);
      return;
    }
    case BackendMode::kFixed: {
      partial_ += len;
      owed_ += (partial_ / config_.req) * config_.resp;
      partial_ %= config_.req;
      return;
    }
    case BackendMode::kEcho: {
      // Straight back out of the scratch buffer; only what the socket does
      // not take is copied and held (which also pauses reading).
      size_t sent = 0;
      if (watch_.writable()) {
        ssize_t n = Send(data, len);
        if (n < 0) return;
        sent = static_cast<size_t>(n);
      }
      if (sent < len) {
        pending_.assign(data + sent, data + len);
        pending_off_ = 0;
      }
      return;
    }
  }
}

void Backend::Conn::OnEof() {
  read_eof_ = true;
  if (mode_ == BackendMode::kVerify) {
    if (!checker_) checker_.emplace();
    VerifyReport report{checker_->bytes(), checker_->mismatches(), checker_->first_mismatch()};
    EncodeVerifyReport(report, report_);
    report_off_ = 0;
    if (report.mismatches > 0) LogMismatch();
  }
}

void Backend::Conn::LogMismatch() const {
  if (g_mismatch_logs.fetch_add(1) >= kMaxMismatchLogs) return;
  std::fprintf(stderr,
               "zrelay-load backend: stream %016" PRIx64 ": %" PRIu64 " of %" PRIu64
               " bytes mismatched, first at offset %" PRIu64 "\n",
               checker_->key().value_or(0), checker_->mismatches(), checker_->bytes(),
               checker_->first_mismatch());
}

// ---- Backend ---------------------------------------------------------------

Backend::Backend(WorkerPool& pool, const Config& config) : pool_(pool), config_(config) {
  for (size_t i = 0; i < pool.size(); ++i) {
    workers_.push_back(std::make_unique<WorkerState>(pool.loop(i), i));
  }
}

Result<std::unique_ptr<Backend>> Backend::Start(WorkerPool& pool, const Config& config) {
  std::unique_ptr<Backend> backend(new Backend(pool, config));
  ListenerOptions options;
  options.address = config.listen;
  auto listener = Listener::Start(pool, options, backend.get());
  if (!listener.ok()) return listener.error();
  backend->listener_ = std::move(listener).value();
  return backend;
}

Backend::~Backend() { Stop(); }

void Backend::OnAccept(size_t worker, UniqueFd fd, const Address&) {
  WorkerState& w = *workers_[worker];
  w.accepted.Add(1);
  (void)SetNoDelay(fd.get());
  uint64_t key = Mix64((static_cast<uint64_t>(worker) << 48) + w.next_key++ +
                       static_cast<uint64_t>(Clock::now().time_since_epoch().count()));
  auto* conn = new Conn(w, config_, std::move(fd), key);
  conn->next = w.head;
  if (w.head) w.head->prev = conn;
  w.head = conn;
  if (!conn->Register().ok()) {
    conn->Close(/*reset=*/true);
    return;
  }
  // Bytes (or a source's writability) may be there already: edge-triggered
  // registration reports them, so nothing more to do here.
}

void Backend::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (listener_) listener_->Stop();
  pool_.RunOnEach([this](size_t worker) {
    WorkerState& w = *workers_[worker];
    while (w.head != nullptr) w.head->Close(/*reset=*/true, /*count=*/false);
  });
}

BackendTotals Backend::Totals() const {
  BackendTotals t;
  for (const auto& w : workers_) {
    t.accepted += w->accepted.Get();
    t.active += w->accepted.Get() - w->closed.Get();
    t.bytes_in += w->bytes_in.Get();
    t.bytes_out += w->bytes_out.Get();
    t.verified += w->verified.Get();
    t.mismatches += w->mismatches.Get();
    t.resets += w->resets.Get();
  }
  return t;
}

}  // namespace zrelay::load
