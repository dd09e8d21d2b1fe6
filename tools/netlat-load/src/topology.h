// The veth topology: two network namespaces joined by a veth pair, made with iproute2's `ip`
// for one run and always removed (normal end, failure, SIGINT/SIGTERM; --cleanup after SIGKILL).
// It adds no routes beyond the connected ones, no ip rules, no tc or netfilter state: everything
// lives inside the two namespaces, so deleting them leaves nothing behind.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace netlat_load {

// Runs `ip args...` (signals stay blocked in the child); returns exit status, output in *output.
int run_ip(const std::vector<std::string>& args, std::string* output);

// Moves the calling thread (only) into the named namespace under /run/netns.
void enter_netns(const std::string& name);

struct VethEnd {
    std::string netns;    // /run/netns/<netns>
    std::string ifname;   // the veth inside it
    std::string address;  // without prefix length
    std::string mac;
};

// Namespace names carry the creating pid: netlat-load-<pid>-a (client), netlat-load-<pid>-b
// (server). Each end is in its own namespace from creation, never in the caller's.
std::string namespace_name(pid_t pid, char side);

class VethTopology {
  public:
    // Creates everything for the given IP family. On failure removes what it made and throws.
    explicit VethTopology(int family);
    ~VethTopology();
    VethTopology(const VethTopology&) = delete;
    VethTopology& operator=(const VethTopology&) = delete;

    const VethEnd& client() const { return client_; }
    const VethEnd& server() const { return server_; }

    // Deletes the veth pair and both namespaces; safe to call twice; never throws.
    // Returns false (after reporting on stderr) if something could not be removed.
    bool remove() noexcept;

  private:
    void create(int family);
    void wait_until_up(const VethEnd& end);

    VethEnd client_;
    VethEnd server_;
    std::vector<std::string> created_namespaces_;
    bool link_created_ = false;
};

// Deletes netlat-load namespaces whose creating process no longer exists (a run killed with
// SIGKILL). Returns the names removed.
std::vector<std::string> sweep_stale_namespaces();

}  // namespace netlat_load
