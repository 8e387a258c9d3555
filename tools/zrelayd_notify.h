// zrelayd's state for systemd (Type=notify, tools/zrelayd.service), sent
// with sd_notify(3). Each call is a no-op when NOTIFY_SOCKET is unset (not
// started by systemd); a notification that cannot be sent is logged, and
// zrelayd carries on.
//
//   NotifyReady("2 listeners, mode splice, 4 workers");  // every listener bound
//   NotifyReloading();  ... reload ...  NotifyReady(status);  // SIGHUP
//   NotifyStopping();   // a drain starts
//   NotifyMainPid(new_pid);  // an upgrade: the new zrelayd is the service now
#pragma once

#include <sys/types.h>

#include <string>

namespace zrelay {

// READY=1 and STATUS=`status`: start-up (systemctl start returns), or the
// end of a reload.
void NotifyReady(const std::string& status);

// RELOADING=1 (with MONOTONIC_USEC=, as systemd 253 and later want): a
// reload starts; NotifyReady() says it is over.
void NotifyReloading();

// STOPPING=1: the drain started; systemd waits for the exit.
void NotifyStopping();

// MAINPID=`pid`: the process systemd should watch from now on (the zrelayd
// an upgrade handed the listening sockets to). The old process sends it;
// systemd takes it when that process runs in the service's cgroup (a SIGUSR2
// upgrade starts it there). From then on this process's NotifyStopping()
// says nothing: its drain is not the service stopping.
void NotifyMainPid(pid_t pid);

}  // namespace zrelay
