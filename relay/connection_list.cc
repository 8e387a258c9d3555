#include "relay/connection_list.h"

#include "relay/connection_impl.h"

namespace zrelay {

ConnectionList::~ConnectionList() {
  // Orphan() unlinks the head; closing it may close others (their handlers
  // held them), which unlink themselves too.
  while (head_ != nullptr) head_->Orphan();
}

void ConnectionList::Add(ConnectionImpl* connection) {
  connection->list_prev = nullptr;
  connection->list_next = head_;
  if (head_ != nullptr) head_->list_prev = connection;
  head_ = connection;
}

void ConnectionList::Remove(ConnectionImpl* connection) {
  if (connection->list_prev != nullptr) {
    connection->list_prev->list_next = connection->list_next;
  } else if (head_ == connection) {
    head_ = connection->list_next;
  } else {
    return;  // not listed
  }
  if (connection->list_next != nullptr) connection->list_next->list_prev = connection->list_prev;
  connection->list_prev = connection->list_next = nullptr;
}

}  // namespace zrelay
