// ConnectionList: the Connections alive on one worker, so that a worker
// shutting down (Engine destruction) closes those still open. A handler
// that owns its own ConnectionPtr keeps that Connection alive by itself;
// closing it drops the handler and so frees it.
#pragma once

namespace zrelay {

class ConnectionImpl;

class ConnectionList {
 public:
  ConnectionList() = default;
  ~ConnectionList();  // closes every Connection still listed, calling no handler
  ConnectionList(const ConnectionList&) = delete;
  ConnectionList& operator=(const ConnectionList&) = delete;

  void Add(ConnectionImpl* connection);
  void Remove(ConnectionImpl* connection);  // a no-op when not listed

 private:
  ConnectionImpl* head_ = nullptr;
};

}  // namespace zrelay
