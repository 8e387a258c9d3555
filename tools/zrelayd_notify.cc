#include "tools/zrelayd_notify.h"

#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "tools/log/log.h"

namespace zrelay {
namespace {

void Notify(const std::string& state) {
  // unset_environment = 0: a zrelayd started for an upgrade inherits
  // NOTIFY_SOCKET and reports to the same service.
  int sent = sd_notify(0, state.c_str());
  if (sent < 0) Logf("sd_notify: %s", std::strerror(-sent));
}

// Set once this process handed the service to another (NotifyMainPid).
std::atomic<bool> handed_over{false};

}  // namespace

void NotifyReady(const std::string& status) { Notify("READY=1\nSTATUS=" + status); }

void NotifyReloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  unsigned long long usec = static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                            static_cast<unsigned long long>(now.tv_nsec) / 1000ULL;
  Notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

void NotifyStopping() {
  if (handed_over.load()) return;  // the service goes on, in the new process
  Notify("STOPPING=1");
}

void NotifyMainPid(pid_t pid) {
  if (pid != ::getpid()) handed_over.store(true);
  Notify("MAINPID=" + std::to_string(pid));
}

}  // namespace zrelay
