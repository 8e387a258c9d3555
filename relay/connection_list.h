// ConnectionList: the Connections alive on one worker, so that a worker
// shutting down (Engine destruction) closes those still open. A handler
// that owns its own ConnectionPtr keeps that Connection alive by itself;
// closing it drops the handler and so frees it.
#pragma once

#include <cstddef>

namespace zrelay {

class ConnectionImpl;

class ConnectionList {
 public:
  ConnectionList() = default;
  ~ConnectionList();  // closes every Connection still listed, calling no handler
  ConnectionList(const ConnectionList&) = delete;
  ConnectionList& operator=(const ConnectionList&) = delete;

  void Add(ConnectionImpl* connection);
  // False (and a no-op) when `connection` is not listed.
  bool Remove(ConnectionImpl* connection);
  size_t size() const { return size_; }
  // Closes every Connection listed, as Drain()'s deadline does.
  void DrainAll();

 private:
  ConnectionImpl* head_ = nullptr;
  size_t size_ = 0;
};

}  // namespace zrelay
