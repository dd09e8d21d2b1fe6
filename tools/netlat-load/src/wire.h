// The header every netlat-load message starts with. Both ends run on one host (loopback or
// namespaces of one kernel), so fields are in host byte order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "options.h"

namespace netlat_load {

inline constexpr std::uint16_t kMagic = 0x4e4c;  // "NL"

enum MessageFlags : std::uint16_t {
    kFlagWarmup = 1 << 0,       // not measured
    kFlagReplyWanted = 1 << 1,  // request/response mode: the server echoes the message
    kFlagEnd = 1 << 2,          // UDP: the client is done (TCP uses shutdown instead)
};

struct MessageHeader {
    std::uint16_t magic = kMagic;
    std::uint16_t flags = 0;
    std::uint32_t size = 0;    // whole message, header included
    std::uint64_t seq = 0;     // 0-based, warmup messages included
    std::int64_t send_ns = 0;  // sender's CLOCK_REALTIME just before send()
};
static_assert(sizeof(MessageHeader) == kMinMessageSize);

inline void encode_header(const MessageHeader& header, void* buf) {
    std::memcpy(buf, &header, sizeof header);
}

// nullopt when the bytes are not a netlat-load header of a plausible size.
inline std::optional<MessageHeader> decode_header(const void* buf, std::size_t len) {
    if (len < sizeof(MessageHeader)) return std::nullopt;
    MessageHeader header;
    std::memcpy(&header, buf, sizeof header);
    if (header.magic != kMagic || header.size < sizeof(MessageHeader) ||
        header.size > kMaxTcpMessageSize) {
        return std::nullopt;
    }
    return header;
}

}  // namespace netlat_load
