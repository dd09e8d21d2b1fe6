#include "report.h"

#include <cstdio>
#include <fstream>
#include <stdexcept>

#include "stats.h"

namespace netlat_load {
namespace {

struct Distribution {
    std::vector<std::int64_t> deltas_ns;
    std::uint64_t missing = 0;  // messages that lack one of the two times
    std::uint64_t merged = 0;   // rx only: left out, their stamp is a later message's
};

// Figures of one direction, as far as this process saw them.
struct DirectionFigures {
    const char* tx_side = "";
    const char* rx_side = "";
    bool tx_known = false;       // the sending side ran in this process
    bool rx_known = false;       // the receiving side ran in this process
    std::uint64_t sent = 0;      // measured (non-warmup) messages sent
    std::uint64_t received = 0;  // measured messages received
    Distribution tx_sched, tx_driver, rx, one_way;
};

void add(Distribution* d, std::int64_t from_ns, std::int64_t to_ns) {
    if (from_ns != 0 && to_ns != 0) {
        d->deltas_ns.push_back(to_ns - from_ns);
    } else {
        ++d->missing;
    }
}

DirectionFigures figures(const DirectionLog& log, const char* tx_side, const char* rx_side,
                         bool tx_known, bool rx_known) {
    DirectionFigures f;
    f.tx_side = tx_side;
    f.rx_side = rx_side;
    f.tx_known = tx_known;
    f.rx_known = rx_known;
    for (const TxRecord& r : log.tx) {
        if (r.send_ns == 0 || r.warmup) continue;
        ++f.sent;
        add(&f.tx_sched, r.send_ns, r.sched_ns);
        add(&f.tx_driver, r.send_ns, r.driver_ns);
    }
    // TCP merges skbs that wait in the receive queue (tcp_try_coalesce) and the merged skb keeps
    // the newest arrival stamp: every message read from it reports the last one's stamp. All but
    // the last message of a run of equal stamps are left out of rx and counted as merged.
    std::vector<bool> stamp_is_later(log.rx.size(), false);
    const RxRecord* previous = nullptr;
    for (std::size_t seq = 0; seq < log.rx.size(); ++seq) {
        const RxRecord& r = log.rx[seq];
        if (r.recv_ns == 0) continue;
        if (previous != nullptr && r.kernel_ns != 0 && r.kernel_ns == previous->kernel_ns) {
            stamp_is_later[static_cast<std::size_t>(previous - log.rx.data())] = true;
        }
        previous = &r;
    }
    for (std::size_t seq = 0; seq < log.rx.size(); ++seq) {
        const RxRecord& r = log.rx[seq];
        if (r.recv_ns == 0 || r.warmup) continue;
        ++f.received;
        if (stamp_is_later[seq]) {
            ++f.rx.merged;
        } else {
            add(&f.rx, r.kernel_ns, r.recv_ns);
        }
        add(&f.one_way, r.peer_send_ns, r.recv_ns);
    }
    return f;
}

bool side_known(Role role, Role side) {
    return role == Role::kBoth || role == side;
}

std::vector<DirectionFigures> all_figures(const RunResult& result) {
    const Role role = result.options.role;
    std::vector<DirectionFigures> out;
    out.push_back(figures(result.client_to_server, "client", "server",
                          side_known(role, Role::kClient), side_known(role, Role::kServer)));
    if (result.options.mode == Mode::kRequestResponse) {
        out.push_back(figures(result.server_to_client, "server", "client",
                              side_known(role, Role::kServer), side_known(role, Role::kClient)));
    }
    return out;
}

Distribution round_trip(const RunResult& result) {
    Distribution d;
    const auto& requests = result.client_to_server.tx;
    const auto& replies = result.server_to_client.rx;
    for (std::size_t seq = 0; seq < requests.size(); ++seq) {
        if (requests[seq].send_ns == 0 || requests[seq].warmup) continue;
        add(&d, requests[seq].send_ns, seq < replies.size() ? replies[seq].recv_ns : 0);
    }
    return d;
}

Distribution combine(const std::vector<DirectionFigures>& all,
                     Distribution DirectionFigures::*member, bool DirectionFigures::*known) {
    Distribution d;
    for (const auto& f : all) {
        if (!(f.*known)) continue;
        const Distribution& part = f.*member;
        d.deltas_ns.insert(d.deltas_ns.end(), part.deltas_ns.begin(), part.deltas_ns.end());
        d.missing += part.missing;
        d.merged += part.merged;
    }
    return d;
}

nlohmann::ordered_json summary_json(const Distribution& d) {
    Summary s = summarize(d.deltas_ns);
    nlohmann::ordered_json j = {{"count", s.count}, {"missing", d.missing}};
    if (d.merged != 0) j["merged"] = d.merged;
    for (auto [key, value] : {std::pair{"p50_us", s.p50_us}, std::pair{"p90_us", s.p90_us},
                              std::pair{"p99_us", s.p99_us}, std::pair{"mean_us", s.mean_us},
                              std::pair{"min_us", s.min_us}, std::pair{"max_us", s.max_us}}) {
        j[key] = s.count == 0 ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(value);
    }
    return j;
}

nlohmann::ordered_json direction_json(const DirectionFigures& f) {
    nlohmann::ordered_json j = {{"tx_side", f.tx_side}, {"rx_side", f.rx_side}};
    j["sent"] = f.tx_known ? nlohmann::ordered_json(f.sent) : nlohmann::ordered_json(nullptr);
    j["received"] =
        f.rx_known ? nlohmann::ordered_json(f.received) : nlohmann::ordered_json(nullptr);
    j["lost"] = f.tx_known && f.rx_known
                    ? nlohmann::ordered_json(f.sent - std::min(f.sent, f.received))
                    : nlohmann::ordered_json(nullptr);
    auto known = [](bool k, const Distribution& d) {
        return k ? summary_json(d) : nlohmann::ordered_json(nullptr);
    };
    j["tx_sched"] = known(f.tx_known, f.tx_sched);
    j["tx_driver"] = known(f.tx_known, f.tx_driver);
    j["rx"] = known(f.rx_known, f.rx);
    j["send_to_recv"] = known(f.rx_known, f.one_way);
    return j;
}

bool client_here(const RunResult& result) {
    return side_known(result.options.role, Role::kClient);
}

std::string format_row(const char* direction, const char* figure, const char* side,
                       const Distribution& d) {
    Summary s = summarize(d.deltas_ns);
    char line[200];
    if (s.count == 0) {
        std::snprintf(line, sizeof line, "%-16s %-22s %-7s %7zu %10s %10s %10s %10s %8llu\n",
                      direction, figure, side, s.count, "-", "-", "-", "-",
                      static_cast<unsigned long long>(d.missing));
    } else {
        std::snprintf(line, sizeof line,
                      "%-16s %-22s %-7s %7zu %10.2f %10.2f %10.2f %10.2f %8llu\n", direction,
                      figure, side, s.count, s.p50_us, s.p90_us, s.p99_us, s.mean_us,
                      static_cast<unsigned long long>(d.missing));
    }
    return line;
}

}  // namespace

const char* rx_stamp_point(Proto proto) {
    // TCP marks its skbs with a monotonic delivery time; the stack keeps it until IP hands the
    // packet to TCP (ip_local_deliver_finish / ip6_input_finish), and only there puts the receive
    // stamp in. UDP skbs are stamped when the driver hands them to the stack (netif_rx).
    return proto == Proto::kTcp ? "ip_local_deliver" : "netif_rx";
}

nlohmann::ordered_json to_json(const RunResult& result) {
    const Options& o = result.options;
    const auto all = all_figures(result);
    nlohmann::ordered_json j = {
        {"tool", "netlat-load"},
        {"role", to_string(o.role)},
        {"proto", to_string(o.proto)},
        {"family", o.family},
        {"topology", to_string(o.topology)},
        {"mode", to_string(o.mode)},
        {"clock", "CLOCK_REALTIME"},
        {"rx_stamp_point", rx_stamp_point(o.proto)},
        {"elapsed_s", result.elapsed_s},
        {"interrupted", result.interrupted},
    };
    if (o.role != Role::kServer) {
        j["size"] = o.size;
        j["rate"] = o.rate;
        j["warmup"] = o.warmup;
        j["messages"] = all[0].sent;
    } else {
        j["messages"] = all[0].received;
    }
    j["tx_sched"] =
        summary_json(combine(all, &DirectionFigures::tx_sched, &DirectionFigures::tx_known));
    j["tx_driver"] =
        summary_json(combine(all, &DirectionFigures::tx_driver, &DirectionFigures::tx_known));
    j["rx"] = summary_json(combine(all, &DirectionFigures::rx, &DirectionFigures::rx_known));
    j["client_to_server"] = direction_json(all[0]);
    if (all.size() > 1) {
        j["server_to_client"] = direction_json(all[1]);
        j["rtt"] = client_here(result) ? summary_json(round_trip(result))
                                       : nlohmann::ordered_json(nullptr);
    }
    return j;
}

std::string to_table(const RunResult& result) {
    const Options& o = result.options;
    const auto all = all_figures(result);
    std::string out;
    char line[300];
    std::snprintf(line, sizeof line, "netlat-load: %s/IPv%d %s %s, role %s, %.2f s%s\n",
                  to_string(o.proto), o.family, to_string(o.topology), to_string(o.mode),
                  to_string(o.role), result.elapsed_s, result.interrupted ? " (interrupted)" : "");
    out += line;
    if (o.role != Role::kServer) {
        char rate[32] = "unlimited";
        if (o.rate > 0) std::snprintf(rate, sizeof rate, "%g/s", o.rate);
        std::snprintf(line, sizeof line, "messages of %zu B, rate %s, warmup %llu (not measured)\n",
                      o.size, rate, static_cast<unsigned long long>(o.warmup));
        out += line;
    }
    std::snprintf(line, sizeof line,
                  "kernel stamps (CLOCK_REALTIME): qdisc = TX_SCHED, driver = TX_SOFTWARE, "
                  "rx = RX_SOFTWARE at %s\n\n",
                  rx_stamp_point(o.proto));
    out += line;
    std::snprintf(line, sizeof line, "%-16s %-22s %-7s %7s %10s %10s %10s %10s %8s\n", "direction",
                  "figure", "side", "count", "p50 us", "p90 us", "p99 us", "mean us", "missing");
    out += line;
    for (const auto& f : all) {
        std::string direction = std::string(f.tx_side) + "->" + f.rx_side;
        if (f.tx_known) {
            out += format_row(direction.c_str(), "send()->qdisc", f.tx_side, f.tx_sched);
            out += format_row(direction.c_str(), "send()->driver", f.tx_side, f.tx_driver);
        }
        if (f.rx_known) {
            out += format_row(direction.c_str(), "driver->recv() return", f.rx_side, f.rx);
            out += format_row(direction.c_str(), "send()->recv() return", "both", f.one_way);
        }
    }
    if (o.mode == Mode::kRequestResponse && client_here(result)) {
        out += format_row("round trip", "send()->reply recv()", "client", round_trip(result));
    }
    out += "\n";
    const Distribution all_rx = combine(all, &DirectionFigures::rx, &DirectionFigures::rx_known);
    if (all_rx.merged != 0) {
        out +=
            "driver->recv(): " + std::to_string(all_rx.merged) +
            " messages left out (TCP merged their skb into a later one, whose stamp they carry)\n";
    }
    for (const auto& f : all) {
        std::string counts = std::string(f.tx_side) + "->" + f.rx_side + ":";
        if (f.tx_known) counts += " sent " + std::to_string(f.sent);
        if (f.rx_known) counts += " received " + std::to_string(f.received);
        if (f.tx_known && f.rx_known) {
            counts += " lost " + std::to_string(f.sent - std::min(f.sent, f.received));
        }
        out += counts + "\n";
    }
    return out;
}

void write_samples(const RunResult& result, const std::string& path) {
    std::ofstream file(path);
    if (!file) throw std::runtime_error("cannot write --samples file " + path);
    file << "direction,seq,warmup,send_ns,sched_ns,driver_ns,rx_kernel_ns,recv_ns\n";
    auto field = [](std::int64_t ns) { return ns == 0 ? std::string() : std::to_string(ns); };
    auto write_direction = [&](const char* name, const DirectionLog& log) {
        const std::size_t n = std::max(log.tx.size(), log.rx.size());
        for (std::size_t seq = 0; seq < n; ++seq) {
            TxRecord tx = seq < log.tx.size() ? log.tx[seq] : TxRecord{};
            RxRecord rx = seq < log.rx.size() ? log.rx[seq] : RxRecord{};
            if (tx.send_ns == 0 && rx.recv_ns == 0) continue;
            std::int64_t send_ns = tx.send_ns != 0 ? tx.send_ns : rx.peer_send_ns;
            file << name << ',' << seq << ',' << ((tx.warmup || rx.warmup) ? 1 : 0) << ','
                 << field(send_ns) << ',' << field(tx.sched_ns) << ',' << field(tx.driver_ns) << ','
                 << field(rx.kernel_ns) << ',' << field(rx.recv_ns) << '\n';
        }
    };
    write_direction("client_to_server", result.client_to_server);
    if (result.options.mode == Mode::kRequestResponse) {
        write_direction("server_to_client", result.server_to_client);
    }
    if (!file.flush()) throw std::runtime_error("writing --samples file " + path + " failed");
}

}  // namespace netlat_load
