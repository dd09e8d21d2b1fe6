// Network namespaces created while netlatd runs: netlatd hooks their netfilter stages when it
// discovers them (every drain interval), measures traffic inside them under a netns label equal to
// the namespace's inode, and releases the hooks when the namespaces are deleted.
#include <gtest/gtest.h>

#include <optional>
#include <thread>

#include "harness.h"
#include "netns_pair.h"

using namespace netlatd::test;

namespace {

constexpr int kMessages = 300;

TEST(Netns, NamespacesCreatedLaterAreHookedLabelledAndReleased) {
    Daemon d("interval: 100ms\nlabels: {netns: true}\n");
    ASSERT_TRUE(d.running()) << d.log();

    std::optional<NetnsPair> pair(std::in_place);
    const unsigned long ino_a = NetnsPair::inode(pair->ns_a);
    const unsigned long ino_b = NetnsPair::inode(pair->ns_b);
    for (unsigned long ino : {ino_a, ino_b})
        ASSERT_TRUE(wait_for_log(
            d, "network namespace " + std::to_string(ino) + ": netfilter stages hooked"))
            << ino << " not hooked:\n"
            << d.log();

    const int port = free_tcp_port();
    ASSERT_EQ(udp_echo(NetnsPair::path(pair->ns_a), NetnsPair::path(pair->ns_b), pair->addr_b, port,
                       kMessages),
              kMessages);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    auto samples = parse_metrics(d.scrape());

    // The netfilter stages inside the namespaces: rx network (PRE_ROUTING) -> transport
    // (LOCAL_IN) on both ends, tx -> network (POST_ROUTING) on both ends. Each end sends and
    // receives kMessages.
    struct Check {
        std::string direction, segment;
        unsigned long ino;
    };
    const Check checks[] = {
        {"rx", "network_to_transport", ino_b},
        {"rx", "network_to_transport", ino_a},
        {"tx", "transport_to_network", ino_a},
        {"tx", "transport_to_network", ino_b},
        {"rx", "total", ino_b},
        {"tx", "total", ino_a},
    };
    for (const Check& c : checks) {
        const double count = metric_value(samples, "netlatd_stack_latency_seconds_count",
                                          {{"direction", c.direction},
                                           {"segment", c.segment},
                                           {"protocol", "udp"},
                                           {"netns", std::to_string(c.ino)}});
        EXPECT_GE(count, 0.95 * kMessages)
            << c.direction << " " << c.segment << " netns=" << c.ino << ": " << count;
        EXPECT_LE(count, 1.02 * kMessages)
            << c.direction << " " << c.segment << " netns=" << c.ino << ": " << count;
    }

    pair.reset();  // deletes both namespaces
    for (unsigned long ino : {ino_a, ino_b})
        EXPECT_TRUE(wait_for_log(d, "network namespace " + std::to_string(ino) +
                                        " is gone: its netfilter hooks are released"))
            << ino << " not released:\n"
            << d.log();
    EXPECT_TRUE(d.running()) << d.log();
    EXPECT_EQ(d.stop(), 0) << d.log();
}

}  // namespace
