#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

namespace netlatd::test {

std::string netlatd_path() { return NETLATD_PATH; }
std::string netlat_load_path() { return NETLAT_LOAD_PATH; }
std::string source_dir() { return NETLAT_SOURCE_DIR; }

double time_scale() {
    const char* text = std::getenv("NETLAT_TEST_TIME_SCALE");
    if (!text || !*text) return 1;
    char* end = nullptr;
    const double scale = std::strtod(text, &end);
    if (*end || !(scale >= 1))
        throw std::runtime_error("NETLAT_TEST_TIME_SCALE: '" + std::string(text) +
                                 "' is not a number >= 1");
    return scale;
}

pid_t spawn_logged(std::vector<std::string> argv, const std::string& log_path) {
    const pid_t pid = fork();
    if (pid == 0) {
        const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        std::vector<char*> args;
        for (auto& arg : argv) args.push_back(arg.data());
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    return pid;
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

namespace {

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }

private:
    int fd_;
};

void check(bool ok, const std::string& what) {
    if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

bool write_all(int fd, const char* data, size_t len) {
    while (len) {
        ssize_t n = write(fd, data, len);
        if (n <= 0) return false;
        data += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

bool read_all(int fd, char* data, size_t len) {
    while (len) {
        ssize_t n = read(fd, data, len);
        if (n <= 0) return false;
        data += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

}  // namespace

LoopbackSocket bind_loopback(int type, bool listening) {
    LoopbackSocket b{socket(AF_INET, type, 0), 0};
    check(b.fd >= 0, "socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    check(bind(b.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0, "bind");
    if (listening) check(listen(b.fd, 16) == 0, "listen");
    socklen_t len = sizeof(a);
    getsockname(b.fd, reinterpret_cast<sockaddr*>(&a), &len);
    b.port = ntohs(a.sin_port);
    return b;
}

int free_tcp_port() {
    Fd s(bind_loopback(SOCK_STREAM).fd);
    sockaddr_in a{};
    socklen_t len = sizeof(a);
    getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
    return ntohs(a.sin_port);
}

std::optional<HttpAnswer> http_request(const std::string& host, int port, const std::string& path) {
    Fd s(socket(AF_INET, SOCK_STREAM, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return std::nullopt;
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
    if (!write_all(s.get(), req.data(), req.size())) return std::nullopt;
    std::string resp;
    char buf[65536];
    ssize_t n;
    while ((n = read(s.get(), buf, sizeof(buf))) > 0) resp.append(buf, static_cast<size_t>(n));
    // "HTTP/1.x NNN ..."
    if (resp.size() < 12 || resp.rfind("HTTP/1.", 0) != 0) return std::nullopt;
    auto body = resp.find("\r\n\r\n");
    return HttpAnswer{std::atoi(resp.substr(9, 3).c_str()),
                      body == std::string::npos ? std::string() : resp.substr(body + 4)};
}

std::optional<std::string> http_get(const std::string& host, int port, const std::string& path) {
    auto answer = http_request(host, port, path);
    if (!answer || answer->status != 200) return std::nullopt;
    return answer->body;
}

CommandResult run_command(const std::vector<std::string>& argv) {
    char out_tmpl[] = "/tmp/netlat-cmd-out-XXXXXX";
    char err_tmpl[] = "/tmp/netlat-cmd-err-XXXXXX";
    int out_fd = mkstemp(out_tmpl), err_fd = mkstemp(err_tmpl);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out_fd, 1);
        dup2(err_fd, 2);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        execvp(args[0], args.data());
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    close(out_fd);
    close(err_fd);
    CommandResult r;
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = read_file(out_tmpl);
    r.err = read_file(err_tmpl);
    unlink(out_tmpl);
    unlink(err_tmpl);
    return r;
}

std::set<int> bpf_ids_held_by(const std::string& kind, pid_t pid) {
    std::set<int> ids;
    const std::string key = kind + "_id:";
    std::error_code ec;  // the process or its fds may go away while we read
    for (const auto& entry :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo", ec)) {
        std::ifstream in(entry.path());
        std::string line;
        while (std::getline(in, line))
            if (line.rfind(key, 0) == 0) ids.insert(std::stoi(line.substr(key.size())));
    }
    return ids;
}

std::set<int> bpf_ids_held(const std::string& kind) {
    std::set<int> ids;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        ids.merge(bpf_ids_held_by(kind, std::stoi(name)));
    }
    return ids;
}

std::set<int> bpf_ids_present(const std::string& kind) {
    const auto r = run_command({"bpftool", "-j", kind, "show"});
    std::set<int> ids;
    // An object that went away while bpftool listed it is an {"error": ...} entry.
    for (const auto& obj : nlohmann::json::parse(r.out.empty() ? "[]" : r.out))
        if (obj.contains("id") && obj["id"].is_number()) ids.insert(obj["id"].get<int>());
    return ids;
}

Daemon::Daemon(const std::string& config_yaml, std::vector<std::string> extra_args,
               std::vector<std::string> wrapper, HealthProbe health_probe) {
    const auto ready_timeout = std::chrono::duration<double>(20 * time_scale());
    if (!health_probe) {
        health_probe = [](int port) { return http_request("127.0.0.1", port, "/healthz"); };
    }
    char tmpl[] = "/tmp/netlatd-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
    port_ = free_tcp_port();
    std::vector<std::string> argv = std::move(wrapper);
    for (std::string arg : {netlatd_path(), std::string("--listen"),
                            "127.0.0.1:" + std::to_string(port_)})
        argv.push_back(arg);
    if (!config_yaml.empty()) {
        std::ofstream(dir_ + "/netlatd.yaml") << config_yaml;
        argv.push_back("--config");
        argv.push_back(dir_ + "/netlatd.yaml");
    }
    if (const char* mode = std::getenv("NETLAT_TEST_PROBE_MODE"); mode && *mode) {
        argv.push_back("--probe-mode");
        argv.push_back(mode);
    }
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    std::string log_path = dir_ + "/netlatd.log";
    pid_ = spawn_logged(argv, log_path);
    const auto deadline = std::chrono::steady_clock::now() + ready_timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (!running()) return;  // the test reads the exit status and log
        if (auto health = health_probe(port_)) {
            std::string seen = std::to_string(health->status) + " " + health->body;
            while (!seen.empty() && seen.back() == '\n') seen.pop_back();
            if (startup_health_.empty() || startup_health_.back() != seen)
                startup_health_.push_back(seen);
            if (health->status == 200) return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    // No destructor runs after a constructor throws: stop netlatd and remove its files here.
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
    const std::string text = log();
    run_command({"rm", "-rf", dir_});
    throw std::runtime_error("netlatd was not ready (/healthz 200) within " +
                             std::to_string(std::lround(ready_timeout.count())) + " s: " + text);
}

Daemon::~Daemon() {
    if (running()) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status_, 0);
    }
    run_command({"rm", "-rf", dir_});
}

bool Daemon::running() {
    if (status_ != -1) return false;
    int st = 0;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
        status_ = st;
        return false;
    }
    return true;
}

std::string Daemon::scrape() {
    auto body = http_get("127.0.0.1", port_, "/metrics");
    if (!body) throw std::runtime_error("scrape of 127.0.0.1:" + std::to_string(port_) + " failed");
    return *body;
}

int Daemon::stop(int signal, std::chrono::milliseconds timeout) {
    auto start = std::chrono::steady_clock::now();
    if (running()) kill(pid_, signal);
    while (running() && std::chrono::steady_clock::now() - start < timeout)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stop_duration_ = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    if (running()) return -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
}

std::string Daemon::log() const { return read_file(dir_ + "/netlatd.log"); }

std::vector<Sample> parse_metrics(const std::string& text) {
    std::vector<Sample> out;
    std::istringstream in(text);
    std::string line;
    static const std::regex label_re(R"re((\w+)="((?:[^"\\]|\\.)*)")re");
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        Sample s;
        auto brace = line.find('{');
        auto space = line.rfind(' ');
        if (space == std::string::npos) continue;
        if (brace != std::string::npos && brace < space) {
            s.name = line.substr(0, brace);
            auto close = line.rfind('}');
            std::string labels = line.substr(brace + 1, close - brace - 1);
            for (std::sregex_iterator it(labels.begin(), labels.end(), label_re), end; it != end;
                 ++it)
                s.labels[(*it)[1]] = (*it)[2];
        } else {
            s.name = line.substr(0, space);
        }
        std::string v = line.substr(space + 1);
        s.value = v == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(v);
        out.push_back(std::move(s));
    }
    return out;
}

namespace {
bool matches(const Sample& s, const std::map<std::string, std::string>& match) {
    for (const auto& [k, v] : match) {
        auto it = s.labels.find(k);
        if (it == s.labels.end() || it->second != v) return false;
    }
    return true;
}
}  // namespace

double metric_value(const std::vector<Sample>& samples, const std::string& name,
                    const std::map<std::string, std::string>& match) {
    double sum = 0;
    for (const auto& s : samples)
        if (s.name == name && matches(s, match)) sum += s.value;
    return sum;
}

std::vector<std::pair<double, double>> histogram_buckets(
    const std::vector<Sample>& samples, const std::string& name,
    const std::map<std::string, std::string>& match) {
    std::map<double, double> by_le;
    for (const auto& s : samples) {
        if (s.name != name + "_bucket" || !matches(s, match)) continue;
        const std::string& le = s.labels.at("le");
        double bound = le == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(le);
        by_le[bound] += s.value;
    }
    return {by_le.begin(), by_le.end()};
}

double histogram_quantile(double q, const std::vector<std::pair<double, double>>& buckets) {
    if (buckets.empty() || buckets.back().second <= 0) return std::nan("");
    double rank = q * buckets.back().second;
    double prev_le = 0, prev_count = 0;
    for (const auto& [le, count] : buckets) {
        if (count >= rank) {
            if (std::isinf(le)) return prev_le;
            if (count == prev_count) return le;
            return prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count);
        }
        prev_le = le;
        prev_count = count;
    }
    return prev_le;
}

int run_request_response(const Traffic& t) {
    const int family = t.ipv6 ? AF_INET6 : AF_INET;
    const int type = t.tcp ? SOCK_STREAM : SOCK_DGRAM;
    sockaddr_storage addr{};
    socklen_t addr_len;
    if (t.ipv6) {
        auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(static_cast<uint16_t>(t.server_port));
        addr_len = sizeof(*a);
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&addr);
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons(static_cast<uint16_t>(t.server_port));
        addr_len = sizeof(*a);
    }
    Fd server(socket(family, type, 0));
    int one = 1;
    setsockopt(server.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    check(bind(server.get(), reinterpret_cast<sockaddr*>(&addr), addr_len) == 0, "bind");
    getsockname(server.get(), reinterpret_cast<sockaddr*>(&addr), &addr_len);
    int port = t.ipv6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port)
                      : ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (t.tcp) check(listen(server.get(), 1) == 0, "listen");
    timeval timeout{2, 0};  // a lost message ends the run instead of hanging it
    setsockopt(server.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));

    const size_t size = static_cast<size_t>(t.size);
    std::thread echo([&] {
        std::vector<char> buf(size);
        if (t.tcp) {
            Fd conn(accept(server.get(), nullptr, nullptr));
            setsockopt(conn.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
            for (int i = 0; i < t.messages; i++)
                if (!read_all(conn.get(), buf.data(), size) ||
                    !write_all(conn.get(), buf.data(), size))
                    return;
        } else {
            for (int i = 0; i < t.messages; i++) {
                sockaddr_storage peer{};
                socklen_t peer_len = sizeof(peer);
                ssize_t n = recvfrom(server.get(), buf.data(), size, 0,
                                     reinterpret_cast<sockaddr*>(&peer), &peer_len);
                if (n <= 0) return;
                sendto(server.get(), buf.data(), static_cast<size_t>(n), 0,
                       reinterpret_cast<sockaddr*>(&peer), peer_len);
            }
        }
    });

    Fd client(socket(family, type, 0));
    if (t.client_port != 0) {
        sockaddr_storage local = addr;  // the same loopback address, another port
        if (t.ipv6)
            reinterpret_cast<sockaddr_in6*>(&local)->sin6_port = htons(uint16_t(t.client_port));
        else
            reinterpret_cast<sockaddr_in*>(&local)->sin_port = htons(uint16_t(t.client_port));
        setsockopt(client.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        check(bind(client.get(), reinterpret_cast<sockaddr*>(&local), addr_len) == 0,
              "bind the client");
    }
    const bool connected = t.tcp || t.connect_client;
    if (connected)
        check(connect(client.get(), reinterpret_cast<sockaddr*>(&addr), addr_len) == 0, "connect");
    if (t.tcp) setsockopt(client.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(client.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    std::vector<char> msg(size, 'x'), reply(size);
    for (int i = 0; i < t.messages; i++) {
        if (connected ? !write_all(client.get(), msg.data(), size)
                      : sendto(client.get(), msg.data(), size, 0,
                               reinterpret_cast<sockaddr*>(&addr), addr_len) != ssize_t(size))
            break;
        if (t.tcp ? !read_all(client.get(), reply.data(), size)
                  : recv(client.get(), reply.data(), size, 0) <= 0)
            break;
        std::this_thread::sleep_for(t.gap);
    }
    echo.join();
    return port;
}

}  // namespace netlatd::test
