// The upgrade socket's path in the file system: who may bind it, and when.
//
// A path left by a process that crashed is a socket file nobody listens on:
// it is replaced. A path a live process serves (a connect succeeds) is never
// taken: two zrelayds would then each believe they own the next upgrade.
#pragma once

#include <sys/types.h>

#include <string>

#include "engine/result.h"
#include "engine/unique_fd.h"

namespace zrelay::upgrade {

// A non-blocking connect to the unix stream socket at `path`. The error's
// code says why: ECONNREFUSED or ENOENT when nobody serves it, EAGAIN when
// its backlog is full (somebody does).
Result<UniqueFd> ConnectToPath(const std::string& path);

// Ok when nothing is at `path` any more: it was absent, or a stale socket
// file that is now removed. An error names the path when a live process
// serves it, or when it is not a socket (left alone).
Status ReplaceStalePath(const std::string& path);

// The listening socket of `path`, and the file bind() made (to remove it at
// the end only while it is still ours).
struct BoundPath {
  UniqueFd fd;
  dev_t device = 0;
  ino_t inode = 0;
};

// Listens on `path`, created with mode 0600 so that only this user (and
// root) can connect and take the sockets, after ReplaceStalePath.
Result<BoundPath> ListenOnPath(const std::string& path);

// Unlinks `path` if it is still the file `bound` created: after an upgrade
// the new process has put its own there.
void RemoveIfOurs(const std::string& path, const BoundPath& bound);

}  // namespace zrelay::upgrade
