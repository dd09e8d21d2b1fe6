#include "daemon/probes/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace netlatd {

namespace fs = std::filesystem;

namespace {
NetnsId inode_of(const std::string& path) {
    struct stat st{};
    return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

void close_all(const std::vector<int>& fds) {
    for (int fd : fds) close(fd);
}
}  // namespace

std::map<NetnsId, std::string> visible_namespaces(const std::string& proc,
                                                  const std::string& run_netns) {
    std::map<NetnsId, std::string> out;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(run_netns, ec)) {
        std::string path = entry.path().string();
        if (NetnsId id = inode_of(path)) out.emplace(id, path);
    }
    for (const auto& entry : fs::directory_iterator(proc, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string path = entry.path().string() + "/ns/net";
        if (NetnsId id = inode_of(path)) out.emplace(id, path);
    }
    return out;
}

NetnsId own_namespace() { return inode_of("/proc/self/ns/net"); }

std::vector<std::string> missing_interfaces(const std::vector<std::string>& names) {
    std::vector<std::string> missing = names;
    const auto drop_found = [&missing] {
        std::erase_if(missing,
                      [](const std::string& name) { return if_nametoindex(name.c_str()); });
        return std::string();
    };
    drop_found();
    const NetnsId own = own_namespace();
    for (const auto& [id, path] : visible_namespaces()) {
        if (missing.empty()) break;
        if (id != own) run_in_namespace(path, drop_found);
    }
    return missing;
}

std::string run_in_namespace(const std::string& path, const std::function<std::string()>& fn) {
    std::string error;
    std::thread worker([&] {
        int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            error = "open " + path + ": " + std::strerror(errno);
            return;
        }
        if (setns(fd, CLONE_NEWNET) != 0) {
            error = "setns " + path + ": " + std::strerror(errno);
            close(fd);
            return;
        }
        close(fd);  // the namespace stays alive through the links, not through us
        error = fn();
    });
    worker.join();
    return error;
}

NamespaceHooks::~NamespaceHooks() {
    for (auto& [id, fds] : links_) close_all(fds);
}

void NamespaceHooks::adopt_own(std::vector<int> fds) {
    own_ = own_namespace();
    links_[own_] = std::move(fds);
}

std::vector<int> NamespaceHooks::release_all() {
    std::vector<int> all;
    for (auto& [id, fds] : links_) all.insert(all.end(), fds.begin(), fds.end());
    links_.clear();
    return all;
}

void NamespaceHooks::sync() {
    auto visible = visible_namespaces();
    for (auto it = links_.begin(); it != links_.end();) {
        if (it->first != own_ && !visible.count(it->first)) {
            spdlog::info("network namespace {} is gone: its netfilter hooks are released",
                         it->first);
            close_all(it->second);
            it = links_.erase(it);
        } else {
            ++it;
        }
    }
    for (auto it = failed_.begin(); it != failed_.end();)
        it = visible.count(*it) ? std::next(it) : failed_.erase(it);

    for (const auto& [id, path] : visible) {
        if (links_.count(id) || failed_.count(id)) continue;
        std::vector<int> fds;
        std::string error = run_in_namespace(path, [&]() -> std::string {
            try {
                fds = hook_();
            } catch (const std::exception& e) {
                return e.what();
            }
            return {};
        });
        if (!error.empty()) {
            spdlog::warn("network namespace {}: no netfilter stages there: {}", id, error);
            failed_.insert(id);
            continue;
        }
        spdlog::info("network namespace {}: netfilter stages hooked", id);
        links_[id] = std::move(fds);
    }
}

}  // namespace netlatd
