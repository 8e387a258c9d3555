// OpenSSL's per-thread error queue, turned into text.
//
// OpenSSL reports failures by pushing entries onto a thread-local queue. An
// entry left behind is inherited by the next SSL call on that thread: it can
// turn a later, unrelated SSL_get_error() into SSL_ERROR_SSL and leak an old
// connection's reason into a new connection's message. Every failure path in
// ssl/ therefore drains the queue with TakeOpenSslErrors().
#pragma once

#include <string>

namespace zrelay {

// Pops every entry of this thread's OpenSSL error queue and returns them as
// "error:0A00010B:SSL routines::wrong version number; error:..." (each with
// its extra data, e.g. a file name, in parentheses). Empty when the queue was
// empty. Postcondition: the queue is empty.
std::string TakeOpenSslErrors();

// Appends `more` to `text`, separated by "; " when both are non-empty.
void AppendDetail(std::string& text, const std::string& more);

}  // namespace zrelay
