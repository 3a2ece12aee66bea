// Opening a listening socket, for every listener (the HTTP APIs, the Kafka protocol).
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace wasmq {

// Opens `acceptor` on host:port (an address, or a name resolved once), with SO_REUSEADDR, and
// listens. kIo naming `name` and the address when it cannot (the acceptor is left closed).
// The controlling thread, before the acceptor's executor runs.
Status listen_on(boost::asio::ip::tcp::acceptor& acceptor, const std::string& host, uint16_t port,
                 const std::string& name);

}  // namespace wasmq
