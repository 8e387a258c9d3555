#include "ssl/prefixed_bio.h"

#include <openssl/bio.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <utility>

namespace zrelay {
namespace {

// The filter's state: the bytes not yet read.
struct Prefix {
  std::string bytes;
  size_t offset = 0;
  size_t left() const { return bytes.size() - offset; }
};

Prefix* PrefixOf(BIO* bio) { return static_cast<Prefix*>(BIO_get_data(bio)); }

int PrefixRead(BIO* bio, char* out, int len) {
  BIO_clear_retry_flags(bio);
  Prefix* prefix = PrefixOf(bio);
  if (prefix != nullptr && prefix->left() > 0) {
    if (len <= 0) return 0;
    const size_t n = std::min(prefix->left(), static_cast<size_t>(len));
    std::memcpy(out, prefix->bytes.data() + prefix->offset, n);
    prefix->offset += n;
    if (prefix->left() == 0) *prefix = Prefix();  // all read: free the bytes
    return static_cast<int>(n);
  }
  BIO* next = BIO_next(bio);
  if (next == nullptr) return 0;
  const int ret = BIO_read(next, out, len);
  BIO_copy_next_retry(bio);  // the socket's EAGAIN is the caller's WANT_READ
  return ret;
}

int PrefixWrite(BIO* bio, const char* in, int len) {
  BIO_clear_retry_flags(bio);
  BIO* next = BIO_next(bio);
  if (next == nullptr) return 0;
  const int ret = BIO_write(next, in, len);
  BIO_copy_next_retry(bio);
  return ret;
}

long PrefixCtrl(BIO* bio, int cmd, long num, void* ptr) {
  BIO* next = BIO_next(bio);
  Prefix* prefix = PrefixOf(bio);
  switch (cmd) {
    case BIO_CTRL_PENDING: {  // bytes readable without touching the socket
      const long own = prefix != nullptr ? static_cast<long>(prefix->left()) : 0;
      return own + (next != nullptr ? BIO_ctrl(next, cmd, num, ptr) : 0);
    }
    case BIO_CTRL_DUP:
      return 0;  // never duplicated: the bytes must be read exactly once
    case BIO_CTRL_FLUSH: {
      if (next == nullptr) return 0;
      BIO_clear_retry_flags(bio);
      const long ret = BIO_ctrl(next, cmd, num, ptr);
      BIO_copy_next_retry(bio);
      return ret;
    }
    default:
      return next != nullptr ? BIO_ctrl(next, cmd, num, ptr) : 0;
  }
}

int PrefixCreate(BIO* bio) {
  BIO_set_data(bio, nullptr);
  BIO_set_init(bio, 1);
  return 1;
}

int PrefixDestroy(BIO* bio) {
  if (bio == nullptr) return 0;
  delete PrefixOf(bio);
  BIO_set_data(bio, nullptr);
  return 1;
}

const BIO_METHOD* PrefixMethod() {
  // Made once, on first use (C++ static init is thread-safe), and kept for
  // the life of the process, as OpenSSL's own methods are.
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "zrelay read prefix");
    if (m == nullptr) return m;
    BIO_meth_set_read(m, PrefixRead);
    BIO_meth_set_write(m, PrefixWrite);
    BIO_meth_set_ctrl(m, PrefixCtrl);
    BIO_meth_set_create(m, PrefixCreate);
    BIO_meth_set_destroy(m, PrefixDestroy);
    return m;
  }();
  return method;
}

}  // namespace

bool PrependReadBytes(SSL* ssl, std::string bytes) {
  if (bytes.empty()) return true;
  BIO* socket_bio = SSL_get_rbio(ssl);
  const BIO_METHOD* method = PrefixMethod();
  if (socket_bio == nullptr || method == nullptr) return false;
  BIO* filter = BIO_new(method);
  if (filter == nullptr) return false;
  BIO_set_data(filter, new Prefix{std::move(bytes), 0});
  // The chain takes a reference of its own to the socket BIO: SSL_set0_rbio
  // drops the SSL's read reference, and the write side keeps its own.
  BIO_up_ref(socket_bio);
  BIO_push(filter, socket_bio);
  SSL_set0_rbio(ssl, filter);
  return true;
}

}  // namespace zrelay
