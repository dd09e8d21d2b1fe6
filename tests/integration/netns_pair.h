// Two network namespaces joined by a veth pair, with names known in advance, for the filter and
// namespace tests; and UDP request/response traffic between threads that enter them with setns().
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace netlatd::test {

// ip netns nlt-<pid>-a (10.78.0.1/30 on veth nlt<pid>a) <-> nlt-<pid>-b (10.78.0.2/30 on
// nlt<pid>b). The destructor deletes both namespaces (the veth pair goes with them), on failure
// too.
class NetnsPair {
  public:
    NetnsPair() {
        const std::string id = std::to_string(getpid());
        ns_a = "nlt-" + id + "-a";
        ns_b = "nlt-" + id + "-b";
        veth_a = "nlt" + id + "a";
        veth_b = "nlt" + id + "b";
        remove();  // leftovers of a killed run with the same pid
        const std::vector<std::vector<std::string>> steps = {
            {"ip", "netns", "add", ns_a},
            {"ip", "netns", "add", ns_b},
            {"ip", "link", "add", veth_a, "netns", ns_a, "type", "veth", "peer", "name", veth_b,
             "netns", ns_b},
            {"ip", "-n", ns_a, "addr", "add", addr_a + "/30", "dev", veth_a},
            {"ip", "-n", ns_b, "addr", "add", addr_b + "/30", "dev", veth_b},
            {"ip", "-n", ns_a, "link", "set", veth_a, "up"},
            {"ip", "-n", ns_b, "link", "set", veth_b, "up"},
            {"ip", "-n", ns_a, "link", "set", "lo", "up"},
            {"ip", "-n", ns_b, "link", "set", "lo", "up"},
        };
        for (const auto& step : steps) {
            auto r = run_command(step);
            if (r.exit_code != 0) {
                remove();
                std::string cmd;
                for (const auto& w : step) cmd += w + " ";
                throw std::runtime_error(cmd + "failed: " + r.err);
            }
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
    std::string addr_a = "10.78.0.1", addr_b = "10.78.0.2";
};

// `messages` UDP requests of 64 bytes from a client thread to a server thread that echoes each,
// one at a time with a 200 us gap. Each thread first enters its namespace (a path under
// /run/netns; empty: stays in the caller's). Returns the number of replies received.
inline int udp_echo(const std::string& client_ns, const std::string& server_ns,
                    const std::string& server_addr, int port, int messages) {
    auto enter = [](const std::string& ns) {
        if (ns.empty()) return;
        int fd = open(ns.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) throw std::runtime_error("setns " + ns);
        close(fd);
    };
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
