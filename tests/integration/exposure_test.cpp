// Exposure: netlatd with --web.config.file (TLS and basic auth, exporter-toolkit format), checked
// with curl against certificates made by openssl at test time and bcrypt hashes made by htpasswd.
// Bad web configs and certificates must stop netlatd at start with one line, exit code 2, before
// any hook is attached.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace netlatd::test {
namespace {

// A curl call: its exit code (0: an HTTP answer came), the status, headers and body of the answer.
struct Curl {
    int exit_code = -1;
    int status = 0;
    std::string headers, body;
};

Curl curl(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"curl", "-sS", "--max-time", "10",
                                     "-D",   "-",   "-w",         "\n%{http_code}"};
    argv.insert(argv.end(), args.begin(), args.end());
    const CommandResult result = run_command(argv);
    Curl answer;
    answer.exit_code = result.exit_code;
    const size_t last = result.out.rfind('\n');
    if (last == std::string::npos) return answer;
    answer.status = std::atoi(result.out.substr(last + 1).c_str());
    const std::string response = result.out.substr(0, last);
    const size_t split = response.find("\r\n\r\n");
    answer.headers = response.substr(0, split);
    if (split != std::string::npos) answer.body = response.substr(split + 4);
    return answer;
}

void run_or_fail(const std::vector<std::string>& argv) {
    const CommandResult result = run_command(argv);
    ASSERT_EQ(result.exit_code, 0) << argv[0] << " " << argv[1] << ": " << result.err;
}

// A temporary directory with a CA, a server certificate for 127.0.0.1 signed by it, a client
// certificate, and certificates that must be refused; removed at the end.
class Certificates {
  public:
    Certificates() {
        char tmpl[] = "/tmp/netlatd-tls-XXXXXX";
        dir_ = mkdtemp(tmpl);
        chmod(dir_.c_str(), 0755);  // readable by the unprivileged --check-config below
        const auto key = [&](const std::string& name) {
            run_or_fail({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                         "ec_paramgen_curve:P-256", "-out", path(name)});
        };
        key("ca.key");
        run_or_fail({"openssl", "req", "-x509", "-new", "-key", path("ca.key"), "-days", "2",
                     "-subj", "/CN=netlatd test CA", "-out", path("ca.crt")});
        key("server.key");
        key("other.key");
        key("client.key");
        std::ofstream(path("server.ext")) << "subjectAltName=IP:127.0.0.1\n";
        std::ofstream(path("client.ext")) << "extendedKeyUsage=clientAuth\n";
        sign("server.key", "/CN=127.0.0.1", "server.ext", "server.crt");
        sign("client.key", "/CN=prometheus", "client.ext", "client.crt");
        // Past and future validity: `openssl ca` takes explicit dates (`x509 -req` only -days).
        mkdir(path("db").c_str(), 0755);
        std::ofstream(path("db/index.txt"));
        std::ofstream(path("db/serial")) << "1000\n";
        std::ofstream(path("ca.cnf"))
            << "[ca]\ndefault_ca = test\n[test]\ndatabase = " << path("db/index.txt")
            << "\nnew_certs_dir = " << path("db") << "\nserial = " << path("db/serial")
            << "\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
               "[any]\ncommonName = supplied\n";
        run_or_fail({"openssl", "req", "-new", "-key", path("server.key"), "-subj", "/CN=127.0.0.1",
                     "-out", path("server.csr")});
        dated("20200101000000Z", "20200102000000Z", "expired.crt");
        dated("20990101000000Z", "20990102000000Z", "future.crt");
    }
    ~Certificates() { run_command({"rm", "-rf", dir_}); }

    std::string path(const std::string& name) const { return dir_ + "/" + name; }
    const std::string& dir() const { return dir_; }

  private:
    void sign(const std::string& key, const std::string& subject, const std::string& ext,
              const std::string& out) {
        run_or_fail({"openssl", "req", "-new", "-key", path(key), "-subj", subject, "-out",
                     path(out + ".csr")});
        run_or_fail({"openssl", "x509", "-req", "-in", path(out + ".csr"), "-CA", path("ca.crt"),
                     "-CAkey", path("ca.key"), "-CAcreateserial", "-days", "2", "-extfile",
                     path(ext), "-out", path(out)});
    }
    void dated(const std::string& start, const std::string& end, const std::string& out) {
        run_or_fail({"openssl", "ca", "-batch", "-config", path("ca.cnf"), "-cert", path("ca.crt"),
                     "-keyfile", path("ca.key"), "-in", path("server.csr"), "-startdate", start,
                     "-enddate", end, "-notext", "-out", path(out)});
    }

