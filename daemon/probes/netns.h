// Network namespaces. Tracepoints see every namespace, but a netfilter hook belongs to the
// namespace it was registered in: netlatd hooks each namespace it finds (through its processes and
// /run/netns), new ones as they appear, and releases the hooks of those that go away.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace netlatd {

using NetnsId = ino_t;  // the namespace's inode number, as in /proc/PID/ns/net and the netns label

// Every network namespace visible now, each with a path that opens it.
std::map<NetnsId, std::string> visible_namespaces(const std::string& proc = "/proc",
                                                  const std::string& run_netns = "/run/netns");

// The namespace of this process.
NetnsId own_namespace();

// Those of `names` that are an interface in no network namespace visible now, in their order.
// Entering another namespace needs CAP_SYS_ADMIN; without it only netlatd's own is searched.
std::vector<std::string> missing_interfaces(const std::vector<std::string>& names);

// Runs fn inside the namespace at path (on a short-lived thread, so no other thread moves).
// Returns an error text, empty on success.
std::string run_in_namespace(const std::string& path, const std::function<std::string()>& fn);

// Keeps one set of fds (netfilter links) per namespace, in step with the namespaces visible.
class NamespaceHooks {
  public:
    // hook: create the links in the current namespace; returns their fds or throws.
    explicit NamespaceHooks(std::function<std::vector<int>()> hook) : hook_(std::move(hook)) {}
    ~NamespaceHooks();
    NamespaceHooks(const NamespaceHooks&) = delete;
    NamespaceHooks& operator=(const NamespaceHooks&) = delete;

    // The links of the namespace netlatd runs in, made by the caller.
    void adopt_own(std::vector<int> fds);
    // Gives up every fd (the caller closes them), e.g. to close them concurrently.
    std::vector<int> release_all();
    // Hooks new namespaces and releases vanished ones; failures are logged once per namespace.
    void sync();
    size_t hooked() const { return links_.size(); }

  private:
    std::function<std::vector<int>()> hook_;
    std::map<NetnsId, std::vector<int>> links_;
    std::set<NetnsId> failed_;  // logged already; retried when they vanish and come back
    NetnsId own_ = 0;
};

}  // namespace netlatd
