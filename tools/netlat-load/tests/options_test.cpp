#include "options.h"

#include <gtest/gtest.h>

namespace netlat_load {
namespace {

Options parse(std::vector<std::string> args) {
    return parse_options(args);
}

TEST(Options, DefaultsAreAModestTcpRequestResponseOnLoopback) {
    Options o = parse({});
    EXPECT_EQ(o.role, Role::kBoth);
    EXPECT_EQ(o.proto, Proto::kTcp);
    EXPECT_EQ(o.family, 4);
    EXPECT_EQ(o.topology, Topology::kLoopback);
    EXPECT_EQ(o.mode, Mode::kRequestResponse);
    EXPECT_EQ(o.size, 64u);
    EXPECT_EQ(o.count, 1000u);  // neither --count nor --duration given
    EXPECT_EQ(o.rate, 1000);
    EXPECT_EQ(o.address, "127.0.0.1");
}

TEST(Options, ParsesEveryFlagInBothSpellings) {
    Options o = parse(
        {"--proto", "udp",      "--family=6", "--topology",          "veth",      "--mode=oneway",
         "--size",  "1400",     "--count=5",  "--duration",          "2.5",       "--rate",
         "0",       "--warmup", "0",          "--sleep-before-read", "250",       "--timeout",
         "0.5",     "--json",   "--progress", "--samples",           "/tmp/x.csv"});
    EXPECT_EQ(o.proto, Proto::kUdp);
    EXPECT_EQ(o.family, 6);
    EXPECT_EQ(o.topology, Topology::kVeth);
    EXPECT_EQ(o.mode, Mode::kOneWay);
    EXPECT_EQ(o.size, 1400u);
    EXPECT_EQ(o.count, 5u);
    EXPECT_DOUBLE_EQ(o.duration_s, 2.5);
    EXPECT_EQ(o.rate, 0);
    EXPECT_EQ(o.warmup, 0u);
    EXPECT_EQ(o.sleep_before_read_us, 250u);
    EXPECT_DOUBLE_EQ(o.timeout_s, 0.5);
    EXPECT_TRUE(o.json);
    EXPECT_TRUE(o.progress);
    EXPECT_EQ(o.samples_path, "/tmp/x.csv");
    EXPECT_EQ(o.address, "::1");
}

TEST(Options, DurationAloneMeansNoCountLimit) {
    EXPECT_EQ(parse({"--duration", "3"}).count, 0u);
}

TEST(Options, RejectsBadInputWithTheFlagInTheMessage) {
    // Each bad command line, and the flag its error message must name.
    const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
        {{"--proto", "sctp"}, "--proto"},
        {{"--family", "5"}, "--family"},
        {{"--size", "10"}, "--size"},  // below the header size
        {{"--size", "64k"}, "--size"},
        {{"--size", "-1"}, "--size"},
        {{"--count", "0"}, "--count"},
        {{"--count", "99999999999999999999999"}, "--count"},
        {{"--rate", "-1"}, "--rate"},
        {{"--rate", "nan"}, "--rate"},
        {{"--duration", "0"}, "--duration"},
        {{"--port", "70000"}, "--port"},
        {{"--timeout", "0"}, "--timeout"},
        {{"--proto", "udp", "--size", "70000"}, "--size"},
        {{"--proto", "udp", "--size", "65508"}, "--size"},  // > IPv4 UDP payload
        {{"--address", "::1"}, "--address"},                // IPv6 address with --family 4
        {{"--topology", "veth", "--address", "10.0.0.1"}, "--address"},
        {{"--bogus"}, "--bogus"},
        {{"--count"}, "--count"},
        {{"--json=yes"}, "--json"},
    };
    for (const auto& [args, flag] : bad) {
        std::string joined;
        for (const auto& a : args) joined += a + " ";
        try {
            parse(args);
            ADD_FAILURE() << "accepted: " << joined;
        } catch (const UsageError& e) {
            EXPECT_NE(std::string(e.what()).find(flag), std::string::npos)
                << joined << "-> " << e.what();
        }
    }
}

TEST(Options, UdpOverIpv6AllowsItsLargerPayload) {
    EXPECT_EQ(parse({"--proto", "udp", "--family", "6", "--size", "65527"}).size, 65527u);
    EXPECT_THROW(parse({"--proto", "udp", "--family", "6", "--size", "65528"}), UsageError);
}

TEST(Options, SeparateRolesNeedAPortAndLoopback) {
    EXPECT_THROW(parse({"--role", "server"}), UsageError);
    EXPECT_THROW(parse({"--role", "client"}), UsageError);
    EXPECT_THROW(parse({"--role", "client", "--port", "9000", "--topology", "veth"}), UsageError);
    EXPECT_EQ(parse({"--role", "client", "--port", "9000"}).port, 9000);
}

TEST(Options, ClientSettingsAreRejectedOnALoneServer) {
    EXPECT_THROW(parse({"--role", "server", "--port", "9000", "--rate", "10"}), UsageError);
    EXPECT_THROW(parse({"--role", "server", "--port", "9000", "--mode", "rr"}), UsageError);
    EXPECT_THROW(parse({"--role", "client", "--port", "9000", "--sleep-before-read", "5"}),
                 UsageError);
    EXPECT_NO_THROW(parse({"--role", "server", "--port", "9000", "--sleep-before-read", "5"}));
}

TEST(Options, HelpVersionAndCleanupSkipValidation) {
    EXPECT_TRUE(parse({"--help", "--role", "server"}).help);
    EXPECT_TRUE(parse({"--version"}).version);
    EXPECT_TRUE(parse({"--cleanup"}).cleanup);
}

}  // namespace
}  // namespace netlat_load