    std::string dir_;
};

// "user:bcrypt-hash" from htpasswd (apache2-utils), cost 5 as its default.
std::string htpasswd(const std::string& user, const std::string& password) {
    const CommandResult result = run_command({"htpasswd", "-nbB", user, password});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out.substr(0, result.out.find('\n'));
}

std::string write_web_config(const Certificates& certs, const std::string& name,
                             const std::string& yaml) {
    const std::string path = certs.path(name);
    std::ofstream(path) << yaml;
    return path;
}

std::string tls_section(const Certificates& certs, const std::string& cert = "server.crt",
                        const std::string& key = "server.key") {
    return "tls_server_config:\n  cert_file: " + certs.path(cert) +
           "\n  key_file: " + certs.path(key) + "\n";
}

// /healthz over TLS, verified against the test CA, for the harness to wait on.
HealthProbe https_health(const Certificates& certs) {
    return [ca = certs.path("ca.crt")](int port) -> std::optional<HttpAnswer> {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const Curl answer =
            curl({"--cacert", ca, "https://127.0.0.1:" + std::to_string(port) + "/healthz"});
        if (answer.exit_code != 0) return std::nullopt;
        return HttpAnswer{answer.status, answer.body};
    };
}

TEST(Exposure, TlsAndBasicAuthGuardEveryPathButHealthz) {
    Certificates certs;
    const std::string user = htpasswd("prometheus", "scrape-secret");
    const std::string web =
        write_web_config(certs, "web.yml",
                         tls_section(certs) +
                             "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                             "basic_auth_users:\n  prometheus: " +
                             user.substr(user.find(':') + 1) + "\n");
    Daemon daemon("", {"--web.config.file", web}, {}, https_health(certs));
    ASSERT_TRUE(daemon.running()) << daemon.log();
    const std::string base = "https://127.0.0.1:" + std::to_string(daemon.port());
    const std::vector<std::string> tls = {"--cacert", certs.path("ca.crt")};
    const auto get = [&](const std::string& path, std::vector<std::string> args) {
        args.insert(args.end(), tls.begin(), tls.end());
        args.push_back(base + path);
        return curl(args);
    };
    const std::vector<std::string> right = {"-u", "prometheus:scrape-secret"};
    for (const std::string path : {"/metrics", "/", "/api/latency.json"}) {
        const Curl ok = get(path, right);
        EXPECT_EQ(ok.status, 200) << path << ": " << ok.headers;
        EXPECT_NE(ok.headers.find("X-Frame-Options: deny"), std::string::npos) << ok.headers;
        const Curl none = get(path, {});
        EXPECT_EQ(none.status, 401) << path;
        EXPECT_NE(none.headers.find("WWW-Authenticate: Basic realm=\"netlatd\""), std::string::npos)
            << none.headers;
        EXPECT_EQ(get(path, {"-u", "prometheus:wrong"}).status, 401) << path;
        EXPECT_EQ(get(path, {"-u", "mallory:scrape-secret"}).status, 401) << path;
    }
    EXPECT_NE(get("/metrics", right).body.find("netlatd_build_info"), std::string::npos);
    EXPECT_EQ(get("/healthz", {}).status, 200);  // probes need no credentials
    EXPECT_EQ(get("/nothing-here", right).status, 404);
    EXPECT_EQ(get("/nothing-here", {}).status, 401);  // no path is revealed without credentials

    // Plain HTTP to the TLS port: no HTTP answer at all (curl: empty reply or reset).
    const Curl plain = curl({"-u", "prometheus:scrape-secret",
                             "http://127.0.0.1:" + std::to_string(daemon.port()) + "/metrics"});
    EXPECT_NE(plain.exit_code, 0);
    EXPECT_EQ(plain.status, 0);
    // A client that does not trust the certificate stops at the handshake (curl exit 60).
    EXPECT_EQ(curl({"-u", "prometheus:scrape-secret", base + "/metrics"}).exit_code, 60);
    EXPECT_EQ(daemon.stop(), 0);
}

