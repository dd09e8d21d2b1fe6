#include "report.h"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

namespace netlat_load {
namespace {

RunResult two_message_rr_run() {
    RunResult r;
    r.options.mode = Mode::kRequestResponse;
    r.options.warmup = 1;
    // seq 0 is warmup; seq 1 measured. Times in ns.
    r.client_to_server.tx = {{100, 150, 160, true}, {1000, 1003000, 1005000, false}};
    r.client_to_server.rx = {{100, 200, 300, true}, {1000, 1010000, 1020000, false}};
    r.server_to_client.tx = {{400, 450, 460, true}, {2000000, 2002000, 2004000, false}};
    r.server_to_client.rx = {{400, 500, 600, true}, {2000000, 2010000, 2030000, false}};
    return r;
}

TEST(Report, JsonHasTheThreeJudgedFiguresPerSideAndMerged) {
    nlohmann::ordered_json j = to_json(two_message_rr_run());
    EXPECT_EQ(j["proto"], "tcp");
    EXPECT_EQ(j["rx_stamp_point"], "ip_local_deliver");
    EXPECT_EQ(j["messages"], 1);
    const auto& c2s = j["client_to_server"];
    EXPECT_EQ(c2s["tx_side"], "client");
    EXPECT_EQ(c2s["rx_side"], "server");
    EXPECT_EQ(c2s["tx_sched"]["count"], 1);
    EXPECT_DOUBLE_EQ(c2s["tx_sched"]["p50_us"].get<double>(), 1002.0);
    EXPECT_DOUBLE_EQ(c2s["tx_driver"]["p50_us"].get<double>(), 1004.0);
    EXPECT_DOUBLE_EQ(c2s["rx"]["p50_us"].get<double>(), 10.0);
    EXPECT_DOUBLE_EQ(c2s["send_to_recv"]["p50_us"].get<double>(), 1019.0);
    EXPECT_EQ(c2s["lost"], 0);
    EXPECT_DOUBLE_EQ(j["server_to_client"]["rx"]["p50_us"].get<double>(), 20.0);
    // Merged: both directions' sends and receives.
    EXPECT_EQ(j["tx_sched"]["count"], 2);
    EXPECT_EQ(j["rx"]["count"], 2);
    EXPECT_DOUBLE_EQ(j["rx"]["max_us"].get<double>(), 20.0);
    // Round trip: client send of request 1 -> client receipt of reply 1.
    EXPECT_DOUBLE_EQ(j["rtt"]["p50_us"].get<double>(), 2029.0);
}

TEST(Report, MissingStampsAreCountedNotGuessed) {
    RunResult r = two_message_rr_run();
    r.client_to_server.tx[1].driver_ns = 0;
    nlohmann::ordered_json j = to_json(r);
    EXPECT_EQ(j["client_to_server"]["tx_driver"]["count"], 0);
    EXPECT_EQ(j["client_to_server"]["tx_driver"]["missing"], 1);
    EXPECT_TRUE(j["client_to_server"]["tx_driver"]["p50_us"].is_null());
}

TEST(Report, ALoneServerReportsOnlyWhatItSaw) {
    RunResult r = two_message_rr_run();
    r.options.role = Role::kServer;
    r.client_to_server.tx.clear();
    r.server_to_client.rx.clear();
    nlohmann::ordered_json j = to_json(r);
    EXPECT_TRUE(j["client_to_server"]["tx_sched"].is_null());
    EXPECT_EQ(j["client_to_server"]["rx"]["count"], 1);
    EXPECT_EQ(j["server_to_client"]["tx_driver"]["count"], 1);
    EXPECT_TRUE(j["server_to_client"]["rx"].is_null());
    EXPECT_TRUE(j["rtt"].is_null());
    EXPECT_EQ(j["messages"], 1);
}

TEST(Report, TableNamesEveryFigureAndSide) {
    std::string table = to_table(two_message_rr_run());
    for (const char* text : {"send()->qdisc", "send()->driver", "driver->recv() return",
                             "client->server", "server->client", "round trip"}) {
        EXPECT_NE(table.find(text), std::string::npos) << text;
    }
}

TEST(Report, SamplesCsvHasOneLinePerMessageAndDirection) {
    const std::string path = ::testing::TempDir() + "netlat_load_samples.csv";
    write_samples(two_message_rr_run(), path);
    std::ifstream file(path);
    std::string header, line;
    std::getline(file, header);
    EXPECT_EQ(header, "direction,seq,warmup,send_ns,sched_ns,driver_ns,rx_kernel_ns,recv_ns");
    std::vector<std::string> lines;
    while (std::getline(file, line)) lines.push_back(line);
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_EQ(lines[1], "client_to_server,1,0,1000,1003000,1005000,1010000,1020000");
}

}  // namespace
}  // namespace netlat_load
