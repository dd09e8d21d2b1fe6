#include "topology.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <regex>
#include <stdexcept>
#include <system_error>
#include <thread>

extern char** environ;

namespace netlat_load {
namespace {

constexpr const char* kNamespacePrefix = "netlat-load-";
constexpr const char* kNetnsDir = "/run/netns";

const std::string& ip_binary() {
    static const std::string path = [] {
        for (const char* candidate : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
            if (access(candidate, X_OK) == 0) return std::string(candidate);
        }
        return std::string("ip");  // let PATH decide, and fail with a clear message if absent
    }();
    return path;
}

std::string join(const std::vector<std::string>& args) {
    std::string text = "ip";
    for (const auto& a : args) text += " " + a;
    return text;
}

void must_run_ip(const std::vector<std::string>& args) {
    std::string output;
    int status = run_ip(args, &output);
    if (status != 0) {
        while (!output.empty() && output.back() == '\n') output.pop_back();
        throw std::runtime_error("`" + join(args) + "` failed (exit " + std::to_string(status) +
                                 "): " + output);
    }
}

bool process_exists(pid_t pid) {
    return kill(pid, 0) == 0 || errno == EPERM;
}

}  // namespace

int run_ip(const std::vector<std::string>& args, std::string* output) {
    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
        throw std::system_error(errno, std::generic_category(), "pipe2");
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDERR_FILENO);

    std::vector<std::string> argv_strings{ip_binary()};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);

    pid_t pid = 0;
    // The child inherits our blocked SIGINT/SIGTERM: a Ctrl-C does not kill a half-done `ip`.
    int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(pipe_fds[1]);
    if (rc != 0) {
        close(pipe_fds[0]);
        throw std::system_error(rc, std::generic_category(),
                                "cannot run " + ip_binary() + " (iproute2 is needed for veth)");
    }
    std::string text;
    char buf[4096];
    for (;;) {
        ssize_t n = read(pipe_fds[0], buf, sizeof buf);
        if (n > 0) {
            text.append(buf, static_cast<std::size_t>(n));
        } else if (n == 0 || errno != EINTR) {
            break;
        }
    }
    close(pipe_fds[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (output != nullptr) *output = std::move(text);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

void enter_netns(const std::string& name) {
    std::string path = std::string(kNetnsDir) + "/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + path);
    int rc = setns(fd, CLONE_NEWNET);
    int saved = errno;
    close(fd);
    if (rc != 0) throw std::system_error(saved, std::generic_category(), "setns " + path);
}

std::string namespace_name(pid_t pid, char side) {
    return kNamespacePrefix + std::to_string(pid) + "-" + side;
}

VethTopology::VethTopology(int family) {
    try {
        create(family);
    } catch (...) {
        remove();
        throw;
    }
}

VethTopology::~VethTopology() {
    remove();
}

void VethTopology::create(int family) {
    const pid_t pid = getpid();
    // Locally administered MACs and private addresses (10.0.0.0/8, ULA fd00::/8) that exist only
    // inside these two namespaces.
    client_ = {namespace_name(pid, 'a'), "nl-" + std::to_string(pid) + "-a",
               family == 4 ? "10.77.0.1" : "fd00:6e6c::1", "02:6e:6c:00:00:0a"};
    server_ = {namespace_name(pid, 'b'), "nl-" + std::to_string(pid) + "-b",
               family == 4 ? "10.77.0.2" : "fd00:6e6c::2", "02:6e:6c:00:00:0b"};
    const std::string prefix = family == 4 ? "/30" : "/64";

    for (const VethEnd* end : {&client_, &server_}) {
        must_run_ip({"netns", "add", end->netns});
        created_namespaces_.push_back(end->netns);
    }
    must_run_ip({"link", "add", client_.ifname, "netns", client_.netns, "address", client_.mac,
                 "type", "veth", "peer", "name", server_.ifname, "netns", server_.netns, "address",
                 server_.mac});
    link_created_ = true;
    for (const auto& [self, peer] :
         {std::pair{&client_, &server_}, std::pair{&server_, &client_}}) {
        must_run_ip({"-n", self->netns, "link", "set", "lo", "up"});
        std::vector<std::string> addr{"-n",  self->netns, "addr", "add", self->address + prefix,
                                      "dev", self->ifname};
        if (family == 6) addr.push_back("nodad");
        must_run_ip(addr);
        // A permanent neighbour entry: no ARP/NDP exchange delays the first messages.
        must_run_ip({"-n", self->netns, "neigh", "replace", peer->address, "lladdr", peer->mac,
                     "dev", self->ifname, "nud", "permanent"});
        must_run_ip({"-n", self->netns, "link", "set", self->ifname, "up"});
    }
    wait_until_up(client_);
    wait_until_up(server_);
}

void VethTopology::wait_until_up(const VethEnd& end) {
    // The carrier (and with it the real qdisc) comes up asynchronously after `link set up`.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    std::string output;
    while (std::chrono::steady_clock::now() < deadline) {
        if (run_ip({"-n", end.netns, "-br", "link", "show", "dev", end.ifname}, &output) == 0 &&
            output.find(" UP ") != std::string::npos) {
            return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("veth " + end.ifname + " in " + end.netns +
                             " did not come up within 5 s: " + output);
}

bool VethTopology::remove() noexcept {
    bool ok = true;
    try {
        std::string output;
        if (link_created_) {
            // Deleting one end deletes the pair, at once (a namespace dies only when its last user
            // goes).
            if (run_ip({"-n", client_.netns, "link", "del", client_.ifname}, &output) != 0) {
                std::fprintf(stderr, "netlat-load: warning: deleting %s: %s",
                             client_.ifname.c_str(), output.c_str());
            }
            link_created_ = false;
        }
        while (!created_namespaces_.empty()) {
            const std::string name = created_namespaces_.back();
            created_namespaces_.pop_back();
            if (run_ip({"netns", "del", name}, &output) != 0) {
                std::fprintf(stderr, "netlat-load: error: deleting namespace %s: %s", name.c_str(),
                             output.c_str());
                ok = false;
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "netlat-load: error: removing the veth topology: %s\n", e.what());
        ok = false;
    }
    return ok;
}

std::vector<std::string> sweep_stale_namespaces() {
    std::vector<std::string> removed;
    DIR* dir = opendir(kNetnsDir);
    if (dir == nullptr) return removed;  // no named namespaces at all
    static const std::regex ours(std::string("^") + kNamespacePrefix + "([0-9]{1,9})-[ab]$");
    std::vector<std::string> stale;
    while (dirent* entry = readdir(dir)) {
        std::cmatch m;
        if (!std::regex_match(entry->d_name, m, ours)) continue;
        const long pid = std::stol(m[1].str());
        if (pid == getpid() || process_exists(static_cast<pid_t>(pid))) continue;
        stale.push_back(entry->d_name);
    }
    closedir(dir);
    for (const auto& name : stale) {
        std::string output;
        if (run_ip({"netns", "del", name}, &output) == 0) {
            removed.push_back(name);
        } else {
            std::fprintf(stderr, "netlat-load: error: deleting stale namespace %s: %s",
                         name.c_str(), output.c_str());
        }
    }
    return removed;
}

}  // namespace netlat_load
