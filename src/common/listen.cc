#include "common/listen.h"

namespace wasmq {

Status listen_on(boost::asio::ip::tcp::acceptor& acceptor, const std::string& host, uint16_t port,
                 const std::string& name) {
  namespace asio = boost::asio;
  using asio::ip::tcp;
  const std::string text = host + ":" + std::to_string(port);
  boost::system::error_code error;
  tcp::endpoint endpoint;
  auto address = asio::ip::make_address(host, error);
  if (!error) {
    endpoint = tcp::endpoint(address, port);
  } else {
    tcp::resolver resolver(acceptor.get_executor());
    auto results = resolver.resolve(host, std::to_string(port), error);
    if (error || results.empty()) {
      return {StatusCode::kIo, name + ": cannot resolve \"" + host + "\": " + error.message()};
    }
    endpoint = *results.begin();
  }
  auto fail = [&](const char* step) {
    boost::system::error_code ignored;
    acceptor.close(ignored);
    return Status(StatusCode::kIo, name + ": cannot " + step + " " + text + ": " + error.message());
  };
  if (acceptor.open(endpoint.protocol(), error)) return fail("open a socket for");
  if (acceptor.set_option(tcp::acceptor::reuse_address(true), error)) return fail("configure");
  if (acceptor.bind(endpoint, error)) return fail("listen on");
  if (acceptor.listen(asio::socket_base::max_listen_connections, error)) return fail("listen on");
  return Status::ok();
}

}  // namespace wasmq
