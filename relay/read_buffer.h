// ReadBuffer: bytes read from a connection and not yet handed to a reader,
// with the cuts a protocol phase asks for (a line, n bytes, what is there).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace zrelay {

class ReadBuffer {
 public:
  size_t size() const { return data_.size() - start_; }
  bool empty() const { return size() == 0; }

  // Room for `n` more bytes at the end: write into it, then Commit() what
  // was actually filled (possibly less, possibly nothing).
  char* Reserve(size_t n);
  void Commit(size_t n);

  enum class LineStatus { kLine, kNeedMore, kTooLong };
  // Takes one line: the bytes before the first "\n" (and without a "\r"
  // just before it), the "\n" consumed too. kTooLong when the first
  // `max_line` bytes hold no "\n" (the buffer is left as it is).
  LineStatus TakeLine(size_t max_line, std::string& line);
  // Takes the first `n` bytes (n <= size()).
  std::string Take(size_t n);
  std::string TakeAll() { return Take(size()); }

 private:
  std::string data_;
  size_t start_ = 0;     // bytes before it were taken already
  size_t reserved_ = 0;  // bytes at the end handed out by Reserve()
  size_t searched_ = 0;  // bytes after start_ known to hold no "\n"
};

}  // namespace zrelay