TEST(Exposure, ClientCertificatesWhenRequired) {
    Certificates certs;
    const std::string web = write_web_config(
        certs, "web.yml", tls_section(certs) + "  client_ca_file: " + certs.path("ca.crt") + "\n");
    const std::vector<std::string> client = {"--cert", certs.path("client.crt"), "--key",
                                             certs.path("client.key")};
    Daemon daemon("", {"--web.config.file", web}, {}, [&](int port) -> std::optional<HttpAnswer> {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::vector<std::string> args = client;
        for (std::string arg : {std::string("--cacert"), certs.path("ca.crt"),
                                "https://127.0.0.1:" + std::to_string(port) + "/healthz"})
            args.push_back(arg);
        const Curl answer = curl(args);
        if (answer.exit_code != 0) return std::nullopt;
        return HttpAnswer{answer.status, answer.body};
    });
    ASSERT_TRUE(daemon.running()) << daemon.log();
    const std::string url = "https://127.0.0.1:" + std::to_string(daemon.port()) + "/metrics";
    std::vector<std::string> with_cert = client;
    for (const std::string& arg : {std::string("--cacert"), certs.path("ca.crt"), url})
        with_cert.push_back(arg);
    EXPECT_EQ(curl(with_cert).status, 200);
    const Curl without = curl({"--cacert", certs.path("ca.crt"), url});
    EXPECT_NE(without.exit_code, 0);
    EXPECT_EQ(without.status, 0);
    EXPECT_EQ(daemon.stop(), 0);
}

