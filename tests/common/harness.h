// Shared pieces of the root-level test tiers (integration, accuracy): run netlatd as a child
// process, scrape and parse /metrics, estimate quantiles from histogram buckets, make loopback
// traffic.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace netlatd::test {

// Paths given by CMake at build time.
std::string netlatd_path();
std::string netlat_load_path();
std::string source_dir();
// Starts argv[0] (PATH searched) with stdout and stderr into log_path; its pid (-1 if fork failed).
pid_t spawn_logged(std::vector<std::string> argv, const std::string& log_path);
// The whole file, or "" if it cannot be read.
std::string read_file(const std::string& path);

struct HttpAnswer {
    int status = 0;
    std::string body;
};
// Asks /healthz of the port; nullopt for no answer. The default is plain HTTP (http_request).
using HealthProbe = std::function<std::optional<HttpAnswer>(int port)>;

// NETLAT_TEST_TIME_SCALE (a number >= 1, default 1) multiplies the harness's time limits that a
// slow machine can exceed (netlatd's ready timeout): the VM tier sets it for the paths tier under
// qemu TCG (tests/vm/README.md). Message counts and every check stay as they are.
double time_scale();

// A netlatd child process. The constructor writes the config (if any) to a temporary file, starts
// netlatd with --listen 127.0.0.1:<free port> (after `wrapper`, a command that execs its
// arguments, if given), and waits until /healthz answers 200, i.e. netlatd is ready (or it exits),
// asking with `health` if given (e.g. over TLS).
// With NETLAT_TEST_PROBE_MODE set (auto, fentry, kprobe or tracepoint) every netlatd a test starts
// gets `--probe-mode <it>` before `extra_args`: the VM tier runs the paths tier so in kprobe and
// fentry modes (tests/vm/README.md). Unset or empty: the config's or netlatd's default mode.
class Daemon {
public:
    explicit Daemon(const std::string& config_yaml = "", std::vector<std::string> extra_args = {},
                    std::vector<std::string> wrapper = {}, HealthProbe health = {});
    ~Daemon();  // SIGKILL if still running
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    bool running();
    std::string scrape();                  // GET /metrics; throws on failure
    int stop(int signal = 15, std::chrono::milliseconds timeout = std::chrono::seconds(5));
    std::chrono::milliseconds last_stop_duration() const { return stop_duration_; }
    std::string log() const;               // everything netlatd wrote to stderr
    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    // What /healthz answered while netlatd started, in order, one entry per change: "503 not
    // ready: attaching hooks", ..., "200 ok".
    const std::vector<std::string>& startup_health() const { return startup_health_; }

private:
    pid_t pid_ = -1;
    int port_ = 0;
    int status_ = -1;
    std::string dir_;
    std::chrono::milliseconds stop_duration_{0};
    std::vector<std::string> startup_health_;
};

// Runs a command, returns its exit code; stdout and stderr are captured.
struct CommandResult {
    int exit_code = -1;
    std::string out, err;
};
CommandResult run_command(const std::vector<std::string>& argv);

// Ids of the BPF objects of a kind ("prog", "link"): those process `pid` holds through its fds
// (from fdinfo; a link's fd names its program too), those every process holds, and all the kernel
// has now (bpftool).
std::set<int> bpf_ids_held_by(const std::string& kind, pid_t pid);
std::set<int> bpf_ids_held(const std::string& kind);
std::set<int> bpf_ids_present(const std::string& kind);

// The body of a 200 answer; nullopt for any other status or no answer.
std::optional<std::string> http_get(const std::string& host, int port, const std::string& path);
std::optional<HttpAnswer> http_request(const std::string& host, int port, const std::string& path);
int free_tcp_port();
// A socket of `type` (SOCK_STREAM, SOCK_DGRAM) bound to 127.0.0.1 on a free port, listening if
// asked. The caller closes fd.
struct LoopbackSocket {
    int fd = -1;
    int port = 0;
};
LoopbackSocket bind_loopback(int type, bool listening = false);

// Prometheus text format, parsed just enough: one sample per line.
struct Sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};
std::vector<Sample> parse_metrics(const std::string& text);

// The value of the sample with this name whose labels include all of `match` (0 if none; the sum
// if several match).
double metric_value(const std::vector<Sample>& samples, const std::string& name,
                    const std::map<std::string, std::string>& match);

// Cumulative (le, count) pairs of a histogram series selected by `match` (summed over series that
// match, e.g. over families).
std::vector<std::pair<double, double>> histogram_buckets(const std::vector<Sample>& samples,
                                                         const std::string& name,
                                                         const std::map<std::string, std::string>& match);
// Quantile q by linear interpolation inside the bucket, as Prometheus' histogram_quantile does.
double histogram_quantile(double q, const std::vector<std::pair<double, double>>& buckets);

// Loopback request/response traffic: `messages` requests of `size` bytes from a client to a server
// that echoes them, one at a time. Returns the server's port.
struct Traffic {
    bool tcp = true;
    bool ipv6 = false;
    int messages = 500;
    int size = 64;
    int server_port = 0;  // 0: any free port
    std::chrono::microseconds gap{200};
    int client_port = 0;  // 0: an ephemeral port
    bool connect_client = true;  // UDP: false sends with sendto() on an unconnected socket
};
int run_request_response(const Traffic& traffic);

}  // namespace netlatd::test
