// Test topologies in network namespaces the test creates and always removes: two namespaces
// joined by a veth pair (or by two NICs wired to each other), and on it a bridge or a router
// namespace; UDP request/response traffic between threads that enter them with setns().
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace netlatd::test {

// Runs each command; the first that fails throws, naming the command and its error output.
inline void run_steps(const std::vector<std::vector<std::string>>& steps) {
    for (const auto& step : steps) {
        auto r = run_command(step);
        if (r.exit_code != 0) {
            std::string cmd;
            for (const auto& w : step) cmd += w + " ";
            throw std::runtime_error(cmd + "failed: " + r.err);
        }
    }
}

// Moves the calling thread into the network namespace at `path` (a path under /run/netns; empty:
// stays where it is).
inline void enter_netns(const std::string& path) {
    if (path.empty()) return;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && setns(fd, CLONE_NEWNET) == 0;
    if (fd >= 0) close(fd);
    if (!ok) throw std::runtime_error("setns " + path);
}

// Two network devices of the current namespace wired to each other (by name).
struct Nics {
    std::string a, b;
};

// ip netns nlt-<pid>-a (10.78.0.1/30 on veth nlt<pid>a) <-> nlt-<pid>-b (10.78.0.2/30 on
// nlt<pid>b); a `tag` goes after the pid, for a second pair, and `subnet` replaces 10.78.0. With
// `nics`, those two devices move into the namespaces (renamed nlt<pid>a and nlt<pid>b) instead of
// a new veth pair. The destructor deletes both namespaces, on failure too: a veth pair goes with
// them, NICs go back to the initial namespace (keeping the new names).
class NetnsPair {
  public:
    explicit NetnsPair(const std::string& tag = "", const std::string& subnet = "10.78.0",
                       const Nics* nics = nullptr)
        : addr_a(subnet + ".1"), addr_b(subnet + ".2") {
        const std::string id = std::to_string(getpid()) + tag;
        ns_a = "nlt-" + id + "-a";
        ns_b = "nlt-" + id + "-b";
        veth_a = "nlt" + id + "a";
        veth_b = "nlt" + id + "b";
        remove();  // leftovers of a killed run with the same pid
        try {
            run_steps({{"ip", "netns", "add", ns_a}, {"ip", "netns", "add", ns_b}});
            if (nics)
                run_steps({{"ip", "link", "set", "dev", nics->a, "netns", ns_a, "name", veth_a},
                           {"ip", "link", "set", "dev", nics->b, "netns", ns_b, "name", veth_b}});
            else
                run_steps({{"ip", "link", "add", veth_a, "netns", ns_a, "type", "veth", "peer",
                            "name", veth_b, "netns", ns_b}});
            run_steps({
                {"ip", "-n", ns_a, "addr", "add", addr_a + "/30", "dev", veth_a},
                {"ip", "-n", ns_b, "addr", "add", addr_b + "/30", "dev", veth_b},
                {"ip", "-n", ns_a, "link", "set", veth_a, "up"},
                {"ip", "-n", ns_b, "link", "set", veth_b, "up"},
                {"ip", "-n", ns_a, "link", "set", "lo", "up"},
                {"ip", "-n", ns_b, "link", "set", "lo", "up"},
            });
        } catch (...) {
            remove();
            throw;
        }
    }
    ~NetnsPair() { remove(); }
    NetnsPair(const NetnsPair&) = delete;
    NetnsPair& operator=(const NetnsPair&) = delete;

    void remove() {
        run_command({"ip", "netns", "del", ns_a});
        run_command({"ip", "netns", "del", ns_b});
    }
    static std::string path(const std::string& ns) { return "/run/netns/" + ns; }
    // The namespace's inode, as netlatd's filters.netns and netns label use it.
    static unsigned long inode(const std::string& ns) {
        struct stat st {};
        if (stat(path(ns).c_str(), &st) != 0) throw std::runtime_error("stat " + path(ns));
        return st.st_ino;
    }

    std::string ns_a, ns_b, veth_a, veth_b;
    std::string addr_a, addr_b;
};

// The NIC pair of the VM tier's paths guest (tests/vm/README.md): two virtio-net NICs on one qemu
// hub, so that each frame one sends reaches the other, known by these MAC addresses.
inline const std::vector<std::string> kNicPairMacs = {"52:54:00:4e:4c:01", "52:54:00:4e:4c:02"};

// The names of the NIC pair's devices in the current namespace, if both are there with the
// virtio_net driver. With `wait`, waits up to 10 s for them: a pair whose namespaces another test
// process deleted comes back to the initial namespace a moment later.
inline std::optional<Nics> virtio_nic_pair(bool wait) {
    namespace fs = std::filesystem;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
        std::vector<std::string> found(kNicPairMacs.size());
        std::error_code ec;
        for (const auto& dev : fs::directory_iterator("/sys/class/net", ec)) {
            std::string mac = read_file(dev.path() / "address");
            while (!mac.empty() && mac.back() == '\n') mac.pop_back();
            const auto driver = fs::read_symlink(dev.path() / "device" / "driver", ec);
            if (ec || driver.filename() != "virtio_net") continue;
            for (size_t i = 0; i < kNicPairMacs.size(); i++)
                if (mac == kNicPairMacs[i]) found[i] = dev.path().filename();
        }
        if (!found[0].empty() && !found[1].empty()) return Nics{found[0], found[1]};
        if (!wait || std::chrono::steady_clock::now() > deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

// A bridge in namespace A with A's veth as its port (host -> bridge -> veth -> pod namespace B):
// A's address moves from the veth to the bridge br0.
struct BridgedPair : NetnsPair {
    BridgedPair() {
        run_steps({{"ip", "-n", ns_a, "link", "add", "br0", "type", "bridge"},
                   {"ip", "-n", ns_a, "addr", "del", addr_a + "/30", "dev", veth_a},
                   {"ip", "-n", ns_a, "link", "set", veth_a, "master", "br0"},
                   {"ip", "-n", ns_a, "addr", "add", addr_a + "/30", "dev", "br0"},
                   {"ip", "-n", ns_a, "link", "set", "br0", "up"}});
    }
};

// The host leg of a container path: a veth pair from the initial (host) namespace, end nlth<pid>
// (10.78.2.1/30), to namespace nlt-<pid>-pod, end nltp<pid> (10.78.2.2/30). With `bridged`, the
// host end is a port of bridge nltb<pid> in the host namespace, which holds the address. The
// destructor deletes the namespace (the veth pair goes with it) and the bridge, on failure too.
class HostPodPair {
  public:
    explicit HostPodPair(bool bridged)
        : ns_pod("nlt-" + std::to_string(getpid()) + "-pod"),
          veth_host("nlth" + std::to_string(getpid())),
          veth_pod("nltp" + std::to_string(getpid())),
          bridge(bridged ? "nltb" + std::to_string(getpid()) : "") {
        remove();  // leftovers of a killed run with the same pid
        const std::string& host_dev = bridged ? bridge : veth_host;
        try {
            run_steps({{"ip", "netns", "add", ns_pod},
                       {"ip", "link", "add", veth_host, "type", "veth", "peer", "name", veth_pod,
                        "netns", ns_pod}});
            if (bridged)
                run_steps({{"ip", "link", "add", bridge, "type", "bridge"},
                           {"ip", "link", "set", veth_host, "master", bridge},
                           {"ip", "link", "set", bridge, "up"}});
            run_steps({{"ip", "addr", "add", addr_host + "/30", "dev", host_dev},
                       {"ip", "-n", ns_pod, "addr", "add", addr_pod + "/30", "dev", veth_pod},
                       {"ip", "link", "set", veth_host, "up"},
                       {"ip", "-n", ns_pod, "link", "set", veth_pod, "up"},
                       {"ip", "-n", ns_pod, "link", "set", "lo", "up"}});
        } catch (...) {
            remove();
            throw;
        }
    }
    ~HostPodPair() { remove(); }
    HostPodPair(const HostPodPair&) = delete;
    HostPodPair& operator=(const HostPodPair&) = delete;

    void remove() {
        run_command({"ip", "netns", "del", ns_pod});
        run_command({"ip", "link", "del", veth_host});  // if it never reached the namespace
        if (!bridge.empty()) run_command({"ip", "link", "del", bridge});
    }

    static constexpr const char* kHostNetns = "/proc/self/ns/net";
    const std::string ns_pod, veth_host, veth_pod, bridge;
    const std::string addr_host = "10.78.2.1", addr_pod = "10.78.2.2";
};

// A -> router R (forwarding) -> B: `left` joins A (10.78.0.1) and R (10.78.0.2), `right` joins R
// (10.78.1.1) and B (10.78.1.2); A and B route the other's subnet through R.
struct RoutedPath {
    NetnsPair left{"l", "10.78.0"}, right{"r", "10.78.1"};
    const std::string& ns_a = left.ns_a;
    const std::string& ns_b = right.ns_b;
    const std::string& addr_a = left.addr_a;
    const std::string& addr_b = right.addr_b;
    RoutedPath() {
        // The router is one namespace: right's A side moves into left's B side.
        run_steps(
            {{"ip", "-n", right.ns_a, "link", "set", right.veth_a, "netns", left.ns_b},
             {"ip", "-n", left.ns_b, "addr", "add", right.addr_a + "/30", "dev", right.veth_a},
             {"ip", "-n", left.ns_b, "link", "set", right.veth_a, "up"},
             {"ip", "netns", "exec", left.ns_b, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
             {"ip", "-n", ns_a, "route", "add", "10.78.1.0/30", "via", left.addr_b},
             {"ip", "-n", ns_b, "route", "add", "10.78.0.0/30", "via", right.addr_a}});
    }
    const std::string& ns_router() const { return left.ns_b; }
};

// `messages` UDP requests of 64 bytes from a client thread to a server thread that echoes each,
// one at a time with a 200 us gap. Each thread first enters its namespace (a path under
// /run/netns; empty: stays in the caller's). Returns the number of replies received.
inline int udp_echo(const std::string& client_ns, const std::string& server_ns,
                    const std::string& server_addr, int port, int messages) {
    const auto enter = enter_netns;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, server_addr.c_str(), &addr.sin_addr);
    std::atomic<bool> bound{false}, failed{false};
    std::thread server([&] {
        try {
            enter(server_ns);
        } catch (...) {
            failed = true;
            return;
        }
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        timeval timeout{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
            failed = true;
            close(fd);
            return;
        }
        bound = true;
        char buf[64];
        for (int i = 0; i < messages; ++i) {
            sockaddr_in peer{};
            socklen_t len = sizeof(peer);
            ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&peer), &len);
            if (n <= 0) break;
            sendto(fd, buf, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&peer), len);
        }
        close(fd);
    });
    int replies = 0;
    std::thread client([&] {
        try {
            enter(client_ns);
        } catch (...) {
            failed = true;
            return;
        }
        while (!bound && !failed) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (failed) return;
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        timeval timeout{1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
        connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
        char buf[64] = {};
        for (int i = 0; i < messages; ++i) {
            if (send(fd, buf, sizeof(buf), 0) != sizeof(buf)) break;
            if (recv(fd, buf, sizeof(buf), 0) == sizeof(buf)) ++replies;
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
        close(fd);
    });
    client.join();
    server.join();
    if (failed) throw std::runtime_error("udp_echo: could not enter a namespace or bind");
    return replies;
}

// Waits until netlatd's log contains `text` (it discovers namespaces every drain interval).
inline bool wait_for_log(Daemon& d, const std::string& text,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (d.log().find(text) != std::string::npos) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
}

}  // namespace netlatd::test