// A background process (stdout and stderr to `log`), stopped with SIGTERM at the end of the scope.
class Process {
  public:
    Process(const std::vector<std::string>& argv, const std::string& log) {
        pid_ = fork();
        if (pid_ == 0) {
            const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
            dup2(fd, 1);
            dup2(fd, 2);
            std::vector<char*> args;
            for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
            args.push_back(nullptr);
            execvp(args[0], args.data());
            _exit(127);
        }
    }
    ~Process() {
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

  private:
    pid_t pid_ = -1;
};

// A real Prometheus (Debian's) scrapes netlatd over https with basic auth, with the scrape config
// of docs/OPERATIONS.md; a second job with a wrong password must see the target down.
TEST(Exposure, PrometheusScrapesWithTlsAndBasicAuth) {
    Certificates certs;
    const std::string user = htpasswd("prometheus", "scrape-secret");
    const std::string web = write_web_config(
        certs, "web.yml",
        tls_section(certs) + "basic_auth_users:\n  prometheus: " + user.substr(user.find(':') + 1) +
            "\n");
    Daemon daemon("", {"--web.config.file", web}, {}, https_health(certs));
    ASSERT_TRUE(daemon.running()) << daemon.log();
    std::ofstream(certs.path("password")) << "scrape-secret";
    std::ofstream(certs.path("wrong-password")) << "guess";
    const auto job = [&](const std::string& name, const std::string& password_file) {
        return "  - job_name: " + name +
               "\n    scheme: https\n    tls_config:\n      ca_file: " + certs.path("ca.crt") +
               "\n    basic_auth:\n      username: prometheus\n      password_file: " +
               certs.path(password_file) + "\n    static_configs:\n      - targets: [\"127.0.0.1:" +
               std::to_string(daemon.port()) + "\"]\n";
    };
    std::ofstream(certs.path("prometheus.yml"))
        << "global:\n  scrape_interval: 1s\nscrape_configs:\n"
        << job("netlatd", "password") << job("netlatd-wrong-password", "wrong-password");
    const int prometheus_port = free_tcp_port();
    const std::string api = "http://127.0.0.1:" + std::to_string(prometheus_port);
    Process prometheus({"prometheus", "--config.file=" + certs.path("prometheus.yml"),
                        "--storage.tsdb.path=" + certs.path("tsdb"),
                        "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port)},
                       certs.path("prometheus.log"));
    // up{job} as Prometheus reports it: "1", "0", or "" while it has no sample yet.
    const auto up = [&](const std::string& job_name) -> std::string {
        const CommandResult result =
            run_command({"curl", "-s", "-G", api + "/api/v1/query", "--data-urlencode",
                         "query=up{job=\"" + job_name + "\"}"});
        const size_t value = result.out.rfind("\"value\":[");
        if (value == std::string::npos) return "";
        const size_t end = result.out.find("\"]", value);
        const size_t start = result.out.rfind('"', end - 1);
        return result.out.substr(start + 1, end - start - 1);
    };
    std::string good, bad;
    for (int i = 0; i < 300 && (good != "1" || bad.empty()); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        good = up("netlatd");
        bad = up("netlatd-wrong-password");
    }
    EXPECT_EQ(good, "1") << run_command({"tail", "-5", certs.path("prometheus.log")}).out;
    EXPECT_EQ(bad, "0");
    EXPECT_EQ(daemon.stop(), 0);
}

// netlatd with this web config must exit 2 at once, printing exactly `line` and nothing else: no
// log line, so nothing was loaded or attached.
void expect_refused(const std::string& web, const std::string& line,
                    const std::vector<std::string>& runner = {}) {
    std::vector<std::string> argv = runner;
    for (const std::string& arg :
         {netlatd_path(), std::string("--listen"), "127.0.0.1:" + std::to_string(free_tcp_port()),
          std::string("--web.config.file"), web})
        argv.push_back(arg);
    const CommandResult result = run_command(argv);
    EXPECT_EQ(result.exit_code, 2) << result.err;
    EXPECT_EQ(result.err, "netlatd: " + line + "\n");
    EXPECT_EQ(result.out, "");
}

TEST(Exposure, BadCertificatesAndConfigsStopTheStartWithOneLine) {
    Certificates certs;
    const auto refused = [&](const std::string& name, const std::string& yaml,
                             const std::string& what) {
        const std::string web = write_web_config(certs, name, yaml);
        expect_refused(web, "web config " + web + ": " + what);
    };
    refused("expired.yml", tls_section(certs, "expired.crt"),
            "tls_server_config.cert_file: " + certs.path("expired.crt") +
                ": the certificate expired on Jan  2 00:00:00 2020 GMT");
    refused("future.yml", tls_section(certs, "future.crt"),
            "tls_server_config.cert_file: " + certs.path("future.crt") +
                ": the certificate is not valid before Jan  1 00:00:00 2099 GMT");
    refused("mismatch.yml", tls_section(certs, "server.crt", "other.key"),
            "tls_server_config.key_file: " + certs.path("other.key") +
                " does not match the certificate of cert_file " + certs.path("server.crt"));
    refused("missing.yml", tls_section(certs, "server.crt", "absent.key"),
            "tls_server_config.key_file: " + certs.path("absent.key") +
                ": cannot read: No such file or directory");
    refused("swapped.yml", tls_section(certs, "server.key", "server.crt"),
            "tls_server_config.cert_file: " + certs.path("server.key") +
                ": no PEM certificate in it (no start line)");
    refused("cleartext.yml", "basic_auth_users:\n  prometheus: scrape-secret\n",
            "basic_auth_users.prometheus: is not a bcrypt hash ($2y$, $2b$ or $2a$, cost "
            "04..31, 60 characters; make one with htpasswd -nBC 10 prometheus)");
    expect_refused(certs.path("absent.yml"), "web config " + certs.path("absent.yml") +
                                                 ": cannot read: No such file or directory");

    // A key the (unprivileged) reader may not read; --check-config needs no privileges.
    const std::string web = write_web_config(certs, "unreadable.yml", tls_section(certs));
    chmod(certs.path("server.key").c_str(), 0600);
    chmod(web.c_str(), 0644);
    const CommandResult check =
        run_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", netlatd_path(),
                     "--check-config", "--web.config.file", web});
    EXPECT_EQ(check.exit_code, 2) << check.err;
    EXPECT_EQ(check.err, "netlatd: web config " + web + ": tls_server_config.key_file: " +
                             certs.path("server.key") + ": cannot read: Permission denied\n");
}

}  // namespace
}  // namespace netlatd::test
