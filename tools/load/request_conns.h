// The request/response connections: rr, connect and idle.
//
//   RrConn       one long connection: request, wait for the response, record
//                its latency, repeat until the run's time or count is done.
//   ConnectConn  one slot of connect concurrency: connect, one exchange,
//                close, repeat; latency covers connect (+ TLS handshake) and
//                the exchange. Errors are counted by kind and the slot tries
//                again after a short pause, so a dead target cannot spin.
//   IdleConn     connect, one exchange that proves the path works end to
//                end (through a relay: that its backend leg is up too), then
//                hold the connection idle until the run ends.
#pragma once

#include "tools/load/client_conn.h"
#include "tools/load/exchange.h"

namespace zrelay::load {

class RrConn final : public ClientConn {
 public:
  using ClientConn::ClientConn;
  void Start() override { Connect(); }

 private:
  void OnConnected() override { NextRequest(); }
  void Pump() override;
  void NextRequest();

  Exchange exchange_;
  TimePoint started_{};
};

class ConnectConn final : public ClientConn {
 public:
  using ClientConn::ClientConn;
  void Start() override { Next(); }

 private:
  void OnConnected() override;
  void Pump() override;
  void OnFailed() override;
  void OnTimerFired() override;
  void OnReadyClosed() override;
  void Next();

  Exchange exchange_;
  TimePoint started_{};
  bool backoff_ = false;  // the timer is the pause after an error
  bool restart_ = false;  // the ready list will start the next connection
};

class IdleConn final : public ClientConn {
 public:
  using ClientConn::ClientConn;
  void Start() override { Connect(); }

 private:
  void OnConnected() override;
  void Pump() override;
  void OnFailed() override;
  void Hold();

  Exchange exchange_;
  bool holding_ = false;
};

}  // namespace zrelay::load
