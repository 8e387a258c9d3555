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
  ++size_;
}

void ConnectionList::DrainAll() {
  // Drain() unlinks the head; closing it may close others, as above.
  while (head_ != nullptr) head_->Drain();
}

bool ConnectionList::Remove(ConnectionImpl* connection) {
  if (connection->list_prev != nullptr) {
    connection->list_prev->list_next = connection->list_next;
  } else if (head_ == connection) {
    head_ = connection->list_next;
  } else {
    return false;  // not listed
  }
  if (connection->list_next != nullptr) connection->list_next->list_prev = connection->list_prev;
  connection->list_prev = connection->list_next = nullptr;
  --size_;
  return true;
}

}  // namespace zrelay
