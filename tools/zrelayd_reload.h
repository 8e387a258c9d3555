// zrelayd's SIGHUP with --config: read the file again and bring the running
// listeners to it, refusing no client.
//
//   ConfigReloader reloader(*engine, path, config, engine_options, ids);
//   actions.reload = [&] { reloader.Reload(); };
//
// The file is read and every TLS file it names is loaded first; any error
// there changes nothing ("reload refused: ...; still running the previous
// configuration"). Then, by listener name:
//   same name, same addresses   Engine::Reconfigure (skipped when nothing
//   and protocol                changed; a TLS listener always is: its
//                               files may have new contents)
//   same name, other addresses  Listen the new one, then Close the old
//   or another protocol         (tcp <-> udp: a new kind of socket; a line
//                               says so)
//   a name that is gone         Close (its open pairs or flows finish)
//   a new name                  Listen
// A new listener adopts the listening sockets of any address a closing
// listener of its protocol had, so a listener renamed or moved between names
// is never refused. Global keys that need a restart (workers, mode, sizes,
// user, [admin], [log], upgrade_socket, drain_grace) keep their running
// values, with a line saying so. One line per listener changed, then
// "reload done".
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "relay/relay.h"
#include "tools/config/config.h"
#include "tools/zrelayd_listeners.h"
#include "tools/zrelayd_upgrade.h"

namespace zrelay {

class ConfigReloader {
 public:
  // `running` is what zrelayd started with; its listeners[i] runs as ids[i].
  // Listeners set up on reload write their closed pairs to `access_log`
  // (null: none), as the ones started with zrelayd do.
  ConfigReloader(Engine& engine, std::string path, FileConfig running,
                 const EngineOptions& engine_options, std::vector<ListenerId> ids,
                 std::shared_ptr<const LogSink> access_log);

  // Reads the file and applies it, logging what changed. The main thread.
  void Reload();

  // The listeners running now, by name. Any thread (the upgrade server
  // hands their sockets over while a reload may be changing them).
  std::vector<NamedListener> Running() const;

 private:
  // Listens every listener of `next` that does not stay (stays[j] unset),
  // adopting the sockets of the running ones that close; their ids go to
  // next_ids. All or none: on an error the ones started are closed again.
  Status ListenNew(const FileConfig& next, const std::vector<ListenerSetup>& setups,
                   const std::vector<std::optional<size_t>>& stays,
                   const std::vector<bool>& closing, std::vector<ListenerId>& next_ids);

  Engine& engine_;
  const std::string path_;
  FileConfig running_;
  const EngineOptions engine_options_;
  std::vector<ListenerId> ids_;  // ids_[i] runs running_.listeners[i]
  // Guards running_ and ids_ against Running() (Reload() writes them on the
  // main thread only).
  mutable std::mutex mu_;
  const std::shared_ptr<const LogSink> access_log_;
};

}  // namespace zrelay
