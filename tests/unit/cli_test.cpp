#include "daemon/config/cli.h"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <vector>

namespace netlatd {
namespace {

CliOptions parse(std::initializer_list<std::string> args) {
    std::vector<std::string> storage{"netlatd"};
    storage.insert(storage.end(), args);
    std::vector<char*> argv;
    for (std::string& arg : storage) argv.push_back(arg.data());
    argv.push_back(nullptr);
    return parse_cli(static_cast<int>(storage.size()), argv.data());
}

std::string error_of(std::initializer_list<std::string> args) {
    try {
        parse(args);
    } catch (const CliError& e) {
        return e.what();
    }
    return "";
}

TEST(Cli, NoArguments) {
    const CliOptions o = parse({});
    EXPECT_FALSE(o.config_path);
    EXPECT_FALSE(o.listen);
    EXPECT_FALSE(o.probe_mode);
    EXPECT_FALSE(o.check_config);
    EXPECT_FALSE(o.version);
    EXPECT_FALSE(o.help);
}

TEST(Cli, SeparateAndJoinedValues) {
    for (const CliOptions& o :
         {parse({"--config", "/etc/x.yaml", "--listen", "[::1]:9", "--probe-mode", "tracepoint"}),
          parse({"--config=/etc/x.yaml", "--listen=[::1]:9", "--probe-mode=tracepoint"})}) {
        EXPECT_EQ(o.config_path, "/etc/x.yaml");
        EXPECT_EQ(o.listen, "[::1]:9");
        EXPECT_EQ(o.probe_mode, ProbeMode::Tracepoint);
    }
}

TEST(Cli, Flags) {
    const CliOptions o = parse({"--check-config", "--version", "--help"});
    EXPECT_TRUE(o.check_config);
    EXPECT_TRUE(o.version);
    EXPECT_TRUE(o.help);
    EXPECT_TRUE(parse({"-h"}).help);
}

TEST(Cli, LastValueWins) {
    EXPECT_EQ(parse({"--listen", "a:1", "--listen=b:2"}).listen, "b:2");
}

TEST(Cli, ValueContainingEquals) {
    EXPECT_EQ(parse({"--config=/tmp/a=b.yaml"}).config_path, "/tmp/a=b.yaml");
}

TEST(Cli, Errors) {
    EXPECT_EQ(error_of({"--foo"}), "unknown option '--foo' (see --help)");
    EXPECT_EQ(error_of({"--foo=1"}), "unknown option '--foo=1' (see --help)");
    EXPECT_EQ(error_of({"config.yaml"}), "unexpected argument 'config.yaml' (see --help)");
    EXPECT_EQ(error_of({"--probe-mode", "kprob"}),
              "--probe-mode: 'kprob' is not one of auto, fentry, kprobe, tracepoint");
    EXPECT_EQ(error_of({"--listen"}), "--listen requires a value");
    EXPECT_EQ(error_of({"--listen="}), "--listen requires a value");
    EXPECT_EQ(error_of({"--config", "--check-config"}), "--config requires a value");
    EXPECT_EQ(error_of({"--check-config=yes"}), "--check-config does not take a value");
    EXPECT_EQ(error_of({"--help=1"}), "--help does not take a value");
    EXPECT_EQ(error_of({"--foo\nbar"}), "unknown option '--foo\\nbar' (see --help)");
}

TEST(Cli, OnceDurationJson) {
    const CliOptions defaults = parse({"--once"});
    EXPECT_TRUE(defaults.once);
    EXPECT_FALSE(defaults.json);
    EXPECT_FALSE(defaults.duration);
    EXPECT_EQ(kOnceDuration, std::chrono::seconds(10));
    const CliOptions o = parse({"--once", "--duration", "8s", "--json"});
    EXPECT_TRUE(o.once);
    EXPECT_TRUE(o.json);
    EXPECT_EQ(o.duration, std::chrono::seconds(8));
    EXPECT_EQ(parse({"--duration=1.5m", "--once"}).duration, std::chrono::seconds(90));
    EXPECT_EQ(parse({"--once", "--duration", "250ms"}).duration, std::chrono::milliseconds(250));
    EXPECT_EQ(parse({"--once", "--duration", "2"}).duration, std::chrono::seconds(2));
    EXPECT_FALSE(parse({"--once", "--listen", "127.0.0.1:1"}).json);
}

TEST(Cli, OnceErrors) {
    EXPECT_EQ(error_of({"--once", "--duration", "0"}),
              "--duration: 0 is out of range (allowed 100ms..24h)");
    EXPECT_EQ(error_of({"--once", "--duration", "-5s"}),
              "--duration: -5s is out of range (allowed 100ms..24h)");
    EXPECT_EQ(error_of({"--once", "--duration", "2d"}),
              "--duration: '2d' is not a duration (e.g. 8s, 1.5m, 500ms; a plain number is "
              "seconds)");
    EXPECT_EQ(error_of({"--once", "--duration", "abc"}),
              "--duration: 'abc' is not a duration (e.g. 8s, 1.5m, 500ms; a plain number is "
              "seconds)");
    EXPECT_EQ(error_of({"--once", "--duration", "1.5us"}),
              "--duration: 1.5us is out of range (allowed 100ms..24h)");
    EXPECT_EQ(error_of({"--once", "--duration", "0.1005"}),
              "--duration: 0.1005 is not whole milliseconds");
    EXPECT_EQ(error_of({"--once", "--duration"}), "--duration requires a value");
    EXPECT_EQ(error_of({"--json"}), "--json needs --once");
    EXPECT_EQ(error_of({"--duration", "8s"}), "--duration needs --once");
    EXPECT_EQ(error_of({"--once=yes"}), "--once does not take a value");
}

TEST(Cli, UsageNamesEveryOption) {
    const std::string text = usage();
    for (const char* option :
         {"--config FILE", "--listen HOST:PORT", "--probe-mode MODE", "--check-config", "--version",
          "--help", "auto, fentry, kprobe, tracepoint", "--once", "--duration TIME", "--json"}) {
        EXPECT_NE(text.find(option), std::string::npos) << option;
    }
    EXPECT_TRUE(text.ends_with("\n"));
}

TEST(ResolveConfig, DefaultsWithoutOptions) {
    EXPECT_EQ(resolve_config(parse({})), Config{});
}

TEST(ResolveConfig, OverridesApplyOverTheFile) {
    const Config c = resolve_config(parse({"--config", NETLATD_CONFIG_DIR "/netlatd.yaml",
                                           "--listen", "127.0.0.1:19810", "--probe-mode=kprobe"}));
    Config expected;
    expected.listen = "127.0.0.1:19810";
    expected.probe_mode = ProbeMode::Kprobe;
    EXPECT_EQ(c, expected);
}

TEST(ResolveConfig, BadListenOverrideNamesTheOption) {
    try {
        resolve_config(parse({"--listen", "127.0.0.1:0"}));
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "--listen: '127.0.0.1:0' has port '0' (allowed 1..65535)");
    }
}

TEST(ResolveConfig, FileErrorsPassThrough) {
    try {
        resolve_config(parse({"--config", NETLATD_TEST_DATA_DIR "/config/out_of_range.yaml"}));
        FAIL() << "no error";
    } catch (const ConfigError& e) {
        EXPECT_STREQ(e.what(), "config " NETLATD_TEST_DATA_DIR
                               "/config/out_of_range.yaml: buckets.per_octave: 40 is out of range "
                               "(allowed 1..16)");
    }
}

}  // namespace
}  // namespace netlatd
