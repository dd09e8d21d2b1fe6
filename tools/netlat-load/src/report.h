// Turns the records of a run into the three judged distributions (send() -> qdisc,
// send() -> driver, driver -> recv() return) plus one-way and round-trip times, as a table,
// as JSON, and as a per-message CSV.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "options.h"
#include "session.h"

namespace netlat_load {

struct RunResult {
    Options options;
    DirectionLog client_to_server;
    DirectionLog server_to_client;  // request/response mode only
    double elapsed_s = 0;
    bool interrupted = false;
};

// Where the kernel takes the software RX stamp for this protocol on this kernel (see README).
const char* rx_stamp_point(Proto proto);

nlohmann::ordered_json to_json(const RunResult& result);
std::string to_table(const RunResult& result);
// One line per message and direction; times in ns of CLOCK_REALTIME, empty when not seen.
void write_samples(const RunResult& result, const std::string& path);

}  // namespace netlat_load
