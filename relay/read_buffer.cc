#include "relay/read_buffer.h"

#include <cstring>

namespace zrelay {

char* ReadBuffer::Reserve(size_t n) {
  // Taken bytes are dropped once they are most of the buffer, so a long
  // exchange of short lines keeps the buffer small without a move per line.
  if (start_ > 0 && start_ >= data_.size() / 2) {
    data_.erase(0, start_);
    start_ = 0;
  }
  const size_t used = data_.size();
  data_.resize(used + n);
  reserved_ = n;
  return data_.data() + used;
}

void ReadBuffer::Commit(size_t n) {
  if (n > reserved_) n = reserved_;
  data_.resize(data_.size() - reserved_ + n);
  reserved_ = 0;
}

ReadBuffer::LineStatus ReadBuffer::TakeLine(size_t max_line, std::string& line) {
  const char* begin = data_.data() + start_;
  const size_t limit = size() < max_line ? size() : max_line;
  const void* nl =
      searched_ < limit ? std::memchr(begin + searched_, '\n', limit - searched_) : nullptr;
  if (nl == nullptr) {
    searched_ = limit;
    return size() >= max_line ? LineStatus::kTooLong : LineStatus::kNeedMore;
  }
  size_t len = static_cast<const char*>(nl) - begin;
  line = Take(len + 1);
  line.pop_back();  // "\n"
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return LineStatus::kLine;
}

std::string ReadBuffer::Take(size_t n) {
  std::string out = data_.substr(start_, n);
  start_ += n;
  searched_ = 0;
  if (start_ == data_.size()) {
    data_.clear();
    start_ = 0;
  }
  return out;
}

}  // namespace zrelay
